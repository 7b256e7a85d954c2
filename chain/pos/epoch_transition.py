"""The beacon state's epoch transition, as phase0's ``process_epoch``: finality and rewards
(``chain.pos.epoch``'s accounting), registry and participation updates, the events an epoch
emits, and ``process_slots``, which runs every epoch boundary a block's slot passes."""

from __future__ import annotations

import logging
from dataclasses import replace

from chain.events import (
    ChainEvent,
    CheckpointFinalized,
    CheckpointJustified,
    EpochRewards,
    InactivityLeakEnded,
    InactivityLeakStarted,
    ValidatorActivated,
    ValidatorExited,
    ValidatorWithdrawable,
)
from chain.pos.beacon import (
    CHECKPOINT_ROOTS_KEPT,
    EJECTION_BALANCE_UNITS,
    BeaconState,
    get_checkpoint_root,
    get_epoch_at_slot,
    get_epoch_length,
    get_start_slot_at_epoch,
)
from chain.pos.epoch import EpochReport, EpochState, process_effective_balance_updates, process_epoch_accounting
from chain.pos.rewards import (
    RewardParams,
)
from chain.pos.staking import (
    FAR_FUTURE_EPOCH,
    Registry,
    initiate_validator_exit,
    is_active_validator,
)

logger = logging.getLogger(__name__)


# --- epoch processing ---------------------------------------------------------


def _slot_seconds(state: BeaconState, epoch: int, pow_spacing_s: int) -> int:
    if state.merge_epoch is not None and epoch >= state.merge_epoch:
        return state.config.slot_duration_s
    return pow_spacing_s


def process_epoch(state: BeaconState, pow_spacing_s: int) -> BeaconState:
    """phase0's ``process_epoch`` on the beacon state: end ``state.epoch`` and move to the next.

    The steps, in order (each returns a new state; none builds events):

    1. ``process_finality_and_rewards`` (votes count) or ``process_pre_merge_epoch`` (a pow chain
       before its Merge);
    2. ``process_registry_updates``: ejections (after the effective balances, which they read);
    3. ``process_participation_record_updates``: this epoch's voters become the previous epoch's;
    4. ``advance_epoch``: epoch + 1, with an empty proposer record for it;
    5. ``compute_epoch_events``: what happened, by comparing the state before and after.

    Activations, exits and withdrawability need no step of their own: their epochs were set when
    the deposit, exit or slashing was processed; step 5 announces them.
    """
    pre = state
    report = None
    if state.ffg_enabled:
        state, report = process_finality_and_rewards(state, pow_spacing_s)
    else:
        state = process_pre_merge_epoch(state)
    state = process_registry_updates(state)
    state = process_participation_record_updates(state)
    state = advance_epoch(state)
    return state.with_events(*compute_epoch_events(pre, state, report))


def compute_epoch_participation(state: BeaconState) -> tuple[tuple[bool, ...], tuple[bool, ...], int]:
    """Who counts at the end of ``state.epoch``: the active flags, this epoch's target voters (active,
    not slashed) and the previous epoch's target votes weighed again (phase0 keeps the attestations)."""
    epoch = state.epoch
    validators = state.registry.validators
    active = tuple(is_active_validator(v, epoch) for v in validators)
    attested = tuple(
        active[i] and i in state.current_attesters and not validators[i].slashed for i in range(len(validators))
    )
    previous_target = sum(
        validators[i].effective_balance for i in state.previous_attesters if active[i] and not validators[i].slashed
    )
    return active, attested, previous_target


def process_finality_and_rewards(state: BeaconState, pow_spacing_s: int) -> tuple[BeaconState, EpochReport]:
    """phase0's justification and finalization, rewards and penalties, and effective balance
    updates, in that order (``chain.pos.epoch.process_epoch_accounting``), written into the beacon state."""
    epoch = state.epoch
    config = state.config
    validators = state.registry.validators
    active, attested, previous_target = compute_epoch_participation(state)
    reward_params = RewardParams(
        issuance_rate_bp=config.issuance_rate_bp,
        slots_per_epoch=get_epoch_length(state, epoch),
        slot_seconds=_slot_seconds(state, epoch, pow_spacing_s),
    )
    effective = tuple(v.effective_balance for v in validators)
    accounts, report = process_epoch_accounting(
        EpochState(state.finality, state.registry.balances, effective, previous_target),
        active,
        attested,
        state.epoch_proposers,
        get_checkpoint_root(state, max(epoch - 1, 0)),
        get_checkpoint_root(state, epoch),
        reward_params,
        config.max_effective_balance_units,
    )
    registry = Registry(
        tuple(replace(v, effective_balance=eb) for v, eb in zip(validators, accounts.effective_balances, strict=True)),
        accounts.balances,
    )
    new_state = replace(
        state,
        registry=registry,
        finality=accounts.finality,
        minted_units=state.minted_units + report.rewards.minted,
        burned_units=state.burned_units + report.rewards.burned,
        # With nobody active there is nobody to leak from: no leak to announce.
        in_leak=report.rewards.in_inactivity_leak and any(active),
    )
    return new_state, report


def process_pre_merge_epoch(state: BeaconState) -> BeaconState:
    """A pow chain before its Merge: no votes, no rewards; deposits still settle into effective balances."""
    registry = state.registry
    effective = process_effective_balance_updates(
        registry.balances,
        tuple(v.effective_balance for v in registry.validators),
        state.config.max_effective_balance_units,
    )
    registry = Registry(
        tuple(replace(v, effective_balance=eb) for v, eb in zip(registry.validators, effective, strict=True)),
        registry.balances,
    )
    return replace(state, registry=registry, finality=replace(state.finality, current_epoch=state.epoch + 1))


def process_registry_updates(state: BeaconState) -> BeaconState:
    """phase0's ``process_registry_updates``, ejections only (activations are scheduled at deposit):
    exit every active validator the leak drained to EJECTION_BALANCE or below.

    Unlike phase0 it runs after the effective balance updates, so it reads this epoch's."""
    epoch = state.epoch
    params = state.config.staking_params()
    registry = state.registry
    for index, validator in enumerate(registry.validators):
        if (
            is_active_validator(validator, epoch)
            and validator.exit_epoch == FAR_FUTURE_EPOCH
            and validator.effective_balance <= EJECTION_BALANCE_UNITS
        ):
            registry = initiate_validator_exit(registry, index, epoch, params)
    return replace(state, registry=registry)


def process_participation_record_updates(state: BeaconState) -> BeaconState:
    """phase0's step of the same name: this epoch's voters become the previous epoch's."""
    return replace(state, current_attesters=frozenset(), previous_attesters=state.current_attesters)


def advance_epoch(state: BeaconState) -> BeaconState:
    """Epoch + 1, with an empty proposer record of the new epoch's length."""
    next_epoch = state.epoch + 1
    new_state = replace(state, epoch=next_epoch)
    return replace(new_state, epoch_proposers=(None,) * get_epoch_length(new_state, next_epoch))


def compute_epoch_events(pre: BeaconState, post: BeaconState, report: EpochReport | None) -> tuple[ChainEvent, ...]:
    """What the epoch transition from ``pre`` to ``post`` announces, by comparing the two: the
    rewards (when votes counted and someone was active), new justified and finalized checkpoints,
    a leak starting or ending, and the validators activated, exited or withdrawable from the new epoch."""
    epoch = pre.epoch
    events: list[ChainEvent] = []
    if report is not None and any(is_active_validator(v, epoch) for v in pre.registry.validators):
        events.append(
            EpochRewards(
                epoch=epoch,
                minted_units=report.rewards.minted,
                burned_units=report.rewards.burned,
                attesting_units=report.current_epoch_target_balance,
                active_units=report.total_active_balance,
                in_inactivity_leak=report.rewards.in_inactivity_leak,
                finality_delay=report.finality_delay,
            )
        )
    old, new = pre.finality, post.finality
    if new.current_justified_checkpoint != old.current_justified_checkpoint:
        checkpoint = new.current_justified_checkpoint
        events.append(CheckpointJustified(epoch=checkpoint.epoch, root=checkpoint.root))
    if new.finalized_checkpoint != old.finalized_checkpoint:
        checkpoint = new.finalized_checkpoint
        events.append(CheckpointFinalized(epoch=checkpoint.epoch, root=checkpoint.root))
    if post.in_leak and not pre.in_leak:
        delay = report.finality_delay if report is not None else 0
        events.append(InactivityLeakStarted(epoch=epoch, finality_delay=delay))
    elif pre.in_leak and not post.in_leak:
        events.append(InactivityLeakEnded(epoch=epoch))
    next_epoch = post.epoch
    for index, validator in enumerate(post.registry.validators):
        if validator.activation_epoch == next_epoch:
            events.append(ValidatorActivated(validator_index=index, pubkey=validator.pubkey, epoch=next_epoch))
        if validator.exit_epoch == next_epoch:
            events.append(
                ValidatorExited(validator_index=index, pubkey=validator.pubkey, epoch=next_epoch,
                                slashed=validator.slashed)
            )
        if validator.withdrawable_epoch == next_epoch:
            events.append(ValidatorWithdrawable(validator_index=index, pubkey=validator.pubkey, epoch=next_epoch))
    return tuple(events)


def process_slots(
    state: BeaconState, slot: int, parent_root: bytes, block_root: bytes, pow_spacing_s: int
) -> BeaconState:
    """phase0's ``process_slots`` up to a block at ``slot``: every epoch it crosses ends in turn.

    Each new epoch's checkpoint root is the block at its first slot, or the
    latest block before it (the parent): this block's own root when it sits on
    that first slot.
    """
    target_epoch = get_epoch_at_slot(state, slot)
    while state.epoch < target_epoch:
        pre = state
        state = process_epoch(state, pow_spacing_s)
        _log_epoch_end(pre, state)
        start = get_start_slot_at_epoch(state, state.epoch)
        root = block_root if start == slot else parent_root
        state = replace(state, checkpoint_roots=(state.checkpoint_roots + (root,))[-CHECKPOINT_ROOTS_KEPT:])
    return state


def _log_epoch_end(pre: BeaconState, post: BeaconState) -> None:
    logger.debug(
        "epoch %d ended: minted %d, burned %d nanopoints; justified %d, finalized %d",
        pre.epoch,
        post.minted_units - pre.minted_units,
        post.burned_units - pre.burned_units,
        post.finality.current_justified_checkpoint.epoch,
        post.finality.finalized_checkpoint.epoch,
    )
