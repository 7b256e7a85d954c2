"""The chain's log of reorgs and of heavier branches finality refused: the ``reorg_log`` tables.

Written by ``Store.reorganize`` and ``Store.store_side_block`` inside their own transactions, so a
logged reorg is exactly one that happened (a failed switch logs nothing). Read by /learn's reorg
lessons (``Playground.complete_lesson``): the log is how they know a reorg really happened after a
member started, and whether one of the member's blocks was in it.
"""

from __future__ import annotations

from chain.adapters.storage.database import Database, Reader, Transaction
from chain.adapters.storage.records import ReorgKind, ReorgRecord


class ReorgLogRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, tx: Transaction, chain_id: int, record: ReorgRecord, now: int) -> int:
        """Log ``record`` within ``tx`` (the reorg's or the side block's); its seq on the chain."""
        row = await tx.fetchone("SELECT COALESCE(MAX(seq), 0) FROM reorg_log WHERE chain_id = ?", (chain_id,))
        seq = int(row[0]) + 1
        await tx.execute(
            "INSERT INTO reorg_log (chain_id, seq, kind, height, depth, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (chain_id, seq, record.kind, record.height, record.depth, now),
        )
        rows = [(chain_id, seq, miner, "orphaned") for miner in sorted(record.orphaned)]
        rows += [(chain_id, seq, miner, "branch") for miner in sorted(record.branch)]
        await tx.executemany(
            "INSERT INTO reorg_log_miners (chain_id, seq, miner, role) VALUES (?, ?, ?, ?)", rows
        )
        return seq

    async def last_seq(self, chain_id: int, *, within: Reader | None = None) -> int:
        """The seq of the chain's newest logged record (0: none yet)."""
        reader = within or self._db
        row = await reader.fetchone("SELECT COALESCE(MAX(seq), 0) FROM reorg_log WHERE chain_id = ?", (chain_id,))
        return int(row[0])

    async def since(self, chain_id: int, after_seq: int, limit: int) -> list[ReorgRecord]:
        """The chain's records after ``after_seq``, oldest first, at most ``limit`` of them."""
        rows = await self._db.fetchall(
            "SELECT seq, kind, height, depth FROM reorg_log WHERE chain_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (chain_id, after_seq, limit),
        )
        if not rows:
            return []
        miners = await self._db.fetchall(
            "SELECT seq, miner, role FROM reorg_log_miners WHERE chain_id = ? AND seq BETWEEN ? AND ?",
            (chain_id, rows[0][0], rows[-1][0]),
        )
        by_seq: dict[int, dict[str, set[bytes]]] = {}
        for seq, miner, role in miners:
            by_seq.setdefault(int(seq), {}).setdefault(str(role), set()).add(bytes(miner))
        records = []
        for seq, kind, height, depth in rows:
            roles = by_seq.get(int(seq), {})
            chosen: ReorgKind = "reorg" if kind == "reorg" else "refused"
            records.append(ReorgRecord(
                chosen, int(height), int(depth), frozenset(roles.get("orphaned", ())),
                frozenset(roles.get("branch", ())), int(seq),
            ))
        return records
