"""/doublespend's embeds: the plan with P(q, k) before, the status, and the summary with P after."""

from decimal import Decimal
from fractions import Fraction

from chain.errors import (
    DoubleSpendBalanceError,
    DoubleSpendNotAttackerError,
    DoubleSpendOverError,
    DoubleSpendPlanError,
)
from chain.games.double_spend_plan import check_plan
from chain.playground import (
    BranchRace,
    DoubleSpendStatus,
    DoubleSpendSummary,
    EndReason,
    Verdict,
)
from cogs.double_spend import share_text, start_embed, status_embed, summary_embed
from cogs.errors import describe_error

PLAN = check_plan(payer="11", merchant="22", attackers=frozenset({"11"}), amount=7, confirmations=2,
                  attack_percent=90, honest_percent=10, deadline_minutes=5)
RACE = BranchRace(public_work=120, private_work=240, public_blocks=2, private_blocks=4, payment_height=3,
                  public_height=4)


def text(embed) -> str:
    parts = [embed.title or "", embed.description or ""]
    parts += [f"{f.name}: {f.value}" for f in embed.fields]
    return "\n".join(parts + [embed.footer.text or ""])


def status(**changes) -> DoubleSpendStatus:
    values = dict(plan=PLAN, race=RACE, fork_height=2, payment_txid=bytes(range(32)), deadline_at=1_900_000_300.0,
                  p_before=Decimal("1.0000000"))
    values.update(changes)
    return DoubleSpendStatus(**values)


def summary(**changes) -> DoubleSpendSummary:
    values = dict(plan=PLAN, reason=EndReason.AUTOMATIC, verdict=Verdict.DOUBLE_SPENT, race=RACE, fork_height=2,
                  payment_txid=bytes(range(32)), reorg_depth=2, attacker_bot_blocks=3, attacker_member_blocks=1,
                  honest_bot_blocks=1, p_before=Decimal("1.0000000"), q_measured=Fraction(2, 3),
                  p_after=Decimal("1.0000000"), events=())
    values.update(changes)
    return DoubleSpendSummary(**values)


def test_the_plan_shows_q_k_and_the_papers_figure_before():
    shown = text(start_embed(status(), None))
    assert "<@11> pay <@22> **7 pts**" in shown and "2 confirmations" in shown
    assert "private branch** from block #2" in shown
    assert "attackers 90 % · honest side 10 %" in shown
    assert "q (attackers' share, as set): 0.900" in shown and "k: 2" in shown
    assert "P(q, k) before (Nakamoto 2008, §11): 1.0000000" in shown
    assert "<t:1900000300:R>" in shown
    assert "<@&5>" in text(start_embed(status(), 5))


def test_the_status_shows_both_branches_and_the_confirmations():
    shown = text(status_embed(status()))
    assert "Public chain since #2: **2 blocks**, work 120" in shown
    assert "Private branch: **4 blocks**, work 240" in shown and "private branch is heavier" in shown
    assert "Payment confirmations: 2 of 2" in shown


def test_the_summary_of_a_double_spend():
    shown = text(summary_embed(summary()))
    assert shown.startswith("💸 Double spent")
    assert "**reversed** (nonce replay)" in shown and "Reorg depth: **2**" in shown
    assert "attackers 4 (bot 3, members 1), work 240" in shown and "honest 2 (bot 1, members 1), work 120" in shown
    assert "as set 0.900 · measured 0.667" in shown
    assert "before (q as set): 1.0000000 · after (q measured): 1.0000000" in shown
    assert "published automatically" in shown


def test_the_summary_when_the_public_chain_wins():
    lost = summary(verdict=Verdict.PUBLIC_CHAIN_WON, reorg_depth=0, reason=EndReason.DEADLINE,
                   p_after=Decimal("0.1000000"))
    shown = text(summary_embed(lost))
    assert shown.startswith("🛡️ The public chain won") and "stands" in shown and "orphans" in shown
    assert "the deadline: the private blocks were published as they were" in shown
    assert "after (q measured): 0.1000000" in shown


def test_shares_are_exact_decimals():
    assert share_text(Fraction(2, 3)) == "0.667" and share_text(Fraction(1, 8)) == "0.125"
    assert share_text(None) == "not known yet"


def test_refusals_read_as_the_engines_sentence():
    assert describe_error(DoubleSpendPlanError("the confirmations k must be from 1 to 6, not 9")) == (
        "the confirmations k must be from 1 to 6, not 9"
    )
    assert describe_error(DoubleSpendBalanceError("…", 3, 10)) == (
        "The attacker's wallet has 3 points to spend, not the 10 asked for: `/wallet faucet` or `/mine start` "
        "earns some. Nothing was changed."
    )
    assert "only the attacking side" in describe_error(
        DoubleSpendNotAttackerError("only the attacking side or an admin can publish the private branch")
    )
    over = DoubleSpendOverError("the double spend was already published or ended")
    assert describe_error(over) == "the double spend was already published or ended"
