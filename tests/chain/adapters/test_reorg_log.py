"""Reorgs and finality's refusals are logged with them (``reorg_log``, migration 15), and a hybrid
chain's finality really refuses a heavier branch from below its finalized checkpoint.

The log is what /learn's reorg lessons read (``Playground.complete_lesson``): it must hold exactly the
reorgs that happened (written in the reorg's own transaction) and who took part in each.
"""

from __future__ import annotations

import os

import pytest

from bot.storage import OutboxRepository
from chain.adapters.beacon_node import BeaconNode
from chain.adapters.branches import BeaconStates
from chain.adapters.node import Node
from chain.adapters.signer import ValidatorSigner
from chain.adapters.storage import ReorgRecord, Store
from chain.errors import (
    BranchStateUnavailableError,
    BranchTooDeepError,
    ReorgTipMismatchError,
    UndoRecordMissingError,
    UnknownParentError,
)
from chain.events import ChainReorganized, ReorgRefusedByFinality
from chain.params import REGTEST
from chain.pos.beacon import ConsensusConfig
from tests.chainkit import solve

CHAIN = 7
MASTER = b"\x31" * 32
CONFIG = ConsensusConfig(mode="hybrid", slot_duration_s=2, slots_per_epoch=4, checkpoint_interval_blocks=4)


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
    yield clock, node
    await store.close()


async def build_on(node: Node, clock: Clock, parent: bytes, owner: str):
    clock.now += 60
    miner = await node.address(CHAIN, owner)
    return solve(await node.branch_template(CHAIN, parent, miner), REGTEST)


async def extend(node: Node, clock: Clock, parent: bytes, count: int, owner: str):
    accepted = []
    for _ in range(count):
        result = await node.accept_block(CHAIN, await build_on(node, clock, parent, owner))
        accepted.append(result)
        parent = result.entry.block_hash
    return accepted


async def test_a_reorg_is_logged_with_who_was_orphaned_and_who_won(world):
    clock, node = world
    await node.create_chain(CHAIN, REGTEST, initial_bits=0x207FFFFF)
    genesis = node.chain(CHAIN).state.tip_hash
    (fork,) = await extend(node, clock, genesis, 1, "carol")
    await extend(node, clock, fork.entry.block_hash, 1, "alice")
    side = await extend(node, clock, fork.entry.block_hash, 1, "bob")
    assert not side[0].on_main
    assert await node.store.reorg_log.last_seq(CHAIN) == 0  # a side block alone is no reorg
    (won,) = await extend(node, clock, side[0].entry.block_hash, 1, "dave")
    assert won.reorg is not None
    alice, bob, dave = [await node.address(CHAIN, o) for o in ("alice", "bob", "dave")]
    assert await node.store.reorg_log.since(CHAIN, 0, 10) == [
        ReorgRecord("reorg", 3, 1, frozenset({alice}), frozenset({bob, dave}), seq=1)
    ]
    assert await node.store.reorg_log.since(CHAIN, 1, 10) == []


async def test_a_reset_forgets_the_log(world):
    clock, node = world
    await node.create_chain(CHAIN, REGTEST, initial_bits=0x207FFFFF)
    genesis = node.chain(CHAIN).state.tip_hash
    await extend(node, clock, genesis, 1, "alice")
    await extend(node, clock, genesis, 2, "bob")
    assert await node.store.reorg_log.last_seq(CHAIN) == 1
    await node.replace_chain(CHAIN, REGTEST, initial_bits=0x207FFFFF)
    assert await node.store.reorg_log.last_seq(CHAIN) == 0


async def test_invalid_reorg_that_the_store_refuses_logs_nothing(world):
    clock, node = world
    await node.create_chain(CHAIN, REGTEST, initial_bits=0x207FFFFF)
    genesis = node.chain(CHAIN).state.tip_hash
    await extend(node, clock, genesis, 1, "alice")
    record = ReorgRecord("reorg", 1, 1, frozenset({b"\x01" * 32}), frozenset({b"\x02" * 32}))
    with pytest.raises(ReorgTipMismatchError):  # not the stored tip: the transaction rolls back
        await node.store.reorganize(CHAIN, [b"\x09" * 32], [], [], 0, log=record)
    assert await node.store.reorg_log.last_seq(CHAIN) == 0


async def finalized_hybrid_chain(clock: Clock, node: Node) -> BeaconNode:
    """A hybrid chain (proof of work + Casper FFG) with a finalized checkpoint above genesis, as
    tests/chain/adapters/test_beacon_node.py reaches it: auto-attest votes, miners include the votes."""
    beacon = BeaconNode(node, ValidatorSigner(node.store, clock=clock, randomness=os.urandom, master_key=MASTER))
    await node.create_chain(CHAIN, REGTEST, initial_bits=0x207FFFFF, consensus=CONFIG)

    async def mine(owner: str) -> None:
        clock.now += 60
        await node.submit_block(CHAIN, solve(node.template(CHAIN, await node.address(CHAIN, owner)), REGTEST))

    for _ in range(2):
        await mine("alice")
    await beacon.deposit(CHAIN, "alice", 32)
    await mine("bob")
    await beacon.set_auto_attest(CHAIN, "alice", True)
    for _ in range(6 * CONFIG.checkpoint_interval_blocks):
        await mine("bob")
        await beacon.on_slot(CHAIN, clock.now)
    return beacon


async def test_hybrid_finality_refuses_a_heavier_branch_from_below_the_checkpoint(world):
    clock, node = world
    beacon = await finalized_hybrid_chain(clock, node)
    state = node.chain(CHAIN).state
    assert not beacon.is_merged(CHAIN)
    finalized = node.tree(CHAIN).get(state.beacon.finality.finalized_checkpoint.root)
    assert finalized.height > 0
    tip_before, height_before = state.tip_hash, state.height
    blocks_before = [b.hash() async for b in node.store.blocks.iter_blocks(CHAIN)]
    # A branch from the finalized block's parent, one block longer than the main chain: more work.
    branch = await extend(node, clock, finalized.parent_hash, height_before - finalized.height + 2, "mallory")
    assert not any(a.on_main or a.reorg is not None for a in branch)
    refusals = [e for a in branch for e in a.events]
    assert len(refusals) == 1 and isinstance(refusals[0], ReorgRefusedByFinality)  # announced once
    refusal = refusals[0]
    assert refusal.finalized_hash == finalized.block_hash and refusal.finalized_height == finalized.height
    assert refusal.branch_weight > refusal.canonical_weight
    # The announcement came with the block that made the branch heavier; the ones after it only grow it.
    assert branch[height_before - finalized.height + 1].events == (refusal,)
    # The main chain did not move, in memory or on disk; every branch block is kept as a side block.
    assert node.chain(CHAIN).state.tip_hash == tip_before and node.chain(CHAIN).state.height == height_before
    assert [b.hash() async for b in node.store.blocks.iter_blocks(CHAIN)] == blocks_before
    for accepted in branch:
        assert (await node.store.tree.side_block(CHAIN, accepted.entry.block_hash)).hash() == accepted.entry.block_hash
    stored = [e.event for e in await OutboxRepository(node.store.db).all_events(CHAIN)]
    assert [e for e in stored if isinstance(e, ReorgRefusedByFinality)] == [refusal]
    assert not [e for e in stored if isinstance(e, ChainReorganized)]
    # Logged once, with the refused branch's miner; no reorg logged.
    mallory = await node.address(CHAIN, "mallory")
    (logged,) = await node.store.reorg_log.since(CHAIN, 0, 10)
    assert (logged.kind, logged.depth, logged.branch, logged.orphaned) == (
        "refused", refusal.depth, frozenset({mallory}), frozenset()
    )
    assert (await node.verify(CHAIN)).blocks == height_before + 1
    # The main chain still grows as before.
    await extend(node, clock, tip_before, 1, "bob")
    assert node.chain(CHAIN).state.height == height_before + 1


async def test_invalid_bases_to_mine_on_are_refused_before_any_hashing(world):
    clock, node = world
    await node.create_chain(CHAIN, REGTEST, initial_bits=0x207FFFFF)
    genesis = node.chain(CHAIN).state.tip_hash
    main = await extend(node, clock, genesis, 4, "alice")
    tip = main[-1].entry
    assert await node.check_branch_base(CHAIN, tip.block_hash, 2) == tip  # the tip itself: no branch
    assert await node.check_branch_base(CHAIN, main[1].entry.block_hash, 2) == main[1].entry
    with pytest.raises(UnknownParentError):
        await node.check_branch_base(CHAIN, b"\x05" * 32, 2)
    with pytest.raises(BranchTooDeepError) as deep:
        await node.check_branch_base(CHAIN, main[0].entry.block_hash, 2)
    assert (deep.value.depth, deep.value.limit) == (3, 2) and "leave the main chain at block 1" in str(deep.value)
    # A main-chain block stored before undo records were kept (migration 13): no branch below it.
    async with node.store.db.transaction(CHAIN) as tx:
        await tx.execute(
            "UPDATE block_tree SET undo = NULL WHERE chain_id = ? AND hash = ?", (CHAIN, main[2].entry.block_hash)
        )
    with pytest.raises(UndoRecordMissingError) as missing:
        await node.check_branch_base(CHAIN, main[1].entry.block_hash, 10)
    assert missing.value.height == 3
    assert await node.check_branch_base(CHAIN, main[2].entry.block_hash, 10) == main[2].entry


async def test_invalid_base_whose_beacon_state_is_gone_is_refused(world):
    clock, node = world
    await finalized_hybrid_chain(clock, node)
    state = node.chain(CHAIN).state
    parent = node.tree(CHAIN).get(state.tip_hash).parent_hash
    assert (await node.check_branch_base(CHAIN, parent, 10)).block_hash == parent
    node.chain(CHAIN).beacon_states = BeaconStates()  # as after more blocks than are kept
    with pytest.raises(BranchStateUnavailableError):
        await node.check_branch_base(CHAIN, parent, 10)
