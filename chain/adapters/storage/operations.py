"""Deposits, exits, votes and slashing evidence waiting for a block: the ``op_pool`` table."""

from __future__ import annotations

from collections.abc import Sequence

from chain.adapters.storage.database import Database, Reader, Transaction
from chain.pos.op_pool import PooledOperation, deserialize_operation


class OperationRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, tx: Transaction, chain_id: int, entry: PooledOperation) -> None:
        """Pool one operation (a repeat is a no-op)."""
        await tx.execute(
            "INSERT INTO op_pool (chain_id, op_id, kind, raw, arrival) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (chain_id, op_id) DO NOTHING",
            (chain_id, entry.op_id, entry.kind, entry.serialize(), entry.arrival),
        )

    async def remove(self, chain_id: int, op_ids: Sequence[bytes], *, tx: Transaction | None = None) -> None:
        async with self._db.transaction(chain_id, within=tx) as t:
            await t.executemany(
                "DELETE FROM op_pool WHERE chain_id = ? AND op_id = ?", [(chain_id, i) for i in op_ids]
            )

    async def entries(self, chain_id: int, *, within: Reader | None = None) -> list[PooledOperation]:
        """The pooled operations, oldest arrival first."""
        rows = await (within or self._db).fetchall(
            "SELECT op_id, kind, raw, arrival FROM op_pool WHERE chain_id = ? ORDER BY arrival", (chain_id,)
        )
        return [PooledOperation(r[0], r[1], deserialize_operation(r[1], r[2]), r[3]) for r in rows]
