"""Validators: deposits, activation, exits, effective balance and slashing arithmetic.

Spec: consensus-specs phase0 beacon-chain.md (is_active_validator, is_slashable_validator,
initiate_validator_exit, slash_validator, process_effective_balance_updates, here
apply_effective_balance_updates); the penalty quotient is Bellatrix's
MIN_SLASHING_PENALTY_QUOTIENT_BELLATRIX (specs/bellatrix/beacon-chain.md).
"""

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from chain.errors import (
    DepositError,
    ParamsError,
    StakingError,
    UnknownValidatorError,
    ValidatorStatusError,
)
from chain.pos.attestation import (
    AttestationData,
    AttesterSlashing,
    Checkpoint,
    check_attester_slashing,
    sign_attestation,
)
from chain.pos.staking import (
    DEFAULT_STAKING,
    FAR_FUTURE_EPOCH,
    Registry,
    StakingParams,
    ValidatorStatus,
    apply_deposit,
    apply_effective_balance_updates,
    apply_full_withdrawal,
    apply_voluntary_exit,
    compute_epochs_until_withdrawable,
    compute_validator_status,
    get_active_validator_indices,
    get_total_active_balance,
    slash_validator,
)
from tests.chainkit import CHAIN_ID, key

KEYS = [key(f"staker-{i}") for i in range(6)]
PARAMS = DEFAULT_STAKING


def registry_of(*amounts: int, epoch: int = 0, params: StakingParams = PARAMS) -> Registry:
    registry = Registry()
    for i, amount in enumerate(amounts):
        registry = apply_deposit(registry, KEYS[i].public_key, amount, epoch, params)
    return registry


# --- deposits and activation ------------------------------------------------


def test_deposit_activates_at_the_next_epoch():
    registry = registry_of(32, epoch=4)
    validator = registry.validators[0]
    assert registry.balances == (32,)
    assert validator.activation_epoch == 5 and validator.exit_epoch == FAR_FUTURE_EPOCH
    assert compute_validator_status(validator, 4) is ValidatorStatus.PENDING
    assert compute_validator_status(validator, 5) is ValidatorStatus.ACTIVE
    assert get_active_validator_indices(registry, 4) == () and get_active_validator_indices(registry, 5) == (0,)


def test_effective_balance_is_capped():
    registry = registry_of(100, 32)
    assert [v.effective_balance for v in registry.validators] == [32, 32]
    assert get_total_active_balance(registry, 1, PARAMS) == 64
    # phase0 floors the total at one increment so that nobody divides by zero.
    assert get_total_active_balance(registry, 0, PARAMS) == PARAMS.effective_balance_increment_points


def test_top_up_counts_after_the_effective_balance_update():
    params = StakingParams(max_effective_balance_points=2048)
    registry = apply_deposit(registry_of(40, params=params), KEYS[0].public_key, 60, 3, params)
    assert registry.balances == (100,) and registry.validators[0].effective_balance == 40
    assert apply_effective_balance_updates(registry, params).validators[0].effective_balance == 100


def test_effective_balance_hysteresis():
    # With an increment of 4 points, the band is 1 point down and 5 up (phase0's quarters).
    params = StakingParams(max_effective_balance_points=128, effective_balance_increment_points=4)
    registry = registry_of(64, params=params)
    for balance, effective in [(63, 64), (62, 60), (64, 60), (65, 60), (66, 64), (200, 128)]:
        registry = apply_effective_balance_updates(Registry(registry.validators, (balance,)), params)
        assert registry.validators[0].effective_balance == effective, balance


def test_invalid_deposit_below_minimum():
    with pytest.raises(DepositError, match="at least 32 points, got 31"):
        registry_of(31)


@pytest.mark.parametrize("amount", [0, -5, True, 2.5])
def test_invalid_deposit_amount(amount):
    with pytest.raises(DepositError, match="positive whole number"):
        apply_deposit(Registry(), KEYS[0].public_key, amount, 0, PARAMS)


def test_invalid_deposit_key():
    with pytest.raises(DepositError, match="Ed25519"):
        apply_deposit(Registry(), b"\x01" * 31, 32, 0, PARAMS)


def test_invalid_params():
    with pytest.raises(ParamsError, match="slots_per_epoch"):
        StakingParams(slots_per_epoch=0)
    with pytest.raises(ParamsError, match="at least as long"):
        StakingParams(unbonding_epochs=10, slashed_unbonding_epochs=5)


# --- exits and withdrawals --------------------------------------------------


def test_exit_then_unbonding_then_withdrawal():
    registry = registry_of(32, 40)
    registry = apply_voluntary_exit(registry, 1, 7, PARAMS)
    validator = registry.validators[1]
    assert validator.exit_epoch == 8 and validator.withdrawable_epoch == 8 + PARAMS.unbonding_epochs
    assert compute_validator_status(validator, 7) is ValidatorStatus.EXITING
    assert is_active_at(registry, 1, 7) and not is_active_at(registry, 1, 8)
    assert compute_validator_status(validator, 8) is ValidatorStatus.EXITING
    assert compute_epochs_until_withdrawable(validator, 10) == 8 + PARAMS.unbonding_epochs - 10
    with pytest.raises(ValidatorStatusError, match="still locked: it unlocks in 1 epoch"):
        apply_full_withdrawal(registry, 1, validator.withdrawable_epoch - 1)
    after, amount = apply_full_withdrawal(registry, 1, validator.withdrawable_epoch)
    assert amount == 40 and after.balances == (32, 0)
    assert compute_validator_status(after.validators[1], validator.withdrawable_epoch) is ValidatorStatus.WITHDRAWABLE
    with pytest.raises(ValidatorStatusError, match="nothing left"):
        apply_full_withdrawal(after, 1, validator.withdrawable_epoch)


def is_active_at(registry, index, epoch):
    return index in get_active_validator_indices(registry, epoch)


def test_invalid_exit_while_pending():
    with pytest.raises(ValidatorStatusError, match="validator 0 is pending, not active"):
        apply_voluntary_exit(registry_of(32, epoch=4), 0, 4, PARAMS)


def test_invalid_exit_twice():
    registry = apply_voluntary_exit(registry_of(32), 0, 3, PARAMS)
    with pytest.raises(ValidatorStatusError, match="already exiting at epoch 4"):
        apply_voluntary_exit(registry, 0, 3, PARAMS)


def test_invalid_withdrawal_without_exit():
    with pytest.raises(ValidatorStatusError, match="no exit was requested"):
        apply_full_withdrawal(registry_of(32), 0, 100)


def test_invalid_unknown_validator():
    with pytest.raises(UnknownValidatorError, match="no validator 3"):
        apply_voluntary_exit(registry_of(32), 3, 1, PARAMS)


# --- slashing -----------------------------------------------------------------


def test_slash_validator_with_ethereum_amounts():
    # Ethereum's units: 32 ETH in Gwei. Bellatrix burns 1 ETH; the whistleblower reward is
    # 0.0625 ETH, of which the proposer gets 1/8.
    gwei = StakingParams(min_deposit_points=32 * 10**9, max_effective_balance_points=32 * 10**9,
                         effective_balance_increment_points=10**9)
    registry = registry_of(32 * 10**9, 32 * 10**9, 32 * 10**9, params=gwei)
    after, penalty = slash_validator(registry, 0, proposer_index=1, current_epoch=5, params=gwei, whistleblower_index=2)
    assert penalty.penalty == 1_000_000_000
    assert penalty.whistleblower_reward == 62_500_000 and penalty.proposer_reward == 7_812_500
    assert after.balances == (31 * 10**9, 32 * 10**9 + 7_812_500, 32 * 10**9 + 54_687_500)
    assert penalty.burned == 937_500_000
    assert after.total_balance() + penalty.burned == registry.total_balance()


def test_slash_validator_at_the_default_32_points():
    # Whole points are coarse: 32 // 32 burns 1 point, and 32 // 512 leaves no reward at all.
    registry = registry_of(32, 32)
    after, penalty = slash_validator(registry, 0, proposer_index=1, current_epoch=2, params=PARAMS)
    assert (penalty.penalty, penalty.whistleblower_reward, penalty.proposer_reward) == (1, 0, 0)
    assert after.balances == (31, 32)


def test_slashing_never_takes_a_balance_below_zero():
    # phase0's decrease_balance saturates: a balance already below the penalty goes to zero.
    params = StakingParams(max_effective_balance_points=4096)
    drained = Registry(registry_of(4096, 32, params=params).validators, (100, 32))
    after, penalty = slash_validator(drained, 0, proposer_index=1, current_epoch=1, params=params)
    assert penalty.penalty == 100 and after.balances == (0, 32 + 8)
    assert after.total_balance() + penalty.burned == drained.total_balance()


def test_slashing_forces_an_exit_and_a_longer_lock():
    registry = registry_of(32, 32)
    after, _ = slash_validator(registry, 0, proposer_index=1, current_epoch=2, params=PARAMS)
    validator = after.validators[0]
    assert validator.slashed and validator.exit_epoch == 3
    assert validator.withdrawable_epoch == 2 + PARAMS.slashed_unbonding_epochs
    assert compute_validator_status(validator, 2) is ValidatorStatus.SLASHED
    assert compute_validator_status(validator, 3) is ValidatorStatus.SLASHED
    assert get_active_validator_indices(after, 3) == (1,)


def test_slashing_an_exiting_validator_extends_its_lock():
    registry = apply_voluntary_exit(registry_of(32, 32), 0, 2, PARAMS)
    after, _ = slash_validator(registry, 0, proposer_index=1, current_epoch=4, params=PARAMS)
    assert after.validators[0].exit_epoch == 3
    assert after.validators[0].withdrawable_epoch == 4 + PARAMS.slashed_unbonding_epochs


def test_without_a_whistleblower_the_proposer_gets_the_whole_reward():
    params = StakingParams(max_effective_balance_points=4096)
    registry = registry_of(4096, 32, params=params)
    after, penalty = slash_validator(registry, 0, proposer_index=1, current_epoch=1, params=params)
    assert (penalty.penalty, penalty.whistleblower_reward, penalty.proposer_reward) == (128, 8, 1)
    assert penalty.whistleblower_index == 1
    assert after.balances == (4096 - 128, 32 + 8)


def test_evidence_to_penalty():
    registry = registry_of(32, 32, 32)
    bob = KEYS[1]

    def vote(source, target, head):
        checkpoint = Checkpoint(target, bytes([head]) * 32)
        return AttestationData(CHAIN_ID, target * 8, bytes([head]) * 32, Checkpoint(source, bytes(32)), checkpoint)

    evidence = AttesterSlashing(sign_attestation(bob, vote(0, 2, 1)), sign_attestation(bob, vote(1, 2, 2)))
    verdict = check_attester_slashing(evidence, CHAIN_ID)
    index = registry.index_of(verdict.validator)
    after, _ = slash_validator(registry, index, proposer_index=2, current_epoch=2, params=PARAMS, whistleblower_index=0)
    assert index == 1 and after.validators[1].slashed


def test_invalid_slashing_twice():
    registry, _ = slash_validator(registry_of(32, 32), 0, 1, 2, PARAMS)
    with pytest.raises(ValidatorStatusError, match="validator 0 is slashed and can no longer be slashed"):
        slash_validator(registry, 0, 1, 3, PARAMS)


def test_invalid_slashing_before_activation_or_after_the_lock():
    with pytest.raises(ValidatorStatusError, match="pending"):
        slash_validator(registry_of(32, 32, epoch=5), 0, 1, 5, PARAMS)
    registry = apply_voluntary_exit(registry_of(32, 32), 0, 1, PARAMS)
    unlocked = registry.validators[0].withdrawable_epoch
    with pytest.raises(ValidatorStatusError, match="withdrawable"):
        slash_validator(registry, 0, 1, unlocked, PARAMS)


def test_invalid_slashing_unknown_proposer_or_whistleblower():
    registry = registry_of(32, 32)
    with pytest.raises(UnknownValidatorError, match="no validator 9"):
        slash_validator(registry, 0, 9, 2, PARAMS)
    with pytest.raises(UnknownValidatorError, match="no validator 7"):
        slash_validator(registry, 0, 1, 2, PARAMS, whistleblower_index=7)


# --- conservation -------------------------------------------------------------

deposit_op = st.tuples(st.just("deposit"), st.integers(0, 5), st.integers(1, 5_000))
exit_op = st.tuples(st.just("exit"), st.integers(0, 4))
slash_op = st.tuples(st.just("slash"), st.integers(0, 4), st.integers(0, 4), st.one_of(st.none(), st.integers(0, 4)))
# Withdraw from the first validator whose stake has unlocked (or try validator 0 and be refused).
withdraw_op = st.just(("withdraw",))
tick_op = st.tuples(st.just("tick"), st.sampled_from([1, 2, 5, 20, 20, 400]))
# Every run starts with four validators that are active from epoch 1.
OPENING = [("deposit", i, 32 + 1000 * i) for i in range(4)] + [("tick", 1)]
# ...and ends by waiting out every lock and withdrawing all it can.
CLOSING = [("tick", 400)] + [("withdraw",)] * 6


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from([StakingParams(), StakingParams(max_effective_balance_points=10_000, unbonding_epochs=3)]),
    st.lists(st.one_of(deposit_op, exit_op, slash_op, slash_op, withdraw_op, withdraw_op, tick_op), max_size=50),
)
def test_points_are_conserved(params, operations):
    """balances + withdrawn + burned == deposited, after every operation, accepted or refused."""
    registry, epoch = Registry(), 0
    deposited = withdrawn = burned = 0
    done = set()
    for op in OPENING + operations + CLOSING:
        before = registry
        try:
            if op[0] == "deposit":
                registry = apply_deposit(registry, KEYS[op[1]].public_key, op[2], epoch, params)
                deposited += op[2]
            elif op[0] == "exit":
                registry = apply_voluntary_exit(registry, op[1], epoch, params)
            elif op[0] == "slash":
                registry, penalty = slash_validator(registry, op[1], op[2], epoch, params, op[3])
                burned += penalty.burned
            elif op[0] == "withdraw":
                unlocked = [
                    i
                    for i, v in enumerate(registry.validators)
                    if v.withdrawable_epoch <= epoch and registry.balances[i]
                ]
                registry, amount = apply_full_withdrawal(registry, unlocked[0] if unlocked else 0, epoch)
                withdrawn += amount
            else:
                epoch += op[1]
                registry = apply_effective_balance_updates(registry, params)
            done.add(op[0])
        except (ValidatorStatusError, UnknownValidatorError, DepositError):
            assert registry is before
        assert registry.total_balance() + withdrawn + burned == deposited
        assert all(b >= 0 for b in registry.balances)
        assert all(v.effective_balance <= params.max_effective_balance_points for v in registry.validators)
    for kind in ("exit", "slash", "withdraw"):
        event(f"{kind}: {'yes' if kind in done else 'no'}")


# --- units and blocks without a validator proposer (chain/pos/beacon.py) -----------------


def test_in_units_scales_every_amount_and_nothing_else():
    gwei = StakingParams(min_deposit_points=32 * 10**9, max_effective_balance_points=32 * 10**9,
                         effective_balance_increment_points=10**9)
    assert PARAMS.in_units(10**9) == gwei
    # With nanopoint amounts the hysteresis band is a quarter point, not zero (1 // 4 in whole points).
    scaled = PARAMS.in_units(10**9)
    registry = Registry(registry_of(32 * 10**9, params=scaled).validators, (32 * 10**9 - 10**8,))
    assert apply_effective_balance_updates(registry, scaled).validators[0].effective_balance == 32 * 10**9


def test_slashing_in_a_proof_of_work_block_burns_the_whole_penalty():
    gwei = PARAMS.in_units(10**9)
    registry = registry_of(32 * 10**9, 32 * 10**9, params=gwei)
    after, penalty = slash_validator(registry, 0, proposer_index=None, current_epoch=1, params=gwei)
    assert penalty.penalty == 10**9 and penalty.whistleblower_reward == 0 and penalty.burned == 10**9
    assert after.balances == (31 * 10**9, 32 * 10**9)


def test_invalid_whistleblower_without_a_proposer():
    with pytest.raises(StakingError):
        slash_validator(registry_of(32, 32), 0, proposer_index=None, current_epoch=1, params=PARAMS,
                        whistleblower_index=1)


class CountingValidators(tuple):
    """A validator tuple that counts how often it is walked."""

    walks = 0

    def __iter__(self):
        CountingValidators.walks += 1
        return super().__iter__()


def test_index_of_walks_the_registry_once_not_once_per_call():
    from chain.pos.staking import Registry, Validator

    validators = CountingValidators(Validator(bytes([i]) * 32, 32, False, 0) for i in range(50))
    registry = Registry(validators, (32,) * 50)
    CountingValidators.walks = 0
    assert [registry.index_of(bytes([i]) * 32) for i in range(50)] == list(range(50))
    assert registry.index_of(b"\xff" * 32) is None
    assert CountingValidators.walks <= 1  # auto-attest asks once per validator per slot


def test_index_of_a_derived_registry_sees_its_own_validators():
    from dataclasses import replace

    from chain.pos.staking import Registry, Validator

    first = Registry((Validator(b"\x01" * 32, 32, False, 0),), (32,))
    assert first.index_of(b"\x01" * 32) == 0
    grown = Registry(first.validators + (Validator(b"\x02" * 32, 32, False, 0),), first.balances + (32,))
    swapped = replace(first, validators=(Validator(b"\x03" * 32, 32, False, 0),))
    assert grown.index_of(b"\x02" * 32) == 1
    assert swapped.index_of(b"\x01" * 32) is None and swapped.index_of(b"\x03" * 32) == 0
    assert first == Registry(first.validators, first.balances)  # the cache takes no part in equality
