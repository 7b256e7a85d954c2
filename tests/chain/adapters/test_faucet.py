"""The faucet: a starter allowance for members who had no wallet at genesis.

Its points are a genesis allocation to a bot-owned wallet, paid out by ordinary signed
transfers, so every supply check (conservation, ``Node.verify``'s full replay) keeps holding.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from chain.adapters.beacon_node import BeaconNode
from chain.adapters.node import FAUCET_OWNER, Node
from chain.adapters.signer import ValidatorSigner
from chain.adapters.storage import Store
from chain.errors import ChainError, FaucetCooldownError, FaucetEmptyError, NoFaucetError
from chain.mode import Mode
from chain.params import REGTEST
from chain.pos.beacon import ConsensusConfig
from tests.chainkit import solve

CHAIN = 12
MASTER = b"\x44" * 32
BITS = 0x207FFFFF
POW = ConsensusConfig(mode="pow", slot_duration_s=2, slots_per_epoch=4, checkpoint_interval_blocks=4)
FUND = 1_000
HOUR = 3_600


class Clock:
    def __init__(self, start: int = 1_800_000_000) -> None:
        self.now = start

    def __call__(self) -> float:
        return float(self.now)


async def open_node(path, clock, *, fund=FUND):
    store = await Store.open(path)
    node = Node(store, clock=clock, randomness=os.urandom, master_key=MASTER, faucet_fund_points=fund)
    await node.load()
    return store, node


@pytest.fixture
async def world(tmp_path):
    clock = Clock()
    store, node = await open_node(tmp_path / "faucet.sqlite3", clock)
    await node.create_chain(CHAIN, REGTEST, initial_bits=BITS, consensus=POW)
    yield clock, node
    await node.store.close()


async def mine(node, clock, owner="miner"):
    clock.now += 60
    miner = await node.address(CHAIN, owner)
    return await node.submit_block(CHAIN, solve(node.template(CHAIN, miner), REGTEST))


def supply_adds_up(node) -> bool:
    state = node.chain(CHAIN).state
    return state.total_supply_units() == state.issued_supply_units()


async def settle(calls):
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, ChainError):
            raise result
    return results


async def test_a_new_chain_funds_the_faucet_at_genesis_and_verify_replays_it(world):
    clock, node = world
    faucet = node.faucet_address(CHAIN)
    assert faucet == await node.address(CHAIN, FAUCET_OWNER)
    assert node.account(CHAIN, faucet).balance == FUND
    assert supply_adds_up(node)
    assert (await node.verify(CHAIN)).blocks == 1


async def test_a_claim_pays_the_member_in_the_next_block_and_supply_adds_up(world):
    clock, node = world
    carol = await node.address(CHAIN, "carol")
    claim = await node.faucet(CHAIN, "carol", 32, cooldown_s=HOUR)
    assert claim.amount == 32 and claim.next_claim_at == clock.now + HOUR and claim.left == FUND - 32
    assert node.account(CHAIN, carol).balance == 0  # pending until a block takes it
    assert [e.tx.recipient for e in node.chain(CHAIN).mempool.pending_for(node.faucet_address(CHAIN))] == [carol]
    await mine(node, clock)
    assert node.account(CHAIN, carol).balance == 32
    assert node.account(CHAIN, node.faucet_address(CHAIN)).balance == FUND - 32
    assert supply_adds_up(node)
    report = await node.verify(CHAIN)
    assert report.blocks == 2
    # Carol can spend it at once.
    await node.pay(CHAIN, "carol", await node.address(CHAIN, "bob"), 10)
    await mine(node, clock)
    assert node.account(CHAIN, carol).balance == 22 and supply_adds_up(node)


async def test_a_second_claim_within_the_cooldown_is_refused_and_changes_nothing(world):
    clock, node = world
    await node.faucet(CHAIN, "carol", 10, cooldown_s=HOUR)
    pool = len(node.chain(CHAIN).mempool)
    clock.now += HOUR - 1
    with pytest.raises(FaucetCooldownError) as refused:
        await node.faucet(CHAIN, "carol", 10, cooldown_s=HOUR)
    assert refused.value.available_at == clock.now + 1
    assert len(node.chain(CHAIN).mempool) == pool
    clock.now += 1
    await node.faucet(CHAIN, "carol", 10, cooldown_s=HOUR)
    assert len(node.chain(CHAIN).mempool) == pool + 1


async def test_the_cooldown_survives_a_restart(world, tmp_path):
    clock, node = world
    await node.faucet(CHAIN, "carol", 10, cooldown_s=HOUR)
    # A new process on the same database: nothing of the first node's memory.
    store, again = await open_node(tmp_path / "faucet.sqlite3", clock)
    try:
        with pytest.raises(FaucetCooldownError):
            await again.faucet(CHAIN, "carol", 10, cooldown_s=HOUR)
        # The pending claim came back with the mempool, and still confirms.
        await mine(again, clock)
        assert again.account(CHAIN, await again.address(CHAIN, "carol")).balance == 10
    finally:
        await store.close()


async def test_an_empty_faucet_refuses_and_changes_nothing(world):
    clock, node = world
    await node.faucet(CHAIN, "carol", 600, cooldown_s=HOUR)
    with pytest.raises(FaucetEmptyError, match="400"):
        await node.faucet(CHAIN, "dave", 600, cooldown_s=HOUR)
    # Dave's refused claim started no cooldown: a claim the faucet can cover goes through.
    await node.faucet(CHAIN, "dave", 400, cooldown_s=HOUR)
    with pytest.raises(FaucetEmptyError):
        await node.faucet(CHAIN, "erin", 1, cooldown_s=HOUR)


async def test_more_claims_than_the_per_account_limit_wait_for_one_block(world):
    clock, node = world
    members = [f"member{i}" for i in range(REGTEST.max_pending_per_account + 5)]
    for member in members:
        await node.faucet(CHAIN, member, 10, cooldown_s=HOUR)
    await mine(node, clock)
    for member in members:
        assert node.account(CHAIN, await node.address(CHAIN, member)).balance == 10
    assert supply_adds_up(node)


async def test_a_chain_created_without_a_faucet_refuses_with_the_way_out(tmp_path):
    clock = Clock()
    store, node = await open_node(tmp_path / "old.sqlite3", clock, fund=0)
    try:
        await node.create_chain(CHAIN, REGTEST, initial_bits=BITS, consensus=POW)
        with pytest.raises(NoFaucetError, match="created before the faucet existed") as refused:
            await node.faucet(CHAIN, "carol", 10, cooldown_s=HOUR)
        assert refused.value.code == "no_faucet" and refused.value.chain_id == CHAIN  # cogs add the way out
        assert len(node.chain(CHAIN).mempool) == 0
        # A node with a faucet now (the bot after an upgrade) still refuses on the old chain...
        node.faucet_fund_points = FUND
        await node.load()
        with pytest.raises(NoFaucetError):
            await node.faucet(CHAIN, "carol", 10, cooldown_s=HOUR)
        # ...and the reset makes one.
        await node.replace_chain(CHAIN, REGTEST, initial_bits=BITS, consensus=POW)
        await node.faucet(CHAIN, "carol", 10, cooldown_s=HOUR)
    finally:
        await store.close()


async def test_a_reset_refills_the_faucet_and_clears_the_cooldowns(world):
    clock, node = world
    await node.faucet(CHAIN, "carol", 600, cooldown_s=HOUR)
    await mine(node, clock)
    await node.replace_chain(CHAIN, REGTEST, initial_bits=BITS, consensus=POW)
    assert node.account(CHAIN, node.faucet_address(CHAIN)).balance == FUND
    await node.faucet(CHAIN, "carol", 10, cooldown_s=HOUR)


async def test_a_pos_switch_funds_the_faucet_once_not_as_a_member(world, tmp_path):
    clock, node = world
    signer = ValidatorSigner(node.store, clock=clock, randomness=os.urandom, master_key=MASTER)
    beacon = BeaconNode(node, signer)
    await node.address(CHAIN, "bob")
    await beacon.switch_mode(CHAIN, Mode.POS, "alice", node.now())
    faucet = node.faucet_address(CHAIN)
    allocations = [a for a in node.chain(CHAIN).state.consensus.genesis_allocations if a.address == faucet]
    assert [a.amount_points for a in allocations] == [FUND]
    assert node.account(CHAIN, faucet).balance == FUND
    claim = await node.faucet(CHAIN, "carol", 32, cooldown_s=HOUR)
    assert claim.amount == 32 and supply_adds_up(node)


# --- at the same moment ------------------------------------------------------------------


async def test_one_member_claiming_twice_at_once_gets_one_claim(world):
    clock, node = world
    results = await settle([node.faucet(CHAIN, "carol", 10, cooldown_s=HOUR) for _ in range(5)])
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, FaucetCooldownError) for r in results if isinstance(r, BaseException))
    assert len(node.chain(CHAIN).mempool) == 1


async def test_members_draining_the_last_points_at_once_never_overdraw(world):
    clock, node = world
    await node.faucet(CHAIN, "whale", FUND - 25, cooldown_s=HOUR)
    # 25 points left, five members ask for 10 at once: two are paid, three refused.
    results = await settle([node.faucet(CHAIN, f"m{i}", 10, cooldown_s=HOUR) for i in range(5)])
    paid = [r for r in results if not isinstance(r, BaseException)]
    assert len(paid) == 2 and all(isinstance(r, FaucetEmptyError) for r in results if isinstance(r, BaseException))
    await mine(node, clock)
    assert node.account(CHAIN, node.faucet_address(CHAIN)).balance == 5
    assert len(node.chain(CHAIN).mempool) == 0 and supply_adds_up(node)
    # The refused members started no cooldown: they may ask again once the faucet has points.
    refused = [f"m{i}" for i, r in enumerate(results) if isinstance(r, BaseException)]
    assert await node.store.mempool.faucet_claimed_at(CHAIN, refused[0]) is None
