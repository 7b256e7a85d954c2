"""The store on both backends (SQLite, PostgreSQL): migrations, durability settings, atomic appends, many chains."""

import pytest

from bot.storage import OutboxRepository
from chain.adapters.storage import MIGRATIONS, Store
from chain.consensus.transition import process_block
from chain.errors import ChainExistsError, ChainNotFoundError, StaleBlockError
from chain.events import BLOCK_MINED, REWARD_PAID
from chain.params import REGTEST
from tests.chainkit import genesis_block, key, mine, new_chain

MINER = key("miner")


@pytest.fixture
async def store(database_target):
    s = await Store.open(database_target)
    yield s
    await s.close()


async def create(store, chain_id=1):
    await store.create_chain(chain_id, REGTEST, genesis_block(REGTEST, chain_id), 0)
    return new_chain(REGTEST, chain_id=chain_id)


async def append(store, state):
    block = mine(state, MINER.public_key, apply=False)
    effects = process_block(state, block, block.header.time)
    ids = await store.append_block(state.chain_id, block, effects, [], 123)
    state.apply(block, effects)
    return block, ids


async def test_migrations_and_durability_settings(store):
    assert await store.db.schema_version() == MIGRATIONS[-1][0]
    settings = await store.db.durability_settings()
    if "fsync" in settings:  # PostgreSQL: the server's settings (the test server runs without fsync)
        assert set(settings) == {"fsync", "synchronous_commit", "full_page_writes"}
        return
    assert settings["journal_mode"] == "wal"
    assert settings["synchronous"] == 2  # FULL
    assert settings["foreign_keys"] == 1


async def test_reopen_does_not_rerun_migrations(database_target):
    path = database_target
    first = await Store.open(path)
    await create(first)
    await first.close()
    second = await Store.open(path)
    assert await second.chains.chain_ids() == [1]
    await second.close()


async def test_append_writes_block_balances_index_and_events(store):
    state = await create(store)
    block, ids = await append(store, state)
    loaded = await store.load_chain(1)
    assert [b.hash() for b in loaded.blocks] == state.hashes
    assert loaded.accounts == dict(state.ledger.items())
    tx = await store.blocks.get_transaction(1, block.coinbase.txid())
    assert tx is not None and tx.amount == 50 and tx.sender is None
    events = await OutboxRepository(store.db).pending_events(1)
    assert [e.id for e in events] == ids
    assert [e.kind for e in events] == [BLOCK_MINED, REWARD_PAID]
    assert events[0].event.payload["hash"] == block.header.hash_hex()


async def test_append_is_one_transaction(store, monkeypatch):
    state = await create(store)

    async def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(store.outbox_writer, "insert_events", explode)
    with pytest.raises(RuntimeError):
        await append(store, state)
    loaded = await store.load_chain(1)
    assert len(loaded.blocks) == 1 and loaded.accounts == {}
    assert await OutboxRepository(store.db).pending_events(1) == []


async def test_invalid_append_on_a_moved_tip(store):
    state = await create(store)
    stale_block = mine(state, MINER.public_key, apply=False)
    effects = process_block(state, stale_block, stale_block.header.time)
    await append(store, state)  # another block takes height 1 first
    with pytest.raises(StaleBlockError):
        await store.append_block(1, stale_block, effects, [], 0)
    assert await store.blocks.tip_height(1) == 1


async def test_chains_are_isolated(store):
    a = await create(store, chain_id=10)
    await create(store, chain_id=20)
    await append(store, a)
    assert await store.blocks.tip_height(10) == 1
    assert await store.blocks.tip_height(20) == 0
    assert (await store.load_chain(20)).accounts == {}
    assert await OutboxRepository(store.db).pending_events(20) == []


async def test_invalid_duplicate_and_missing_chains(store):
    await create(store)
    with pytest.raises(ChainExistsError):
        await create(store)
    with pytest.raises(ChainNotFoundError):
        await store.load_chain(999)


async def test_outbox_delivery_marks(store):
    state = await create(store)
    _, ids = await append(store, state)
    await OutboxRepository(store.db).mark_delivered(ids[:1], 500)
    assert [e.id for e in await OutboxRepository(store.db).pending_events()] == ids[1:]


async def test_delete_chain_removes_its_rows(store):
    state = await create(store)
    await append(store, state)
    await store.delete_chain(1)
    assert await store.chains.chain_ids() == []
    with pytest.raises(ChainNotFoundError):
        await store.blocks.tip_height(1)


async def test_hash_prefixes_are_found_by_the_display_order_index(store):
    from chain.hashing import hash_to_display

    state = await create(store)
    for _ in range(40):
        await append(store, state)
    shown = {h: hash_to_display(state.hashes[h]) for h in range(41)}
    for prefix in ("0", "1", "7", "ab", "f", shown[17][:5], shown[17][:6], shown[17]):
        expected = sorted((h for h, s in shown.items() if s.startswith(prefix)), reverse=True)
        count, found = await store.blocks.find_blocks_by_hash_prefix(1, prefix, 5)
        assert count == len(expected), prefix
        assert found == [(h, state.hashes[h]) for h in expected[:5]], prefix
    assert (await store.blocks.find_blocks_by_hash_prefix(2, shown[17][:6], 5)) == (0, [])  # other chains: none
    with pytest.raises(ValueError):
        await store.blocks.find_blocks_by_hash_prefix(1, "xyz", 5)


# How to take a database the newest schema wrote back to before a migration (old code cannot
# write blocks, so tests that check a migration's back-fill write with the new code, then undo).
UNDO_MIGRATIONS: dict[int, tuple[str, ...]] = {
    7: (
        "DROP INDEX blocks_display_hash",
        "DROP INDEX blocks_miner",
        "ALTER TABLE blocks DROP COLUMN display_hash",
    ),
    8: ("DROP INDEX outbox_delivered",),
    9: ("DROP TABLE stake_history",),  # its index goes with it
    10: (
        "DROP INDEX transactions_display_txid",
        "DROP INDEX transactions_height",
        "ALTER TABLE transactions DROP COLUMN display_txid",
    ),
    11: ("DROP TABLE faucet_claims",),
    12: ("DROP TABLE epoch_messages",),
    13: ("DROP TABLE block_tree",),  # its index goes with it
    14: ("DROP TABLE lesson_progress",),
    15: ("DROP INDEX block_tree_orphans",),
    16: (
        "DROP TABLE reorg_log_miners",
        "DROP TABLE reorg_log",
        "ALTER TABLE lesson_progress DROP COLUMN start_reorg_seq",
    ),
    17: ("DROP TABLE dashboard_links",),
    18: ("DROP TABLE epoch_participation",),  # its index goes with it
}


def undo_migrations(db, back_to: int) -> None:
    """Leave ``db`` (a sqlite3 connection) as migration ``back_to - 1`` left it."""
    assert set(UNDO_MIGRATIONS) >= {v for v, _ in MIGRATIONS if v >= back_to}, "a migration has no undo here"
    for version in sorted(UNDO_MIGRATIONS, reverse=True):
        if version >= back_to:
            for statement in UNDO_MIGRATIONS[version]:
                db.execute(statement)
    db.execute("DELETE FROM schema_version WHERE version >= ?", (back_to,))


async def test_migration_7_fills_the_display_hashes_of_existing_blocks(tmp_path):
    import sqlite3

    from chain.hashing import hash_to_display

    path = tmp_path / "before-7.sqlite3"
    store = await Store.open(path)
    state = await create(store)
    for _ in range(3):
        await append(store, state)
    await store.close()
    with sqlite3.connect(path) as db:  # the database as migration 6 left it
        undo_migrations(db, 7)

    store = await Store.open(path)
    assert await store.db.schema_version() == MIGRATIONS[-1][0]
    count, found = await store.blocks.find_blocks_by_hash_prefix(1, hash_to_display(state.hashes[2])[:8], 5)
    assert (count, found) == (1, [(2, state.hashes[2])])
    assert (await store.load_chain_head(1)).blocks_mined == {MINER.public_key: 3}
    await store.close()
