"""Attestations (Casper FFG votes), signed proposal headers, and slashing evidence.

Modelled on Ethereum's consensus-specs, phase0 ``beacon-chain.md``: ``Checkpoint``,
``AttestationData``, ``is_slashable_attestation_data``, ``process_attester_slashing``
and ``process_proposer_slashing`` (their checks; applying a penalty is
``chain.pos.staking.slash_validator``).

Byte layouts (little-endian, fixed width):

- checkpoint: epoch u64, root 32 B (40 B);
- attestation data: chain id u64, slot u64, block root 32 B, source checkpoint,
  target checkpoint (128 B);
- signed attestation: validator public key 32 B, attestation data, signature 64 B (224 B);
- proposal header: chain id u64, slot u64, proposer public key 32 B,
  parent root 32 B, body root 32 B (112 B);
- signed proposal header: header, signature 64 B (176 B);
- attester slashing: two signed attestations (448 B); proposer slashing: two
  signed proposal headers (352 B).

Where Ethereum names a validator by its registry index we carry its Ed25519
public key, so a signature and a piece of evidence can be checked with no
registry at hand (``/report`` evidence, an exported chain).  Ethereum's
committee ``index`` is left out: every validator attests once per epoch, with
no committees.

A signature is over a *signing root*, as in ``compute_signing_root``:
``sha256(domain tag || bytes)``.  The domain tag differs per message type, and
the chain id is inside the bytes, so a vote or a block header signed for one
server's chain cannot be replayed on another's.  The signing root is also what
EIP-3076 slashing protection records.
"""

from __future__ import annotations

import enum
import hashlib
import struct
from dataclasses import dataclass

from chain.errors import (
    AttestationError,
    BadSignatureError,
    EncodingError,
    IdenticalMessagesError,
    NotSlashableError,
    SlotMismatchError,
    ValidatorMismatchError,
    WalletError,
    WrongChainError,
)
from chain.hashing import HASH_SIZE_BYTES
from chain.keys import (
    PUBLIC_KEY_SIZE_BYTES,
    SIGNATURE_SIZE_BYTES,
    SigningKey,
    verify_signature,
)

UINT64_MAX = (1 << 64) - 1
GENESIS_EPOCH = 0
GENESIS_SLOT = 0
ATTESTATION_SIGNING_DOMAIN = b"consensus-playground/attestation/v1"
PROPOSAL_SIGNING_DOMAIN = b"consensus-playground/proposal/v1"

_CHECKPOINT = struct.Struct("<Q32s")
_ATTESTATION_DATA = struct.Struct("<QQ32sQ32sQ32s")
_PROPOSAL_HEADER = struct.Struct("<QQ32s32s32s")
CHECKPOINT_SIZE_BYTES = _CHECKPOINT.size
ATTESTATION_DATA_SIZE_BYTES = _ATTESTATION_DATA.size
SIGNED_ATTESTATION_SIZE_BYTES = PUBLIC_KEY_SIZE_BYTES + ATTESTATION_DATA_SIZE_BYTES + SIGNATURE_SIZE_BYTES
PROPOSAL_HEADER_SIZE_BYTES = _PROPOSAL_HEADER.size
SIGNED_PROPOSAL_HEADER_SIZE_BYTES = PROPOSAL_HEADER_SIZE_BYTES + SIGNATURE_SIZE_BYTES


def check_uint64(name: str, value: int) -> None:
    """Every counter in a signed message is a u64 on the wire."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= UINT64_MAX:
        raise EncodingError(f"{name} {value!r} is not a whole number that fits in 64 bits")


def _check_bytes(name: str, value: bytes, size: int) -> None:
    if not isinstance(value, bytes) or len(value) != size:
        raise EncodingError(f"{name} must be {size} bytes")


def compute_epoch_at_slot(slot: int, slots_per_epoch: int) -> int:
    check_uint64("slot", slot)
    if slots_per_epoch < 1:
        raise EncodingError(f"an epoch has at least one slot, got {slots_per_epoch}")
    return slot // slots_per_epoch


def compute_start_slot_at_epoch(epoch: int, slots_per_epoch: int) -> int:
    check_uint64("epoch", epoch)
    if slots_per_epoch < 1:
        raise EncodingError(f"an epoch has at least one slot, got {slots_per_epoch}")
    return epoch * slots_per_epoch


def compute_signing_root(domain: bytes, message: bytes) -> bytes:
    """The 32 bytes a validator signs, and EIP-3076 records."""
    return hashlib.sha256(domain + message).digest()


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """An epoch and the root of the block at its first slot (or the latest before it)."""

    epoch: int
    root: bytes

    def __post_init__(self) -> None:
        check_uint64("checkpoint epoch", self.epoch)
        _check_bytes("checkpoint root", self.root, HASH_SIZE_BYTES)

    def serialize(self) -> bytes:
        return _CHECKPOINT.pack(self.epoch, self.root)

    @classmethod
    def deserialize(cls, data: bytes) -> Checkpoint:
        if len(data) != CHECKPOINT_SIZE_BYTES:
            raise EncodingError(f"a checkpoint has {CHECKPOINT_SIZE_BYTES} bytes, got {len(data)}")
        return cls(*_CHECKPOINT.unpack(data))


@dataclass(frozen=True, slots=True)
class AttestationData:
    """What a validator votes for: the head it sees, and the FFG link source -> target."""

    chain_id: int
    slot: int
    beacon_block_root: bytes
    source: Checkpoint
    target: Checkpoint

    def __post_init__(self) -> None:
        check_uint64("chain id", self.chain_id)
        check_uint64("attestation slot", self.slot)
        _check_bytes("beacon block root", self.beacon_block_root, HASH_SIZE_BYTES)
        if not isinstance(self.source, Checkpoint) or not isinstance(self.target, Checkpoint):
            raise EncodingError("attestation source and target must be checkpoints")

    def serialize(self) -> bytes:
        return _ATTESTATION_DATA.pack(
            self.chain_id,
            self.slot,
            self.beacon_block_root,
            self.source.epoch,
            self.source.root,
            self.target.epoch,
            self.target.root,
        )

    @classmethod
    def deserialize(cls, data: bytes) -> AttestationData:
        if len(data) != ATTESTATION_DATA_SIZE_BYTES:
            raise EncodingError(f"attestation data has {ATTESTATION_DATA_SIZE_BYTES} bytes, got {len(data)}")
        chain_id, slot, block_root, s_epoch, s_root, t_epoch, t_root = _ATTESTATION_DATA.unpack(data)
        return cls(chain_id, slot, block_root, Checkpoint(s_epoch, s_root), Checkpoint(t_epoch, t_root))

    def signing_root(self) -> bytes:
        return compute_signing_root(ATTESTATION_SIGNING_DOMAIN, self.serialize())


def check_attestation_data(data: AttestationData, slots_per_epoch: int) -> None:
    """Context-free consistency: the target is the slot's epoch, the source is not after it.

    ``process_attestation`` asserts the first; the second holds for every vote an
    honest validator casts (its source is a justified checkpoint, never in the future).
    """
    epoch = compute_epoch_at_slot(data.slot, slots_per_epoch)
    if data.target.epoch != epoch:
        raise AttestationError(
            f"target epoch {data.target.epoch} is not the epoch {epoch} of slot {data.slot}"
        )
    if data.source.epoch > data.target.epoch:
        raise AttestationError(
            f"source epoch {data.source.epoch} is after target epoch {data.target.epoch}"
        )


def is_slashable_attestation_data(data_1: AttestationData, data_2: AttestationData) -> bool:
    """Casper FFG's two slashing conditions, exactly as phase0 states them.

    The surround clause is one-sided: it holds when ``data_1`` surrounds ``data_2``.
    """
    return (
        # Double vote
        (data_1 != data_2 and data_1.target.epoch == data_2.target.epoch)
        # Surround vote
        or (data_1.source.epoch < data_2.source.epoch and data_2.target.epoch < data_1.target.epoch)
    )


@dataclass(frozen=True, slots=True)
class SignedAttestation:
    validator: bytes
    data: AttestationData
    signature: bytes = b""

    def __post_init__(self) -> None:
        _check_bytes("attesting validator", self.validator, PUBLIC_KEY_SIZE_BYTES)

    def serialize(self) -> bytes:
        _check_bytes("attestation signature", self.signature, SIGNATURE_SIZE_BYTES)
        return self.validator + self.data.serialize() + self.signature

    @classmethod
    def deserialize(cls, data: bytes) -> SignedAttestation:
        if len(data) != SIGNED_ATTESTATION_SIZE_BYTES:
            raise EncodingError(
                f"a signed attestation has {SIGNED_ATTESTATION_SIZE_BYTES} bytes, got {len(data)}"
            )
        key_end = PUBLIC_KEY_SIZE_BYTES
        data_end = key_end + ATTESTATION_DATA_SIZE_BYTES
        return cls(data[:key_end], AttestationData.deserialize(data[key_end:data_end]), data[data_end:])


def sign_attestation(key: SigningKey, data: AttestationData) -> SignedAttestation:
    return SignedAttestation(key.public_key, data, key.sign(data.signing_root()))


def check_attestation_signature(attestation: SignedAttestation) -> None:
    """Raise ``BadSignatureError`` unless the validator signed exactly this data."""
    try:
        verify_signature(attestation.validator, attestation.data.signing_root(), attestation.signature)
    except BadSignatureError as exc:
        raise BadSignatureError(
            f"attestation for slot {attestation.data.slot} is not signed by validator "
            f"{attestation.validator.hex()[:16]}…: {exc}"
        ) from exc


def is_valid_attestation_signature(attestation: SignedAttestation) -> bool:
    try:
        check_attestation_signature(attestation)
    except BadSignatureError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class ProposalHeader:
    """A block proposal as its proposer signs it: phase0's ``BeaconBlockHeader``.

    ``state_root`` is left out because our blocks commit to no state root;
    ``body_root`` is the block's merkle root.
    """

    chain_id: int
    slot: int
    proposer: bytes
    parent_root: bytes
    body_root: bytes

    def __post_init__(self) -> None:
        check_uint64("chain id", self.chain_id)
        check_uint64("proposal slot", self.slot)
        _check_bytes("proposer", self.proposer, PUBLIC_KEY_SIZE_BYTES)
        _check_bytes("parent root", self.parent_root, HASH_SIZE_BYTES)
        _check_bytes("body root", self.body_root, HASH_SIZE_BYTES)

    def serialize(self) -> bytes:
        return _PROPOSAL_HEADER.pack(self.chain_id, self.slot, self.proposer, self.parent_root, self.body_root)

    @classmethod
    def deserialize(cls, data: bytes) -> ProposalHeader:
        if len(data) != PROPOSAL_HEADER_SIZE_BYTES:
            raise EncodingError(f"a proposal header has {PROPOSAL_HEADER_SIZE_BYTES} bytes, got {len(data)}")
        return cls(*_PROPOSAL_HEADER.unpack(data))

    def signing_root(self) -> bytes:
        return compute_signing_root(PROPOSAL_SIGNING_DOMAIN, self.serialize())


@dataclass(frozen=True, slots=True)
class SignedProposalHeader:
    header: ProposalHeader
    signature: bytes = b""

    def serialize(self) -> bytes:
        _check_bytes("proposal signature", self.signature, SIGNATURE_SIZE_BYTES)
        return self.header.serialize() + self.signature

    @classmethod
    def deserialize(cls, data: bytes) -> SignedProposalHeader:
        if len(data) != SIGNED_PROPOSAL_HEADER_SIZE_BYTES:
            raise EncodingError(
                f"a signed proposal header has {SIGNED_PROPOSAL_HEADER_SIZE_BYTES} bytes, got {len(data)}"
            )
        return cls(ProposalHeader.deserialize(data[:PROPOSAL_HEADER_SIZE_BYTES]), data[PROPOSAL_HEADER_SIZE_BYTES:])


def sign_proposal_header(key: SigningKey, header: ProposalHeader) -> SignedProposalHeader:
    if header.proposer != key.public_key:
        raise WalletError(
            f"key {key.public_key.hex()[:16]}… cannot sign a header naming proposer {header.proposer.hex()[:16]}…"
        )
    return SignedProposalHeader(header, key.sign(header.signing_root()))


def check_proposal_signature(signed: SignedProposalHeader) -> None:
    """Raise ``BadSignatureError`` unless the named proposer signed exactly this header."""
    header = signed.header
    try:
        verify_signature(header.proposer, header.signing_root(), signed.signature)
    except BadSignatureError as exc:
        raise BadSignatureError(
            f"block header for slot {header.slot} is not signed by proposer {header.proposer.hex()[:16]}…: {exc}"
        ) from exc


# --- slashing evidence ------------------------------------------------------


class Offence(enum.Enum):
    DOUBLE_VOTE = "double vote"
    SURROUND_VOTE = "surround vote"
    DOUBLE_PROPOSAL = "double proposal"


@dataclass(frozen=True, slots=True)
class SlashingVerdict:
    """What valid evidence proves: who to slash and why, in words for an announcement."""

    offence: Offence
    validator: bytes
    description: str


@dataclass(frozen=True, slots=True)
class AttesterSlashing:
    attestation_1: SignedAttestation
    attestation_2: SignedAttestation

    def serialize(self) -> bytes:
        return self.attestation_1.serialize() + self.attestation_2.serialize()

    @classmethod
    def deserialize(cls, data: bytes) -> AttesterSlashing:
        size = SIGNED_ATTESTATION_SIZE_BYTES
        if len(data) != 2 * size:
            raise EncodingError(f"an attester slashing has {2 * size} bytes, got {len(data)}")
        return cls(SignedAttestation.deserialize(data[:size]), SignedAttestation.deserialize(data[size:]))


@dataclass(frozen=True, slots=True)
class ProposerSlashing:
    signed_header_1: SignedProposalHeader
    signed_header_2: SignedProposalHeader

    def serialize(self) -> bytes:
        return self.signed_header_1.serialize() + self.signed_header_2.serialize()

    @classmethod
    def deserialize(cls, data: bytes) -> ProposerSlashing:
        size = SIGNED_PROPOSAL_HEADER_SIZE_BYTES
        if len(data) != 2 * size:
            raise EncodingError(f"a proposer slashing has {2 * size} bytes, got {len(data)}")
        return cls(SignedProposalHeader.deserialize(data[:size]), SignedProposalHeader.deserialize(data[size:]))


def _link(data: AttestationData) -> str:
    return f"{data.source.epoch} → {data.target.epoch}"


def check_attester_slashing(evidence: AttesterSlashing, chain_id: int) -> SlashingVerdict:
    """``process_attester_slashing``'s checks for one validator, cheapest first.

    Unlike phase0, which wants the surrounding vote first, either order is
    accepted: both orders prove the same offence, and a member filing a
    ``/report`` should not have to know the convention.  Whether the validator
    can still be slashed (``is_slashable_validator``) is the registry's question.
    """
    one, two = evidence.attestation_1, evidence.attestation_2
    if one.validator != two.validator:
        raise ValidatorMismatchError(
            f"the attestations are by two validators ({one.validator.hex()[:16]}… and "
            f"{two.validator.hex()[:16]}…); evidence needs two votes by the same one"
        )
    for attestation in (one, two):
        if attestation.data.chain_id != chain_id:
            raise WrongChainError(
                f"an attestation is for chain {attestation.data.chain_id}, not this chain ({chain_id})"
            )
    d1, d2 = one.data, two.data
    if d1 == d2:
        raise IdenticalMessagesError("both attestations are the same vote; signing a vote twice is not an offence")
    if d1.target.epoch == d2.target.epoch:
        offence = Offence.DOUBLE_VOTE
        description = f"voted twice for target epoch {d1.target.epoch}, for two different things"
    elif is_slashable_attestation_data(d1, d2) or is_slashable_attestation_data(d2, d1):
        outer, inner = (d1, d2) if d1.source.epoch < d2.source.epoch else (d2, d1)
        offence = Offence.SURROUND_VOTE
        description = f"cast a vote {_link(outer)} that surrounds its own vote {_link(inner)}"
    else:
        raise NotSlashableError(
            f"votes {_link(d1)} and {_link(d2)} are neither a double vote (same target epoch) "
            "nor a surround vote (one link strictly inside the other)"
        )
    check_attestation_signature(one)
    check_attestation_signature(two)
    return SlashingVerdict(offence, one.validator, description)


def check_proposer_slashing(evidence: ProposerSlashing, chain_id: int) -> SlashingVerdict:
    """``process_proposer_slashing``'s checks, returning the verdict instead of slashing."""
    h1, h2 = evidence.signed_header_1.header, evidence.signed_header_2.header
    if h1.slot != h2.slot:
        raise SlotMismatchError(f"the headers are for slots {h1.slot} and {h2.slot}; a double proposal is one slot")
    if h1.proposer != h2.proposer:
        raise ValidatorMismatchError(
            f"the headers are by two proposers ({h1.proposer.hex()[:16]}… and {h2.proposer.hex()[:16]}…)"
        )
    for header in (h1, h2):
        if header.chain_id != chain_id:
            raise WrongChainError(f"a header is for chain {header.chain_id}, not this chain ({chain_id})")
    if h1 == h2:
        raise IdenticalMessagesError(f"both headers are the same block for slot {h1.slot}")
    check_proposal_signature(evidence.signed_header_1)
    check_proposal_signature(evidence.signed_header_2)
    return SlashingVerdict(Offence.DOUBLE_PROPOSAL, h1.proposer, f"signed two different blocks for slot {h1.slot}")
