"""The outbox as a live feed: each newly committed event, pushed to the dashboard as it commits.

The engine writes a block's events to the durable ``outbox`` table in the block's own transaction
(``chain.adapters.storage.outbox``); the webhook notifier delivers them to Discord.  The classroom
dashboard reads the same rows, without polling: ``FeedingOutboxWriter`` wraps the engine's outbox
writer and, once a transaction that wrote events has committed, wakes its listeners (this feed and the
notifier); a transaction that rolls back wakes nobody.  The feed then reads, in one read transaction
(so only committed rows), the rows above the highest id it has read.  Nothing is read while nothing
is written.

Ids are not commit order on PostgreSQL: writers of different chains run at once, so a transaction
holding id 5 can commit after one holding id 6 (on SQLite, one writer at a time, they always commit
in order).  A feed that only moved past the highest id would skip row 5 forever.  So each read also
notes the ids it skipped below the highest it read (gaps) and the write transactions running at that
instant (``WriteHorizon``), and every later read looks for those ids again.  A gap is forgotten once
a read sees that every write transaction running when the gap was noted has ended: only one of those
could still commit that id (later ones draw higher ids), and that read already sees what they
committed.  Most gaps fill or go at the next read; one lasts at most as long as the longest write
transaction that was running when it was seen (a rolled-back write's ids, a row deleted before the
feed read it).  Chosen over a commit-ordered channel (LISTEN/NOTIFY) because it needs no schema
change, no connection of its own to keep alive, and reads the same table the same way on both
backends.  Such late rows reach the listener in commit order, after higher ids already sent.  At
most ``MAX_GAPS`` ids are remembered: past that (never seen in practice) the lowest are dropped, with
a warning.  At start the feed begins after the newest committed row: a row of a transaction still
running then, with an id below that, counts as history (the bot starts the feed before any chain
runs).
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
# Skipped ids the feed looks for at most (see the module docstring).
MAX_GAPS = 10_000
# A read that failed (the database restarting, say) is tried again by itself after this long,
# doubling up to the cap: its rows may have been the last commit for a while, and no wake would come.
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 30.0

Listener = Callable[[list[OutboxEvent]], None]


class FeedingOutboxWriter:
    """The engine's outbox writer, calling ``on_commit`` once a transaction that wrote events committed."""

    def __init__(self, inner: OutboxWriter, on_commit: Callable[[], None]) -> None:
        self._inner = inner
        self._on_commit = on_commit

    async def insert_events(self, tx: Transaction, chain_id: int, events: Iterable[ChainEvent], now: int) -> list[int]:
        ids = await self._inner.insert_events(tx, chain_id, events, now)
        if ids:
            # After the commit, not now: a reader woken before it would not see these rows (PostgreSQL's
            # readers do not wait for writers), and nothing would wake it again.
            tx.call_after_commit(self._on_commit)
        return ids

    async def drop_undelivered(self, tx: Transaction, chain_id: int) -> None:
        await self._inner.drop_undelivered(tx, chain_id)


class OutboxFeed:
    """Reads committed outbox rows it has not read yet, when woken, and hands them to a listener."""

    def __init__(self, db: Database, listener: Listener) -> None:
        self._outbox = OutboxRepository(db)
        self._listener = listener
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._retry_s = RETRY_FIRST_S
        self._retry: asyncio.TimerHandle | None = None
        self.last_id = 0
        # Skipped ids below ``last_id`` that may still commit -> the ``next_to_start`` of the read that
        # skipped them: once every writer below that has ended, they never will.
        self._gaps: dict[int, int] = {}
        self.reads = 0  # how many times it read the table (tests check it reads only when woken)
        # The last read took a full batch above ``last_id``: there may be more.
        self.more_to_read = False

    async def start(self) -> None:
        # Events from before the start are history: the dashboard shows them from the chain itself.
        self.last_id = await self._outbox.last_id()
        self._task = asyncio.create_task(self._run(), name="outbox-feed")

    def wake(self) -> None:
        self._wake.set()

    def pending_gaps(self) -> int:
        """Ids skipped below the highest read that the feed still looks for."""
        return len(self._gaps)

    async def close(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def read_new(self) -> list[OutboxEvent]:
        """The committed rows not read yet: skipped ids that committed since, then up to
        ``FEED_BATCH_ROWS`` above ``last_id``; moves past them (module docstring)."""
        self.reads += 1
        read = await self._outbox.committed_events(self.last_id, FEED_BATCH_ROWS, sorted(self._gaps))
        horizon = read.horizon
        for event in read.found:
            del self._gaps[event.id]
        # Forgotten only now, after this read looked for them: it sees all that those writers committed.
        for gap, mark in list(self._gaps.items()):
            if horizon.all_ended_before(mark):
                del self._gaps[gap]
        self.more_to_read = len(read.after) >= FEED_BATCH_ROWS
        if read.after:
            if horizon.writers_running:
                self._note_gaps(read.after, horizon.next_to_start)
            self.last_id = read.after[-1].id
        return read.found + read.after

    def _note_gaps(self, after: list[OutboxEvent], mark: int) -> None:
        """Remember the ids between ``last_id`` and the highest of ``after`` that it does not hold."""
        top = after[-1].id
        # Only the newest MAX_GAPS ids are looked at: a range wider than that (a jump of the id
        # sequence) must not cost memory or time in proportion to it.
        low = max(self.last_id + 1, top - MAX_GAPS)
        seen = {event.id for event in after}
        for gap in range(low, top):
            if gap not in seen:
                self._gaps[gap] = mark
        excess = len(self._gaps) - MAX_GAPS
        if low > self.last_id + 1 or excess > 0:
            for gap in sorted(self._gaps)[:max(excess, 0)]:
                del self._gaps[gap]
            log.warning("the outbox feed stopped looking for some ids skipped below %d: too many at once; "
                        "a row of those that commits late is not shown on the dashboard", top)

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
                    if not self.more_to_read:
                        break
            except Exception:  # the feed must outlive one failed read, and reads again by itself
                log.exception("reading the outbox for the dashboard failed; trying again in %.0f s", self._retry_s)
                self._retry = asyncio.get_running_loop().call_later(self._retry_s, self.wake)
                self._retry_s = min(self._retry_s * 2, RETRY_MAX_S)
            else:
                self._retry_s = RETRY_FIRST_S
