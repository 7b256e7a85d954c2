"""LMD-GHOST over a block tree (chain/pos/lmd_ghost.py), shaped like consensus-specs' fork-choice tests.

Where a test mirrors one of consensus-specs' (tests/core/pyspec/eth2spec/test/phase0/fork_choice/
test_get_head.py, test_on_block.py, test_on_attestation.py), its docstring names it.  Trees are
built by hand: roots are labels, four validators of 32 points each, four slots per epoch.
"""

import hashlib

import pytest

from chain.errors import (
    BlockSlotOrderError,
    EncodingError,
    FinalizedConflictError,
    ForkChoiceError,
    ForkChoiceTimingError,
    ForkChoiceUnknownParentError,
    HeadOffFinalizedCheckpointError,
    InconsistentVoteError,
    JustifiedBalancesError,
    NotFinalizedDescendantError,
    UnknownForkChoiceBlockError,
)
from chain.pos.attestation import AttestationData, Checkpoint
from chain.pos.lmd_ghost import (
    BlockNode,
    LatestMessage,
    RefusedBranch,
    Store,
    check_head_change,
    decide_head,
    filter_block_tree,
    get_ancestor,
    get_checkpoint_block,
    get_filtered_block_tree,
    get_forkchoice_store,
    get_head,
    get_refused_branches,
    get_weight,
    get_weights,
    is_finalized_descendant,
    on_attestation,
    on_attester_slashing,
    on_block,
    on_tick,
    update_checkpoints,
    update_latest_messages,
)

SLOTS_PER_EPOCH = 4
BALANCES = (32, 32, 32, 32)


def r(label: str) -> bytes:
    """A 32-byte root for a readable label."""
    return hashlib.sha256(label.encode()).digest()


G = r("genesis")
GENESIS_CHECKPOINT = Checkpoint(0, G)


def genesis_store(balances=BALANCES) -> Store:
    return get_forkchoice_store(G, 0, balances, slots_per_epoch=SLOTS_PER_EPOCH)


def add(store, label, parent, slot, justified=GENESIS_CHECKPOINT, finalized=GENESIS_CHECKPOINT, balances=None):
    """Tick the clock to ``slot`` if needed and add the block ``label`` on ``parent``."""
    if store.current_slot < slot:
        store = on_tick(store, slot)
    parent_root = parent if isinstance(parent, bytes) else r(parent)
    return on_block(store, BlockNode(r(label), parent_root, slot, justified, finalized), balances)


def vote(store, indices, head_label, slot=None):
    """Validators ``indices`` vote for ``head_label`` at ``slot`` (default: the clock's slot), counted next slot."""
    head = r(head_label)
    slot = store.current_slot if slot is None else slot
    epoch = slot // SLOTS_PER_EPOCH
    target = Checkpoint(epoch, get_checkpoint_block(store, head, epoch))
    data = AttestationData(1, slot, head, store.justified_checkpoint, target)
    if store.current_slot < slot + 1:
        store = on_tick(store, slot + 1)
    return on_attestation(store, indices, data)


def split(labels=("a", "b")):
    """Two children of genesis at slot 1, in the order given."""
    store = genesis_store()
    for label in labels:
        store = add(store, label, G, 1)
    return store


# --- get_head -----------------------------------------------------------------


def test_genesis():
    """Mirrors test_get_head.py::test_genesis: a fresh store's head is its anchor."""
    assert get_head(genesis_store()) == G


def test_chain_no_attestations():
    """Mirrors test_get_head.py::test_chain_no_attestations: a single chain's tip is the head."""
    store = add(add(genesis_store(), "1", G, 1), "2", "1", 2)
    assert get_head(store) == r("2")


def test_split_tie_breaker_no_attestations():
    """Mirrors test_get_head.py::test_split_tie_breaker_no_attestations: the higher root wins a tie."""
    store = split()
    higher = max(r("a"), r("b"))
    assert get_head(store) == higher
    # The order the blocks arrived in does not matter, only their roots.
    assert get_head(split(("b", "a"))) == higher


def test_split_tie_breaker_with_equal_votes():
    """Equal stake on both sides is still a tie, broken by the higher root."""
    store = vote(vote(split(), [0], "a"), [1], "b")
    assert get_weight(store, r("a")) == get_weight(store, r("b")) == 32
    assert get_head(store) == max(r("a"), r("b"))


def test_shorter_chain_but_heavier_weight():
    """Mirrors test_get_head.py::test_shorter_chain_but_heavier_weight: votes beat length."""
    store = genesis_store()
    parent = G
    for slot in range(1, 6):
        store = add(store, f"long{slot}", parent, slot)
        parent = r(f"long{slot}")
    store = add(store, "short", G, 6)
    store = vote(store, [0], "long5")
    assert get_head(store) == r("long5")
    store = vote(store, [1, 2], "short")
    assert get_head(store) == r("short")
    assert get_weight(store, r("short")) == 64
    assert get_weight(store, r("long1")) == 32


def test_weight_counts_votes_for_descendants():
    """A vote for a block weighs on every ancestor of it (phase0 get_weight: get_ancestor(vote) == root)."""
    store = add(add(split(), "a2", "a", 2), "a3", "a2", 3)
    store = vote(store, [0, 1], "a3")
    store = vote(store, [2], "b")
    assert [get_weight(store, r(x)) for x in ("a", "a2", "a3", "b")] == [64, 64, 64, 32]
    assert get_weight(store, G) == 96
    assert get_head(store) == r("a3")


def test_get_weights_equals_get_weight_everywhere():
    """The one-pass weights are the spec's get_weight for every block of a bushy tree."""
    store = split(("a", "b", "c"))
    store = add(store, "a2", "a", 2)
    store = add(store, "a2x", "a2", 3)
    store = add(store, "a2y", "a2", 4)
    store = add(store, "b2", "b", 5)
    store = vote(store, [0], "a2x")
    store = vote(store, [1], "a2y")
    store = vote(store, [2], "b2")
    store = vote(store, [3], "a")
    weights = get_weights(store)
    assert {root: get_weight(store, root) for root in store.blocks} == dict(weights)
    assert weights[r("a")] == 96 and weights[r("c")] == 0


def test_zero_balance_and_unknown_index_do_not_weigh():
    """Inactive or slashed validators (weight 0 at the justified state) and indices beyond it count nothing."""
    store = get_forkchoice_store(G, 0, (32, 0), slots_per_epoch=SLOTS_PER_EPOCH)
    store = add(add(store, "a", G, 1), "b", G, 1)
    lower, higher = sorted((r("a"), r("b")))
    lower_label = "a" if lower == r("a") else "b"
    store = vote(store, [1, 7], lower_label)
    assert get_weight(store, lower) == 0
    assert get_head(store) == higher
    store = vote(store, [0], lower_label)
    assert get_head(store) == lower


# --- latest messages ------------------------------------------------------------


def test_newer_message_moves_weight():
    """update_latest_messages: a vote of a later target epoch replaces the validator's latest."""
    store = split()
    store = vote(store, [0], "a", slot=1)
    assert get_weight(store, r("a")) == 32
    store = on_tick(store, SLOTS_PER_EPOCH)
    store = vote(store, [0], "b")
    assert get_weight(store, r("a")) == 0
    assert get_weight(store, r("b")) == 32
    assert get_head(store) == r("b")


def test_older_or_same_epoch_message_does_not_replace():
    """Only a strictly newer target epoch replaces: an older or equal one is ignored (LMD)."""
    store = split()
    store = on_tick(store, SLOTS_PER_EPOCH + 1)
    store = vote(store, [0], "a")
    same_epoch = vote(store, [0], "b")
    assert same_epoch.latest_messages[0].root == r("a")
    older = vote(store, [0], "b", slot=SLOTS_PER_EPOCH - 1)
    assert older.latest_messages[0].root == r("a")
    assert older.latest_messages[0].epoch == 1


def test_discard_equivocations_on_attester_slashing():
    """Mirrors test_get_head.py::test_discard_equivocations_on_attester_slashing: an equivocator's
    vote stops weighing, and its later votes are not recorded."""
    store = vote(vote(split(), [0, 1], "a"), [2], "b")
    assert get_head(store) == r("a")
    store = on_attester_slashing(store, [0])
    assert get_weight(store, r("a")) == 32
    assert get_head(store) == max(r("a"), r("b"))  # 32 against 32: a tie now
    store = vote(on_tick(store, SLOTS_PER_EPOCH), [0], "b")
    assert store.latest_messages[0] == LatestMessage(0, r("a"))
    assert get_weight(store, r("b")) == 32


def test_handlers_leave_the_given_store_unchanged():
    """Invalid or not, a handler returns a new store; the one it was given is never modified."""
    before = split()
    snapshot = (dict(before.blocks), dict(before.latest_messages), before.current_slot)
    vote(before, [0], "a")
    add(before, "c", "a", 2)
    with pytest.raises(ForkChoiceUnknownParentError):
        add(before, "d", "nowhere", 2)
    assert (dict(before.blocks), dict(before.latest_messages), before.current_slot) == snapshot


# --- viability: filter_block_tree --------------------------------------------------


def justified_tree():
    """G - A(slot 4) - B(slot 8, justifies (1, A)); and C(slot 9) on A whose state justified only genesis."""
    store = add(genesis_store(), "A", G, 4)
    store = add(store, "B", "A", 8, justified=Checkpoint(1, r("A")), balances=BALANCES)
    store = add(store, "C", "A", 9)
    assert store.justified_checkpoint == Checkpoint(1, r("A"))
    return vote(store, [0, 1, 2], "C")


def test_filtered_block_tree():
    """Mirrors test_get_head.py::test_filtered_block_tree: a heavier branch whose leaf's justified
    checkpoint disagrees with the store's (and is over two epochs old) is filtered out."""
    store = on_tick(justified_tree(), 16)  # epoch 4: C's voting source (epoch 0) is too old
    assert r("C") not in get_filtered_block_tree(store)
    assert set(get_filtered_block_tree(store)) == {r("A"), r("B")}
    assert get_weight(store, r("C")) > get_weight(store, r("B"))
    assert get_head(store) == r("B")


def test_recent_voting_source_stays_viable():
    """Within two epochs, a leaf whose voting source lags the store's is still viable (phase0's window)."""
    store = justified_tree()  # the clock is in epoch 2
    assert r("C") in get_filtered_block_tree(store)
    assert get_head(store) == r("C")


def test_filter_from_a_root_with_no_viable_leaf_is_empty():
    store = on_tick(justified_tree(), 16)
    assert dict(filter_block_tree(store, r("C"))) == {}


# --- finality: no reorg across it --------------------------------------------------


def finality_race():
    """Branch Y (one block, slot 2) and branch X (slots 1, 4, 8) fork at genesis; 3 votes for Y, 1 for X."""
    store = genesis_store()
    store = add(store, "Y1", G, 2)
    store = add(store, "X1", G, 1)
    store = add(store, "X2", "X1", 4)
    store = add(store, "X3", "X2", 8, justified=Checkpoint(1, r("X2")), balances=BALANCES)
    store = vote(store, [0, 1, 2], "Y1")
    return vote(store, [3], "X3")


def finalize_x(store):
    """X4 (slot 12): its state justified (2, X3) and finalized (1, X2)."""
    return add(
        store, "X4", "X3", 12, justified=Checkpoint(2, r("X3")), finalized=Checkpoint(1, r("X2")), balances=BALANCES
    )


def test_heavier_branch_wins_before_finality():
    """The contrast: with only genesis justified and finalized, the same votes make Y the head."""
    store = genesis_store()
    store = add(add(store, "Y1", G, 2), "X1", G, 1)
    store = vote(vote(store, [0, 1, 2], "Y1"), [3], "X1")
    assert get_head(store) == r("Y1")


def test_branch_conflicting_with_finality_is_never_chosen_even_when_heavier():
    store = finalize_x(finality_race())
    assert store.finalized_checkpoint == Checkpoint(1, r("X2"))
    assert get_weight(store, r("Y1")) == 96 > get_weight(store, r("X1")) == 32
    assert get_head(store) == r("X4")
    assert not is_finalized_descendant(store, r("Y1"))
    assert is_finalized_descendant(store, r("X4"))
    # More stake moving to Y changes nothing.
    store = on_tick(store, 13)
    assert get_head(vote(store, [3], "Y1")) == r("X4")


def test_reorg_across_finality_is_refused_with_its_code():
    store = finalize_x(finality_race())
    with pytest.raises(HeadOffFinalizedCheckpointError) as refused:
        check_head_change(store, r("Y1"))
    assert isinstance(refused.value, FinalizedConflictError)
    assert refused.value.code == "head_off_finalized_checkpoint"
    assert refused.value.head == r("Y1")
    assert (refused.value.finalized_epoch, refused.value.finalized_root) == (1, r("X2"))
    check_head_change(store, r("X4"))  # inside the finalized subtree: allowed


def test_refused_heavier_branch_is_announced():
    """decide_head reports the switch away from Y (one block orphaned) and why Y was refused."""
    store = finalize_x(finality_race())
    change = decide_head(store, previous_head=r("Y1"))
    assert change.head == r("X4")
    assert change.common_ancestor == G
    assert change.orphaned == (r("Y1"),)
    assert change.depth == 1
    assert change.refused == (RefusedBranch(fork_point=G, root=r("Y1"), tip=r("Y1"), weight=96, canonical_weight=32),)
    assert get_refused_branches(store) == change.refused


def test_head_extending_previous_is_no_reorg():
    store = finalize_x(finality_race())
    change = decide_head(store, previous_head=r("X2"))
    assert (change.common_ancestor, change.orphaned, change.depth) == (r("X2"), (), 0)


def test_lighter_conflicting_branch_is_not_announced():
    store = vote(finalize_x(finality_race()), [0, 1, 2], "X4")
    assert get_weight(store, r("Y1")) == 0
    assert get_refused_branches(store) == ()


def test_on_block_before_finalized():
    """Mirrors test_on_block.py::test_on_block_before_finalized: a block off the finalized chain is refused."""
    store = finalize_x(finality_race())
    with pytest.raises(NotFinalizedDescendantError) as refused:
        add(store, "Y2", "Y1", 13)
    assert refused.value.code == "not_finalized_descendant"
    assert isinstance(refused.value, FinalizedConflictError)


def test_on_block_finalized_skip_slots():
    """Mirrors test_on_block.py::test_on_block_finalized_skip_slots and
    ..._not_in_skip_chain: the finalized epoch's first slot was empty, so its checkpoint names the
    block before; a block in that empty slot would change what the checkpoint names, and is refused."""
    store = genesis_store()
    store = add(store, "R", G, 5)  # epoch 1; slot 8 (epoch 2's first) stays empty
    store = add(store, "S", "R", 9, justified=Checkpoint(2, r("R")), balances=BALANCES)
    store = add(
        store, "T", "S", 13, justified=Checkpoint(3, r("S")), finalized=Checkpoint(2, r("R")), balances=BALANCES
    )
    assert store.finalized_checkpoint == Checkpoint(2, r("R"))
    with pytest.raises(NotFinalizedDescendantError):
        add(store, "late", "R", 8)
    assert is_finalized_descendant(add(store, "skip", "R", 10), r("skip"))


def test_block_in_the_finalized_empty_slot_is_refused_and_announced():
    """A block at slot 8 on R, seen before finality, conflicts with checkpoint (2, R): never the head."""
    store = genesis_store()
    store = add(store, "R", G, 5)
    store = add(store, "late", "R", 8)
    store = add(store, "S", "R", 9, justified=Checkpoint(2, r("R")), balances=BALANCES)
    store = vote(store, [0, 1, 2], "late")
    store = add(
        store, "T", "S", 13, justified=Checkpoint(3, r("S")), finalized=Checkpoint(2, r("R")), balances=BALANCES
    )
    assert not is_finalized_descendant(store, r("late"))
    assert get_head(store) == r("T")
    refused = get_refused_branches(store)
    assert [(b.fork_point, b.root, b.weight, b.canonical_weight) for b in refused] == [(r("R"), r("late"), 96, 0)]


def test_get_ancestor():
    store = add(add(add(genesis_store(), "1", G, 1), "3", "1", 3), "7", "3", 7)
    assert get_ancestor(store, r("7"), 7) == r("7")
    assert get_ancestor(store, r("7"), 6) == r("3")  # slots 4-6 are empty: the latest block before
    assert get_ancestor(store, r("7"), 1) == r("1")
    assert get_ancestor(store, r("7"), 0) == G
    assert get_checkpoint_block(store, r("7"), 1) == r("3")


def test_get_ancestor_below_a_non_genesis_anchor_answers_the_anchor():
    anchor = r("anchor")
    store = get_forkchoice_store(anchor, 10, BALANCES, slots_per_epoch=SLOTS_PER_EPOCH)
    assert store.finalized_checkpoint == Checkpoint(2, anchor)
    store = add(store, "next", anchor, 11)
    assert get_ancestor(store, r("next"), 3) == anchor
    assert is_finalized_descendant(store, r("next"))
    assert get_head(store) == r("next")


def test_long_chain_needs_no_recursion():
    """Three thousand blocks deep: deeper than Python's recursion limit, which the spec's recursion would hit."""
    store = genesis_store()
    parent = G
    for slot in range(1, 3001):
        store = add(store, str(slot), parent, slot)
        parent = r(str(slot))
    assert get_head(store) == parent
    assert get_ancestor(store, parent, 1) == r("1")


# --- typed refusals ------------------------------------------------------------------


def test_invalid_unknown_root():
    store = split()
    for call in (
        lambda: get_weight(store, r("ghost")),
        lambda: get_ancestor(store, r("ghost"), 0),
        lambda: decide_head(store, r("ghost")),
        lambda: is_finalized_descendant(store, r("ghost")),
        lambda: filter_block_tree(store, r("ghost")),
    ):
        with pytest.raises(UnknownForkChoiceBlockError) as refused:
            call()
        assert refused.value.code == "fork_choice_unknown_block"
        assert refused.value.root == r("ghost")


def test_invalid_message_for_unknown_block():
    """Mirrors test_on_attestation.py::test_on_attestation_beacon_block_not_in_store."""
    store = on_tick(split(), 3)
    data = AttestationData(1, 2, r("ghost"), GENESIS_CHECKPOINT, GENESIS_CHECKPOINT)
    with pytest.raises(UnknownForkChoiceBlockError):
        on_attestation(store, [0], data)
    with pytest.raises(UnknownForkChoiceBlockError):
        update_latest_messages(store, [0], data)


def test_invalid_target_for_unknown_block():
    """Mirrors test_on_attestation.py::test_on_attestation_target_block_not_in_store."""
    store = on_tick(split(), 3)
    data = AttestationData(1, 2, r("a"), GENESIS_CHECKPOINT, Checkpoint(0, r("ghost")))
    with pytest.raises(UnknownForkChoiceBlockError):
        on_attestation(store, [0], data)


def test_invalid_unknown_parent():
    """Mirrors test_on_block.py::test_on_block_bad_parent_root."""
    with pytest.raises(ForkChoiceUnknownParentError) as refused:
        add(genesis_store(), "orphan", "nowhere", 1)
    assert refused.value.code == "fork_choice_unknown_parent"


def test_invalid_block_from_the_future():
    """Mirrors test_on_block.py::test_on_block_future_block."""
    with pytest.raises(ForkChoiceTimingError) as refused:
        on_block(genesis_store(), BlockNode(r("soon"), G, 3, GENESIS_CHECKPOINT, GENESIS_CHECKPOINT))
    assert refused.value.code == "fork_choice_timing"


def test_invalid_block_slot_not_after_parent():
    store = add(genesis_store(), "a", G, 2)
    with pytest.raises(BlockSlotOrderError) as refused:
        add(store, "b", "a", 2)
    assert refused.value.code == "fork_choice_slot_order"
    with pytest.raises(BlockSlotOrderError):
        add(store, "c", "a", 3, justified=Checkpoint(1, r("a")))  # epoch 0 cannot claim epoch 1
    with pytest.raises(BlockSlotOrderError):
        BlockNode(r("self"), r("self"), 1, GENESIS_CHECKPOINT, GENESIS_CHECKPOINT)


def test_invalid_vote_not_yet_in_the_past():
    """Mirrors test_on_attestation.py::test_on_attestation_same_slot: a vote counts from the next slot."""
    store = split()
    data = AttestationData(1, 1, r("a"), GENESIS_CHECKPOINT, GENESIS_CHECKPOINT)
    with pytest.raises(ForkChoiceTimingError):
        on_attestation(store, [0], data)
    assert on_attestation(on_tick(store, 2), [0], data).latest_messages[0].root == r("a")


def test_invalid_vote_from_a_past_epoch():
    """Mirrors test_on_attestation.py::test_on_attestation_past_epoch; from a block it still counts."""
    store = on_tick(split(), 2 * SLOTS_PER_EPOCH)
    data = AttestationData(1, 1, r("a"), GENESIS_CHECKPOINT, GENESIS_CHECKPOINT)
    with pytest.raises(ForkChoiceTimingError):
        on_attestation(store, [0], data)
    assert on_attestation(store, [0], data, from_block=True).latest_messages[0].root == r("a")


def test_invalid_inconsistent_vote():
    """Mirrors test_on_attestation.py::test_on_attestation_inconsistent_target_and_head and
    ..._future_block (a head from after the vote's slot), and a target epoch that is not the slot's."""
    store = on_tick(add(split(), "a5", "a", 5), 6)
    wrong_target = AttestationData(1, 5, r("a5"), GENESIS_CHECKPOINT, Checkpoint(1, r("b")))
    head_from_later = AttestationData(1, 4, r("a5"), GENESIS_CHECKPOINT, Checkpoint(1, r("a")))
    epoch_not_slots = AttestationData(1, 5, r("a5"), GENESIS_CHECKPOINT, Checkpoint(0, G))
    for data in (wrong_target, head_from_later, epoch_not_slots):
        with pytest.raises(InconsistentVoteError) as refused:
            on_attestation(store, [0], data)
        assert refused.value.code == "fork_choice_inconsistent_vote"


def test_invalid_clock_going_back():
    with pytest.raises(ForkChoiceTimingError):
        on_tick(on_tick(genesis_store(), 5), 4)


def test_invalid_justified_balances():
    with pytest.raises(JustifiedBalancesError) as refused:
        get_forkchoice_store(G, 0, (32, -1), slots_per_epoch=SLOTS_PER_EPOCH)
    assert refused.value.code == "fork_choice_justified_balances"
    with pytest.raises(JustifiedBalancesError):
        get_forkchoice_store(G, 0, (True, 32), slots_per_epoch=SLOTS_PER_EPOCH)
    store = add(genesis_store(), "A", G, 4)
    with pytest.raises(JustifiedBalancesError):  # justification moves: its balances are needed
        add(store, "B", "A", 8, justified=Checkpoint(1, r("A")))


def test_invalid_conflicting_finality():
    """Two conflicting finalized checkpoints (a third of the stake slashable) are refused."""
    store = finalize_x(finality_race())
    with pytest.raises(NotFinalizedDescendantError):
        update_checkpoints(store, store.justified_checkpoint, Checkpoint(2, r("Y1")))
    with pytest.raises(NotFinalizedDescendantError):
        update_checkpoints(store, Checkpoint(3, r("Y1")), store.finalized_checkpoint, BALANCES)
    # Older checkpoints never replace newer ones (phase0 update_checkpoints): nothing moves.
    assert update_checkpoints(store, GENESIS_CHECKPOINT, GENESIS_CHECKPOINT) == store


def test_invalid_duplicate_block_with_other_content():
    store = add(genesis_store(), "a", G, 1)
    assert add(store, "a", G, 1) is store
    with pytest.raises(ForkChoiceError) as refused:
        add(store, "a", G, 2)
    assert refused.value.code == "fork_choice"


def test_invalid_validator_index():
    store = on_tick(split(), 2)
    data = AttestationData(1, 1, r("a"), GENESIS_CHECKPOINT, GENESIS_CHECKPOINT)
    for bad in (-1, True, 2**64):
        with pytest.raises(EncodingError):
            on_attestation(store, [bad], data)
        with pytest.raises(EncodingError):
            on_attester_slashing(store, [bad])


def test_filter_drops_a_branch_that_changes_what_the_finalized_checkpoint_names():
    """``filter_block_tree``'s correct_finalized: with (2, R) both justified and finalized, GHOST starts
    at R, and the heavier child in R's empty checkpoint slot is filtered out, not chosen."""
    store = genesis_store()
    store = add(store, "R", G, 5)
    store = add(store, "late", "R", 8)
    store = add(store, "S", "R", 9, justified=Checkpoint(2, r("R")), balances=BALANCES)
    store = vote(store, [0, 1, 2], "late")
    # Still epoch 2: late's voting source (genesis) is within phase0's two-epoch window, so only
    # finality can rule it out.
    store = add(store, "T", "S", 11, justified=Checkpoint(2, r("R")), finalized=Checkpoint(2, r("R")))
    assert store.justified_checkpoint == store.finalized_checkpoint == Checkpoint(2, r("R"))
    assert get_weight(store, r("late")) > get_weight(store, r("S"))
    assert r("late") not in get_filtered_block_tree(store)
    assert get_head(store) == r("T")
