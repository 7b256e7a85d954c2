"""Startup without replay: a restarted node has exactly the state a full replay gives, reading
only the chain's current tables and recent end (chain/adapters/node.py ``_load_chain``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from chain.adapters.node import Node
from chain.adapters.storage import Store
from chain.consensus.state import ChainState
from chain.consensus.transition import replay_chain
from chain.consensus.verify import verify_chain
from chain.errors import ChainNotFoundError, ChainOfflineError, HistoryUnavailableError
from chain.params import PLAYGROUND, REGTEST
from chain.pos.snapshot import decode_beacon_state
from tests.chainkit import CHAIN_ID, GENESIS_TIME, solve
from tests.poskit import merged_chain_with_exit_and_slashing, pos_chain, staked_chain

MASTER = b"\x42" * 32
LATER = 4_000_000_000  # after every block's time: nothing is "from the future"


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> float:
        return float(self.now)


async def open_node(path, clock=None) -> Node:
    node = Node(await Store.open(path), clock=clock or Clock(LATER), randomness=os.urandom, master_key=MASTER)
    await node.load()
    return node


def forbid_full_reads(node: Node) -> None:
    """Startup must not read every block: the calls that do raise."""

    def refuse(*args, **kwargs):
        raise AssertionError("startup read every block of the chain")

    node.store.load_chain = refuse  # type: ignore[method-assign]
    node.store.iter_blocks = refuse  # type: ignore[method-assign]


def allow_full_reads(node: Node) -> None:
    del node.store.load_chain, node.store.iter_blocks


def assert_same_state(loaded: ChainState, replayed: ChainState) -> None:
    assert loaded.height == replayed.height
    assert loaded.tip_hash == replayed.tip_hash
    assert loaded.genesis_hash == replayed.genesis_hash
    assert dict(loaded.ledger.items()) == dict(replayed.ledger.items())
    assert loaded.ledger.minted == replayed.ledger.minted
    assert loaded.beacon == replayed.beacon
    assert loaded.params == replayed.params
    assert loaded.param_changes == replayed.param_changes
    assert loaded.consensus == replayed.consensus
    assert loaded.consensus_changes == replayed.consensus_changes
    assert loaded.total_supply_units() == loaded.issued_supply_units()
    for back in range(1, min(loaded.height, 12) + 1):  # the headers the next block is judged by
        assert loaded.headers[-back] == replayed.headers[-back]


async def store_chain(path, blocks, consensus) -> None:
    """Write ``blocks`` through a node, as the bot would have: created, then block by block."""
    clock = Clock(blocks[0].header.time)
    node = Node(await Store.open(path), clock=clock, randomness=os.urandom, master_key=MASTER)
    await node.create_chain(CHAIN_ID, REGTEST, initial_bits=blocks[0].header.bits or 0x207FFFFF, consensus=consensus)
    assert node.chain(CHAIN_ID).state.genesis_hash == blocks[0].hash()
    clock.now = LATER
    for block in blocks[1:]:
        await node.submit_block(CHAIN_ID, block)
    await node.store.close()


CHAINS = {
    "hybrid": lambda: staked_chain("hybrid", blocks=30),
    "pow with staking": lambda: staked_chain("pow", blocks=20),
    "pos": lambda: pos_chain(epochs=3),
    "merged, with an exit and a slashing": merged_chain_with_exit_and_slashing,
}


@pytest.mark.parametrize("kind", sorted(CHAINS))
async def test_startup_from_the_snapshot_equals_a_full_replay(kind, tmp_path):
    engine, blocks = CHAINS[kind]()
    path = tmp_path / "chain.sqlite3"
    await store_chain(path, blocks, engine.consensus)

    node = Node(await Store.open(path), clock=Clock(LATER), randomness=os.urandom, master_key=MASTER)
    forbid_full_reads(node)
    await node.load()
    assert node.offline_chain_ids() == []
    loaded = node.chain(CHAIN_ID).state
    assert_same_state(loaded, replay_chain(REGTEST, CHAIN_ID, blocks, engine.consensus))
    assert_same_state(loaded, engine)
    assert node.chain(CHAIN_ID).tip_block == blocks[-1]
    assert node.chain(CHAIN_ID).blocks_mined == Counter(b.coinbase.miner for b in blocks[1:])
    # One snapshot per chain: the tip's.
    assert await node.store.snapshots.get(CHAIN_ID, loaded.height - 1) is None
    await node.store.close()


async def test_a_chain_without_a_snapshot_is_replayed_once_and_gets_one(tmp_path):
    engine, blocks = merged_chain_with_exit_and_slashing()
    path = tmp_path / "old.sqlite3"
    await store_chain(path, blocks, engine.consensus)
    store = await Store.open(path)
    await store.snapshots.prune(CHAIN_ID, below_height=10**9)  # a database from before snapshots
    await store.close()

    node = await open_node(path)
    assert_same_state(node.chain(CHAIN_ID).state, engine)
    height, blob = await node.store.snapshots.latest(CHAIN_ID)
    assert height == engine.height and decode_beacon_state(blob, [engine.consensus]) == engine.beacon
    await node.store.close()

    again = Node(await Store.open(path), clock=Clock(LATER), randomness=os.urandom, master_key=MASTER)
    forbid_full_reads(again)
    await again.load()  # the next start needs no replay
    assert_same_state(again.chain(CHAIN_ID).state, engine)
    await again.store.close()


async def test_a_corrupt_snapshot_costs_a_replay_not_the_chain(tmp_path):
    engine, blocks = pos_chain(epochs=2)
    path = tmp_path / "corrupt.sqlite3"
    await store_chain(path, blocks, engine.consensus)
    store = await Store.open(path)
    await store.replace_beacon_snapshot(CHAIN_ID, engine.height, b"CPBS\x01 not a state")
    await store.close()

    node = await open_node(path)
    assert node.offline_chain_ids() == []
    assert_same_state(node.chain(CHAIN_ID).state, engine)
    _, blob = await node.store.snapshots.latest(CHAIN_ID)
    assert decode_beacon_state(blob, [engine.consensus]) == engine.beacon
    await node.store.close()


async def test_a_long_pow_chain_resumes_from_its_recent_headers(tmp_path):
    """150 blocks with transfers and a halving change: the node keeps a window of headers, and a
    restart reads the balances, the rule changes and that window, and mints what a replay mints."""
    path = tmp_path / "pow.sqlite3"
    node = await open_node(path)
    await node.create_chain(CHAIN_ID, REGTEST, initial_bits=0x207FFFFF)
    alice = await node.address(CHAIN_ID, "alice")
    bob = await node.address(CHAIN_ID, "bob")
    for height in range(1, 151):
        if height == 40:
            await node.propose_params(CHAIN_ID, REGTEST.evolve(halving_interval_blocks=30))
        if height % 7 == 0:
            await node.pay(CHAIN_ID, "alice", bob, 3, fee=1)
        miner = alice if height % 3 else bob
        await node.submit_block(CHAIN_ID, solve(node.template(CHAIN_ID, miner), REGTEST))
    before = node.chain(CHAIN_ID).state
    assert before.headers.oldest_kept > 1  # the window moved: old headers left memory
    with pytest.raises(HistoryUnavailableError):
        before.headers[1]
    await node.store.close()

    again = Node(await Store.open(path), clock=Clock(LATER), randomness=os.urandom, master_key=MASTER)
    forbid_full_reads(again)
    await again.load()
    allow_full_reads(again)
    loaded = again.chain(CHAIN_ID).state
    stored = await again.store.load_chain(CHAIN_ID)  # no writer meanwhile: one read is consistent
    replayed = replay_chain(REGTEST, CHAIN_ID, stored.blocks, None, stored.param_changes)
    assert_same_state(loaded, replayed)
    assert loaded.ledger.minted == sum(acc.balance for acc in loaded.ledger.values())
    assert again.chain(CHAIN_ID).blocks_mined == Counter(b.coinbase.miner for b in stored.blocks[1:])
    # It carries on, and the full replay still agrees.
    await again.submit_block(CHAIN_ID, solve(again.template(CHAIN_ID, alice), REGTEST))
    report = await again.verify(CHAIN_ID)
    assert report.blocks == 152
    await again.store.close()


async def test_a_longer_retarget_window_reads_back_what_the_window_had_dropped(tmp_path):
    """PLAYGROUND retargets every 10 blocks; at block 590 the admins ask for every 300.  The
    retarget at 600 measures from block 300, long gone from memory: the node fetches it first."""
    path = tmp_path / "window.sqlite3"
    clock = Clock(GENESIS_TIME)
    node = Node(await Store.open(path), clock=clock, randomness=os.urandom, master_key=MASTER)
    await node.create_chain(CHAIN_ID, PLAYGROUND, initial_bits=0x207FFFFF)
    miner = await node.address(CHAIN_ID, "miner")

    async def mine(blocks: int) -> None:
        for _ in range(blocks):
            clock.now += PLAYGROUND.target_spacing_s  # on target: the difficulty stays easy
            await node.submit_block(CHAIN_ID, solve(node.template(CHAIN_ID, miner), PLAYGROUND))

    await mine(590)
    state = node.chain(CHAIN_ID).state
    assert state.headers.oldest_kept > 300
    await node.propose_params(CHAIN_ID, PLAYGROUND.evolve(retarget_window_blocks=300))
    assert state.headers.oldest_kept <= 300
    await mine(20)  # block 591 adopts the window; block 600 retargets over blocks 300..599
    assert state.height == 610
    stored = await node.store.load_chain(CHAIN_ID)
    verify_chain(PLAYGROUND, CHAIN_ID, stored.blocks, clock.now, stored.accounts, stored.param_changes)
    await node.store.close()

    again = await open_node(path, clock)
    assert again.chain(CHAIN_ID).state.headers.oldest_kept <= 610 - 300
    await again.store.close()


async def test_one_chain_that_cannot_load_is_offline_and_the_others_play_on(tmp_path):
    path = tmp_path / "two.sqlite3"
    node = await open_node(path)
    for chain_id in (1, 2):
        await node.create_chain(chain_id, REGTEST, initial_bits=0x207FFFFF)
        miner = await node.address(chain_id, "alice")
        for _ in range(3):
            await node.submit_block(chain_id, solve(node.template(chain_id, miner), REGTEST))
    await node.store.close()
    with sqlite3.connect(path) as db:  # the tip of chain 1 no longer decodes
        db.execute("UPDATE blocks SET raw = ? WHERE chain_id = 1 AND height = 3", (b"\xff\x00" * 40,))

    again = await open_node(path)
    assert again.chain_ids() == [2] and again.offline_chain_ids() == [1]
    assert "EncodingError" in again.offline_reason(1)
    with pytest.raises(ChainOfflineError, match=r"chain 1 could not be loaded \(EncodingError") as offline:
        again.chain(1)
    assert offline.value.chain_id == 1 and offline.value.reason == again.offline_reason(1)
    miner = await again.address(2, "alice")
    await again.submit_block(2, solve(again.template(2, miner), REGTEST))
    assert again.chain(2).state.height == 4

    await again.delete_chain(1)  # what /playground reset does first
    assert again.offline_reason(1) is None
    with pytest.raises(ChainNotFoundError):
        again.chain(1)
    await again.create_chain(1, REGTEST, initial_bits=0x207FFFFF)
    assert again.chain(1).state.height == 0
    await again.store.close()


async def test_a_killed_writer_never_leaves_a_snapshot_that_disagrees_with_its_block(tmp_path):
    """SIGKILL at an arbitrary moment while a hybrid chain grows: block and snapshot commit
    together, so the stored snapshot is always the stored tip's, exactly what a replay gives."""
    root = Path(__file__).resolve().parents[3]
    path = tmp_path / "killed.sqlite3"
    for round_ in range(3):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.crash_writer", str(path), "hybrid", cwd=root, stdout=subprocess.PIPE
        )
        acked = 0
        try:
            while acked < 8 + round_ * 5:  # each round stops at another moment
                line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().split()
                assert line, "writer exited early"
                acked += line[1] == "block"
        finally:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()

        store = await Store.open(path)
        tip = await store.blocks.tip_height(77)
        height, blob = await store.snapshots.latest(77)
        stored = await store.load_chain(77)
        await store.close()
        assert height == tip
        replayed = replay_chain(REGTEST, 77, stored.blocks, stored.consensus)
        assert decode_beacon_state(blob, [stored.consensus]) == replayed.beacon


async def test_a_window_change_and_a_block_at_the_same_moment_keep_the_headers_in_order(tmp_path):
    """propose_params reads old headers back from the store while a block may be arriving; the
    block's append can drop headers from the front of the window.  Both run under the chain's
    lock, so the headers kept are exactly the chain's, in order."""
    clock = Clock(GENESIS_TIME)
    node = Node(await Store.open(tmp_path / "race.sqlite3"), clock=clock, randomness=os.urandom, master_key=MASTER)
    await node.create_chain(CHAIN_ID, PLAYGROUND, initial_bits=0x207FFFFF)
    miner = await node.address(CHAIN_ID, "miner")

    def next_block():
        clock.now += PLAYGROUND.target_spacing_s
        return solve(node.template(CHAIN_ID, miner), PLAYGROUND)

    state = node.chain(CHAIN_ID).state
    window = state.headers
    while window.oldest_kept == 1 or len(window) - window.oldest_kept != 2 * window.capacity - 1:
        await node.submit_block(CHAIN_ID, next_block())  # until the next append drops old headers
    # Widen the window in which the two could interleave: the old headers' read waits until the
    # block is stored (a block waiting for the lock never is: then the read goes on after a second).
    appended = asyncio.Event()
    store = node.store
    append_block, headers_between = store.append_block, store.blocks.headers_between

    async def append_then_signal(*args, **kwargs):
        try:
            return await append_block(*args, **kwargs)
        finally:
            appended.set()

    async def read_after_the_block(*args, **kwargs):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(appended.wait(), 1)
        return await headers_between(*args, **kwargs)

    store.append_block, store.blocks.headers_between = append_then_signal, read_after_the_block
    await asyncio.gather(
        node.propose_params(CHAIN_ID, PLAYGROUND.evolve(retarget_window_blocks=150)),
        node.submit_block(CHAIN_ID, next_block()),
    )
    del store.append_block, store.blocks.headers_between
    oldest = state.headers.oldest_kept
    stored = await node.store.blocks.headers_between(CHAIN_ID, oldest, state.height + 1)
    assert [h for h, _ in stored] == [state.headers[i] for i in range(oldest, state.height + 1)]
    assert [b for _, b in stored] == [state.hashes[i] for i in range(oldest, state.height + 1)]
    assert all(state.height_of(b) == oldest + i for i, (_, b) in enumerate(stored))
    assert state.height - oldest + 1 >= 150 + 11
    await node.store.close()
