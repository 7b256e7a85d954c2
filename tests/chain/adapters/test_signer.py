"""The custodial validator signer: EIP-3076 refusals, durability, chaos mode, sealing, export."""

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from chain.adapters.signer import ValidatorSigner, measure_signature_costs_ns, validator_key_aad
from chain.adapters.storage import Store, StoredValidatorKey
from chain.errors import (
    AttestationError,
    BlockSlotTooLowError,
    DoubleProposalRefusedError,
    DoubleVoteRefusedError,
    EnergyError,
    InterchangeGenesisMismatchError,
    SlashingProtectionError,
    SourceEpochTooLowError,
    SurroundVoteRefusedError,
    TargetEpochTooLowError,
    ValidatorKeyError,
    WalletError,
    WrongChainError,
)
from chain.keys import open_key
from chain.params import REGTEST
from chain.pos.attestation import (
    AttestationData,
    AttesterSlashing,
    Checkpoint,
    Offence,
    ProposalHeader,
    ProposerSlashing,
    check_attestation_signature,
    check_attester_slashing,
    check_proposal_signature,
    check_proposer_slashing,
)
from chain.pos.slashing_protection import SlashingProtectionRecord, import_interchange
from tests.chainkit import genesis_block

CHAIN = 9
MASTER = b"\x42" * 32
GENESIS = hashlib.sha256(b"signer test genesis").digest()
ROOT = Path(__file__).resolve().parents[3]


def root(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def vote(source: int, target: int, head: str = "A", chain_id: int = CHAIN) -> AttestationData:
    return AttestationData(
        chain_id, target * 8, root(head), Checkpoint(source, root(f"cp{source}")), Checkpoint(target, root(head))
    )


def block(proposer: bytes, slot: int, body: str = "one", chain_id: int = CHAIN) -> ProposalHeader:
    return ProposalHeader(chain_id, slot, proposer, root("parent"), root(body))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000

    def __call__(self) -> float:
        self.now += 1
        return float(self.now)


def make_signer(store: Store) -> ValidatorSigner:
    return ValidatorSigner(store, clock=FakeClock(), randomness=os.urandom, master_key=MASTER)


@pytest.fixture
async def store(database_target):
    s = await Store.open(database_target)
    yield s
    await s.close()


@pytest.fixture
def signer(store):
    return make_signer(store)


# --- keys ---------------------------------------------------------------------


async def test_one_validator_key_per_member_and_chain(signer, store):
    alice = await signer.validator_key(CHAIN, "alice")
    assert await signer.validator_key(CHAIN, "alice") == alice
    assert await signer.validator_key(CHAIN, "bob") != alice
    assert await signer.validator_key(CHAIN + 1, "alice") != alice
    # Another signer on the same store (a restart) finds the same key.
    assert await make_signer(store).validator_key(CHAIN, "alice") == alice
    assert [k.owner for k in await store.validator_keys.all(CHAIN)] == ["alice", "bob"]


async def test_concurrent_first_use_creates_one_key(signer, store):
    keys = await asyncio.gather(*(make_signer(store).validator_key(CHAIN, "alice") for _ in range(5)))
    assert len(set(keys)) == 1
    assert len(await store.validator_keys.all(CHAIN)) == 1


async def test_sealed_at_rest_with_a_validator_aad(tmp_path):
    path = tmp_path / "sealed.sqlite3"
    store = await Store.open(path)
    signer = make_signer(store)
    pubkey = await signer.validator_key(CHAIN, "alice")
    await signer.sign_attestation(CHAIN, "alice", vote(0, 1))
    stored = await store.validator_keys.get(CHAIN, "alice")
    seed = open_key(MASTER, stored.sealed_key, validator_key_aad(CHAIN, "alice")).seed
    # Opening needs the exact purpose and owner: not a wallet's AAD, not another member's.
    with pytest.raises(WalletError):
        open_key(MASTER, stored.sealed_key, f"consensus-playground/wallet/{CHAIN}/alice".encode())
    with pytest.raises(WalletError):
        open_key(MASTER, stored.sealed_key, validator_key_aad(CHAIN, "bob"))
    await store.close()

    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("sealed.sqlite3"))
    assert pubkey in raw  # the right files were read
    assert seed not in raw


async def test_a_key_sealed_for_someone_else_is_refused(signer, store):
    await signer.validator_key(CHAIN, "alice")
    alice_row = await store.validator_keys.get(CHAIN, "alice")
    # Simulate a row copied under another owner's name: its AAD no longer matches.
    await store.validator_keys.insert(CHAIN, StoredValidatorKey("mallory", os.urandom(32), alice_row.sealed_key), 1)
    with pytest.raises(WalletError, match="belongs to someone else"):
        await make_signer(store).sign_attestation(CHAIN, "mallory", vote(0, 1))


# --- honest signing and refusals ----------------------------------------------------


async def test_an_honest_sequence_is_signed_and_verifies(signer, store):
    pubkey = await signer.validator_key(CHAIN, "alice")
    for source, target in [(0, 1), (0, 2), (1, 3), (3, 4), (3, 5), (5, 6), (6, 9)]:
        signed = await signer.sign_attestation(CHAIN, "alice", vote(source, target))
        assert signed.validator == pubkey
        check_attestation_signature(signed)
    for slot in (3, 4, 10):
        check_proposal_signature(await signer.sign_proposal(CHAIN, "alice", block(pubkey, slot)))
    record = await store.protection.get(CHAIN, pubkey)
    assert record.highest_attestation.target_epoch == 9
    assert record.highest_source_epoch == 6
    assert record.highest_block.slot == 10
    assert signer.sign_ops == 10
    assert (await store.energy.counters(CHAIN)).pos_sign_ops == 10


async def test_signing_the_same_message_again_is_allowed(signer):
    pubkey = await signer.validator_key(CHAIN, "alice")
    first = await signer.sign_attestation(CHAIN, "alice", vote(0, 1))
    assert await signer.sign_attestation(CHAIN, "alice", vote(0, 1)) == first
    header = block(pubkey, 4)
    assert await signer.sign_proposal(CHAIN, "alice", header) == await signer.sign_proposal(CHAIN, "alice", header)


@pytest.mark.parametrize(
    ("signed", "refused", "error"),
    [
        ((2, 5), (2, 5, "B"), DoubleVoteRefusedError),
        ((2, 5), (3, 5), DoubleVoteRefusedError),
        ((2, 5), (1, 6), SurroundVoteRefusedError),  # the new vote surrounds the old one
        ((2, 5), (3, 4), SurroundVoteRefusedError),  # the new vote is surrounded by the old one
        ((2, 5), (1, 4), SourceEpochTooLowError),
        ((2, 5), (2, 4), TargetEpochTooLowError),
        ((2, 5), (1, 5), DoubleVoteRefusedError),
        ((4, 5), (3, 7), SurroundVoteRefusedError),
    ],
)
async def test_conflicting_votes_are_refused_with_the_offence(signer, store, signed, refused, error):
    await signer.sign_attestation(CHAIN, "alice", vote(*signed))
    before = await store.protection.get(CHAIN, await signer.validator_key(CHAIN, "alice"))
    with pytest.raises(error):
        await signer.sign_attestation(CHAIN, "alice", vote(*refused))
    assert await store.protection.get(CHAIN, before.pubkey) == before
    assert signer.sign_ops == 1 and (await store.energy.counters(CHAIN)).pos_sign_ops == 1


async def test_refusal_names_the_offence(signer):
    await signer.sign_attestation(CHAIN, "alice", vote(2, 5))
    with pytest.raises(SurroundVoteRefusedError, match="would surround the vote 2 → 5"):
        await signer.sign_attestation(CHAIN, "alice", vote(1, 6))
    with pytest.raises(DoubleVoteRefusedError, match="double vote"):
        await signer.sign_attestation(CHAIN, "alice", vote(2, 5, "B"))


async def test_double_proposal_and_earlier_slot_are_refused(signer):
    pubkey = await signer.validator_key(CHAIN, "alice")
    await signer.sign_proposal(CHAIN, "alice", block(pubkey, 7))
    with pytest.raises(DoubleProposalRefusedError, match="double proposal"):
        await signer.sign_proposal(CHAIN, "alice", block(pubkey, 7, "two"))
    with pytest.raises(BlockSlotTooLowError):
        await signer.sign_proposal(CHAIN, "alice", block(pubkey, 6))


async def test_invalid_messages_for_another_chain_or_proposer(signer):
    bob = await signer.validator_key(CHAIN, "bob")
    alice = await signer.validator_key(CHAIN, "alice")
    with pytest.raises(WrongChainError):
        await signer.sign_attestation(CHAIN, "alice", vote(0, 1, chain_id=CHAIN + 1))
    with pytest.raises(WrongChainError):
        await signer.sign_proposal(CHAIN, "alice", block(alice, 1, chain_id=CHAIN + 1))
    for chaos in (False, True):
        with pytest.raises(ValidatorKeyError, match="names proposer"):
            await signer.sign_proposal(CHAIN, "alice", block(bob, 1), chaos=chaos)
    assert signer.sign_ops == 0


async def test_refusal_survives_a_restart(tmp_path):
    path = tmp_path / "restart.sqlite3"
    store = await Store.open(path)
    signer = make_signer(store)
    pubkey = await signer.validator_key(CHAIN, "alice")
    await signer.sign_attestation(CHAIN, "alice", vote(2, 5))
    await signer.sign_proposal(CHAIN, "alice", block(pubkey, 40))
    await store.close()

    store = await Store.open(path)
    again = make_signer(store)
    assert await again.validator_key(CHAIN, "alice") == pubkey
    with pytest.raises(DoubleVoteRefusedError):
        await again.sign_attestation(CHAIN, "alice", vote(2, 5, "B"))
    with pytest.raises(SurroundVoteRefusedError):
        await again.sign_attestation(CHAIN, "alice", vote(1, 6))
    with pytest.raises(DoubleProposalRefusedError):
        await again.sign_proposal(CHAIN, "alice", block(pubkey, 40, "two"))
    await again.sign_attestation(CHAIN, "alice", vote(5, 6))
    await store.close()


async def test_a_reset_chain_gets_a_new_key_so_old_votes_cannot_frame_it(signer, store):
    """Signing roots name the chain id, not the genesis: so a reset drops the key and its record,
    and the new chain's validator signs with a new key that no old vote can be paired with."""
    await store.create_chain(CHAIN, REGTEST, genesis_block(REGTEST, CHAIN), 0)
    old_key = await signer.validator_key(CHAIN, "alice")
    await signer.sign_attestation(CHAIN, "alice", vote(2, 5))
    await store.delete_chain(CHAIN)
    signer.forget(CHAIN)
    await store.create_chain(CHAIN, REGTEST, genesis_block(REGTEST, CHAIN), 0)
    new_key = await signer.validator_key(CHAIN, "alice")
    assert new_key != old_key
    assert await store.protection.get(CHAIN, old_key) is None
    signed = await signer.sign_attestation(CHAIN, "alice", vote(2, 5, "B"))  # epochs start over, honestly
    assert signed.validator == new_key


# --- chaos mode --------------------------------------------------------------------------


async def test_chaos_signs_a_double_vote_and_still_records_it(signer, store):
    pubkey = await signer.validator_key(CHAIN, "alice")
    first = await signer.sign_attestation(CHAIN, "alice", vote(2, 5))
    second = await signer.sign_attestation(CHAIN, "alice", vote(2, 5, "B"), chaos=True)

    verdict = check_attester_slashing(AttesterSlashing(first, second), CHAIN)
    assert verdict.offence is Offence.DOUBLE_VOTE and verdict.validator == pubkey
    record = await store.protection.get(CHAIN, pubkey)
    # Two roots for target 5 are known: neither counts as a harmless repeat any more.
    assert record.highest_attestation.target_epoch == 5 and record.highest_attestation.signing_root is None
    with pytest.raises(DoubleVoteRefusedError):
        await signer.sign_attestation(CHAIN, "alice", vote(2, 5))
    assert (await store.energy.counters(CHAIN)).pos_sign_ops == 2


@pytest.mark.parametrize(
    ("first_vote", "second_vote"),
    [((2, 5), (1, 6)), ((2, 5), (3, 4))],
    ids=["new vote surrounds", "new vote is surrounded"],
)
async def test_chaos_signs_surround_votes_in_both_directions(signer, store, first_vote, second_vote):
    first = await signer.sign_attestation(CHAIN, "alice", vote(*first_vote))
    with pytest.raises(SurroundVoteRefusedError):
        await signer.sign_attestation(CHAIN, "alice", vote(*second_vote))
    second = await signer.sign_attestation(CHAIN, "alice", vote(*second_vote), chaos=True)

    verdict = check_attester_slashing(AttesterSlashing(first, second), CHAIN)
    assert verdict.offence is Offence.SURROUND_VOTE
    # The record still refuses what either vote refuses.
    record = await store.protection.get(CHAIN, first.validator)
    assert record.highest_attestation.target_epoch == max(first_vote[1], second_vote[1])
    assert record.highest_source_epoch == max(first_vote[0], second_vote[0])
    with pytest.raises(SurroundVoteRefusedError):
        await signer.sign_attestation(CHAIN, "alice", vote(0, 7))


async def test_chaos_signs_a_double_proposal(signer, store):
    pubkey = await signer.validator_key(CHAIN, "alice")
    one = await signer.sign_proposal(CHAIN, "alice", block(pubkey, 7))
    two = await signer.sign_proposal(CHAIN, "alice", block(pubkey, 7, "two"), chaos=True)
    assert check_proposer_slashing(ProposerSlashing(one, two), CHAIN).offence is Offence.DOUBLE_PROPOSAL
    with pytest.raises(DoubleProposalRefusedError):
        await signer.sign_proposal(CHAIN, "alice", block(pubkey, 7))
    assert (await store.protection.get(CHAIN, pubkey)).highest_block.slot == 7


async def test_chaos_does_not_sign_impossible_votes(signer):
    impossible = AttestationData(CHAIN, 8, root("A"), Checkpoint(3, root("cp3")), Checkpoint(1, root("A")))
    with pytest.raises(AttestationError, match="source epoch 3 is after target epoch 1"):
        await signer.sign_attestation(CHAIN, "alice", impossible, chaos=True)
    assert signer.sign_ops == 0


async def test_chaos_is_off_unless_asked(signer):
    await signer.sign_attestation(CHAIN, "alice", vote(2, 5))
    with pytest.raises(DoubleVoteRefusedError):
        await signer.sign_attestation(CHAIN, "alice", vote(2, 5, "B"), chaos=False)
    with pytest.raises(DoubleVoteRefusedError):
        await signer.sign_attestation(CHAIN, "alice", vote(2, 5, "B"))


# --- export and import ---------------------------------------------------------------------


async def test_export_is_a_valid_eip3076_file(signer):
    pubkey = await signer.validator_key(CHAIN, "alice")
    empty = await signer.export_protection(CHAIN, "alice", GENESIS)
    assert import_interchange(json.dumps(empty), GENESIS) == {pubkey: SlashingProtectionRecord(pubkey)}

    await signer.sign_attestation(CHAIN, "alice", vote(3, 5))
    await signer.sign_proposal(CHAIN, "alice", block(pubkey, 41))
    document = await signer.export_protection(CHAIN, "alice", GENESIS)

    assert document["metadata"]["interchange_format_version"] == "5"
    assert document["data"][0]["pubkey"] == "0x" + pubkey.hex()
    assert document["data"][0]["signed_blocks"][0]["slot"] == "41"
    imported = import_interchange(json.dumps(document), GENESIS)
    assert imported == {pubkey: await signer.protection_record(CHAIN, "alice")}
    with pytest.raises(InterchangeGenesisMismatchError):
        import_interchange(json.dumps(document), root("another genesis"))


async def test_import_moves_protection_to_another_signer(tmp_path, signer):
    await signer.sign_attestation(CHAIN, "alice", vote(3, 5))
    document = json.dumps(await signer.export_protection(CHAIN, "alice", GENESIS))
    # Same key, another database (the validator moved): before the import it would sign anything.
    other_store = await Store.open(tmp_path / "other.sqlite3")
    await other_store.validator_keys.insert(CHAIN, await signer.store.validator_keys.get(CHAIN, "alice"), 1)
    other = make_signer(other_store)
    merged = await other.import_protection(CHAIN, "alice", document, GENESIS)
    assert merged == await signer.protection_record(CHAIN, "alice")
    with pytest.raises(SurroundVoteRefusedError):
        await other.sign_attestation(CHAIN, "alice", vote(2, 6))
    await other_store.close()


# --- concurrency and crashes -----------------------------------------------------------------


async def test_concurrent_conflicting_requests_are_serialized(signer, store, monkeypatch):
    await signer.validator_key(CHAIN, "alice")
    update = store.update_protection_record

    async def slow_update(*args, **kwargs):
        # A slow disk: every request is in flight at once.
        await asyncio.sleep(0.05)
        return await update(*args, **kwargs)

    monkeypatch.setattr(store, "update_protection_record", slow_update)
    results = await asyncio.gather(
        *(signer.sign_attestation(CHAIN, "alice", vote(2, 5, head)) for head in "ABCD"), return_exceptions=True
    )
    signed = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(signed) == 1 and len(refused) == 3
    assert all(isinstance(r, DoubleVoteRefusedError) for r in refused)
    # Another validator is not held up by alice's lock.
    assert (await signer.sign_attestation(CHAIN, "bob", vote(2, 5))).data.target.epoch == 5


async def test_two_signers_on_one_database_cannot_both_sign_a_conflict(signer, store):
    """The check reads the stored record inside the write transaction, not a cached copy."""
    other = make_signer(store)
    await other.validator_key(CHAIN, "alice")
    await signer.sign_attestation(CHAIN, "alice", vote(2, 5))
    with pytest.raises(DoubleVoteRefusedError):
        await other.sign_attestation(CHAIN, "alice", vote(2, 5, "B"))
    results = await asyncio.gather(
        signer.sign_attestation(CHAIN, "alice", vote(5, 6, "C")),
        other.sign_attestation(CHAIN, "alice", vote(5, 6, "D")),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["DoubleVoteRefusedError", "SignedAttestation"]


async def test_a_failed_store_write_releases_no_signature(signer, store, monkeypatch):
    await signer.validator_key(CHAIN, "alice")

    async def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(store, "update_protection_record", broken_save)
    with pytest.raises(OSError):
        await signer.sign_attestation(CHAIN, "alice", vote(2, 5))
    assert signer.sign_ops == 0
    monkeypatch.undo()
    await signer.sign_attestation(CHAIN, "alice", vote(2, 5, "B"))  # nothing was released, so no conflict


async def test_crash_never_releases_a_signature_before_its_record(database_target):
    path = database_target  # a SQLite file, then a PostgreSQL database
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.signer_crash_writer", str(path), cwd=ROOT, stdout=subprocess.PIPE
    )
    released: dict[int, bytes] = {}
    try:
        while len(released) < 40:
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().split()
            assert line, "writer exited early"
            released[int(line[1])] = bytes.fromhex(line[2])
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()

    store = await Store.open(path)
    signer = make_signer(store)
    record = await signer.protection_record(CHAIN, "alice")
    signed_up_to = -1 if record.highest_attestation is None else record.highest_attestation.target_epoch
    assert signed_up_to >= max(released), "a signature was released before its record was stored"
    # Every released vote is now refused in any conflicting form.
    for target in released:
        with pytest.raises(SlashingProtectionError):
            await signer.sign_attestation(CHAIN, "alice", vote(target - 1, target, "conflict"))
    await store.close()


def test_signature_costs_are_measured_in_cpu_time():
    sign_ns, verify_ns = measure_signature_costs_ns(50)
    assert sign_ns > 0 and verify_ns > 0
    # Ed25519 on any machine this runs on: well under 10 ms per operation.
    assert sign_ns < 10_000_000 and verify_ns < 10_000_000
    with pytest.raises(EnergyError):
        measure_signature_costs_ns(0)
