"""A node serves only the chains it owns (issue 13: sharded processes on one PostgreSQL database).

The predicate is the bot's (``bot/shard_scope.py``); here plain parity stands in for it.  Both
backends: ownership matters on PostgreSQL, and a one-process SQLite bot must behave as before.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from chain.adapters.beacon_node import BeaconNode
from chain.adapters.node import Node
from chain.adapters.signer import ValidatorSigner
from chain.adapters.storage import Store
from chain.errors import ChainNotOwnedError
from chain.params import REGTEST
from chain.playground import Playground
from chain.pos.beacon import ConsensusConfig

MASTER = bytes(range(32))
NOW = 1_800_000_000.0
EVEN, ODD = 40, 41
BITS = 0x207FFFFF


def even(chain_id: int) -> bool:
    return chain_id % 2 == 0


def odd(chain_id: int) -> bool:
    return chain_id % 2 == 1


class Defaults:
    default_params = REGTEST
    default_consensus = ConsensusConfig(mode="pow", slot_duration_s=2, slots_per_epoch=4, checkpoint_interval_blocks=4)

    def __init__(self) -> None:
        self.rate_asked = 0

    async def hash_rate(self) -> int:
        self.rate_asked += 1
        return 1


def node_on(store: Store, owns=None) -> Node:
    kwargs = {} if owns is None else {"owns": owns}
    return Node(store, clock=lambda: NOW, randomness=os.urandom, master_key=MASTER, **kwargs)


def facade(node: Node, defaults: Defaults) -> Playground:
    signer = ValidatorSigner(node.store, clock=lambda: NOW, randomness=os.urandom, master_key=MASTER)
    return Playground(node, BeaconNode(node, signer), defaults)


@pytest.fixture
async def store(database_target):
    s = await Store.open(database_target)
    yield s
    await s.close()


async def test_a_node_loads_only_the_chains_it_owns(store):
    everyone = node_on(store)
    for chain_id in (EVEN, ODD, EVEN + 2):
        await everyone.create_chain(chain_id, REGTEST, initial_bits=BITS)
    evens, odds = node_on(store, even), node_on(store, odd)
    await evens.load()
    await odds.load()
    assert evens.chain_ids() == [EVEN, EVEN + 2] and odds.chain_ids() == [ODD]
    assert not evens.has_chain(ODD) and evens.offline_chain_ids() == []
    # The beacon side follows the node's chains: its slots run for owned chains only.
    beacon = BeaconNode(evens, ValidatorSigner(store, clock=lambda: NOW, randomness=os.urandom, master_key=MASTER))
    await beacon.load()
    assert set(beacon.consensus_chain_ids()) <= {EVEN, EVEN + 2}
    # The default node (one process) owns every chain, as before.
    again = node_on(store)
    await again.load()
    assert again.chain_ids() == [EVEN, ODD, EVEN + 2]


async def test_a_node_refuses_to_create_reset_or_delete_a_chain_it_does_not_own(store):
    evens = node_on(store, even)
    with pytest.raises(ChainNotOwnedError) as refused:
        await evens.create_chain(ODD, REGTEST, initial_bits=BITS)
    assert refused.value.chain_id == ODD and "another process" in str(refused.value)
    assert await store.chains.chain_ids() == []  # nothing written
    odds = node_on(store, odd)
    await odds.create_chain(ODD, REGTEST, initial_bits=BITS)
    with pytest.raises(ChainNotOwnedError):
        await evens.replace_chain(ODD, REGTEST, initial_bits=BITS)
    with pytest.raises(ChainNotOwnedError):
        await evens.delete_chain(ODD)
    assert await store.chains.chain_ids() == [ODD]
    assert odds.chain(ODD).state.height == 0


async def test_the_facade_refuses_a_server_it_does_not_own_before_it_measures_anything(store):
    defaults = Defaults()
    evens = facade(node_on(store, even), defaults)
    refusals = await asyncio.gather(*(evens.ensure_chain(ODD) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, ChainNotOwnedError) for r in refusals)
    with pytest.raises(ChainNotOwnedError):
        await evens.reset_chain(ODD)
    assert defaults.rate_asked == 0 and await store.chains.chain_ids() == []
    state = await evens.ensure_chain(EVEN)  # its own server's chain is made as before
    assert state.height == 0 and defaults.rate_asked == 1
