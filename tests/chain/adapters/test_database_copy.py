"""Copying a SQLite database into PostgreSQL (issue 13's migration path), on a real file and a real server.

The source is built by the engine itself: a proof-of-work chain with payments and a chain that
merged into proof of stake (validators, attestations, slashing protection records, a beacon
snapshot), Discord-sized ids, delivered, pruned and pending announcements, a webhook.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3

import asyncpg
import pytest

from bot.storage import OutboxRepository, StoredWebhook, WebhookRepository
from chain.adapters.beacon_node import BeaconNode
from chain.adapters.node import Node
from chain.adapters.signer import ValidatorSigner
from chain.adapters.storage import Store, database_copy
from chain.adapters.storage.database_copy import compare_databases, copy_database
from chain.errors import CopyMismatchError, CopySourceError, CopyTargetNotEmptyError
from chain.params import REGTEST
from chain.pos.beacon import ConsensusConfig
from tests.chain.adapters.test_postgres_store import waiting_locks
from tests.chainkit import solve

MASTER = b"\x42" * 32
# Discord snowflakes: past 2^31 (PostgreSQL's INTEGER), within 2^63.
POW_CHAIN = 1_187_654_321_098_765_432
POS_CHAIN = 1_187_654_321_098_765_999
CHANNEL = 1_187_654_321_098_765_433
WEBHOOK = 1_187_654_321_098_765_435
SLOT_S = 2
CONFIG = ConsensusConfig(mode="pow", slot_duration_s=SLOT_S, slots_per_epoch=4, checkpoint_interval_blocks=4)


class Clock:
    def __init__(self, start: int = 1_800_000_000) -> None:
        self.now = start

    def __call__(self) -> float:
        return float(self.now)


class World:
    """A node (and its beacon node) on one database, with a clock the test moves."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self.node = Node(store, clock=clock, randomness=os.urandom, master_key=MASTER)
        self.beacon = BeaconNode(
            self.node, ValidatorSigner(store, clock=clock, randomness=os.urandom, master_key=MASTER)
        )

    @classmethod
    async def open(cls, target, clock: Clock) -> World:
        world = cls(await Store.open(target), clock)
        await world.node.load()
        await world.beacon.load()
        return world

    async def mine(self, chain_id: int, owner: str, blocks: int = 1) -> None:
        for _ in range(blocks):
            self.clock.now += 60
            miner = await self.node.address(chain_id, owner)
            await self.node.submit_block(chain_id, solve(self.node.template(chain_id, miner), REGTEST))

    async def slots(self, chain_id: int, count: int) -> int:
        proposed = 0
        for _ in range(count):
            self.clock.now += SLOT_S
            outcome = await self.beacon.on_slot(chain_id, self.clock.now)
            proposed += outcome is not None and outcome.block is not None
        return proposed


async def build_source(path, clock: Clock) -> int:
    """The engine's own database at ``path``; returns the highest outbox id SQLite ever issued."""
    world = await World.open(path, clock)
    node, beacon = world.node, world.beacon
    await node.create_chain(POW_CHAIN, REGTEST, initial_bits=0x207FFFFF)
    await world.mine(POW_CHAIN, "alice", 3)
    await node.pay(POW_CHAIN, "alice", await node.address(POW_CHAIN, "bob"), 20, fee=2)
    await world.mine(POW_CHAIN, "carol", 2)
    await node.pay(POW_CHAIN, "carol", await node.address(POW_CHAIN, "dave"), 5, fee=1)  # left in the mempool

    await node.create_chain(POS_CHAIN, REGTEST, initial_bits=0x207FFFFF, consensus=CONFIG)
    await world.mine(POS_CHAIN, "alice", 2)
    await world.mine(POS_CHAIN, "bob", 2)
    await beacon.deposit(POS_CHAIN, "alice", 32)
    await beacon.deposit(POS_CHAIN, "bob", 32)
    await world.mine(POS_CHAIN, "carol", 5)  # includes the deposits, crosses an epoch: active
    await beacon.schedule_merge(POS_CHAIN, at_height=node.chain(POS_CHAIN).state.height + 3)
    await world.mine(POS_CHAIN, "carol", 2)
    assert beacon.is_merged(POS_CHAIN)
    await beacon.set_auto_attest(POS_CHAIN, "alice", True)
    await beacon.set_auto_attest(POS_CHAIN, "bob", True)
    assert await world.slots(POS_CHAIN, 3 * CONFIG.slots_per_epoch)

    await WebhookRepository(world.store.db).set(StoredWebhook(POW_CHAIN, CHANNEL, WEBHOOK, b"sealed-url", None), 9)
    outbox = OutboxRepository(world.store.db)
    events = await outbox.all_events(POW_CHAIN) + await outbox.all_events(POS_CHAIN)
    ids = sorted(e.id for e in events)
    # Some delivered, and the newest few of one chain delivered and pruned: SQLite's AUTOINCREMENT
    # counter is then above every id left in the table, and must stay so on PostgreSQL.
    await outbox.mark_delivered(ids[:5], clock.now)
    newest = sorted(e.id for e in events if e.chain_id == POS_CHAIN)[-3:]
    await outbox.mark_delivered(newest, 1)
    assert await outbox.prune_delivered_events(2, 10) == 3
    issued = ids[-1]
    assert await outbox.last_id() < issued
    await world.store.close()
    return issued


@pytest.fixture
async def source(tmp_path):
    path = tmp_path / "playground.sqlite3"
    clock = Clock()
    issued = await build_source(path, clock)
    return path, clock, issued


async def count_rows(url: str) -> dict[str, int]:
    connection = await asyncpg.connect(url)
    try:
        tables = [r[0] for r in await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'schema_version'"
        )]
        return {t: int(await connection.fetchval(f'SELECT COUNT(*) FROM "{t}"')) for t in tables}
    finally:
        await connection.close()


async def test_a_copy_holds_the_same_chains_and_the_bot_continues_on_it(source, postgres_url):
    path, clock, issued = source
    files = {p.name: p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists()}
    report = await copy_database(path, postgres_url)
    # The source is read, never written: not migrated, not checkpointed.
    assert {p: (path.parent / p).read_bytes() for p in files} == files

    assert set(report.source.chains) == {POW_CHAIN, POS_CHAIN}
    assert report.target.chains == report.source.chains
    assert all(c.state_root is not None and c.replay_error is None for c in report.target.chains.values())
    assert report.target.balances == report.source.balances and report.target.pending_outbox
    assert report.target.pending_outbox == report.source.pending_outbox
    assert report.target.row_counts == report.source.row_counts
    assert report.rows == sum(report.source.row_counts.values())
    assert report.source.row_counts["slashing_protection"] >= 2 and report.source.row_counts["beacon_snapshots"]

    # The bot's store and node load the copy and carry on: a new block on each chain, with the same master key.
    sqlite_world = await World.open(path, Clock(clock.now))
    world = await World.open(postgres_url, clock)
    try:
        for chain_id in (POW_CHAIN, POS_CHAIN):
            assert world.node.offline_reason(chain_id) is None
            before, original = world.node.chain(chain_id).state, sqlite_world.node.chain(chain_id).state
            assert (before.height, before.tip_hash) == (original.height, original.tip_hash)
            assert dict(before.ledger.items()) == dict(original.ledger.items())
        assert world.node.chain(POS_CHAIN).state.beacon == sqlite_world.node.chain(POS_CHAIN).state.beacon
        height = world.node.chain(POW_CHAIN).state.height
        await world.mine(POW_CHAIN, "bob")  # confirms the transfer left in the mempool
        assert world.node.chain(POW_CHAIN).state.height == height + 1
        assert world.node.account(POW_CHAIN, await world.node.address(POW_CHAIN, "dave")).balance == 5
        pos_height = world.node.chain(POS_CHAIN).state.height
        assert await world.slots(POS_CHAIN, CONFIG.slots_per_epoch)  # the copied validator keys still sign
        assert world.node.chain(POS_CHAIN).state.height > pos_height
        # New outbox rows continue above every id SQLite issued, pruned ones included.
        new_ids = [e.id for e in await OutboxRepository(world.store.db).all_events(POW_CHAIN) if e.id > issued]
        assert new_ids and min(new_ids) == issued + 1
        assert (await world.node.verify(POS_CHAIN)).blocks == world.node.chain(POS_CHAIN).state.height + 1
    finally:
        await world.store.close()
        await sqlite_world.store.close()


async def test_a_target_with_rows_is_refused_and_left_unchanged(source, postgres_url, tmp_path):
    path, _, _ = source
    other = tmp_path / "other.sqlite3"
    await build_small(other, 77)
    await copy_database(other, postgres_url)
    before = await count_rows(postgres_url)
    with pytest.raises(CopyTargetNotEmptyError) as refused:
        await copy_database(path, postgres_url)
    assert "not empty (1 chains" in str(refused.value) and "chains" in refused.value.tables
    assert await count_rows(postgres_url) == before


async def build_small(path, chain_id: int) -> None:
    world = await World.open(path, Clock())
    await world.node.create_chain(chain_id, REGTEST, initial_bits=0x207FFFFF)
    await world.mine(chain_id, "alice", 2)
    await world.store.close()


async def test_two_copies_into_one_target_at_once_one_wins_the_other_is_refused(
    source, postgres_url, tmp_path, monkeypatch
):
    """The emptiness check and the copy run under one table lock: two copies started together never
    both find the target empty and merge.  The first to pass its check holds there until the other
    has passed its own (no lock) or is waiting for the first's (the lock)."""
    path, _, _ = source
    other = tmp_path / "other.sqlite3"
    await build_small(other, 77)
    check = database_copy._refuse_unless_empty
    passed: list[int] = []
    tasks: list[asyncio.Task] = []

    async def check_then_hold(connection, tables):
        await check(connection, tables)
        passed.append(1)
        while len(passed) < 2 and not any(t.done() for t in tasks) and not await waiting_locks(postgres_url):
            await asyncio.sleep(0.01)

    monkeypatch.setattr(database_copy, "_refuse_unless_empty", check_then_hold)
    tasks.extend(asyncio.create_task(copy_database(p, postgres_url)) for p in (path, other))
    results = await asyncio.gather(*tasks, return_exceptions=True)
    refused = [r for r in results if isinstance(r, CopyTargetNotEmptyError)]
    copied = [r for r in results if not isinstance(r, BaseException)]
    assert len(refused) == 1 and len(copied) == 1, results
    assert (await count_rows(postgres_url))["chains"] == len(copied[0].source.chains)


async def test_a_difference_found_before_the_commit_rolls_the_whole_copy_back(source, postgres_url, monkeypatch):
    """A copy that writes one balance wrong (an injected fault in the copying) is caught by the check
    inside the transaction: named, and nothing stays in the target."""
    path, _, _ = source
    copy_table = database_copy._copy_table

    async def copy_then_corrupt(source_db, connection, table, columns):
        copied = await copy_table(source_db, connection, table, columns)
        if table == "accounts":
            await connection.execute(
                "UPDATE accounts SET balance = balance + 1 WHERE chain_id = $1 "
                "AND pubkey = (SELECT pubkey FROM accounts WHERE chain_id = $1 ORDER BY pubkey LIMIT 1)", POW_CHAIN,
            )
        return copied

    monkeypatch.setattr(database_copy, "_copy_table", copy_then_corrupt)
    with pytest.raises(CopyMismatchError) as mismatch:
        await copy_database(path, postgres_url)
    assert not mismatch.value.committed
    text = "\n".join(mismatch.value.differences)
    assert f"chain {POW_CHAIN}: balances differ" in text
    assert f"chain {POW_CHAIN}: the replay of the target fails" in text and "stored balances differ" in text
    assert "table accounts: same row count" in text
    assert all(n == 0 for n in (await count_rows(postgres_url)).values())


async def test_a_balance_changed_after_the_copy_is_named_by_the_check(source, postgres_url):
    path, _, _ = source
    await copy_database(path, postgres_url)
    await compare_databases(path, postgres_url)  # equal right after the copy
    connection = await asyncpg.connect(postgres_url)
    try:
        await connection.execute(
            "UPDATE accounts SET balance = balance - 1 WHERE chain_id = $1 AND balance > 0 "
            "AND pubkey = (SELECT pubkey FROM accounts WHERE chain_id = $1 AND balance > 0 ORDER BY pubkey LIMIT 1)",
            POS_CHAIN,
        )
        await connection.execute("UPDATE outbox SET delivered_at = 5 WHERE id = (SELECT MAX(id) FROM outbox)")
    finally:
        await connection.close()
    with pytest.raises(CopyMismatchError) as mismatch:
        await compare_databases(path, postgres_url)
    text = "\n".join(mismatch.value.differences)
    assert f"chain {POS_CHAIN}: balances differ" in text
    assert f"chain {POS_CHAIN}: the replay of the target fails" in text
    assert "pending outbox differ" in text
    assert f"chain {POW_CHAIN}" not in text  # the untouched chain is not blamed


async def test_a_source_behind_the_latest_schema_is_refused_untouched(tmp_path, postgres_url):
    path = tmp_path / "old.sqlite3"
    await build_small(path, 77)
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM schema_version WHERE version = (SELECT MAX(version) FROM schema_version)")
    before = path.read_bytes()
    with pytest.raises(CopySourceError, match="schema version"):
        await copy_database(path, postgres_url)
    assert path.read_bytes() == before


async def test_a_copy_missing_a_chains_blocks_is_named_not_a_crash(source, postgres_url):
    path, _, _ = source
    await copy_database(path, postgres_url)
    connection = await asyncpg.connect(postgres_url)
    try:
        await connection.execute("DELETE FROM blocks WHERE chain_id = $1", POW_CHAIN)
    finally:
        await connection.close()
    with pytest.raises(CopyMismatchError) as mismatch:
        await compare_databases(path, postgres_url)
    text = "\n".join(mismatch.value.differences)
    assert f"chain {POW_CHAIN}: the replay of the target fails" in text
    assert "table blocks:" in text


async def test_a_target_at_another_schema_version_is_refused_unmigrated(source, postgres_url):
    """Never migrated by the copy: a database with tables is someone's, and is left exactly as it was."""
    path, _, _ = source
    await (await Store.open(postgres_url)).close()
    connection = await asyncpg.connect(postgres_url)
    try:
        await connection.execute("DELETE FROM schema_version WHERE version = (SELECT MAX(version) FROM schema_version)")
        versions = await connection.fetch("SELECT version FROM schema_version ORDER BY version")
        with pytest.raises(CopySourceError, match="the target is at schema version"):
            await copy_database(path, postgres_url)
        assert await connection.fetch("SELECT version FROM schema_version ORDER BY version") == versions
    finally:
        await connection.close()
    assert all(n == 0 for n in (await count_rows(postgres_url)).values())


async def test_the_checks_server_memory_does_not_grow_with_the_number_of_chains(tmp_path, postgres_url, monkeypatch):
    """Each chain's replay reads the target through server-side cursors inside the copy's one transaction
    (and the check after the commit's one snapshot): left open, each chain's stayed there until the end,
    some 0.4 MB of the server's memory per chain (1,000 servers: 400 MB, twice)."""
    chains = 12
    path = tmp_path / "many.sqlite3"
    world = await World.open(path, Clock())
    for index in range(chains):
        await world.node.create_chain(POW_CHAIN + index, REGTEST, initial_bits=0x207FFFFF)
    await world.mine(POW_CHAIN, "alice", 2)
    await world.store.close()
    summarize = database_copy.summarize
    open_portals: list[int] = []

    async def summarize_then_count(reader, snapshots, tables, now):
        summary = await summarize(reader, snapshots, tables, now)
        if isinstance(reader, database_copy.PostgresRows):
            open_portals.append(int(await reader._connection.fetchval("SELECT COUNT(*) FROM pg_cursors")))
        return summary

    monkeypatch.setattr(database_copy, "summarize", summarize_then_count)
    report = await copy_database(path, postgres_url)
    assert len(report.target.chains) == chains
    assert len(open_portals) == 2  # in the copy's transaction, and after the commit
    assert all(count < chains for count in open_portals), open_portals
