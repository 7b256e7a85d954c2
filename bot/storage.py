"""The bot's own tables: webhooks (where a server's announcements go), the outbox's
delivery side (what is still to announce, what was delivered, pruning), the server settings
that are not consensus rules (session length, cooldown), the epoch message (the one
Discord message per server that shows the running epoch) and lesson progress (/learn).

Same database and transactions as the engine's repositories (``chain.adapters.storage.Database``).
The engine writes outbox rows itself, inside the transaction of the block that caused
them (``chain.adapters.storage.outbox.OutboxWriter``); this module reads and marks them.
The ``server_settings`` row is shared with the engine, which owns its ``chaos`` key
(``chain.adapters.storage.chaos_mode``): every write here is one read-modify-write in
``Database.transaction(chain_id)`` that keeps that key as stored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from chain.adapters.storage import Database, Reader, Transaction, WriteHorizon
from chain.adapters.storage.chaos_mode import CHAOS_KEY
from chain.errors import LessonAlreadyCompletedError
from chain.events import ChainEvent, decode_event
from cogs.services import EpochMessage, LessonProgress

_PROGRESS_COLUMNS = (
    "member, lesson, started_at, start_height, completed_at, reward_txid, reward_points, start_reorg_seq"
)


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    id: int
    chain_id: int
    # The row's kind and payload, typed (chain.events.decode_event): an UnknownEvent when this
    # version cannot read them, so one odd row never stops the rows after it.
    event: ChainEvent
    created_at: int

    @property
    def kind(self) -> str:
        return self.event.kind


@dataclass(frozen=True, slots=True)
class StoredWebhook:
    chain_id: int
    channel_id: int
    webhook_id: int
    sealed_url: bytes
    disabled_reason: str | None


class Outbox(Protocol):
    async def pending_events(self, chain_id: int | None = None, limit: int = 100) -> list[OutboxEvent]: ...
    async def mark_delivered(self, event_ids: Iterable[int], now: int) -> None: ...
    async def prune_delivered_events(self, delivered_before: int, limit: int) -> int: ...
    async def all_events(self, chain_id: int) -> list[OutboxEvent]: ...
    async def backlog(self) -> dict[int, int]: ...


class Webhooks(Protocol):
    async def set(self, webhook: StoredWebhook, now: int) -> None: ...
    async def disable(self, chain_id: int, webhook_id: int, reason: str, now: int) -> None: ...
    async def all(self) -> list[StoredWebhook]: ...
    async def get(self, chain_id: int) -> StoredWebhook | None: ...


_EVENT_COLUMNS = "id, chain_id, kind, payload, created_at"
# Ids one ``IN (...)`` query names at most (SQLite allows 32766 parameters, PostgreSQL 65535).
_IDS_PER_QUERY = 500


@dataclass(frozen=True, slots=True)
class CommittedEvents:
    """One read of the outbox for the dashboard's feed (``OutboxRepository.committed_events``)."""

    horizon: WriteHorizon
    after: list[OutboxEvent]
    # Events of the ids asked for that are committed now.
    found: list[OutboxEvent]


class OutboxRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def pending_events(self, chain_id: int | None = None, limit: int = 100) -> list[OutboxEvent]:
        if chain_id is None:
            rows = await self._db.fetchall(
                f"SELECT {_EVENT_COLUMNS} FROM outbox WHERE delivered_at IS NULL ORDER BY id LIMIT ?", (limit,)
            )
        else:
            rows = await self._db.fetchall(
                f"SELECT {_EVENT_COLUMNS} FROM outbox WHERE delivered_at IS NULL AND chain_id = ? ORDER BY id LIMIT ?",
                (chain_id, limit),
            )
        return [OutboxEvent(r[0], r[1], decode_event(r[2], r[3]), r[4]) for r in rows]

    async def mark_delivered(self, event_ids: Iterable[int], now: int) -> None:
        async with self._db.transaction() as tx:
            await tx.executemany(
                "UPDATE outbox SET delivered_at = ? WHERE id = ? AND delivered_at IS NULL",
                [(now, i) for i in event_ids],
            )

    async def prune_delivered_events(self, delivered_before: int, limit: int) -> int:
        """Delete up to ``limit`` events delivered before ``delivered_before``, oldest first; how
        many went.  Undelivered events are never deleted, however old."""
        async with self._db.transaction() as tx:
            cursor = await tx.execute(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE delivered_at IS NOT NULL "
                "AND delivered_at < ? ORDER BY delivered_at LIMIT ?)",
                # A negative LIMIT means none to SQLite: one pass must stay bounded.
                (delivered_before, max(1, limit)),
            )
            return cursor.rowcount

    async def all_events(self, chain_id: int) -> list[OutboxEvent]:
        rows = await self._db.fetchall(
            f"SELECT {_EVENT_COLUMNS} FROM outbox WHERE chain_id = ? ORDER BY id", (chain_id,)
        )
        return [OutboxEvent(r[0], r[1], decode_event(r[2], r[3]), r[4]) for r in rows]

    async def last_id(self) -> int:
        row = await self._db.fetchone("SELECT COALESCE(MAX(id), 0) FROM outbox")
        return int(row[0])

    async def committed_events(self, after_id: int, limit: int, ids: Sequence[int] = ()) -> CommittedEvents:
        """For the dashboard's feed, all at one instant (one read transaction, so only committed rows):
        up to ``limit`` events above ``after_id`` oldest first, those of ``ids`` that exist (delivered
        or not, both), and the write transactions running at that instant (``WriteHorizon``)."""
        async with self._db.read_transaction() as tx:
            horizon = await tx.write_horizon()
            rows = await tx.fetchall(
                f"SELECT {_EVENT_COLUMNS} FROM outbox WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
            )
            found = []
            for start in range(0, len(ids), _IDS_PER_QUERY):
                chunk = list(ids[start:start + _IDS_PER_QUERY])
                found += await tx.fetchall(
                    f"SELECT {_EVENT_COLUMNS} FROM outbox WHERE id IN ({', '.join('?' * len(chunk))}) ORDER BY id",
                    chunk,
                )

        def decoded(rows: list[Any]) -> list[OutboxEvent]:
            return [OutboxEvent(r[0], r[1], decode_event(r[2], r[3]), r[4]) for r in rows]

        return CommittedEvents(horizon, decoded(rows), decoded(found))

    async def backlog(self) -> dict[int, int]:
        """Undelivered events per chain."""
        rows = await self._db.fetchall(
            "SELECT chain_id, COUNT(*) FROM outbox WHERE delivered_at IS NULL GROUP BY chain_id"
        )
        return {r[0]: r[1] for r in rows}


_WEBHOOK_COLUMNS = "chain_id, channel_id, webhook_id, sealed_url, disabled_reason"


class WebhookRepository:
    """One webhook per server; the URL is a secret, so it is stored sealed."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def set(self, webhook: StoredWebhook, now: int) -> None:
        async with self._db.transaction(webhook.chain_id) as tx:
            await tx.execute(
                "INSERT INTO webhooks (chain_id, channel_id, webhook_id, sealed_url, disabled_reason, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (chain_id) DO UPDATE SET channel_id = excluded.channel_id, "
                "webhook_id = excluded.webhook_id, sealed_url = excluded.sealed_url, "
                "disabled_reason = excluded.disabled_reason, updated_at = excluded.updated_at",
                (webhook.chain_id, webhook.channel_id, webhook.webhook_id, webhook.sealed_url,
                 webhook.disabled_reason, now),
            )

    async def disable(self, chain_id: int, webhook_id: int, reason: str, now: int) -> None:
        async with self._db.transaction(chain_id) as tx:
            await tx.execute(
                "UPDATE webhooks SET disabled_reason = ?, updated_at = ? WHERE chain_id = ? AND webhook_id = ?",
                (reason, now, chain_id, webhook_id),
            )

    async def all(self) -> list[StoredWebhook]:
        rows = await self._db.fetchall(f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks ORDER BY chain_id")
        return [StoredWebhook(*r) for r in rows]

    async def get(self, chain_id: int) -> StoredWebhook | None:
        row = await self._db.fetchone(f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks WHERE chain_id = ?", (chain_id,))
        return StoredWebhook(*row) if row else None


class ServerSettingsRepository:
    """A server's settings that are not consensus rules: every key of its ``server_settings`` row but
    the engine's ``chaos`` (read and written by ``chain.adapters.storage.chaos_mode`` only)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @staticmethod
    async def _row(reader: Reader, chain_id: int) -> dict[str, Any]:
        row = await reader.fetchone("SELECT settings FROM server_settings WHERE chain_id = ?", (chain_id,))
        return json.loads(row[0]) if row else {}

    async def get(self, chain_id: int) -> dict[str, Any]:
        return {k: v for k, v in (await self._row(self._db, chain_id)).items() if k != CHAOS_KEY}

    async def update(self, chain_id: int, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Merge ``changes`` into the stored settings (read and write: one transaction); the result."""
        return await self._write(chain_id, changes, keep_others=True)

    async def replace(self, chain_id: int, settings: Mapping[str, Any]) -> None:
        """Store exactly ``settings`` (tests and benchmarks set a server up with it); chaos mode stays."""
        await self._write(chain_id, settings, keep_others=False)

    async def _write(self, chain_id: int, changes: Mapping[str, Any], *, keep_others: bool) -> dict[str, Any]:
        if CHAOS_KEY in changes:
            raise ValueError(f"{CHAOS_KEY!r} is chaos mode, the engine's: set it with Playground.set_chaos_mode")
        async with self._db.transaction(chain_id) as tx:
            stored = await self._row(tx, chain_id)
            kept = stored if keep_others else {k: v for k, v in stored.items() if k == CHAOS_KEY}
            row = {**kept, **changes}
            await tx.execute(
                "INSERT INTO server_settings (chain_id, settings) VALUES (?, ?) "
                "ON CONFLICT (chain_id) DO UPDATE SET settings = excluded.settings",
                (chain_id, json.dumps(row, sort_keys=True)),
            )
        return {k: v for k, v in row.items() if k != CHAOS_KEY}


class EpochMessageRepository:
    """The one message per server that shows the running epoch.  Its row goes with the chain
    (``ON DELETE CASCADE``): a new chain's first slot posts a new message."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get_epoch_message(self, chain_id: int) -> EpochMessage | None:
        """The message showing the chain's running epoch, as the epoch board last recorded it."""
        row = await self._db.fetchone(
            "SELECT channel_id, message_id, epoch FROM epoch_messages WHERE chain_id = ?", (chain_id,)
        )
        return None if row is None else EpochMessage(chain_id, row[0], row[1], row[2])

    async def set_epoch_message(self, message: EpochMessage, now: int) -> None:
        """Record (replacing any other) the message that shows the chain's running epoch."""
        async with self._db.transaction(message.chain_id) as tx:
            await tx.execute(
                "INSERT INTO epoch_messages (chain_id, channel_id, message_id, epoch, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (chain_id) DO UPDATE SET channel_id = excluded.channel_id, "
                "message_id = excluded.message_id, epoch = excluded.epoch, updated_at = excluded.updated_at",
                (message.chain_id, message.channel_id, message.message_id, message.epoch, now),
            )


class LessonProgressRepository:
    """Who started and completed which lesson on a chain (``lesson_progress``, migration 14): the
    bot's teaching record for /learn, not a consensus fact. Its rows go with the chain (``ON DELETE
    CASCADE``): a reset starts everyone's lessons over, as the new chain's state is what they check."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def start(
        self, chain_id: int, member: str, lesson: str, now: int, height: int, reorg_seq: int = 0
    ) -> LessonProgress:
        """Record that ``member`` started ``lesson`` with the tip at ``height`` and the chain's reorg log
        at ``reorg_seq`` (a second start keeps the first: a lesson's watch window never shrinks); the
        row as stored."""
        async with self._db.transaction(chain_id) as tx:
            await tx.execute(
                "INSERT INTO lesson_progress (chain_id, member, lesson, started_at, start_height, start_reorg_seq) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (chain_id, member, lesson) DO NOTHING",
                (chain_id, member, lesson, now, height, reorg_seq),
            )
            row = await tx.fetchone(
                f"SELECT {_PROGRESS_COLUMNS} FROM lesson_progress WHERE chain_id = ? AND member = ? AND lesson = ?",
                (chain_id, member, lesson),
            )
        assert row is not None
        return LessonProgress(*row)

    async def member_progress(self, chain_id: int, member: str) -> dict[str, LessonProgress]:
        rows = await self._db.fetchall(
            f"SELECT {_PROGRESS_COLUMNS} FROM lesson_progress WHERE chain_id = ? AND member = ?", (chain_id, member)
        )
        return {r[1]: LessonProgress(*r) for r in rows}

    async def complete(
        self, within: Transaction, chain_id: int, member: str, lesson: str, now: int, start_height: int,
        reward_txid: bytes | None, reward_points: int,
    ) -> None:
        """Mark the lesson completed, inside the caller's transaction (the one that pools the reward).

        Raises ``LessonAlreadyCompletedError`` if it was completed before: the caller's transaction
        then rolls back, so the reward is not pooled either. The read and the write are one
        transaction (``BEGIN IMMEDIATE``, one writer): two checks at the same moment complete it once."""
        row = await within.fetchone(
            "SELECT completed_at FROM lesson_progress WHERE chain_id = ? AND member = ? AND lesson = ?",
            (chain_id, member, lesson),
        )
        if row is not None and row[0] is not None:
            raise LessonAlreadyCompletedError(lesson, int(row[0]))
        await within.execute(
            "INSERT INTO lesson_progress (chain_id, member, lesson, started_at, start_height, completed_at, "
            "reward_txid, reward_points) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (chain_id, member, lesson) "
            "DO UPDATE SET completed_at = excluded.completed_at, reward_txid = excluded.reward_txid, "
            "reward_points = excluded.reward_points",
            (chain_id, member, lesson, now, start_height, now, reward_txid, reward_points),
        )

    async def class_progress(self, chain_id: int, limit: int, offset: int) -> tuple[int, list[LessonProgress]]:
        """(members with any progress, every row of the ``limit`` members from ``offset``, by member id)."""
        count_row = await self._db.fetchone(
            "SELECT COUNT(DISTINCT member) FROM lesson_progress WHERE chain_id = ?", (chain_id,)
        )
        rows = await self._db.fetchall(
            f"SELECT {_PROGRESS_COLUMNS} FROM lesson_progress WHERE chain_id = ? AND member IN "
            "(SELECT DISTINCT member FROM lesson_progress WHERE chain_id = ? ORDER BY member LIMIT ? OFFSET ?) "
            "ORDER BY member, lesson",
            (chain_id, chain_id, limit, offset),
        )
        return (int(count_row[0]) if count_row else 0), [LessonProgress(*r) for r in rows]


class DashboardLinkRepository:
    """Each server's dashboard link generation (``dashboard_links``, migration 17): a link made in an
    older generation than the server's current one is revoked."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def generation(self, chain_id: int) -> int:
        row = await self._db.fetchone("SELECT generation FROM dashboard_links WHERE chain_id = ?", (chain_id,))
        return int(row[0]) if row else 0

    async def revoke(self, chain_id: int, now: int) -> int:
        """Revoke every link made so far for this server: bump its generation (read and write in one
        statement of one transaction, so two revocations at once bump it twice); the new generation."""
        async with self._db.transaction(chain_id) as tx:
            row = await tx.fetchone(
                "INSERT INTO dashboard_links (chain_id, generation, updated_at) VALUES (?, 1, ?) "
                "ON CONFLICT (chain_id) DO UPDATE SET generation = generation + 1, updated_at = excluded.updated_at "
                "RETURNING generation",
                (chain_id, now),
            )
        return int(row[0])
