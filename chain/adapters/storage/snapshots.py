"""Opaque proof-of-stake state at a block, written with the block: the ``beacon_snapshots`` table."""

from __future__ import annotations

from chain.adapters.storage.database import Database, Reader, Transaction


class SnapshotRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(self, tx: Transaction, chain_id: int, height: int, blob: bytes, *, only: bool = False) -> None:
        """Store the state after block ``height``; ``only``: delete the chain's older snapshots in the
        same commit (startup reads only the newest; the others would grow the table by a state per block)."""
        if not isinstance(blob, bytes):
            raise TypeError(f"a beacon snapshot is bytes, got {type(blob).__name__}")
        if only:
            await tx.execute("DELETE FROM beacon_snapshots WHERE chain_id = ? AND height < ?", (chain_id, height))
        await tx.execute(
            "INSERT INTO beacon_snapshots (chain_id, height, blob) VALUES (?, ?, ?)", (chain_id, height, blob)
        )

    async def delete_from(self, tx: Transaction, chain_id: int, height: int) -> None:
        """Forget the snapshots of blocks ``height`` and above (they were disconnected)."""
        await tx.execute("DELETE FROM beacon_snapshots WHERE chain_id = ? AND height >= ?", (chain_id, height))

    async def delete_all(self, tx: Transaction, chain_id: int) -> None:
        await tx.execute("DELETE FROM beacon_snapshots WHERE chain_id = ?", (chain_id,))

    async def latest(self, chain_id: int, *, within: Reader | None = None) -> tuple[int, bytes] | None:
        """The newest snapshot of the chain as ``(height, blob)``, or None if it has none."""
        row = await (within or self._db).fetchone(
            "SELECT height, blob FROM beacon_snapshots WHERE chain_id = ? ORDER BY height DESC LIMIT 1", (chain_id,)
        )
        return (int(row[0]), bytes(row[1])) if row else None

    async def get(self, chain_id: int, height: int) -> bytes | None:
        row = await self._db.fetchone(
            "SELECT blob FROM beacon_snapshots WHERE chain_id = ? AND height = ?", (chain_id, height)
        )
        return bytes(row[0]) if row else None

    async def prune(self, chain_id: int, below_height: int) -> int:
        """Delete the chain's snapshots below a height (one per block adds up); returns how many."""
        async with self._db.transaction(chain_id) as tx:
            cursor = await tx.execute(
                "DELETE FROM beacon_snapshots WHERE chain_id = ? AND height < ?", (chain_id, below_height)
            )
            return int(cursor.rowcount)
