"""benchmarks/bench_side_branches.py cannot rot: its bulk writer leaves exactly the rows the store
writes for the same blocks, and the whole benchmark runs at a tiny size (no timing asserted: speed
targets are the script's, printed against its same-run baselines)."""

import asyncio
import copy
import sqlite3

from benchmarks import bench_side_branches as bench
from chain.adapters.node import TREE_KEPT_BELOW_TIP_BLOCKS
from chain.adapters.storage import Store
from chain.consensus.state import ChainState
from chain.consensus.transition import process_block
from chain.consensus.undo import compute_block_undo
from chain.params import REGTEST

# The rows both writers must agree on (the outbox is left out: the bulk writer writes no events).
TABLES = {
    "blocks": "height", "transactions": "height, position", "block_tree": "sequence", "accounts": "pubkey",
    "chains": "chain_id",
}


def rows(path) -> dict[str, list[tuple]]:
    db = sqlite3.connect(path)
    try:
        return {t: db.execute(f"SELECT * FROM {t} ORDER BY {order}").fetchall() for t, order in TABLES.items()}
    finally:
        db.close()


async def write_through_the_store(path, length: int, orphans: int) -> None:
    """The same blocks, each checked by ``process_block`` on its own branch's state and written by
    ``Store.append_block`` / ``Store.store_side_block``; the bulk writer's undo records must be the
    ones ``compute_block_undo`` gives."""
    genesis_hash = await bench.create_genesis(path)
    store = await Store.open(path)
    try:
        head = await store.load_chain_head(bench.CHAIN)
        state = ChainState(REGTEST, bench.CHAIN, head.genesis)
        states = {genesis_hash: copy.deepcopy(state)}
        for item in bench.tree_items(genesis_hash, length, orphans):
            block = item.block
            parent = copy.deepcopy(states[block.header.prev_hash])
            effects = process_block(parent, block, block.header.time)
            assert compute_block_undo(parent.ledger, effects, block.header.prev_hash) == item.undo
            if item.side:
                await store.store_side_block(bench.CHAIN, block, item.undo)
            else:
                await store.append_block(bench.CHAIN, block, effects, [], bench.GENESIS_TIME)
            parent.apply(block, effects)
            states[block.hash()] = parent
    finally:
        await store.close()


def test_the_bulk_writer_leaves_the_rows_the_store_writes(tmp_path):
    length, orphans = 40, 7  # branches of 1, 1, 2, 1 and 2 blocks
    assert sum(size for _, size in bench.plan_branches(length, orphans)) == orphans
    bench.build_tree_database(tmp_path / "bulk.sqlite3", length, orphans)
    asyncio.run(write_through_the_store(tmp_path / "store.sqlite3", length, orphans))
    bulk, stored = rows(tmp_path / "bulk.sqlite3"), rows(tmp_path / "store.sqlite3")
    assert len(bulk["block_tree"]) == 1 + length + orphans
    assert sum(raw is not None for *_, raw, _undo in bulk["block_tree"]) == orphans
    for table in TABLES:
        assert bulk[table] == stored[table], table


def test_the_benchmark_runs_at_a_tiny_size(tmp_path):
    report = bench.run(200, 5, 1, runs=1, storage_blocks=20, depths=(1, 2), cache=tmp_path)
    lines = bench.format_report(report)
    assert report.startup.height == report.startup_baseline.height == 200
    # The node rebuilds the recent part of its tree at load: blocks 55..200 (TREE_KEPT_BELOW_TIP_BLOCKS
    # is 145), and the orphans whose branch leaves the main chain there.
    assert report.startup_baseline.tree_blocks == 1 + TREE_KEPT_BELOW_TIP_BLOCKS
    assert 1 + TREE_KEPT_BELOW_TIP_BLOCKS < report.startup.tree_blocks <= 1 + TREE_KEPT_BELOW_TIP_BLOCKS + 5
    assert report.storage.side_bytes > 0 and report.storage.main_bytes > 0
    assert [r.depth for r in report.reorgs] == [1, 2]
    assert all(len(r.reorg_s) == len(r.append_s) == 1 for r in report.reorgs)
    # The node-level reorg: d honest blocks, then the private branch's d side blocks and the reorging one.
    assert all(len(r.node_reorg_s) == 1 and len(r.node_side_s) == r.depth for r in report.reorgs)
    assert len(lines) > 8
    report.check(full_size=False)  # runs; its verdict is about speed, not asserted here
