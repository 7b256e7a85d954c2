"""The chain's side of the outbox: writing a block's events in the block's own transaction.

The ``outbox`` table is the bot's (``bot/storage.py`` reads, marks and prunes it for
delivery), but an event must commit with the block that caused it or not at all, so the
engine writes it through ``OutboxWriter`` inside its transaction.  The chain never reads
the outbox back.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from chain.adapters.storage.database import Transaction
from chain.events import ChainEvent


class OutboxWriter(Protocol):
    async def insert_events(self, tx: Transaction, chain_id: int, events: Iterable[ChainEvent], now: int) -> list[int]:
        """Queue the events for delivery within ``tx``; their outbox ids."""
        ...

    async def drop_undelivered(self, tx: Transaction, chain_id: int) -> None:
        """Forget the chain's events not delivered yet (its blocks are gone)."""
        ...


class OutboxTableWriter:
    """The ``outbox`` table of either backend: ``RETURNING id`` (SQLite 3.35+, PostgreSQL) names each new row."""

    async def insert_events(self, tx: Transaction, chain_id: int, events: Iterable[ChainEvent], now: int) -> list[int]:
        ids = []
        for event in events:
            row = await tx.fetchone(
                "INSERT INTO outbox (chain_id, kind, payload, created_at) VALUES (?, ?, ?, ?) RETURNING id",
                (chain_id, event.kind, event.payload_json(), now),
            )
            ids.append(int(row[0]))
        return ids

    async def drop_undelivered(self, tx: Transaction, chain_id: int) -> None:
        await tx.execute("DELETE FROM outbox WHERE chain_id = ? AND delivered_at IS NULL", (chain_id,))
