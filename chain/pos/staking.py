"""Validators: deposits, activation, exits, effective balance and ``slash_validator``.

Modelled on phase0's registry (``Validator``, ``is_active_validator``,
``initiate_validator_exit``, ``slash_validator``, the effective balance
hysteresis) and scaled to a Discord server:

- a deposit activates at the next epoch (Ethereum queues it behind
  ``MAX_SEED_LOOKAHEAD`` epochs and a churn limit; a server has few validators);
- an exit takes effect at the next epoch and the stake stays locked for
  ``unbonding_epochs`` (Ethereum: ``MIN_VALIDATOR_WITHDRAWABILITY_DELAY``);
- slashing burns ``effective_balance // slashing_penalty_quotient`` (default 32,
  Bellatrix's ``MIN_SLASHING_PENALTY_QUOTIENT_BELLATRIX``), forces an exit and locks
  the stake for ``slashed_unbonding_epochs`` (Ethereum: ``EPOCHS_PER_SLASHINGS_VECTOR``);
  the whistleblower reward, ``effective_balance // 512``, is paid out of the penalty,
  and the proposer keeps ``reward // 8`` of it, as phase0 splits it.  phase0 mints
  the reward and burns the whole penalty; the supply ends the same either way, and
  paying it out of the penalty means slashing can never create points.
  Ethereum's later, correlated penalty (``process_slashings``) is left out.

Every ``apply_*`` checks all its preconditions, then returns a new ``Registry``.  They are
the registry part of a rule; phase0's ``process_*`` names belong to chain/pos/operation_rules.py
and chain/pos/withdrawals.py, whose ``process_deposit``, ``process_voluntary_exit`` and
``process_withdrawals`` check the signed operation and then call ``apply_deposit``,
``apply_voluntary_exit`` and ``apply_full_withdrawal``.

Units: the arithmetic is the same in any unit.  ``StakingParams`` are written in
whole points; the chain's beacon state (chain/pos/beacon.py) keeps the registry in
nanopoints (chain/pos/rewards.py) and runs these functions with
``params.in_units(UNITS_PER_POINT)``, so rewards of a few nanopoints and the
1/512 whistleblower reward are not rounded away.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields, replace

from chain.errors import (
    DepositError,
    ParamsError,
    StakingError,
    UnknownValidatorError,
    ValidatorStatusError,
)
from chain.keys import is_valid_public_key
from chain.pos.attestation import check_uint64

FAR_FUTURE_EPOCH = (1 << 64) - 1
MIN_SLASHING_PENALTY_QUOTIENT_BELLATRIX = 32
WHISTLEBLOWER_REWARD_QUOTIENT = 512
PROPOSER_REWARD_QUOTIENT = 8
# Effective balance moves only when the balance leaves a band around it (phase0's hysteresis).
HYSTERESIS_QUOTIENT = 4
HYSTERESIS_DOWNWARD_MULTIPLIER = 1
HYSTERESIS_UPWARD_MULTIPLIER = 5


@dataclass(frozen=True, slots=True)
class StakingParams:
    """A server's proof-of-stake rules; amounts in points, durations in slots and epochs."""

    slot_duration_s: int = 30
    # 8 slots of 30 s: a 4-minute epoch, so finality (about two epochs) comes in minutes.
    slots_per_epoch: int = 8
    min_deposit_points: int = 32
    # Ethereum's 32 ETH cap as 32 points; see chain/pos/proposer.py on why the cap matters for fairness.
    max_effective_balance_points: int = 32
    effective_balance_increment_points: int = 1
    # 15 epochs of 4 minutes: an hour.
    unbonding_epochs: int = 15
    # 360 epochs of 4 minutes: a day.
    slashed_unbonding_epochs: int = 360
    slashing_penalty_quotient: int = MIN_SLASHING_PENALTY_QUOTIENT_BELLATRIX
    whistleblower_reward_quotient: int = WHISTLEBLOWER_REWARD_QUOTIENT
    proposer_reward_quotient: int = PROPOSER_REWARD_QUOTIENT

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ParamsError(f"{f.name} must be a whole number of at least 1, got {value!r}")
        if self.max_effective_balance_points < self.effective_balance_increment_points:
            raise ParamsError("max_effective_balance_points must be at least one increment")
        if self.slashed_unbonding_epochs < self.unbonding_epochs:
            raise ParamsError("a slashed validator must stay locked at least as long as one that exits")


    def in_units(self, units_per_point: int) -> StakingParams:
        """The same rules with every amount scaled to ``units_per_point`` units.

        The arithmetic here is unit-agnostic (every amount it compares or
        divides is in the same unit), so the beacon state (chain/pos/beacon.py) runs
        it in nanopoints, ``in_units(UNITS_PER_POINT)``, where a reward of a few
        nanopoints is not rounded away; the ``_points`` field names then read
        "in the registry's unit".
        """
        return replace(
            self,
            min_deposit_points=self.min_deposit_points * units_per_point,
            max_effective_balance_points=self.max_effective_balance_points * units_per_point,
            effective_balance_increment_points=self.effective_balance_increment_points * units_per_point,
        )


DEFAULT_STAKING = StakingParams()


class ValidatorStatus(enum.Enum):
    PENDING = "pending"
    ACTIVE = "active"
    EXITING = "exiting"
    WITHDRAWABLE = "withdrawable"
    SLASHED = "slashed"


@dataclass(frozen=True, slots=True)
class Validator:
    """phase0's ``Validator`` without withdrawal credentials: the bot holds the key."""

    pubkey: bytes
    effective_balance: int
    slashed: bool
    activation_epoch: int
    exit_epoch: int = FAR_FUTURE_EPOCH
    withdrawable_epoch: int = FAR_FUTURE_EPOCH


@dataclass(frozen=True, slots=True)
class Registry:
    """Validators and their balances; a validator's index is its position."""

    validators: tuple[Validator, ...] = ()
    balances: tuple[int, ...] = ()
    # pubkey -> first index, built on the first ``index_of``: auto-attest asks once per validator
    # per slot, and a scan each time made a slot O(n^2).  Not an init field, so a registry derived
    # with ``replace`` or built anew starts without it and never sees a stale index.
    _index: dict[bytes, int] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.validators) != len(self.balances):
            raise StakingError("every validator has exactly one balance")

    def total_balance(self) -> int:
        return sum(self.balances)

    def index_of(self, pubkey: bytes) -> int | None:
        index = self._index
        if index is None:
            index = {}
            for position, validator in enumerate(self.validators):
                index.setdefault(validator.pubkey, position)
            # Frozen, but the cache is derived from the frozen fields alone.
            object.__setattr__(self, "_index", index)
        return index.get(pubkey)


@dataclass(frozen=True, slots=True)
class SlashingPenalty:
    """What a slashing moved, in points."""

    slashed_index: int
    penalty: int
    whistleblower_index: int | None
    whistleblower_reward: int
    proposer_index: int | None
    proposer_reward: int

    @property
    def burned(self) -> int:
        """Points that left the supply: the penalty minus the rewards paid out of it."""
        return self.penalty - self.whistleblower_reward


def is_active_validator(validator: Validator, epoch: int) -> bool:
    return validator.activation_epoch <= epoch < validator.exit_epoch


def is_slashable_validator(validator: Validator, epoch: int) -> bool:
    return (not validator.slashed) and validator.activation_epoch <= epoch < validator.withdrawable_epoch


def compute_validator_status(validator: Validator, epoch: int) -> ValidatorStatus:
    if epoch >= validator.withdrawable_epoch:
        return ValidatorStatus.WITHDRAWABLE
    if validator.slashed:
        return ValidatorStatus.SLASHED
    if epoch < validator.activation_epoch:
        return ValidatorStatus.PENDING
    if validator.exit_epoch == FAR_FUTURE_EPOCH:
        return ValidatorStatus.ACTIVE
    return ValidatorStatus.EXITING


def compute_effective_balance(balance: int, params: StakingParams) -> int:
    increment = params.effective_balance_increment_points
    return min(balance - balance % increment, params.max_effective_balance_points)


def get_active_validator_indices(registry: Registry, epoch: int) -> tuple[int, ...]:
    return tuple(i for i, v in enumerate(registry.validators) if is_active_validator(v, epoch))


def get_total_active_balance(registry: Registry, epoch: int, params: StakingParams) -> int:
    """Total effective stake of the active validators, at least one increment (as phase0)."""
    total = sum(registry.validators[i].effective_balance for i in get_active_validator_indices(registry, epoch))
    return max(params.effective_balance_increment_points, total)


def _validator(registry: Registry, index: int) -> Validator:
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(registry.validators):
        raise UnknownValidatorError(f"there is no validator {index!r} (the registry has {len(registry.validators)})")
    return registry.validators[index]


def _with(registry: Registry, index: int, validator: Validator, balance: int) -> Registry:
    validators = list(registry.validators)
    balances = list(registry.balances)
    validators[index] = validator
    balances[index] = balance
    return Registry(tuple(validators), tuple(balances))


def apply_deposit(
    registry: Registry, pubkey: bytes, amount: int, current_epoch: int, params: StakingParams
) -> Registry:
    """Lock ``amount`` points: a new validator that activates next epoch, or a top-up.

    A top-up counts toward the effective balance at the next epoch's effective
    balance update, as in phase0.
    """
    check_uint64("current epoch", current_epoch)
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
        raise DepositError(f"a deposit is a positive whole number of points, got {amount!r}")
    if not is_valid_public_key(pubkey):
        raise DepositError("a validator key must be a valid 32-byte Ed25519 public key")
    index = registry.index_of(pubkey)
    if index is not None:
        return _with(registry, index, registry.validators[index], registry.balances[index] + amount)
    if amount < params.min_deposit_points:
        raise DepositError(f"a new validator needs at least {params.min_deposit_points} points, got {amount}")
    validator = Validator(
        pubkey=pubkey,
        effective_balance=compute_effective_balance(amount, params),
        slashed=False,
        activation_epoch=current_epoch + 1,
    )
    return Registry(registry.validators + (validator,), registry.balances + (amount,))


def initiate_validator_exit(registry: Registry, index: int, current_epoch: int, params: StakingParams) -> Registry:
    """phase0's helper: schedule the exit, unless one is already scheduled."""
    validator = _validator(registry, index)
    if validator.exit_epoch != FAR_FUTURE_EPOCH:
        return registry
    exit_epoch = current_epoch + 1
    exiting = replace(validator, exit_epoch=exit_epoch, withdrawable_epoch=exit_epoch + params.unbonding_epochs)
    return _with(registry, index, exiting, registry.balances[index])


def apply_voluntary_exit(registry: Registry, index: int, current_epoch: int, params: StakingParams) -> Registry:
    """``/stake withdraw``: an active validator asks to leave."""
    validator = _validator(registry, index)
    if not is_active_validator(validator, current_epoch):
        status = compute_validator_status(validator, current_epoch).value
        raise ValidatorStatusError(f"validator {index} is {status}, not active: only an active validator can exit")
    if validator.exit_epoch != FAR_FUTURE_EPOCH:
        raise ValidatorStatusError(f"validator {index} is already exiting at epoch {validator.exit_epoch}")
    return initiate_validator_exit(registry, index, current_epoch, params)


def slash_validator(
    registry: Registry,
    slashed_index: int,
    proposer_index: int | None,
    current_epoch: int,
    params: StakingParams,
    whistleblower_index: int | None = None,
) -> tuple[Registry, SlashingPenalty]:
    """phase0's ``slash_validator``: exit, lock, burn, and reward the whistleblower and proposer.

    Without a whistleblower (the bot's own detector), the proposer is the
    whistleblower and keeps the whole reward, as in phase0.  With no proposer
    (evidence included in a proof-of-work block, mined by no validator) nobody
    is rewarded and the whole penalty is burned.
    """
    validator = _validator(registry, slashed_index)
    if proposer_index is not None:
        _validator(registry, proposer_index)
        if whistleblower_index is None:
            whistleblower_index = proposer_index
        _validator(registry, whistleblower_index)
    elif whistleblower_index is not None:
        raise StakingError("a whistleblower is rewarded only in a block that a validator proposed")
    if not is_slashable_validator(validator, current_epoch):
        status = compute_validator_status(validator, current_epoch).value
        raise ValidatorStatusError(f"validator {slashed_index} is {status} and can no longer be slashed")

    registry = initiate_validator_exit(registry, slashed_index, current_epoch, params)
    exited = registry.validators[slashed_index]
    slashed = replace(
        exited,
        slashed=True,
        withdrawable_epoch=max(exited.withdrawable_epoch, current_epoch + params.slashed_unbonding_epochs),
    )
    effective = validator.effective_balance
    balances = list(registry.balances)
    # decrease_balance never goes below zero.
    penalty = min(effective // params.slashing_penalty_quotient, balances[slashed_index])
    balances[slashed_index] -= penalty
    whistleblower_reward = proposer_reward = 0
    if proposer_index is not None and whistleblower_index is not None:
        # Paid out of the penalty, so it can never exceed what was taken.
        whistleblower_reward = min(effective // params.whistleblower_reward_quotient, penalty)
        proposer_reward = whistleblower_reward // params.proposer_reward_quotient
        balances[proposer_index] += proposer_reward
        balances[whistleblower_index] += whistleblower_reward - proposer_reward
    validators = list(registry.validators)
    validators[slashed_index] = slashed
    outcome = SlashingPenalty(
        slashed_index, penalty, whistleblower_index, whistleblower_reward, proposer_index, proposer_reward
    )
    return Registry(tuple(validators), tuple(balances)), outcome


def apply_effective_balance_updates(registry: Registry, params: StakingParams) -> Registry:
    """phase0's hysteresis, with our increment: small wobbles leave the effective balance alone."""
    hysteresis_increment = params.effective_balance_increment_points // HYSTERESIS_QUOTIENT
    downward = hysteresis_increment * HYSTERESIS_DOWNWARD_MULTIPLIER
    upward = hysteresis_increment * HYSTERESIS_UPWARD_MULTIPLIER
    validators = []
    for validator, balance in zip(registry.validators, registry.balances, strict=True):
        if balance + downward < validator.effective_balance or validator.effective_balance + upward < balance:
            validator = replace(validator, effective_balance=compute_effective_balance(balance, params))
        validators.append(validator)
    return Registry(tuple(validators), registry.balances)


def compute_epochs_until_withdrawable(validator: Validator, epoch: int) -> int | None:
    """Epochs left before the stake unlocks; None while no exit is scheduled."""
    if validator.withdrawable_epoch == FAR_FUTURE_EPOCH:
        return None
    return max(0, validator.withdrawable_epoch - epoch)


def apply_full_withdrawal(registry: Registry, index: int, current_epoch: int) -> tuple[Registry, int]:
    """Return a withdrawable validator's whole balance; the caller credits it to the member."""
    validator = _validator(registry, index)
    if current_epoch < validator.withdrawable_epoch:
        left = compute_epochs_until_withdrawable(validator, current_epoch)
        when = "no exit was requested" if left is None else f"it unlocks in {left} epoch(s)"
        raise ValidatorStatusError(f"validator {index}'s stake is still locked: {when}")
    amount = registry.balances[index]
    if amount == 0:
        raise ValidatorStatusError(f"validator {index} has nothing left to withdraw")
    return _with(registry, index, replace(validator, effective_balance=0), 0), amount
