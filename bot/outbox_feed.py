"""The outbox as a live feed: each newly committed event, pushed to the dashboard as it commits.

The engine writes a block's events to the durable ``outbox`` table in the block's own transaction
(``chain.adapters.storage.outbox``); the webhook notifier delivers them to Discord.  The classroom
dashboard reads the same rows, without polling: ``FeedingOutboxWriter`` wraps the engine's outbox
writer and wakes the feed whenever a transaction wrote events, and the feed then reads the rows
above the last id it read.  It reads under the database's write lock (a read transaction), which
the writing transaction holds until it commits or rolls back: the feed can only ever see committed
rows, never an event of a block that was rolled back.  Nothing is read while nothing is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable

from bot.storage import OutboxEvent, OutboxRepository
from chain.adapters.storage import Database, Transaction
from chain.adapters.storage.outbox import OutboxWriter
from chain.events import ChainEvent

log = logging.getLogger(__name__)

# Rows one read takes at most; a longer backlog (a restart under load) is read in several.
FEED_BATCH_ROWS = 200

Listener = Callable[[list[OutboxEvent]], None]


class FeedingOutboxWriter:
    """The engine's outbox writer, waking ``on_insert`` whenever a transaction wrote events."""

    def __init__(self, inner: OutboxWriter, on_insert: Callable[[], None]) -> None:
        self._inner = inner
        self._on_insert = on_insert

    async def insert_events(self, tx: Transaction, chain_id: int, events: Iterable[ChainEvent], now: int) -> list[int]:
        ids = await self._inner.insert_events(tx, chain_id, events, now)
        if ids:
            # Not committed yet: the feed's read waits for the write lock this transaction holds.
            self._on_insert()
        return ids

    async def drop_undelivered(self, tx: Transaction, chain_id: int) -> None:
        await self._inner.drop_undelivered(tx, chain_id)


class OutboxFeed:
    """Reads committed outbox rows above the last one read, when woken, and hands them to a listener."""

    def __init__(self, db: Database, listener: Listener) -> None:
        self._outbox = OutboxRepository(db)
        self._listener = listener
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.last_id = 0
        self.reads = 0  # how many times it read the table (tests check it reads only when woken)

    async def start(self) -> None:
        # Events from before the start are history: the dashboard shows them from the chain itself.
        self.last_id = await self._outbox.last_id()
        self._task = asyncio.create_task(self._run(), name="outbox-feed")

    def wake(self) -> None:
        self._wake.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def read_new(self) -> list[OutboxEvent]:
        """The committed rows above ``last_id`` (up to ``FEED_BATCH_ROWS``), and move past them."""
        self.reads += 1
        events = await self._outbox.committed_events_after(self.last_id, FEED_BATCH_ROWS)
        if events:
            self.last_id = events[-1].id
        return events

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            # Cleared before the read: a wake during it triggers another.
            self._wake.clear()
            try:
                while True:
                    events = await self.read_new()
                    if events:
                        self._listener(events)
                    if len(events) < FEED_BATCH_ROWS:
                        break
            except Exception:  # the feed must outlive one failed read; the next wake reads again
                log.exception("reading the outbox for the dashboard failed")
