"""Store migration 4: validator keys, slashing protection, beacon snapshots, settings, energy."""

import sqlite3

import asyncpg
import pytest

from chain.adapters.storage import (
    MIGRATIONS,
    EnergyCounters,
    Store,
    StoredValidatorKey,
    decode_protection_record,
    encode_protection_record,
)
from chain.consensus.transition import process_block
from chain.errors import (
    DoubleProposalRefusedError,
    EncodingError,
    EnergyError,
    StaleBlockError,
)
from chain.params import REGTEST
from chain.pos.slashing_protection import (
    SignedAttestationEntry,
    SignedBlockEntry,
    SlashingProtectionRecord,
)
from tests.chainkit import genesis_block, key, mine, new_chain

MINER = key("miner")
VALIDATOR = key("validator").public_key
ROOT_A = bytes(range(32))
ROOT_B = bytes(range(1, 33))


@pytest.fixture
async def store(database_target):
    s = await Store.open(database_target)
    yield s
    await s.close()


async def create(store, chain_id=1, snapshot=None):
    await store.create_chain(chain_id, REGTEST, genesis_block(REGTEST, chain_id), 0, beacon_snapshot=snapshot)
    return new_chain(REGTEST, chain_id=chain_id)


def next_block(state):
    block = mine(state, MINER.public_key, apply=False)
    return block, process_block(state, block, block.header.time)


def full_record(pubkey=VALIDATOR):
    return SlashingProtectionRecord(
        pubkey, SignedBlockEntry(7, ROOT_A), SignedAttestationEntry(2, 5, None), highest_source_epoch=4
    )


async def test_migration_4_runs_once_on_a_version_3_database(tmp_path):
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for version, statements in MIGRATIONS[:3]:
        for statement in statements:
            db.execute(statement)
        db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
    db.commit()
    db.close()

    store = await Store.open(path)
    assert await store.db.schema_version() == MIGRATIONS[-1][0]
    await store.close()
    again = await Store.open(path)
    assert await again.db.schema_version() == MIGRATIONS[-1][0]
    assert await again.energy.counters(1) == EnergyCounters()
    assert await again.validator_keys.all(1) == []
    assert await again.snapshots.latest(1) is None
    await again.close()


# --- validator keys -----------------------------------------------------------


async def test_validator_key_insert_is_first_writer_wins_and_per_chain(store):
    first = StoredValidatorKey("alice", b"\x01" * 32, b"sealed-1")
    assert await store.validator_keys.get(1, "alice") is None
    assert await store.validator_keys.insert(1, first, 10) == first
    # A second key for the same member and chain is not stored: the first one is returned.
    assert await store.validator_keys.insert(1, StoredValidatorKey("alice", b"\x02" * 32, b"sealed-2"), 11) == first
    assert await store.validator_keys.get(1, "alice") == first
    other_chain = StoredValidatorKey("alice", b"\x03" * 32, b"sealed-3")
    assert await store.validator_keys.insert(2, other_chain, 12) == other_chain
    bob = await store.validator_keys.insert(1, StoredValidatorKey("bob", b"\x04" * 32, b"sealed-4"), 13)
    assert await store.validator_keys.all(1) == [first, bob]


async def test_invalid_second_owner_of_one_validator_key(store):
    await store.validator_keys.insert(1, StoredValidatorKey("alice", b"\x01" * 32, b"s"), 10)
    # Each backend's own unique-constraint error: a programming error, never caught by the engine.
    with pytest.raises((sqlite3.IntegrityError, asyncpg.UniqueViolationError)):
        await store.validator_keys.insert(1, StoredValidatorKey("bob", b"\x01" * 32, b"s"), 10)


# --- slashing protection ----------------------------------------------------------


@pytest.mark.parametrize(
    "record",
    [
        SlashingProtectionRecord(VALIDATOR),
        full_record(),
        SlashingProtectionRecord(VALIDATOR, SignedBlockEntry(0, None)),
        SlashingProtectionRecord(VALIDATOR, None, SignedAttestationEntry(0, 0, ROOT_B), 0),
    ],
)
def test_protection_record_encoding_round_trips(record):
    assert decode_protection_record(encode_protection_record(record)) == record


@pytest.mark.parametrize(
    "text",
    ["", "[]", '{"version": 2}', '{"version": 1, "pubkey": "zz"}', '{"version": 1, "pubkey": "00"}'],
)
def test_invalid_stored_record_is_an_error_not_an_empty_record(text):
    with pytest.raises(EncodingError):
        decode_protection_record(text)


async def test_protection_record_save_load_and_overwrite(store):
    assert await store.protection.get(1, VALIDATOR) is None
    await store.save_protection_record(1, SlashingProtectionRecord(VALIDATOR, SignedBlockEntry(3, ROOT_A)), 5)
    await store.save_protection_record(1, full_record(), 6, sign_ops=1)
    assert await store.protection.get(1, VALIDATOR) == full_record()
    assert await store.protection.get(2, VALIDATOR) is None
    assert (await store.energy.counters(1)).pos_sign_ops == 1


async def test_record_and_signature_count_are_one_transaction(store, monkeypatch):
    async def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(store.energy, "add", explode)
    with pytest.raises(RuntimeError):
        await store.save_protection_record(1, full_record(), 6, sign_ops=1)
    assert await store.protection.get(1, VALIDATOR) is None


async def test_update_protection_record_checks_and_writes_in_one_transaction(store):
    def raise_block(record):
        return SlashingProtectionRecord(record.pubkey, SignedBlockEntry(9, ROOT_B))

    assert await store.update_protection_record(1, VALIDATOR, raise_block, 5, sign_ops=1) == (
        SlashingProtectionRecord(VALIDATOR, SignedBlockEntry(9, ROOT_B))
    )
    seen = []

    def refuse(record):
        seen.append(record)
        raise DoubleProposalRefusedError("refused")

    with pytest.raises(DoubleProposalRefusedError):
        await store.update_protection_record(1, VALIDATOR, refuse, 6, sign_ops=1)
    assert seen == [SlashingProtectionRecord(VALIDATOR, SignedBlockEntry(9, ROOT_B))]
    assert await store.protection.get(1, VALIDATOR) == seen[0]
    assert (await store.energy.counters(1)).pos_sign_ops == 1  # the refused signature is not counted
    with pytest.raises(ValueError):
        await store.update_protection_record(1, VALIDATOR, lambda r: SlashingProtectionRecord(ROOT_A), 7)
    assert await store.protection.get(1, VALIDATOR) == seen[0]


async def test_protection_records_survive_reopen(tmp_path):
    path = tmp_path / "records.sqlite3"
    first = await Store.open(path)
    await first.save_protection_record(1, full_record(), 6)
    await first.close()
    second = await Store.open(path)
    assert await second.protection.get(1, VALIDATOR) == full_record()
    await second.close()


# --- beacon snapshots ---------------------------------------------------------------


async def test_beacon_snapshot_commits_with_its_block(store):
    state = await create(store, snapshot=b"genesis-state")
    assert await store.snapshots.latest(1) == (0, b"genesis-state")
    block, effects = next_block(state)
    await store.append_block(1, block, effects, [], 100, beacon_snapshot=b"state-1")
    state.apply(block, effects)
    assert await store.snapshots.latest(1) == (1, b"state-1")
    # The older snapshot went in the same commit: the table holds one state per chain.
    assert await store.snapshots.get(1, 0) is None
    # Existing callers, without a snapshot, keep working; the latest stays the last one written.
    block, effects = next_block(state)
    await store.append_block(1, block, effects, [], 100)
    assert await store.blocks.tip_height(1) == 2
    assert await store.snapshots.latest(1) == (1, b"state-1")
    assert await store.snapshots.get(1, 2) is None


async def test_no_snapshot_without_its_block(store, monkeypatch):
    state = await create(store)
    assert await store.snapshots.latest(1) is None
    stale, stale_effects = next_block(state)
    block, effects = next_block(state)
    await store.append_block(1, block, effects, [], 100, beacon_snapshot=b"won")
    with pytest.raises(StaleBlockError):
        await store.append_block(1, stale, stale_effects, [], 100, beacon_snapshot=b"lost")
    assert await store.snapshots.latest(1) == (1, b"won")

    state.apply(block, effects)
    block, effects = next_block(state)

    async def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(store.outbox_writer, "insert_events", explode)
    with pytest.raises(RuntimeError):
        await store.append_block(1, block, effects, [], 100, beacon_snapshot=b"rolled back")
    assert await store.snapshots.latest(1) == (1, b"won")
    assert await store.blocks.tip_height(1) == 1


async def test_prune_beacon_snapshots(store):
    state = await create(store, snapshot=b"s0")
    for _ in range(3):
        block, effects = next_block(state)
        # Blocks written without a snapshot leave the older ones for prune_beacon_snapshots.
        await store.append_block(1, block, effects, [], 100)
        state.apply(block, effects)
    assert await store.snapshots.prune(1, below_height=3) == 1
    assert await store.snapshots.get(1, 0) is None
    assert await store.snapshots.latest(1) is None


async def test_a_block_with_a_snapshot_prunes_the_older_ones_in_its_commit(store):
    state = await create(store, snapshot=b"s0")
    for height in (1, 2, 3):
        block, effects = next_block(state)
        await store.append_block(1, block, effects, [], 100, beacon_snapshot=f"s{height}".encode())
        state.apply(block, effects)
    assert [await store.snapshots.get(1, h) for h in range(4)] == [None, None, None, b"s3"]
    assert await store.snapshots.latest(1) == (3, b"s3")


async def test_invalid_snapshot_type(store):
    with pytest.raises(TypeError):
        await store.create_chain(1, REGTEST, genesis_block(REGTEST, 1), 0, beacon_snapshot="text")  # type: ignore
    assert await store.chains.chain_ids() == []


# --- settings and energy ---------------------------------------------------------------


async def test_auto_attest_setting(store):
    assert await store.validator_settings.get_auto_attest(1, "alice") is None
    await store.validator_settings.set_auto_attest(1, "alice", True)
    await store.validator_settings.set_auto_attest(1, "bob", True)
    await store.validator_settings.set_auto_attest(1, "bob", False)
    await store.validator_settings.set_auto_attest(2, "carol", True)
    assert await store.validator_settings.get_auto_attest(1, "alice") is True
    assert await store.validator_settings.get_auto_attest(1, "bob") is False
    assert await store.validator_settings.auto_attesters(1) == ["alice"]


async def test_chaos_mode_is_off_until_turned_on_and_says_what_it_was(store):
    # Its row is shared with the bot's settings: tests/bot/test_storage.py checks both keep their keys.
    assert await store.chaos_mode.get_chaos_mode(1) is False
    assert await store.chaos_mode.set_chaos_mode(1, True) is False
    assert await store.chaos_mode.get_chaos_mode(1) is True
    assert await store.chaos_mode.set_chaos_mode(1, True) is True
    assert await store.chaos_mode.set_chaos_mode(1, False) is True
    assert await store.chaos_mode.get_chaos_mode(1) is False
    assert await store.chaos_mode.get_chaos_mode(2) is False


async def test_energy_counters_add_up(store):
    assert await store.energy.counters(1) == EnergyCounters()
    await store.energy.add(1, pow_cpu_ns=1_500)
    await store.energy.add(1, pow_cpu_ns=500, pos_sign_ops=2, pos_verify_ops=3)
    await store.energy.add(2, pos_verify_ops=1)
    assert await store.energy.counters(1) == EnergyCounters(2_000, 2, 3)
    assert await store.energy.counters(2) == EnergyCounters(0, 0, 1)


@pytest.mark.parametrize("bad", [{"pow_cpu_ns": -1}, {"pos_sign_ops": 1.5}, {"pos_verify_ops": True}])
async def test_invalid_energy_increment_changes_nothing(store, bad):
    await store.energy.add(1, pow_cpu_ns=10)
    with pytest.raises(EnergyError):
        await store.energy.add(1, **bad)
    assert await store.energy.counters(1) == EnergyCounters(10, 0, 0)


# --- reset ---------------------------------------------------------------------------------


async def test_delete_chain_drops_validators_snapshots_and_energy_but_keeps_server_settings(store):
    state = await create(store, snapshot=b"s0")
    block, effects = next_block(state)
    await store.append_block(1, block, effects, [], 100, beacon_snapshot=b"s1")
    other = await create(store, chain_id=2, snapshot=b"other")
    validator = StoredValidatorKey("alice", VALIDATOR, b"sealed")
    await store.validator_keys.insert(1, validator, 10)
    await store.save_protection_record(1, full_record(), 10, sign_ops=1)
    await store.validator_settings.set_auto_attest(1, "alice", True)
    await store.chaos_mode.set_chaos_mode(1, True)
    await store.energy.add(1, pow_cpu_ns=99)
    await store.energy.add(2, pow_cpu_ns=7)

    await store.delete_chain(1)

    assert await store.snapshots.latest(1) is None
    assert await store.energy.counters(1) == EnergyCounters()
    assert await store.validator_keys.get(1, "alice") is None
    assert await store.protection.get(1, VALIDATOR) is None
    assert await store.validator_settings.get_auto_attest(1, "alice") is None
    assert await store.chaos_mode.get_chaos_mode(1) is True  # server settings outlive a reset, as before
    # The other chain is untouched.
    assert other.chain_id == 2
    assert await store.snapshots.latest(2) == (0, b"other")
    assert await store.energy.counters(2) == EnergyCounters(7, 0, 0)
    # A new chain under the same id starts with no snapshots and no counters.
    await create(store)
    assert await store.snapshots.latest(1) is None
    assert await store.energy.counters(1) == EnergyCounters()
