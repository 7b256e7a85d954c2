"""Proof of stake wired into a chain: the consensus config, the beacon state, its slot clock,
genesis and proposer draw.  The transitions live beside it: ``epoch_transition`` (``process_epoch``,
``process_slots``), ``operation_rules`` (each block operation), ``withdrawals`` and ``merge``.

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
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from chain.errors import (
    AttestationError,
    ConsensusConfigError,
    IssuanceRateError,
    ProposerSelectionError,
)
from chain.events import (
    ChainEvent,
)
from chain.keys import PUBLIC_KEY_SIZE_BYTES, is_valid_public_key
from chain.mode import Mode, parse_mode
from chain.pos.finality import FinalityState, genesis_finality_state
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
    is_plain_int,
    points_to_units,
)
from chain.pos.staking import (
    MIN_SLASHING_PENALTY_QUOTIENT_BELLATRIX,
    Registry,
    StakingParams,
    Validator,
    is_active_validator,
)

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
        if not is_plain_int(value) or value < 0:
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
        if not is_plain_int(validator.amount_points) or validator.amount_points < config.min_deposit_points:
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
        if not is_plain_int(allocation.amount_points) or allocation.amount_points < 1:
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

    def with_events(self, *events: ChainEvent) -> BeaconState:
        """This state with ``events`` appended to those its transition emits."""
        return replace(self, events=self.events + events)

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


def compute_total_supply_units(ledger_points: int, state: BeaconState) -> int:
    """Ledger balances plus validator balances, in nanopoints."""
    return ledger_points * UNITS_PER_POINT + state.registry.total_balance()
