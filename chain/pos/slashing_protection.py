"""Slashing protection for a signer: EIP-3076's refusal rules and interchange format.

An honest validator is slashed only if its signer signs two conflicting
messages, typically after a restart, a clock jump or a move to another machine.
The signer therefore keeps, per validator, a record of what it has signed, and
refuses anything that could conflict with it.

We keep the record EIP-3076 calls *minimal*: the highest block slot signed, the
attestation with the highest target epoch, and the highest source epoch.  A new
attestation must have ``source >= highest source`` and ``target > highest
target`` (a new block: ``slot > highest slot``).  Every attestation allowed that
way is safe against *every* earlier one, not only the last: an earlier vote
``(s0, t0)`` has ``s0 <= s`` and ``t0 < t``, so the new vote neither repeats its
target, nor is surrounded by it (that needs ``t < t0``), nor surrounds it (that
needs ``s < s0``).  This is stricter than EIP-3076's conditions 2, 4 and 5, which
compare with the *lowest* entries; an honest validator, whose source is a
justified checkpoint and whose target is the current epoch, always passes.

Before the watermark rules, a new message is compared with the latest one, so
that a refusal names the offence it prevents (double vote, surround vote,
double proposal).  Signing exactly the same message again (same signing root)
is allowed, as EIP-3076 allows it: the signature is the same.

The check/record split: ``check_*`` refuses or returns; ``record_*`` checks, then
returns the new record.  The caller must store the new record durably *before*
it releases the signature, so that a crash never forgets a signed message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from chain.errors import (
    AttestationError,
    BlockSlotTooLowError,
    DoubleProposalRefusedError,
    DoubleVoteRefusedError,
    EncodingError,
    InterchangeError,
    InterchangeGenesisMismatchError,
    SlashingProtectionError,
    SourceEpochTooLowError,
    SurroundVoteRefusedError,
    TargetEpochTooLowError,
)
from chain.hashing import HASH_SIZE_BYTES, hash_from_display, hash_to_display
from chain.keys import PUBLIC_KEY_SIZE_BYTES, is_valid_public_key
from chain.pos.attestation import AttestationData, ProposalHeader, check_uint64

INTERCHANGE_FORMAT_VERSION = "5"
# EIP-3076 suggests an all-zero root as the "unknown" signing root of imported entries.
_NULL_ROOT = bytes(HASH_SIZE_BYTES)
_DECIMAL = re.compile(r"[0-9]+")
_HEX32 = re.compile(r"0x[0-9a-fA-F]{64}")


@dataclass(frozen=True, slots=True)
class SignedBlockEntry:
    slot: int
    # None when imported without one: then no block at this slot counts as a repeat.
    signing_root: bytes | None = None


@dataclass(frozen=True, slots=True)
class SignedAttestationEntry:
    source_epoch: int
    target_epoch: int
    signing_root: bytes | None = None


@dataclass(frozen=True, slots=True)
class SlashingProtectionRecord:
    """What one validator's signer has signed, as far as safety needs to know."""

    pubkey: bytes
    highest_block: SignedBlockEntry | None = None
    # The attestation with the highest target epoch signed.
    highest_attestation: SignedAttestationEntry | None = None
    # Usually highest_attestation's source; an import can raise it above.
    highest_source_epoch: int | None = None

    def __post_init__(self) -> None:
        if len(self.pubkey) != PUBLIC_KEY_SIZE_BYTES:
            raise InterchangeError(f"a validator public key has {PUBLIC_KEY_SIZE_BYTES} bytes")
        if (self.highest_attestation is None) != (self.highest_source_epoch is None):
            raise InterchangeError("a record has both or neither of its attestation and source watermark")
        last = self.highest_attestation
        # Entries never have source > target, and a highest source above the last vote's
        # comes from a vote with a lower target; so the watermark is below the last target.
        if (
            last is not None
            and self.highest_source_epoch is not None
            and not last.source_epoch <= self.highest_source_epoch <= last.target_epoch
        ):
            raise InterchangeError(
                f"source watermark {self.highest_source_epoch} must lie between the last vote's source "
                f"{last.source_epoch} and target {last.target_epoch}"
            )


def _is_repeat(known_root: bytes | None, root: bytes) -> bool:
    return known_root is not None and known_root == root


def _check_attestation(record: SlashingProtectionRecord, source: int, target: int, root: bytes) -> None:
    if source > target:
        raise AttestationError(f"source epoch {source} is after target epoch {target}: no honest vote looks like that")
    last = record.highest_attestation
    if last is None or record.highest_source_epoch is None:
        return
    if last.source_epoch == source and last.target_epoch == target and _is_repeat(last.signing_root, root):
        return
    if target == last.target_epoch:
        raise DoubleVoteRefusedError(
            f"already signed a different vote for target epoch {target}: signing this one would be a double vote"
        )
    if source < last.source_epoch and last.target_epoch < target:
        raise SurroundVoteRefusedError(
            f"vote {source} → {target} would surround the vote {last.source_epoch} → {last.target_epoch} "
            "already signed"
        )
    if last.source_epoch < source and target < last.target_epoch:
        raise SurroundVoteRefusedError(
            f"vote {source} → {target} would be surrounded by the vote {last.source_epoch} → "
            f"{last.target_epoch} already signed"
        )
    if source < record.highest_source_epoch:
        raise SourceEpochTooLowError(
            f"source epoch {source} is lower than source epoch {record.highest_source_epoch} already signed; "
            "it could surround an earlier vote"
        )
    if target <= last.target_epoch:
        raise TargetEpochTooLowError(
            f"target epoch {target} is not after target epoch {last.target_epoch} already signed; "
            "it could be a double vote or surrounded by an earlier vote"
        )


def check_attestation_signing(record: SlashingProtectionRecord, data: AttestationData) -> None:
    """Refuse, with the reason, to sign ``data`` if it could conflict with the record."""
    _check_attestation(record, data.source.epoch, data.target.epoch, data.signing_root())


def record_attestation_signing(record: SlashingProtectionRecord, data: AttestationData) -> SlashingProtectionRecord:
    """The record after signing ``data``; refuses exactly as ``check_attestation_signing``."""
    source, target, root = data.source.epoch, data.target.epoch, data.signing_root()
    _check_attestation(record, source, target, root)
    last = record.highest_attestation
    if last is not None and last.target_epoch == target:
        return record  # a repeat: nothing new was signed
    highest_source = source if record.highest_source_epoch is None else max(source, record.highest_source_epoch)
    return replace(
        record,
        highest_attestation=SignedAttestationEntry(source, target, root),
        highest_source_epoch=highest_source,
    )


def _check_block(record: SlashingProtectionRecord, slot: int, root: bytes) -> None:
    last = record.highest_block
    if last is None:
        return
    if slot == last.slot and _is_repeat(last.signing_root, root):
        return
    if slot == last.slot:
        raise DoubleProposalRefusedError(
            f"already signed a different block for slot {slot}: signing this one would be a double proposal"
        )
    if slot < last.slot:
        raise BlockSlotTooLowError(f"slot {slot} is before slot {last.slot}, already signed a block for")


def _check_proposer(record: SlashingProtectionRecord, header: ProposalHeader) -> None:
    if header.proposer != record.pubkey:
        raise SlashingProtectionError(
            f"this record is validator {record.pubkey.hex()[:16]}…'s, but the block is by {header.proposer.hex()[:16]}…"
        )


def check_block_signing(record: SlashingProtectionRecord, header: ProposalHeader) -> None:
    """Refuse to sign a block for a slot at or before the highest one signed (unless a repeat)."""
    _check_proposer(record, header)
    _check_block(record, header.slot, header.signing_root())


def record_block_signing(record: SlashingProtectionRecord, header: ProposalHeader) -> SlashingProtectionRecord:
    _check_proposer(record, header)
    root = header.signing_root()
    _check_block(record, header.slot, root)
    if record.highest_block is not None and record.highest_block.slot == header.slot:
        return record
    return replace(record, highest_block=SignedBlockEntry(header.slot, root))


# --- EIP-3076 interchange ---------------------------------------------------


def _root_hex(root: bytes) -> str:
    return "0x" + root.hex()


def _record_to_json(record: SlashingProtectionRecord) -> dict[str, Any]:
    blocks = []
    if record.highest_block is not None:
        block: dict[str, str] = {"slot": str(record.highest_block.slot)}
        if record.highest_block.signing_root is not None:
            block["signing_root"] = _root_hex(record.highest_block.signing_root)
        blocks.append(block)
    attestations = []
    last = record.highest_attestation
    if last is not None and record.highest_source_epoch is not None:
        entry = {"source_epoch": str(last.source_epoch), "target_epoch": str(last.target_epoch)}
        if last.signing_root is not None:
            entry["signing_root"] = _root_hex(last.signing_root)
        attestations.append(entry)
        if record.highest_source_epoch > last.source_epoch:
            # Keep the source watermark across an export, as the entry (s, s) with no
            # signing root: it refuses exactly the votes with a lower source and a
            # higher target, and no importer can take it for a message to repeat.
            # Its target is below the last one (see SlashingProtectionRecord), so
            # re-importing it leaves the last vote and its signing root alone.
            watermark = str(record.highest_source_epoch)
            attestations.append({"source_epoch": watermark, "target_epoch": watermark})
    return {"pubkey": "0x" + record.pubkey.hex(), "signed_blocks": blocks, "signed_attestations": attestations}


def export_interchange(records: Iterable[SlashingProtectionRecord], genesis_hash: bytes) -> str:
    """The records as an EIP-3076 (version 5) interchange file.

    ``genesis_validators_root`` is our chain's genesis block hash, written as
    the explorer shows it (byte-reversed, as Bitcoin shows hashes); integers are
    decimal strings, as the EIP requires.
    """
    document = {
        "metadata": {
            "interchange_format_version": INTERCHANGE_FORMAT_VERSION,
            "genesis_validators_root": "0x" + hash_to_display(genesis_hash),
        },
        "data": [_record_to_json(r) for r in sorted(records, key=lambda r: r.pubkey)],
    }
    return json.dumps(document, indent=2)


def _field(obj: Any, key: str, where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise InterchangeError(f"{where} has no {key!r}")
    return obj[key]


def _parse_uint(value: Any, where: str) -> int:
    # EIP-3076 writes integers as strings so that JavaScript readers keep every digit.
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
        raise InterchangeError(f"{where} must be a decimal string, got {value!r}")
    number = int(value)
    try:
        check_uint64(where, number)
    except EncodingError as exc:
        raise InterchangeError(str(exc)) from exc
    return number


def _parse_root(entry: dict[str, Any], where: str) -> bytes | None:
    if "signing_root" not in entry:
        return None
    value = entry["signing_root"]
    if not isinstance(value, str) or not _HEX32.fullmatch(value):
        raise InterchangeError(f"{where} signing_root must be 0x and 64 hex digits, got {value!r}")
    root = bytes.fromhex(value[2:])
    return None if root == _NULL_ROOT else root


def _parse_list(entry: Any, key: str, where: str) -> list[Any]:
    value = _field(entry, key, where)
    if not isinstance(value, list):
        raise InterchangeError(f"{where} {key} must be a list")
    return value


def _merge_block(a: SignedBlockEntry | None, b: SignedBlockEntry | None) -> SignedBlockEntry | None:
    if a is None or b is None:
        return a if b is None else b
    if a.slot != b.slot:
        return a if a.slot > b.slot else b
    # Same slot, two roots: re-signing either could be a double proposal, so neither is a repeat.
    return a if a == b else SignedBlockEntry(a.slot, None)


def _merge_attestation(
    a: SignedAttestationEntry | None, b: SignedAttestationEntry | None
) -> SignedAttestationEntry | None:
    if a is None or b is None:
        return a if b is None else b
    if a.target_epoch != b.target_epoch:
        return a if a.target_epoch > b.target_epoch else b
    if a == b:
        return a
    return SignedAttestationEntry(max(a.source_epoch, b.source_epoch), a.target_epoch, None)


def merge_records(a: SlashingProtectionRecord, b: SlashingProtectionRecord) -> SlashingProtectionRecord:
    """The record that refuses everything either refuses (EIP-3076: take the maxima)."""
    if a.pubkey != b.pubkey:
        raise InterchangeError("cannot merge the records of two validators")
    sources = [s for s in (a.highest_source_epoch, b.highest_source_epoch) if s is not None]
    return SlashingProtectionRecord(
        a.pubkey,
        _merge_block(a.highest_block, b.highest_block),
        _merge_attestation(a.highest_attestation, b.highest_attestation),
        max(sources) if sources else None,
    )


def _parse_validator(entry: Any, position: int) -> SlashingProtectionRecord:
    where = f"data[{position}]"
    pubkey_text = _field(entry, "pubkey", where)
    if not isinstance(pubkey_text, str) or not _HEX32.fullmatch(pubkey_text):
        raise InterchangeError(
            f"{where} pubkey must be an Ed25519 key (0x and 64 hex digits), got {str(pubkey_text)[:24]!r}…"
        )
    pubkey = bytes.fromhex(pubkey_text[2:])
    if not is_valid_public_key(pubkey):
        raise InterchangeError(f"{where} pubkey {pubkey_text} is not a valid Ed25519 key")
    record = SlashingProtectionRecord(pubkey)
    for i, block in enumerate(_parse_list(entry, "signed_blocks", where)):
        at = f"{where}.signed_blocks[{i}]"
        slot = _parse_uint(_field(block, "slot", at), f"{at}.slot")
        entry_record = SlashingProtectionRecord(pubkey, SignedBlockEntry(slot, _parse_root(block, at)))
        record = merge_records(record, entry_record)
    for i, attestation in enumerate(_parse_list(entry, "signed_attestations", where)):
        at = f"{where}.signed_attestations[{i}]"
        source = _parse_uint(_field(attestation, "source_epoch", at), f"{at}.source_epoch")
        target = _parse_uint(_field(attestation, "target_epoch", at), f"{at}.target_epoch")
        if source > target:
            raise InterchangeError(f"{at} has source epoch {source} after target epoch {target}: no signer signs that")
        signed = SignedAttestationEntry(source, target, _parse_root(attestation, at))
        record = merge_records(record, SlashingProtectionRecord(pubkey, None, signed, source))
    return record


def import_interchange(
    text: str, genesis_hash: bytes, records: Mapping[bytes, SlashingProtectionRecord] | None = None
) -> dict[bytes, SlashingProtectionRecord]:
    """Merge an EIP-3076 file into ``records`` (by public key); all or nothing.

    Every entry is checked before anything is merged, and the file must be for
    this chain (its genesis hash), or it says nothing about the votes here.
    """
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InterchangeError(f"the interchange file is not valid JSON: {exc}") from exc
    metadata = _field(document, "metadata", "the interchange file")
    version = _field(metadata, "interchange_format_version", "metadata")
    if version != INTERCHANGE_FORMAT_VERSION:
        raise InterchangeError(
            f"interchange format version {version!r} is not supported; EIP-3076 version "
            f"{INTERCHANGE_FORMAT_VERSION!r} is"
        )
    root_text = _field(metadata, "genesis_validators_root", "metadata")
    if not isinstance(root_text, str) or not _HEX32.fullmatch(root_text):
        raise InterchangeError(f"genesis_validators_root must be 0x and 64 hex digits, got {root_text!r}")
    if hash_from_display(root_text[2:]) != genesis_hash:
        raise InterchangeGenesisMismatchError(
            f"the file is for the chain with genesis {root_text}, not this chain "
            f"(0x{hash_to_display(genesis_hash)})"
        )
    data = _field(document, "data", "the interchange file")
    if not isinstance(data, list):
        raise InterchangeError("the interchange file's data must be a list")
    parsed = [_parse_validator(entry, i) for i, entry in enumerate(data)]
    merged = dict(records or {})
    for record in parsed:
        existing = merged.get(record.pubkey)
        merged[record.pubkey] = record if existing is None else merge_records(existing, record)
    return merged
