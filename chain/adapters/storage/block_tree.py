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
from chain.adapters.storage.records import StoredOrphan, StoredSideBranch, StoredTreeEntry
from chain.consensus.block import Block
from chain.consensus.undo import BlockUndo
from chain.errors import BlockNotFoundError, DuplicateBlockError, SideBlockUndoError, UnknownParentError
from chain.hashing import hash_to_display


def _short(block_hash: bytes) -> str:
    return hash_to_display(block_hash)[:16]


# Rows off the main chain; migration 15's partial index holds exactly these (by chain and height).
_ORPHAN_ROWS = "block_tree WHERE chain_id = ? AND raw IS NOT NULL"


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

    async def entries(
        self, chain_id: int, *, root: bytes | None = None, within: Reader | None = None
    ) -> list[StoredTreeEntry]:
        """Every block of the chain's tree in first-seen order: adding them to a ``BlockTree`` in this
        order (its root first) rebuilds the same tree with the same tie-breaks.

        With ``root`` (a stored block), only the root and the blocks at or above its height seen after
        it: every descendant of the root was seen after it, so this is the root's subtree (and side
        blocks beside it, which the caller skips). The read walks the first-seen index from the root
        on, so a start reads the recent rows, not the whole table."""
        args: tuple[int] | tuple[int, bytes]
        if root is None:
            query, args = (
                "SELECT hash, parent_hash, height, work, chain_work, sequence, raw IS NULL, undo IS NOT NULL "
                "FROM block_tree WHERE chain_id = ? ORDER BY sequence", (chain_id,)
            )
        else:
            query, args = (
                "SELECT t.hash, t.parent_hash, t.height, t.work, t.chain_work, t.sequence, t.raw IS NULL, "
                "t.undo IS NOT NULL FROM block_tree AS r JOIN block_tree AS t ON t.chain_id = r.chain_id "
                "AND t.sequence >= r.sequence AND t.height >= r.height "
                "WHERE r.chain_id = ? AND r.hash = ? ORDER BY t.sequence", (chain_id, root)
            )
        rows = await (within or self._db).fetchall(query, args)
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

    # --- the explorer's reads of the blocks off the main chain (issue 11, item 3) -------------

    async def find_orphans_by_hash_prefix(
        self, chain_id: int, prefix: str, limit: int
    ) -> tuple[int, list[tuple[int, bytes]]]:
        """Orphans whose hash, as shown, starts with the hex ``prefix``: how many, and up to ``limit``
        as (height, hash), newest first.  Reads the orphans' hashes only (migration 15's index), never
        the main chain; a prefix is compared in display order, which the stored order reverses."""
        rows = await self._db.fetchall(
            f"SELECT height, hash FROM {_ORPHAN_ROWS} ORDER BY height DESC, sequence DESC", (chain_id,)
        )
        found = [(int(r[0]), bytes(r[1])) for r in rows if hash_to_display(bytes(r[1])).startswith(prefix)]
        return len(found), found[:limit]

    async def orphan(self, chain_id: int, block_hash: bytes) -> StoredOrphan:
        """A block off the main chain and the main chain's block at its height (``BlockNotFoundError``
        for a block on the main chain or not stored)."""
        async with self._db.read_transaction(chain_id) as tx:
            row = await tx.fetchone(
                f"SELECT raw, height, chain_work, sequence FROM {_ORPHAN_ROWS} AND hash = ?", (chain_id, block_hash)
            )
            if row is None:
                raise BlockNotFoundError(f"chain {chain_id} has no block {_short(block_hash)} off its main chain")
            main = await self._main_at(tx, chain_id, int(row[1]))
        return StoredOrphan(
            Block.deserialize(bytes(row[0])), int(row[1]), decode_work(row[2]), int(row[3]),
            None if main is None else main[0], None if main is None else main[1],
        )

    async def count_orphans_at(self, chain_id: int, height: int) -> int:
        """How many blocks off the main chain compete at ``height``."""
        (count,) = await self._db.fetchone(f"SELECT COUNT(*) FROM {_ORPHAN_ROWS} AND height = ?", (chain_id, height))
        return int(count)

    async def side_branches(self, chain_id: int, limit: int) -> tuple[int, list[StoredSideBranch]]:
        """How many side branches there are (orphans with no child), and the ``limit`` newest (by when
        their tip was first seen) with their fork point and the work on each side."""
        async with self._db.read_transaction(chain_id) as tx:
            tips = (
                f"{_ORPHAN_ROWS} AND NOT EXISTS (SELECT 1 FROM block_tree c "
                "WHERE c.chain_id = block_tree.chain_id AND c.parent_hash = block_tree.hash)"
            )
            (count,) = await tx.fetchone(f"SELECT COUNT(*) FROM {tips}", (chain_id,))
            rows = await tx.fetchall(
                f"SELECT hash, height, chain_work, sequence FROM {tips} ORDER BY sequence DESC LIMIT ?",
                (chain_id, limit),
            )
            (main_height,) = await tx.fetchone("SELECT MAX(height) FROM blocks WHERE chain_id = ?", (chain_id,))
            branches = []
            for tip_hash, height, chain_work, sequence in rows:
                fork = await tx.fetchone(
                    # Down the tip's ancestors while they are off the main chain; the first on it is the fork.
                    "WITH RECURSIVE up(hash, parent_hash, height, side) AS ("
                    " SELECT hash, parent_hash, height, raw IS NOT NULL FROM block_tree WHERE chain_id = ? AND hash = ?"
                    " UNION ALL SELECT t.hash, t.parent_hash, t.height, t.raw IS NOT NULL FROM block_tree t, up"
                    " WHERE up.side AND t.chain_id = ? AND t.hash = up.parent_hash)"
                    " SELECT hash, height FROM up WHERE NOT side",
                    (chain_id, tip_hash, chain_id),
                )
                main = await self._main_at(tx, chain_id, min(int(height), int(main_height)))
                if fork is None or main is None:
                    continue  # a broken ancestry cannot be stored (every row's parent is); skip rather than guess
                branches.append(StoredSideBranch(
                    bytes(tip_hash), int(height), bytes(fork[0]), int(fork[1]), decode_work(chain_work), main[1],
                    int(sequence),
                ))
        return int(count), branches

    @staticmethod
    async def _main_at(tx: Reader, chain_id: int, height: int) -> tuple[bytes, int] | None:
        row = await tx.fetchone(
            "SELECT t.hash, t.chain_work FROM blocks b "
            "JOIN block_tree t ON t.chain_id = b.chain_id AND t.hash = b.hash WHERE b.chain_id = ? AND b.height = ?",
            (chain_id, height),
        )
        return None if row is None else (bytes(row[0]), decode_work(row[1]))
