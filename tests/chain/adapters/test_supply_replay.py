"""chain/adapters/supply_replay.py: the supply history replayed from the store in the reader thread,
shared by requests at the same moment, kept and extended, started again when the chain changed
under it, and refused (while it goes on) when it takes longer than a request may wait."""

from __future__ import annotations

import asyncio
import threading

import pytest

from chain.consensus.supply_history import SupplyReplay
from chain.errors import SupplyHistoryPendingError
from chain.params import REGTEST
from chain.pos.beacon import ConsensusConfig
from chain.pos.rewards import UNITS_PER_POINT
from tests.chain.adapters.test_node import CHAIN, mine_block, open_node


@pytest.fixture
async def node(tmp_path):
    n = await open_node(tmp_path / "supply.sqlite3")
    await n.create_chain(CHAIN, REGTEST, initial_bits=0x207FFFFF, consensus=ConsensusConfig())
    for owner in ("alice", "bob", "alice"):
        await mine_block(n, owner)
    await n.pay(CHAIN, "alice", await n.address(CHAIN, "bob"), 5, 1)
    await mine_block(n, "bob")
    yield n
    n.close()
    await n.store.close()


@pytest.fixture
def extended(monkeypatch):
    """Every block a replay applies, by height."""
    heights: list[int] = []
    original = SupplyReplay.extend

    def extend(self, block, now, *args):
        original(self, block, now, *args)
        heights.append(self.height)

    monkeypatch.setattr(SupplyReplay, "extend", extend)
    return heights


async def test_requests_at_the_same_moment_share_one_replay_of_the_stored_chain(node, extended):
    supply = node.reads.supply
    first, second = await asyncio.gather(node.supply_history(CHAIN), node.supply_history(CHAIN))
    assert supply.replays_started == 1 and extended == [1, 2, 3, 4]
    assert first == second
    state = node.chain(CHAIN).state
    tip = first.points[-1]
    assert [p.height for p in first.points] == [0, 1, 2, 3, 4]
    assert tip.circulating_units == state.ledger.total_balance() * UNITS_PER_POINT
    assert tip.minted_units == state.issued_supply_units()
    assert all(p.minted_units - p.burned_units == p.staked_units + p.circulating_units for p in first.points)


async def test_a_kept_replay_is_extended_with_only_the_new_blocks(node, extended):
    await node.supply_history(CHAIN)
    await mine_block(node, "carol")
    await mine_block(node, "carol")
    history = await node.supply_history(CHAIN)
    assert extended == [1, 2, 3, 4, 5, 6]
    assert history.points[-1].height == 6 and node.reads.supply.replays_started == 2


async def test_a_new_chain_in_the_server_is_replayed_from_its_genesis(node, extended):
    await node.supply_history(CHAIN)
    await node.delete_chain(CHAIN)
    await node.create_chain(CHAIN, REGTEST, initial_bits=0x207FFFFF, consensus=ConsensusConfig())
    for owner in ("dave", "dave", "dave", "dave", "dave"):
        await mine_block(node, owner)
    history = await node.supply_history(CHAIN)
    # Block 4 of the old chain is not block 4 of the new one: all five blocks replayed again.
    assert extended == [1, 2, 3, 4, 1, 2, 3, 4, 5]
    assert history.points[-1].minted_units == node.chain(CHAIN).state.issued_supply_units()


async def test_a_replay_longer_than_the_wait_is_refused_and_goes_on(node, monkeypatch):
    supply = node.reads.supply
    release = threading.Event()
    original = SupplyReplay.extend

    def slow_extend(self, block, now, *args):
        release.wait(30)
        original(self, block, now, *args)

    monkeypatch.setattr(SupplyReplay, "extend", slow_extend)
    supply.wait_s = 0
    with pytest.raises(SupplyHistoryPendingError, match=r"of 4 so far\); ask again") as pending:
        await node.supply_history(CHAIN)
    assert pending.value.height == 4
    # The replay was not cancelled with the request: released, it finishes, and asking again gets it.
    running = supply._running[CHAIN]
    release.set()
    await running
    supply.wait_s = 30
    history = await node.supply_history(CHAIN)
    assert history.points[-1].height == 4 and supply.replays_started == 2
