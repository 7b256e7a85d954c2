"""A ``BeaconState`` as bytes: what the store keeps with each block so that startup needs no replay.

The encoding is explicit and versioned, never pickle: a snapshot outlives the
code that wrote it, and a database is data, not code to run.  Layout::

    b"CPBS" | version (1 byte) | body | sha256(magic | version | body) (32 bytes)

The body lists every field of ``BeaconState`` (chain/pos/beacon.py) in a fixed order
(see ``encode_beacon_state``), except its consensus config, which is named by the
sha256 of its canonical bytes: the chain stores its configs already (the genesis one
and every Merge schedule), and with 1,000 genesis validators a config is 300 KB that
would be written again with every block.  Whole numbers as unsigned LEB128 varints (any
size: total difficulty has no bound), byte strings with a varint length first,
booleans as one byte 0 or 1, ``None`` before a number as a 0 flag.  Events are
not part of the state (they belong to the block that produced them) and are
not stored.

``decode_beacon_state`` refuses anything it cannot read back exactly (a wrong
magic, an unknown version, a checksum mismatch, a truncated or overlong body, a
field that fails the engine's own checks) with ``SnapshotError``; the node then
rebuilds the state by replaying the chain, so a corrupt snapshot costs time, never
correctness.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import lru_cache

from chain.errors import ChainError, SnapshotError
from chain.pos.attestation import Checkpoint
from chain.pos.beacon import BeaconState, ConsensusConfig, TerminalBlock
from chain.pos.finality import FinalityState
from chain.pos.staking import Registry, Validator

MAGIC = b"CPBS"
VERSION = 1
_CHECKSUM_SIZE = 32


class _Writer:
    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def uint(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise SnapshotError(f"a snapshot stores whole numbers of at least 0, got {value!r}")
        out = bytearray()
        while True:
            low = value & 0x7F
            value >>= 7
            if value:
                out.append(low | 0x80)
            else:
                out.append(low)
                break
        self._parts.append(bytes(out))

    def optional_uint(self, value: int | None) -> None:
        self.uint(0 if value is None else value + 1)

    def flag(self, value: bool) -> None:
        self._parts.append(b"\x01" if value else b"\x00")

    def raw(self, value: bytes) -> None:
        self.uint(len(value))
        self._parts.append(value)

    def uints(self, values: tuple[int, ...] | list[int]) -> None:
        self.uint(len(values))
        for value in values:
            self.uint(value)

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._offset = 0

    def uint(self) -> int:
        value = shift = 0
        while True:
            if self._offset >= len(self._data):
                raise SnapshotError("snapshot is truncated inside a number")
            byte = self._data[self._offset]
            self._offset += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7

    def optional_uint(self) -> int | None:
        value = self.uint()
        return None if value == 0 else value - 1

    def flag(self) -> bool:
        if self._offset >= len(self._data):
            raise SnapshotError("snapshot is truncated inside a flag")
        byte = self._data[self._offset]
        self._offset += 1
        if byte not in (0, 1):
            raise SnapshotError(f"a flag is 0 or 1, got {byte}")
        return byte == 1

    def raw(self) -> bytes:
        size = self.uint()
        end = self._offset + size
        if end > len(self._data):
            raise SnapshotError(f"snapshot is truncated: a {size}-byte field runs past its end")
        value = self._data[self._offset:end]
        self._offset = end
        return value

    def uints(self) -> tuple[int, ...]:
        return tuple(self.uint() for _ in range(self._count()))

    def _count(self) -> int:
        count = self.uint()
        # Every item takes at least one byte: a count beyond what is left is corruption, not a loop to run.
        if count > len(self._data) - self._offset:
            left = len(self._data) - self._offset
            raise SnapshotError(f"snapshot lists {count} items but has only {left} bytes left")
        return count

    def count(self) -> int:
        return self._count()

    def finish(self) -> None:
        if self._offset != len(self._data):
            raise SnapshotError(f"snapshot has {len(self._data) - self._offset} unexpected bytes at its end")


def _write_checkpoint(writer: _Writer, checkpoint: Checkpoint) -> None:
    writer.uint(checkpoint.epoch)
    writer.raw(checkpoint.root)


def _read_checkpoint(reader: _Reader) -> Checkpoint:
    return Checkpoint(reader.uint(), reader.raw())


@lru_cache(maxsize=16)
def compute_config_digest(config: ConsensusConfig) -> bytes:
    """What a snapshot names its consensus config by (cached: a chain has one or two configs, and
    serialising one with 1,000 genesis validators for every block would cost milliseconds)."""
    return hashlib.sha256(config.to_bytes()).digest()


def encode_beacon_state(state: BeaconState) -> bytes:
    """The state's bytes (events left out); ``decode_beacon_state`` gives back an equal state."""
    w = _Writer()
    w.raw(compute_config_digest(state.config))
    w.uint(state.genesis_time)
    validators = state.registry.validators
    w.uint(len(validators))
    for validator in validators:
        w.raw(validator.pubkey)
        w.uint(validator.effective_balance)
        w.flag(validator.slashed)
        w.uint(validator.activation_epoch)
        w.uint(validator.exit_epoch)
        w.uint(validator.withdrawable_epoch)
    w.uints(state.registry.balances)
    w.uint(len(state.withdrawal_addresses))
    for address in state.withdrawal_addresses:
        w.raw(address)
    finality = state.finality
    w.uint(finality.current_epoch)
    w.uint(sum(1 << i for i, bit in enumerate(finality.justification_bits) if bit))
    _write_checkpoint(w, finality.previous_justified_checkpoint)
    _write_checkpoint(w, finality.current_justified_checkpoint)
    _write_checkpoint(w, finality.finalized_checkpoint)
    w.uint(state.epoch)
    w.uint(state.slot)
    w.uint(len(state.checkpoint_roots))
    for root in state.checkpoint_roots:
        w.raw(root)
    w.uints(sorted(state.current_attesters))
    w.uints(sorted(state.previous_attesters))
    w.uint(len(state.epoch_proposers))
    for proposer in state.epoch_proposers:
        w.optional_uint(proposer)
    w.uint(state.next_withdrawal_index)
    w.uint(state.next_withdrawal_validator_index)
    w.uint(state.minted_units)
    w.uint(state.burned_units)
    w.uint(state.total_difficulty)
    terminal = state.terminal
    w.flag(terminal is not None)
    if terminal is not None:
        w.uint(terminal.height)
        w.uint(terminal.slot)
        w.uint(terminal.time)
        w.raw(terminal.root)
        w.uint(terminal.total_difficulty)
    w.flag(state.merged)
    w.flag(state.in_leak)
    w.optional_uint(state.merge_epoch)
    w.optional_uint(state.merge_slot)
    w.uint(state.anchor[0])
    w.uint(state.anchor[1])
    w.uints(state.deposited_units)
    w.uints(state.withdrawn_units)
    body = MAGIC + bytes((VERSION,)) + w.getvalue()
    return body + hashlib.sha256(body).digest()


def decode_beacon_state(blob: bytes, configs: Iterable[ConsensusConfig]) -> BeaconState:
    """The state ``encode_beacon_state`` wrote; ``SnapshotError`` if ``blob`` is not exactly that.

    ``configs`` are the chain's consensus configs (genesis and Merge schedules): the one the
    snapshot names is its state's config.
    """
    if not isinstance(blob, bytes):
        raise SnapshotError(f"a snapshot is bytes, got {type(blob).__name__}")
    if len(blob) < len(MAGIC) + 1 + _CHECKSUM_SIZE or not blob.startswith(MAGIC):
        raise SnapshotError("not a beacon-state snapshot (wrong magic or too short)")
    version = blob[len(MAGIC)]
    if version != VERSION:
        raise SnapshotError(f"beacon-state snapshot version {version} is unknown (this code reads {VERSION})")
    body, checksum = blob[:-_CHECKSUM_SIZE], blob[-_CHECKSUM_SIZE:]
    if hashlib.sha256(body).digest() != checksum:
        raise SnapshotError("beacon-state snapshot is corrupt: its checksum does not match")
    r = _Reader(body[len(MAGIC) + 1:])
    try:
        digest = r.raw()
        config = next((c for c in configs if compute_config_digest(c) == digest), None)
        if config is None:
            raise SnapshotError("beacon-state snapshot names a consensus config this chain does not have")
        genesis_time = r.uint()
        validators = []
        for _ in range(r.count()):
            pubkey = r.raw()
            validators.append(Validator(pubkey, r.uint(), r.flag(), r.uint(), r.uint(), r.uint()))
        registry = Registry(tuple(validators), r.uints())
        withdrawal_addresses = tuple(r.raw() for _ in range(r.count()))
        current_epoch = r.uint()
        bits = r.uint()
        if bits >= 16:
            raise SnapshotError(f"justification bits {bits} do not fit in 4 bits")
        finality = FinalityState(
            current_epoch,
            (bool(bits & 1), bool(bits & 2), bool(bits & 4), bool(bits & 8)),
            _read_checkpoint(r),
            _read_checkpoint(r),
            _read_checkpoint(r),
        )
        epoch = r.uint()
        slot = r.uint()
        checkpoint_roots = tuple(r.raw() for _ in range(r.count()))
        current_attesters = frozenset(r.uints())
        previous_attesters = frozenset(r.uints())
        epoch_proposers = tuple(r.optional_uint() for _ in range(r.count()))
        next_withdrawal_index = r.uint()
        next_withdrawal_validator_index = r.uint()
        minted_units = r.uint()
        burned_units = r.uint()
        total_difficulty = r.uint()
        terminal = None
        if r.flag():
            terminal = TerminalBlock(r.uint(), r.uint(), r.uint(), r.raw(), r.uint())
        merged = r.flag()
        in_leak = r.flag()
        merge_epoch = r.optional_uint()
        merge_slot = r.optional_uint()
        anchor = (r.uint(), r.uint())
        deposited_units = r.uints()
        withdrawn_units = r.uints()
        r.finish()
    except SnapshotError:
        raise
    except (ChainError, UnicodeDecodeError, ValueError, TypeError) as exc:
        # The checksum matched, so these bytes were written as they are: by a bug or another version.
        raise SnapshotError(f"beacon-state snapshot does not decode to a valid state: {exc}") from exc
    return BeaconState(
        config=config,
        genesis_time=genesis_time,
        registry=registry,
        withdrawal_addresses=withdrawal_addresses,
        finality=finality,
        epoch=epoch,
        slot=slot,
        checkpoint_roots=checkpoint_roots,
        current_attesters=current_attesters,
        previous_attesters=previous_attesters,
        epoch_proposers=epoch_proposers,
        next_withdrawal_index=next_withdrawal_index,
        next_withdrawal_validator_index=next_withdrawal_validator_index,
        minted_units=minted_units,
        burned_units=burned_units,
        total_difficulty=total_difficulty,
        terminal=terminal,
        merged=merged,
        in_leak=in_leak,
        merge_epoch=merge_epoch,
        merge_slot=merge_slot,
        anchor=anchor,
        deposited_units=deposited_units,
        withdrawn_units=withdrawn_units,
    )
