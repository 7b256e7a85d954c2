"""Work counters for the energy comparison: the ``energy`` table."""

from __future__ import annotations

from chain.adapters.storage.database import Database, Transaction
from chain.adapters.storage.records import EnergyCounters
from chain.errors import EnergyError


class EnergyRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self, chain_id: int, *, pow_cpu_ns: int = 0, pos_sign_ops: int = 0, pos_verify_ops: int = 0,
        tx: Transaction | None = None,
    ) -> None:
        """Add to the chain's counters (they only grow until the chain is deleted)."""
        counts = (("pow_cpu_ns", pow_cpu_ns), ("pos_sign_ops", pos_sign_ops), ("pos_verify_ops", pos_verify_ops))
        for name, value in counts:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise EnergyError(f"{name} must be a whole number of at least 0, got {value!r}")
        async with self._db.transaction(chain_id, within=tx) as t:
            await t.execute(
                "INSERT INTO energy (chain_id, pow_cpu_ns, pos_sign_ops, pos_verify_ops) VALUES (?, ?, ?, ?) "
                # Table-qualified: PostgreSQL finds a bare column name ambiguous next to excluded's.
                "ON CONFLICT (chain_id) DO UPDATE SET pow_cpu_ns = energy.pow_cpu_ns + excluded.pow_cpu_ns, "
                "pos_sign_ops = energy.pos_sign_ops + excluded.pos_sign_ops, "
                "pos_verify_ops = energy.pos_verify_ops + excluded.pos_verify_ops",
                (chain_id, pow_cpu_ns, pos_sign_ops, pos_verify_ops),
            )

    async def counters(self, chain_id: int) -> EnergyCounters:
        row = await self._db.fetchone(
            "SELECT pow_cpu_ns, pos_sign_ops, pos_verify_ops FROM energy WHERE chain_id = ?", (chain_id,)
        )
        return EnergyCounters(*row) if row else EnergyCounters()

    async def delete(self, tx: Transaction, chain_id: int) -> None:
        await tx.execute("DELETE FROM energy WHERE chain_id = ?", (chain_id,))
