"""The bot's custodial signer for proof-of-stake validators.

Every member gets one Ed25519 validator key per chain, created with their
first accepted deposit (``BeaconNode.deposit`` stores it in the same
transaction as the pooled deposit; read-only paths use ``find_validator_key``,
which never creates one) and sealed at rest with the master key exactly like wallet keys (only the
associated data differs, so a sealed wallet key can never be opened as a
validator key or the other way round).

Signing follows EIP-3076: check the validator's slashing protection record,
store the updated record durably, and only then make the signature.  A crash
at any point therefore leaves a record that covers every signature that ever
left this process, and the signer refuses a conflicting message after a
restart.  The check runs on the stored record inside the store's write
transaction (``Store.update_protection_record``), and a per-validator lock
queues a validator's requests, so two concurrent requests can never both pass
the check against the same record.

Each signature is counted into the chain's energy counters in the same
transaction (``pos_sign_ops``); ``measure_signature_costs_ns`` gives the CPU
cost per operation that ``chain.adapters.energy`` multiplies the counts by.

Chaos mode (an admin toggle, see ``ChaosModeRepository.get_chaos_mode``) lets members
get slashed on purpose: with ``chaos=True`` the signer signs a conflicting
message instead of refusing it, and still records it.  It is a keyword that
callers must pass explicitly; the default is the honest signer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from chain.adapters.storage import Store, StoredValidatorKey
from chain.errors import (
    EnergyError,
    NoValidatorError,
    SlashingProtectionError,
    ValidatorKeyError,
    WrongChainError,
)
from chain.keys import SigningKey, open_key, seal_key, validator_key_aad, verify_signature
from chain.pos.attestation import (
    AttestationData,
    ProposalHeader,
    SignedAttestation,
    SignedProposalHeader,
    sign_attestation,
    sign_proposal_header,
)
from chain.pos.operations import Deposit, VoluntaryExit, make_deposit, make_voluntary_exit
from chain.pos.slashing_protection import (
    SignedAttestationEntry,
    SignedBlockEntry,
    SlashingProtectionRecord,
    export_interchange,
    import_interchange,
    merge_records,
    record_attestation_signing,
    record_block_signing,
)

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Randomness = Callable[[int], bytes]


# A throwaway key for measuring; it never signs anything that leaves this module.
_MEASURING_SEED = bytes(range(32))


def measure_signature_costs_ns(samples: int = 200) -> tuple[int, int]:
    """CPU ns of one Ed25519 signature and of one check on this machine (means, rounded down).

    What ``chain.adapters.energy`` multiplies the signer's and verifier's operation
    counts by. CPU time of this thread only (the bot's other threads keep
    running meanwhile), not wall time, like the hashing workers' figure. It
    blocks for ``samples`` x ~0.1 ms: run it once, off the event loop
    (``asyncio.to_thread``).
    """
    if samples < 1:
        raise EnergyError(f"measure at least one sample, got {samples}")
    key = SigningKey(_MEASURING_SEED)
    public_key = key.public_key
    messages = [i.to_bytes(32, "little") for i in range(samples)]
    started = time.thread_time_ns()
    signatures = [key.sign(m) for m in messages]
    signed = time.thread_time_ns()
    for message, signature in zip(messages, signatures, strict=True):
        verify_signature(public_key, message, signature)
    verified = time.thread_time_ns()
    return (signed - started) // samples, (verified - signed) // samples


class ValidatorSigner:
    """Signs attestations and block proposals for members, never twice in conflict (unless chaos)."""

    def __init__(self, store: Store, *, clock: Clock, randomness: Randomness, master_key: bytes) -> None:
        self.store = store
        self.clock = clock
        self.randomness = randomness
        self._master_key = master_key
        # Public keys and sealed rows only: validator keys outlive resets, so entries
        # never go stale, and private keys stay encrypted in memory until each use.
        self._pubkeys: dict[tuple[int, str], bytes] = {}
        self._sealed: dict[tuple[int, str], StoredValidatorKey] = {}
        self._locks: dict[tuple[int, str], asyncio.Lock] = {}
        # Signatures made since this signer started (also counted durably in the store).
        self.sign_ops = 0

    def now(self) -> int:
        return int(self.clock())

    def _lock(self, chain_id: int, owner: str) -> asyncio.Lock:
        return self._locks.setdefault((chain_id, owner), asyncio.Lock())

    def forget(self, chain_id: int) -> None:
        """Drop cached keys of a chain that was deleted (its keys went with it)."""
        for cache in (self._pubkeys, self._sealed):
            for key in [k for k in cache if k[0] == chain_id]:
                del cache[key]

    # --- keys -------------------------------------------------------------------

    async def _stored_key(self, chain_id: int, owner: str) -> StoredValidatorKey:
        stored = self._sealed.get((chain_id, owner)) or await self.store.validator_keys.get(chain_id, owner)
        if stored is None:
            key = SigningKey(self.randomness(32))
            sealed = seal_key(self._master_key, key, self.randomness(12), validator_key_aad(chain_id, owner))
            # If another writer got there first, the store returns its key and ours is dropped.
            stored = await self.store.validator_keys.insert(
                chain_id, StoredValidatorKey(owner, key.public_key, sealed), self.now()
            )
            log.info("chain %d: created validator key %s for %s", chain_id, stored.pubkey.hex()[:16], owner)
        self._sealed[(chain_id, owner)] = stored
        return stored

    def new_validator_key(self, chain_id: int, owner: str) -> StoredValidatorKey:
        """A fresh key for ``owner``, sealed but not stored: a new chain's genesis validator, which
        ``Node.replace_chain`` stores in the same transaction as the chain.  ``adopt`` it after."""
        key = SigningKey(self.randomness(32))
        sealed = seal_key(self._master_key, key, self.randomness(12), validator_key_aad(chain_id, owner))
        return StoredValidatorKey(owner, key.public_key, sealed)

    def adopt(self, chain_id: int, stored: StoredValidatorKey) -> None:
        """Use ``stored`` (committed by a chain replacement) as the owner's key from now on."""
        self._sealed[(chain_id, stored.owner)] = stored
        self._pubkeys[(chain_id, stored.owner)] = stored.pubkey

    async def _open(self, chain_id: int, owner: str) -> SigningKey:
        stored = await self._stored_key(chain_id, owner)
        key = open_key(self._master_key, stored.sealed_key, validator_key_aad(chain_id, owner))
        if key.public_key != stored.pubkey:
            raise ValidatorKeyError(f"validator key of {owner} on chain {chain_id} does not match its public key")
        return key

    async def find_validator_key(self, chain_id: int, owner: str) -> bytes | None:
        """The owner's validator public key on this chain, or None if they have none (never creates one)."""
        cached = self._pubkeys.get((chain_id, owner))
        if cached is not None:
            return cached
        stored = self._sealed.get((chain_id, owner)) or await self.store.validator_keys.get(chain_id, owner)
        if stored is None:
            return None
        self._sealed[(chain_id, owner)] = stored
        self._pubkeys[(chain_id, owner)] = stored.pubkey
        return stored.pubkey

    async def validator_key(self, chain_id: int, owner: str) -> bytes:
        """The owner's validator public key on this chain, created and sealed on first use.

        For signing paths reached only once the owner has a validator; anything that merely
        looks (status, votes, records) uses ``find_validator_key``."""
        cached = self._pubkeys.get((chain_id, owner))
        if cached is None:
            async with self._lock(chain_id, owner):
                cached = (await self._stored_key(chain_id, owner)).pubkey
            self._pubkeys[(chain_id, owner)] = cached
        return cached

    # --- records -----------------------------------------------------------------

    async def protection_record(self, chain_id: int, owner: str) -> SlashingProtectionRecord:
        """What the owner's validator has signed on this chain, as far as safety needs to know.

        Raises ``NoValidatorError`` if the owner has no validator key (looking creates none)."""
        pubkey = await self.find_validator_key(chain_id, owner)
        if pubkey is None:
            raise NoValidatorError(chain_id, owner, "protection")
        async with self._lock(chain_id, owner):
            return await self.store.protection.get(chain_id, pubkey) or SlashingProtectionRecord(pubkey)

    # --- signing -------------------------------------------------------------------

    async def sign_attestation(
        self, chain_id: int, owner: str, data: AttestationData, *, chaos: bool = False
    ) -> SignedAttestation:
        """Sign a vote, refusing one that could get the validator slashed.

        Raises the ``SlashingProtectionError`` subclass naming the offence
        prevented (``DoubleVoteRefusedError``, ``SurroundVoteRefusedError``...).
        With ``chaos=True`` a conflicting vote is signed anyway (and recorded,
        so the record still refuses everything it refused before).
        """
        if data.chain_id != chain_id:
            raise WrongChainError(f"the vote is for chain {data.chain_id}; this validator signs for chain {chain_id}")
        pubkey = await self.validator_key(chain_id, owner)

        def update(record: SlashingProtectionRecord) -> SlashingProtectionRecord:
            try:
                return record_attestation_signing(record, data)
            except SlashingProtectionError as refusal:
                if not chaos:
                    raise
                log.warning("chain %d: chaos mode: %s signs a conflicting vote (%s)", chain_id, owner, refusal)
                vote = SignedAttestationEntry(data.source.epoch, data.target.epoch, data.signing_root())
                return merge_records(record, SlashingProtectionRecord(pubkey, None, vote, data.source.epoch))

        async with self._lock(chain_id, owner):
            key = await self._open(chain_id, owner)
            await self._record_signing(chain_id, owner, pubkey, update)
            # Only now, with the record on disk, does the signature come into existence.
            signed = sign_attestation(key, data)
            self.sign_ops += 1
            return signed

    async def sign_proposal(
        self, chain_id: int, owner: str, header: ProposalHeader, *, chaos: bool = False
    ) -> SignedProposalHeader:
        """Sign a block header, refusing a second block for a slot (``DoubleProposalRefusedError``)
        or one for an earlier slot (``BlockSlotTooLowError``), unless ``chaos=True``."""
        if header.chain_id != chain_id:
            raise WrongChainError(
                f"the block is for chain {header.chain_id}; this validator signs for chain {chain_id}"
            )
        pubkey = await self.validator_key(chain_id, owner)
        if header.proposer != pubkey:
            # Checked before chaos can matter: chaos signs conflicts, never for someone else.
            raise ValidatorKeyError(
                f"the block names proposer {header.proposer.hex()[:16]}…, "
                f"not {owner}'s validator {pubkey.hex()[:16]}…"
            )

        def update(record: SlashingProtectionRecord) -> SlashingProtectionRecord:
            try:
                return record_block_signing(record, header)
            except SlashingProtectionError as refusal:
                if not chaos:
                    raise
                log.warning("chain %d: chaos mode: %s signs a conflicting block (%s)", chain_id, owner, refusal)
                block = SignedBlockEntry(header.slot, header.signing_root())
                return merge_records(record, SlashingProtectionRecord(pubkey, block))

        async with self._lock(chain_id, owner):
            key = await self._open(chain_id, owner)
            await self._record_signing(chain_id, owner, pubkey, update)
            signed = sign_proposal_header(key, header)
            self.sign_ops += 1
            return signed

    async def _record_signing(
        self,
        chain_id: int,
        owner: str,
        pubkey: bytes,
        update: Callable[[SlashingProtectionRecord], SlashingProtectionRecord],
    ) -> None:
        """Check and store the record in one durable transaction, counting the signature to come.

        The check runs on the record as stored, inside the write transaction: no
        cached copy can be stale, even with a second signer on the same database.
        """
        try:
            await self.store.update_protection_record(chain_id, pubkey, update, self.now(), sign_ops=1)
        except SlashingProtectionError as refusal:
            log.info("chain %d: refused to sign for %s: %s", chain_id, owner, refusal)
            raise

    # --- EIP-3076 interchange -------------------------------------------------------

    async def export_protection(self, chain_id: int, owner: str, genesis_hash: bytes) -> dict[str, Any]:
        """The owner's record as an EIP-3076 (version 5) interchange document.

        ``genesis_hash`` (the chain's genesis block hash) becomes its
        ``genesis_validators_root``.
        """
        record = await self.protection_record(chain_id, owner)
        document: dict[str, Any] = json.loads(export_interchange([record], genesis_hash))
        return document

    async def import_protection(
        self, chain_id: int, owner: str, text: str, genesis_hash: bytes
    ) -> SlashingProtectionRecord:
        """Merge an EIP-3076 file's entries for the owner's validator into its record; returns the result.

        Entries for other validators are ignored (each member imports their own);
        the file must be for this chain's genesis. Nothing is merged if any entry is invalid.
        """
        pubkey = await self.validator_key(chain_id, owner)

        def merge(record: SlashingProtectionRecord) -> SlashingProtectionRecord:
            return import_interchange(text, genesis_hash, {pubkey: record})[pubkey]

        async with self._lock(chain_id, owner):
            return await self.store.update_protection_record(chain_id, pubkey, merge, self.now())

    # --- deposits and exits (not slashable: no record needed) ---------------------------

    async def sign_deposit(
        self, chain_id: int, owner: str, wallet_key: SigningKey, amount: int, nonce: int,
        *, new_key: StoredValidatorKey | None = None,
    ) -> Deposit:
        """A deposit from the owner's wallet into the owner's validator, with its proof of possession.

        ``new_key`` (from ``new_validator_key``, not stored yet): sign with that key instead, for a
        first deposit whose key is stored together with the deposit (then ``adopt`` it)."""
        if new_key is not None:
            if new_key.owner != owner:
                raise ValidatorKeyError(f"the new validator key is {new_key.owner}'s, not {owner}'s")
            key = open_key(self._master_key, new_key.sealed_key, validator_key_aad(chain_id, owner))
            return make_deposit(wallet_key, key, amount, nonce, chain_id)
        async with self._lock(chain_id, owner):
            key = await self._open(chain_id, owner)
        return make_deposit(wallet_key, key, amount, nonce, chain_id)

    async def sign_exit(self, chain_id: int, owner: str, validator_index: int, epoch: int) -> VoluntaryExit:
        """A voluntary exit for the owner's validator."""
        async with self._lock(chain_id, owner):
            key = await self._open(chain_id, owner)
        return make_voluntary_exit(key, validator_index, epoch, chain_id)
