"""A network split on a proof-of-stake chain: each side's drawn proposers propose on its own branch,
its validators vote there; neither side justifies without two thirds of the stake; at the heal the
votes (LMD-GHOST) choose the branch, and a checkpoint finalized on it is never reverted.

Everything runs through the real store, node, signer and slot driver, with a clock the test moves."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from bot.storage import OutboxRepository
from chain.adapters.beacon_node import BeaconNode
from chain.adapters.game_sessions import GameSessions
from chain.adapters.network_split import NetworkSplit
from chain.adapters.node import Node
from chain.adapters.signer import ValidatorSigner
from chain.adapters.split_votes import SplitVoting
from chain.adapters.storage import Store
from chain.errors import NoGameRunningError
from chain.params import REGTEST
from chain.pos.beacon import ConsensusConfig
from tests.chainkit import solve

CHAIN = 8
MASTER = b"\x52" * 32
SLOT_S = 2
CONFIG = ConsensusConfig(mode="pow", slot_duration_s=SLOT_S, slots_per_epoch=4, checkpoint_interval_blocks=4)
VALIDATORS = ("alice", "bob", "carol", "dave")


def deterministic_randomness():
    """Keys and so the proposer draws are the same every run: no run where one side never proposes."""
    counter = iter(range(1 << 30))
    return lambda n: hashlib.sha256(next(counter).to_bytes(4, "little")).digest()[:n]


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000

    def __call__(self) -> float:
        return float(self.now)


async def mine(node, clock, owner, blocks=1):
    for _ in range(blocks):
        clock.now += 60
        miner = await node.address(CHAIN, owner)
        await node.submit_block(CHAIN, solve(node.template(CHAIN, miner), REGTEST))


async def run_slots(clock, beacon, count):
    outcomes = []
    for _ in range(count):
        clock.now += SLOT_S
        outcome = await beacon.on_slot(CHAIN, clock.now)
        if outcome is not None:
            outcomes.append(outcome)
    return outcomes


@pytest.fixture
async def world(tmp_path):
    """A merged chain with four equal validators (auto-attest on) that has finalized a checkpoint."""
    clock = Clock()
    store = await Store.open(tmp_path / "split-pos.sqlite3")
    node = Node(store, clock=clock, randomness=deterministic_randomness(), master_key=MASTER)
    await node.load()
    beacon = BeaconNode(node, ValidatorSigner(store, clock=clock, randomness=deterministic_randomness(),
                                              master_key=MASTER))
    await node.create_chain(CHAIN, REGTEST, initial_bits=0x207FFFFF, consensus=CONFIG)
    for owner in VALIDATORS:
        await mine(node, clock, owner, 2)
    for owner in VALIDATORS:
        await beacon.deposit(CHAIN, owner, 32)
    await mine(node, clock, "erin", 5)  # includes the deposits, crosses an epoch: activation
    await beacon.schedule_merge(CHAIN, at_height=node.chain(CHAIN).state.height + 3)
    await mine(node, clock, "erin", 2)
    assert beacon.is_merged(CHAIN)
    for owner in VALIDATORS:
        await beacon.set_auto_attest(CHAIN, owner, True)
    await run_slots(clock, beacon, 4 * CONFIG.slots_per_epoch)
    assert node.chain(CHAIN).state.beacon.finality.finalized_checkpoint.epoch >= 1
    yield clock, node, beacon
    await store.close()


async def start(node, beacon, group_a):
    async def in_group_a(owner: str) -> bool:
        return owner in group_a

    return await NetworkSplit.start(
        node, GameSessions(), CHAIN, groups=("@north", "everyone else"), in_group_a=in_group_a, minutes=3,
        voting=SplitVoting(beacon.chains, CHAIN, heads=beacon.heads, slots=beacon.slots),
    )


def proposers(split, side):
    return {split._bodies[b.block_hash].seal.proposer_index for b in split.branches[side].blocks}


async def test_a_50_50_split_justifies_nothing_new_and_the_main_chain_waits(world):
    clock, node, beacon = world
    state = node.chain(CHAIN).state
    base, epoch = state.tip_hash, state.beacon.epoch
    justified = state.beacon.finality.current_justified_checkpoint.epoch
    finalized = state.beacon.finality.finalized_checkpoint.epoch
    split = await start(node, beacon, {"alice", "carol"})
    assert split.proof_of_stake
    outcomes = await run_slots(clock, beacon, 4 * CONFIG.slots_per_epoch)
    assert all(o.block is None and o.auto_votes == 0 for o in outcomes)
    assert node.chain(CHAIN).state.tip_hash == base  # the main chain made no block meanwhile
    registry = state.beacon.registry
    index = {owner: registry.index_of(await beacon.chains.signer.find_validator_key(CHAIN, owner))
             for owner in VALIDATORS}
    assert split.view("A").blocks > 0 and split.view("B").blocks > 0
    # Each side's blocks were proposed by its own validators only, and carry only its own votes.
    assert proposers(split, "A") <= {index["alice"], index["carol"]}
    assert proposers(split, "B") <= {index["bob"], index["dave"]}
    for side, owners in (("A", ("alice", "carol")), ("B", ("bob", "dave"))):
        keys = {await beacon.chains.signer.find_validator_key(CHAIN, owner) for owner in owners}
        carried = {vote.validator for b in split.branches[side].blocks
                   for vote in split._bodies[b.block_hash].operations.attestations}
        assert carried and carried <= keys
        view = split.view(side)
        assert view.finality.stake * 2 == view.finality.total
        # Half the stake: only votes cast before the split can still justify the split's own epoch
        # (and so finalize the checkpoint justified then); nothing later.
        assert view.finality.justified_epoch <= max(epoch, justified)
        assert view.finality.finalized_epoch <= max(finalized, justified)
    summary = await split.heal("admin")
    assert summary.proof_of_stake and summary.winner in ("A", "B")
    assert summary.finalized_before == finalized and summary.finalized_after <= max(finalized, justified)
    # The chain goes on after the heal: the slot driver proposes on the main head again.
    outcomes = await run_slots(clock, beacon, CONFIG.slots_per_epoch)
    assert any(o.block is not None for o in outcomes)
    report = await node.verify(CHAIN)
    assert report.blocks == node.chain(CHAIN).state.height + 1


async def test_a_side_over_two_thirds_finalizes_and_keeps_the_head_after_the_heal(world):
    clock, node, beacon = world
    state = node.chain(CHAIN).state
    epoch, finalized = state.beacon.epoch, state.beacon.finality.finalized_checkpoint.epoch
    justified = state.beacon.finality.current_justified_checkpoint.epoch
    split = await start(node, beacon, {"alice", "carol", "dave"})
    await run_slots(clock, beacon, 5 * CONFIG.slots_per_epoch)
    a, b = split.view("A").finality, split.view("B").finality
    assert a.stake * 4 == a.total * 3 and b.stake * 4 == b.total
    assert a.justified_epoch > epoch and a.finalized_epoch > finalized
    # B's quarter of the stake justifies nothing after the split's epoch (votes cast before it count there).
    assert b.justified_epoch <= epoch and b.finalized_epoch <= max(finalized, justified)
    assert a.finalized_epoch > max(finalized, justified)
    summary = await split.heal("admin")
    assert summary.winner == "A" and summary.finalized_after > summary.finalized_before
    assert node.chain(CHAIN).state.tip_hash == split.branches["A"].tip_hash
    # B's blocks joined the tree as side blocks and stay off the main chain in the next slots.
    await run_slots(clock, beacon, CONFIG.slots_per_epoch)
    main = node.chain(CHAIN).state
    assert main.height_of(split.branches["A"].tip_hash) is not None
    assert all(main.height_of(b.block_hash) is None for b in split.branches["B"].blocks)
    assert main.beacon.finality.finalized_checkpoint.epoch >= summary.finalized_after


async def test_a_heal_racing_a_slot_runs_once_and_the_slot_after_it_is_the_main_chains(world):
    clock, node, beacon = world
    split = await start(node, beacon, {"alice", "carol", "dave"})
    await run_slots(clock, beacon, 2)
    clock.now += SLOT_S
    slot, healed = await asyncio.gather(beacon.on_slot(CHAIN, clock.now), split.heal("admin"))
    assert healed.proof_of_stake and CHAIN not in beacon.slots.splits
    with pytest.raises(NoGameRunningError):
        await split.heal("deadline")
    kept = split.view("A").blocks + split.view("B").blocks
    outcomes = await run_slots(clock, beacon, 2)
    assert split.view("A").blocks + split.view("B").blocks == kept  # later slots are the main chain's
    assert slot is not None and outcomes


async def test_the_votes_not_the_publication_order_choose_the_branch_at_the_heal(world, monkeypatch):
    """The minority's branch published first becomes the main chain by extending it; the fork choice,
    fed every published block and the votes they carry, moves the head to the majority's branch."""
    clock, node, beacon = world
    split = await start(node, beacon, {"alice", "carol", "dave"})
    await run_slots(clock, beacon, 3 * CONFIG.slots_per_epoch)
    while split.view("B").blocks == 0:  # B's validator holds a quarter of the stake: drawn about a slot in four
        await run_slots(clock, beacon, 1)
    monkeypatch.setattr("chain.adapters.network_split.compute_publish_order",
                        lambda a, b: (b, a))
    summary = await split.heal("admin")
    assert summary.published_first == "B" and summary.winner == "A"
    main = node.chain(CHAIN).state
    assert main.tip_hash == split.branches["A"].tip_hash
    assert all(main.height_of(b.block_hash) is None for b in split.branches["B"].blocks)
    assert summary.reorg_depth == summary.orphaned == split.view("B").blocks
    events = [row.event for row in await OutboxRepository(node.store.db).all_events(CHAIN)
              if row.kind == "chain_reorganized"]
    assert events and events[-1].proof_of_stake


async def test_a_slot_arriving_during_the_heal_waits_for_it_and_builds_on_the_chosen_head(world):
    """The heal takes the slot lock first: the slot driver never proposes on the main chain while the
    branches are being published and weighed."""
    clock, node, beacon = world
    split = await start(node, beacon, {"alice", "carol", "dave"})
    await run_slots(clock, beacon, 2 * CONFIG.slots_per_epoch)
    bob = await node.address(CHAIN, "bob")
    await node.pay(CHAIN, "alice", bob, 1)  # the next main slot has something to carry: never skipped
    clock.now += SLOT_S
    healed, slot = await asyncio.gather(split.heal("admin"), beacon.on_slot(CHAIN, clock.now))
    assert healed.winner == "A" and slot is not None and slot.block is not None
    assert slot.block.header.prev_hash == split.branches["A"].tip_hash
    assert node.chain(CHAIN).state.tip_hash == slot.block.hash()
