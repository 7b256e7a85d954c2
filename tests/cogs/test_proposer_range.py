"""/chain proposer's slot bounds (cogs/explorer.py): what the chain can draw, and no more."""

from __future__ import annotations

import time

import pytest

from chain.consensus.consensus_block import compute_pre_block_beacon
from cogs.errors import UserFacingError
from cogs.explorer import (
    MAX_DRAW_EPOCHS_PAST_STATE,
    PROPOSER_LOOKAHEAD_EPOCHS,
    check_proposer_slot,
    proposer_slot_range,
)
from tests.poskit import new_consensus_chain, pos_config

PER_EPOCH = 4


@pytest.fixture
def beacon():
    return new_consensus_chain(pos_config(slots_per_epoch=PER_EPOCH)).beacon


def test_a_chain_keeping_up_draws_from_its_epoch_to_two_epochs_past_the_current_slot(beacon):
    assert proposer_slot_range(beacon, current=2) == (0, 2 + PROPOSER_LOOKAHEAD_EPOCHS * PER_EPOCH)
    check_proposer_slot(beacon, 0, current=2)
    check_proposer_slot(beacon, 10, current=2)
    with pytest.raises(UserFacingError, match=r"Slot 2,000,000,000 is too far ahead: the current slot is 2, .* "
                       r"Ask for a slot from 0 to 10\."):
        check_proposer_slot(beacon, 2_000_000_000, current=2)


def test_a_chain_far_behind_its_current_slot_draws_a_bounded_number_of_epochs(beacon):
    current = 1_000_000  # no block for a long time: the state is still at epoch 0
    first, last = proposer_slot_range(beacon, current)
    assert (first, last) == (0, MAX_DRAW_EPOCHS_PAST_STATE * PER_EPOCH)
    with pytest.raises(UserFacingError, match=r"no block since slot 0 \(epoch 0\).*Ask for a slot from 0 to 256\."):
        check_proposer_slot(beacon, current, current)


def test_the_last_slot_allowed_takes_milliseconds_to_draw():
    """What the bound buys (printed, not asserted: speed belongs in benchmarks)."""
    state = new_consensus_chain(pos_config(slots_per_epoch=PER_EPOCH))
    _, last = proposer_slot_range(state.beacon, current=10**9)
    started = time.perf_counter()
    pre = compute_pre_block_beacon(state, last, state.tip_hash, True)
    print(f"{pre.epoch} epoch transitions in {(time.perf_counter() - started) * 1e3:.1f} ms")
    assert pre.epoch == MAX_DRAW_EPOCHS_PAST_STATE


def test_a_slot_after_the_last_active_validator_leaves_says_so_not_that_there_are_none():
    """Issue 9 item 7: `/chain proposer slot:…` said "there are no active validators" while there
    were: the draw ran past the exit epoch of every validator active now."""
    from chain.consensus.block import Operations
    from chain.errors import ProposerSelectionError
    from chain.pos.beacon import check_slot_has_proposers, explain_beacon_proposer
    from chain.pos.operations import make_voluntary_exit
    from tests.poskit import CHAIN_ID, Harness, validator_keys

    state = new_consensus_chain(pos_config(1, slots_per_epoch=PER_EPOCH))
    keys = validator_keys(1)
    h = Harness(state, keys)
    h.run_epochs(2)
    h.propose(state.beacon.slot + 1, pool=Operations(
        voluntary_exits=(make_voluntary_exit(keys[0], 0, state.beacon.epoch, CHAIN_ID),)
    ))
    now = state.beacon
    exit_epoch = now.registry.validators[0].exit_epoch
    last_drawable = exit_epoch * PER_EPOCH - 1
    before = compute_pre_block_beacon(state, last_drawable, state.tip_hash, True)
    check_slot_has_proposers(now, before, last_drawable)
    assert explain_beacon_proposer(before, last_drawable).candidates == (0,)

    after = compute_pre_block_beacon(state, last_drawable + 1, state.tip_hash, True)
    with pytest.raises(ProposerSelectionError, match=(
        rf"nobody can propose slot {last_drawable + 1}: the 1 validator active now leaves by epoch {exit_epoch} "
        rf"\(exited, slashed or ejected\) and none other will be active in epoch {exit_epoch}"
    )):
        check_slot_has_proposers(now, after, last_drawable + 1)
