"""The dashboard's outbox feed (bot/outbox_feed.py) on a real database: every committed row is
delivered exactly once, even when rows commit out of id order (PostgreSQL, where writers of
different chains run in parallel)."""

from __future__ import annotations

import asyncio

import pytest

import bot.outbox_feed
from bot.outbox_feed import FeedingOutboxWriter, OutboxFeed
from bot.storage import OutboxEvent
from chain.adapters.storage import Store
from chain.adapters.storage.outbox import OutboxTableWriter
from chain.events import MilestoneReached

ALPHA, BETA = 1, 2
GUARD_S = 60  # how long a test waits for something that must come before it gives up (a hang guard)


def milestone(height: int) -> MilestoneReached:
    return MilestoneReached(height=height, account=bytes(32), milestone=100, balance=100)


@pytest.fixture
async def postgres_store(postgres_url):
    store = await Store.open(postgres_url)
    yield store
    await store.close()


async def stepped_feed(store: Store, delivered: list[OutboxEvent]) -> OutboxFeed:
    """A feed started at the outbox's current end, read by the test step by step (no task of its own)."""
    feed = OutboxFeed(store.db, delivered.extend)
    await feed.start()
    await feed.close()
    return feed


async def read(feed: OutboxFeed, delivered: list[OutboxEvent]) -> list[int]:
    """One read, handed to the listener as the feed's task does; the ids it delivered."""
    events = await feed.read_new()
    delivered.extend(events)
    return [e.id for e in events]


async def test_a_lower_id_committing_after_a_higher_one_is_still_delivered_exactly_once(postgres_store):
    store, writer = postgres_store, OutboxTableWriter()
    delivered: list[OutboxEvent] = []
    feed = await stepped_feed(store, delivered)
    # ALPHA's transaction takes the lower id and holds ALPHA's lock open while BETA's (another chain's
    # lock: PostgreSQL runs them in parallel) takes the next id and commits first.
    async with store.db.transaction(ALPHA) as slow:
        [low] = await writer.insert_events(slow, ALPHA, [milestone(1)], 0)
        async with store.db.transaction(BETA) as fast:
            [high] = await writer.insert_events(fast, BETA, [milestone(2)], 0)
        assert high > low
        assert await read(feed, delivered) == [high]  # the lower row is not committed yet
        assert await read(feed, delivered) == []
    # Now the lower row is committed, below the highest id the feed has read.
    assert await read(feed, delivered) == [low]
    assert await read(feed, delivered) == []
    assert sorted(e.id for e in delivered) == [low, high]
    assert {(e.chain_id, e.event) for e in delivered} == {(ALPHA, milestone(1)), (BETA, milestone(2))}
    assert feed.pending_gaps() == 0


async def test_a_gap_left_by_a_rolled_back_transaction_is_forgotten_once_no_writer_can_fill_it(postgres_store):
    store, writer = postgres_store, OutboxTableWriter()
    delivered: list[OutboxEvent] = []
    feed = await stepped_feed(store, delivered)
    with pytest.raises(RuntimeError):
        async with store.db.transaction(ALPHA) as failing:
            [lost] = await writer.insert_events(failing, ALPHA, [milestone(1)], 0)
            async with store.db.transaction(BETA) as fast:
                [high] = await writer.insert_events(fast, BETA, [milestone(2)], 0)
            assert await read(feed, delivered) == [high]
            assert feed.pending_gaps() == 1  # ``lost`` may still commit: the feed keeps looking for it
            raise RuntimeError("the block's transaction fails after writing its events")
    # The id it took is never filled: the next read sees every writer that could fill it has ended.
    assert await read(feed, delivered) == []
    assert feed.pending_gaps() == 0
    assert [e.id for e in delivered] == [high] and lost < high
    async with store.db.transaction(ALPHA) as later:
        [after] = await writer.insert_events(later, ALPHA, [milestone(3)], 0)
    assert await read(feed, delivered) == [after]


async def test_the_running_feed_woken_by_commits_delivers_rows_committed_out_of_order_once(postgres_url):
    """The bot's wiring: the outbox writer wakes the feed's own task after each commit."""
    feed_box: list[OutboxFeed] = []
    store = await Store.open(postgres_url, outbox=FeedingOutboxWriter(OutboxTableWriter(), lambda: feed_box[0].wake()))
    delivered: list[OutboxEvent] = []

    def listener(events: list[OutboxEvent]) -> None:
        delivered.extend(events)

    async def until_delivered(count: int) -> None:
        while len(delivered) < count:
            await asyncio.sleep(0.01)

    feed = OutboxFeed(store.db, listener)
    feed_box.append(feed)
    await feed.start()
    try:
        async with store.db.transaction(ALPHA) as slow:
            await store.outbox_writer.insert_events(slow, ALPHA, [milestone(1)], 0)
            async with store.db.transaction(BETA) as fast:
                await store.outbox_writer.insert_events(fast, BETA, [milestone(2)], 0)
            await asyncio.wait_for(until_delivered(1), GUARD_S)
        await asyncio.wait_for(until_delivered(2), GUARD_S)
        # A third row after both: a repeat of either would reach the listener before it.
        async with store.db.transaction(ALPHA) as tx:
            await store.outbox_writer.insert_events(tx, ALPHA, [milestone(3)], 0)
        await asyncio.wait_for(until_delivered(3), GUARD_S)
        assert [e.event for e in delivered] == [milestone(2), milestone(1), milestone(3)]
    finally:
        await feed.close()
        await store.close()


async def test_the_ids_it_looks_for_are_bounded_and_dropping_some_is_logged(postgres_store, monkeypatch, caplog):
    monkeypatch.setattr(bot.outbox_feed, "MAX_GAPS", 2)
    store, writer = postgres_store, OutboxTableWriter()
    delivered: list[OutboxEvent] = []
    feed = await stepped_feed(store, delivered)
    async with store.db.transaction(ALPHA) as slow:
        low = await writer.insert_events(slow, ALPHA, [milestone(1), milestone(2), milestone(3)], 0)
        async with store.db.transaction(BETA) as fast:
            [high] = await writer.insert_events(fast, BETA, [milestone(4)], 0)
        assert await read(feed, delivered) == [high]
        assert feed.pending_gaps() == 2 and "stopped looking" in caplog.text
    assert await read(feed, delivered) == low[1:]  # the oldest was given up
    assert feed.pending_gaps() == 0


async def test_a_lower_id_held_by_a_writer_that_began_later_is_still_delivered(postgres_store):
    """Transaction ids are taken when a writer begins, outbox ids when it inserts: the two orders can
    differ.  BETA's writer begins first (the lower transaction id), ALPHA's second, but ALPHA inserts
    first (the lower outbox id); BETA commits.  A PostgreSQL snapshot lists as running only the
    transactions numbered below the newest one that ended (its ``xmax``): ALPHA's, numbered above
    BETA's, is not in it, yet it may still commit the lower id."""
    store, writer = postgres_store, OutboxTableWriter()
    delivered: list[OutboxEvent] = []
    feed = await stepped_feed(store, delivered)
    fast_began, slow_inserted, slow_may_commit = asyncio.Event(), asyncio.Event(), asyncio.Event()
    ids: dict[str, int] = {}

    async def fast_writer() -> None:
        async with store.db.transaction(BETA) as fast:
            fast_began.set()
            await slow_inserted.wait()
            [ids["high"]] = await writer.insert_events(fast, BETA, [milestone(2)], 0)

    async def slow_writer() -> None:
        await fast_began.wait()
        async with store.db.transaction(ALPHA) as slow:
            [ids["low"]] = await writer.insert_events(slow, ALPHA, [milestone(1)], 0)
            slow_inserted.set()
            await slow_may_commit.wait()

    slow_task = asyncio.create_task(slow_writer())
    try:
        await asyncio.wait_for(fast_writer(), GUARD_S)  # BETA committed; ALPHA's transaction still open
        low, high = ids["low"], ids["high"]
        assert high > low
        assert await read(feed, delivered) == [high]
        assert feed.pending_gaps() == 1  # ``low`` may still commit: the feed must keep looking for it
    finally:
        slow_may_commit.set()
        await asyncio.wait_for(slow_task, GUARD_S)
    assert await read(feed, delivered) == [low]
    assert sorted(e.id for e in delivered) == [low, high]
    assert feed.pending_gaps() == 0


async def test_a_failed_read_is_tried_again_without_another_commit(postgres_store, monkeypatch):
    monkeypatch.setattr(bot.outbox_feed, "RETRY_FIRST_S", 0.01)
    store, writer = postgres_store, OutboxTableWriter()
    arrived = asyncio.Event()
    delivered: list[OutboxEvent] = []

    def listener(events: list[OutboxEvent]) -> None:
        delivered.extend(events)
        arrived.set()

    feed = OutboxFeed(store.db, listener)
    await feed.start()
    real = feed._outbox.committed_events
    failures = []

    async def failing_once(*args, **kwargs):
        if not failures:
            failures.append(1)
            raise ConnectionResetError("the database went away for a moment")
        return await real(*args, **kwargs)

    monkeypatch.setattr(feed._outbox, "committed_events", failing_once)
    try:
        # The row's commit wakes the feed once (as FeedingOutboxWriter does); that read fails, and no
        # other commit follows: the row must still arrive.
        async with store.db.transaction(ALPHA) as tx:
            [row] = await writer.insert_events(tx, ALPHA, [milestone(1)], 0)
        feed.wake()
        await asyncio.wait_for(arrived.wait(), GUARD_S)
    finally:
        await feed.close()
    assert failures == [1] and [e.id for e in delivered] == [row]
