"""A network split on a hybrid chain (Casper FFG over proof of work): each side's validators vote on
their side's blocks only; neither side justifies without two thirds of the stake; a checkpoint
finalized during the split is not reverted by the other side's heavier branch at the heal.

Real blocks mined by the hashing core on an easy chain, real votes signed by the validator signer."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import replace

import pytest
import pytest_asyncio

from bot.storage import OutboxRepository
from chain.adapters.beacon_node import BeaconNode
from chain.adapters.game_sessions import GameSessions
from chain.adapters.hashcore import HashingCore
from chain.adapters.network_split import NetworkSplit
from chain.adapters.node import Node
from chain.adapters.signer import ValidatorSigner
from chain.adapters.split_votes import SplitVoting
from chain.adapters.storage import Store
from chain.consensus.duties import compute_attestation_data
from chain.events import ReorgRefusedByFinality
from chain.params import REGTEST
from chain.pos.beacon import ConsensusConfig
from chain.pos.operations import Operations
from chain.pow.compact import encode_compact

CHAIN = 6
EASY_BITS = encode_compact(REGTEST.pow_limit)
MASTER = b"\x31" * 32
HYBRID = ConsensusConfig(mode="hybrid", slot_duration_s=2, slots_per_epoch=4, checkpoint_interval_blocks=4)
VALIDATORS = ("alice", "bob", "carol", "dave")

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def core():
    c = HashingCore(1)
    await c.start()
    yield c
    await c.close()


def deterministic_randomness():
    counter = iter(range(1 << 30))
    return lambda n: hashlib.sha256(next(counter).to_bytes(4, "little")).digest()[:n]


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000

    def __call__(self) -> float:
        return float(self.now)


@pytest_asyncio.fixture(loop_scope="module")
async def world(tmp_path, core):
    """A hybrid chain with four equal validators (auto-attest on) that has finalized a checkpoint."""
    clock = Clock()
    store = await Store.open(tmp_path / "split-hybrid.sqlite3")
    node = Node(store, clock=clock, randomness=deterministic_randomness(), master_key=MASTER, hashing_core=core)
    beacon = BeaconNode(node, ValidatorSigner(store, clock=clock, randomness=deterministic_randomness(),
                                              master_key=MASTER))
    await node.create_chain(CHAIN, REGTEST, initial_bits=EASY_BITS, consensus=HYBRID)
    for owner in VALIDATORS:
        await mine_main(node, beacon, clock, owner)
    for owner in VALIDATORS:
        await beacon.deposit(CHAIN, owner, 32)
    await mine_main(node, beacon, clock, "erin", 2 * HYBRID.checkpoint_interval_blocks)  # included, activated
    for owner in VALIDATORS:
        await beacon.set_auto_attest(CHAIN, owner, True)
    await mine_main(node, beacon, clock, "erin", 4 * HYBRID.checkpoint_interval_blocks)
    assert node.chain(CHAIN).state.beacon.finality.finalized_checkpoint.epoch >= 1
    yield clock, node, beacon
    await store.close()


async def mine_main(node, beacon, clock, owner, blocks=1):
    """Blocks on the main chain, each followed by the slot driver's hybrid tick (the auto votes)."""
    for _ in range(blocks):
        clock.now += 60
        assert (await node.mine(CHAIN, owner)).found
        await beacon.on_slot(CHAIN, clock.now)


async def start(node, beacon, group_a):
    async def in_group_a(owner: str) -> bool:
        return owner in group_a

    return await NetworkSplit.start(
        node, GameSessions(), CHAIN, groups=("@north", "everyone else"), in_group_a=in_group_a, minutes=3,
        voting=SplitVoting(beacon.chains, CHAIN),
    )


async def mine_side(node, beacon, clock, split, owner, blocks=1):
    """``Playground.mine`` while the split routes the member; the main chain's slot driver ticks too."""
    for _ in range(blocks):
        clock.now += 60
        route = await split.route_miner(owner)
        result = await node.mine(CHAIN, owner, parent_hash=route.parent_hash, transfers=route.transfers,
                                 private=route.private, publish=route.publish, operations=route.operations)
        assert result.found
        await split.on_mined(owner, route, result)
        assert await beacon.on_slot(CHAIN, clock.now) is None  # the main tip did not move: no main votes


async def test_a_50_50_stake_split_justifies_nothing_new_on_either_side(world):
    clock, node, beacon = world
    state = node.chain(CHAIN).state
    epoch, justified = state.beacon.epoch, state.beacon.finality.current_justified_checkpoint.epoch
    finalized = state.beacon.finality.finalized_checkpoint.epoch
    pooled = len(node.chain(CHAIN).op_pool)
    split = await start(node, beacon, {"alice", "carol"})
    for _ in range(4):
        await mine_side(node, beacon, clock, split, "alice", HYBRID.checkpoint_interval_blocks // 2)
        await mine_side(node, beacon, clock, split, "bob", HYBRID.checkpoint_interval_blocks // 2)
    for side in ("A", "B"):
        view = split.view(side)
        assert (view.finality.stake, view.finality.total) == (64 * 10**9, 128 * 10**9) or (
            view.finality.stake * 2 == view.finality.total
        )
        assert view.blocks == 8
        # Only votes cast before the split can still justify the split's own epoch; nothing later.
        assert view.finality.justified_epoch <= epoch and view.finality.finalized_epoch <= max(finalized, justified)
    # The side's blocks carried their own validators' votes; the main chain signed none meanwhile.
    carried = {vote.validator for block in split._bodies.values() if block.operations
               for vote in block.operations.attestations}
    keys = {owner: await beacon.chains.signer.find_validator_key(CHAIN, owner) for owner in VALIDATORS}
    assert carried == set(keys.values())
    assert len(node.chain(CHAIN).op_pool) == pooled
    summary = await split.heal("admin")
    assert summary.refused_by_finality is None and summary.winner == "A"  # equal work: first seen stays
    assert summary.finalized_after == summary.finalized_before == finalized
    assert [s.finality.stake * 2 == s.finality.total for s in summary.sides] == [True, True]


async def test_a_side_over_two_thirds_finalizes_and_the_other_sides_heavier_branch_is_refused(world):
    clock, node, beacon = world
    state = node.chain(CHAIN).state
    epoch, finalized = state.beacon.epoch, state.beacon.finality.finalized_checkpoint.epoch
    split = await start(node, beacon, {"alice", "carol", "dave"})
    a_blocks = 5 * HYBRID.checkpoint_interval_blocks
    await mine_side(node, beacon, clock, split, "alice", a_blocks)  # found first: published first
    await mine_side(node, beacon, clock, split, "bob", a_blocks + 2)  # heavier, with 25% of the stake
    a, b = split.view("A").finality, split.view("B").finality
    assert a.stake * 4 == a.total * 3 and b.stake * 4 == b.total
    assert a.justified_epoch > epoch and a.finalized_epoch > finalized
    assert b.justified_epoch <= epoch and b.finalized_epoch == finalized
    summary = await split.heal("admin")
    refused = summary.refused_by_finality
    assert summary.winner == "A" and refused is not None and summary.finalized_after > summary.finalized_before
    assert refused.branch_weight > refused.canonical_weight
    assert node.chain(CHAIN).state.tip_hash == split.branches["A"].tip_hash
    # Announced with the side block that made the refused branch the heavier one.
    events = [row.event for row in await OutboxRepository(node.store.db).all_events(CHAIN)]
    assert [e.tip_hash for e in events if isinstance(e, ReorgRefusedByFinality)] == [refused.tip_hash]
    # After the heal the main chain's auto votes go on as usual: the next block is voted for.
    await mine_main(node, beacon, clock, "erin", 2)


async def test_invalid_votes_in_a_branch_pool_are_left_out_of_its_block(world):
    """``Node.branch_template(operations=...)`` takes only the votes valid on the branch's state."""
    clock, node, beacon = world
    state = node.chain(CHAIN).state
    base = state.tip_hash
    withheld = []
    for _ in range(HYBRID.checkpoint_interval_blocks):  # into an epoch alice has not voted for yet
        found = await node.mine(CHAIN, "bob", parent_hash=base, transfers=(), private=tuple(withheld), publish=False)
        withheld.append(found.block)
    branch = await node.branch_state(CHAIN, base, tuple(withheld))
    data = compute_attestation_data(branch, branch.height, branch.tip_hash)
    vote = await beacon.chains.signer.sign_attestation(CHAIN, "alice", data)
    bob = await beacon.chains.signer.find_validator_key(CHAIN, "bob")
    forged = replace(vote, validator=bob)  # alice's signature claimed for bob: not his vote
    miner = await node.address(CHAIN, "erin")
    template = await node.branch_template(CHAIN, base, miner, (), private=tuple(withheld),
                                          operations=Operations(attestations=(forged, vote)))
    assert template.operations.attestations == (vote,)
    # On the main tip too, a template given its own pool takes that, not the node's op pool.
    assert len(node.chain(CHAIN).op_pool) > 0
    main = await node.branch_template(CHAIN, base, miner, (), operations=Operations())
    assert main.operations.attestations == ()


async def test_two_blocks_of_one_side_at_the_same_moment_keep_one_and_vote_once(world):
    clock, node, beacon = world
    split = await start(node, beacon, {"alice", "carol", "dave"})
    await mine_side(node, beacon, clock, split, "alice", HYBRID.checkpoint_interval_blocks - 1)
    routes = [await split.route_miner(owner) for owner in ("alice", "carol")]
    found = [
        await node.mine(CHAIN, owner, parent_hash=route.parent_hash, transfers=route.transfers,
                        private=route.private, publish=False, operations=route.operations)
        for owner, route in zip(("alice", "carol"), routes, strict=True)
    ]
    await asyncio.gather(*(split.on_mined(owner, route, result)
                           for owner, route, result in zip(("alice", "carol"), routes, found, strict=True)))
    assert split.view("A").blocks == HYBRID.checkpoint_interval_blocks
    kept = split.branches["A"].tip_hash
    stale = next(r.block.hash() for r in found if r.block.hash() != kept)
    pending = (await split.route_miner("alice")).operations.attestations
    voters = [vote.validator for vote in pending]
    # Side A's validators voted once each (over the split's epochs), never for the block that lost the race.
    assert pending and len(voters) == len(set(voters))
    assert stale not in {vote.data.beacon_block_root for vote in pending}
    summary = await split.heal("admin")
    assert summary.stale_in_side == 1


async def test_the_bots_lent_miners_carry_their_sides_votes(world):
    clock, node, beacon = world

    async def in_group_a(owner: str) -> bool:
        return owner in VALIDATORS  # every validator on side A

    split = await NetworkSplit.start(
        node, GameSessions(), CHAIN, groups=("@north", "everyone else"), in_group_a=in_group_a, minutes=3,
        voting=SplitVoting(beacon.chains, CHAIN), lent_weight=1,
    )
    while split.view("A").blocks < 2 * HYBRID.checkpoint_interval_blocks:
        await split.block_kept.wait()
        split.block_kept.clear()
    await split.heal("admin")
    await split.lenders_stopped()
    keys = {await beacon.chains.signer.find_validator_key(CHAIN, owner) for owner in VALIDATORS}
    side_a = [split._bodies[block.block_hash] for block in split.branches["A"].blocks]
    side_b = [split._bodies[block.block_hash] for block in split.branches["B"].blocks]
    assert {vote.validator for block in side_a for vote in block.operations.attestations} == keys
    assert not [vote for block in side_b for vote in block.operations.attestations]
