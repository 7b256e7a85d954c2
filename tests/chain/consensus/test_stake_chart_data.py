"""chain/consensus/stake_chart_data.py: the proof-of-stake charts' series, exact and validated."""

from __future__ import annotations

from fractions import Fraction

import pytest

from chain.consensus.genesis import make_genesis_block
from chain.consensus.stake_chart_data import (
    JUSTIFICATION_THRESHOLD,
    EpochRecord,
    compute_block_proposers,
    compute_epoch_records,
    compute_participation_series,
    compute_stake_vs_proposals,
)
from chain.errors import ChartDataError, ChartEmptyInputError, ChartValueError
from chain.events import (
    CheckpointFinalized,
    CheckpointJustified,
    EpochRewards,
    ValidatorActivated,
)
from chain.params import REGTEST
from tests.chainkit import CHAIN_ID, GENESIS_TIME
from tests.poskit import Harness, new_consensus_chain, pos_config, validator_keys

UNITS = 10**9
ROOT = bytes(range(32))


def rewards(epoch: int, attesting: int, active: int = 4 * UNITS, delay: int = 1, leak: bool = False) -> EpochRewards:
    return EpochRewards(epoch=epoch, minted_units=1, burned_units=0, attesting_units=attesting, active_units=active,
                        in_inactivity_leak=leak, finality_delay=delay)


def test_a_real_chain_records_each_epoch_end_with_its_checkpoints():
    harness = Harness(new_consensus_chain(pos_config(4, slots_per_epoch=4)), validator_keys(4))
    harness.run_epochs(5, voters=[0, 1, 2])  # three of four equal validators vote: 3/4 of the stake
    records = compute_epoch_records(harness.events)
    assert [r.epoch for r in records] == [0, 1, 2, 3, 4]
    assert {(r.attesting_units, r.active_units) for r in records} == {(96 * UNITS, 128 * UNITS)}
    # phase0 justifies nothing in its first two epochs; then each epoch's end justifies it and
    # finalizes the one before (two justified epochs in a row).
    assert [(r.justified_epoch, r.finalized_epoch) for r in records] == [
        (None, None), (None, None), (2, None), (3, 2), (4, 3)
    ]
    series = compute_participation_series(records)
    assert {p.share for p in series.points} == {Fraction(3, 4)}
    assert series.justified == (2, 3, 4) and series.finalized == (2, 3)
    assert series.reached_threshold == 5 and (series.finality_delay, series.in_leak) == (1, False)


def test_checkpoints_belong_to_the_epoch_end_before_them():
    events = [
        rewards(7, 3 * UNITS), CheckpointJustified(epoch=7, root=ROOT), CheckpointFinalized(epoch=6, root=ROOT),
        ValidatorActivated(validator_index=4, pubkey=bytes(32), epoch=8),
        rewards(8, UNITS),
    ]
    first, second = compute_epoch_records(events)
    assert (first.epoch, first.justified_epoch, first.finalized_epoch) == (7, 7, 6)
    assert (second.epoch, second.justified_epoch, second.finalized_epoch) == (8, None, None)


def test_a_checkpoint_without_an_epoch_end_before_it_is_left_out():
    orphans = [CheckpointJustified(epoch=3, root=ROOT), CheckpointFinalized(epoch=2, root=ROOT)]
    assert compute_epoch_records(orphans) == ()


def test_participation_shares_are_exact_and_the_threshold_is_two_thirds():
    records = [
        EpochRecord(1, 3 * UNITS, 2 * UNITS, 1, False),  # exactly 2/3: justifies
        EpochRecord(2, 3 * UNITS, 2 * UNITS - 1, 2, False),  # a nanopoint short
        EpochRecord(5, 3 * UNITS, 0, 5, True, None, None),  # a gap, then nobody voted
    ]
    series = compute_participation_series(records)
    assert [p.share for p in series.points] == [Fraction(2, 3), Fraction(2 * UNITS - 1, 3 * UNITS), 0]
    assert Fraction(2, 3) == JUSTIFICATION_THRESHOLD
    assert series.reached_threshold == 1
    assert (series.justified, series.finalized) == ((), ())
    assert (series.finality_delay, series.in_leak) == (5, True)


@pytest.mark.parametrize(
    ("records", "error", "match"),
    [
        ([], ChartEmptyInputError, "no epoch has ended"),
        ([EpochRecord(2, UNITS, 0, 0, False), EpochRecord(2, UNITS, 0, 0, False)], ChartValueError, "strictly"),
        ([EpochRecord(3, UNITS, 0, 0, False), EpochRecord(1, UNITS, 0, 0, False)], ChartValueError, "strictly"),
        ([EpochRecord(1, UNITS, UNITS + 1, 0, False)], ChartValueError, "exceeds its active stake"),
        ([EpochRecord(1, 0, 0, 0, False)], ChartValueError, "active stake 0"),
        ([EpochRecord(-1, UNITS, 0, 0, False)], ChartValueError, "epoch -1"),
        ([EpochRecord(1, UNITS, -5, 0, False)], ChartValueError, "attesting stake -5"),
        ([EpochRecord(1, UNITS, 0, -1, False)], ChartValueError, "finality delay -1"),
        ([EpochRecord(1, True, 0, 0, False)], ChartValueError, "active stake True"),
        ([EpochRecord(1, UNITS, 0, 0, False, 2)], ChartValueError, "later epoch 2"),
        ([EpochRecord(4, UNITS, 0, 0, False, None, -1)], ChartValueError, "finalized checkpoint -1"),
    ],
)
def test_invalid_participation_records(records, error, match):
    with pytest.raises(error, match=match):
        compute_participation_series(records)


def test_stake_against_proposals_counts_each_validators_blocks():
    rows = compute_stake_vs_proposals({0: 32 * UNITS, 1: 32 * UNITS, 2: 64 * UNITS}, [2, 0, 2, 2, 5])
    assert [(r.participant, r.share, r.win_share, r.wins) for r in rows] == [
        (2, Fraction(1, 2), Fraction(3, 5), 3),
        (0, Fraction(1, 4), Fraction(1, 5), 1),
        (1, Fraction(1, 4), 0, 0),
        (5, 0, Fraction(1, 5), 1),  # exited since it proposed: no stake now, still counted
    ]


@pytest.mark.parametrize(
    ("stakes", "proposers", "error", "match"),
    [
        ({}, [0], ChartEmptyInputError, "no active validator holds stake"),
        ({0: 0}, [0], ChartEmptyInputError, "no active validator holds stake"),
        ({0: UNITS}, [], ChartEmptyInputError, "no proof-of-stake block was proposed"),
        ({0: -1}, [0], ChartValueError, "stake -1"),
        ({-2: UNITS}, [0], ChartValueError, "validator index -2"),
        ({0: UNITS}, [-1], ChartValueError, "proposer index -1"),
        ({0: UNITS}, [True], ChartValueError, "proposer index True"),
    ],
)
def test_invalid_stake_vs_proposals(stakes, proposers, error, match):
    with pytest.raises(error, match=match):
        compute_stake_vs_proposals(stakes, proposers)
    assert issubclass(error, ChartDataError)


def test_block_proposers_are_read_from_the_stored_bytes():
    harness = Harness(new_consensus_chain(pos_config(4, slots_per_epoch=4)), validator_keys(4))
    harness.run_epochs(2)
    expected = [b.seal.proposer_index for b in harness.blocks]
    assert len(expected) == 8 and len(set(expected)) > 1
    # A block without a seal (the genesis block, a proof-of-work block) has no proposer.
    genesis = make_genesis_block(REGTEST, CHAIN_ID, GENESIS_TIME, 0x207FFFFF)
    raws = [genesis.serialize(), *(b.serialize() for b in harness.blocks)]
    assert compute_block_proposers(raws) == expected
