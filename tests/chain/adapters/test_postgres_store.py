"""What only the PostgreSQL backend has to get right: 64-bit ids, per-chain write locks, the translated schema.

Two ``Store`` objects on one database stand for two bot processes: each has its own connection pool,
so nothing in Python orders their transactions; only the database's locks do.
"""

from __future__ import annotations

import asyncio
import sqlite3

import asyncpg
import pytest

from bot.storage import EpochMessageRepository, StoredWebhook, WebhookRepository
from chain.adapters.storage import MIGRATIONS, Store, StoredWallet
from chain.adapters.storage.postgres import to_postgres_placeholders
from chain.consensus.transition import process_block
from chain.errors import StaleBlockError
from chain.params import REGTEST
from cogs.services import EpochMessage
from tests.chainkit import genesis_block, key, mine, new_chain

MINER = key("miner")
OTHER = key("other")
# Discord snowflakes: well past 2^31 (PostgreSQL's INTEGER), within 2^63.
GUILD = 1_187_654_321_098_765_432
CHANNEL = 1_187_654_321_098_765_433
MESSAGE = 1_187_654_321_098_765_434
WEBHOOK = 1_187_654_321_098_765_435


@pytest.fixture
async def store(postgres_url):
    s = await Store.open(postgres_url)
    yield s
    await s.close()


async def create(store, chain_id):
    await store.create_chain(chain_id, REGTEST, genesis_block(REGTEST, chain_id), 0)
    return new_chain(REGTEST, chain_id=chain_id)


def next_block(state, miner):
    block = mine(state, miner.public_key, apply=False)
    return block, process_block(state, block, block.header.time)


async def waiting_locks(url: str) -> int:
    """Lock requests some session of this database is waiting for right now."""
    connection = await asyncpg.connect(url)
    try:
        return int(await connection.fetchval(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
            "WHERE NOT l.granted AND d.datname = current_database()"
        ))
    finally:
        await connection.close()


async def until_waiting_or_done(url: str, task: asyncio.Task) -> bool:
    """Whether ``task`` came to wait on a lock (True) or finished first (False); polls, never times out."""
    while not task.done():
        if await waiting_locks(url):
            return True
        await asyncio.sleep(0.01)
    return False


def test_placeholders_are_numbered_outside_quoted_text():
    assert to_postgres_placeholders("SELECT a FROM t WHERE b = ? AND c IN (?, ?)") == (
        "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)"
    )
    assert to_postgres_placeholders("SELECT '?', \"a?\" FROM t WHERE x = ?") == "SELECT '?', \"a?\" FROM t WHERE x = $1"


async def test_discord_sized_ids_round_trip(store):
    state = await create(store, GUILD)
    block, effects = next_block(state, MINER)
    await store.append_block(GUILD, block, effects, [], 5)
    await store.wallets.insert(GUILD, StoredWallet(str(CHANNEL), MINER.public_key, b"sealed"), 7)
    await WebhookRepository(store.db).set(StoredWebhook(GUILD, CHANNEL, WEBHOOK, b"sealed-url", None), 9)
    await EpochMessageRepository(store.db).set_epoch_message(EpochMessage(GUILD, CHANNEL, MESSAGE, 3), 9)

    assert await store.chains.chain_ids() == [GUILD]
    assert (await store.load_chain(GUILD)).blocks[-1].hash() == block.hash()
    assert (await store.wallets.get(GUILD, str(CHANNEL))).pubkey == MINER.public_key
    assert await WebhookRepository(store.db).get(GUILD) == StoredWebhook(GUILD, CHANNEL, WEBHOOK, b"sealed-url", None)
    assert await EpochMessageRepository(store.db).get_epoch_message(GUILD) == EpochMessage(GUILD, CHANNEL, MESSAGE, 3)
    # No 32-bit integer column is left for an id to overflow later.
    narrow = await store.db.fetchall(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND data_type IN ('integer', 'smallint')"
    )
    assert narrow == [("schema_version", "version")]


@pytest.mark.parametrize("server_default", ["read committed", "repeatable read"])
async def test_two_writers_to_one_chain_serialize_and_the_tip_cannot_fork(postgres_url, monkeypatch, server_default):
    """Two processes extend the same tip at the same moment: the second waits for the first's commit on the
    chain's advisory lock, then finds the tip moved (StaleBlockError), never a fork or a driver error.
    Whatever isolation the server defaults to: at REPEATABLE READ the second writer's snapshot would predate
    the first's commit, so the store names READ COMMITTED itself."""
    admin = await asyncpg.connect(postgres_url)
    try:
        database = await admin.fetchval("SELECT current_database()")
        await admin.execute(f"ALTER DATABASE \"{database}\" SET default_transaction_isolation = '{server_default}'")
    finally:
        await admin.close()
    store = await Store.open(postgres_url)  # connections opened after the change take the default
    state = await create(store, GUILD)
    other_process = await Store.open(postgres_url)
    first, first_effects = next_block(state, MINER)
    second, second_effects = next_block(state, OTHER)  # a different block on the same tip

    checked, release = asyncio.Event(), asyncio.Event()
    check = store.blocks.check_extends_tip

    async def check_then_hold(tx, chain_id, block, height):
        await check(tx, chain_id, block, height)
        checked.set()
        await release.wait()  # the first writer sits between its check and its append

    monkeypatch.setattr(store.blocks, "check_extends_tip", check_then_hold)
    try:
        winner = asyncio.create_task(store.append_block(GUILD, first, first_effects, [], 1))
        await checked.wait()
        loser = asyncio.create_task(other_process.append_block(GUILD, second, second_effects, [], 1))
        assert await until_waiting_or_done(postgres_url, loser)  # it waits: it did not check the tip yet
        release.set()
        await winner
        with pytest.raises(StaleBlockError):
            await loser
        heights = await store.db.fetchall("SELECT height, hash FROM blocks WHERE chain_id = ? ORDER BY height",
                                          (GUILD,))
        assert heights == [(0, state.hashes[0]), (1, first.hash())]
        assert [e.block_hash for e in await store.tree.entries(GUILD)] == [state.hashes[0], first.hash()]
    finally:
        release.set()
        await other_process.close()
        await store.close()


async def test_writers_to_two_chains_do_not_wait_for_each_other(postgres_url, store):
    """A transaction held open on one server's chain does not hold up a commit on another's."""
    busy_state = await create(store, GUILD)
    quiet_state = await create(store, GUILD + 1)
    other_process = await Store.open(postgres_url)
    block, effects = next_block(quiet_state, MINER)
    try:
        async with store.db.transaction(GUILD) as tx:
            await store.blocks.tip(tx, GUILD)  # chain GUILD's lock is held, its transaction open
            append = asyncio.create_task(other_process.append_block(GUILD + 1, block, effects, [], 1))
            assert not await until_waiting_or_done(postgres_url, append)
            await append  # committed while the other chain's transaction is still open
            # The same chain would wait: proof the lock above is really held.
            same_block, same_effects = next_block(busy_state, MINER)
            same = asyncio.create_task(other_process.append_block(GUILD, same_block, same_effects, [], 1))
            assert await until_waiting_or_done(postgres_url, same)
        await same
        assert await store.blocks.tip_height(GUILD + 1) == 1
        assert await store.blocks.tip_height(GUILD) == 1
    finally:
        await other_process.close()


async def test_migrations_reach_the_same_schema_on_both_backends(postgres_url, tmp_path):
    lite = await Store.open(tmp_path / "schema.sqlite3")
    pg = await Store.open(postgres_url)
    try:
        latest = MIGRATIONS[-1][0]
        assert await lite.db.schema_version() == await pg.db.schema_version() == latest
        versions = await pg.db.fetchall("SELECT version FROM schema_version ORDER BY version")
        assert [v for (v,) in versions] == [v for v, _ in MIGRATIONS]

        with sqlite3.connect(tmp_path / "schema.sqlite3") as db:
            tables = [t for (t,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
            lite_columns = {t: [r[1] for r in db.execute(f"PRAGMA table_info({t})")] for t in tables}
            lite_indexes = {i for (i,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")}
        rows = await pg.db.fetchall(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "ORDER BY table_name, ordinal_position"
        )
        pg_columns: dict[str, list[str]] = {}
        for table, column in rows:
            pg_columns.setdefault(table, []).append(column)
        assert pg_columns == lite_columns
        pg_indexes = {i for (i,) in await pg.db.fetchall(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")}
        assert lite_indexes and lite_indexes <= pg_indexes
    finally:
        await lite.close()
        await pg.close()


async def test_counters_add_up_through_the_upsert(store):
    """``SET x = energy.x + excluded.x``: a bare ``x`` there is ambiguous to PostgreSQL."""
    await store.energy.add(GUILD, pow_cpu_ns=5, pos_sign_ops=1)
    await store.energy.add(GUILD, pow_cpu_ns=7, pos_verify_ops=2)
    counters = await store.energy.counters(GUILD)
    assert (counters.pow_cpu_ns, counters.pos_sign_ops, counters.pos_verify_ops) == (12, 1, 2)


async def test_back_fills_of_migrations_7_10_and_13_run_on_postgres(postgres_url):
    """A database taken back to before migration 7 comes back the same: display hashes and txids filled by
    the SQL function, the block tree by the Python step (the same work and chain work the store wrote)."""
    from chain.hashing import hash_to_display
    from tests.chain.adapters.test_store import UNDO_MIGRATIONS

    store = await Store.open(postgres_url)
    state = await create(store, GUILD)
    for _ in range(3):
        block, effects = next_block(state, MINER)
        await store.append_block(GUILD, block, effects, [], 1)
        state.apply(block, effects)
    coinbase = block.coinbase.txid()
    before = [(e.block_hash, e.parent_hash, e.height, e.work, e.chain_work) for e in await store.tree.entries(GUILD)]
    await store.close()
    connection = await asyncpg.connect(postgres_url)
    try:
        for version in sorted(UNDO_MIGRATIONS, reverse=True):
            for statement in UNDO_MIGRATIONS[version]:
                await connection.execute(statement)
        await connection.execute("DELETE FROM schema_version WHERE version >= 7")
    finally:
        await connection.close()

    store = await Store.open(postgres_url)
    try:
        assert await store.db.schema_version() == MIGRATIONS[-1][0]
        count, found = await store.blocks.find_blocks_by_hash_prefix(GUILD, hash_to_display(state.hashes[2])[:8], 5)
        assert (count, found) == (1, [(2, state.hashes[2])])
        count, txs = await store.blocks.find_transactions_by_txid_prefix(GUILD, hash_to_display(coinbase)[:10], 5)
        assert count == 1 and txs[0].txid == coinbase
        after = [(e.block_hash, e.parent_hash, e.height, e.work, e.chain_work) for e in await store.tree.entries(GUILD)]
        assert after == before and len(after) == 4
    finally:
        await store.close()


async def test_two_processes_signing_for_one_validator_never_release_a_slashable_pair(postgres_url, store, monkeypatch):
    """The EIP-3076 read-modify-write across processes: the second signer waits on the chain's lock while
    the first sits between reading the record and saving it, then reads the saved vote and refuses."""
    from chain.errors import SlashingProtectionError
    from tests.chain.adapters.test_signer import CHAIN, make_signer, vote

    first = make_signer(store)
    other_process = await Store.open(postgres_url)
    second = make_signer(other_process)
    await first.validator_key(CHAIN, "alice")
    reached, release = asyncio.Event(), asyncio.Event()
    save = store.protection.save

    async def held_save(*args, **kwargs):
        reached.set()
        await release.wait()
        await save(*args, **kwargs)

    monkeypatch.setattr(store.protection, "save", held_save)
    try:
        signing = asyncio.create_task(first.sign_attestation(CHAIN, "alice", vote(2, 5, "A")))
        await reached.wait()
        conflicting = asyncio.create_task(second.sign_attestation(CHAIN, "alice", vote(2, 5, "B")))
        assert await until_waiting_or_done(postgres_url, conflicting)
        release.set()
        await signing
        with pytest.raises(SlashingProtectionError):
            await conflicting
        pubkey = await second.validator_key(CHAIN, "alice")
        assert (await other_process.protection.get(CHAIN, pubkey)).highest_attestation.target_epoch == 5
    finally:
        release.set()
        await other_process.close()


async def test_two_processes_starting_at_once_migrate_once(postgres_url):
    """Checking the schema version and migrating is one transaction under the global advisory key:
    the second process waits, then finds the schema current and runs nothing."""
    stores = await asyncio.gather(Store.open(postgres_url), Store.open(postgres_url))
    try:
        versions = await stores[0].db.fetchall("SELECT version FROM schema_version ORDER BY version")
        assert [v for (v,) in versions] == [v for v, _ in MIGRATIONS]  # each once
    finally:
        for s in stores:
            await s.close()
