"""Pooled transfers and faucet claims: the ``mempool`` and ``faucet_claims`` tables."""

from __future__ import annotations

from collections.abc import Iterable

from chain.adapters.storage.database import Database, Reader, Transaction
from chain.ledger.mempool import Admission, PendingTransfer
from chain.ledger.transaction import deserialize_transfer


class MempoolRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def admit(
        self, chain_id: int, admission: Admission, *, faucet_claim: tuple[str, int] | None = None,
        tx: Transaction | None = None,
    ) -> None:
        """Pool a transfer (dropping what it replaced or evicted); with ``faucet_claim`` (owner, time)
        it is that member's faucet payout, and the claim is recorded in the same transaction."""
        async with self._db.transaction(chain_id, within=tx) as t:
            if faucet_claim is not None:
                await t.execute(
                    "INSERT INTO faucet_claims (chain_id, owner, claimed_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (chain_id, owner) DO UPDATE SET claimed_at = excluded.claimed_at",
                    (chain_id, *faucet_claim),
                )
            gone = [e for e in (admission.replaced, *admission.evicted) if e is not None]
            await t.executemany(
                "DELETE FROM mempool WHERE chain_id = ? AND txid = ?", [(chain_id, e.txid) for e in gone]
            )
            entry = admission.entry
            await t.execute(
                "INSERT INTO mempool (chain_id, txid, arrival, raw) VALUES (?, ?, ?, ?)",
                (chain_id, entry.txid, entry.arrival, entry.tx.serialize()),
            )

    async def restore(self, tx: Transaction, chain_id: int, entries: Iterable[PendingTransfer]) -> None:
        """Pool transfers a reorg returned (a transfer already pooled stays as it is)."""
        await tx.executemany(
            "INSERT INTO mempool (chain_id, txid, arrival, raw) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (chain_id, txid) DO NOTHING",
            [(chain_id, e.txid, e.arrival, e.tx.serialize()) for e in entries],
        )

    async def remove(self, chain_id: int, txids: Iterable[bytes], *, tx: Transaction | None = None) -> None:
        async with self._db.transaction(chain_id, within=tx) as t:
            await t.executemany("DELETE FROM mempool WHERE chain_id = ? AND txid = ?", [(chain_id, x) for x in txids])

    async def entries(self, chain_id: int, *, within: Reader | None = None) -> list[PendingTransfer]:
        """The pooled transfers, oldest arrival first."""
        rows = await (within or self._db).fetchall(
            "SELECT txid, arrival, raw FROM mempool WHERE chain_id = ? ORDER BY arrival", (chain_id,)
        )
        return [PendingTransfer(deserialize_transfer(r[2])[0], r[0], r[1]) for r in rows]

    async def faucet_claimed_at(self, chain_id: int, owner: str) -> int | None:
        """When ``owner`` last claimed from this chain's faucet, or None."""
        row = await self._db.fetchone(
            "SELECT claimed_at FROM faucet_claims WHERE chain_id = ? AND owner = ?", (chain_id, owner)
        )
        return None if row is None else int(row[0])
