"""The beacon node end to end, below Discord: stake on a mined chain, merge, propose, vote, finalize, slash.

Everything runs through the real store, node and signer on a temporary database,
with a clock the test moves.
"""

from __future__ import annotations

import os

import pytest

from bot.storage import OutboxRepository
from chain.adapters.beacon_node import BeaconNode
from chain.adapters.node import Node
from chain.adapters.signer import ValidatorSigner
from chain.adapters.storage import Store
from chain.errors import (
    ChaosModeOffError,
    DepositError,
    DepositPendingError,
    NotStakingChainError,
    NoValidatorError,
)
from chain.events import THE_MERGE, VALIDATOR_SLASHED
from chain.params import REGTEST
from chain.pos.beacon import ConsensusConfig
from chain.pos.rewards import UNITS_PER_POINT
from chain.pos.staking import ValidatorStatus
from tests.chainkit import solve

CHAIN = 7
MASTER = b"\x24" * 32
SLOT_S = 2
CONFIG = ConsensusConfig(mode="pow", slot_duration_s=SLOT_S, slots_per_epoch=4, checkpoint_interval_blocks=4)


class Clock:
    def __init__(self, start: int = 1_800_000_000) -> None:
        self.now = start

    def __call__(self) -> float:
        return float(self.now)


@pytest.fixture
async def world(tmp_path):
    clock = Clock()
    store = await Store.open(tmp_path / "beacon.sqlite3")
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


async def events_of(node, kind):
    return [e for e in await OutboxRepository(node.store.db).all_events(CHAIN) if e.kind == kind]


async def staked_world(world):
    """alice and bob mined, staked 32 each, and are active validators."""
    clock, node, beacon = world
    await mine(node, clock, "alice", 2)
    await mine(node, clock, "bob", 2)
    await beacon.deposit(CHAIN, "alice", 32)
    await beacon.deposit(CHAIN, "bob", 32)
    await mine(node, clock, "carol", 1)  # includes both deposits
    views = {v.owner: v for v in beacon.validators(CHAIN)}
    assert views["alice"].status is ValidatorStatus.PENDING
    await mine(node, clock, "carol", 4)  # crosses an epoch boundary: activation
    assert all(v.status is ValidatorStatus.ACTIVE for v in beacon.validators(CHAIN))
    return clock, node, beacon


async def merge(world):
    clock, node, beacon = await staked_world(world)
    height = node.chain(CHAIN).state.height
    await beacon.schedule_merge(CHAIN, at_height=height + 3)
    await mine(node, clock, "carol", 2)  # commits the schedule, then the terminal block
    assert beacon.is_merged(CHAIN)
    return clock, node, beacon


async def run_slots(clock, beacon, count):
    outcomes = []
    for _ in range(count):
        clock.now += SLOT_S
        outcome = await beacon.on_slot(CHAIN, clock.now)
        if outcome is not None:
            outcomes.append(outcome)
    return outcomes


async def test_deposit_locks_points_and_activates_at_the_next_epoch(world):
    clock, node, beacon = await staked_world(world)
    alice = await node.address(CHAIN, "alice")
    assert node.account(CHAIN, alice).balance == 100 - 32
    view = await beacon.validator(CHAIN, "alice")
    assert view.balance_units == 32 * UNITS_PER_POINT and view.deposited_units == 32 * UNITS_PER_POINT
    state = node.chain(CHAIN).state
    assert state.total_supply_units() == state.issued_supply_units()


async def test_invalid_deposits_change_nothing(world):
    clock, node, beacon = world
    with pytest.raises(DepositError):
        await beacon.deposit(CHAIN, "nobody", 32)  # no points at all
    await mine(node, clock, "alice", 1)
    with pytest.raises(DepositError):
        await beacon.deposit(CHAIN, "alice", 31)  # below the minimum for a new validator
    with pytest.raises(DepositError):
        await beacon.deposit(CHAIN, "alice", 51)  # more than the balance
    await beacon.deposit(CHAIN, "alice", 32)
    with pytest.raises(DepositError):
        await beacon.deposit(CHAIN, "alice", 1)  # one deposit at a time
    bob = await node.address(CHAIN, "bob")
    with pytest.raises(DepositPendingError):
        await node.pay(CHAIN, "alice", bob, 1)  # the deposit holds the wallet's nonce
    assert len(node.chain(CHAIN).op_pool) == 1


async def test_invalid_without_a_validator_or_chaos(world):
    clock, node, beacon = await staked_world(world)
    with pytest.raises(NoValidatorError):
        await beacon.withdraw(CHAIN, "carol")
    with pytest.raises(ChaosModeOffError):
        await beacon.attest(CHAIN, "alice", double_vote=True)


async def test_a_chain_without_consensus_config_refuses_staking(tmp_path):
    store = await Store.open(tmp_path / "plain.sqlite3")
    node = Node(store, clock=Clock(), randomness=os.urandom, master_key=MASTER)
    await node.create_chain(CHAIN, REGTEST, initial_bits=0x207FFFFF)
    beacon = BeaconNode(node, ValidatorSigner(store, clock=Clock(), randomness=os.urandom, master_key=MASTER))
    with pytest.raises(NotStakingChainError):
        await beacon.deposit(CHAIN, "alice", 32)
    await store.close()


async def test_merge_then_slots_propose_settle_and_finalize(world):
    clock, node, beacon = await merge(world)
    await beacon.set_auto_attest(CHAIN, "alice", True)
    await beacon.set_auto_attest(CHAIN, "bob", True)
    height = node.chain(CHAIN).state.height
    outcomes = await run_slots(clock, beacon, 6 * CONFIG.slots_per_epoch)
    proposed = [o for o in outcomes if o.block is not None]
    assert len(proposed) >= len(outcomes) - 1
    assert {o.proposer_owner for o in proposed} <= {"alice", "bob"}
    state = node.chain(CHAIN).state
    assert state.height == height + len(proposed)  # each proposal joins the chain in its own slot
    assert state.beacon.finality.finalized_checkpoint.epoch >= 2
    assert len(await events_of(node, THE_MERGE)) == 1
    assert state.total_supply_units() == state.issued_supply_units()
    report = await node.verify(CHAIN)
    assert report.blocks == state.height + 1


async def test_restart_replays_the_beacon_state(world, tmp_path):
    clock, node, beacon = await merge(world)
    await beacon.set_auto_attest(CHAIN, "alice", True)
    await run_slots(clock, beacon, 6)
    before = node.chain(CHAIN).state
    path = tmp_path / "beacon.sqlite3"
    again = Node(await Store.open(path), clock=clock, randomness=os.urandom, master_key=MASTER)
    await again.load()
    after = again.chain(CHAIN).state
    assert after.tip_hash == before.tip_hash and after.beacon == before.beacon
    assert dict(after.ledger.items()) == dict(before.ledger.items())
    await again.store.close()


async def test_chaos_double_vote_is_detected_included_and_slashed(world):
    clock, node, beacon = await merge(world)
    await beacon.set_auto_attest(CHAIN, "alice", True)
    await run_slots(clock, beacon, 2)
    await node.store.chaos_mode.set_chaos_mode(CHAIN, True)
    receipt = await beacon.attest(CHAIN, "bob", double_vote=True)
    assert receipt.evidence is not None
    bob_before = await beacon.validator(CHAIN, "bob")
    await run_slots(clock, beacon, 3)  # a block includes the evidence, the next slot settles it
    bob = await beacon.validator(CHAIN, "bob")
    assert bob.slashed and bob.status is ValidatorStatus.SLASHED
    [slashed] = await events_of(node, VALIDATOR_SLASHED)
    # Bellatrix's quotient 32, and phase0's whistleblower reward of 1/512 to the including proposer.
    penalty, reward = bob_before.effective_balance_units // 32, bob_before.effective_balance_units // 512
    slashed = slashed.event
    assert slashed.validator_index == bob.index and slashed.offence
    assert (slashed.penalty_units, slashed.whistleblower_reward_units) == (penalty, reward)
    assert slashed.burned_units == penalty - reward
    # At most an epoch of rewards moves the balance besides the slashing (plus the reward if bob included it).
    assert bob.balance_units <= bob_before.balance_units - penalty + reward
    state = node.chain(CHAIN).state
    assert state.total_supply_units() == state.issued_supply_units()


async def test_auto_attest_never_signs_twice_for_an_epoch_across_restarts(world, tmp_path):
    clock, node, beacon = await merge(world)
    await beacon.set_auto_attest(CHAIN, "alice", True)
    await run_slots(clock, beacon, CONFIG.slots_per_epoch)
    # A fresh beacon node (restart): its memory of who voted is gone, the signer's record is not.
    fresh = BeaconNode(node, ValidatorSigner(node.store, clock=clock, randomness=os.urandom, master_key=MASTER))
    node.chain(CHAIN).consensus = None  # the consensus memory lives in the chain's one runtime
    outcomes = await run_slots(clock, fresh, CONFIG.slots_per_epoch)
    assert outcomes
    assert not [v for v in fresh.validators(CHAIN) if v.slashed]


async def test_hybrid_mode_finalizes_proof_of_work_checkpoints(tmp_path):
    """Casper FFG over proof of work: auto-attest votes for each new block, miners include the votes."""
    clock = Clock()
    store = await Store.open(tmp_path / "hybrid.sqlite3")
    node = Node(store, clock=clock, randomness=os.urandom, master_key=MASTER)
    beacon = BeaconNode(node, ValidatorSigner(store, clock=clock, randomness=os.urandom, master_key=MASTER))
    await node.create_chain(CHAIN, REGTEST, initial_bits=0x207FFFFF, consensus=CONFIG.evolve(mode="hybrid"))
    await mine(node, clock, "alice", 2)
    await beacon.deposit(CHAIN, "alice", 32)
    await mine(node, clock, "bob", 1)
    await beacon.set_auto_attest(CHAIN, "alice", True)
    for _ in range(6 * CONFIG.checkpoint_interval_blocks):
        await mine(node, clock, "bob", 1)
        await beacon.on_slot(CHAIN, clock.now)
    state = node.chain(CHAIN).state
    assert not beacon.is_merged(CHAIN)
    assert state.beacon.finality.finalized_checkpoint.epoch >= 2
    assert (await node.verify(CHAIN)).blocks == state.height + 1
    await store.close()


async def test_an_idle_chain_skips_empty_slots_but_never_a_whole_epoch(world):
    """Before: a block every slot forever, with nobody playing (at 1 s slots ~150 MB a day)."""
    from chain.adapters.budget import IDLE_AFTER_S

    clock, node, beacon = await merge(world)
    await run_slots(clock, beacon, 2)  # settle what the Merge left pending
    clock.now += IDLE_AFTER_S  # nobody acts for ten minutes
    outcomes = await run_slots(clock, beacon, 3 * CONFIG.slots_per_epoch)
    skipped = [o for o in outcomes if o.skipped]
    proposed = [o for o in outcomes if o.block is not None]
    assert skipped and proposed
    # At least one block an epoch, so epoch processing (and catching up to the slot) stays bounded.
    assert len(proposed) >= 3 and len(skipped) >= len(outcomes) - 4
    before = len(proposed)
    bob = await node.address(CHAIN, "bob")
    await node.pay(CHAIN, "alice", bob, 1)  # a member acts: every slot gets its block again
    outcomes = await run_slots(clock, beacon, CONFIG.slots_per_epoch)
    assert all(o.block is not None for o in outcomes) and before


async def test_a_server_over_its_block_budget_skips_empty_slots_only(world):
    clock, node, beacon = await merge(world)
    beacon.slots.blocks_per_hour = 2
    beacon.slots.budgets.clear()
    await beacon.set_auto_attest(CHAIN, "alice", False)
    outcomes = await run_slots(clock, beacon, CONFIG.slots_per_epoch)
    assert sum(o.block is not None for o in outcomes) <= 3  # the budget, plus the one-a-epoch floor
    assert any(o.skipped for o in outcomes)
    bob = await node.address(CHAIN, "bob")
    await node.pay(CHAIN, "alice", bob, 1)
    outcomes = await run_slots(clock, beacon, 1)
    assert outcomes[0].block is not None and outcomes[0].block.transfers  # members' actions always go


async def test_status_agrees_with_the_vote_just_signed(world):
    """Issue 9: `/stake status` said "Participation this epoch ❌" right after "Vote signed … 2/3
    reached": it read only votes a block had counted, not the one waiting in the pool."""
    clock, node, beacon = await merge(world)
    await run_slots(clock, beacon, 1)
    receipt = await beacon.attest(CHAIN, "alice", now=clock.now)
    assert receipt.attestation in [e.operation for e in node.chain(CHAIN).op_pool]  # not in a block yet
    view = await beacon.validator(CHAIN, "alice")
    assert view.voted_current_epoch
    assert {v.owner: v.voted_current_epoch for v in beacon.validators(CHAIN)}["alice"]


async def test_a_second_block_for_a_slot_joins_the_tree_and_the_votes_move_the_head_to_it(world):
    """Issue 11, item 2: every proof-of-stake block joins the tree in its own slot, and the head is the
    branch the votes choose (LMD-GHOST), switched to in one transaction, announced as a reorg."""
    clock, node, beacon = await merge(world)
    await node.store.chaos_mode.set_chaos_mode(CHAIN, True)
    while True:  # a slot with a block, not the first of its epoch (there the votes' target is the block itself)
        (outcome,) = await run_slots(clock, beacon, 1)
        if outcome.block is not None and outcome.slot % CONFIG.slots_per_epoch != 0:
            break
    first = outcome.block
    assert node.chain(CHAIN).state.tip_hash == first.hash()  # in its own slot, not the next
    second = await beacon.equivocate(CHAIN, outcome.proposer_owner, clock.now)
    assert second.header.prev_hash == first.header.prev_hash and second.hash() != first.hash()
    assert second.hash() in node.tree(CHAIN) and node.chain(CHAIN).state.tip_hash == first.hash()
    for owner in ("alice", "bob"):
        await beacon.attest(CHAIN, owner, head_root=second.hash())
    (moved,) = await run_slots(clock, beacon, 1)
    assert moved.orphaned == (first.hash(),)
    state = node.chain(CHAIN).state
    assert state.height_of(second.hash()) is not None  # the second block is on the main chain now
    assert moved.block is None or moved.block.header.prev_hash == second.hash()
    [reorg] = await events_of(node, "chain_reorganized")
    assert reorg.event.proof_of_stake and reorg.event.depth == 1 and reorg.event.fork_hash == first.header.prev_hash
    # Logged with the switch, as a reorg by work is (/learn's reorg lesson reads the log).
    (logged,) = await node.store.reorg_log.since(CHAIN, 0, 10)
    assert (logged.kind, logged.depth, logged.orphaned) == ("reorg", 1, frozenset({first.coinbase.miner}))
    report = await node.verify(CHAIN)
    assert report.blocks == state.height + 1
    assert state.total_supply_units() == state.issued_supply_units()


async def test_without_votes_for_it_a_second_block_for_a_slot_stays_a_side_block(world):
    clock, node, beacon = await merge(world)
    await beacon.set_auto_attest(CHAIN, "alice", True)
    await beacon.set_auto_attest(CHAIN, "bob", True)
    await node.store.chaos_mode.set_chaos_mode(CHAIN, True)
    while True:
        (outcome,) = await run_slots(clock, beacon, 1)
        if outcome.block is not None:
            break
    second = await beacon.equivocate(CHAIN, outcome.proposer_owner, clock.now)
    outcomes = await run_slots(clock, beacon, 3)
    assert all(o.orphaned == () for o in outcomes)
    assert node.chain(CHAIN).state.height_of(outcome.block.hash()) is not None
    assert second.hash() in node.tree(CHAIN) and node.chain(CHAIN).state.height_of(second.hash()) is None
    assert await events_of(node, "chain_reorganized") == []
