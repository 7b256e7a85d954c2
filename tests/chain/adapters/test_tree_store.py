"""The stored block tree: side blocks, the atomic reorg, migration 13's back-fill (issue 11, item 1)."""

import asyncio
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bot.storage import OutboxRepository
from chain.adapters.storage import MIGRATIONS, Store
from chain.consensus.tree import BlockTree, compute_header_work, compute_reorg
from chain.consensus.undo import compute_returned_transfers
from chain.errors import (
    DuplicateBlockError,
    ReorgTipMismatchError,
    SideBlockUndoError,
    StaleBlockError,
    UndoRecordMissingError,
    UnknownParentError,
)
from chain.events import BLOCK_MINED
from chain.ledger.mempool import PendingTransfer
from chain.ledger.transaction import make_transfer
from chain.params import REGTEST
from tests.chain.adapters.test_store import undo_migrations
from tests.chainkit import key, new_chain
from tests.reorg_writer import ALICE, BOB, CHAIN_ID, append, crash_branches, create_chain, grow, replay

ROOT = Path(__file__).resolve().parents[3]
CAROL = key("reorg-carol")


@pytest.fixture
async def store(database_target):
    s = await Store.open(database_target)
    yield s
    await s.close()


async def contents(store: Store, chain_id: int = CHAIN_ID) -> dict:
    """What a reorg must leave exactly as a direct append would: main chain, accounts, index, history."""
    rows = {}
    for table, order in (
        ("blocks", "height"), ("transactions", "height, position"), ("stake_history", "height, seq"),
        ("param_changes", "height"), ("beacon_snapshots", "height"),
    ):
        rows[table] = await store.db.fetchall(f"SELECT * FROM {table} WHERE chain_id = ? ORDER BY {order}", (chain_id,))
    rows["accounts"] = await store.blocks.accounts(chain_id)
    return rows


async def main_undo_records(store: Store, chain_id: int = CHAIN_ID) -> dict:
    rows = await store.db.fetchall(
        "SELECT t.hash, t.undo FROM block_tree t JOIN blocks b ON b.chain_id = t.chain_id AND b.hash = t.hash "
        "WHERE t.chain_id = ? AND t.raw IS NULL",
        (chain_id,),
    )
    return {bytes(h): u for h, u in rows}


async def direct_store(tmp_path, name, *branches) -> Store:
    direct = await Store.open(tmp_path / f"{name}.sqlite3")
    await create_chain(direct)
    for branch in branches:
        await append(direct, branch)
    return direct


def rebuild(entries) -> BlockTree:
    genesis, *rest = entries
    tree = BlockTree(genesis.block_hash, genesis.work, genesis.parent_hash)
    for e in rest:
        tree.add_block(e.block_hash, e.parent_hash, e.height, e.work)
    return tree


@pytest.mark.parametrize("depth", [1, 2, 10])
async def test_reorg_leaves_the_store_as_appending_the_new_branch_would(store, tmp_path, depth):
    prefix = grow(new_chain(REGTEST, chain_id=CHAIN_ID), 3, ALICE.public_key)
    old = grow(replay(prefix.blocks), depth, ALICE.public_key)
    new = grow(replay(prefix.blocks), depth + 1, BOB.public_key)
    await create_chain(store)
    await append(store, prefix)
    await append(store, old)
    for block, undo in zip(new.blocks, new.undos, strict=True):
        entry = await store.store_side_block(CHAIN_ID, block, undo)
        assert not entry.on_main_chain and entry.has_undo
    assert await store.blocks.tip_height(CHAIN_ID) == 3 + depth  # side blocks leave the main chain alone

    # The tree rebuilt from the store, in first-seen order, chooses the new branch and the same path.
    tree = rebuild(await store.tree.entries(CHAIN_ID))
    assert tree.best.block_hash == new.hashes[-1]
    path = compute_reorg(tree, old.hashes[-1], new.hashes[-1])
    assert [e.block_hash for e in path.disconnect] == old.hashes[::-1]
    assert [e.block_hash for e in path.connect] == new.hashes

    await store.reorganize(CHAIN_ID, [e.block_hash for e in path.disconnect], new.connect, [], 5)

    direct = await direct_store(tmp_path, "direct", prefix, new)
    assert await contents(store) == await contents(direct)
    assert await main_undo_records(store) == await main_undo_records(direct)
    assert dict(new.state.ledger.items()) == await store.blocks.accounts(CHAIN_ID)
    # The old branch is kept as side blocks, bytes and undo records included, and can come back.
    entries = {e.block_hash: e for e in await store.tree.entries(CHAIN_ID)}
    assert len(entries) == 1 + 3 + depth + depth + 1
    for block in old.blocks:
        assert not entries[block.hash()].on_main_chain and entries[block.hash()].has_undo
        assert (await store.tree.side_block(CHAIN_ID, block.hash())).hash() == block.hash()
    assert all(entries[h].on_main_chain for h in new.hashes)
    assert entries[new.hashes[-1]].chain_work == tree.best.chain_work
    await direct.close()


async def test_reorg_back_and_forth_restores_the_old_branch(store, tmp_path):
    prefix = grow(new_chain(REGTEST, chain_id=CHAIN_ID), 2, ALICE.public_key)
    old = grow(replay(prefix.blocks), 2, ALICE.public_key)
    new = grow(replay(prefix.blocks), 3, BOB.public_key)
    await create_chain(store)
    await append(store, prefix)
    await append(store, old)
    before = await contents(store)
    await store.reorganize(CHAIN_ID, old.hashes[::-1], new.connect, [], 0)
    await store.reorganize(CHAIN_ID, new.hashes[::-1], old.connect, [], 0)
    assert await contents(store) == before


async def test_reorg_reverses_a_payment_and_returns_it_to_the_mempool(store, tmp_path):
    prefix = grow(new_chain(REGTEST, chain_id=CHAIN_ID), 2, ALICE.public_key)
    payment = make_transfer(ALICE, CAROL.public_key, 30, 2, 0, CHAIN_ID)
    paid = grow(replay(prefix.blocks), 1, ALICE.public_key, {0: [payment]})
    heavier = grow(replay(prefix.blocks), 2, BOB.public_key)
    await create_chain(store)
    await append(store, prefix)
    await append(store, paid)
    assert (await store.blocks.accounts(CHAIN_ID))[CAROL.public_key].balance == 30
    assert await store.blocks.get_transaction(CHAIN_ID, payment.txid()) is not None

    returned, dropped = compute_returned_transfers(paid.blocks, heavier.state.ledger, CHAIN_ID, REGTEST)
    assert returned == (payment,) and dropped == ()
    await store.reorganize(
        CHAIN_ID, paid.hashes[::-1], heavier.connect, [], 9,
        returned_to_mempool=[PendingTransfer(t, t.txid(), 9) for t in returned],
    )
    accounts = await store.blocks.accounts(CHAIN_ID)
    assert CAROL.public_key not in accounts  # the merchant's payment is gone
    assert accounts[ALICE.public_key] == prefix.state.ledger[ALICE.public_key]
    assert await store.blocks.get_transaction(CHAIN_ID, payment.txid()) is None
    assert await store.blocks.history(CHAIN_ID, CAROL.public_key, 10) == []
    assert [e.txid for e in await store.mempool.entries(CHAIN_ID)] == [payment.txid()]


async def test_reorg_writes_its_events_and_the_new_blocks_in_one_commit(store):
    prefix = grow(new_chain(REGTEST, chain_id=CHAIN_ID), 1, ALICE.public_key)
    old = grow(replay(prefix.blocks), 1, ALICE.public_key)
    new = grow(replay(prefix.blocks), 2, BOB.public_key)
    await create_chain(store)
    await append(store, prefix)
    await append(store, old)
    outbox = OutboxRepository(store.db)
    already = len(await outbox.pending_events(CHAIN_ID))
    reorg_event = new.effects[0].events[0]  # any ChainEvent: the reorg's own classes are chain/events.py's
    ids = await store.reorganize(CHAIN_ID, old.hashes[::-1], new.connect, [reorg_event], 0)
    pending = (await outbox.pending_events(CHAIN_ID))[already:]
    assert [e.id for e in pending] == ids
    expected = [reorg_event, *new.effects[0].events, *new.effects[1].events]
    assert [e.kind for e in pending] == [e.kind for e in expected]
    assert pending[-len(new.effects[1].events)].kind == BLOCK_MINED


async def test_reorg_failing_midway_changes_nothing(store, monkeypatch):
    prefix = grow(new_chain(REGTEST, chain_id=CHAIN_ID), 1, ALICE.public_key)
    old = grow(replay(prefix.blocks), 2, ALICE.public_key)
    new = grow(replay(prefix.blocks), 3, BOB.public_key)
    await create_chain(store)
    await append(store, prefix)
    await append(store, old)
    before = await contents(store)
    tree_before = await store.tree.entries(CHAIN_ID)

    async def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(store.outbox_writer, "insert_events", explode)
    with pytest.raises(RuntimeError):
        await store.reorganize(CHAIN_ID, old.hashes[::-1], new.connect, [], 0)
    assert await contents(store) == before
    assert await store.tree.entries(CHAIN_ID) == tree_before


async def test_sigkill_during_reorgs_leaves_one_whole_branch(tmp_path):
    path = tmp_path / "reorg-crash.sqlite3"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.reorg_writer", str(path), cwd=ROOT, stdout=subprocess.PIPE
    )
    acked = []
    try:
        while len(acked) < 12:
            line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().split()
            assert line, "writer exited early"
            if line[0] == "ACK":
                acked.append(line[1])
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()

    prefix, a, b = crash_branches()
    crashed = await Store.open(path)
    tip = (await crashed.blocks.headers_between(CHAIN_ID, 1, await crashed.blocks.tip_height(CHAIN_ID) + 1))[-1][1]
    branch = {a.hashes[-1]: a, b.hashes[-1]: b}[tip]  # a KeyError here is a mix of the two
    direct = await direct_store(tmp_path, "direct", prefix, branch)
    assert await contents(crashed) == await contents(direct)
    entries = await crashed.tree.entries(CHAIN_ID)
    assert len(entries) == 1 + 2 + 3 + 4
    assert {e.block_hash for e in entries if e.on_main_chain} == {
        e.block_hash for e in await direct.tree.entries(CHAIN_ID)
    }
    await crashed.close()
    await direct.close()


async def test_migration_13_back_fills_the_main_line(tmp_path):
    path = tmp_path / "before-13.sqlite3"
    store = await Store.open(path)
    await create_chain(store)
    prefix = grow(new_chain(REGTEST, chain_id=CHAIN_ID), 4, ALICE.public_key)
    await append(store, prefix)
    await create_chain(store, chain_id=CHAIN_ID + 1)  # a second chain with only its genesis
    await store.close()
    with sqlite3.connect(path) as db:  # the database as migration 12 left it
        undo_migrations(db, 13)

    store = await Store.open(path)
    assert await store.db.schema_version() == MIGRATIONS[-1][0]
    entries = await store.tree.entries(CHAIN_ID)
    hashes = [prefix.state.genesis_hash, *prefix.hashes]
    assert [e.block_hash for e in entries] == hashes
    assert [e.sequence for e in entries] == [0, 1, 2, 3, 4]
    works = [compute_header_work(b.header.bits, REGTEST.pow_limit) for b in [prefix.blocks[0]] * 5]
    assert [e.chain_work for e in entries] == [sum(works[: i + 1]) for i in range(5)]
    assert [e.parent_hash for e in entries[1:]] == hashes[:-1]
    assert all(e.on_main_chain and not e.has_undo for e in entries)
    assert [e.height for e in await store.tree.entries(CHAIN_ID + 1)] == [0]
    assert rebuild(entries).best.block_hash == hashes[-1]

    # Blocks stored before undo records existed cannot be disconnected: a typed refusal, nothing changed.
    other = grow(replay(prefix.blocks[:-1]), 2, BOB.public_key)
    before = await contents(store)
    with pytest.raises(UndoRecordMissingError) as refused:
        await store.reorganize(CHAIN_ID, [hashes[-1]], other.connect, [], 0)
    assert refused.value.height == 4 and refused.value.code == "undo_record_missing"
    assert await contents(store) == before

    # A block appended after the migration has its record, and a reorg of it works.
    more = grow(replay(prefix.blocks), 1, ALICE.public_key)
    await append(store, more)
    rival = grow(replay(prefix.blocks), 2, BOB.public_key)
    await store.reorganize(CHAIN_ID, more.hashes, rival.connect, [], 0)
    assert await store.blocks.accounts(CHAIN_ID) == dict(rival.state.ledger.items())
    await store.close()


async def test_invalid_reorg_not_from_the_stored_tip(store):
    prefix = grow(new_chain(REGTEST, chain_id=CHAIN_ID), 1, ALICE.public_key)
    old = grow(replay(prefix.blocks), 2, ALICE.public_key)
    new = grow(replay(prefix.blocks), 3, BOB.public_key)
    await create_chain(store)
    await append(store, prefix)
    await append(store, old)
    before = await contents(store)
    for wrong in (old.hashes, [old.hashes[0]], [new.hashes[-1]]):  # oldest first; skipping the tip; not stored
        with pytest.raises(ReorgTipMismatchError) as refused:
            await store.reorganize(CHAIN_ID, wrong, new.connect, [], 0)
        assert refused.value.code == "reorg_tip_mismatch"
        assert await contents(store) == before


async def test_invalid_reorg_below_the_genesis_block(store):
    await create_chain(store)
    genesis = (await store.tree.entries(CHAIN_ID))[0]
    with pytest.raises(UndoRecordMissingError):
        await store.reorganize(CHAIN_ID, [genesis.block_hash], [], [], 0)


async def test_invalid_reorg_whose_new_branch_misses_the_fork_point(store):
    prefix = grow(new_chain(REGTEST, chain_id=CHAIN_ID), 1, ALICE.public_key)
    old = grow(replay(prefix.blocks), 2, ALICE.public_key)
    new = grow(replay(prefix.blocks), 3, BOB.public_key)
    await create_chain(store)
    await append(store, prefix)
    await append(store, old)
    before = await contents(store)
    with pytest.raises(StaleBlockError):  # disconnects one block, but the branch forks two below the tip
        await store.reorganize(CHAIN_ID, old.hashes[-1:], new.connect, [], 0)
    assert await contents(store) == before


async def test_invalid_side_blocks(store):
    prefix = grow(new_chain(REGTEST, chain_id=CHAIN_ID), 1, ALICE.public_key)
    side = grow(replay(prefix.blocks), 2, BOB.public_key)
    await create_chain(store)
    await append(store, prefix)
    with pytest.raises(UnknownParentError):  # its parent is not stored yet
        await store.store_side_block(CHAIN_ID, side.blocks[1], side.undos[1])
    with pytest.raises(SideBlockUndoError) as refused:  # another block's record
        await store.store_side_block(CHAIN_ID, side.blocks[0], side.undos[1])
    assert refused.value.code == "side_block_undo_mismatch"
    await store.store_side_block(CHAIN_ID, side.blocks[0], side.undos[0])
    with pytest.raises(DuplicateBlockError):
        await store.store_side_block(CHAIN_ID, side.blocks[0], side.undos[0])
    with pytest.raises(DuplicateBlockError):  # a main-chain block is already stored too
        await store.store_side_block(CHAIN_ID, prefix.blocks[0], prefix.undos[0])
    assert len(await store.tree.entries(CHAIN_ID)) == 3
    assert await store.blocks.tip_height(CHAIN_ID) == 1


async def test_side_blocks_of_one_chain_stay_out_of_another(store):
    prefix = grow(new_chain(REGTEST, chain_id=CHAIN_ID), 1, ALICE.public_key)
    side = grow(replay(prefix.blocks), 1, BOB.public_key)
    await create_chain(store)
    await create_chain(store, chain_id=CHAIN_ID + 1)
    await append(store, prefix)
    await store.store_side_block(CHAIN_ID, side.blocks[0], side.undos[0])
    assert len(await store.tree.entries(CHAIN_ID + 1)) == 1
    await store.delete_chain(CHAIN_ID)
    assert await store.tree.entries(CHAIN_ID) == []


async def test_a_block_without_proof_of_work_counts_work_one(store):
    from types import SimpleNamespace

    from chain.consensus.genesis import make_genesis_block
    from chain.pos.beacon import Mode

    # A proof-of-stake genesis has bits 0 (no target); only its mode matters to make_genesis_block.
    consensus = SimpleNamespace(mode=Mode.POS, to_bytes=lambda: b"pos")
    genesis = make_genesis_block(REGTEST, 5, 1_700_000_000, 0x207FFFFF, consensus)
    assert genesis.header.bits == 0
    await store.create_chain(5, REGTEST, genesis, 0)
    [entry] = await store.tree.entries(5)
    assert (entry.work, entry.chain_work, entry.has_undo) == (1, 1, False)


@pytest.mark.parametrize("append_first", [False, True])
async def test_a_reorg_and_an_append_fired_at_once_cannot_both_win(store, tmp_path, append_first, database_target):
    prefix = grow(new_chain(REGTEST, chain_id=CHAIN_ID), 1, ALICE.public_key)
    old = grow(replay(prefix.blocks), 2, ALICE.public_key)
    new = grow(replay(prefix.blocks), 3, BOB.public_key)
    await create_chain(store)
    await append(store, prefix)
    await append(store, old)
    extension = grow(old.state, 1, ALICE.public_key)  # extends the old tip, which the reorg takes off
    reorgs = [store.reorganize(CHAIN_ID, old.hashes[::-1], new.connect, [], 0) for _ in range(2)]  # the same twice
    appending = store.append_block(CHAIN_ID, extension.blocks[0], extension.effects[0], [], 0)
    calls = [appending, *reorgs] if append_first else [reorgs[0], appending, reorgs[1]]
    results = await asyncio.gather(*calls, return_exceptions=True)
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 1 and len(lost) == 2
    assert all(isinstance(e, (StaleBlockError, ReorgTipMismatchError)) for e in lost), lost
    reorged = isinstance(results[calls.index(appending)], BaseException)  # the append lost: a reorg won
    if isinstance(database_target, Path):
        # SQLite's one writer lock is first come, first served. On PostgreSQL the calls reach the
        # chain's advisory lock in whatever order the pool hands out connections: either may win,
        # but only one ever does, and the store is then exactly the winner's.
        assert reorged is not append_first
    direct = await direct_store(tmp_path, "direct", prefix, new if reorged else old)
    if not reorged:
        await append(direct, extension)
    assert await contents(store) == await contents(direct)
    await direct.close()
