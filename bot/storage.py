"""The bot's own tables: webhooks (where a server's announcements go) and the outbox's
delivery side (what is still to announce, what was delivered, pruning).

Same database and transactions as the engine's repositories (``chain.adapters.storage.Database``).
The engine writes outbox rows itself, inside the transaction of the block that caused
them (``chain.adapters.storage.outbox.OutboxWriter``); this module reads and marks them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from chain.adapters.storage import Database
from chain.events import ChainEvent, decode_event


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
