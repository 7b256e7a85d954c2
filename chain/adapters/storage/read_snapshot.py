"""Consistent reads of one chain off the event loop: a read-only connection of its own."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Protocol

from chain.consensus.block import Block
from chain.consensus.export import OrphanRows
from chain.consensus.verify import OrphanListing, Orphans
from chain.errors import BlockNotFoundError, ChainNotFoundError
from chain.ledger.accounts import Account
from chain.params import ChainParams
from chain.pos.beacon import ConsensusConfig

# Rows a snapshot reads at once (see ``ChainSnapshot.raw_blocks``): a few hundred KB at most.
READ_BATCH_ROWS = 256
HANDOFF_S = 0.0002


class SnapshotCursor(Protocol):
    """The part of a DB-API cursor a snapshot reads through (``sqlite3.Cursor`` is one)."""

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def fetchmany(self, size: int, /) -> list[Any]: ...


class SnapshotConnection(Protocol):
    """A blocking connection inside one read transaction: ``sqlite3.Connection``, or PostgreSQL's
    adapter (``chain/adapters/storage/postgres.py``), which takes the same ``?`` SQL."""

    def execute(self, sql: str, parameters: Any = (), /) -> SnapshotCursor: ...


class ChainSnapshot:
    """One chain as it was at one instant, read through a read-only connection of its own.

    Made by ``Database.read_snapshot`` in the thread that reads it (a worker thread:
    every method blocks).  Everything it returns comes from a single read
    transaction, which in WAL mode neither waits for the store's writers nor
    makes them wait: blocks appended meanwhile are simply not in it.
    """

    def __init__(self, db: SnapshotConnection, chain_id: int) -> None:
        self._db = db
        self.chain_id = chain_id
        # The transaction's first read fixes the instant every later read sees.
        row = db.execute("SELECT params, consensus FROM chains WHERE chain_id = ?", (chain_id,)).fetchone()
        if row is None:
            raise ChainNotFoundError(f"there is no chain {chain_id}")
        self.params = ChainParams.from_json(row[0])
        self.consensus = None if row[1] is None else ConsensusConfig.from_json(row[1])
        self.height = int(db.execute("SELECT MAX(height) FROM blocks WHERE chain_id = ?", (chain_id,)).fetchone()[0])
        rows = db.execute(
            "SELECT height, params FROM param_changes WHERE chain_id = ? AND height IS NOT NULL ORDER BY height",
            (chain_id,),
        ).fetchall()
        self.param_changes = [(int(r[0]), ChainParams.from_json(r[1])) for r in rows]
        rows = db.execute(
            "SELECT height, consensus FROM consensus_changes WHERE chain_id = ? AND height IS NOT NULL "
            "ORDER BY height",
            (chain_id,),
        ).fetchall()
        self.consensus_changes = [(int(r[0]), ConsensusConfig.from_json(r[1])) for r in rows]

    def accounts(self) -> dict[bytes, Account]:
        rows = self._db.execute(
            "SELECT pubkey, balance, nonce FROM accounts WHERE chain_id = ?", (self.chain_id,)
        ).fetchall()
        return {r[0]: Account(r[1], r[2]) for r in rows}

    def raw_blocks(self) -> Iterator[bytes]:
        """Every block's stored bytes from genesis, a batch of rows at a time (never the whole chain)."""
        cursor = self._db.execute(
            "SELECT raw FROM blocks WHERE chain_id = ? AND height <= ? ORDER BY height", (self.chain_id, self.height)
        )
        for (raw,) in self._batches(cursor):
            yield raw

    def _batches(self, cursor: SnapshotCursor) -> Iterator[Any]:
        """The cursor's rows, fetched a batch at a time (see below)."""
        # In batches, not row by row: sqlite3 lets go of the GIL around every row it steps, and a
        # thread that lets go and takes it back that often keeps the event loop's thread from ever
        # forcing its turn (measured: 30-150 ms stalls). Batched, the loop gets the GIL back within
        # Python's switch interval while the rows are processed.
        while batch := cursor.fetchmany(READ_BATCH_ROWS):
            # A real pause (not sleep(0), which lets go and takes back at once) hands the GIL to
            # a waiting event loop for certain: fetching the batch may have kept it waiting.
            time.sleep(HANDOFF_S)
            yield from batch

    def blocks(self) -> Iterator[Block]:
        return (Block.deserialize(raw) for raw in self.raw_blocks())

    def blocks_from(self, start: int) -> Iterator[Block]:
        """The main chain's blocks from height ``start`` to the snapshot's tip, a batch of rows at a time."""
        cursor = self._db.execute(
            "SELECT raw FROM blocks WHERE chain_id = ? AND height >= ? AND height <= ? ORDER BY height",
            (self.chain_id, start, self.height),
        )
        for (raw,) in self._batches(cursor):
            yield Block.deserialize(bytes(raw))

    def block_hash(self, height: int) -> bytes | None:
        """The main chain's block hash at ``height``, None above the tip."""
        row = self._db.execute(
            "SELECT hash FROM blocks WHERE chain_id = ? AND height = ? AND height <= ?",
            (self.chain_id, height, self.height),
        ).fetchone()
        return None if row is None else bytes(row[0])

    def raw_block(self, height: int) -> bytes:
        row = self._db.execute(
            "SELECT raw FROM blocks WHERE chain_id = ? AND height = ?", (self.chain_id, height)
        ).fetchone()
        if row is None:
            raise BlockNotFoundError(f"chain {self.chain_id} has no block {height}")
        return bytes(row[0])

    def raw_size(self) -> int:
        """Bytes of every stored block together (SQLite knows a blob's length without reading it)."""
        row = self._db.execute(
            "SELECT COALESCE(SUM(length(raw)), 0) FROM blocks WHERE chain_id = ? AND height <= ?",
            (self.chain_id, self.height),
        ).fetchone()
        return int(row[0])

    # --- the tree's blocks off the main chain (orphans) ----------------------------------
    # Side rows carry their bytes (``raw IS NOT NULL``); migration 15 indexes exactly those, by height.
    _ORPHANS = "FROM block_tree WHERE chain_id = ? AND raw IS NOT NULL"

    def orphan_listings(self) -> list[OrphanListing]:
        """Every orphan's hash, parent and height, by height then first seen (no block bytes)."""
        rows = self._db.execute(
            f"SELECT hash, parent_hash, height {self._ORPHANS} ORDER BY height, sequence", (self.chain_id,)
        ).fetchall()
        return [OrphanListing(bytes(r[0]), bytes(r[1]), int(r[2])) for r in rows]

    def orphan_blocks(self) -> Iterator[Block]:
        """The orphans' blocks in ``orphan_listings``' order, a batch of rows at a time."""
        cursor = self._db.execute(f"SELECT raw {self._ORPHANS} ORDER BY height, sequence", (self.chain_id,))
        for (raw,) in self._batches(cursor):
            yield Block.deserialize(bytes(raw))

    def orphans(self) -> Orphans:
        """What ``verify_chain`` checks besides the main chain: listed now, streamed during the replay."""
        return Orphans(self.orphan_listings(), self.orphan_blocks)

    def orphan_rows(self) -> OrphanRows:
        """The orphans an export streams, sized first: (height, parent hash, bytes) by height."""
        count, raw_size, digits = self._db.execute(
            f"SELECT COUNT(*), COALESCE(SUM(length(raw)), 0), COALESCE(SUM(length(CAST(height AS TEXT))), 0) "
            f"{self._ORPHANS}",
            (self.chain_id,),
        ).fetchone()
        cursor = self._db.execute(
            f"SELECT height, parent_hash, raw {self._ORPHANS} ORDER BY height, sequence", (self.chain_id,)
        )
        rows = ((int(h), bytes(p), bytes(r)) for h, p, r in self._batches(cursor))
        return OrphanRows(int(count), int(raw_size), int(digits), rows)
