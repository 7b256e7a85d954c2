"""chain/consensus/tree.py: the block tree, fork choice by cumulative work, and reorg paths.

Sources the expectations come from:
- Bitcoin Core, src/node/blockstorage.cpp ``CBlockIndexWorkComparator``: "First sort by most total
  work, ... then by earliest time received" (``nChainWork``, then ``nSequenceId``).
- Bitcoin Core, src/chain.cpp ``LastCommonAncestor`` and ``CBlockIndex::GetAncestor``; src/validation.cpp
  ``ActivateBestChainStep`` (disconnect while the tip is not the fork point, then connect upwards).
- Bitcoin Core, src/chain.cpp ``GetBlockProof``: a block's work is 2^256 / (target + 1).
- Issue 11: reorgs of depth 1, 2 and 10; "no reorg ever crosses a finalized checkpoint".
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.consensus.tree import (
    BlockEntry,
    BlockTree,
    Reorg,
    check_reorg_allowed,
    compute_best_tip,
    compute_chain_tips,
    compute_fork_point,
    compute_header_work,
    compute_reorg,
    compute_side_branches,
    get_ancestor_at_height,
    is_ancestor,
    is_better,
    is_reorg,
)
from chain.errors import (
    AncestorHeightError,
    BlockHashError,
    BlockHeightMismatchError,
    BlockNotInTreeError,
    BlockTreeError,
    BlockWorkError,
    DuplicateBlockError,
    ReorgPastFinalizedBlockError,
    UnknownParentError,
)
from chain.params import REGTEST
from chain.pow.compact import encode_compact


def h(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()


GENESIS = h("genesis")


def new_tree() -> BlockTree:
    return BlockTree(GENESIS, 1)


def extend(tree: BlockTree, parent: bytes, prefix: str, count: int, work: int = 1) -> list[bytes]:
    """Add ``count`` blocks named prefix1, prefix2, ... on top of ``parent``; return their hashes."""
    hashes = []
    height = tree.get(parent).height
    for i in range(1, count + 1):
        block = h(f"{prefix}{i}")
        tree.add_block(block, parent, height + i, work)
        hashes.append(block)
        parent = block
    return hashes


def path(tree: BlockTree, tip: bytes) -> list[bytes]:
    """The chain from genesis to ``tip``, by walking parents (the naive reference)."""
    out = []
    entry = tree.get(tip)
    while True:
        out.append(entry.block_hash)
        if entry.height == 0:
            return out[::-1]
        entry = tree.get(entry.parent_hash)


# --- the straight line and the reorgs issue 11 names -------------------------------------------


def test_genesis_alone_is_the_best_tip_with_its_own_work_as_chain_work():
    tree = new_tree()
    best = compute_best_tip(tree)
    assert best == BlockEntry(GENESIS, bytes(32), 0, 1, 1, 0)
    assert len(tree) == 1 and compute_chain_tips(tree) == (best,) and compute_side_branches(tree) == ()


def test_extending_the_tip_is_no_reorg_and_chain_work_adds_up():
    tree = new_tree()
    main = extend(tree, GENESIS, "a", 3, work=5)
    best = compute_best_tip(tree)
    assert best.block_hash == main[-1] and best.height == 3 and best.chain_work == 1 + 3 * 5
    reorg = compute_reorg(tree, main[0], main[-1])
    assert not reorg.is_reorg and reorg.depth == 0 and not is_reorg(tree, main[0], main[-1])
    assert reorg.fork_point.block_hash == main[0]
    assert [e.block_hash for e in reorg.connect] == main[1:]
    same = compute_reorg(tree, main[-1], main[-1])
    assert same.disconnect == () and same.connect == () and same.fork_point == best


@pytest.mark.parametrize("depth", [1, 2, 10])
def test_a_reorg_of_depth_n_disconnects_newest_first_and_connects_oldest_first(depth):
    # Main chain of 20 blocks; a side branch from block 20 - depth overtakes it with one block more.
    tree = new_tree()
    main = extend(tree, GENESIS, "a", 20)
    fork = main[19 - depth]
    side = extend(tree, fork, "b", depth)
    # Equal work: the main chain was seen first and stays (Core: earliest time received wins).
    assert compute_best_tip(tree).block_hash == main[-1]
    side += extend(tree, side[-1], "c", 1)
    best = compute_best_tip(tree)
    assert best.block_hash == side[-1]

    reorg = compute_reorg(tree, main[-1], best.block_hash)
    assert isinstance(reorg, Reorg) and reorg.is_reorg and reorg.depth == depth
    assert is_reorg(tree, main[-1], best.block_hash)
    assert reorg.fork_point.block_hash == fork and reorg.fork_point.height == 20 - depth
    assert [e.block_hash for e in reorg.disconnect] == main[::-1][:depth]
    assert [e.block_hash for e in reorg.connect] == side
    assert [e.height for e in reorg.disconnect] == list(range(20, 20 - depth, -1))
    assert [e.height for e in reorg.connect] == list(range(21 - depth, 22))
    # The orphaned blocks are exactly the disconnected ones.
    assert {e.block_hash for e in compute_side_branches(tree)} == set(main[20 - depth :])


def test_equal_work_goes_to_the_first_seen_whichever_branch_that_is():
    # Core's nSequenceId rule: the same two branches, added in the other order, give the other tip.
    for first, second in (("x", "y"), ("y", "x")):
        tree = new_tree()
        a = extend(tree, GENESIS, first, 3, work=2)
        b = extend(tree, GENESIS, second, 2, work=3)
        assert tree.get(a[-1]).chain_work == tree.get(b[-1]).chain_work
        assert compute_best_tip(tree).block_hash == a[-1]
        assert is_better(tree.get(a[-1]), tree.get(b[-1])) and not is_better(tree.get(b[-1]), tree.get(a[-1]))


def test_more_work_beats_more_length():
    # Five easy blocks against two hard ones from genesis: work decides, not height.
    tree = new_tree()
    long = extend(tree, GENESIS, "easy", 5, work=10)
    short = extend(tree, GENESIS, "hard", 2, work=26)
    best = compute_best_tip(tree)
    assert best.block_hash == short[-1] and best.height == 2 and best.chain_work == 53
    assert tree.get(long[-1]).chain_work == 51
    reorg = compute_reorg(tree, long[-1], short[-1])
    assert reorg.depth == 5 and len(reorg.connect) == 2


def test_more_work_from_real_bits_beats_more_length():
    # The work comes from compact bits as Core's GetBlockProof: halving the target doubles the work.
    limit = REGTEST.pow_limit
    easy_bits = encode_compact(limit)
    hard_bits = encode_compact(limit // 4)
    easy = compute_header_work(easy_bits, limit)
    hard = compute_header_work(hard_bits, limit)
    assert hard > 3 * easy
    tree = BlockTree(GENESIS, easy)
    long = extend(tree, GENESIS, "easy", 3, work=easy)
    short = extend(tree, GENESIS, "hard", 1, work=hard)
    assert compute_best_tip(tree).block_hash == short[-1]
    assert tree.get(long[-1]).height > tree.get(short[-1]).height


def test_fork_point_at_genesis_disconnects_the_whole_old_branch():
    tree = new_tree()
    old = extend(tree, GENESIS, "a", 4)
    new = extend(tree, GENESIS, "b", 5)
    assert compute_fork_point(tree, old[-1], new[-1]).block_hash == GENESIS
    assert compute_fork_point(tree, new[-1], old[-1]).block_hash == GENESIS
    reorg = compute_reorg(tree, old[-1], new[-1])
    assert reorg.fork_point == tree.genesis and reorg.depth == 4
    assert [e.block_hash for e in reorg.disconnect] == old[::-1]
    assert [e.block_hash for e in reorg.connect] == new


def test_get_ancestor_on_the_best_chain_and_on_a_side_branch():
    tree = new_tree()
    main = extend(tree, GENESIS, "a", 10)
    side = extend(tree, main[3], "b", 3)  # heights 5, 6, 7 off block 4
    assert get_ancestor_at_height(tree, main[-1], 0).block_hash == GENESIS
    assert get_ancestor_at_height(tree, main[-1], 4).block_hash == main[3]
    assert get_ancestor_at_height(tree, main[-1], 10).block_hash == main[-1]
    assert get_ancestor_at_height(tree, side[-1], 6).block_hash == side[1]
    assert get_ancestor_at_height(tree, side[-1], 4).block_hash == main[3]
    assert get_ancestor_at_height(tree, side[-1], 1).block_hash == main[0]
    assert is_ancestor(tree, main[3], side[-1]) and not is_ancestor(tree, main[4], side[-1])
    assert not is_ancestor(tree, side[-1], main[3])


def test_side_branches_and_tips_list_what_is_off_the_best_chain():
    tree = new_tree()
    main = extend(tree, GENESIS, "a", 6)
    side1 = extend(tree, main[1], "b", 2)
    side2 = extend(tree, main[3], "c", 1)
    assert [e.block_hash for e in compute_side_branches(tree)] == side1 + side2
    assert [e.block_hash for e in compute_chain_tips(tree)] == [main[-1], side1[-1], side2[-1]]
    # Seen from a side tip instead, the best chain's blocks above that fork are the side ones.
    from_side = {e.block_hash for e in compute_side_branches(tree, side1[-1])}
    assert from_side == set(main[2:]) | set(side2)


# --- finality -------------------------------------------------------------------------------------


def test_a_reorg_across_a_finalized_block_is_refused():
    tree = new_tree()
    main = extend(tree, GENESIS, "a", 10)
    side = extend(tree, main[4], "b", 8)  # forks at height 5, heavier than the main chain
    assert compute_best_tip(tree).block_hash == side[-1]
    finalized = main[6]  # height 7, on the old branch above the fork point
    with pytest.raises(ReorgPastFinalizedBlockError, match="would disconnect the finalized block 7") as info:
        compute_reorg(tree, main[-1], side[-1], finalized=finalized)
    assert info.value.code == "reorg_past_finalized_block"
    assert info.value.finalized_hash == finalized and info.value.finalized_height == 7 and info.value.depth == 5
    reorg = compute_reorg(tree, main[-1], side[-1])  # the path itself is computable; only the check refuses
    with pytest.raises(ReorgPastFinalizedBlockError):
        check_reorg_allowed(tree, reorg, finalized)
    # With finality, the heavier conflicting branch is never the best tip: the finalized branch's is.
    assert compute_best_tip(tree, finalized=finalized).block_hash == main[-1]


def test_a_reorg_above_the_finalized_block_is_allowed():
    tree = new_tree()
    main = extend(tree, GENESIS, "a", 10)
    side = extend(tree, main[4], "b", 8)
    for finalized in (GENESIS, main[3], main[4]):  # at or below the fork point
        reorg = compute_reorg(tree, main[-1], side[-1], finalized=finalized)
        assert reorg.depth == 5
        assert compute_best_tip(tree, finalized=finalized).block_hash == side[-1]


def test_best_tip_under_finality_weighs_only_branches_that_keep_it():
    tree = new_tree()
    main = extend(tree, GENESIS, "a", 6)
    heavy = extend(tree, main[0], "h", 3, work=100)  # overall best, conflicts with main[2]
    light = extend(tree, main[2], "l", 2)  # descends from main[2], one block short of main's work
    assert compute_best_tip(tree).block_hash == heavy[-1]
    assert compute_best_tip(tree, finalized=main[2]).block_hash == main[-1]
    light += extend(tree, light[-1], "m", 3)
    assert compute_best_tip(tree, finalized=main[2]).block_hash == light[-1]
    # The finalized block itself, when nothing builds on it, is its own best tip.
    assert compute_best_tip(tree, finalized=main[-1]).block_hash == main[-1]


# --- every typed refusal -------------------------------------------------------------------------


def assert_unchanged(tree: BlockTree, size: int, best: BlockEntry) -> None:
    assert len(tree) == size and compute_best_tip(tree) == best


def test_invalid_unknown_parent():
    tree = new_tree()
    with pytest.raises(UnknownParentError, match="not in the tree") as info:
        tree.add_block(h("x"), h("nowhere"), 1, 1)
    assert info.value.parent_hash == h("nowhere") and info.value.code == "unknown_parent"
    assert_unchanged(tree, 1, tree.genesis)


def test_invalid_duplicate_block():
    tree = new_tree()
    a = extend(tree, GENESIS, "a", 2)
    best = compute_best_tip(tree)
    with pytest.raises(DuplicateBlockError, match="already in the tree"):
        tree.add_block(a[0], GENESIS, 1, 1)
    with pytest.raises(DuplicateBlockError):
        tree.add_block(GENESIS, a[1], 3, 1)
    assert_unchanged(tree, 3, best)


@pytest.mark.parametrize("height", [0, 2, 5, -1, True, "1", 1.0])
def test_invalid_height_not_parent_plus_one(height):
    tree = new_tree()
    with pytest.raises(BlockHeightMismatchError, match="must be 1"):
        tree.add_block(h("x"), GENESIS, height, 1)
    assert_unchanged(tree, 1, tree.genesis)


@pytest.mark.parametrize("work", [0, -1, True, 1.5, "1", None])
def test_invalid_work(work):
    tree = new_tree()
    with pytest.raises(BlockWorkError, match="positive integer"):
        tree.add_block(h("x"), GENESIS, 1, work)
    with pytest.raises(BlockWorkError):
        BlockTree(GENESIS, work)
    assert_unchanged(tree, 1, tree.genesis)


@pytest.mark.parametrize("bad", [b"short", "00" * 32, bytes(33), None, [1]])
def test_invalid_hash(bad):
    tree = new_tree()
    with pytest.raises(BlockHashError, match="32 bytes"):
        tree.add_block(bad, GENESIS, 1, 1)
    with pytest.raises(BlockHashError):
        BlockTree(bad, 1)
    with pytest.raises(BlockHashError):
        BlockTree(GENESIS, 1, genesis_parent=bad)
    # An unknown parent of the wrong shape is refused as a bad hash, not as a missing block.
    with pytest.raises(BlockHashError):
        tree.add_block(h("x"), bad, 1, 1)
    assert_unchanged(tree, 1, tree.genesis)


def test_invalid_block_not_in_tree():
    tree = new_tree()
    a = extend(tree, GENESIS, "a", 2)
    for call in (
        lambda: tree.get(h("nowhere")),
        lambda: tree.get("not bytes"),
        lambda: compute_reorg(tree, a[-1], h("nowhere")),
        lambda: compute_reorg(tree, h("nowhere"), a[-1]),
        lambda: compute_reorg(tree, a[0], a[-1], finalized=h("nowhere")),
        lambda: compute_fork_point(tree, a[0], h("nowhere")),
        lambda: get_ancestor_at_height(tree, h("nowhere"), 0),
        lambda: compute_best_tip(tree, finalized=h("nowhere")),
        lambda: compute_side_branches(tree, h("nowhere")),
    ):
        with pytest.raises(BlockNotInTreeError, match="is not in the tree"):
            call()


@pytest.mark.parametrize("height", [-1, 3, 100, True, "1"])
def test_invalid_ancestor_height(height):
    tree = new_tree()
    a = extend(tree, GENESIS, "a", 2)
    with pytest.raises(AncestorHeightError, match="no ancestor at height"):
        get_ancestor_at_height(tree, a[-1], height)


def test_invalid_reorg_to_a_branch_without_the_finalized_block():
    # The finalized block is on neither tip's path in the disconnect list, yet the new tip does not
    # contain it: still refused (consensus-specs keeps only branches descending from finality).
    tree = new_tree()
    a = extend(tree, GENESIS, "a", 3)
    b = extend(tree, a[0], "b", 3)
    c = extend(tree, a[0], "c", 4)
    with pytest.raises(ReorgPastFinalizedBlockError, match="does not descend from the finalized block"):
        compute_reorg(tree, b[-1], c[-1], finalized=a[1])


def test_every_tree_error_is_a_block_tree_error_with_its_own_code():
    classes = [
        AncestorHeightError, BlockHashError, BlockHeightMismatchError, BlockNotInTreeError, BlockWorkError,
        DuplicateBlockError, ReorgPastFinalizedBlockError, UnknownParentError,
    ]
    assert all(issubclass(cls, BlockTreeError) for cls in classes)
    assert len({cls.code for cls in classes}) == len(classes)


# --- properties over random trees ----------------------------------------------------------------


@st.composite
def random_trees(draw):
    """A random tree: each block picks any earlier block as parent and a work of 1 to 4."""
    tree = new_tree()
    hashes = [GENESIS]
    for i in range(draw(st.integers(min_value=1, max_value=40))):
        parent = hashes[draw(st.integers(min_value=0, max_value=len(hashes) - 1))]
        block = h(f"block {i}")
        tree.add_block(block, parent, tree.get(parent).height + 1, draw(st.integers(min_value=1, max_value=4)))
        hashes.append(block)
    old = hashes[draw(st.integers(min_value=0, max_value=len(hashes) - 1))]
    new = hashes[draw(st.integers(min_value=0, max_value=len(hashes) - 1))]
    return tree, hashes, old, new


@settings(max_examples=300, deadline=None)
@given(random_trees())
def test_applying_a_reorg_to_the_old_path_yields_the_new_path(case):
    tree, _hashes, old, new = case
    reorg = compute_reorg(tree, old, new)
    chain = path(tree, old)
    for entry in reorg.disconnect:  # newest first: each is the current tip when it goes
        assert chain[-1] == entry.block_hash
        chain.pop()
    assert chain[-1] == reorg.fork_point.block_hash
    for entry in reorg.connect:  # oldest first: each builds on the current tip
        assert entry.parent_hash == chain[-1]
        chain.append(entry.block_hash)
    assert chain == path(tree, new)
    assert reorg.is_reorg == is_reorg(tree, old, new) == (old not in path(tree, new))


@settings(max_examples=300, deadline=None)
@given(random_trees())
def test_the_tree_agrees_with_naive_walks(case):
    tree, hashes, old, new = case
    entries = [tree.get(x) for x in hashes]
    # Best tip: Core's comparator over every block, by brute force.
    naive_best = max(entries, key=lambda e: (e.chain_work, -e.sequence))
    assert compute_best_tip(tree) == naive_best
    # Chain work is the sum of the path's work; sequence is first-seen order.
    for i, entry in enumerate(entries):
        assert entry.chain_work == sum(tree.get(x).work for x in path(tree, entry.block_hash))
        assert entry.sequence == i
    # Ancestors, fork point and side branches against parent walks.
    for height in range(tree.get(old).height + 1):
        assert get_ancestor_at_height(tree, old, height).block_hash == path(tree, old)[height]
    old_path, new_path = path(tree, old), path(tree, new)
    common = [a for a, b in zip(old_path, new_path, strict=False) if a == b]
    assert compute_fork_point(tree, old, new).block_hash == common[-1]
    best_path = set(path(tree, naive_best.block_hash))
    assert [e.block_hash for e in compute_side_branches(tree)] == [x for x in hashes if x not in best_path]
    assert {e.block_hash for e in compute_side_branches(tree, old)} == set(hashes) - set(old_path)
    # Tips: exactly the blocks nobody builds on.
    parents = {e.parent_hash for e in entries}
    assert [e.block_hash for e in compute_chain_tips(tree)] == [x for x in hashes if x not in parents]
    # Under finality: the best of the blocks that descend from the finalized block.
    keeping = [e for e in entries if old in path(tree, e.block_hash)]
    assert compute_best_tip(tree, finalized=old) == max(keeping, key=lambda e: (e.chain_work, -e.sequence))
