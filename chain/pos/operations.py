"""Block operations: what a version-2 block carries after its transfers.

Six lists, in this order, each committed to by the block's merkle root (one leaf
per operation, ``sha256d(type byte || operation bytes)``, after the coinbase and
the transfers):

- **deposits** (type 0x10): a member locks points from their wallet to create or
  top up a validator.  Signed twice: by the wallet key (over a domain tag, the
  chain id, the wallet's *nonce* and the fields, so it shares the wallet's nonce
  space with transfers and can never be replayed), and by the validator key
  (proof of possession over the chain id, the validator key and the wallet, so
  nobody can register someone else's key as theirs).  Layout: wallet 32 B,
  validator key 32 B, amount u64 (whole points), nonce u64, wallet signature
  64 B, proof-of-possession signature 64 B (208 B).
- **voluntary exits** (0x11): phase0's ``VoluntaryExit`` (epoch u64, validator
  index u32) signed by the validator key (76 B).
- **withdrawals** (0x12): Capella's execution-payload ``Withdrawal``: index u64,
  validator index u32, address 32 B, amount u64 in nanopoints (52 B).  Not
  signed: the block must carry exactly ``get_expected_withdrawals(state)``.
- **attestations** (0x13): ``chain.pos.attestation.SignedAttestation`` (224 B).
- **attester slashings** (0x14) and **proposer slashings** (0x15): the existing
  evidence types (448 B and 352 B).

Every list is preceded by a u16 count.  This module holds the types, their
bytes and their signatures; the state transitions are in chain/pos/operation_rules.py and
chain/pos/withdrawals.py.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from typing import Any

from chain.errors import BadSignatureError, EncodingError
from chain.hashing import sha256d
from chain.keys import (
    PUBLIC_KEY_SIZE_BYTES,
    SIGNATURE_SIZE_BYTES,
    SigningKey,
    verify_signature,
)
from chain.pos.attestation import (
    SIGNED_ATTESTATION_SIZE_BYTES,
    SIGNED_PROPOSAL_HEADER_SIZE_BYTES,
    AttesterSlashing,
    ProposerSlashing,
    SignedAttestation,
)

OP_DEPOSIT = 0x10
OP_VOLUNTARY_EXIT = 0x11
OP_WITHDRAWAL = 0x12
OP_ATTESTATION = 0x13
OP_ATTESTER_SLASHING = 0x14
OP_PROPOSER_SLASHING = 0x15

DEPOSIT_SIGNING_DOMAIN = b"consensus-playground/deposit/v1"
DEPOSIT_POSSESSION_DOMAIN = b"consensus-playground/deposit-possession/v1"
EXIT_SIGNING_DOMAIN = b"consensus-playground/voluntary-exit/v1"
# Capella's MAX_WITHDRAWALS_PER_PAYLOAD is 16, as here.
MAX_WITHDRAWALS_PER_PAYLOAD = 16
# Capella's MAX_VALIDATORS_PER_WITHDRAWALS_SWEEP is 2**14; a server has far fewer validators.
MAX_VALIDATORS_PER_WITHDRAWALS_SWEEP = 2**14
# Per-block caps (phase0: MAX_DEPOSITS 16, MAX_VOLUNTARY_EXITS 16, MAX_ATTESTATIONS 128,
# MAX_ATTESTER_SLASHINGS 2, MAX_PROPOSER_SLASHINGS 16).
MAX_DEPOSITS = 16
MAX_VOLUNTARY_EXITS = 16
MAX_ATTESTATIONS = 128
MAX_ATTESTER_SLASHINGS = 2
MAX_PROPOSER_SLASHINGS = 16

_U64 = struct.Struct("<Q")
_COUNT = struct.Struct("<H")
_DEPOSIT_UNSIGNED = struct.Struct("<32s32sQQ")
_EXIT = struct.Struct("<QI")
_WITHDRAWAL = struct.Struct("<QI32sQ")
UINT64_MAX = (1 << 64) - 1
UINT32_MAX = (1 << 32) - 1


def _check_uint(name: str, value: int, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise EncodingError(f"{name} {value!r} does not fit its field")


def _check_key(name: str, value: bytes) -> None:
    if not isinstance(value, bytes) or len(value) != PUBLIC_KEY_SIZE_BYTES:
        raise EncodingError(f"{name} must be a 32-byte public key")


def _check_signature_bytes(name: str, value: bytes) -> None:
    if not isinstance(value, bytes) or len(value) != SIGNATURE_SIZE_BYTES:
        raise EncodingError(f"{name} must be a 64-byte signature")


@dataclass(frozen=True, slots=True)
class Deposit:
    wallet: bytes
    validator: bytes
    amount: int
    nonce: int
    wallet_signature: bytes = b""
    possession_signature: bytes = b""

    def __post_init__(self) -> None:
        _check_key("deposit wallet", self.wallet)
        _check_key("deposit validator key", self.validator)
        _check_uint("deposit amount", self.amount, UINT64_MAX)
        _check_uint("deposit nonce", self.nonce, UINT64_MAX)

    def unsigned_bytes(self) -> bytes:
        return _DEPOSIT_UNSIGNED.pack(self.wallet, self.validator, self.amount, self.nonce)

    def possession_message(self, chain_id: int) -> bytes:
        _check_uint("chain id", chain_id, UINT64_MAX)
        return DEPOSIT_POSSESSION_DOMAIN + _U64.pack(chain_id) + self.validator + self.wallet

    def signing_message(self, chain_id: int) -> bytes:
        """What the wallet signs: every field, including the validator's proof of possession."""
        _check_uint("chain id", chain_id, UINT64_MAX)
        return DEPOSIT_SIGNING_DOMAIN + _U64.pack(chain_id) + self.unsigned_bytes() + self.possession_signature

    def serialize(self) -> bytes:
        _check_signature_bytes("deposit wallet signature", self.wallet_signature)
        _check_signature_bytes("deposit proof of possession", self.possession_signature)
        return self.unsigned_bytes() + self.wallet_signature + self.possession_signature

    @classmethod
    def deserialize(cls, data: bytes) -> Deposit:
        if len(data) != DEPOSIT_SIZE_BYTES:
            raise EncodingError(f"a deposit has {DEPOSIT_SIZE_BYTES} bytes, got {len(data)}")
        wallet, validator, amount, nonce = _DEPOSIT_UNSIGNED.unpack_from(data)
        start = _DEPOSIT_UNSIGNED.size
        return cls(wallet, validator, amount, nonce, data[start : start + 64], data[start + 64 : start + 128])


DEPOSIT_SIZE_BYTES = _DEPOSIT_UNSIGNED.size + 2 * SIGNATURE_SIZE_BYTES


def make_deposit(wallet_key: SigningKey, validator_key: SigningKey, amount: int, nonce: int, chain_id: int) -> Deposit:
    deposit = Deposit(wallet_key.public_key, validator_key.public_key, amount, nonce)
    deposit = replace(deposit, possession_signature=validator_key.sign(deposit.possession_message(chain_id)))
    return replace(deposit, wallet_signature=wallet_key.sign(deposit.signing_message(chain_id)))


def check_deposit_signatures(deposit: Deposit, chain_id: int) -> None:
    """Both signatures: the validator key's proof of possession, then the wallet's."""
    try:
        verify_signature(deposit.validator, deposit.possession_message(chain_id), deposit.possession_signature)
    except BadSignatureError as exc:
        raise BadSignatureError(
            f"deposit for validator {deposit.validator.hex()[:16]}… lacks the validator key's proof of "
            f"possession: {exc}"
        ) from exc
    try:
        verify_signature(deposit.wallet, deposit.signing_message(chain_id), deposit.wallet_signature)
    except BadSignatureError as exc:
        raise BadSignatureError(f"deposit is not signed by wallet {deposit.wallet.hex()[:16]}…: {exc}") from exc


@dataclass(frozen=True, slots=True)
class VoluntaryExit:
    """phase0's ``SignedVoluntaryExit``: valid from ``epoch`` on."""

    epoch: int
    validator_index: int
    signature: bytes = b""

    def __post_init__(self) -> None:
        _check_uint("exit epoch", self.epoch, UINT64_MAX)
        _check_uint("exit validator index", self.validator_index, UINT32_MAX)

    def signing_message(self, chain_id: int) -> bytes:
        _check_uint("chain id", chain_id, UINT64_MAX)
        return EXIT_SIGNING_DOMAIN + _U64.pack(chain_id) + _EXIT.pack(self.epoch, self.validator_index)

    def serialize(self) -> bytes:
        _check_signature_bytes("exit signature", self.signature)
        return _EXIT.pack(self.epoch, self.validator_index) + self.signature

    @classmethod
    def deserialize(cls, data: bytes) -> VoluntaryExit:
        if len(data) != EXIT_SIZE_BYTES:
            raise EncodingError(f"a voluntary exit has {EXIT_SIZE_BYTES} bytes, got {len(data)}")
        epoch, index = _EXIT.unpack_from(data)
        return cls(epoch, index, data[_EXIT.size :])


EXIT_SIZE_BYTES = _EXIT.size + SIGNATURE_SIZE_BYTES


def make_voluntary_exit(validator_key: SigningKey, validator_index: int, epoch: int, chain_id: int) -> VoluntaryExit:
    exit_ = VoluntaryExit(epoch, validator_index)
    return replace(exit_, signature=validator_key.sign(exit_.signing_message(chain_id)))


def check_exit_signature(exit_: VoluntaryExit, pubkey: bytes, chain_id: int) -> None:
    try:
        verify_signature(pubkey, exit_.signing_message(chain_id), exit_.signature)
    except BadSignatureError as exc:
        raise BadSignatureError(
            f"exit of validator {exit_.validator_index} is not signed by its key {pubkey.hex()[:16]}…: {exc}"
        ) from exc


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """Capella's ``Withdrawal``; ``amount`` in nanopoints, paid as whole points (dust burned)."""

    index: int
    validator_index: int
    address: bytes
    amount: int

    def __post_init__(self) -> None:
        _check_uint("withdrawal index", self.index, UINT64_MAX)
        _check_uint("withdrawal validator index", self.validator_index, UINT32_MAX)
        _check_key("withdrawal address", self.address)
        _check_uint("withdrawal amount", self.amount, UINT64_MAX)

    def serialize(self) -> bytes:
        return _WITHDRAWAL.pack(self.index, self.validator_index, self.address, self.amount)

    @classmethod
    def deserialize(cls, data: bytes) -> Withdrawal:
        if len(data) != _WITHDRAWAL.size:
            raise EncodingError(f"a withdrawal has {_WITHDRAWAL.size} bytes, got {len(data)}")
        return cls(*_WITHDRAWAL.unpack(data))


WITHDRAWAL_SIZE_BYTES = _WITHDRAWAL.size

# (field name, type byte, item size, class, per-block cap)
_LISTS = (
    ("deposits", OP_DEPOSIT, DEPOSIT_SIZE_BYTES, Deposit, MAX_DEPOSITS),
    ("voluntary_exits", OP_VOLUNTARY_EXIT, EXIT_SIZE_BYTES, VoluntaryExit, MAX_VOLUNTARY_EXITS),
    ("withdrawals", OP_WITHDRAWAL, WITHDRAWAL_SIZE_BYTES, Withdrawal, MAX_WITHDRAWALS_PER_PAYLOAD),
    ("attestations", OP_ATTESTATION, SIGNED_ATTESTATION_SIZE_BYTES, SignedAttestation, MAX_ATTESTATIONS),
    (
        "attester_slashings",
        OP_ATTESTER_SLASHING,
        2 * SIGNED_ATTESTATION_SIZE_BYTES,
        AttesterSlashing,
        MAX_ATTESTER_SLASHINGS,
    ),
    (
        "proposer_slashings",
        OP_PROPOSER_SLASHING,
        2 * SIGNED_PROPOSAL_HEADER_SIZE_BYTES,
        ProposerSlashing,
        MAX_PROPOSER_SLASHINGS,
    ),
)


@dataclass(frozen=True, slots=True)
class Operations:
    """The operations of one version-2 block."""

    deposits: tuple[Deposit, ...] = ()
    voluntary_exits: tuple[VoluntaryExit, ...] = ()
    withdrawals: tuple[Withdrawal, ...] = ()
    attestations: tuple[SignedAttestation, ...] = ()
    attester_slashings: tuple[AttesterSlashing, ...] = ()
    proposer_slashings: tuple[ProposerSlashing, ...] = ()

    def __post_init__(self) -> None:
        for name, _, _, cls, _ in _LISTS:
            items = getattr(self, name)
            if not isinstance(items, tuple) or not all(isinstance(item, cls) for item in items):
                raise EncodingError(f"{name.replace('_', ' ')} must be a tuple of {cls.__name__}")

    def is_empty(self) -> bool:
        return not any(getattr(self, name) for name, *_ in _LISTS)

    def leaf_ids(self) -> list[bytes]:
        """One merkle leaf per operation, in block order."""
        leaves = []
        for name, op_type, _, _, _ in _LISTS:
            for item in getattr(self, name):
                leaves.append(sha256d(bytes((op_type,)) + item.serialize()))
        return leaves

    def serialize(self) -> bytes:
        parts = []
        for name, _, _, _, cap in _LISTS:
            items = getattr(self, name)
            if len(items) > cap:
                raise EncodingError(f"a block carries at most {cap} {name.replace('_', ' ')}, got {len(items)}")
            parts.append(_COUNT.pack(len(items)))
            parts.extend(item.serialize() for item in items)
        return b"".join(parts)


def deserialize_operations(data: bytes, offset: int) -> tuple[Operations, int]:
    # Any: each field wants its own item type; Operations checks every item's class when built.
    lists: dict[str, Any] = {}
    for name, _, size, cls, cap in _LISTS:
        if len(data) < offset + _COUNT.size:
            raise EncodingError(f"truncated block: missing the count of {name.replace('_', ' ')}")
        (count,) = _COUNT.unpack_from(data, offset)
        offset += _COUNT.size
        if count > cap:
            raise EncodingError(f"a block carries at most {cap} {name.replace('_', ' ')}, got {count}")
        end = offset + count * size
        if len(data) < end:
            raise EncodingError(f"truncated block: {name.replace('_', ' ')} end early")
        lists[name] = tuple(cls.deserialize(data[offset + i * size : offset + (i + 1) * size]) for i in range(count))
        offset = end
    return Operations(**lists), offset


def check_operation_caps(operations: Operations) -> None:
    """The per-block caps, for blocks built in memory (bytes are checked on the way in)."""
    for name, _, _, _, cap in _LISTS:
        if len(getattr(operations, name)) > cap:
            raise EncodingError(f"a block carries at most {cap} {name.replace('_', ' ')}")
