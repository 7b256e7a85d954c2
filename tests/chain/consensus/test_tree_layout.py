"""chain/consensus/tree_layout.py: lanes for the tree chart, and the window of the tree it draws."""

from __future__ import annotations

import hashlib

import pytest

from chain.consensus.tree import BlockEntry, BlockTree
from chain.consensus.tree_layout import MAIN_LANE, collect_tree_window, compute_tree_layout
from chain.errors import ChartEmptyInputError, ChartValueError, TreeHasNoForksError, TreeLayoutError


def h(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()


def grow(tree: BlockTree, parent: str, names: list[str], work: int = 1) -> None:
    """Add a line of blocks named ``names`` on top of ``parent``."""
    for name in names:
        entry = tree.get(h(parent))
        tree.add_block(h(name), entry.block_hash, entry.height + 1, work)
        parent = name


def main_line(length: int) -> BlockTree:
    """Genesis "g" and main blocks m1..m<length>."""
    tree = BlockTree(h("g"), 1)
    grow(tree, "g", [f"m{i}" for i in range(1, length + 1)])
    return tree


def lanes(layout) -> dict[bytes, int]:
    return {node.block_hash: node.lane for node in layout.nodes}


def test_the_main_chain_is_lane_zero_and_each_side_branch_gets_a_lane_joined_to_its_fork():
    tree = main_line(10)
    grow(tree, "m3", ["a4", "a5"])  # a 2-block branch off block 3
    grow(tree, "m4", ["b5"])  # overlaps a: another lane
    layout = compute_tree_layout(list(tree), tree.best.block_hash, max_lanes=4)
    got = lanes(layout)
    assert all(got[h(f"m{i}")] == MAIN_LANE for i in range(1, 11)) and got[h("g")] == MAIN_LANE
    assert got[h("a4")] == got[h("a5")] == 1
    assert got[h("b5")] == 2
    assert layout.main_blocks == 11 and layout.side_blocks == 3 and layout.lanes == 3
    assert (layout.first_height, layout.last_height) == (0, 10)
    a, b = layout.branches
    assert (a.fork_height, a.fork_lane, a.first_height, a.tip_height, a.blocks) == (3, 0, 4, 5, 2)
    assert (b.fork_height, b.fork_lane, b.blocks, b.tip_hash) == (4, 0, 1, h("b5"))
    edges = {(e.parent_height, e.parent_lane, e.height, e.lane) for e in layout.edges}
    assert (3, 0, 4, 1) in edges and (4, 1, 5, 1) in edges and (4, 0, 5, 2) in edges
    # Every block but the first has its edge: a tree of n blocks has n - 1.
    assert len(layout.edges) == len(layout.nodes) - 1


def test_a_lane_is_reused_once_its_branch_ended_two_heights_before():
    tree = main_line(12)
    grow(tree, "m2", ["a3"])
    grow(tree, "m3", ["b4"])  # a ends at 3, b's start touches it: a lane of its own
    grow(tree, "m4", ["c5"])  # a ended at 3 < 5 - 1: back on lane 1
    layout = compute_tree_layout(list(tree), tree.best.block_hash, max_lanes=4)
    got = lanes(layout)
    assert (got[h("a3")], got[h("b4")], got[h("c5")]) == (1, 2, 1)


def test_a_branch_off_a_side_branch_gets_another_lane_and_forks_from_that_lane():
    tree = main_line(8)
    grow(tree, "m2", ["a3", "a4", "a5"])
    grow(tree, "a3", ["n4"])  # a's second child: a branch of its own, off lane 1
    layout = compute_tree_layout(list(tree), tree.best.block_hash, max_lanes=4)
    got = lanes(layout)
    assert got[h("a4")] == 1 and got[h("n4")] == 2
    nested = next(b for b in layout.branches if b.tip_hash == h("n4"))
    assert (nested.fork_height, nested.fork_lane) == (3, 1)


def test_branches_past_the_lanes_are_left_out_with_those_that_fork_from_them():
    tree = main_line(8)
    grow(tree, "m2", ["a3", "a4"])
    grow(tree, "m2", ["b3", "b4"])
    grow(tree, "b3", ["c4"])  # forks from b, which gets no lane
    layout = compute_tree_layout(list(tree), tree.best.block_hash, max_lanes=1)
    got = lanes(layout)
    assert got[h("a3")] == 1 and h("b3") not in got and h("c4") not in got
    assert (layout.left_out_branches, layout.left_out_blocks) == (2, 3)
    assert all(e.lane <= 1 and e.parent_lane <= 1 for e in layout.edges)


def test_the_main_chain_is_the_given_tip_s_line_not_the_most_work():
    """Proof of stake: the node's head follows votes; the layout follows the tip it is given."""
    tree = main_line(4)
    grow(tree, "m2", ["v3", "v4", "v5"])  # more work than m3..m4
    layout = compute_tree_layout(list(tree), h("m4"), max_lanes=2)
    got = lanes(layout)
    assert got[h("m4")] == MAIN_LANE and got[h("v5")] == 1


def test_a_block_whose_parent_is_below_the_window_starts_without_an_edge():
    tree = main_line(6)
    grow(tree, "m2", ["a3", "a4"])
    window = [e for e in tree if e.height >= 4]
    layout = compute_tree_layout(window, h("m6"), max_lanes=2)
    (branch,) = layout.branches
    assert branch.fork_lane is None and branch.first_height == 4
    assert len(layout.edges) == 2  # m4 -> m5 -> m6, nothing to a4


def entry(name: str, parent: str, height: int) -> BlockEntry:
    return BlockEntry(h(name), h(parent), height, 1, height + 1, height)


def test_invalid_tree_layout_inputs():
    good = [entry("g", "none", 0), entry("m1", "g", 1)]
    with pytest.raises(ChartEmptyInputError, match="no blocks"):
        compute_tree_layout([], h("g"), max_lanes=2)
    with pytest.raises(TreeLayoutError, match="max_lanes 0"):
        compute_tree_layout(good, h("m1"), max_lanes=0)
    with pytest.raises(TreeLayoutError, match="given twice"):
        compute_tree_layout([*good, good[1]], h("m1"), max_lanes=2)
    with pytest.raises(TreeLayoutError, match="at height 3 but its parent is at 0: it must be 1"):
        compute_tree_layout([good[0], entry("m1", "g", 3)], h("m1"), max_lanes=2)
    with pytest.raises(TreeLayoutError, match="main tip"):
        compute_tree_layout(good, h("elsewhere"), max_lanes=2)
    with pytest.raises(TreeLayoutError, match="not a block tree entry"):
        compute_tree_layout([("g", "none", 0)], h("g"), max_lanes=2)  # type: ignore[list-item]


def test_the_window_is_the_last_heights_with_every_side_block_in_them():
    tree = main_line(100)
    grow(tree, "m90", ["a91", "a92"])
    grow(tree, "m20", ["old21"])  # far below the window
    blocks, top = collect_tree_window(tree, tree.best.block_hash, 30)
    heights = {b.height for b in blocks}
    assert min(heights) == 71 and max(heights) == 100 and top == h("m100")
    assert h("a91") in {b.block_hash for b in blocks} and h("old21") not in {b.block_hash for b in blocks}
    # First-seen order, as the layout wants it.
    assert [b.sequence for b in blocks] == sorted(b.sequence for b in blocks)


def test_a_window_without_a_fork_moves_back_to_the_newest_one():
    tree = main_line(100)
    grow(tree, "m40", ["a41"])
    blocks, top = collect_tree_window(tree, tree.best.block_hash, 20)
    heights = [b.height for b in blocks]
    # The fork at 41 sits a quarter of the window from the right: 41 + 20 // 4 = 46 at the top.
    assert max(heights) == 46 and min(heights) == 27 and top == h("m46")
    layout = compute_tree_layout(blocks, top, max_lanes=2)
    assert layout.side_blocks == 1


def test_a_game_s_window_starts_at_its_fork():
    tree = main_line(50)
    grow(tree, "m10", ["x11"])
    grow(tree, "m45", ["g46", "g47"])
    blocks, _ = collect_tree_window(tree, tree.best.block_hash, 60, from_height=44)
    assert min(b.height for b in blocks) == 44
    assert h("x11") not in {b.block_hash for b in blocks} and h("g47") in {b.block_hash for b in blocks}


def test_no_forks_yet_is_refused_in_words():
    tree = main_line(5)
    with pytest.raises(TreeHasNoForksError, match=r"no forks yet: all 6 blocks the tree keeps \(heights 0 to 5\)"):
        collect_tree_window(tree, tree.best.block_hash, 60)
    grow(tree, "m1", ["a2"])
    with pytest.raises(TreeHasNoForksError, match="no forks from height 3 on"):
        collect_tree_window(tree, tree.best.block_hash, 60, from_height=3)


def test_invalid_tree_window_inputs():
    tree = main_line(3)
    grow(tree, "m1", ["a2"])
    with pytest.raises(ChartValueError, match="max_heights 1"):
        collect_tree_window(tree, tree.best.block_hash, 1)
    with pytest.raises(ChartValueError, match="from_height -1"):
        collect_tree_window(tree, tree.best.block_hash, 10, from_height=-1)
