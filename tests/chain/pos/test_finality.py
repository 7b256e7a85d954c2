"""Casper FFG finality arithmetic: consensus-specs phase0 weigh_justification_and_finalization
and process_justification_and_finalization (beacon-chain.md, "Justification and finalization")."""

import hashlib
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain.errors import EncodingError, FinalityError
from chain.pos.attestation import Checkpoint
from chain.pos.finality import (
    FinalityState,
    compute_justification_threshold,
    genesis_finality_state,
    is_supermajority,
    process_justification_and_finalization,
    weigh_justification_and_finalization,
)

TOTAL = 300
GENESIS_ROOT = hashlib.sha256(b"genesis").digest()


def root(epoch: int) -> bytes:
    return GENESIS_ROOT if epoch == 0 else hashlib.sha256(f"checkpoint {epoch}".encode()).digest()


def cp(epoch: int) -> Checkpoint:
    return Checkpoint(epoch, root(epoch))


def end_epoch(state: FinalityState, previous_votes: int, current_votes: int, total: int = TOTAL) -> FinalityState:
    epoch = state.current_epoch
    return process_justification_and_finalization(
        state, total, previous_votes, current_votes, root(max(epoch - 1, 0)), root(epoch)
    )


def run(pattern: str) -> list[FinalityState]:
    """The states after each epoch from genesis; one character per epoch says when two thirds
    of the stake voted for that epoch's checkpoint: F in the epoch itself, L only during the next
    epoch (late), N never.  As in phase0, votes for epoch e made during e are counted again at the
    end of e + 1, among the previous epoch's votes."""
    state = genesis_finality_state(GENESIS_ROOT)
    states = []
    for epoch, kind in enumerate(pattern):
        previous = TOTAL if epoch > 0 and pattern[epoch - 1] in "FL" else 0
        current = TOTAL if kind == "F" else 0
        state = end_epoch(state, previous, current)
        states.append(state)
    return states


# --- the two-thirds rule ------------------------------------------------------


def test_justified_at_exactly_two_thirds():
    assert is_supermajority(200, 300)
    assert is_supermajority(67, 100)  # 201 >= 200
    assert compute_justification_threshold(300) == 200
    assert compute_justification_threshold(100) == 67


def test_not_justified_just_below_two_thirds():
    assert not is_supermajority(199, 300)
    assert not is_supermajority(66, 100)  # 198 < 200


def test_two_thirds_decides_justification_at_the_epoch():
    state = FinalityState(10, (True, False, False, False), cp(8), cp(9), cp(8))
    assert end_epoch(state, 0, 200).current_justified_checkpoint == cp(10)
    assert end_epoch(state, 0, 199).current_justified_checkpoint == cp(9)
    assert end_epoch(state, 0, 199).justification_bits == (False, True, False, False)


@given(st.integers(0, 10**30), st.integers(1, 10**30))
def test_threshold_is_the_exact_two_thirds(attesting, total):
    attesting = min(attesting, total)
    expected = Fraction(attesting, total) >= Fraction(2, 3)
    assert is_supermajority(attesting, total) is expected
    assert (attesting >= compute_justification_threshold(total)) is expected


# --- the four finalization rules, each alone ------------------------------------------------


def test_rule_1_second_third_fourth_justified_second_with_fourth_as_source():
    # Epochs 9, 8, 7 are justified; 9 was justified with 7 as source (8 was justified late).
    state = FinalityState(10, (True, True, True, False), cp(7), cp(9), cp(5))
    after = end_epoch(state, 0, 0)
    assert after.justification_bits == (False, True, True, True)
    assert after.finalized_checkpoint == cp(7)


def test_rule_2_second_third_justified_second_with_third_as_source():
    state = FinalityState(10, (True, True, False, False), cp(8), cp(9), cp(5))
    after = end_epoch(state, 0, 0)
    assert after.justification_bits == (False, True, True, False)
    assert after.finalized_checkpoint == cp(8)


def test_rule_3_first_second_third_justified_first_with_third_as_source():
    # Epoch 9 was not justified in time; its votes arrive now, with epoch 10's.
    state = FinalityState(10, (False, True, False, False), cp(5), cp(8), cp(5))
    after = end_epoch(state, TOTAL, TOTAL)
    assert after.justification_bits == (True, True, True, False)
    assert after.finalized_checkpoint == cp(8)


def test_rule_4_first_second_justified_first_with_second_as_source():
    state = FinalityState(10, (True, False, False, False), cp(5), cp(9), cp(5))
    after = end_epoch(state, 0, TOTAL)
    assert after.justification_bits == (True, True, False, False)
    assert after.finalized_checkpoint == cp(9)
    assert after.current_justified_checkpoint == cp(10)
    assert after.previous_justified_checkpoint == cp(9)
    assert after.current_epoch == 11


def test_no_rule_fires_when_the_source_is_not_the_right_distance_back():
    # Same bits as rule 4, but the justified source is two epochs back.
    state = FinalityState(10, (True, False, False, False), cp(5), cp(8), cp(5))
    assert end_epoch(state, 0, TOTAL).finalized_checkpoint == cp(5)


# --- runs from genesis --------------------------------------------------------


def test_genesis_epochs_are_skipped():
    states = run("FF")
    assert all(s.justification_bits == (False,) * 4 for s in states)
    assert states[-1].current_justified_checkpoint == cp(0)
    assert [s.current_epoch for s in states] == [1, 2]


def test_full_participation_finalizes_the_previous_epoch():
    states = run("FFFFFF")
    assert [s.current_justified_checkpoint.epoch for s in states] == [0, 0, 2, 3, 4, 5]
    # Epoch 2 has no justified source checkpoint one epoch back (epoch 1 was skipped).
    assert [s.finalized_checkpoint.epoch for s in states] == [0, 0, 0, 2, 3, 4]


def test_late_votes_finalize_three_epochs_back_by_rule_1():
    # F then L: every epoch is justified one epoch late, using the one before as source.
    states = run("FFLLLLL")
    assert [s.finalized_checkpoint.epoch for s in states] == [0, 0, 0, 0, 1, 2, 3]


def test_late_votes_after_on_time_ones_finalize_by_rule_2():
    states = run("FFFLL")
    assert states[-1].justification_bits == (False, True, True, True)
    assert states[-1].finalized_checkpoint == cp(2)


def test_no_finality_without_consecutive_justification():
    # Two thirds vote only every other epoch: each justified epoch has an unjustified neighbour.
    states = run("FF" + "NF" * 6)
    assert states[-1].current_justified_checkpoint == cp(13)
    assert {s.justification_bits for s in states[3:]} == {(True, False, True, False), (False, True, False, True)}
    assert all(s.finalized_checkpoint == cp(0) for s in states)


def test_finality_stalls_and_resumes():
    states = run("FFFFNNFFF")
    finalized = [s.finalized_checkpoint.epoch for s in states]
    assert finalized == [0, 0, 0, 2, 2, 2, 2, 6, 7]


# --- refusals -----------------------------------------------------------------


def test_invalid_total_active_balance():
    with pytest.raises(FinalityError, match="total active balance must be at least 1"):
        end_epoch(genesis_finality_state(), 0, 0, total=0)


@pytest.mark.parametrize("previous, current", [(301, 0), (0, 301), (-1, 0), (True, 0)])
def test_invalid_attesting_balance(previous, current):
    with pytest.raises(FinalityError, match="between 0 and the total active balance 300"):
        end_epoch(FinalityState(10, (False,) * 4, cp(5), cp(5), cp(5)), previous, current)


def test_invalid_inputs_change_nothing_even_when_they_would_justify():
    state = FinalityState(10, (True, False, False, False), cp(5), cp(9), cp(5))
    with pytest.raises(EncodingError, match="checkpoint root"):
        weigh_justification_and_finalization(state, TOTAL, TOTAL, TOTAL, root(9), b"short")
    assert state == FinalityState(10, (True, False, False, False), cp(5), cp(9), cp(5))


def test_invalid_finality_state():
    with pytest.raises(FinalityError, match="4 booleans"):
        FinalityState(3, (True, False, False), cp(0), cp(0), cp(0))
    with pytest.raises(FinalityError, match="after the current epoch 3"):
        FinalityState(3, (False,) * 4, cp(0), cp(4), cp(0))
