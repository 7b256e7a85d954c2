"""The retarget announcement carries the difficulty chart, end to end through the sandbox's webhook:
attached to the same message (once, even when the post is retried), and left out, never holding the
announcement up, when the chart worker fails or hangs."""

from __future__ import annotations

import asyncio

import bot.notifier
from tests.e2e.test_charts import png_size
from tests.e2e.test_explorer import mine_blocks, state
from tests.e2e.test_notifier import announced, backlog_is_empty, eventually, expected_titles, posts_to, set_up_webhook

RETARGET_TITLE = "🎯 Difficulty changed"


def retarget_messages(sb, channel) -> list:
    return [m for m in sb.webhook_feed(channel) if any(e.get("title") == RETARGET_TITLE for e in m.embeds)]


async def retarget_announced(p):
    """Mine past the first retarget (height 10 in the tests' params) and wait for the outbox to drain."""
    await mine_blocks(p, 10)
    assert state(p).headers[10].bits != state(p).headers[9].bits  # blocks in milliseconds: it moved
    await eventually(lambda: backlog_is_empty(p), 15, "every announcement delivered")
    (message,) = retarget_messages(p.sb, p.world.blocks)
    return message


async def test_the_retarget_announcement_carries_the_difficulty_chart_with_alt_text(playground):
    p, w = playground, playground.world
    webhook = await set_up_webhook(p)
    # The first post to the webhook fails: discord.py retries it, the chart's file rewound.
    p.sb.faults.server_error(f"POST /webhooks/{webhook.id}/*", times=1)
    message = await retarget_announced(p)
    (attachment,) = message.attachments
    assert attachment.filename == "difficulty.png" and png_size(attachment.data) == (800, 450)
    assert attachment.description.startswith("Line chart of difficulty over block height 0 to ")
    assert "It changed at 1 of the plotted heights" in attachment.description
    (embed,) = [e for e in message.embeds if e.get("title") == RETARGET_TITLE]
    assert embed["image"]["url"] == "attachment://difficulty.png"
    # Every event once, in order; only the retarget's message has a picture.
    assert announced(p.sb, w.blocks) == await expected_titles(p, w.genesis)
    assert [len(m.attachments) for m in p.sb.webhook_feed(w.blocks)].count(1) == 1
    assert 500 in [r.status for r in posts_to(p.sb, webhook)]
    assert p.bot.notifier.charts_attached >= 1 and p.bot.notifier.charts_left_out == 0


async def test_a_failing_chart_worker_leaves_the_chart_out_and_the_announcement_goes(playground, monkeypatch):
    p, w = playground, playground.world
    await set_up_webhook(p)

    async def broken(spec, key=None):
        raise RuntimeError("the chart worker crashed")

    monkeypatch.setattr(p.bot.services.charts.renderer, "render", broken)
    message = await retarget_announced(p)
    assert message.attachments == [] and all("image" not in e for e in message.embeds)
    assert announced(p.sb, w.blocks) == await expected_titles(p, w.genesis)
    assert p.bot.notifier.charts_left_out >= 1 and p.bot.notifier.charts_attached == 0


async def test_a_hanging_chart_worker_does_not_hold_the_announcement_up(playground, monkeypatch):
    p, w = playground, playground.world
    await set_up_webhook(p)
    never = asyncio.Event()

    async def hanging(spec, key=None):
        await never.wait()
        raise AssertionError("unreachable")

    monkeypatch.setattr(p.bot.services.charts.renderer, "render", hanging)
    monkeypatch.setattr(bot.notifier, "CHART_TIMEOUT_S", 0.2)
    message = await retarget_announced(p)
    assert message.attachments == []
    assert announced(p.sb, w.blocks) == await expected_titles(p, w.genesis)
    assert p.bot.notifier.charts_left_out >= 1
