"""EIP-3076 slashing protection records, one per validator key: the ``slashing_protection`` table.

Records outlive a reset of the chain on purpose only until ``Store.delete_chain`` (a new chain
gets new keys); see README "Durable store".
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from chain.adapters.storage.database import Database, Transaction
from chain.errors import EncodingError
from chain.pos.slashing_protection import SignedAttestationEntry, SignedBlockEntry, SlashingProtectionRecord

# Version of the JSON encoding of a stored slashing protection record.
_PROTECTION_RECORD_VERSION = 1


def _root_to_json(root: bytes | None) -> str | None:
    return None if root is None else root.hex()


def _root_from_json(value: Any) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise EncodingError(f"a signing root is stored as hex, got {value!r}")
    return bytes.fromhex(value)


def encode_protection_record(record: SlashingProtectionRecord) -> str:
    """The record as explicit JSON: every field by name, roots as hex, ``null`` for none.

    Our own encoding rather than EIP-3076's interchange file: the interchange
    names a genesis, and these records deliberately outlive a chain's genesis.
    """
    block = record.highest_block
    attestation = record.highest_attestation
    document = {
        "version": _PROTECTION_RECORD_VERSION,
        "pubkey": record.pubkey.hex(),
        "highest_block": None
        if block is None
        else {"slot": block.slot, "signing_root": _root_to_json(block.signing_root)},
        "highest_attestation": None
        if attestation is None
        else {
            "source_epoch": attestation.source_epoch,
            "target_epoch": attestation.target_epoch,
            "signing_root": _root_to_json(attestation.signing_root),
        },
        "highest_source_epoch": record.highest_source_epoch,
    }
    return json.dumps(document, sort_keys=True)


def decode_protection_record(text: str) -> SlashingProtectionRecord:
    try:
        document = json.loads(text)
        if document.get("version") != _PROTECTION_RECORD_VERSION:
            raise EncodingError(f"slashing protection record version {document.get('version')!r} is unknown")
        block = document["highest_block"]
        attestation = document["highest_attestation"]
        return SlashingProtectionRecord(
            bytes.fromhex(document["pubkey"]),
            None if block is None else SignedBlockEntry(int(block["slot"]), _root_from_json(block["signing_root"])),
            None
            if attestation is None
            else SignedAttestationEntry(
                int(attestation["source_epoch"]),
                int(attestation["target_epoch"]),
                _root_from_json(attestation["signing_root"]),
            ),
            None if document["highest_source_epoch"] is None else int(document["highest_source_epoch"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        # json.JSONDecodeError is a ValueError. A record that cannot be read must stop
        # the signer, never be taken for "nothing signed yet".
        raise EncodingError(f"stored slashing protection record cannot be decoded: {exc}") from exc


class ProtectionRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, chain_id: int, pubkey: bytes) -> SlashingProtectionRecord | None:
        row = await self._db.fetchone(
            "SELECT record FROM slashing_protection WHERE chain_id = ? AND pubkey = ?", (chain_id, pubkey)
        )
        if row is None:
            return None
        record = decode_protection_record(row[0])
        if record.pubkey != pubkey:
            raise EncodingError(
                f"stored slashing protection record under {pubkey.hex()[:16]}… is for {record.pubkey.hex()[:16]}…"
            )
        return record

    async def save(self, tx: Transaction, chain_id: int, record: SlashingProtectionRecord, now: int) -> None:
        await tx.execute(
            "INSERT INTO slashing_protection (chain_id, pubkey, record, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (chain_id, pubkey) DO UPDATE SET record = excluded.record, "
            "updated_at = excluded.updated_at",
            (chain_id, record.pubkey, encode_protection_record(record), now),
        )

    async def update(
        self,
        tx: Transaction,
        chain_id: int,
        pubkey: bytes,
        update: Callable[[SlashingProtectionRecord], SlashingProtectionRecord],
        now: int,
    ) -> SlashingProtectionRecord:
        """Read the record under ``tx``'s write lock, apply ``update`` (it may raise to refuse), store it."""
        row = await tx.fetchone(
            "SELECT record FROM slashing_protection WHERE chain_id = ? AND pubkey = ?", (chain_id, pubkey)
        )
        current = SlashingProtectionRecord(pubkey) if row is None else decode_protection_record(row[0])
        if current.pubkey != pubkey:
            raise EncodingError(
                f"stored slashing protection record under {pubkey.hex()[:16]}… "
                f"is for {current.pubkey.hex()[:16]}…"
            )
        updated = update(current)
        if updated.pubkey != pubkey:
            raise ValueError("an update must not change whose record it is")
        await self.save(tx, chain_id, updated, now)
        return updated

    async def delete_all(self, tx: Transaction, chain_id: int) -> None:
        await tx.execute("DELETE FROM slashing_protection WHERE chain_id = ?", (chain_id,))
