"""Reads of the stored tree's blocks off the main chain: verify, export and the explorer's queries
(issue 11, item 3)."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import pytest

from chain.adapters.chain_reads import ChainReads
from chain.adapters.storage import Store
from chain.consensus.export import export_chain, import_chain, import_orphans
from chain.consensus.templates import build_template
from chain.consensus.undo import BlockUndo
from chain.consensus.verify import verify_chain
from chain.errors import BlockNotFoundError, InsufficientBalanceError, OrphanVerificationError, UnknownAccountError
from chain.hashing import hash_to_display
from chain.ledger.transaction import make_transfer
from chain.params import REGTEST
from tests.chainkit import genesis_block, key, new_chain, solve
from tests.reorg_writer import ALICE, BOB, CHAIN_ID, Branch, append, create_chain, grow, replay

NOW = 2_000_000_000
CAROL = key("tree-reads-carol")


@pytest.fixture
async def store(database_target):
    s = await Store.open(database_target)
    yield s
    await s.close()


@pytest.fixture
async def reads(store):
    r = ChainReads(store)
    yield r
    r.close()


async def store_side(store: Store, branch: Branch) -> None:
    for block, undo in zip(branch.blocks, branch.undos, strict=True):
        await store.store_side_block(CHAIN_ID, block, undo)


async def build(store: Store):
    """Main chain: genesis + 5 blocks by alice; off it: bob's 3 blocks forking at block 3, then one
    block forking at block 1 (stored in that order)."""
    prefix = grow(new_chain(REGTEST, chain_id=CHAIN_ID), 3, ALICE.public_key)
    tail = grow(replay(prefix.blocks), 2, ALICE.public_key)
    side = grow(replay(prefix.blocks), 3, BOB.public_key)
    early = grow(replay(prefix.blocks[:1]), 1, BOB.public_key)
    await create_chain(store)
    await append(store, prefix)
    await append(store, tail)
    await store_side(store, side)
    await store_side(store, early)
    main = [genesis_block(REGTEST, CHAIN_ID), *prefix.blocks, *tail.blocks]
    return main, side, early


async def test_verify_checks_every_stored_orphan(store, reads):
    main, side, early = await build(store)
    report = await reads.verify(CHAIN_ID, NOW)
    assert report.orphans == 4 and report.blocks == 6


async def test_invalid_stored_orphan_fails_verification_naming_it(store, reads):
    main, side, _ = await build(store)
    # Bob spends 60 on top of his first orphan, where he holds only the 50 he mined.
    state = replay(main[1:4])
    state.apply(side.blocks[0], side.effects[0])
    now = state.tip.time + 70
    spend = make_transfer(BOB, CAROL.public_key, 60, 0, 0, CHAIN_ID)
    template = build_template(state, ALICE.public_key, [], now)
    bad = solve(type(template).build(1, state.tip_hash, now, template.header.bits, template.coinbase, (spend,)),
                REGTEST)
    await store.store_side_block(CHAIN_ID, bad, BlockUndo(5, bad.hash(), bad.header.prev_hash, 0, ()))
    with pytest.raises(OrphanVerificationError) as info:
        await reads.verify(CHAIN_ID, NOW)
    assert info.value.block_hash == hash_to_display(bad.hash()) and info.value.height == 5
    assert isinstance(info.value.cause, (InsufficientBalanceError, UnknownAccountError))


async def test_the_export_streams_the_orphans_and_verifies_offline(store, reads):
    main, side, early = await build(store)
    out = io.BytesIO()
    summary = await reads.export_to(CHAIN_ID, out)
    orphans = [(4, side.blocks[0]), (5, side.blocks[1]), (6, side.blocks[2]), (2, early.blocks[0])]
    expected = json.dumps(export_chain(REGTEST, CHAIN_ID, main, orphans=orphans), separators=(",", ":")).encode()
    assert out.getvalue() == expected
    assert (summary.size, summary.orphans, summary.height) == (len(expected), 4, 5)
    document = json.loads(out.getvalue())
    params, chain_id, blocks = import_chain(document)
    _, report = verify_chain(params, chain_id, blocks, NOW, orphans=import_orphans(document))
    assert report.orphans == 4


async def test_an_export_over_the_limit_counts_the_orphans(store, reads):
    await build(store)
    size = (await reads.export_to(CHAIN_ID, io.BytesIO())).size
    from chain.errors import ExportTooLargeError

    with pytest.raises(ExportTooLargeError):
        await reads.export_to(CHAIN_ID, io.BytesIO(), limit=size - 1)
    await reads.export_to(CHAIN_ID, io.BytesIO(), limit=size)


async def test_explorer_reads_of_orphans(store):
    main, side, early = await build(store)
    orphan = await store.tree.orphan(CHAIN_ID, side.blocks[1].hash())
    assert orphan.block.hash() == side.blocks[1].hash() and orphan.height == 5
    assert orphan.main_hash == main[5].hash()
    # Same bits everywhere: at equal height, equal work.
    assert orphan.chain_work == orphan.main_chain_work
    above = await store.tree.orphan(CHAIN_ID, side.blocks[2].hash())
    assert (above.height, above.main_hash, above.main_chain_work) == (6, None, None)
    with pytest.raises(BlockNotFoundError):
        await store.tree.orphan(CHAIN_ID, main[2].hash())

    assert [await store.tree.count_orphans_at(CHAIN_ID, h) for h in range(7)] == [0, 0, 1, 0, 1, 1, 1]

    prefix = hash_to_display(side.blocks[0].hash())[:8]
    assert await store.tree.find_orphans_by_hash_prefix(CHAIN_ID, prefix, 5) == (1, [(4, side.blocks[0].hash())])
    count, found = await store.tree.find_orphans_by_hash_prefix(CHAIN_ID, "", 2)
    assert count == 4 and found == [(6, side.blocks[2].hash()), (5, side.blocks[1].hash())]

    count, branches = await store.tree.side_branches(CHAIN_ID, 10)
    assert count == 2
    newest, oldest = branches
    assert (newest.tip_hash, newest.fork_hash, newest.fork_height, newest.length) == (
        early.blocks[0].hash(), main[1].hash(), 1, 1)
    assert (oldest.tip_hash, oldest.fork_height, oldest.tip_height, oldest.length) == (side.blocks[2].hash(), 3, 6, 3)
    # Bob's branch is one block higher than the main tip: one block's more work than the main chain's tip.
    assert oldest.chain_work > oldest.main_chain_work
    assert newest.chain_work == newest.main_chain_work
    assert (await store.tree.side_branches(CHAIN_ID, 1))[1] == [newest]


async def test_orphan_queries_use_the_orphan_index(store, database_target):
    if not isinstance(database_target, Path):
        pytest.skip("SQLite's query plan (PostgreSQL's planner may scan a table this small)")
    await build(store)
    with sqlite3.connect(database_target) as db:
        plan = db.execute(
            "EXPLAIN QUERY PLAN SELECT COUNT(*) FROM block_tree WHERE chain_id = ? AND raw IS NOT NULL AND height = ?",
            (CHAIN_ID, 4),
        ).fetchall()
    assert any("block_tree_orphans" in str(row) for row in plan)


async def test_after_a_reorg_the_old_branch_is_verified_and_exported_as_orphans(store, reads):
    prefix = grow(new_chain(REGTEST, chain_id=CHAIN_ID), 2, ALICE.public_key)
    transfer = make_transfer(ALICE, BOB.public_key, 7, 1, 0, CHAIN_ID)
    old = grow(replay(prefix.blocks), 2, ALICE.public_key, {0: [transfer]})
    new = grow(replay(prefix.blocks), 3, BOB.public_key)
    await create_chain(store)
    await append(store, prefix)
    await append(store, old)
    await store_side(store, new)
    assert (await reads.verify(CHAIN_ID, NOW)).orphans == 3
    await store.reorganize(CHAIN_ID, old.hashes[::-1], new.connect, [], 0)
    report = await reads.verify(CHAIN_ID, NOW)
    # The payment's block is an orphan now, checked on its own branch (where alice could pay).
    assert (report.orphans, report.blocks, report.transfers) == (2, 6, 0)
    document = await reads.export(CHAIN_ID)
    assert [o["height"] for o in document["orphans"]] == [3, 4]
    assert [o["block"] for o in document["orphans"]] == [b.serialize().hex() for b in old.blocks]
