"""Per-validator toggles that are not consensus rules: the ``validator_settings`` table."""

from __future__ import annotations

from collections.abc import Sequence

from chain.adapters.storage.database import Database, Transaction


class ValidatorSettingsRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get_auto_attest(self, chain_id: int, owner: str) -> bool | None:
        """The validator's auto-attest toggle, or None if it never set one."""
        row = await self._db.fetchone(
            "SELECT auto_attest FROM validator_settings WHERE chain_id = ? AND owner = ?", (chain_id, owner)
        )
        return None if row is None else bool(row[0])

    async def set_auto_attest(self, chain_id: int, owner: str, auto_attest: bool) -> None:
        async with self._db.transaction(chain_id) as tx:
            await tx.execute(
                "INSERT INTO validator_settings (chain_id, owner, auto_attest) VALUES (?, ?, ?) "
                "ON CONFLICT (chain_id, owner) DO UPDATE SET auto_attest = excluded.auto_attest",
                (chain_id, owner, int(bool(auto_attest))),
            )

    async def insert_auto_attesters(self, tx: Transaction, chain_id: int, owners: Sequence[str]) -> None:
        """Turn auto-attest on for owners who have no setting on this chain yet."""
        await tx.executemany(
            "INSERT INTO validator_settings (chain_id, owner, auto_attest) VALUES (?, ?, 1)",
            [(chain_id, owner) for owner in owners],
        )

    async def auto_attesters(self, chain_id: int) -> list[str]:
        """Owners on this chain who turned auto-attest on."""
        rows = await self._db.fetchall(
            "SELECT owner FROM validator_settings WHERE chain_id = ? AND auto_attest = 1 ORDER BY owner", (chain_id,)
        )
        return [r[0] for r in rows]

    async def delete_all(self, tx: Transaction, chain_id: int) -> None:
        await tx.execute("DELETE FROM validator_settings WHERE chain_id = ?", (chain_id,))
