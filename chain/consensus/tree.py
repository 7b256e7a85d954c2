"""The block tree: every valid block kept, the most-work branch chosen, and the path of a reorg.

Issue 11, item 1. Today a server's chain is one line and a late block is refused as stale; this
index keeps every block that extends a known block and decides, as Bitcoin Core does:

- **which tip is best** (``compute_best_tip``): the most cumulative work (Core's ``nChainWork``,
  the sum of ``GetBlockProof`` = ``compute_block_work`` over the branch), a tie going to the block
  seen first (Core's ``nSequenceId``). Work, not height: a shorter branch of harder blocks wins.
- **how to switch** (``compute_reorg``): the fork point (Core's ``LastCommonAncestor``), the blocks to
  disconnect newest first and to connect oldest first (Core's ``ActivateBestChainStep``).
- **what finality forbids** (``check_reorg_allowed``): a reorg that would disconnect a finalized block
  (issue 11 item 2: "no reorg ever crosses a finalized checkpoint").
- **what lies off the best chain** (``compute_side_branches``, ``compute_chain_tips``), for the explorer.

It decides only: storing blocks, connecting them to the state, the reorg's one database
transaction and returning transfers to the mempool belong to the node and the store (not wired yet).

Shape and cost. ``BlockTree`` is an append-only index: ``add_block`` is its only mutation, entries are
frozen ``BlockEntry`` values that never change or leave, and everything else is a function of the
tree. Immutable copies per block would cost O(n) each; a persistent map is not in the standard
library, and append-only gives the same guarantee to a caller holding entries or hashes. It keeps

- a dict hash -> entry (Core's ``m_block_index``),
- the best chain as a list by height (Core's ``CChain::vChain``), updated when the best tip moves:
  O(1) when the new best extends the old, O(reorg depth) otherwise,
- the tips (blocks with no child yet), for the best tip under a finality constraint.

Per block: one ``BlockEntry`` (a slotted frozen dataclass; its parent hash is the parent entry's own
bytes object, shared, not a copy), one dict slot and one list slot: about 0.3 KB in CPython
(``benchmarks/bench_tree.py`` measures it), O(1) time to add.

``get_ancestor_at_height`` uses the best-chain list instead of Core's skip list (``pskip``): O(1) for a block on
the best chain, O(distance to the best chain) for one on a side branch, and no extra pointer per
block. ``compute_fork_point`` and ``compute_reorg`` therefore cost O(blocks disconnected + blocks
connected) at most, never O(chain height).

Pure: integers and bytes only, no clock, randomness or I/O. Not thread-safe: the node that owns a
tree adds to it under its own lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from chain.errors import (
    AncestorHeightError,
    BlockHashError,
    BlockHeightMismatchError,
    BlockNotInTreeError,
    BlockWorkError,
    DuplicateBlockError,
    ReorgPastFinalizedBlockError,
    UnknownParentError,
)
from chain.hashing import HASH_SIZE_BYTES, ZERO_HASH, hash_to_display
from chain.pow.compact import compute_block_work, compute_target


@dataclass(frozen=True, slots=True)
class BlockEntry:
    """One block in the tree: what fork choice needs, and nothing of its body.

    ``work`` is the block's own proof (Core's ``GetBlockProof``), ``chain_work`` the sum over the
    block and all its ancestors (Core's ``nChainWork``), ``sequence`` the order the tree first saw
    it (Core's ``nSequenceId``: lower is earlier).
    """

    block_hash: bytes
    parent_hash: bytes
    height: int
    work: int
    chain_work: int
    sequence: int


@dataclass(frozen=True, slots=True)
class Reorg:
    """How to move the connected tip from ``old_tip`` to ``new_tip``.

    Disconnect ``disconnect`` in order (newest first, down to just above ``fork_point``), then
    connect ``connect`` in order (oldest first, from just above ``fork_point`` up to ``new_tip``).
    A plain extension has nothing to disconnect; the same tip has nothing to do.
    """

    old_tip: BlockEntry
    new_tip: BlockEntry
    fork_point: BlockEntry
    disconnect: tuple[BlockEntry, ...]
    connect: tuple[BlockEntry, ...]

    @property
    def depth(self) -> int:
        """Blocks taken off the old branch (a "1-block reorg" disconnects one)."""
        return len(self.disconnect)

    @property
    def is_reorg(self) -> bool:
        """True when a connected block is taken back, not when the tip only moves forward."""
        return bool(self.disconnect)


def _check_hash(value: object, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE_BYTES:
        raise BlockHashError(f"{what} must be {HASH_SIZE_BYTES} bytes, got {value!r:.80}")
    return value


def _check_work(work: object) -> int:
    # Core's GetBlockProof is at least 1 for every target; a block that adds no work would tie with
    # its parent and lose to it (first seen), so the best tip would no longer always be a tip.
    if isinstance(work, bool) or not isinstance(work, int) or work < 1:
        raise BlockWorkError(f"a block's work must be a positive integer, got {work!r}")
    return work


def _short(block_hash: object) -> str:
    """The first 16 hex digits of a hash as the explorer shows it (byte-reversed, as Bitcoin)."""
    if isinstance(block_hash, bytes):
        return hash_to_display(block_hash)[:16]
    return f"{block_hash!r:.40}"


def compute_header_work(bits: int, pow_limit: int) -> int:
    """A header's own work from its compact ``bits``: Core's ``GetBlockProof``, 2^256/(target+1)."""
    return compute_block_work(compute_target(bits, pow_limit))


def is_better(candidate: BlockEntry, incumbent: BlockEntry) -> bool:
    """True when ``candidate`` is the better tip: Bitcoin Core's ``CBlockIndexWorkComparator``.

    Core (src/node/blockstorage.cpp) sorts first "by most total work" (``nChainWork``), "then by
    earliest time received" (``nSequenceId``, lower wins), then by pointer address for blocks loaded
    from disk, which all have id 0. Here every entry has its own sequence number, so the third rule
    is never needed.
    """
    if candidate.chain_work != incumbent.chain_work:
        return candidate.chain_work > incumbent.chain_work
    return candidate.sequence < incumbent.sequence


class BlockTree:
    """Every block that extends a known block, from one root: the genesis block, or (``height``) a
    main-chain block a node keeps the tree from, with its cumulative work (``chain_work``).

    Append-only: ``add_block`` is the only mutation; entries are frozen and never removed.
    """

    __slots__ = ("_base", "_best", "_entries", "_main", "_tips")

    def __init__(
        self, genesis_hash: bytes, genesis_work: int, genesis_parent: bytes = ZERO_HASH, *, height: int = 0,
        chain_work: int | None = None,
    ) -> None:
        if isinstance(height, bool) or not isinstance(height, int) or height < 0:
            raise BlockHeightMismatchError(f"the tree's root height must be a whole number from 0, got {height!r}")
        total = _check_work(genesis_work) if chain_work is None else _check_work(chain_work)
        if total < genesis_work:
            raise BlockWorkError(f"the root's cumulative work {total} is below its own work {genesis_work}")
        root = BlockEntry(
            block_hash=_check_hash(genesis_hash, "the genesis block's hash"),
            parent_hash=_check_hash(genesis_parent, "the genesis block's parent hash"),
            height=height,
            work=_check_work(genesis_work),
            chain_work=total,
            sequence=0,
        )
        self._base = height
        self._entries: dict[bytes, BlockEntry] = {root.block_hash: root}
        # The best chain by height (Core's CChain): _main[h - root height] is its block at height h.
        self._main: list[BlockEntry] = [root]
        self._best = root
        # Blocks with no child yet; a dict, not a set, so that iteration follows first-seen order.
        self._tips: dict[bytes, BlockEntry] = {root.block_hash: root}

    def add_block(self, block_hash: bytes, parent_hash: bytes, height: int, work: int) -> BlockEntry:
        """Add a block whose parent is already in the tree, and return its entry.

        The tree numbers blocks in the order they are added (their first-seen sequence): a node
        reloading a tree must add the blocks in the order it first saw them (its storage order),
        or ties would go another way after a restart. Raises, leaving the tree unchanged:
        ``UnknownParentError``, ``DuplicateBlockError``, ``BlockHeightMismatchError`` (height is not
        the parent's plus one), ``BlockWorkError`` (work below 1), ``BlockHashError``.
        """
        entries = self._entries
        _check_hash(block_hash, "a block hash")
        if block_hash in entries:
            raise DuplicateBlockError(f"block {_short(block_hash)} is already in the tree")
        parent = entries.get(parent_hash) if isinstance(parent_hash, bytes) else None
        if parent is None:
            _check_hash(parent_hash, "a parent hash")
            raise UnknownParentError(
                f"block {_short(block_hash)} builds on {_short(parent_hash)}, which is not in the tree",
                parent_hash=parent_hash,
            )
        if isinstance(height, bool) or not isinstance(height, int) or height != parent.height + 1:
            raise BlockHeightMismatchError(
                f"block {_short(block_hash)} claims height {height!r} but its parent is at height "
                f"{parent.height}, so it must be {parent.height + 1}"
            )
        _check_work(work)
        entry = BlockEntry(
            block_hash=block_hash,
            # The parent's own bytes object: 100,000 entries share their parents' hashes, not copies.
            parent_hash=parent.block_hash,
            height=height,
            work=work,
            chain_work=parent.chain_work + work,
            sequence=len(entries),
        )
        entries[block_hash] = entry
        self._tips.pop(parent.block_hash, None)
        self._tips[block_hash] = entry
        # A later block has a higher sequence, so it must have strictly more work to be better.
        if entry.chain_work > self._best.chain_work:
            self._move_main(entry)
        return entry

    def _move_main(self, new_best: BlockEntry) -> None:
        """Make ``new_best`` the best chain's tip: O(1) to extend, O(depth) to switch branches."""
        main, base = self._main, self._base
        path: list[BlockEntry] = []
        cursor = new_best
        while not (cursor.height - base < len(main) and main[cursor.height - base] is cursor):
            path.append(cursor)
            cursor = self._entries[cursor.parent_hash]
        del main[cursor.height - base + 1 :]
        main.extend(reversed(path))
        self._best = new_best

    def get(self, block_hash: bytes) -> BlockEntry:
        """The entry for ``block_hash``, or ``BlockNotInTreeError``."""
        entry = self._entries.get(block_hash) if isinstance(block_hash, bytes) else None
        if entry is None:
            raise BlockNotInTreeError(f"block {_short(block_hash)} is not in the tree")
        return entry

    def __contains__(self, block_hash: object) -> bool:
        return block_hash in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[BlockEntry]:
        """Every entry, in first-seen order."""
        return iter(self._entries.values())

    @property
    def genesis(self) -> BlockEntry:
        """The root: the genesis block, or the oldest main-chain block the tree was built from."""
        return self._main[0]

    @property
    def best(self) -> BlockEntry:
        """The best tip with no finality constraint (``compute_best_tip`` takes one)."""
        return self._best

    def best_chain_at(self, height: int) -> BlockEntry | None:
        """The best chain's block at ``height``, or None above its tip or below the root: O(1)."""
        if 0 <= height - self._base < len(self._main):
            return self._main[height - self._base]
        return None

    def tips(self) -> tuple[BlockEntry, ...]:
        """Blocks with no child (the best tip and the tip of every side branch), first seen first."""
        return tuple(self._tips.values())


def get_ancestor_at_height(tree: BlockTree, block_hash: bytes, height: int) -> BlockEntry:
    """The ancestor of ``block_hash`` at ``height`` (the block itself at its own height).

    Core's ``CBlockIndex::GetAncestor``, without its skip list: walk parents until the walk reaches
    ``height`` or the best chain, whose block at ``height`` is then read directly. O(1) on the best
    chain, O(distance to it) on a side branch. ``AncestorHeightError`` outside 0..the block's height.
    """
    entry = tree.get(block_hash)
    if isinstance(height, bool) or not isinstance(height, int) or not tree.genesis.height <= height <= entry.height:
        raise AncestorHeightError(
            f"block {_short(block_hash)} is at height {entry.height}: it has no ancestor at height {height!r}"
        )
    on_best_chain = tree.best_chain_at(height)
    while entry.height > height:
        if on_best_chain is not None and tree.best_chain_at(entry.height) is entry:
            return on_best_chain
        entry = tree.get(entry.parent_hash)
    return entry


def is_ancestor(tree: BlockTree, ancestor_hash: bytes, block_hash: bytes) -> bool:
    """True when ``ancestor_hash`` is ``block_hash`` or one of its ancestors."""
    ancestor = tree.get(ancestor_hash)
    entry = tree.get(block_hash)
    if ancestor.height > entry.height:
        return False
    return get_ancestor_at_height(tree, block_hash, ancestor.height) is ancestor


def is_reorg(tree: BlockTree, old_tip: bytes, new_tip: bytes) -> bool:
    """True when moving from ``old_tip`` to ``new_tip`` takes back a block (old is not an ancestor of new)."""
    return not is_ancestor(tree, old_tip, new_tip)


def compute_fork_point(tree: BlockTree, a: bytes, b: bytes) -> BlockEntry:
    """The last block two branches share: Core's ``LastCommonAncestor`` (src/chain.cpp).

    As Core does: bring the higher block down to the lower one's height, then step both back
    together until they meet. Every block descends from the genesis block, so they always meet.
    O(blocks from the fork point to ``a`` and to ``b``) at most.
    """
    left, right = tree.get(a), tree.get(b)
    if left.height > right.height:
        left = get_ancestor_at_height(tree, a, right.height)
    elif right.height > left.height:
        right = get_ancestor_at_height(tree, b, left.height)
    while left is not right:
        left = tree.get(left.parent_hash)
        right = tree.get(right.parent_hash)
    return left


def _path_down(tree: BlockTree, top: BlockEntry, fork: BlockEntry) -> list[BlockEntry]:
    """``top`` and its ancestors above ``fork``, newest first."""
    path: list[BlockEntry] = []
    cursor = top
    while cursor is not fork:
        path.append(cursor)
        cursor = tree.get(cursor.parent_hash)
    return path


def compute_reorg(
    tree: BlockTree, old_tip: bytes, new_tip: bytes, finalized: bytes | None = None
) -> Reorg:
    """The blocks to disconnect and connect to move from ``old_tip`` to ``new_tip``.

    Core's ``ActivateBestChainStep`` (src/validation.cpp): disconnect the tip while it is not the
    fork point, then connect from the fork point up to the new tip. With ``finalized``, a reorg
    that crosses it is refused (``check_reorg_allowed``). O(depth + blocks connected).
    """
    old, new = tree.get(old_tip), tree.get(new_tip)
    fork = compute_fork_point(tree, old_tip, new_tip)
    connect = _path_down(tree, new, fork)
    connect.reverse()
    reorg = Reorg(
        old_tip=old,
        new_tip=new,
        fork_point=fork,
        disconnect=tuple(_path_down(tree, old, fork)),
        connect=tuple(connect),
    )
    if finalized is not None:
        check_reorg_allowed(tree, reorg, finalized)
    return reorg


def check_reorg_allowed(tree: BlockTree, reorg: Reorg, finalized: bytes) -> None:
    """Refuse a reorg that would leave the finalized block: ``ReorgPastFinalizedBlockError``.

    Issue 11 item 2: "no reorg ever crosses a finalized checkpoint", as consensus-specs'
    ``get_filtered_block_tree`` keeps only branches descending from the finalized checkpoint. Refused
    when the new tip does not descend from it, which covers a disconnect list that contains it.
    """
    checkpoint = tree.get(finalized)
    if is_ancestor(tree, finalized, reorg.new_tip.block_hash):
        return
    crossed = any(entry is checkpoint for entry in reorg.disconnect)
    how = "would disconnect" if crossed else "does not descend from"
    raise ReorgPastFinalizedBlockError(
        f"the switch to block {reorg.new_tip.height} ({_short(reorg.new_tip.block_hash)}) {how} the "
        f"finalized block {checkpoint.height} ({_short(checkpoint.block_hash)}): no reorg crosses a "
        f"finalized checkpoint",
        finalized_hash=checkpoint.block_hash,
        finalized_height=checkpoint.height,
        depth=reorg.depth,
    )


def compute_best_tip(tree: BlockTree, finalized: bytes | None = None) -> BlockEntry:
    """The tip with the most cumulative work, equal work going to the first seen.

    Bitcoin Core's ``CBlockIndexWorkComparator`` (src/node/blockstorage.cpp: "First sort by most
    total work, ... then by earliest time received"), see ``is_better``. O(1) without ``finalized``
    (the tree keeps its best tip as blocks arrive). With ``finalized``, only branches that descend
    from it compete (a heavier branch conflicting with finality is never chosen); when the overall
    best does not descend from it, every tip is weighed: O(tips x distance to the best chain).
    """
    best = tree.best
    if finalized is None or is_ancestor(tree, finalized, best.block_hash):
        return best
    candidate = tree.get(finalized)  # a tip of its own when nothing builds on it yet
    for tip in tree.tips():
        if is_better(tip, candidate) and is_ancestor(tree, finalized, tip.block_hash):
            candidate = tip
    return candidate


def compute_chain_tips(tree: BlockTree) -> tuple[BlockEntry, ...]:
    """Every tip (Core's ``getchaintips``): the best one and each side branch's, first seen first."""
    return tree.tips()


def compute_side_branches(tree: BlockTree, tip: bytes | None = None) -> tuple[BlockEntry, ...]:
    """Every block not on the chain ending at ``tip`` (the best tip by default), first seen first.

    The orphaned (stale) blocks the explorer shows. O(blocks in the tree).
    """
    if tip is None:
        return tuple(entry for entry in tree if tree.best_chain_at(entry.height) is not entry)
    entry = tree.get(tip)
    # The chain ending at tip is the best chain up to the fork point, then tip's own branch.
    fork = compute_fork_point(tree, tip, tree.best.block_hash)
    own_branch = {block.block_hash for block in _path_down(tree, entry, fork)}
    return tuple(
        block
        for block in tree
        if not (
            (block.height <= fork.height and tree.best_chain_at(block.height) is block)
            or block.block_hash in own_branch
        )
    )
