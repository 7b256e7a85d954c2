"""Withdrawals, as Capella's: which validators the sweep pays (``get_expected_withdrawals``), full
and partial amounts, ``process_withdrawals`` against what a block carries, and their events."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from chain.errors import (
    WithdrawalMismatchError,
)
from chain.events import (
    ChainEvent,
    StakeWithdrawn,
)
from chain.ledger.accounts import Account
from chain.pos.beacon import BeaconState
from chain.pos.operations import (
    MAX_VALIDATORS_PER_WITHDRAWALS_SWEEP,
    MAX_WITHDRAWALS_PER_PAYLOAD,
    Withdrawal,
)
from chain.pos.rewards import (
    UNITS_PER_POINT,
    units_to_points,
)
from chain.pos.staking import (
    Registry,
    Validator,
    apply_full_withdrawal,
)


def is_fully_withdrawable_validator(validator: Validator, balance: int, epoch: int) -> bool:
    """Capella's rule: the stake has unlocked and something is left."""
    return validator.withdrawable_epoch <= epoch and balance > 0


def compute_partial_withdrawal_amount(validator: Validator, balance: int, state: BeaconState) -> int:
    """Capella's ``is_partially_withdrawable_validator`` (effective balance at the cap, balance above
    it), paying the excess in whole points only: wallets hold whole points, and burning the
    nanopoint excess every sweep would burn the rewards.  0 when nothing is due."""
    cap = state.config.max_effective_balance_units
    if validator.effective_balance != cap or balance <= cap:
        return 0
    return (balance - cap) // UNITS_PER_POINT * UNITS_PER_POINT


def get_expected_withdrawals(state: BeaconState) -> tuple[Withdrawal, ...]:
    """Capella's ``get_expected_withdrawals``: a sweep from ``next_withdrawal_validator_index``
    over at most MAX_VALIDATORS_PER_WITHDRAWALS_SWEEP validators, taking full withdrawals (the
    whole balance of an unlocked validator) and partial ones (whole points above the cap), at
    most MAX_WITHDRAWALS_PER_PAYLOAD."""
    registry = state.registry
    count = len(registry.validators)
    withdrawals: list[Withdrawal] = []
    index = state.next_withdrawal_validator_index % count if count else 0
    for _ in range(min(count, MAX_VALIDATORS_PER_WITHDRAWALS_SWEEP)):
        validator, balance = registry.validators[index], registry.balances[index]
        amount = 0
        if is_fully_withdrawable_validator(validator, balance, state.epoch):
            amount = balance
        else:
            amount = compute_partial_withdrawal_amount(validator, balance, state)
        if amount:
            withdrawals.append(
                Withdrawal(
                    state.next_withdrawal_index + len(withdrawals), index, state.withdrawal_addresses[index], amount
                )
            )
            if len(withdrawals) == MAX_WITHDRAWALS_PER_PAYLOAD:
                break
        index = (index + 1) % count
    return tuple(withdrawals)


def compute_next_withdrawal_validator_index(state: BeaconState, withdrawals: tuple[Withdrawal, ...]) -> int:
    """Capella's cursor update: after the last one paid if the payload was full, else a sweep further."""
    count = len(state.registry.validators)
    if not count:
        return 0
    if len(withdrawals) == MAX_WITHDRAWALS_PER_PAYLOAD:
        return (withdrawals[-1].validator_index + 1) % count
    return (state.next_withdrawal_validator_index + MAX_VALIDATORS_PER_WITHDRAWALS_SWEEP) % count


def process_withdrawals(
    state: BeaconState, accounts: Mapping[bytes, Account], withdrawals: tuple[Withdrawal, ...]
) -> tuple[BeaconState, dict[bytes, Account]]:
    """Capella's ``process_withdrawals``: exactly the expected list, paid as whole points.

    ``accounts`` maps addresses to their current state (missing: a new account).
    A full withdrawal's dust below one point is burned and counted in ``burned_units``;
    a partial one is whole points already.
    """
    expected = get_expected_withdrawals(state)
    if withdrawals != expected:
        raise WithdrawalMismatchError(
            f"the block carries {len(withdrawals)} withdrawal(s) but exactly {len(expected)} are due "
            f"(to validators {[w.validator_index for w in expected]}), with these indices and amounts"
        )
    pre = state
    changes: dict[bytes, Account] = {}
    for withdrawal in withdrawals:
        state, points = pay_withdrawal(state, withdrawal)
        account = changes.get(withdrawal.address) or accounts.get(withdrawal.address) or Account()
        changes[withdrawal.address] = Account(account.balance + points, account.nonce)
    state = replace(
        state,
        next_withdrawal_index=pre.next_withdrawal_index + len(withdrawals),
        next_withdrawal_validator_index=compute_next_withdrawal_validator_index(pre, withdrawals),
    )
    return state.with_events(*compute_withdrawal_events(pre, withdrawals)), changes


def pay_withdrawal(state: BeaconState, withdrawal: Withdrawal) -> tuple[BeaconState, int]:
    """Take one expected withdrawal out of its validator's balance (the whole balance of an unlocked
    validator, else the partial amount); returns the state, with the dust below one point burned,
    and the whole points to credit to the withdrawal address."""
    index = withdrawal.validator_index
    registry = state.registry
    if is_fully_withdrawable_validator(registry.validators[index], registry.balances[index], state.epoch):
        registry, amount = apply_full_withdrawal(registry, index, state.epoch)
    else:
        amount = withdrawal.amount
        balances = list(registry.balances)
        balances[index] -= amount
        registry = Registry(registry.validators, tuple(balances))
    points, dust = units_to_points(amount)
    withdrawn = list(state.withdrawn_units)
    withdrawn[index] += amount
    new_state = replace(
        state, registry=registry, burned_units=state.burned_units + dust, withdrawn_units=tuple(withdrawn)
    )
    return new_state, points


def compute_withdrawal_events(pre: BeaconState, withdrawals: tuple[Withdrawal, ...]) -> tuple[ChainEvent, ...]:
    """A STAKE_WITHDRAWN event per withdrawal paid from ``pre`` (each validator is swept at most
    once a block, so ``pre`` says whether it was a full withdrawal and the amount is the withdrawal's)."""
    events: list[ChainEvent] = []
    for withdrawal in withdrawals:
        index = withdrawal.validator_index
        points, dust = units_to_points(withdrawal.amount)
        full = is_fully_withdrawable_validator(pre.registry.validators[index], pre.registry.balances[index], pre.epoch)
        events.append(
            StakeWithdrawn(
                validator_index=index, address=withdrawal.address, points=points, dust_burned_units=dust, full=full
            )
        )
    return tuple(events)
