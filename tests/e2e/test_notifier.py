"""The webhook notifier, end to end: every event arrives exactly once, in order, whatever Discord does."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import bot.notifier
from bot.storage import OutboxRepository
from chain.adapters.storage import Store
from cogs.embeds import event_embed
from sandbox.demo import populate_demo
from tests.e2e.conftest import Playground, make_settings, running_bot
from tests.e2e.test_admin import answer, field, mine_block, text_of

WEBHOOK_EXECUTE = "POST /webhooks/{webhook_id}/{webhook_token}"


async def set_up_webhook(p, channel=None, *, member=None, guild=None):
    """/playground setup in ``channel``; returns the sandbox's webhook."""
    channel = channel or p.world.blocks
    await answer(p, member or p.world.alice, "playground setup", {"channel": channel}, guild=guild)
    [webhook] = p.sb.webhooks_in(channel)
    return webhook


def posts_to(sb, webhook) -> list:
    """Every execution of this webhook, including the ones answered with an error."""
    return [r for r in sb.find_requests(WEBHOOK_EXECUTE) if r.path.startswith(f"/webhooks/{webhook.id}/")]


def announced(sb, channel) -> list[str]:
    """Titles of the event embeds posted by webhooks in ``channel``, oldest first."""
    return [e.get("title", "") for m in sb.webhook_feed(channel) for e in m.embeds]


async def expected_titles(p, guild) -> list[str]:
    """What the outbox holds for this server, as the titles its embeds carry, in outbox order."""
    events = await OutboxRepository(p.bot.store.db).all_events(guild.id)
    return [event_embed(e.event, {}).title for e in events]


async def eventually(check, timeout: float = 10.0, what: str = "condition"):
    """Poll an async or plain check until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


async def backlog_is_empty(p) -> bool:
    return not await OutboxRepository(p.bot.store.db).backlog()


async def test_429_then_500_then_success_delivers_every_event_once(playground):
    p, w, sb = playground, playground.world, playground.sb
    webhook = await set_up_webhook(p)
    rate_limited = sb.faults.rate_limit(f"POST /webhooks/{webhook.id}/*", times=1, retry_after=0.25)
    failed = sb.faults.server_error(f"POST /webhooks/{webhook.id}/*", times=1)

    await mine_block(p, w.alice)
    await eventually(lambda: backlog_is_empty(p), 15, "delivery")
    expected = await expected_titles(p, w.genesis)
    assert expected[:2] == ["⛏️ Block 1 mined", "💰 Reward for block 1"]
    assert announced(sb, w.blocks) == expected
    # The confirmation of the setup, then one batch tried three times.
    assert [r.status for r in posts_to(sb, webhook)] == [200, 429, 500, 200]
    assert rate_limited.hit_count == 1 and failed.hit_count == 1


async def test_a_refused_batch_is_split_and_every_event_still_arrives_once(playground):
    """A 400 (say, an embed Discord won't take) must not be retried unchanged forever."""
    p, w, sb = playground, playground.world, playground.sb
    webhook = await set_up_webhook(p)
    refused = sb.faults.error(f"POST /webhooks/{webhook.id}/*", 400, code=50035, message="Invalid Form Body", times=1)

    await mine_block(p, w.alice)
    await eventually(lambda: backlog_is_empty(p), 15, "delivery")
    expected = await expected_titles(p, w.genesis)
    assert len(expected) >= 2
    assert announced(sb, w.blocks) == expected
    # Setup's confirmation, the refused batch, then each event on its own.
    assert [r.status for r in posts_to(sb, webhook)] == [200, 400] + [200] * len(expected)
    assert refused.hit_count == 1 and p.bot.notifier.refused_events == 0


async def test_rows_this_version_cannot_read_are_posted_plainly_and_the_rest_flow(playground):
    """An outbox row of an unknown kind, with a payload that does not fit its kind, or with text
    that is not JSON (a newer version's, a hand-edited database) is posted as its kind and fields,
    and the events after it still arrive: the notifier never chokes on a stored row."""
    p, w, sb = playground, playground.world, playground.sb
    await set_up_webhook(p)
    async with p.bot.store.db.transaction() as tx:
        await tx.executemany(
            "INSERT INTO outbox (chain_id, kind, payload, created_at) VALUES (?, ?, ?, 0)",
            [(w.genesis.id, "comet_sighted", '{"height":3,"tail":"long"}'),
             (w.genesis.id, "stake_withdrawn", '{"points":"many"}'),
             (w.genesis.id, "block_mined", "{not json")],
        )

    await mine_block(p, w.alice)
    await eventually(lambda: backlog_is_empty(p), 15, "delivery")
    feed = [e for m in sb.webhook_feed(w.blocks) for e in m.embeds]
    assert [e.get("title") for e in feed[:5]] == [
        "Comet sighted", "Stake withdrawn", "Block mined", "⛏️ Block 1 mined", "💰 Reward for block 1"
    ]
    assert feed[0]["description"] == "height: 3\ntail: long" and feed[1]["description"] == "points: many"


async def test_an_event_refused_even_plainly_is_given_up_and_the_rest_flow(playground):
    p, w, sb = playground, playground.world, playground.sb
    webhook = await set_up_webhook(p)
    # The batch, the first event alone, and the first event plainly: all refused.
    sb.faults.error(f"POST /webhooks/{webhook.id}/*", 400, code=50035, message="Invalid Form Body", times=3)

    await mine_block(p, w.alice)
    await eventually(lambda: backlog_is_empty(p), 15, "delivery")
    expected = await expected_titles(p, w.genesis)
    assert announced(sb, w.blocks) == expected[1:]
    assert [r.status for r in posts_to(sb, webhook)] == [200, 400, 400, 400] + [200] * (len(expected) - 1)
    assert p.bot.notifier.refused_events == 1
    assert (await p.bot.notifier.status(w.genesis.id)).disabled_reason is None


async def test_the_notifier_backs_off_as_asked_when_discord_keeps_rate_limiting(playground, monkeypatch):
    p, w, sb = playground, playground.world, playground.sb
    # The retry must come from the back-off itself, not from the idle poll.
    monkeypatch.setattr(bot.notifier, "IDLE_POLL_S", 60.0)
    webhook = await set_up_webhook(p)
    # discord.py retries a 429 five times inside one send, then gives up; the last 429 asks for 2 s.
    route = f"POST /webhooks/{webhook.id}/*"
    sb.faults.rate_limit(route, times=4, retry_after=0.05)
    sb.faults.rate_limit(route, times=1, retry_after=2.0)

    await mine_block(p, w.alice)
    status = await eventually(lambda: _backing_off(p, w.genesis.id), 10, "the notifier to back off after five 429s")
    assert status.backlog == 2 and status.disabled_reason is None
    _h, reply = await answer(p, w.alice, "playground status")
    assert "⏳ failing, next try in" in field(reply, "Webhook")
    assert field(reply, "Undelivered events") == "2"

    await eventually(lambda: backlog_is_empty(p), 10, "delivery after the back-off")
    assert announced(sb, w.blocks) == await expected_titles(p, w.genesis)
    attempts = posts_to(sb, webhook)
    assert [r.status for r in attempts] == [200] + [429] * 5 + [200]
    # discord.py slept the 2 s once; the notifier then waited the 2 s the 429 asked for, not its usual 1 s.
    assert attempts[-1].at - attempts[-2].at >= 3.8


async def _backing_off(p, guild_id):
    status = await p.bot.notifier.status(guild_id)
    return status if status.retry_in_s > 0 else None


async def test_a_backlog_goes_out_in_batches_of_at_most_ten_embeds_in_order(playground):
    p, w, sb = playground, playground.world, playground.sb
    await answer(p, w.alice, "playground config", {"cooldown": 0})
    for height in range(1, 7):
        assert await mine_block(p, w.alice) == height
    expected = await expected_titles(p, w.genesis)
    assert len(expected) >= 13  # two per block, plus alice's 100-point milestone
    _h, reply = await answer(p, w.alice, "playground status")
    assert field(reply, "Undelivered events") == str(len(expected))

    _h, reply = await answer(p, w.alice, "playground setup", {"channel": w.blocks})
    assert f"{len(expected)} announcements kept while no webhook worked are being delivered now." in text_of(reply)
    await eventually(lambda: backlog_is_empty(p), 10, "the backlog")
    batches = [len(m.embeds) for m in sb.webhook_feed(w.blocks) if m.embeds]
    assert batches == [10] * (len(expected) // 10) + ([len(expected) % 10] if len(expected) % 10 else [])
    assert announced(sb, w.blocks) == expected


async def test_a_deleted_webhook_is_disabled_the_channel_told_and_events_kept(playground):
    p, w, sb = playground, playground.world, playground.sb
    node = p.bot.services.node
    webhook = await set_up_webhook(p)
    await answer(p, w.alice, "playground config", {"cooldown": 0})
    sb.delete_webhook(webhook)

    await mine_block(p, w.alice)
    alert = await sb.wait_until(
        lambda: next((m for m in sb.channel_messages(w.blocks, kind="bot") if "can no longer post" in m.content), None),
        timeout=10,
    )
    assert alert.content == (
        "⚠️ Consensus Playground can no longer post to this channel's webhook: the webhook was deleted or refused "
        "us (404). Events are kept; an admin can run `/playground setup` to create a new webhook."
    )
    status = await p.bot.notifier.status(w.genesis.id)
    assert status.disabled_reason is not None and status.backlog == 2
    _h, reply = await answer(p, w.alice, "playground status")
    assert field(reply, "Webhook").startswith(f"<#{w.blocks.id}> — ⛔ disabled: the webhook was deleted")

    # A disabled webhook is not tried again; events keep piling up, kept.
    await mine_block(p, w.alice)
    await asyncio.sleep(0.3)
    assert [r.status for r in posts_to(sb, webhook)] == [200, 404]
    expected = await expected_titles(p, w.genesis)
    assert len(expected) >= 4
    assert (await p.bot.notifier.status(w.genesis.id)).backlog == len(expected)
    assert announced(sb, w.blocks) == []
    assert node.chain(w.genesis.id).state.height == 2

    # A new webhook delivers everything that was kept, once, in order.
    new = await set_up_webhook(p)
    assert new.id != webhook.id
    await eventually(lambda: backlog_is_empty(p), 10, "the kept events")
    assert announced(sb, w.blocks) == expected
    # Only one alert was posted.
    assert len([m for m in sb.channel_messages(w.blocks, kind="bot") if "can no longer post" in m.content]) == 1


async def test_an_invalid_webhook_token_disables_it_too(playground):
    p, w, sb = playground, playground.world, playground.sb
    webhook = await set_up_webhook(p)
    sb.faults.unauthorized(f"POST /webhooks/{webhook.id}/*")
    await mine_block(p, w.alice)
    await sb.wait_until(
        lambda: any("token is no longer valid (401)" in m.content for m in sb.channel_messages(w.blocks, kind="bot")),
        timeout=10,
    )
    assert (await p.bot.notifier.status(w.genesis.id)).backlog == 2


async def test_one_failing_webhook_does_not_hold_up_another_server(playground):
    p, w, sb = playground, playground.world, playground.sb
    sick = await set_up_webhook(p)
    await set_up_webhook(p, w.fork_general, member=w.bob_in_fork, guild=w.fork)
    sb.faults.server_error(f"POST /webhooks/{sick.id}/*", times=None)

    await mine_block(p, w.alice)
    await sb.wait_until(lambda: any(r.status == 500 for r in posts_to(sb, sick)), timeout=10)
    # discord.py now sleeps and retries the 500s inside one send (for up to 25 s).
    await mine_block(p, w.bob_in_fork, guild=w.fork)
    await sb.wait_until(lambda: "💰 Reward for block 1" in announced(sb, w.fork_general), timeout=8)
    assert announced(sb, w.blocks) == []
    # Commands never wait for deliveries either.
    h = await sb.invoke(w.genesis, w.general, w.alice, "playground status")
    assert await h.wait_ack() < 2.0

    sb.faults.clear()
    await eventually(lambda: backlog_is_empty(p), 15, "the sick webhook to recover")
    assert announced(sb, w.blocks) == await expected_titles(p, w.genesis)
    assert announced(sb, w.fork_general) == await expected_titles(p, w.fork)


async def _pending_after_restart(sb, settings) -> dict[int, int]:
    store = await Store.open(settings.database_path)
    try:
        return await OutboxRepository(store.db).backlog()
    finally:
        await store.close()


async def test_shutting_down_mid_delivery_posts_nothing_twice(sb, tmp_path: Path):
    world = populate_demo(sb)
    settings = make_settings(tmp_path / "playground.sqlite3")
    async with running_bot(sb, settings) as bot:
        p = Playground(sb, world, bot, settings)
        webhook = await set_up_webhook(p)
        # Discord is slow: the batch is still in flight when the bot shuts down and flushes.
        sb.faults.delay(f"POST /webhooks/{webhook.id}/*", 0.5)
        await mine_block(p, world.alice)
        await sb.wait_until(lambda: len(posts_to(sb, webhook)) == 2, timeout=10)
        expected = await expected_titles(p, world.genesis)
    assert announced(sb, world.blocks) == expected
    assert len(posts_to(sb, webhook)) == 2
    assert await _pending_after_restart(sb, settings) == {}


async def test_events_pending_at_a_restart_arrive_after_it_exactly_once(sb, tmp_path: Path):
    world = populate_demo(sb)
    settings = make_settings(tmp_path / "playground.sqlite3")
    async with running_bot(sb, settings) as bot:
        p = Playground(sb, world, bot, settings)
        webhook = await set_up_webhook(p)
        await answer(p, world.alice, "playground config", {"cooldown": 0})
        # Discord rate-limits this webhook hard: nothing gets through before the restart.
        sb.faults.rate_limit(f"POST /webhooks/{webhook.id}/*", times=None, retry_after=0.05)
        await mine_block(p, world.alice)
        await mine_block(p, world.alice)
        expected = await expected_titles(p, world.genesis)
        await eventually(lambda: _backing_off(p, world.genesis.id), 10, "the notifier to back off")
    assert announced(sb, world.blocks) == []
    assert await _pending_after_restart(sb, settings) == {world.genesis.id: len(expected)}

    sb.faults.clear()
    restarted_at = time.monotonic()
    async with running_bot(sb, settings) as bot:
        p = Playground(sb, world, bot, settings)
        await eventually(lambda: backlog_is_empty(p), 10, "delivery after the restart")
        assert announced(sb, world.blocks) == expected
        delivered = [r for r in posts_to(sb, webhook) if r.status == 200]
        assert len(delivered) == 2  # the setup confirmation, then the kept events in one batch
        assert delivered[-1].at > restarted_at
        assert node_height(bot, world.genesis.id) == 2


def node_height(bot, guild_id: int) -> int:
    return bot.services.node.chain(guild_id).state.height


async def test_closing_as_a_wake_lands_does_not_hang(playground):
    """On Python 3.11, asyncio.wait_for swallows a cancel that lands as its wait completes."""
    notifier = playground.bot.notifier
    [loop_task] = [t for t in asyncio.all_tasks() if t.get_name() == "webhook-notifier"]
    for _ in range(3):
        await asyncio.sleep(0.05)
        notifier.wake()
        await asyncio.sleep(0)  # the notifier's wait completes...
    closing = asyncio.create_task(notifier.close())  # ...as close() cancels it
    done, _ = await asyncio.wait({closing}, timeout=8)
    if closing not in done:
        loop_task.cancel()  # let the fixture's teardown finish
        raise AssertionError("the notifier did not stop: its loop went on after the cancel")
    assert loop_task.done()


async def test_after_a_timeout_events_go_one_per_message_until_discord_confirms_one(sb, tmp_path: Path, monkeypatch):
    """Discord posts the message but answers after our timeout: the retry repeats what it holds."""
    monkeypatch.setattr(bot.notifier, "REQUEST_TIMEOUT_S", 2.5)  # read when the session is made
    world = populate_demo(sb)
    settings = make_settings(tmp_path / "playground.sqlite3")
    async with running_bot(sb, settings) as running:
        p = Playground(sb, world, running, settings)
        webhook = await set_up_webhook(p)
        # Two answers slower than the timeout: the batch, then its first event alone.
        # (The bot and the sandbox share one event loop: the 2.5 s timeout always fires first.)
        sb.faults.slow_answer(f"POST /webhooks/{webhook.id}/*", 3.0, times=2)
        await mine_block(p, world.alice)
        await eventually(lambda: backlog_is_empty(p), 20, "delivery after the slow answers")
        expected = await expected_titles(p, world.genesis)
        assert len(expected) >= 2
        sizes = [len(r.json.get("embeds") or []) for r in posts_to(sb, webhook)[1:]]
        # The batch (posted, never confirmed), the first event alone (the same), the first event
        # confirmed at last, then the rest in one batch again.
        assert sizes == [len(expected), 1, 1, len(expected) - 1]
        assert announced(sb, world.blocks) == expected + [expected[0]] * 2 + expected[1:]


async def test_status_shows_a_feed_held_back_by_discords_rate_limit(playground, monkeypatch):
    p, w, sb = playground, playground.world, playground.sb
    webhook = await set_up_webhook(p)
    # The notifier's clock stops at the 429, so its status is read as during discord.py's sleep,
    # however long the test takes; the retry that follows is held until the test has looked.
    now = time.time()
    monkeypatch.setattr(p.bot.notifier, "_clock", lambda: now)
    route = f"POST /webhooks/{webhook.id}/*"
    # discord.py sleeps the wait inside one send: no error reaches the notifier, nothing backs off.
    sb.faults.rate_limit(route, times=1, retry_after=2.0)
    held = sb.faults.slow_answer(route, 30.0, times=1)
    await mine_block(p, w.alice)
    await eventually(lambda: _rate_limited(p, w.genesis.id), 10, "the rate limit to be seen")
    _h, reply = await answer(p, w.alice, "playground status")
    assert field(reply, "Webhook").startswith(
        f"<#{w.blocks.id}> — ⏳ rate-limited by Discord: the next post goes out in 2 s"
    )

    held.release()
    await eventually(lambda: backlog_is_empty(p), 10, "delivery after the wait")
    _h, reply = await answer(p, w.alice, "playground status")
    assert field(reply, "Webhook") == f"<#{w.blocks.id}> — ✅ ok"


async def test_status_shows_a_post_waiting_long_for_discords_answer(playground, monkeypatch):
    p, w, sb = playground, playground.world, playground.sb
    monkeypatch.setattr(bot.notifier, "STALLED_AFTER_S", 0.5)
    webhook = await set_up_webhook(p)
    held = sb.faults.slow_answer(f"POST /webhooks/{webhook.id}/*", 10.0, times=1)
    await mine_block(p, w.alice)
    await eventually(lambda: _stalled(p, w.genesis.id), 10, "the post to count as stalled")
    _h, reply = await answer(p, w.alice, "playground status")
    assert "⏳ slow: a post has waited" in field(reply, "Webhook")
    held.release()  # answered well within the 15 s timeout
    await eventually(lambda: backlog_is_empty(p), 10, "the slow answer")
    assert announced(sb, w.blocks) == await expected_titles(p, w.genesis)  # answered in time: no repeat


async def _rate_limited(p, guild_id):
    return (await p.bot.notifier.status(guild_id)).rate_limited_for_s > 0


async def _stalled(p, guild_id):
    return (await p.bot.notifier.status(guild_id)).stalled
