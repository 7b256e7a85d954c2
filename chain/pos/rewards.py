"""Per-epoch issuance, attester and proposer rewards, and inactivity penalties.

Modelled on consensus-specs phase0 (beacon-chain.md, "Rewards and penalties":
``get_base_reward``, ``get_attestation_deltas``, ``get_inactivity_penalty_deltas``,
``process_rewards_and_penalties``) and scaled to a Discord server.

Units
-----
Everything here is in *nanopoints*: ``UNITS_PER_POINT = 10**9`` of them make one
point, as 10**9 gwei make one ether.  Whole points are too coarse: at 5% a year
and 4-minute epochs a 32-point validator earns about 0.0000122 points an epoch,
which rounds to 0.  Balances and effective balances passed in are nanopoints;
``points_to_units`` / ``units_to_points`` convert at the edges (floor: the dust
below one point stays in the validator's balance, it is never dropped or minted).

Issuance
--------
A yearly rate in basis points (default 500 = 5%, a server may pick 300..1500)
of the total active effective stake, paid per epoch:
``budget = total_active * rate_bp * epoch_seconds // (10_000 * SECONDS_PER_YEAR)``.
It is a ceiling: only participation is paid, so an idle network mints less.

Split (after phase0's ``PROPOSER_REWARD_QUOTIENT = 8``)
-------------------------------------------------------
- 1/8 of the budget goes to proposers, ``proposer_budget // slots_per_epoch`` for
  each slot that got a block; an empty slot's share is not minted.
- 7/8 goes to attesters: a validator that voted for the epoch's target gets
  ``attester_budget * effective_balance // total_active`` -- its share of the
  whole active stake, not of the attesting stake, so a non-participant's share
  is simply not minted (phase0 likewise scales rewards by participation).

Penalties
---------
- An active validator that missed the epoch's target loses what it would have
  earned (phase0 penalizes a missed target by one ``base_reward``).
- Inactivity leak: while finality has not advanced for more than
  ``MIN_EPOCHS_TO_INACTIVITY_PENALTY`` (4) epochs, attesters are paid nothing
  (phase0 cancels their reward) and each validator that missed also loses
  ``effective_balance * epochs_since_finality // inactivity_penalty_quotient``.
  The loss grows with the delay, so offline stake drains (quadratically in time)
  until the online validators hold two thirds again and finality resumes.
  phase0's quotient is 2**26 for 6.4-minute epochs (about 18 days to lose ~40%);
  ours defaults to 2**16 for 4-minute epochs, so a half-offline server regains
  finality within a day of leaking.
- Penalties never take a balance below zero (phase0's ``decrease_balance``);
  ``burned`` is what was actually taken.

Slashed validators are not special-cased: the caller marks them inactive or as
having missed.  ``minted`` and ``burned`` are explicit so that
``sum(new) == sum(old) + minted - burned`` can always be checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chain.errors import IssuanceRateError, ParamsError, RewardsError
from chain.pos.attestation import GENESIS_EPOCH
from chain.pos.finality import FinalityState
from chain.pos.staking import PROPOSER_REWARD_QUOTIENT

UNITS_PER_POINT = 10**9  # nanopoints per point
BASIS_POINTS_PER_WHOLE = 10_000  # basis points in 100%
SECONDS_PER_YEAR = 365 * 24 * 60 * 60  # a 365-day year; leap days are left out
DEFAULT_ISSUANCE_RATE_BP = 500  # 5% a year
MIN_ISSUANCE_RATE_BP = 300  # 3% a year
MAX_ISSUANCE_RATE_BP = 1_500  # 15% a year
MIN_EPOCHS_TO_INACTIVITY_PENALTY = 4  # phase0's value, in epochs
# phase0: 2**26 with 6.4-minute epochs; a server cannot wait weeks for finality.
INACTIVITY_PENALTY_QUOTIENT = 2**16
# phase0 floors the total active balance at one EFFECTIVE_BALANCE_INCREMENT (one point here).
EFFECTIVE_BALANCE_INCREMENT_UNITS = UNITS_PER_POINT


def is_plain_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def points_to_units(points: int) -> int:
    if not is_plain_int(points) or points < 0:
        raise RewardsError(f"an amount of points is a whole number of at least 0, got {points!r}")
    return points * UNITS_PER_POINT


def units_to_points(units: int) -> tuple[int, int]:
    """Whole points (floored) and the leftover dust in nanopoints, which stays where it was."""
    if not is_plain_int(units) or units < 0:
        raise RewardsError(f"an amount of nanopoints is a whole number of at least 0, got {units!r}")
    return divmod(units, UNITS_PER_POINT)


@dataclass(frozen=True, slots=True)
class RewardParams:
    """Issuance and penalty rules; the epoch length must match the server's StakingParams."""

    issuance_rate_bp: int = DEFAULT_ISSUANCE_RATE_BP
    slots_per_epoch: int = 8
    slot_seconds: int = 30
    proposer_reward_quotient: int = PROPOSER_REWARD_QUOTIENT
    min_epochs_to_inactivity_penalty: int = MIN_EPOCHS_TO_INACTIVITY_PENALTY
    inactivity_penalty_quotient: int = INACTIVITY_PENALTY_QUOTIENT

    def __post_init__(self) -> None:
        rate = self.issuance_rate_bp
        if not is_plain_int(rate) or not MIN_ISSUANCE_RATE_BP <= rate <= MAX_ISSUANCE_RATE_BP:
            raise IssuanceRateError(
                f"issuance rate must be a whole number of basis points from {MIN_ISSUANCE_RATE_BP} "
                f"to {MAX_ISSUANCE_RATE_BP} (3% to 15% a year), got {rate!r}"
            )
        for name in ("slots_per_epoch", "slot_seconds", "proposer_reward_quotient", "inactivity_penalty_quotient"):
            value = getattr(self, name)
            if not is_plain_int(value) or value < 1:
                raise ParamsError(f"{name} must be a whole number of at least 1, got {value!r}")
        if not is_plain_int(self.min_epochs_to_inactivity_penalty) or self.min_epochs_to_inactivity_penalty < 0:
            raise ParamsError(
                f"min_epochs_to_inactivity_penalty must be a whole number of at least 0, "
                f"got {self.min_epochs_to_inactivity_penalty!r}"
            )

    @property
    def epoch_seconds(self) -> int:
        return self.slots_per_epoch * self.slot_seconds


DEFAULT_REWARDS = RewardParams()


@dataclass(frozen=True, slots=True)
class EpochParticipation:
    """Who could and who did take part in one epoch; effective balances in nanopoints.

    ``proposers[s]`` is the index of the validator whose block filled slot ``s``
    of the epoch, or None when the slot stayed empty.
    """

    effective_balances: tuple[int, ...]
    active: tuple[bool, ...]
    attested_target: tuple[bool, ...]
    proposers: tuple[int | None, ...]


@dataclass(frozen=True, slots=True)
class EpochRewardsSummary:
    """What one epoch paid and took, in nanopoints; ``deltas[i]`` is reward minus penalty."""

    budget: int
    minted: int
    burned: int
    deltas: tuple[int, ...]
    in_inactivity_leak: bool

    @property
    def net_supply_change(self) -> int:
        return self.minted - self.burned


def get_finality_delay(state: FinalityState) -> int:
    """phase0's ``get_finality_delay``: previous epoch minus the finalized epoch."""
    previous_epoch = max(state.current_epoch - 1, GENESIS_EPOCH)
    return previous_epoch - state.finalized_checkpoint.epoch


def is_in_inactivity_leak(epochs_since_finality: int, params: RewardParams) -> bool:
    """phase0's ``is_in_inactivity_leak``: strictly more than the minimum delay."""
    return epochs_since_finality > params.min_epochs_to_inactivity_penalty


def compute_epoch_issuance(total_active_balance: int, params: RewardParams) -> int:
    """The epoch's reward budget: the yearly rate pro rata over the epoch, floored."""
    return (total_active_balance * params.issuance_rate_bp * params.epoch_seconds) // (
        BASIS_POINTS_PER_WHOLE * SECONDS_PER_YEAR
    )


def compute_proposer_budget(budget: int, params: RewardParams) -> int:
    """1/8 of the budget, as phase0's PROPOSER_REWARD_QUOTIENT; the attesters get the rest."""
    return budget // params.proposer_reward_quotient


def compute_proposer_slot_reward(budget: int, params: RewardParams) -> int:
    return compute_proposer_budget(budget, params) // params.slots_per_epoch


def get_base_reward(effective_balance: int, total_active_balance: int, budget: int, params: RewardParams) -> int:
    """An attester's reward: its stake's share of the attesters' 7/8 of the budget.

    Also what a missed target costs outside a leak (phase0 penalizes a miss by
    the reward it would have earned).
    """
    attester_budget = budget - compute_proposer_budget(budget, params)
    return attester_budget * effective_balance // total_active_balance


def compute_inactivity_penalty(effective_balance: int, epochs_since_finality: int, params: RewardParams) -> int:
    """phase0's leak term, ``effective_balance * finality_delay // INACTIVITY_PENALTY_QUOTIENT``."""
    return effective_balance * epochs_since_finality // params.inactivity_penalty_quotient


def compute_total_active_balance(participation: EpochParticipation) -> int:
    # Not strict: process_epoch sums before the rewards step checks the lengths, and that step
    # is the one to refuse a mismatch, with a RewardsError that says which list is off.
    total = sum(
        eb for eb, active in zip(participation.effective_balances, participation.active, strict=False) if active
    )
    return max(EFFECTIVE_BALANCE_INCREMENT_UNITS, total)


def _check_inputs(
    balances: Sequence[int], participation: EpochParticipation, params: RewardParams, epochs_since_finality: int
) -> None:
    count = len(balances)
    for name in ("effective_balances", "active", "attested_target"):
        length = len(getattr(participation, name))
        if length != count:
            raise RewardsError(f"{name.replace('_', ' ')} has {length} entries for {count} validators")
    for index, balance in enumerate(balances):
        if not is_plain_int(balance) or balance < 0:
            raise RewardsError(f"balance of validator {index} must be whole nanopoints, at least 0, got {balance!r}")
    for index, effective in enumerate(participation.effective_balances):
        if not is_plain_int(effective) or effective < 0:
            raise RewardsError(
                f"effective balance of validator {index} must be whole nanopoints, at least 0, got {effective!r}"
            )
    for index, (active, attested) in enumerate(zip(participation.active, participation.attested_target, strict=True)):
        if not isinstance(active, bool) or not isinstance(attested, bool):
            raise RewardsError(f"participation flags of validator {index} must be booleans")
        if attested and not active:
            raise RewardsError(f"validator {index} is not active this epoch, so it cannot have attested")
    if len(participation.proposers) != params.slots_per_epoch:
        raise RewardsError(
            f"an epoch has {params.slots_per_epoch} slots, got {len(participation.proposers)} proposer entries"
        )
    for slot, proposer in enumerate(participation.proposers):
        if proposer is None:
            continue
        if not is_plain_int(proposer) or not 0 <= proposer < count:
            raise RewardsError(f"slot {slot}'s proposer {proposer!r} is not one of the {count} validators")
        if not participation.active[proposer]:
            raise RewardsError(f"slot {slot}'s proposer {proposer} is not active this epoch")
    if not is_plain_int(epochs_since_finality) or epochs_since_finality < 0:
        raise RewardsError(f"epochs since finality must be a whole number of at least 0, got {epochs_since_finality!r}")


def get_attestation_deltas(
    participation: EpochParticipation, params: RewardParams, epochs_since_finality: int, budget: int, total: int
) -> tuple[list[int], list[int]]:
    """Rewards and (requested) penalties per validator, before the floor at zero."""
    leaking = is_in_inactivity_leak(epochs_since_finality, params)
    count = len(participation.effective_balances)
    rewards = [0] * count
    penalties = [0] * count
    for index in range(count):
        if not participation.active[index]:
            continue
        effective = participation.effective_balances[index]
        base = get_base_reward(effective, total, budget, params)
        if participation.attested_target[index]:
            # During a leak phase0 cancels the attester's reward: only the online majority's
            # stake share must grow, and it grows by the offline stake burning, not by minting.
            if not leaking:
                rewards[index] = base
        else:
            penalties[index] = base
            if leaking:
                penalties[index] += compute_inactivity_penalty(effective, epochs_since_finality, params)
    slot_reward = compute_proposer_slot_reward(budget, params)
    for proposer in participation.proposers:
        if proposer is not None:
            rewards[proposer] += slot_reward
    return rewards, penalties


def process_rewards_and_penalties(
    balances: Sequence[int],
    participation: EpochParticipation,
    params: RewardParams,
    epochs_since_finality: int,
) -> tuple[tuple[int, ...], EpochRewardsSummary]:
    """Pay and charge one epoch; returns the new balances and what was minted and burned.

    All inputs are checked before anything is computed; nothing is mutated.
    """
    _check_inputs(balances, participation, params, epochs_since_finality)
    total = compute_total_active_balance(participation)
    budget = compute_epoch_issuance(total, params)
    rewards, penalties = get_attestation_deltas(participation, params, epochs_since_finality, budget, total)
    new_balances = []
    deltas = []
    minted = burned = 0
    for balance, reward, penalty in zip(balances, rewards, penalties, strict=True):
        # phase0 applies increase_balance then decrease_balance, which floors at zero.
        raised = balance + reward
        taken = min(penalty, raised)
        new_balances.append(raised - taken)
        deltas.append(reward - taken)
        minted += reward
        burned += taken
    summary = EpochRewardsSummary(
        budget=budget,
        minted=minted,
        burned=burned,
        deltas=tuple(deltas),
        in_inactivity_leak=is_in_inactivity_leak(epochs_since_finality, params),
    )
    return tuple(new_balances), summary
