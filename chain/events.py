"""Events a state change emits; they go to the durable outbox with it.

One frozen dataclass per kind, all ``ChainEvent``: producers build them with typed fields,
consumers read the fields (``match`` or a table keyed by class), and only this module knows
the stored form.  That form is today's and must stay so: ``event.payload`` is the same dict,
and ``payload_json()`` the same bytes, as the ``ChainEvent(kind, dict)`` of earlier versions
wrote for the same facts, so outbox and ``stake_history`` rows already in a database read
back unchanged and nothing in the schema moved.

``decode_event(kind, text)`` reads a stored row back.  It never raises: a kind this version
does not know, text that is not a JSON object, or a payload that does not fit its class (a
key missing, a key the class does not have, a value of the wrong JSON type, hex that is
not lowercase hex) gives an ``UnknownEvent`` that keeps the kind and whatever payload was
read, and says why; the bot posts it plainly, as before.  Keys the renderers of earlier
versions read with a default (flags and amounts that may be 0) may be missing: they take
that default, so such a row renders as it did.
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any, ClassVar

from chain.hashing import hash_to_display

BLOCK_MINED = "block_mined"
REWARD_PAID = "reward_paid"
DIFFICULTY_CHANGED = "difficulty_changed"
MILESTONE_REACHED = "milestone_reached"
PARAMS_CHANGED = "params_changed"

# Balances worth announcing, in points.
BALANCE_MILESTONES_POINTS = (100, 500, 1_000, 5_000, 10_000, 50_000, 100_000, 1_000_000)


def compute_crossed_milestone(before: int, after: int) -> int | None:
    """The highest milestone a balance crossed upward, if any."""
    crossed = [m for m in BALANCE_MILESTONES_POINTS if before < m <= after]
    return crossed[-1] if crossed else None


# Proof of stake (chain/pos/: epoch_transition, operation_rules, withdrawals, merge).
VALIDATOR_ACTIVATED = "validator_activated"
VALIDATOR_EXITED = "validator_exited"
VALIDATOR_WITHDRAWABLE = "validator_withdrawable"
CHECKPOINT_JUSTIFIED = "checkpoint_justified"
CHECKPOINT_FINALIZED = "checkpoint_finalized"
EPOCH_REWARDS = "epoch_rewards"
VALIDATOR_SLASHED = "validator_slashed"
INACTIVITY_LEAK_STARTED = "inactivity_leak_started"
INACTIVITY_LEAK_ENDED = "inactivity_leak_ended"
THE_MERGE = "the_merge"
MERGE_SCHEDULED = "merge_scheduled"
# The block the Merge was scheduled after came, but no validator could propose yet: mining goes on.
MERGE_DELAYED = "merge_delayed"
STAKE_DEPOSITED = "stake_deposited"
STAKE_WITHDRAWN = "stake_withdrawn"

# Reorgs over the block tree (chain/consensus/reorg_events.py builds them; issue 11 item 3).
CHAIN_REORGANIZED = "chain_reorganized"
PAYMENT_RETURNED_TO_MEMPOOL = "payment_returned_to_mempool"
PAYMENT_REVERSED = "payment_reversed"
REORG_REFUSED_BY_FINALITY = "reorg_refused_by_finality"


# --- the stored form -------------------------------------------------------------------------

class _Meta:
    """Field metadata keys: how a field is written into the payload (in a class, so that the module's
    upper-case strings stay exactly the event kinds)."""

    OMITTED_AT_DEFAULT = "omitted_at_default"  # the key is left out while the value is its default
    DISPLAY_ORDER = "display_order"  # bytes written byte-reversed (a block hash as Bitcoin shows it)


def _display_hash() -> Any:
    """A hash field, stored byte-reversed in hex (``hash_to_display``), as announcements show it."""
    return field(metadata={_Meta.DISPLAY_ORDER: True})


def _omitted_at_default(default: object) -> Any:
    """A field whose key earlier versions wrote only when it was not ``default``."""
    return field(default=default, metadata={_Meta.OMITTED_AT_DEFAULT: True})


class _Misfit(Exception):
    """A stored payload that does not fit its event class (caught inside ``decode_event``)."""


def _encode_value(hint: Any, value: Any, display: bool) -> Any:
    if value is None:
        return None
    if hint is bytes:
        return hash_to_display(value) if display else value.hex()
    if typing.get_origin(hint) is tuple:
        return [_encode_value(h, v, display) for h, v in zip(typing.get_args(hint), value, strict=True)]
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        [inner] = [h for h in typing.get_args(hint) if h is not type(None)]
        return _encode_value(inner, value, display)
    return value


def _decode_value(hint: Any, raw: Any, display: bool) -> Any:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        if raw is None:
            return None
        [inner] = [h for h in typing.get_args(hint) if h is not type(None)]
        return _decode_value(inner, raw, display)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(raw, list) or len(raw) != len(args):
            raise _Misfit(f"expected a list of {len(args)}, got {raw!r}")
        return tuple(_decode_value(h, v, display) for h, v in zip(args, raw, strict=True))
    if hint is bytes:
        if not isinstance(raw, str):
            raise _Misfit(f"expected hex, got {raw!r}")
        try:
            data = bytes.fromhex(raw)
        except ValueError:
            raise _Misfit(f"expected hex, got {raw!r}") from None
        # Only the lowercase hex this module writes: anything else would not re-encode to the same bytes.
        if data.hex() != raw:
            raise _Misfit(f"expected lowercase hex, got {raw!r}")
        return data[::-1] if display else data
    # bool is an int in Python but not in these payloads: True is not a height, 1 is not a flag.
    if hint is int and (isinstance(raw, bool) or not isinstance(raw, int)):
        raise _Misfit(f"expected an integer, got {raw!r}")
    if hint is bool and not isinstance(raw, bool):
        raise _Misfit(f"expected true or false, got {raw!r}")
    if hint is str and not isinstance(raw, str):
        raise _Misfit(f"expected text, got {raw!r}")
    return raw


def _check_codable(hint: Any) -> None:
    """Refuse a field type the codec above does not check on the way in (a programming error, found
    by the first encode or decode of the class, so by any test that builds one)."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union, tuple):
        for inner in typing.get_args(hint):
            if inner is not type(None):
                _check_codable(inner)
    elif hint not in (int, bool, str, bytes):
        raise TypeError(f"event fields are int, bool, str, bytes, tuples and optionals of them, not {hint!r}")


_LAYOUTS: dict[type[Any], tuple[tuple[Field[Any], Any], ...]] = {}


def _layout(cls: type[ChainEvent]) -> tuple[tuple[Field[Any], Any], ...]:
    """Each field of ``cls`` with its resolved type (the annotations are strings here), worked out once."""
    layout = _LAYOUTS.get(cls)
    if layout is None:
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            _check_codable(hints[f.name])
        layout = _LAYOUTS[cls] = tuple((f, hints[f.name]) for f in fields(cls))
    return layout


@dataclass(frozen=True, slots=True)
class ChainEvent:
    """An event: each kind is a subclass with ``kind: ClassVar[str]`` and typed fields."""

    @property
    def kind(self) -> str:
        """The stored kind string (a class attribute on every known event)."""
        raise NotImplementedError(f"{type(self).__name__} has no kind")

    @property
    def payload(self) -> dict[str, Any]:
        """The stored form: the same keys and value encodings as earlier versions wrote."""
        out: dict[str, Any] = {}
        for f, hint in _layout(type(self)):
            value = getattr(self, f.name)
            if f.metadata.get(_Meta.OMITTED_AT_DEFAULT) and value == f.default:
                continue
            out[f.name] = _encode_value(hint, value, bool(f.metadata.get(_Meta.DISPLAY_ORDER)))
        return out

    def payload_json(self) -> str:
        return json.dumps(self.payload, sort_keys=True, separators=(",", ":"))

    @classmethod
    def _from_payload(cls, payload: dict[str, Any]) -> ChainEvent:
        """The event ``payload`` stores; raises ``_Misfit`` when it does not fit (``decode_event`` catches)."""
        layout = _layout(cls)
        extra = sorted(set(payload) - {f.name for f, _ in layout})
        if extra:
            raise _Misfit(f"keys {extra} are not fields of {cls.__name__}")
        values: dict[str, Any] = {}
        for f, hint in layout:
            if f.name not in payload:
                if f.default is MISSING:
                    raise _Misfit(f"key {f.name!r} is missing")
                continue
            try:
                values[f.name] = _decode_value(hint, payload[f.name], bool(f.metadata.get(_Meta.DISPLAY_ORDER)))
            except _Misfit as exc:
                raise _Misfit(f"key {f.name!r}: {exc}") from None
        return cls(**values)


# --- proof of work and the ledger (chain/consensus/state.py) ---------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockMined(ChainEvent):
    """A block joined the chain: mined, or (``proof_of_stake``) proposed by a validator at ``slot``."""

    kind: ClassVar[str] = BLOCK_MINED
    height: int
    hash: bytes = _display_hash()
    miner: bytes
    reward: int
    transfers: int
    time: int
    bits: int
    slot: int | None = _omitted_at_default(None)
    proposer_index: int | None = _omitted_at_default(None)
    proof_of_stake: bool = _omitted_at_default(False)


@dataclass(frozen=True, slots=True, kw_only=True)
class RewardPaid(ChainEvent):
    kind: ClassVar[str] = REWARD_PAID
    height: int
    miner: bytes
    subsidy: int
    fees: int
    proof_of_stake: bool = _omitted_at_default(False)


@dataclass(frozen=True, slots=True, kw_only=True)
class DifficultyChanged(ChainEvent):
    kind: ClassVar[str] = DIFFICULTY_CHANGED
    height: int
    old_bits: int
    new_bits: int
    actual_timespan_s: int
    target_timespan_s: int
    sentence: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MilestoneReached(ChainEvent):
    kind: ClassVar[str] = MILESTONE_REACHED
    height: int
    account: bytes
    milestone: int
    balance: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ParamsChanged(ChainEvent):
    """Block ``height`` committed to new rules: each changed one as ``(old, new)``, the others None
    (stored flat, one ``name: [old, new]`` key per changed rule beside ``height``)."""

    kind: ClassVar[str] = PARAMS_CHANGED
    height: int
    target_spacing_s: tuple[int, int] | None = _omitted_at_default(None)
    retarget_window_blocks: tuple[int, int] | None = _omitted_at_default(None)
    initial_subsidy_points: tuple[int, int] | None = _omitted_at_default(None)
    halving_interval_blocks: tuple[int, int] | None = _omitted_at_default(None)

    def changes(self) -> list[tuple[str, int, int]]:
        """``(rule, old, new)`` for each changed rule, by rule name."""
        found = []
        for f in sorted(fields(self), key=lambda f: f.name):
            pair = getattr(self, f.name)
            if f.name != "height" and pair is not None:
                found.append((f.name, pair[0], pair[1]))
        return found


# --- proof of stake (chain/pos/) ---------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class StakeDeposited(ChainEvent):
    kind: ClassVar[str] = STAKE_DEPOSITED
    validator_index: int
    pubkey: bytes
    wallet: bytes
    amount: int
    top_up: bool = False
    activation_epoch: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StakeWithdrawn(ChainEvent):
    kind: ClassVar[str] = STAKE_WITHDRAWN
    validator_index: int
    address: bytes
    points: int
    dust_burned_units: int = 0
    full: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidatorActivated(ChainEvent):
    kind: ClassVar[str] = VALIDATOR_ACTIVATED
    validator_index: int
    pubkey: bytes
    epoch: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidatorExited(ChainEvent):
    kind: ClassVar[str] = VALIDATOR_EXITED
    validator_index: int
    pubkey: bytes
    epoch: int
    slashed: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidatorWithdrawable(ChainEvent):
    kind: ClassVar[str] = VALIDATOR_WITHDRAWABLE
    validator_index: int
    pubkey: bytes
    epoch: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointJustified(ChainEvent):
    kind: ClassVar[str] = CHECKPOINT_JUSTIFIED
    epoch: int
    root: bytes = _display_hash()


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointFinalized(ChainEvent):
    kind: ClassVar[str] = CHECKPOINT_FINALIZED
    epoch: int
    root: bytes = _display_hash()


@dataclass(frozen=True, slots=True, kw_only=True)
class EpochRewards(ChainEvent):
    kind: ClassVar[str] = EPOCH_REWARDS
    epoch: int
    minted_units: int
    burned_units: int
    attesting_units: int
    active_units: int
    in_inactivity_leak: bool = False
    finality_delay: int = 0


# Two votes' ``(source, target)`` epochs: the evidence of a double or surround vote.
SlashedVotes = tuple[tuple[int, int], tuple[int, int]]


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidatorSlashed(ChainEvent):
    """A validator slashed for ``offence`` (``chain.pos.attestation.Offence`` values); the evidence is
    ``slot`` for a double proposal, ``votes`` (each ``(source, target)`` epoch) for a vote offence."""

    kind: ClassVar[str] = VALIDATOR_SLASHED
    validator_index: int
    pubkey: bytes
    # The wallet its stake is paid back to: whose history shows the penalty.
    wallet: bytes
    offence: str = ""
    description: str = ""
    slot: int | None = _omitted_at_default(None)
    votes: SlashedVotes | None = _omitted_at_default(None)
    penalty_units: int
    whistleblower_reward_units: int = 0
    proposer_index: int | None
    burned_units: int = 0
    withdrawable_epoch: int


@dataclass(frozen=True, slots=True, kw_only=True)
class InactivityLeakStarted(ChainEvent):
    kind: ClassVar[str] = INACTIVITY_LEAK_STARTED
    epoch: int
    finality_delay: int


@dataclass(frozen=True, slots=True, kw_only=True)
class InactivityLeakEnded(ChainEvent):
    kind: ClassVar[str] = INACTIVITY_LEAK_ENDED
    epoch: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MergeScheduled(ChainEvent):
    """Block ``height`` scheduled the Merge: at a height, or (``merge_at_height`` 0) at a total difficulty."""

    kind: ClassVar[str] = MERGE_SCHEDULED
    height: int
    merge_at_height: int = 0
    merge_at_total_difficulty: int
    total_difficulty: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MergeDelayed(ChainEvent):
    kind: ClassVar[str] = MERGE_DELAYED
    height: int
    merge_at_height: int
    merge_at_total_difficulty: int
    total_difficulty: int
    pending_validators: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class TheMerge(ChainEvent):
    kind: ClassVar[str] = THE_MERGE
    height: int
    terminal_height: int
    terminal_hash: bytes = _display_hash()
    total_difficulty: int
    # Active in the first proof-of-stake epoch: the ones who propose from then on.
    validators: int


# --- reorgs over the block tree (chain/consensus/reorg_events.py) ----------------------------
# New kinds: no earlier version wrote them, so every key is always written (None as null).


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainReorganized(ChainEvent):
    """The connected tip moved to another branch: ``depth`` blocks after the fork point were
    disconnected (orphaned), ``connected`` blocks of the new branch connected.
    ``payments_returned`` and ``payments_reversed`` count the payment events that follow it (one per
    payment).  Proof of work carries both tips' cumulative work (the reason for the switch); proof of
    stake has none (votes decide)."""

    kind: ClassVar[str] = CHAIN_REORGANIZED
    old_tip_height: int
    old_tip_hash: bytes = _display_hash()
    new_tip_height: int
    new_tip_hash: bytes = _display_hash()
    fork_height: int
    fork_hash: bytes = _display_hash()
    depth: int
    connected: int
    payments_returned: int
    payments_reversed: int
    old_chain_work: int | None = None
    new_chain_work: int | None = None
    proof_of_stake: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentReturnedToMempool(ChainEvent):
    """A payment confirmed in an orphaned block (at ``height``) that is still valid on the new branch:
    unconfirmed again, back in the mempool to be mined anew."""

    kind: ClassVar[str] = PAYMENT_RETURNED_TO_MEMPOOL
    txid: bytes = _display_hash()
    sender: bytes
    recipient: bytes
    amount: int
    fee: int
    nonce: int
    height: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentReversed(ChainEvent):
    """A payment confirmed in an orphaned block (at ``height``) that the new branch makes invalid: it
    never happened.  ``code`` is the refusal's error code (``nonce_replay``: a double spend,
    ``insufficient_balance``, ``nonce_gap``, ``mempool_full``...) and ``reason`` its message."""

    kind: ClassVar[str] = PAYMENT_REVERSED
    txid: bytes = _display_hash()
    sender: bytes
    recipient: bytes
    amount: int
    fee: int
    nonce: int
    height: int
    code: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReorgRefusedByFinality(ChainEvent):
    """A branch the fork choice would have switched to, refused because it conflicts with a finalized
    block: its tip, where it leaves the finalized chain (``fork_hash``), the finalized block, and the
    ``depth`` the switch would have disconnected.  ``branch_weight`` against ``canonical_weight`` is
    cumulative work with proof of work, the stake (nanopoints) of the latest votes with proof of stake.
    Proof of work names heights (the tree's); proof of stake the tip's slot and the finalized epoch."""

    kind: ClassVar[str] = REORG_REFUSED_BY_FINALITY
    tip_hash: bytes = _display_hash()
    fork_hash: bytes = _display_hash()
    finalized_hash: bytes = _display_hash()
    depth: int
    branch_weight: int
    canonical_weight: int
    tip_height: int | None = None
    finalized_height: int | None = None
    tip_slot: int | None = None
    finalized_epoch: int | None = None
    proof_of_stake: bool = False


@dataclass(frozen=True, slots=True)
class UnknownEvent(ChainEvent):
    """A stored event this version cannot type: an unknown ``kind``, or a payload that does not fit
    its class (``reason`` says how).  ``payload`` is what was read (empty when the text was not a
    JSON object); it is shown plainly, never re-typed."""

    kind: str = field()
    payload: dict[str, Any] = field()
    reason: str = ""


# Every known kind, by its stored kind string.
EVENT_TYPES: dict[str, type[ChainEvent]] = {
    cls.kind: cls
    for cls in (
        BlockMined, RewardPaid, DifficultyChanged, MilestoneReached, ParamsChanged,
        StakeDeposited, StakeWithdrawn, ValidatorActivated, ValidatorExited, ValidatorWithdrawable,
        CheckpointJustified, CheckpointFinalized, EpochRewards, ValidatorSlashed,
        InactivityLeakStarted, InactivityLeakEnded, MergeScheduled, MergeDelayed, TheMerge,
        ChainReorganized, PaymentReturnedToMempool, PaymentReversed, ReorgRefusedByFinality,
    )
}


def decode_event(kind: str, payload_json: str) -> ChainEvent:
    """A stored row (its ``kind`` and ``payload`` columns) as its typed event, or an ``UnknownEvent``
    when it does not fit (see the module docstring); never raises."""
    try:
        payload = json.loads(payload_json)
    except (TypeError, ValueError, RecursionError) as exc:
        return UnknownEvent(kind, {}, f"the payload is not JSON: {exc}")
    if not isinstance(payload, dict):
        return UnknownEvent(kind, {}, f"the payload is not a JSON object: {payload!r}"[:200])
    cls = EVENT_TYPES.get(kind)
    if cls is None:
        return UnknownEvent(kind, payload, "a kind this version does not know")
    try:
        return cls._from_payload(payload)
    except _Misfit as exc:
        return UnknownEvent(kind, payload, f"the payload does not fit {cls.__name__}: {exc}")
