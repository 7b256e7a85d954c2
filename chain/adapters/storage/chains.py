"""Chains and their rule changes: the ``chains``, ``param_changes`` and ``consensus_changes`` tables."""

from __future__ import annotations

from chain.adapters.storage.database import Database, Reader, Transaction
from chain.errors import ChainExistsError, ChainNotFoundError
from chain.params import ChainParams
from chain.pos.beacon import ConsensusConfig


class ChainRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(
        self, tx: Transaction, chain_id: int, params: ChainParams, genesis_hash: bytes, now: int,
        consensus: ConsensusConfig | None,
    ) -> None:
        """Record a new chain; refuses one that exists."""
        if await tx.fetchone("SELECT 1 FROM chains WHERE chain_id = ?", (chain_id,)) is not None:
            raise ChainExistsError(f"chain {chain_id} already exists")
        await tx.execute(
            "INSERT INTO chains (chain_id, params, genesis_hash, created_at, consensus) VALUES (?, ?, ?, ?, ?)",
            (chain_id, params.to_json(), genesis_hash, now, None if consensus is None else consensus.to_json()),
        )

    async def delete(self, tx: Transaction, chain_id: int) -> None:
        """Delete the chain row: the foreign keys take its blocks, accounts, pools, snapshots... with it."""
        await tx.execute("DELETE FROM chains WHERE chain_id = ?", (chain_id,))

    async def chain_ids(self) -> list[int]:
        rows = await self._db.fetchall("SELECT chain_id FROM chains ORDER BY chain_id")
        return [r[0] for r in rows]

    async def rules(
        self, chain_id: int, *, within: Reader | None = None
    ) -> tuple[
        ChainParams, ConsensusConfig | None, list[tuple[int, ChainParams]], ChainParams | None,
        list[tuple[int, ConsensusConfig]], ConsensusConfig | None,
    ]:
        """(params, consensus, committed param changes, proposed params, committed Merge schedules,
        proposed Merge schedule) of the chain."""
        r = within or self._db
        row = await r.fetchone("SELECT params, consensus FROM chains WHERE chain_id = ?", (chain_id,))
        if row is None:
            raise ChainNotFoundError(f"there is no chain {chain_id}")
        params = ChainParams.from_json(row[0])
        consensus = None if row[1] is None else ConsensusConfig.from_json(row[1])
        rows = await r.fetchall(
            "SELECT height, params FROM param_changes WHERE chain_id = ? ORDER BY height", (chain_id,)
        )
        changes = [(r_[0], ChainParams.from_json(r_[1])) for r_ in rows if r_[0] is not None]
        proposed = next((ChainParams.from_json(r_[1]) for r_ in rows if r_[0] is None), None)
        rows = await r.fetchall(
            "SELECT height, consensus FROM consensus_changes WHERE chain_id = ? ORDER BY height", (chain_id,)
        )
        schedules = [(r_[0], ConsensusConfig.from_json(r_[1])) for r_ in rows if r_[0] is not None]
        proposed_consensus = next((ConsensusConfig.from_json(r_[1]) for r_ in rows if r_[0] is None), None)
        return params, consensus, changes, proposed, schedules, proposed_consensus

    async def set_proposed_params(
        self, chain_id: int, params: ChainParams | None, *, tx: Transaction | None = None
    ) -> None:
        """Record (or with None, withdraw) the rules the next block will commit to."""
        async with self._db.transaction(chain_id, within=tx) as t:
            await t.execute("DELETE FROM param_changes WHERE chain_id = ? AND height IS NULL", (chain_id,))
            if params is not None:
                await t.execute(
                    "INSERT INTO param_changes (chain_id, height, params) VALUES (?, NULL, ?)",
                    (chain_id, params.to_json()),
                )

    async def set_proposed_consensus(
        self, chain_id: int, consensus: ConsensusConfig | None, *, tx: Transaction | None = None
    ) -> None:
        """Record (or with None, withdraw) the Merge schedule the next block will commit to."""
        async with self._db.transaction(chain_id, within=tx) as t:
            await t.execute("DELETE FROM consensus_changes WHERE chain_id = ? AND height IS NULL", (chain_id,))
            if consensus is not None:
                await t.execute(
                    "INSERT INTO consensus_changes (chain_id, height, consensus) VALUES (?, NULL, ?)",
                    (chain_id, consensus.to_json()),
                )

    async def commit_changes(
        self, tx: Transaction, chain_id: int, height: int,
        params: ChainParams | None, consensus: ConsensusConfig | None,
    ) -> None:
        """A block at ``height`` committed to these rules / this Merge schedule: the proposal becomes history."""
        if params is not None:
            await tx.execute("DELETE FROM param_changes WHERE chain_id = ? AND height IS NULL", (chain_id,))
            await tx.execute(
                "INSERT INTO param_changes (chain_id, height, params) VALUES (?, ?, ?)",
                (chain_id, height, params.to_json()),
            )
        if consensus is not None:
            await tx.execute("DELETE FROM consensus_changes WHERE chain_id = ? AND height IS NULL", (chain_id,))
            await tx.execute(
                "INSERT INTO consensus_changes (chain_id, height, consensus) VALUES (?, ?, ?)",
                (chain_id, height, consensus.to_json()),
            )

    async def uncommit_changes(self, tx: Transaction, chain_id: int, height: int) -> None:
        """The block at ``height`` was disconnected: the rules and Merge schedule it committed to are no
        longer history.  They do not become the proposal again (the new branch may commit others)."""
        await tx.execute("DELETE FROM param_changes WHERE chain_id = ? AND height = ?", (chain_id, height))
        await tx.execute("DELETE FROM consensus_changes WHERE chain_id = ? AND height = ?", (chain_id, height))
