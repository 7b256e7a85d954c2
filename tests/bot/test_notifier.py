"""The webhook notifier's housekeeping, on an injected clock: delivered events are pruned after
the retention period, in bounded batches; undelivered ones never."""

from __future__ import annotations

import asyncio

import pytest

import bot.notifier
from bot.notifier import WebhookNotifier
from bot.storage import OutboxRepository
from chain.adapters.storage import Store
from chain.consensus.transition import process_block
from chain.params import REGTEST
from tests.chainkit import genesis_block, key, mine, new_chain

DAY = 86_400
MINER = key("miner")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(tmp_path):
    s = await Store.open(tmp_path / "notifier.sqlite3")
    yield s
    await s.close()


async def events(store: Store, blocks: int) -> list[int]:
    """Append ``blocks`` blocks to chain 1; the outbox ids of their events (two per block)."""
    await store.create_chain(1, REGTEST, genesis_block(REGTEST, 1), 0)
    state = new_chain(REGTEST, chain_id=1)
    ids: list[int] = []
    for _ in range(blocks):
        block = mine(state, MINER.public_key, apply=False)
        effects = process_block(state, block, block.header.time)
        ids += await store.append_block(1, block, effects, [], 0)
        state.apply(block, effects)
    return ids


def notifier(store: Store, clock: Clock, **kwargs) -> WebhookNotifier:
    async def names(_chain_id):
        return {}

    async def alert(*_args):
        return None

    return WebhookNotifier(store, b"\x01" * 32, names=names, alert=alert, clock=clock,
                           randomness=lambda n: b"\x02" * n, retention_s=7 * DAY, **kwargs)


async def test_store_prunes_only_events_delivered_before_the_cutoff_at_most_limit_at_a_time(store):
    ids = await events(store, 3)
    await OutboxRepository(store.db).mark_delivered(ids[:3], 100)
    await OutboxRepository(store.db).mark_delivered(ids[3:5], 1_000)
    assert await OutboxRepository(store.db).prune_delivered_events(500, limit=2) == 2
    assert await OutboxRepository(store.db).prune_delivered_events(500, limit=2) == 1
    assert await OutboxRepository(store.db).prune_delivered_events(500, limit=2) == 0
    assert [e.id for e in await OutboxRepository(store.db).all_events(1)] == ids[3:]
    # However old, an undelivered event stays.
    assert await OutboxRepository(store.db).prune_delivered_events(10**12, limit=100) == 2
    assert [e.id for e in await OutboxRepository(store.db).all_events(1)] == ids[5:]
    assert [e.id for e in await OutboxRepository(store.db).pending_events(1)] == ids[5:]


async def test_delivered_events_go_after_the_retention_period_in_bounded_batches(store, monkeypatch):
    monkeypatch.setattr(bot.notifier, "PRUNE_BATCH", 2)
    ids = await events(store, 4)
    await OutboxRepository(store.db).mark_delivered(ids[:7], 1_000)
    clock = Clock(1_000 + 7 * DAY)
    batches: list[int] = []
    n = notifier(store, clock)
    prune = n.outbox.prune_delivered_events

    async def counted(before, limit):
        deleted = await prune(before, limit=limit)
        batches.append(deleted)
        return deleted

    monkeypatch.setattr(n.outbox, "prune_delivered_events", counted)
    assert await n.prune() == 0  # exactly the retention period: kept
    clock.now += 1
    assert await n.prune() == 7
    assert batches == [0, 2, 2, 2, 1]  # never more than PRUNE_BATCH in one transaction
    assert [e.id for e in await OutboxRepository(store.db).all_events(1)] == ids[7:]  # the undelivered one stays


async def test_the_notifier_prunes_at_start_and_then_once_an_interval(store):
    ids = await events(store, 2)
    await OutboxRepository(store.db).mark_delivered(ids[:2], 0)
    clock = Clock(8 * DAY)
    n = notifier(store, clock)
    await n.start()
    try:
        await asyncio.wait_for(_until(lambda: n.pruned_events == 2), 5)
        await OutboxRepository(store.db).mark_delivered(ids[2:], 0)
        # The next pass is due one interval later on the injected clock, not at the next wake.
        assert n._next_prune == clock.now + bot.notifier.PRUNE_INTERVAL_S
        clock.now += bot.notifier.PRUNE_INTERVAL_S
        n.wake()
        await asyncio.wait_for(_until(lambda: n.pruned_events == len(ids)), 5)
        assert await OutboxRepository(store.db).all_events(1) == []
    finally:
        await n.close()


async def _until(check) -> None:
    while not check():
        await asyncio.sleep(0.01)


async def test_a_prune_pass_finds_old_events_through_an_index_not_a_scan(tmp_path):
    """Most passes have nothing old enough to delete; without an index each one read the whole outbox."""
    import sqlite3

    path = tmp_path / "plan.sqlite3"
    await (await Store.open(path)).close()
    with sqlite3.connect(path) as db:
        plan = " | ".join(
            str(row[-1]) for row in db.execute(
                "EXPLAIN QUERY PLAN SELECT id FROM outbox WHERE delivered_at IS NOT NULL "
                "AND delivered_at < ? ORDER BY delivered_at LIMIT ?", (0, 1),
            )
        )
    assert "INDEX outbox_delivered" in plan and "SCAN" not in plan, plan
