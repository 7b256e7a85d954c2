"""Where each block of a stretch of the block tree goes in a picture: the lane layout the tree chart draws.

The main chain (the line through the node's tip) is lane 0, a straight line of blocks by height.
Every block off it belongs to a side branch, a run of blocks each the first-seen side child of the
one before; a branch gets a lane of its own above the main chain, joined to the block it forks from.
Lanes are reused (interval scheduling, lowest free lane first) once a branch has ended at least one
height before the next one starts, so a window of sixty heights with many one-block orphans stays a
few lanes tall; a branch that would need more than ``max_lanes`` lanes is left out, with the branches
that fork from it, and counted (``TreeLayout.left_out_branches``), so the caller can say so.

``collect_tree_window`` picks the stretch: the last heights of the tree, or those from a game's start
on, and refuses (``TreeHasNoForksError``) a stretch with no block off the main chain.

Pure: the blocks arrive as ``BlockEntry`` values (``chain/consensus/tree.py``), the result is
integers and hashes. Typed ``TreeLayoutError``s (a ``ChartDataError``) say what was wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chain.consensus.tree import BlockEntry, BlockTree
from chain.errors import ChartEmptyInputError, ChartValueError, TreeHasNoForksError, TreeLayoutError
from chain.hashing import hash_to_display

MAIN_LANE = 0


@dataclass(frozen=True, slots=True)
class TreeNode:
    block_hash: bytes
    height: int
    lane: int
    """0: the main chain; 1 and up: side branches."""

    @property
    def on_main(self) -> bool:
        return self.lane == MAIN_LANE


@dataclass(frozen=True, slots=True)
class TreeEdge:
    """A block to its parent: (height, lane) of each end."""

    parent_height: int
    parent_lane: int
    height: int
    lane: int


@dataclass(frozen=True, slots=True)
class TreeBranch:
    """One side branch as drawn: the lane it got, where it leaves its parent and how far it goes."""

    lane: int
    fork_height: int
    """The height of the block it builds on (its first block's height minus one)."""
    fork_lane: int | None
    """The lane of that block: 0 when it forks from the main chain, None when that block is below the window."""
    first_height: int
    tip_height: int
    blocks: int
    tip_hash: bytes


@dataclass(frozen=True, slots=True)
class TreeLayout:
    first_height: int
    last_height: int
    nodes: tuple[TreeNode, ...]
    edges: tuple[TreeEdge, ...]
    branches: tuple[TreeBranch, ...]
    """The drawn side branches, by first height then first seen."""
    main_blocks: int
    left_out_branches: int
    left_out_blocks: int

    @property
    def side_blocks(self) -> int:
        return len(self.nodes) - self.main_blocks

    @property
    def lanes(self) -> int:
        """Lanes in use, the main chain's included."""
        return 1 + max((b.lane for b in self.branches), default=0)


def _short(block_hash: bytes) -> str:
    return hash_to_display(block_hash)[:16]


def _check(blocks: Sequence[BlockEntry], main_tip: bytes, max_lanes: int) -> dict[bytes, BlockEntry]:
    if isinstance(max_lanes, bool) or not isinstance(max_lanes, int) or max_lanes < 1:
        raise TreeLayoutError(f"max_lanes {max_lanes!r} must be a whole number, at least 1 (one side lane)")
    if not blocks:
        raise ChartEmptyInputError("no blocks to lay out")
    by_hash: dict[bytes, BlockEntry] = {}
    for block in blocks:
        if not isinstance(block, BlockEntry):
            raise TreeLayoutError(f"{block!r:.80} is not a block tree entry")
        if block.block_hash in by_hash:
            raise TreeLayoutError(f"block {_short(block.block_hash)} is given twice")
        by_hash[block.block_hash] = block
    for block in blocks:
        parent = by_hash.get(block.parent_hash)
        if parent is not None and block.height != parent.height + 1:
            raise TreeLayoutError(
                f"block {_short(block.block_hash)} is at height {block.height} but its parent is at "
                f"{parent.height}: it must be {parent.height + 1}"
            )
    if main_tip not in by_hash:
        raise TreeLayoutError(f"the main tip {main_tip!r:.80} is not among the blocks")
    return by_hash


def compute_tree_layout(blocks: Sequence[BlockEntry], main_tip: bytes, *, max_lanes: int) -> TreeLayout:
    """Lay out ``blocks`` (a stretch of a block tree, in first-seen order): the chain ending at
    ``main_tip`` on lane 0, each side branch on a lane from 1 to ``max_lanes``.

    A block whose parent is not among ``blocks`` starts its line at the window's edge (no edge is
    drawn to it). Raises ``ChartEmptyInputError`` for no blocks, ``TreeLayoutError`` for a block
    given twice, a height that is not its parent's plus one, a main tip not given, or ``max_lanes``
    below 1."""
    by_hash = _check(blocks, main_tip, max_lanes)
    order = {block.block_hash: index for index, block in enumerate(blocks)}
    lane_of: dict[bytes, int] = {}
    cursor: BlockEntry | None = by_hash[main_tip]
    while cursor is not None:
        lane_of[cursor.block_hash] = MAIN_LANE
        cursor = by_hash.get(cursor.parent_hash)
    main_blocks = len(lane_of)

    # Side blocks by height, then first seen: a parent always comes before its children.
    side = sorted((b for b in blocks if b.block_hash not in lane_of), key=lambda b: (b.height, order[b.block_hash]))
    # A side block's first-seen side child continues its branch; every other child starts one.
    continuing: dict[bytes, bytes] = {}
    for block in side:
        parent = by_hash.get(block.parent_hash)
        if parent is not None and parent.block_hash not in lane_of and parent.block_hash not in continuing:
            continuing[parent.block_hash] = block.block_hash
    runs: list[list[BlockEntry]] = []
    run_of: dict[bytes, list[BlockEntry]] = {}
    for block in side:
        parent_hash = block.parent_hash
        if continuing.get(parent_hash) == block.block_hash:
            run = run_of[parent_hash]
        else:
            run = []
            runs.append(run)
        run.append(block)
        run_of[block.block_hash] = run

    lane_ends: list[int] = []  # lane_ends[i]: the highest height lane i + 1 is busy up to
    branches: list[TreeBranch] = []
    left_out_branches = left_out_blocks = 0
    for run in runs:  # in order of first height, then first seen (``side``'s order)
        first, tip = run[0], run[-1]
        parent = by_hash.get(first.parent_hash)
        fork_lane = None if parent is None else lane_of.get(parent.block_hash)
        if parent is not None and fork_lane is None:
            # Its fork point was left out (no lane for it): the run goes too, or it would float.
            left_out_branches += 1
            left_out_blocks += len(run)
            continue
        # Free: the lane's last branch ended two heights before, so no block touches this one's start.
        lane = next((i + 1 for i, end in enumerate(lane_ends) if end < first.height - 1), None)
        if lane is None:
            if len(lane_ends) >= max_lanes:
                left_out_branches += 1
                left_out_blocks += len(run)
                continue
            lane_ends.append(tip.height)
            lane = len(lane_ends)
        lane_ends[lane - 1] = tip.height
        for block in run:
            lane_of[block.block_hash] = lane
        branches.append(TreeBranch(
            lane=lane, fork_height=first.height - 1, fork_lane=fork_lane, first_height=first.height,
            tip_height=tip.height, blocks=len(run), tip_hash=tip.block_hash,
        ))

    drawn = [b for b in blocks if b.block_hash in lane_of]
    nodes = tuple(TreeNode(b.block_hash, b.height, lane_of[b.block_hash]) for b in drawn)
    edges = tuple(
        TreeEdge(by_hash[b.parent_hash].height, lane_of[b.parent_hash], b.height, lane_of[b.block_hash])
        for b in drawn if b.parent_hash in lane_of
    )
    heights = [b.height for b in drawn]
    return TreeLayout(
        first_height=min(heights), last_height=max(heights), nodes=nodes, edges=edges, branches=tuple(branches),
        main_blocks=main_blocks, left_out_branches=left_out_branches, left_out_blocks=left_out_blocks,
    )


@dataclass(frozen=True, slots=True)
class TreeWindow:
    """What the tree chart draws: the layout, and the checkpoints that fall inside it."""

    layout: TreeLayout
    finalized_height: int | None
    """The finalized checkpoint's block height, when it lies in the window (hybrid and proof-of-stake chains)."""
    justified_height: int | None
    by_votes: bool
    """The main chain follows the validators' votes (proof of stake), not the most work."""


def collect_tree_window(
    tree: BlockTree, main_tip: bytes, max_heights: int, from_height: int | None = None
) -> tuple[tuple[BlockEntry, ...], bytes]:
    """The blocks of ``tree`` in a window of at most ``max_heights`` heights, in first-seen order, and
    the main chain's highest block in it (the chain through ``main_tip``).

    The window ends at the highest block of the tree, main or side, and starts no lower than
    ``from_height`` (a game's fork point) or the tree's root. A window with no side block moves back
    to end a little past the newest side branch's tip (at or above ``from_height``), so the latest
    fork is shown. ``TreeHasNoForksError`` when the tree has no block off the main chain (at or above
    ``from_height``). O(heights shown + side tips + their distance to the window)."""
    if isinstance(max_heights, bool) or not isinstance(max_heights, int) or max_heights < 2:
        raise ChartValueError(f"max_heights {max_heights!r} must be a whole number, at least 2")
    if from_height is not None and (isinstance(from_height, bool) or not isinstance(from_height, int)
                                    or from_height < 0):
        raise ChartValueError(f"from_height {from_height!r} must be a whole number from 0")
    main = tree.get(main_tip)
    root = tree.genesis.height
    side_tips = [tip for tip in tree.tips() if tip.block_hash != main_tip]
    if not side_tips:
        raise TreeHasNoForksError(
            f"no forks yet: all {main.height - root + 1} blocks the tree keeps (heights {root} to {main.height}) "
            "are on the main chain"
        )
    top = max(main.height, *(tip.height for tip in side_tips))
    low = max(root, top - max_heights + 1, from_height or 0)
    if not any(tip.height >= low for tip in side_tips):
        floor = max(root, from_height or 0)
        candidates = [tip for tip in side_tips if tip.height >= floor]
        if not candidates:
            raise TreeHasNoForksError(
                f"no forks from height {floor} on: every block from there to {main.height} is on the main chain"
            )
        newest = max(candidates, key=lambda tip: tip.sequence)
        # The newest fork a quarter of the window from the right: its fork point and what followed.
        top = min(top, newest.height + max_heights // 4)
        low = max(floor, top - max_heights + 1)
    found: dict[bytes, BlockEntry] = {}
    cursor: BlockEntry | None = main
    while cursor is not None and cursor.height >= low:
        if cursor.height <= top:
            found[cursor.block_hash] = cursor
        cursor = tree.get(cursor.parent_hash) if cursor.parent_hash in tree else None
    top_main = max(found.values(), key=lambda block: block.height)
    for tip in side_tips:
        cursor = tip
        while cursor is not None and cursor.height >= low and cursor.block_hash not in found:
            if cursor.height <= top:
                found[cursor.block_hash] = cursor
            cursor = tree.get(cursor.parent_hash) if cursor.parent_hash in tree else None
    return tuple(sorted(found.values(), key=lambda block: block.sequence)), top_main.block_hash
