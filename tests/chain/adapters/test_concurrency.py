"""Conflicting commands fired at the same moment: every acknowledged action happens exactly once.

Each test starts the conflicting calls together with ``asyncio.gather`` on one
event loop, as the bot's command tree does when two members (or one member's
double click) arrive in the same instant, and then checks that what was
acknowledged is what the chain did.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from bot.storage import OutboxRepository
from chain.adapters.beacon_node import BeaconNode
from chain.adapters.node import Node
from chain.adapters.signer import ValidatorSigner
from chain.adapters.storage import Store
from chain.errors import ChainError, DepositError, DepositPendingError
from chain.mode import Mode
from chain.params import REGTEST
from chain.pos.beacon import ConsensusConfig
from tests.chainkit import solve

CHAIN = 11
MASTER = b"\x33" * 32
CONFIG = ConsensusConfig(mode="pow", slot_duration_s=2, slots_per_epoch=4, checkpoint_interval_blocks=4)


class Clock:
    def __init__(self, start: int = 1_800_000_000) -> None:
        self.now = start

    def __call__(self) -> float:
        return float(self.now)


@pytest.fixture
async def world(database_target):
    clock = Clock()
    store = await Store.open(database_target)
    node = Node(store, clock=clock, randomness=os.urandom, master_key=MASTER)
    await node.load()
    signer = ValidatorSigner(store, clock=clock, randomness=os.urandom, master_key=MASTER)
    beacon = BeaconNode(node, signer)
    await node.create_chain(CHAIN, REGTEST, initial_bits=0x207FFFFF, consensus=CONFIG)
    yield clock, node, beacon
    await store.close()


async def mine(node, clock, owner, blocks=1):
    for _ in range(blocks):
        clock.now += 60
        miner = await node.address(CHAIN, owner)
        await node.submit_block(CHAIN, solve(node.template(CHAIN, miner), REGTEST))


async def settle(calls):
    """Run the calls at the same moment; acknowledged results and refusals, in order."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, ChainError):
            raise result
    return results


def supply_adds_up(node) -> bool:
    state = node.chain(CHAIN).state
    return state.total_supply_units() == state.issued_supply_units()


async def test_two_payments_at_once_both_confirm(world):
    clock, node, _ = world
    await mine(node, clock, "alice")
    bob, carol = await node.address(CHAIN, "bob"), await node.address(CHAIN, "carol")
    # Different fees: before the fix the second reused the first's nonce and replaced it as a fee bump.
    first, second = await settle([node.pay(CHAIN, "alice", bob, 5, fee=1), node.pay(CHAIN, "alice", carol, 7, fee=3)])
    assert {first.entry.tx.nonce, second.entry.tx.nonce} == {0, 1}
    await mine(node, clock, "dave")
    assert node.account(CHAIN, bob).balance == 5 and node.account(CHAIN, carol).balance == 7
    assert supply_adds_up(node)


async def test_many_payments_at_once_every_acknowledged_one_confirms(world):
    clock, node, _ = world
    await mine(node, clock, "alice", 3)
    recipients = [await node.address(CHAIN, f"m{i}") for i in range(40)]
    alice = await node.address(CHAIN, "alice")
    before = node.account(CHAIN, alice).balance
    results = await settle([node.pay(CHAIN, "alice", r, 1, fee=i % 4) for i, r in enumerate(recipients)])
    acknowledged = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    # The mempool takes 25 pending transfers per sender: the rest are refused, clearly, not dropped.
    assert len(acknowledged) == REGTEST.max_pending_per_account and refused
    assert all("pending" in str(r) for r in refused)
    assert sorted(a.entry.tx.nonce for a in acknowledged) == list(range(len(acknowledged)))
    await mine(node, clock, "dave")
    paid = [r for r in recipients if node.account(CHAIN, r).balance == 1]
    assert len(paid) == len(acknowledged)
    fees = sum(a.entry.tx.fee for a in acknowledged)
    assert node.account(CHAIN, alice).balance == before - len(acknowledged) - fees
    assert len(node.chain(CHAIN).mempool) == 0 and supply_adds_up(node)


async def test_a_payment_the_bot_builds_never_replaces_another(world):
    clock, node, _ = world
    await mine(node, clock, "alice")
    bob = await node.address(CHAIN, "bob")
    first = await node.pay(CHAIN, "alice", bob, 5, fee=1)
    second = await node.pay(CHAIN, "alice", bob, 6, fee=9)
    assert second.replaced is None and first.entry.txid in node.chain(CHAIN).mempool


async def test_deposit_racing_a_payment_never_freezes_the_wallet(world):
    clock, node, beacon = world
    await mine(node, clock, "alice", 2)
    bob = await node.address(CHAIN, "bob")
    results = await settle([
        beacon.deposit(CHAIN, "alice", 32), node.pay(CHAIN, "alice", bob, 5), beacon.deposit(CHAIN, "alice", 33),
    ])
    acknowledged = [r for r in results if not isinstance(r, BaseException)]
    assert len(acknowledged) == 1, results  # one of the three holds the wallet's nonce; the others are told so
    assert all(isinstance(r, (DepositError, DepositPendingError)) for r in results if isinstance(r, BaseException))
    await mine(node, clock, "carol")
    # Whatever went in, the wallet is free again: a payment and a deposit are both accepted.
    await node.pay(CHAIN, "alice", bob, 1)
    await mine(node, clock, "carol")
    await beacon.deposit(CHAIN, "alice", 32)
    assert supply_adds_up(node)


async def test_a_dead_deposit_is_pruned_when_a_block_lands_on_a_pow_chain(world):
    """A deposit whose nonce a block used (stored by an older version, or raced in) must not
    freeze the wallet: the block that makes it dead prunes it, in every mode."""
    clock, node, beacon = world
    await mine(node, clock, "alice", 2)
    wallet_key = await node.wallet(CHAIN, "alice")
    bob = await node.address(CHAIN, "bob")
    await node.pay(CHAIN, "alice", bob, 5)  # nonce 0
    # A deposit signed with the same nonce 0 slipped into the pool (as the old race allowed).
    deposit = await beacon.signer.sign_deposit(CHAIN, "alice", wallet_key, 32, 0)
    await node.add_operation(CHAIN, deposit)
    await mine(node, clock, "carol")  # includes the payment: nonce 0 is used, the deposit can never go in
    assert node.pending_deposits(CHAIN, wallet_key.public_key) == []
    assert (await node.store.load_chain(CHAIN)).operations == []
    await node.pay(CHAIN, "alice", bob, 1)


async def test_dead_operations_are_pruned_at_startup(world, tmp_path):
    clock, node, beacon = world
    await mine(node, clock, "alice", 2)
    wallet_key = await node.wallet(CHAIN, "alice")
    bob = await node.address(CHAIN, "bob")
    await node.pay(CHAIN, "alice", bob, 5)
    await mine(node, clock, "carol")
    stale = await beacon.signer.sign_deposit(CHAIN, "alice", wallet_key, 32, 0)
    entry = node.chain(CHAIN).op_pool.prepare(stale)
    await node.store.add_operation(CHAIN, entry)  # written by an older version that never pruned it
    again = Node(node.store, clock=clock, randomness=os.urandom, master_key=MASTER)
    await again.load()
    assert again.pending_deposits(CHAIN, wallet_key.public_key) == []
    assert (await node.store.load_chain(CHAIN)).operations == []


async def test_a_command_during_a_mode_switch_never_slips_a_chain_in(world):
    """Before: switch_mode deleted the chain, then created the new one; a command arriving in
    between created a default pow chain, and the switch failed with the old chain already gone."""
    from cogs.services import Services

    clock, node, beacon = world
    await mine(node, clock, "alice", 2)
    services = Services(node=node, hashing_core=None, notifier=None, server_settings_store=None, epoch_messages=None,
                        beacon=beacon, measured_hash_rate=1)
    switching = asyncio.create_task(beacon.switch_mode(CHAIN, Mode.POS, "alice", int(clock())))
    seen = []
    while not switching.done():
        seen.append(await services.ensure_chain(CHAIN))  # what any command does first
        await asyncio.sleep(0)
    config = await switching
    assert config.mode == "pos" and beacon.mode(CHAIN) == "pos"
    # Every command saw the old chain or the new one, never a third.
    assert {s.tip_hash for s in seen} <= {s.tip_hash for s in seen[:1]} | {node.chain(CHAIN).state.hashes[0]}
    alice = await node.address(CHAIN, "alice")
    assert node.account(CHAIN, alice).balance == 100  # the genesis allocation of the new chain


async def test_a_payment_waiting_during_a_reset_lands_on_the_new_chain_or_is_refused(world):
    clock, node, beacon = world
    await mine(node, clock, "alice", 2)
    bob = await node.address(CHAIN, "bob")
    results = await settle([
        beacon.reset(CHAIN, REGTEST, initial_bits=0x207FFFFF, consensus=CONFIG),
        node.pay(CHAIN, "alice", bob, 5),
    ])
    # The payment ran either before the reset (and went with the old chain) or after it (and was
    # refused: alice has nothing on the new chain). Never half of each.
    assert results[0] is None
    assert node.chain(CHAIN).state.height == 0 and len(node.chain(CHAIN).mempool) == 0
    assert (await node.store.load_chain(CHAIN)).mempool == []


async def test_first_deposits_at_once_make_one_validator_key_and_refusals_make_none(world):
    clock, node, beacon = world
    await mine(node, clock, "alice", 2)
    store = node.store
    # Refused by its checks (too small, more than the balance): no key.
    for amount in (5, 10**9):
        with pytest.raises(DepositError):
            await beacon.deposit(CHAIN, "alice", amount)
    assert await store.validator_keys.all(CHAIN) == []
    # Two first deposits at once: one is pooled with the one key; the other is refused.
    results = await settle([beacon.deposit(CHAIN, "alice", 32), beacon.deposit(CHAIN, "alice", 40)])
    assert sum(not isinstance(r, BaseException) for r in results) == 1, results
    [key] = await store.validator_keys.all(CHAIN)
    [deposit] = node.pending_deposits(CHAIN, (await node.wallet(CHAIN, "alice")).public_key)
    assert key.owner == "alice" and deposit.validator == key.pubkey
    assert await beacon.signer.find_validator_key(CHAIN, "alice") == key.pubkey
    await mine(node, clock, "carol")
    view = await beacon.validator(CHAIN, "alice")
    assert view is not None and view.pubkey == key.pubkey


async def test_a_deposit_refused_by_the_block_rules_leaves_no_key(world, monkeypatch):
    clock, node, beacon = world
    await mine(node, clock, "alice", 2)

    async def refuse(chain_id, operation):
        raise DepositError("the next block would not take it")
    monkeypatch.setattr(beacon.stake_requests, "_check_operation", refuse)
    with pytest.raises(DepositError):
        await beacon.deposit(CHAIN, "alice", 32)
    assert await node.store.validator_keys.all(CHAIN) == []
    assert await beacon.signer.find_validator_key(CHAIN, "alice") is None


async def test_a_reset_drops_the_old_chains_undelivered_announcements(world):
    """Issue 9: a channel set up after a reset announced blocks of the chain that was thrown away."""
    clock, node, beacon = world
    await mine(node, clock, "alice", 2)
    assert await OutboxRepository(node.store.db).pending_events(CHAIN)
    await beacon.reset(CHAIN, REGTEST, initial_bits=0x207FFFFF, consensus=CONFIG)
    assert await OutboxRepository(node.store.db).pending_events(CHAIN) == []
    await mine(node, clock, "bob")
    assert {e.event.height for e in await OutboxRepository(node.store.db).pending_events(CHAIN)} == {1}


@pytest.mark.parametrize("reset_first", [True, False])
async def test_a_reset_racing_a_block_time_change_keeps_the_rules_the_old_chain_ended_with(world, reset_first):
    """Issue 9 item 12: a reset keeps the rules in force. They are read under the chain's lock, in the
    reset's one atomic step: a block committing a new block time either landed first (and the new chain
    keeps its block time) or was refused (and the new chain keeps the old one), never lost in between."""
    from cogs.services import Services

    clock, node, beacon = world
    await mine(node, clock, "alice", 2)
    services = Services(node=node, hashing_core=None, notifier=None, server_settings_store=None, epoch_messages=None,
                        beacon=beacon, measured_hash_rate=1,
                        default_params=REGTEST, default_consensus=CONFIG)
    slower = node.chain(CHAIN).state.params.evolve(target_spacing_s=120)
    await node.propose_params(CHAIN, slower)
    clock.now += 60
    block = solve(node.template(CHAIN, await node.address(CHAIN, "alice")), REGTEST)
    calls = [services.reset_chain(CHAIN), node.submit_block(CHAIN, block)]
    results = await settle(calls if reset_first else calls[::-1])
    committed = not isinstance(results[1] if reset_first else results[0], ChainError)
    state = node.chain(CHAIN).state
    assert state.height == 0
    assert state.params.target_spacing_s == (120 if committed else 60)
    assert (await node.store.load_chain(CHAIN)).params == state.params  # the store agrees


async def test_a_reset_fired_during_a_slot_tick_waits_for_the_tick(world, monkeypatch):
    """The beacon node's parts share one ``BeaconChains``, so one slot lock per chain: a reset fired
    while the slot driver is proposing replaces the chain only once the tick is over, and the tick
    never mixes the old chain with the new one. (Issue 10's split of BeaconNode: a part built with a
    ``BeaconChains`` of its own would let the two overlap.)"""
    clock, node, beacon = world
    await mine(node, clock, "alice", 2)
    await beacon.switch_mode(CHAIN, Mode.POS, "alice", int(clock()))
    old_genesis = node.chain(CHAIN).state.genesis_hash
    await node.pay(CHAIN, "alice", await node.address(CHAIN, "bob"), 1)  # the slot has something to carry
    proposing, release = asyncio.Event(), asyncio.Event()
    propose, replace_chain = beacon.slots._propose, node.replace_chain

    async def slow_propose(*args, **kwargs):
        proposing.set()
        await release.wait()
        return await propose(*args, **kwargs)

    replaced_after_tick = []

    async def recording_replace_chain(*args, **kwargs):
        replaced_after_tick.append(tick.done())
        return await replace_chain(*args, **kwargs)

    monkeypatch.setattr(beacon.slots, "_propose", slow_propose)
    monkeypatch.setattr(node, "replace_chain", recording_replace_chain)
    clock.now += 60
    tick = asyncio.create_task(beacon.on_slot(CHAIN, int(clock())))
    await proposing.wait()
    reset = asyncio.create_task(beacon.reset(CHAIN, REGTEST, initial_bits=0x207FFFFF, consensus=CONFIG))
    for _ in range(5):  # the reset's first steps: it takes the slot lock, or waits for it
        await asyncio.sleep(0)
    assert node.chain(CHAIN).state.genesis_hash == old_genesis
    release.set()
    outcome, _ = await asyncio.gather(tick, reset)
    assert replaced_after_tick == [True]
    assert outcome is not None and outcome.block is not None  # proposed on the old chain, before the reset
    assert node.chain(CHAIN).state.genesis_hash != old_genesis and node.chain(CHAIN).state.height == 0
    assert node.chain(CHAIN).consensus is None  # the tick's memory went with the old chain
