"""Proof of stake wired into a chain: the consensus config, the beacon state and its transitions.

A chain's ``ConsensusConfig`` picks its mode:

- ``pow``: proof of work as before.  With a scheduled Merge (at a height, or at a
  total difficulty, the sum of ``compute_block_work`` of every block from
  genesis), the blocks after the *terminal* proof-of-work block are proof-of-stake
  blocks.  Before the Merge, version-2 blocks may carry deposits, exits and
  withdrawals, so that members who staked early are the first validators.
- ``hybrid``: proof of work with Casper FFG on top: an epoch is
  ``checkpoint_interval_blocks`` blocks (one slot per block: a block's slot is
  its height), and validators' votes justify and finalize those checkpoints.
- ``pos``: no proof of work at all: genesis validators propose from slot 1.

The config is committed in the genesis coinbase with the chain parameters
(``chain.consensus.genesis.compute_genesis_commitment``), so ``verify`` replays it.

``BeaconState`` is the proof-of-stake part of a chain's state (phase0's
``BeaconState`` trimmed to what a server needs): the validator registry (in
nanopoints), the FFG finality state, this and the previous epoch's target
voters, this epoch's proposers, the checkpoint root of every epoch, the Merge
timeline, and the nanopoints minted and burned.  Every function here returns
a new state; none mutates.

Slots and epochs.  Before the Merge a block's slot is its height and an epoch is
``checkpoint_interval_blocks`` slots.  The Merge fixes a timeline: the slot
after the terminal block's slot starts ``slot_duration_s`` after its time, and
so on; the rest of the terminal block's epoch keeps its length, and every epoch
after it has ``slots_per_epoch`` slots.  A ``pos`` chain has that timeline from
genesis (slot 0 at genesis time).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from chain.errors import (
    AttestationError,
    ConsensusConfigError,
    DuplicateAttestationError,
    ExitError,
    InsufficientBalanceError,
    InvalidAmountError,
    IssuanceRateError,
    NonceGapError,
    NonceReplayError,
    OperationsError,
    ProposerSelectionError,
    UnknownAccountError,
    UnknownValidatorError,
    ValidatorStatusError,
    WithdrawalMismatchError,
    WrongChainError,
)
from chain.events import (
    CHECKPOINT_FINALIZED,
    CHECKPOINT_JUSTIFIED,
    EPOCH_REWARDS,
    INACTIVITY_LEAK_ENDED,
    INACTIVITY_LEAK_STARTED,
    MERGE_DELAYED,
    STAKE_DEPOSITED,
    STAKE_WITHDRAWN,
    THE_MERGE,
    VALIDATOR_ACTIVATED,
    VALIDATOR_EXITED,
    VALIDATOR_SLASHED,
    VALIDATOR_WITHDRAWABLE,
    ChainEvent,
)
from chain.hashing import hash_to_display
from chain.keys import PUBLIC_KEY_SIZE_BYTES, is_valid_public_key
from chain.ledger.accounts import Account
from chain.mode import Mode, parse_mode
from chain.pos.attestation import (
    AttestationData,
    AttesterSlashing,
    Checkpoint,
    ProposerSlashing,
    SignedAttestation,
    check_attestation_signature,
    check_attester_slashing,
    check_proposer_slashing,
)
from chain.pos.epoch import EpochReport, EpochState, process_effective_balance_updates, process_epoch_accounting
from chain.pos.finality import FinalityState, genesis_finality_state
from chain.pos.operations import (
    MAX_VALIDATORS_PER_WITHDRAWALS_SWEEP,
    MAX_WITHDRAWALS_PER_PAYLOAD,
    Deposit,
    VoluntaryExit,
    Withdrawal,
    check_deposit_signatures,
    check_exit_signature,
)
from chain.pos.proposer import (
    ProposerDraw,
    compute_proposer_index,
    compute_proposer_seed,
    compute_seed_mix_epoch,
    explain_proposer_draw_at,
    get_seed,
)
from chain.pos.rewards import (
    DEFAULT_ISSUANCE_RATE_BP,
    MAX_ISSUANCE_RATE_BP,
    MIN_ISSUANCE_RATE_BP,
    UNITS_PER_POINT,
    RewardParams,
    points_to_units,
    units_to_points,
)
from chain.pos.staking import (
    FAR_FUTURE_EPOCH,
    MIN_SLASHING_PENALTY_QUOTIENT_BELLATRIX,
    Registry,
    SlashingPenalty,
    StakingParams,
    Validator,
    apply_deposit,
    apply_full_withdrawal,
    apply_voluntary_exit,
    initiate_validator_exit,
    is_active_validator,
    is_slashable_validator,
    slash_validator,
)

logger = logging.getLogger(__name__)

# phase0's EJECTION_BALANCE (16 ETH) as 16 points: a leaked-out validator is exited.
EJECTION_BALANCE_UNITS = 16 * UNITS_PER_POINT
# phase0's MIN_ATTESTATION_INCLUSION_DELAY: a vote is included from the next slot on.
MIN_ATTESTATION_INCLUSION_DELAY = 1
# Epoch checkpoint roots the state keeps: FFG weighs the current and previous epoch, votes target
# them, and the proposer seed mixes the previous one's.  Four leaves room and keeps the state small.
CHECKPOINT_ROOTS_KEPT = 4


@dataclass(frozen=True, slots=True)
class GenesisValidator:
    """A validator that exists from genesis (a ``pos`` chain needs at least one), active at epoch 0."""

    pubkey: bytes
    withdrawal_address: bytes
    amount_points: int


@dataclass(frozen=True, slots=True)
class GenesisAllocation:
    """Points credited to a wallet at genesis (a ``pos`` chain mints nothing by mining)."""

    address: bytes
    amount_points: int


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class ConsensusConfig:
    """A chain's consensus rules beyond ``ChainParams``; amounts in whole points."""

    mode: Mode = Mode.POW
    slot_duration_s: int = 30
    slots_per_epoch: int = 8
    min_deposit_points: int = 32
    max_effective_balance_points: int = 32
    unbonding_epochs: int = 15
    slashed_unbonding_epochs: int = 360
    issuance_rate_bp: int = DEFAULT_ISSUANCE_RATE_BP
    slashing_penalty_quotient: int = MIN_SLASHING_PENALTY_QUOTIENT_BELLATRIX
    # Hybrid: an FFG checkpoint every N proof-of-work blocks (also the pre-Merge epoch of a pow chain).
    checkpoint_interval_blocks: int = 8
    # The Merge, at most one of the two (0: not scheduled).  At height H block H is the first
    # proof-of-stake block; at total difficulty D the first block whose total reaches D is the
    # terminal proof-of-work block, as Ethereum's TERMINAL_TOTAL_DIFFICULTY.
    merge_at_height: int = 0
    merge_at_total_difficulty: int = 0
    genesis_validators: tuple[GenesisValidator, ...] = ()
    genesis_allocations: tuple[GenesisAllocation, ...] = ()

    def __post_init__(self) -> None:
        # A plain string ("pos", as stored or typed) becomes its Mode here, through the one parser.
        object.__setattr__(self, "mode", parse_mode(self.mode))
        check_consensus_config(self)

    @property
    def has_merge(self) -> bool:
        return self.merge_at_height > 0 or self.merge_at_total_difficulty > 0

    def staking_params(self) -> StakingParams:
        """chain/pos/staking.py's rules for this chain, in nanopoints."""
        return StakingParams(
            slot_duration_s=self.slot_duration_s,
            slots_per_epoch=self.slots_per_epoch,
            min_deposit_points=self.min_deposit_points,
            max_effective_balance_points=self.max_effective_balance_points,
            effective_balance_increment_points=1,
            unbonding_epochs=self.unbonding_epochs,
            slashed_unbonding_epochs=self.slashed_unbonding_epochs,
            slashing_penalty_quotient=self.slashing_penalty_quotient,
        ).in_units(UNITS_PER_POINT)

    @property
    def max_effective_balance_units(self) -> int:
        return self.max_effective_balance_points * UNITS_PER_POINT

    def to_json(self) -> str:
        raw = asdict(self)
        raw["mode"] = self.mode.value  # the plain string, as committed before Mode existed
        raw["genesis_validators"] = [
            {
                "pubkey": v.pubkey.hex(),
                "withdrawal_address": v.withdrawal_address.hex(),
                "amount_points": v.amount_points,
            }
            for v in self.genesis_validators
        ]
        raw["genesis_allocations"] = [
            {"address": a.address.hex(), "amount_points": a.amount_points} for a in self.genesis_allocations
        ]
        return json.dumps(raw, sort_keys=True, separators=(",", ":"))

    def to_bytes(self) -> bytes:
        """Canonical bytes, committed to in the genesis block."""
        return self.to_json().encode()

    @classmethod
    def from_json(cls, text: str) -> ConsensusConfig:
        try:
            raw: dict[str, Any] = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConsensusConfigError(f"consensus config is not valid JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConsensusConfigError("consensus config must be a JSON object")
        unknown = set(raw) - {f.name for f in fields(cls)}
        if unknown:
            raise ConsensusConfigError(f"unknown consensus settings: {sorted(unknown)}")
        if "mode" in raw:
            raw["mode"] = parse_mode(raw["mode"])
        try:
            raw["genesis_validators"] = tuple(
                GenesisValidator(bytes.fromhex(v["pubkey"]), bytes.fromhex(v["withdrawal_address"]), v["amount_points"])
                for v in raw.get("genesis_validators", ())
            )
            raw["genesis_allocations"] = tuple(
                GenesisAllocation(bytes.fromhex(a["address"]), a["amount_points"])
                for a in raw.get("genesis_allocations", ())
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConsensusConfigError(f"genesis validators or allocations are malformed: {exc}") from exc
        return cls(**raw)

    def evolve(self, **changes: Any) -> ConsensusConfig:
        return replace(self, **changes)


def check_consensus_config(config: ConsensusConfig) -> None:
    """Refuse configs that cannot make a working chain; each refusal names the setting."""
    parse_mode(config.mode)
    for f in fields(config):
        if f.name in ("mode", "genesis_validators", "genesis_allocations"):
            continue
        value = getattr(config, f.name)
        if not _is_int(value) or value < 0:
            raise ConsensusConfigError(f"{f.name} must be a whole number of at least 0, got {value!r}")
    for name in (
        "slot_duration_s",
        "slots_per_epoch",
        "min_deposit_points",
        "max_effective_balance_points",
        "unbonding_epochs",
        "slashed_unbonding_epochs",
        "slashing_penalty_quotient",
        "checkpoint_interval_blocks",
    ):
        if getattr(config, name) < 1:
            raise ConsensusConfigError(f"{name} must be at least 1")
    if not MIN_ISSUANCE_RATE_BP <= config.issuance_rate_bp <= MAX_ISSUANCE_RATE_BP:
        raise IssuanceRateError(
            f"issuance rate must be {MIN_ISSUANCE_RATE_BP}..{MAX_ISSUANCE_RATE_BP} basis points "
            f"(3% to 15% a year), got {config.issuance_rate_bp}"
        )
    if config.slashed_unbonding_epochs < config.unbonding_epochs:
        raise ConsensusConfigError("slashed_unbonding_epochs must be at least unbonding_epochs")
    if config.merge_at_height and config.merge_at_total_difficulty:
        raise ConsensusConfigError("schedule the Merge at a height or at a total difficulty, not both")
    if config.mode is Mode.POS and config.has_merge:
        raise ConsensusConfigError("a pos chain has no proof of work, so there is no Merge to schedule")
    if config.mode is Mode.POS and not config.genesis_validators:
        raise ConsensusConfigError("a pos chain needs at least one genesis validator to propose its first block")
    seen: set[bytes] = set()
    for validator in config.genesis_validators:
        if not isinstance(validator, GenesisValidator) or not is_valid_public_key(validator.pubkey):
            raise ConsensusConfigError("each genesis validator needs a valid Ed25519 public key")
        if validator.pubkey in seen:
            raise ConsensusConfigError(f"genesis validator {validator.pubkey.hex()[:16]}… is listed twice")
        seen.add(validator.pubkey)
        if (
            not isinstance(validator.withdrawal_address, bytes)
            or len(validator.withdrawal_address) != PUBLIC_KEY_SIZE_BYTES
        ):
            raise ConsensusConfigError("a genesis validator's withdrawal address is a 32-byte wallet key")
        if not _is_int(validator.amount_points) or validator.amount_points < config.min_deposit_points:
            raise ConsensusConfigError(
                f"a genesis validator needs at least {config.min_deposit_points} points, "
                f"got {validator.amount_points!r}"
            )
    for allocation in config.genesis_allocations:
        if (
            not isinstance(allocation, GenesisAllocation)
            or not isinstance(allocation.address, bytes)
            or len(allocation.address) != PUBLIC_KEY_SIZE_BYTES
        ):
            raise ConsensusConfigError("a genesis allocation's address is a 32-byte wallet key")
        if not _is_int(allocation.amount_points) or allocation.amount_points < 1:
            raise ConsensusConfigError(f"a genesis allocation is at least 1 point, got {allocation.amount_points!r}")


@dataclass(frozen=True, slots=True)
class TerminalBlock:
    """The last proof-of-work block; the Merge's anchor for the slot clock."""

    height: int
    slot: int
    time: int
    root: bytes
    total_difficulty: int


@dataclass(frozen=True, slots=True)
class BeaconState:
    """The proof-of-stake state after the latest block (see the module docstring)."""

    config: ConsensusConfig
    genesis_time: int
    registry: Registry
    withdrawal_addresses: tuple[bytes, ...]
    finality: FinalityState
    epoch: int
    slot: int
    # Checkpoint roots of the last CHECKPOINT_ROOTS_KEPT epochs, oldest first, ending at ``epoch``
    # (phase0 keeps SLOTS_PER_HISTORICAL_ROOT block roots; the rules here look back two epochs).
    checkpoint_roots: tuple[bytes, ...]
    current_attesters: frozenset[int] = frozenset()
    previous_attesters: frozenset[int] = frozenset()
    epoch_proposers: tuple[int | None, ...] = ()
    next_withdrawal_index: int = 0
    # Capella's withdrawal sweep cursor.
    next_withdrawal_validator_index: int = 0
    minted_units: int = 0
    burned_units: int = 0
    total_difficulty: int = 0
    terminal: TerminalBlock | None = None
    # True from the first proof-of-stake block on (from genesis in pos mode).
    merged: bool = False
    in_leak: bool = False
    # Slot clock after the Merge: the first epoch of slots_per_epoch slots and its first slot.
    merge_epoch: int | None = None
    merge_slot: int | None = None
    anchor: tuple[int, int] = (0, 0)
    # Per validator, nanopoints deposited and withdrawn so far: its net reward is
    # balance + withdrawn - deposited (what ``/stake status`` shows).
    deposited_units: tuple[int, ...] = ()
    withdrawn_units: tuple[int, ...] = ()
    events: tuple[ChainEvent, ...] = field(default=(), compare=False)

    @property
    def ffg_enabled(self) -> bool:
        """Votes count in hybrid and pos chains, and in a pow chain once it has merged."""
        return self.config.mode is not Mode.POW or self.merged


# --- slot clock ----------------------------------------------------------------


def get_epoch_length(state: BeaconState, epoch: int) -> int:
    if state.merge_epoch is not None and epoch >= state.merge_epoch:
        return state.config.slots_per_epoch
    return state.config.checkpoint_interval_blocks


def get_epoch_at_slot(state: BeaconState, slot: int) -> int:
    """The epoch of ``slot`` on this chain's timeline: ``checkpoint_interval_blocks`` slots an epoch
    before the Merge, ``slots_per_epoch`` after it, counted from the Merge's slot (see the module
    docstring).  chain/pos/attestation.py's ``compute_epoch_at_slot`` is the fixed-length primitive."""
    if state.merge_slot is not None and state.merge_epoch is not None and slot >= state.merge_slot:
        return state.merge_epoch + (slot - state.merge_slot) // state.config.slots_per_epoch
    return slot // state.config.checkpoint_interval_blocks


def get_start_slot_at_epoch(state: BeaconState, epoch: int) -> int:
    """The first slot of ``epoch`` on this chain's timeline (``get_epoch_at_slot``'s inverse)."""
    if state.merge_slot is not None and state.merge_epoch is not None and epoch >= state.merge_epoch:
        return state.merge_slot + (epoch - state.merge_epoch) * state.config.slots_per_epoch
    return epoch * state.config.checkpoint_interval_blocks


def compute_slot_time(state: BeaconState, slot: int) -> int:
    """When a proof-of-stake slot starts (only after the Merge, or in a pos chain)."""
    anchor_slot, anchor_time = state.anchor
    return anchor_time + (slot - anchor_slot) * state.config.slot_duration_s


def compute_slot_at_time(state: BeaconState, now: int) -> int:
    """The proof-of-stake slot running at ``now`` (the anchor's slot before it)."""
    anchor_slot, anchor_time = state.anchor
    if now <= anchor_time:
        return anchor_slot
    return anchor_slot + (now - anchor_time) // state.config.slot_duration_s


def get_checkpoint_root(state: BeaconState, epoch: int) -> bytes:
    """phase0's ``get_block_root``: the block at the epoch's first slot, or the latest before it."""
    oldest = state.epoch - len(state.checkpoint_roots) + 1
    if epoch > state.epoch:
        raise AttestationError(f"epoch {epoch} has no checkpoint yet (the chain is at epoch {state.epoch})")
    if epoch < oldest:
        raise AttestationError(f"epoch {epoch}'s checkpoint is too old to look up (kept from epoch {oldest})")
    return state.checkpoint_roots[epoch - oldest]


# --- genesis -----------------------------------------------------------------


def genesis_beacon_state(
    config: ConsensusConfig, genesis_root: bytes, genesis_time: int, genesis_work: int
) -> BeaconState:
    """Epoch 0: genesis validators active (phase0 activates them at GENESIS_EPOCH)."""
    params = config.staking_params()
    validators = []
    balances = []
    for genesis_validator in config.genesis_validators:
        units = points_to_units(genesis_validator.amount_points)
        validators.append(
            Validator(
                pubkey=genesis_validator.pubkey,
                effective_balance=min(units - units % UNITS_PER_POINT, params.max_effective_balance_points),
                slashed=False,
                activation_epoch=0,
            )
        )
        balances.append(units)
    is_pos = config.mode is Mode.POS
    state = BeaconState(
        config=config,
        genesis_time=genesis_time,
        registry=Registry(tuple(validators), tuple(balances)),
        withdrawal_addresses=tuple(v.withdrawal_address for v in config.genesis_validators),
        deposited_units=tuple(balances),
        withdrawn_units=tuple(0 for _ in balances),
        finality=genesis_finality_state(genesis_root),
        epoch=0,
        slot=0,
        checkpoint_roots=(genesis_root,),
        minted_units=sum(balances),
        total_difficulty=0 if is_pos else genesis_work,
        merged=is_pos,
        merge_epoch=0 if is_pos else None,
        merge_slot=0 if is_pos else None,
        anchor=(0, genesis_time),
    )
    return replace(state, epoch_proposers=(None,) * get_epoch_length(state, 0))


# --- proposers -----------------------------------------------------------------


def get_beacon_proposer_index(state: BeaconState, slot: int) -> int:
    """The slot's proposer, drawn as chain/pos/proposer.py describes; ``state`` is at the slot's epoch.

    Seed: ``get_seed(epoch, checkpoint root of epoch - 1)`` then per slot
    ``compute_proposer_seed``; candidates are the active validators, weighted by
    effective balance (nanopoints, capped at the max effective balance).
    """
    epoch = get_epoch_at_slot(state, slot)
    if epoch != state.epoch:
        raise AttestationError(f"slot {slot} is in epoch {epoch}, but the state is at epoch {state.epoch}")
    mix = get_checkpoint_root(state, compute_seed_mix_epoch(epoch))
    seed = compute_proposer_seed(get_seed(epoch, mix), slot)
    indices = [
        i for i, v in enumerate(state.registry.validators) if is_active_validator(v, epoch) and v.effective_balance > 0
    ]
    effective = [v.effective_balance for v in state.registry.validators]
    return compute_proposer_index(indices, effective, seed, state.config.max_effective_balance_units)


def check_slot_has_proposers(current: BeaconState, projected: BeaconState, slot: int) -> None:
    """Refuse, saying why, a draw for a slot where no validator will be active although some are
    now: every one of them has an exit epoch at or before the slot's (a voluntary exit, a slashing or
    an ejection already under way), and nobody waits to take their place."""
    epoch = get_epoch_at_slot(projected, slot)
    if any(is_active_validator(v, epoch) and v.effective_balance > 0 for v in projected.registry.validators):
        return
    now = [v for v in current.registry.validators if is_active_validator(v, current.epoch)]
    if not now:
        raise ProposerSelectionError("there are no active validators, so nobody can propose")
    last_exit = max(v.exit_epoch for v in now)
    raise ProposerSelectionError(
        f"nobody can propose slot {slot}: the {len(now)} validator{'s' if len(now) != 1 else ''} active now "
        f"{'leave' if len(now) != 1 else 'leaves'} by epoch {last_exit} (exited, slashed or ejected) and none "
        f"other will be active in epoch {epoch}; a slot before epoch {last_exit} can still be drawn"
    )


def explain_beacon_proposer(state: BeaconState, slot: int) -> ProposerDraw:
    """``get_beacon_proposer_index`` with every input and attempt kept (for ``/chain proposer``)."""
    epoch = get_epoch_at_slot(state, slot)
    if epoch != state.epoch:
        raise AttestationError(f"slot {slot} is in epoch {epoch}, but the state is at epoch {state.epoch}")
    mix = get_checkpoint_root(state, compute_seed_mix_epoch(epoch))
    indices = [
        i for i, v in enumerate(state.registry.validators) if is_active_validator(v, epoch) and v.effective_balance > 0
    ]
    effective = [v.effective_balance for v in state.registry.validators]
    return explain_proposer_draw_at(slot, epoch, mix, indices, effective, state.config.max_effective_balance_units)


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
    return _append_events(state, *compute_epoch_events(pre, state, report))


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
            ChainEvent(
                EPOCH_REWARDS,
                {
                    "epoch": epoch,
                    "minted_units": report.rewards.minted,
                    "burned_units": report.rewards.burned,
                    "attesting_units": report.current_epoch_target_balance,
                    "active_units": report.total_active_balance,
                    "in_inactivity_leak": report.rewards.in_inactivity_leak,
                    "finality_delay": report.finality_delay,
                },
            )
        )
    old, new = pre.finality, post.finality
    if new.current_justified_checkpoint != old.current_justified_checkpoint:
        checkpoint = new.current_justified_checkpoint
        events.append(
            ChainEvent(CHECKPOINT_JUSTIFIED, {"epoch": checkpoint.epoch, "root": hash_to_display(checkpoint.root)})
        )
    if new.finalized_checkpoint != old.finalized_checkpoint:
        checkpoint = new.finalized_checkpoint
        events.append(
            ChainEvent(CHECKPOINT_FINALIZED, {"epoch": checkpoint.epoch, "root": hash_to_display(checkpoint.root)})
        )
    if post.in_leak and not pre.in_leak:
        delay = report.finality_delay if report is not None else 0
        events.append(ChainEvent(INACTIVITY_LEAK_STARTED, {"epoch": epoch, "finality_delay": delay}))
    elif pre.in_leak and not post.in_leak:
        events.append(ChainEvent(INACTIVITY_LEAK_ENDED, {"epoch": epoch}))
    next_epoch = post.epoch
    for index, validator in enumerate(post.registry.validators):
        who = {"validator_index": index, "pubkey": validator.pubkey.hex(), "epoch": next_epoch}
        if validator.activation_epoch == next_epoch:
            events.append(ChainEvent(VALIDATOR_ACTIVATED, who))
        if validator.exit_epoch == next_epoch:
            events.append(ChainEvent(VALIDATOR_EXITED, {**who, "slashed": validator.slashed}))
        if validator.withdrawable_epoch == next_epoch:
            events.append(ChainEvent(VALIDATOR_WITHDRAWABLE, who))
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


# --- the Merge ------------------------------------------------------------------


def has_proposer_after(state: BeaconState, height: int) -> bool:
    """Whether a validator could propose the slot after block ``height`` (not slashed, active then)."""
    epoch = get_epoch_at_slot(state, height + 1)
    return any(is_active_validator(v, epoch) and not v.slashed for v in state.registry.validators)


def is_proposed_height(state: BeaconState | None, height: int) -> bool:
    """Whether block ``height`` of this chain was proposed by a validator (not mined): every block
    after genesis of a chain started in proof of stake, every block after the terminal one of a merged chain."""
    if state is None or height == 0:
        return False
    if state.config.mode is Mode.POS:
        return True
    return state.terminal is not None and height > state.terminal.height


def is_terminal_block(state: BeaconState, height: int) -> bool:
    """Whether the proof-of-work block just counted (``state.total_difficulty`` includes it) is the last.

    Ethereum's rule (EIP-3675: the first block whose total difficulty reaches
    TERMINAL_TOTAL_DIFFICULTY; here also: the block before ``merge_at_height``), with one
    playground guard: the Merge waits until some validator can propose the next slot, so a
    server that scheduled it before anyone staked keeps mining instead of halting for good.
    """
    config = state.config
    if state.terminal is not None or config.mode is Mode.POS:
        return False
    if config.merge_at_height:
        reached = height >= config.merge_at_height - 1
    elif config.merge_at_total_difficulty:
        reached = state.total_difficulty >= config.merge_at_total_difficulty
    else:
        return False
    return reached and has_proposer_after(state, height)


def is_merge_delayed(state: BeaconState, height: int, previous_total_difficulty: int) -> bool:
    """Whether the block just counted is where the scheduled Merge was due, but no validator can
    propose the next slot, so it is not the terminal block and mining goes on (once per schedule:
    the due block itself, or the first block whose total difficulty reaches the terminal one)."""
    config = state.config
    if state.terminal is not None or config.mode is Mode.POS or has_proposer_after(state, height):
        return False
    if config.merge_at_height:
        return height == config.merge_at_height - 1
    if config.merge_at_total_difficulty:
        return previous_total_difficulty < config.merge_at_total_difficulty <= state.total_difficulty
    return False


def process_merge_delay(state: BeaconState, height: int) -> BeaconState:
    """Announce that the Merge waits for a validator (``is_merge_delayed``)."""
    event = ChainEvent(
        MERGE_DELAYED,
        {
            "height": height,
            "merge_at_height": state.config.merge_at_height,
            "merge_at_total_difficulty": state.config.merge_at_total_difficulty,
            "total_difficulty": state.total_difficulty,
            "pending_validators": sum(1 for v in state.registry.validators if v.activation_epoch > state.epoch),
        },
    )
    return _append_events(state, event)


def mark_terminal_block(state: BeaconState, height: int, time: int, root: bytes) -> BeaconState:
    """Fix the post-Merge slot clock on the terminal block: the next slots are proof-of-stake slots."""
    terminal_epoch = get_epoch_at_slot(state, height)
    merge_epoch = terminal_epoch + 1
    terminal = TerminalBlock(height, height, time, root, state.total_difficulty)
    return replace(
        state,
        terminal=terminal,
        merge_epoch=merge_epoch,
        merge_slot=merge_epoch * state.config.checkpoint_interval_blocks,
        anchor=(height, time),
    )


def process_merge(state: BeaconState, first_pos_height: int) -> BeaconState:
    """At the first proof-of-stake block: the terminal block's checkpoint becomes final.

    Proof of work cannot be reorganised past the Merge, so the checkpoint of the
    terminal block's epoch is taken as finalized and justified (a pow chain
    had no votes before; a hybrid chain's own justified checkpoints are older).
    Without this, the finality delay of the whole proof-of-work history would
    start an inactivity leak at once.
    """
    terminal = state.terminal
    if terminal is None:
        raise OperationsError("the Merge needs a terminal proof-of-work block")
    epoch = get_epoch_at_slot(state, terminal.slot)
    checkpoint = Checkpoint(epoch, get_checkpoint_root(state, epoch))
    finality = replace(
        state.finality,
        justification_bits=(False, False, False, False),
        previous_justified_checkpoint=checkpoint,
        current_justified_checkpoint=checkpoint,
        finalized_checkpoint=checkpoint,
    )
    event = ChainEvent(
        THE_MERGE,
        {
            "height": first_pos_height,
            "terminal_height": terminal.height,
            "terminal_hash": hash_to_display(terminal.root),
            "total_difficulty": terminal.total_difficulty,
            # Active in the first proof-of-stake epoch: the ones who propose from now on (at the terminal
            # block's epoch they may still be pending, which read "Validators: 0" next to "#0 is active").
            "validators": sum(
                1 for v in state.registry.validators
                if is_active_validator(v, state.merge_epoch if state.merge_epoch is not None else state.epoch)
            ),
        },
    )
    return replace(state, finality=finality, merged=True, events=state.events + (event,))


# --- operations ---------------------------------------------------------------


def _append_events(state: BeaconState, *events: ChainEvent) -> BeaconState:
    return replace(state, events=state.events + events)


def process_deposit(
    state: BeaconState, wallet: Account | None, deposit: Deposit, chain_id: int, max_amount_points: int
) -> tuple[BeaconState, Account]:
    """A deposit: checks the signatures, nonce and balance, then locks the points (phase0 ``process_deposit``;
    ``chain.pos.staking.apply_deposit`` is the registry part).  Returns the state and the wallet after it."""
    paying = check_deposit(wallet, deposit, chain_id, max_amount_points)
    known = state.registry.index_of(deposit.validator)
    registry = apply_deposit(
        state.registry, deposit.validator, points_to_units(deposit.amount), state.epoch, state.config.staking_params()
    )
    addresses = state.withdrawal_addresses if known is not None else state.withdrawal_addresses + (deposit.wallet,)
    index = known if known is not None else len(registry.validators) - 1
    deposited, withdrawn = list(state.deposited_units), list(state.withdrawn_units)
    if known is None:
        deposited.append(0)
        withdrawn.append(0)
    deposited[index] += points_to_units(deposit.amount)
    new_state = replace(
        state, registry=registry, withdrawal_addresses=addresses,
        deposited_units=tuple(deposited), withdrawn_units=tuple(withdrawn),
    )
    new_state = _append_events(new_state, compute_deposit_event(state, new_state, deposit))
    return new_state, Account(paying.balance - deposit.amount, paying.nonce + 1)


def check_deposit(wallet: Account | None, deposit: Deposit, chain_id: int, max_amount_points: int) -> Account:
    """A deposit's amount, signatures, nonce and the wallet's balance; returns the paying wallet."""
    if not _is_int(deposit.amount) or deposit.amount < 1:
        raise InvalidAmountError(f"a deposit is a positive whole number of points, got {deposit.amount!r}")
    if deposit.amount > max_amount_points:
        raise InvalidAmountError(f"deposit {deposit.amount} is beyond the supported maximum of {max_amount_points}")
    check_deposit_signatures(deposit, chain_id)
    if wallet is None:
        raise UnknownAccountError(f"wallet {deposit.wallet.hex()[:16]}… has never held any points")
    if deposit.nonce < wallet.nonce:
        raise NonceReplayError(f"deposit nonce {deposit.nonce} was already used; the next nonce is {wallet.nonce}")
    if deposit.nonce > wallet.nonce:
        raise NonceGapError(f"deposit nonce {deposit.nonce} is out of order; the next nonce is {wallet.nonce}")
    if deposit.amount > wallet.balance:
        raise InsufficientBalanceError(f"balance {wallet.balance} is less than the deposit of {deposit.amount}")
    return wallet


def compute_deposit_event(pre: BeaconState, post: BeaconState, deposit: Deposit) -> ChainEvent:
    """STAKE_DEPOSITED for ``deposit``, from the registry before (a top-up's validator was there)
    and after (a new validator is the last one)."""
    known = pre.registry.index_of(deposit.validator)
    index = known if known is not None else len(post.registry.validators) - 1
    return ChainEvent(
        STAKE_DEPOSITED,
        {
            "validator_index": index,
            "pubkey": deposit.validator.hex(),
            "wallet": deposit.wallet.hex(),
            "amount": deposit.amount,
            "top_up": known is not None,
            "activation_epoch": post.registry.validators[index].activation_epoch,
        },
    )


def process_voluntary_exit(state: BeaconState, exit_: VoluntaryExit, chain_id: int) -> BeaconState:
    """phase0's ``process_voluntary_exit``: signed by the validator, active, not exiting, epoch reached."""
    index = exit_.validator_index
    if index >= len(state.registry.validators):
        raise UnknownValidatorError(
            f"there is no validator {index} (the registry has {len(state.registry.validators)})"
        )
    if state.epoch < exit_.epoch:
        raise ExitError(f"the exit is valid from epoch {exit_.epoch}; the chain is at epoch {state.epoch}")
    check_exit_signature(exit_, state.registry.validators[index].pubkey, chain_id)
    registry = apply_voluntary_exit(state.registry, index, state.epoch, state.config.staking_params())
    return replace(state, registry=registry)


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
    return _append_events(state, *compute_withdrawal_events(pre, withdrawals)), changes


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
    events = []
    for withdrawal in withdrawals:
        index = withdrawal.validator_index
        points, dust = units_to_points(withdrawal.amount)
        full = is_fully_withdrawable_validator(pre.registry.validators[index], pre.registry.balances[index], pre.epoch)
        events.append(
            ChainEvent(
                STAKE_WITHDRAWN,
                {
                    "validator_index": index,
                    "address": withdrawal.address.hex(),
                    "points": points,
                    "dust_burned_units": dust,
                    "full": full,
                },
            )
        )
    return tuple(events)


def process_attestation(
    state: BeaconState, attestation: SignedAttestation, block_slot: int, chain_id: int
) -> BeaconState:
    """phase0's ``process_attestation`` for one validator's vote, cheapest checks first.

    Unlike phase0, a vote whose target root is not this chain's checkpoint is
    refused rather than included unrewarded, and a second vote of the same
    validator for the same target is refused rather than ignored.  The head vote
    (``beacon_block_root``) is not checked here: it only feeds the fork choice
    (chain/pos/forkchoice.py), and may name a block that lost its slot.
    """
    data = attestation.data
    check_attestation_data_against_state(state, data, block_slot, chain_id)
    index = get_attesting_index(state, attestation)
    is_current = data.target.epoch == state.epoch
    voters = state.current_attesters if is_current else state.previous_attesters
    if index in voters:
        raise DuplicateAttestationError(f"validator {index}'s vote for epoch {data.target.epoch} is already counted")
    check_attestation_signature(attestation)
    if is_current:
        return replace(state, current_attesters=state.current_attesters | {index})
    return replace(state, previous_attesters=state.previous_attesters | {index})


def check_attestation_data_against_state(
    state: BeaconState, data: AttestationData, block_slot: int, chain_id: int
) -> None:
    """The vote itself: this chain, a target in the current or previous epoch matching its slot,
    included in time, from the justified checkpoint, to this chain's checkpoint."""
    if not state.ffg_enabled:
        raise OperationsError("this pow chain has not merged: its blocks carry no attestations")
    if data.chain_id != chain_id:
        raise WrongChainError(f"the attestation is for chain {data.chain_id}, not this chain ({chain_id})")
    previous_epoch = max(state.epoch - 1, 0)
    if data.target.epoch not in (previous_epoch, state.epoch):
        raise AttestationError(
            f"target epoch {data.target.epoch} is neither the current epoch {state.epoch} nor the previous one"
        )
    slot_epoch = get_epoch_at_slot(state, data.slot)
    if data.target.epoch != slot_epoch:
        raise AttestationError(f"target epoch {data.target.epoch} is not the epoch {slot_epoch} of slot {data.slot}")
    if not data.slot + MIN_ATTESTATION_INCLUSION_DELAY <= block_slot <= data.slot + get_epoch_length(state, slot_epoch):
        raise AttestationError(
            f"a vote for slot {data.slot} is included from slot {data.slot + MIN_ATTESTATION_INCLUSION_DELAY} to "
            f"{data.slot + get_epoch_length(state, slot_epoch)}; this block is at slot {block_slot}"
        )
    is_current = data.target.epoch == state.epoch
    expected_source = (
        state.finality.current_justified_checkpoint if is_current else state.finality.previous_justified_checkpoint
    )
    if data.source != expected_source:
        raise AttestationError(
            f"source checkpoint (epoch {data.source.epoch}) is not the justified checkpoint "
            f"(epoch {expected_source.epoch}, {hash_to_display(expected_source.root)[:16]}…)"
        )
    if data.target.root != get_checkpoint_root(state, data.target.epoch):
        raise AttestationError(f"target root is not this chain's checkpoint of epoch {data.target.epoch}")


def get_attesting_index(state: BeaconState, attestation: SignedAttestation) -> int:
    """The voter's validator index: a validator of this chain, active in the target epoch, not slashed."""
    index = state.registry.index_of(attestation.validator)
    if index is None:
        raise UnknownValidatorError(f"{attestation.validator.hex()[:16]}… is not a validator of this chain")
    validator = state.registry.validators[index]
    target_epoch = attestation.data.target.epoch
    if not is_active_validator(validator, target_epoch):
        raise ValidatorStatusError(f"validator {index} is not active in epoch {target_epoch}")
    if validator.slashed:
        raise ValidatorStatusError(f"validator {index} was slashed; its votes no longer count")
    return index


def _slash(
    state: BeaconState, pubkey: bytes, proposer_index: int | None, offence: str, detail: dict[str, Any]
) -> BeaconState:
    index = state.registry.index_of(pubkey)
    if index is None:
        raise UnknownValidatorError(f"{pubkey.hex()[:16]}… is not a validator of this chain")
    validator = state.registry.validators[index]
    if not is_slashable_validator(validator, state.epoch):
        raise ValidatorStatusError(f"validator {index} is already slashed or no longer slashable")
    registry, outcome = slash_validator(
        state.registry, index, proposer_index, state.epoch, state.config.staking_params()
    )
    post = replace(state, registry=registry, burned_units=state.burned_units + outcome.burned)
    return _append_events(post, compute_slashing_event(state, post, outcome, offence, detail))


def compute_slashing_event(
    pre: BeaconState, post: BeaconState, outcome: SlashingPenalty, offence: str, detail: dict[str, Any]
) -> ChainEvent:
    """VALIDATOR_SLASHED: who (from ``pre``), what it cost (``outcome``) and when its stake unlocks (``post``)."""
    index = outcome.slashed_index
    return ChainEvent(
        VALIDATOR_SLASHED,
        {
            "validator_index": index,
            "pubkey": pre.registry.validators[index].pubkey.hex(),
            # The wallet its stake is paid back to: whose history shows the penalty.
            "wallet": pre.withdrawal_addresses[index].hex(),
            "offence": offence,
            **detail,
            "penalty_units": outcome.penalty,
            "whistleblower_reward_units": outcome.whistleblower_reward,
            "proposer_index": outcome.proposer_index,
            "burned_units": outcome.burned,
            "withdrawable_epoch": post.registry.validators[index].withdrawable_epoch,
        },
    )


def process_attester_slashing(
    state: BeaconState, evidence: AttesterSlashing, chain_id: int, proposer_index: int | None
) -> BeaconState:
    verdict = check_attester_slashing(evidence, chain_id)
    d1, d2 = evidence.attestation_1.data, evidence.attestation_2.data
    detail = {
        "description": verdict.description,
        "votes": [[d1.source.epoch, d1.target.epoch], [d2.source.epoch, d2.target.epoch]],
    }
    return _slash(state, verdict.validator, proposer_index, verdict.offence.value, detail)


def process_proposer_slashing(
    state: BeaconState, evidence: ProposerSlashing, chain_id: int, proposer_index: int | None
) -> BeaconState:
    verdict = check_proposer_slashing(evidence, chain_id)
    detail = {"description": verdict.description, "slot": evidence.signed_header_1.header.slot}
    return _slash(state, verdict.validator, proposer_index, verdict.offence.value, detail)


def record_proposer(state: BeaconState, slot: int, proposer_index: int) -> BeaconState:
    """Note who filled ``slot`` of the current epoch (proposer rewards at the epoch's end)."""
    offset = slot - get_start_slot_at_epoch(state, state.epoch)
    proposers = list(state.epoch_proposers)
    proposers[offset] = proposer_index
    return replace(state, epoch_proposers=tuple(proposers))


def compute_total_supply_units(ledger_points: int, state: BeaconState) -> int:
    """Ledger balances plus validator balances, in nanopoints."""
    return ledger_points * UNITS_PER_POINT + state.registry.total_balance()
