"""cogs/admin_text.py: what /playground says, from the values the façade and the notifier return."""

from __future__ import annotations

import pytest

from bot.notifier import STALLED_AFTER_S, WebhookStatus
from chain.params import PLAYGROUND
from cogs.admin_text import describe_rule_change, describe_setting_changes, describe_slot_budget, describe_webhook


def status(**changes: object) -> WebhookStatus:
    fields: dict = {"channel_id": 42, "webhook_id": 7, "disabled_reason": None, "backlog": 0, "retry_in_s": 0.0}
    return WebhookStatus(**{**fields, **changes})


@pytest.mark.parametrize(
    ("webhook", "shown"),
    [
        (status(channel_id=None, webhook_id=None), "not set up: `/playground setup` picks a channel"),
        (status(disabled_reason="Discord says it was deleted"),
         "<#42> — ⛔ disabled: Discord says it was deleted. Run `/playground setup` again."),
        (status(retry_in_s=90.0), "<#42> — ⏳ failing, next try in 1 min 30 s"),
        (status(rate_limited_for_s=5.0, posting_for_s=12.0),
         "<#42> — ⏳ rate-limited by Discord: the next post goes out in 5 s (waiting for 12 s so far)"),
        (status(posting_for_s=STALLED_AFTER_S), "<#42> — ⏳ slow: a post has waited"),
        (status(), "<#42> — ✅ ok"),
    ],
)
def test_the_webhook_line_names_the_first_thing_wrong(webhook, shown):
    assert describe_webhook(webhook).startswith(shown)


def test_a_settings_change_shows_old_and_new_and_what_was_already_so():
    base = PLAYGROUND
    rules = {"target_spacing_s": base.target_spacing_s // 2}
    chosen = {"block_time": rules["target_spacing_s"], "reward": base.initial_subsidy_points, "cooldown": 0}
    settings = {"session_s": 120, "cooldown_s": 10}
    text = describe_setting_changes(base, rules, settings, {"cooldown_s": 0}, chosen)
    assert text.split("\n") == [
        f"Block time: {base.target_spacing_s} s → **{rules['target_spacing_s']} s**",
        f"Reward: already **{base.initial_subsidy_points} pts**",
        "Cooldown between sessions: 10 s → **0 s**",
    ]


def test_a_pending_rule_change_names_only_what_changes():
    base = PLAYGROUND
    assert describe_rule_change(base, base.evolve(initial_subsidy_points=7)) == (
        f"reward {base.initial_subsidy_points} pts → 7 pts"
    )


def test_the_slot_budget_says_why_empty_slots_are_skipped():
    assert describe_slot_budget(5, 60, idle=False) == "5 of 60 left this hour"
    assert "over budget" in describe_slot_budget(0, 60, idle=False)
    assert "idle (nobody acted for" in describe_slot_budget(0, 60, idle=True)
