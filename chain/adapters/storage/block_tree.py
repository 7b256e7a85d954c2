"""Every valid block, not only the main line: the ``block_tree`` table (issue 11, item 1).

One row per block of a chain's tree: its parent, height, own and cumulative work, the order it was
first seen and its undo record.  ``blocks`` stays the main chain (every reader of it is unchanged);
a tree row's ``raw`` is NULL while the block is on the main chain (its ``blocks`` row holds the
bytes) and holds the block while it is off it, so a block is stored once either way.  Moving a block
between the two is the store's reorg transaction (``Store.reorganize``); this repository only
reads and writes the tree's rows.
"""

from __future__ import annotations

from chain.adapters.storage.database import Database, Reader, Transaction
from chain.adapters.storage.migrations import compute_stored_block_work, decode_work, encode_work
from chain.adapters.storage.records import StoredTreeEntry
from chain.consensus.block import Block
from chain.consensus.undo import BlockUndo
from chain.errors import BlockNotFoundError, DuplicateBlockError, SideBlockUndoError, UnknownParentError
from chain.hashing import hash_to_display


def _short(block_hash: bytes) -> str:
    return hash_to_display(block_hash)[:16]


def _block_work(block: Block) -> int:
    # The same rule as migration 13's back-fill, so back-filled and new rows agree.
    return compute_stored_block_work(block.header.bits)


class BlockTreeRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- writes -------------------------------------------------------------------

    async def insert_genesis(self, tx: Transaction, chain_id: int, genesis: Block) -> None:
        work = encode_work(_block_work(genesis))
        await tx.execute(
            "INSERT INTO block_tree (chain_id, hash, parent_hash, height, work, chain_work, sequence) "
            "VALUES (?, ?, ?, 0, ?, ?, 0)",
            (chain_id, genesis.hash(), genesis.header.prev_hash, work, work),
        )

    async def insert_main(self, tx: Transaction, chain_id: int, block: Block, height: int, undo: BlockUndo) -> None:
        """``block`` joins the main chain (its ``blocks`` row is written beside): a new tree row, or a
        side block's row that now points at the main chain (its bytes move to ``blocks``)."""
        block_hash = block.hash()
        row = await tx.fetchone(
            "SELECT raw IS NULL FROM block_tree WHERE chain_id = ? AND hash = ?", (chain_id, block_hash)
        )
        if row is None:
            await self._insert(tx, chain_id, block, height, raw=None, undo=undo)
            return
        if row[0]:
            raise DuplicateBlockError(f"block {_short(block_hash)} is already on the main chain of chain {chain_id}")
        await tx.execute(
            "UPDATE block_tree SET raw = NULL, undo = ? WHERE chain_id = ? AND hash = ?",
            (undo.serialize(), chain_id, block_hash),
        )

    async def insert_side(self, tx: Transaction, chain_id: int, block: Block, undo: BlockUndo) -> StoredTreeEntry:
        """Store a block off the main chain with the record that takes it back; the main chain is untouched."""
        block_hash = block.hash()
        if undo.block_hash != block_hash or undo.parent_hash != block.header.prev_hash:
            raise SideBlockUndoError(
                f"the undo record is block {_short(undo.block_hash)}'s on {_short(undo.parent_hash)}, "
                f"not block {_short(block_hash)}'s on {_short(block.header.prev_hash)}"
            )
        row = await tx.fetchone("SELECT 1 FROM block_tree WHERE chain_id = ? AND hash = ?", (chain_id, block_hash))
        if row is not None:
            raise DuplicateBlockError(f"block {_short(block_hash)} is already stored in chain {chain_id}'s tree")
        return await self._insert(tx, chain_id, block, undo.height, raw=block.serialize(), undo=undo)

    async def _insert(
        self, tx: Transaction, chain_id: int, block: Block, height: int, *, raw: bytes | None, undo: BlockUndo
    ) -> StoredTreeEntry:
        parent_hash = block.header.prev_hash
        parent = await tx.fetchone(
            "SELECT height, chain_work FROM block_tree WHERE chain_id = ? AND hash = ?", (chain_id, parent_hash)
        )
        if parent is None:
            raise UnknownParentError(
                f"block {_short(block.hash())} builds on {_short(parent_hash)}, which chain {chain_id} has not stored",
                parent_hash=parent_hash,
            )
        if height != parent[0] + 1:
            raise SideBlockUndoError(
                f"the undo record puts block {_short(block.hash())} at height {height}, but its parent is "
                f"at height {parent[0]}"
            )
        work = _block_work(block)
        chain_work = decode_work(parent[1]) + work
        (sequence,) = await tx.fetchone(
            "SELECT COALESCE(MAX(sequence) + 1, 0) FROM block_tree WHERE chain_id = ?", (chain_id,)
        )
        await tx.execute(
            "INSERT INTO block_tree (chain_id, hash, parent_hash, height, work, chain_work, sequence, raw, undo) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (chain_id, block.hash(), parent_hash, height, encode_work(work), encode_work(chain_work), sequence,
             raw, undo.serialize()),
        )
        return StoredTreeEntry(block.hash(), parent_hash, height, work, chain_work, sequence, raw is None, True)

    async def move_off_main(self, tx: Transaction, chain_id: int, block_hash: bytes, raw: bytes) -> None:
        """A disconnected block leaves the main chain: its bytes (from its ``blocks`` row) move here."""
        await tx.execute(
            "UPDATE block_tree SET raw = ? WHERE chain_id = ? AND hash = ?", (raw, chain_id, block_hash)
        )

    # --- reads --------------------------------------------------------------------

    async def undo_record(self, chain_id: int, block_hash: bytes, *, within: Reader | None = None) -> BlockUndo | None:
        """The block's undo record; None when none is stored (the genesis block, or one stored before
        migration 13).  ``BlockNotFoundError`` for a block not in the tree."""
        row = await (within or self._db).fetchone(
            "SELECT undo FROM block_tree WHERE chain_id = ? AND hash = ?", (chain_id, block_hash)
        )
        if row is None:
            raise BlockNotFoundError(f"chain {chain_id} has no block {_short(block_hash)} in its tree")
        return None if row[0] is None else BlockUndo.deserialize(bytes(row[0]))

    async def entries(self, chain_id: int, *, within: Reader | None = None) -> list[StoredTreeEntry]:
        """Every block of the chain's tree in first-seen order: adding them to a ``BlockTree`` in this
        order (genesis first) rebuilds the same tree with the same tie-breaks."""
        rows = await (within or self._db).fetchall(
            "SELECT hash, parent_hash, height, work, chain_work, sequence, raw IS NULL, undo IS NOT NULL "
            "FROM block_tree WHERE chain_id = ? ORDER BY sequence",
            (chain_id,),
        )
        return [
            StoredTreeEntry(bytes(r[0]), bytes(r[1]), r[2], decode_work(r[3]), decode_work(r[4]), r[5],
                            bool(r[6]), bool(r[7]))
            for r in rows
        ]

    async def side_block(self, chain_id: int, block_hash: bytes, *, within: Reader | None = None) -> Block:
        """A block off the main chain (``BlockNotFoundError`` for one on it or not stored)."""
        row = await (within or self._db).fetchone(
            "SELECT raw FROM block_tree WHERE chain_id = ? AND hash = ? AND raw IS NOT NULL", (chain_id, block_hash)
        )
        if row is None:
            raise BlockNotFoundError(f"chain {chain_id} has no side block {_short(block_hash)}")
        return Block.deserialize(bytes(row[0]))
