"""Withdrawals, as Ethereum Capella's execution-payload withdrawals: a block carries exactly
``get_expected_withdrawals(state)`` (capella/beacon-chain.md ``process_withdrawals``); full
withdrawals of withdrawable validators, paid in whole points, the dust below a point burned."""

from dataclasses import replace

from chain.consensus.consensus_block import compute_pre_block_beacon
from chain.errors import WithdrawalMismatchError
from chain.events import STAKE_WITHDRAWN
from chain.pos.operations import Operations, Withdrawal, make_voluntary_exit
from chain.pos.rewards import UNITS_PER_POINT
from chain.pos.withdrawals import get_expected_withdrawals
from tests.chainkit import CHAIN_ID, key
from tests.poskit import (
    Harness,
    assert_refused,
    forge_pos_block,
    new_consensus_chain,
    pos_config,
    validator_keys,
)

KEYS = validator_keys()
WALLET_3 = key("wallet-3").public_key


def exited_harness():
    """Validator 3 exits at epoch 1 and becomes withdrawable at epoch 3 (slot 24)."""
    h = Harness(new_consensus_chain(pos_config(unbonding_epochs=2, slashed_unbonding_epochs=4)), KEYS)
    h.propose(1, pool=Operations(voluntary_exits=(make_voluntary_exit(KEYS[3], 3, 0, CHAIN_ID),)))
    return h


def expected_at(h, slot):
    return get_expected_withdrawals(compute_pre_block_beacon(h.state, slot, bytes(32), True))


def test_withdrawal_pays_whole_points_and_burns_the_dust():
    h = exited_harness()
    h.propose(20)
    assert expected_at(h, 21) == ()
    (due,) = expected_at(h, 24)
    assert due.validator_index == 3 and due.address == WALLET_3
    # No votes were cast, so missed-target penalties left a balance that is not whole points.
    assert due.amount % UNITS_PER_POINT != 0
    before_ledger = h.state.ledger[WALLET_3].balance
    burned_before = h.state.beacon.burned_units
    block, effects = h.propose(24)
    assert block.operations.withdrawals == (due,)
    assert h.state.ledger[WALLET_3].balance == before_ledger + due.amount // UNITS_PER_POINT
    assert h.state.beacon.registry.balances[3] == 0
    assert h.state.beacon.burned_units - burned_before >= due.amount % UNITS_PER_POINT
    assert h.state.beacon.next_withdrawal_index == 1
    assert any(e.kind == STAKE_WITHDRAWN for e in effects.events)
    assert h.state.total_supply_units() == h.state.issued_supply_units()
    assert expected_at(h, 25) == ()  # paid once


def test_withdrawal_roundtrips_through_bytes():
    w = Withdrawal(3, 1, WALLET_3, 31_999_999_999)
    assert Withdrawal.deserialize(w.serialize()) == w


def test_invalid_block_missing_a_due_withdrawal():
    h = exited_harness()
    h.propose(20)
    assert_refused(h.state, forge_pos_block(h.state, 24, Operations()), WithdrawalMismatchError)


def test_invalid_withdrawal_that_is_not_due():
    h = exited_harness()
    h.propose(9)
    early = Withdrawal(0, 3, WALLET_3, h.state.beacon.registry.balances[3])
    assert_refused(h.state, forge_pos_block(h.state, 10, Operations(withdrawals=(early,))), WithdrawalMismatchError)


def test_invalid_withdrawal_with_the_wrong_amount_or_address():
    h = exited_harness()
    h.propose(20)
    (due,) = expected_at(h, 24)
    for bad in (replace(due, amount=due.amount + 1), replace(due, address=key("mallory").public_key)):
        assert_refused(h.state, forge_pos_block(h.state, 24, Operations(withdrawals=(bad,))), WithdrawalMismatchError)


def test_partial_withdrawals_pay_whole_points_above_the_cap():
    # Capella's partial withdrawal: a validator at the 32-point cap with more than that is paid the
    # excess; here only whole points of it, so nothing is burned and rewards keep accruing.
    h = Harness(new_consensus_chain(pos_config(stake_points=40)), KEYS)
    due = expected_at(h, 1)
    assert [(w.validator_index, w.amount) for w in due] == [(i, 8 * UNITS_PER_POINT) for i in range(4)]
    burned = h.state.beacon.burned_units
    block, _ = h.propose(1)
    assert block.operations.withdrawals == due
    assert h.state.beacon.registry.balances == (32 * UNITS_PER_POINT,) * 4
    assert h.state.ledger[key("wallet-0").public_key].balance == 1_000 + 8 + (
        block.coinbase.amount if block.coinbase.miner == key("wallet-0").public_key else 0
    )
    assert h.state.beacon.burned_units == burned
    assert expected_at(h, 2) == ()  # less than a point above the cap: nothing due


def test_a_full_payload_moves_the_sweep_cursor_past_the_last_paid():
    h = Harness(new_consensus_chain(pos_config(count=20, stake_points=33)), validator_keys(20))
    first = expected_at(h, 1)
    assert len(first) == 16 and [w.validator_index for w in first] == list(range(16))
    h.propose(1)
    assert h.state.beacon.next_withdrawal_validator_index == 16
    second = expected_at(h, 2)
    assert [w.validator_index for w in second] == [16, 17, 18, 19]
    assert [w.index for w in second] == [16, 17, 18, 19]


def test_invalid_block_leaving_out_a_partial_withdrawal():
    h = Harness(new_consensus_chain(pos_config(stake_points=40)), KEYS)
    assert_refused(h.state, forge_pos_block(h.state, 1, Operations()), WithdrawalMismatchError)
