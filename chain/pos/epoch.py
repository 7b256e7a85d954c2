"""The accounting part of phase0's ``process_epoch`` (beacon-chain.md), on plain balances, in its order:

1. ``process_justification_and_finalization`` (chain/pos/finality.py);
2. ``process_rewards_and_penalties`` (chain/pos/rewards.py), with the finality delay
   that step 1 just produced, as phase0 reads it from the same state;
3. ``process_effective_balance_updates``, in nanopoints, with phase0's hysteresis.

phase0 weighs the previous epoch's target votes from ``previous_epoch_attestations``;
here ``EpochState`` carries the previous epoch's attesting balance forward instead,
since the attestations themselves were already checked when they arrived.
Registry changes (deposits, exits, slashings) stay in chain/pos/staking.py; the caller
passes this epoch's ``active`` flags.  chain/pos/epoch_transition.py's ``process_epoch`` runs
``process_epoch_accounting`` as its first step, then the registry updates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chain.errors import RewardsError
from chain.pos.finality import FinalityState, process_justification_and_finalization
from chain.pos.rewards import (
    UNITS_PER_POINT,
    EpochParticipation,
    EpochRewardsSummary,
    RewardParams,
    compute_total_active_balance,
    get_finality_delay,
    process_rewards_and_penalties,
)
from chain.pos.staking import (
    HYSTERESIS_DOWNWARD_MULTIPLIER,
    HYSTERESIS_QUOTIENT,
    HYSTERESIS_UPWARD_MULTIPLIER,
)

# phase0's MAX_EFFECTIVE_BALANCE (32 ETH) as 32 points, in nanopoints.
DEFAULT_MAX_EFFECTIVE_BALANCE_UNITS = 32 * UNITS_PER_POINT
# One whole point, as phase0's EFFECTIVE_BALANCE_INCREMENT is one ETH.
EFFECTIVE_BALANCE_INCREMENT_UNITS = UNITS_PER_POINT


@dataclass(frozen=True, slots=True)
class EpochState:
    """What the epoch transition reads and writes; amounts in nanopoints."""

    finality: FinalityState
    balances: tuple[int, ...]
    effective_balances: tuple[int, ...]
    # The previous epoch's target votes, weighed again at this epoch's end (phase0 keeps the attestations).
    previous_epoch_target_balance: int = 0

    def __post_init__(self) -> None:
        if len(self.balances) != len(self.effective_balances):
            raise RewardsError(
                f"{len(self.balances)} balances but {len(self.effective_balances)} effective balances"
            )


@dataclass(frozen=True, slots=True)
class EpochReport:
    finality_delay: int
    total_active_balance: int
    current_epoch_target_balance: int
    rewards: EpochRewardsSummary


def compute_effective_balance_units(balance: int, max_effective_balance: int) -> int:
    return min(balance - balance % EFFECTIVE_BALANCE_INCREMENT_UNITS, max_effective_balance)


def process_effective_balance_updates(
    balances: Sequence[int], effective_balances: Sequence[int], max_effective_balance: int
) -> tuple[int, ...]:
    """phase0's hysteresis: the effective balance moves only when the balance leaves its band,
    so a reward or penalty of a few nanopoints does not flip it every epoch."""
    hysteresis_increment = EFFECTIVE_BALANCE_INCREMENT_UNITS // HYSTERESIS_QUOTIENT
    downward = hysteresis_increment * HYSTERESIS_DOWNWARD_MULTIPLIER
    upward = hysteresis_increment * HYSTERESIS_UPWARD_MULTIPLIER
    updated = []
    for balance, effective in zip(balances, effective_balances, strict=True):
        if balance + downward < effective or effective + upward < balance:
            effective = compute_effective_balance_units(balance, max_effective_balance)
        updated.append(effective)
    return tuple(updated)


def process_epoch_accounting(
    state: EpochState,
    active: Sequence[bool],
    attested_target: Sequence[bool],
    proposers: Sequence[int | None],
    previous_epoch_root: bytes,
    current_epoch_root: bytes,
    params: RewardParams,
    max_effective_balance: int = DEFAULT_MAX_EFFECTIVE_BALANCE_UNITS,
) -> tuple[EpochState, EpochReport]:
    """End ``state.finality.current_epoch``; returns the next epoch's state and what happened.

    Every input is checked (by the finality and rewards steps, which change
    nothing until their own checks pass) before the new state is assembled.
    """
    participation = EpochParticipation(
        state.effective_balances, tuple(active), tuple(attested_target), tuple(proposers)
    )
    total = compute_total_active_balance(participation)
    current_target = sum(
        effective
        # Not strict: the rewards step below refuses lists of the wrong length with a RewardsError.
        for effective, is_active, voted in zip(
            state.effective_balances, participation.active, participation.attested_target, strict=False
        )
        if is_active and voted
    )
    # A previous-epoch balance carried over from a bigger validator set cannot exceed today's total.
    previous_target = min(state.previous_epoch_target_balance, total)
    finality = process_justification_and_finalization(
        state.finality, total, previous_target, current_target, previous_epoch_root, current_epoch_root
    )
    delay = get_finality_delay(finality)
    balances, summary = process_rewards_and_penalties(state.balances, participation, params, delay)
    effective = process_effective_balance_updates(balances, state.effective_balances, max_effective_balance)
    new_state = EpochState(finality, balances, effective, current_target)
    return new_state, EpochReport(delay, total, current_target, summary)
