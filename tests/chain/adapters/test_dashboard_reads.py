"""The façade's reads for the classroom dashboard (issue 12, item 4): the mining race, the mempool's
newest transfers and the newest blocks, each read from the engine, never a runtime's internals."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from chain.adapters.hashcore import HashingCore
from chain.adapters.node import Node
from chain.adapters.storage import Store
from chain.params import REGTEST
from chain.playground import Playground
from chain.pos.beacon import ConsensusConfig

MASTER = bytes(range(32))
CHAIN = 31
OTHER = 32


class Defaults:
    default_params = REGTEST
    default_consensus = ConsensusConfig()

    async def hash_rate(self) -> int:
        return 1


@pytest.fixture
async def facade(tmp_path):
    store = await Store.open(tmp_path / "dashboard-reads.sqlite3")
    core = HashingCore(1)
    await core.start()
    node = Node(store, clock=lambda: 1_800_000_000.0, randomness=os.urandom, master_key=MASTER, hashing_core=core)
    await node.load()
    yield Playground(node, None, Defaults()), node
    await core.close()
    await store.close()


def session(chain_id, key, weight, hashes, elapsed):
    return SimpleNamespace(chain_id=chain_id, key=key, weight=weight, hashes_tried=hashes, elapsed=elapsed)


async def test_the_mining_race_lists_this_chains_sessions_only_with_their_share_of_its_power(facade, monkeypatch):
    playground, node = facade
    await playground.ensure_chain(CHAIN)
    sessions = (
        session(CHAIN, (CHAIN, "alice"), 1.0, 300, 4.7),
        session(OTHER, (OTHER, "dave"), 5.0, 9_999, 9.0),  # another server's miner: not in this race
        session(CHAIN, (CHAIN, "bob"), 3.0, 900, 2.2),
        session(CHAIN, "selfish-pool", 1.0, 10, 1.0),  # a game's own miner, no member
    )
    monkeypatch.setattr(node.hashing_core, "stats", lambda: SimpleNamespace(per_session=sessions))
    race = playground.mining_race(CHAIN)
    assert race.height == 1 and race.expected_hashes == playground.next_block_work(CHAIN)
    assert [(e.owner, e.hashes_tried, e.share_percent, e.elapsed_s) for e in race.entries] == [
        ("bob", 900, 60, 2), ("alice", 300, 20, 4), ("", 10, 20, 1),
    ]


async def test_no_session_is_an_empty_race(facade):
    playground, _ = facade
    await playground.ensure_chain(CHAIN)
    assert playground.mining_race(CHAIN).entries == ()


async def test_recent_blocks_are_the_newest_main_chain_blocks_newest_first(facade):
    playground, node = facade
    await playground.ensure_chain(CHAIN)
    for _ in range(3):
        assert (await playground.mine(CHAIN, "alice")).found
    alice = await playground.address(CHAIN, "alice")
    blocks = await playground.recent_blocks(CHAIN, 2)
    assert [b.height for b in blocks] == [3, 2]
    assert blocks[0].block_hash == node.chain(CHAIN).state.tip_hash
    assert all(b.miner == alice and not b.proof_of_stake and b.transfers == 0 for b in blocks)
    everything = await playground.recent_blocks(CHAIN, 10)
    assert [b.height for b in everything] == [3, 2, 1, 0]  # genesis included, nothing below it


async def test_pending_transfers_are_the_newest_first_and_bounded(facade):
    playground, _ = facade
    await playground.ensure_chain(CHAIN)
    assert (await playground.mine(CHAIN, "alice")).found
    for amount in (1, 2, 3):
        await playground.pay(CHAIN, "alice", "bob", amount)
    newest = playground.pending_transfers(CHAIN, 2)
    assert [e.tx.amount for e in newest] == [3, 2]
    assert playground.pending_transfers(CHAIN, 0) == ()
