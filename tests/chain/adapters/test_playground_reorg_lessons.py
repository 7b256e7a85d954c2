"""The façade's side of /learn's reorg lessons and of /mine start on_block (issue 11, item 7).

The lessons read the chain's reorg log (``reorg_log``): a reorg counts when it was logged after the
member started and one of the member's blocks was in it. Blocks here are built on any block of the
tree and solved in the test process (easy regtest targets), as a member's ``on_block`` session would.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from chain.adapters.beacon_node import BeaconNode
from chain.adapters.game_sessions import MinerRoute
from chain.adapters.node import Node
from chain.adapters.signer import ValidatorSigner
from chain.adapters.storage import Store
from chain.errors import MiningBaseDuringGameError
from chain.hashing import hash_to_display
from chain.params import REGTEST
from chain.playground import Playground
from chain.pos.beacon import ConsensusConfig
from tests.chainkit import solve

MASTER = bytes(range(32))
CHAIN = 23
CONFIG = ConsensusConfig(mode="pow", slot_duration_s=2, slots_per_epoch=4, checkpoint_interval_blocks=4)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000

    def __call__(self) -> float:
        self.now += 1
        return float(self.now)


class Defaults:
    default_params = REGTEST
    default_consensus = CONFIG

    async def hash_rate(self) -> int:
        return 1


@pytest.fixture
async def playground(tmp_path):
    clock = Clock()
    store = await Store.open(tmp_path / "lessons.sqlite3")
    node = Node(store, clock=clock, randomness=os.urandom, master_key=MASTER)
    await node.load()
    beacon = BeaconNode(node, ValidatorSigner(store, clock=clock, randomness=os.urandom, master_key=MASTER))
    facade = Playground(node, beacon, Defaults())
    await facade.ensure_chain(CHAIN)
    yield facade, node
    await store.close()


async def extend(node: Node, parent: bytes, count: int, owner: str):
    accepted = []
    for _ in range(count):
        miner = await node.address(CHAIN, owner)
        block = solve(await node.branch_template(CHAIN, parent, miner), node.chain(CHAIN).state.params)
        accepted.append(await node.accept_block(CHAIN, block))
        parent = accepted[-1].entry.block_hash
    return accepted


async def check(facade: Playground, owner: str, lesson: str, seq: int):
    recorded: list[int] = []

    async def record(tx, txid, paid):
        recorded.append(paid)

    result, reward = await facade.complete_lesson(
        CHAIN, owner, lesson, start_height=0, record=record, start_reorg_seq=seq
    )
    assert (reward is not None) == result.done == (len(recorded) == 1)
    return result


async def test_a_reorg_counts_for_those_whose_blocks_were_in_it_and_only_after_their_start(playground):
    facade, node = playground
    genesis = node.chain(CHAIN).state.tip_hash
    assert await facade.reorg_log_seq(CHAIN) == 0
    await extend(node, genesis, 1, "alice")
    before = await check(facade, "bob", "reorg", 0)
    assert not before.done and "no reorg since you started" in before.detail
    won = await extend(node, genesis, 2, "bob")  # bob's branch takes over; alice's block is orphaned
    assert won[-1].reorg is not None
    assert await facade.reorg_log_seq(CHAIN) == 1

    caused = await check(facade, "bob", "reorg", 0)
    assert caused.done and "on the branch that took over" in caused.detail
    orphaned = await check(facade, "alice", "reorg", 0)
    assert orphaned.done and "orphaned" in orphaned.detail
    bystander = await check(facade, "carol", "reorg", 0)
    assert not bystander.done and "no block of yours" in bystander.detail
    # Started after the reorg: it does not count.
    later = await check(facade, "dave", "reorg", 1)
    assert not later.done and "no reorg since you started" in later.detail


async def test_finality_lesson_on_a_proof_of_work_chain_says_it_needs_a_hybrid_one(playground):
    facade, node = playground
    genesis = node.chain(CHAIN).state.tip_hash
    await extend(node, genesis, 1, "alice")
    await extend(node, genesis, 2, "bob")  # a reorg, no refusal: nothing is finalized here
    result = await check(facade, "bob", "finality", 0)
    assert not result.done and "nothing is ever finalized" in result.detail and "hybrid" in result.detail


async def test_mining_bases_are_found_by_height_on_the_main_chain_and_by_hash_among_side_blocks(playground):
    facade, node = playground
    genesis = node.chain(CHAIN).state.tip_hash
    main = await extend(node, genesis, 2, "alice")
    (side,) = await extend(node, main[0].entry.block_hash, 1, "bob")
    assert not side.on_main
    assert facade.main_block_at(CHAIN, 2) == main[1].entry
    assert facade.main_block_at(CHAIN, 0).block_hash == genesis
    prefix = hash_to_display(side.entry.block_hash)[:16]
    assert facade.find_tree_blocks(CHAIN, prefix, 5) == (1, [side.entry])
    count, found = facade.find_tree_blocks(CHAIN, "", 2)
    assert count == 4 and [e.height for e in found] == [2, 2]
    fork = await facade.check_mining_base(CHAIN, side.entry.block_hash)
    assert fork == main[0].entry


class RoutingGame:
    """A running game that sends every member to the main tip (as a MinerRouter must answer)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.routed = 0

    async def route_miner(self, owner: str) -> MinerRoute | None:
        self.routed += 1
        return MinerRoute(self.node.chain(CHAIN).state.tip_hash, "the game's branch")

    async def on_mined(self, owner, route, result) -> None:
        return None


async def test_invalid_mining_base_while_a_game_routes_members_is_refused_and_starts_nothing(playground):
    facade, node = playground
    genesis = node.chain(CHAIN).state.tip_hash
    game = RoutingGame(node)
    await facade.games.start(CHAIN, "network_split", game)
    with pytest.raises(MiningBaseDuringGameError) as refused:
        await facade.check_mining_base(CHAIN, genesis)
    assert refused.value.kind == "network_split"
    with pytest.raises(MiningBaseDuringGameError):
        await asyncio.wait_for(facade.mine(CHAIN, "alice", parent_hash=genesis), 5)
    assert game.routed == 0 and node.chain(CHAIN).state.height == 0
    await facade.games.end(CHAIN, "network_split")
    assert (await facade.check_mining_base(CHAIN, genesis)).block_hash == genesis


async def test_two_reorg_checks_at_the_same_moment_pay_once(playground):
    from bot.storage import LessonProgressRepository
    from chain.errors import LessonAlreadyCompletedError

    facade, node = playground
    lessons = LessonProgressRepository(node.store.db)
    genesis = node.chain(CHAIN).state.tip_hash
    await lessons.start(CHAIN, "bob", "reorg", 1, 0, await facade.reorg_log_seq(CHAIN))
    await extend(node, genesis, 1, "alice")
    await extend(node, genesis, 2, "bob")

    async def one_check():
        async def record(tx, txid, paid):
            await lessons.complete(tx, CHAIN, "bob", "reorg", 2, 0, txid, paid)

        return await facade.complete_lesson(CHAIN, "bob", "reorg", start_height=0, record=record, start_reorg_seq=0)

    outcomes = await asyncio.gather(*(one_check() for _ in range(3)), return_exceptions=True)
    paid = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(paid) == 1 and paid[0][1] is not None and paid[0][0].done
    assert all(isinstance(o, LessonAlreadyCompletedError) for o in outcomes if isinstance(o, BaseException))
    row = (await lessons.member_progress(CHAIN, "bob"))["reorg"]
    assert row.completed_at == 2  # once (this chain has no faucet, so no points: the lesson still counts)


class Clocked:
    """The hybrid chain's clock, moved by the test (slots follow it)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000

    def __call__(self) -> float:
        return float(self.now)


async def test_finality_lesson_passes_on_a_hybrid_chain_when_a_branch_of_theirs_is_refused(tmp_path):
    """The lesson's way on a hybrid chain: a branch mined from below the finalized block, longer than
    the main chain, is refused; its miner passes, after the check first named the finalized block."""
    clock = Clocked()
    store = await Store.open(tmp_path / "hybrid.sqlite3")
    try:
        node = Node(store, clock=clock, randomness=os.urandom, master_key=MASTER)
        await node.load()
        beacon = BeaconNode(node, ValidatorSigner(store, clock=clock, randomness=os.urandom, master_key=MASTER))
        defaults = Defaults()
        defaults.default_consensus = CONFIG.evolve(mode="hybrid")
        facade = Playground(node, beacon, defaults)
        await facade.ensure_chain(CHAIN)

        async def mine(owner: str) -> None:
            clock.now += 60
            tip = node.chain(CHAIN).state.tip_hash
            await extend(node, tip, 1, owner)

        for _ in range(2):
            await mine("alice")
        await beacon.deposit(CHAIN, "alice", 32)
        await mine("bob")
        await beacon.set_auto_attest(CHAIN, "alice", True)
        for _ in range(6 * CONFIG.checkpoint_interval_blocks):
            await mine("bob")
            await beacon.on_slot(CHAIN, clock.now)
        state = node.chain(CHAIN).state
        finalized = node.tree(CHAIN).get(state.beacon.finality.finalized_checkpoint.root)
        assert finalized.height > 0
        seq = await facade.reorg_log_seq(CHAIN)
        ready = await check(facade, "mallory", "finality", seq)
        assert not ready.done and f"finalized block is {finalized.height}" in ready.detail, ready.detail

        assert await facade.check_mining_base(CHAIN, finalized.parent_hash)  # /mine start on_block accepts it
        parent = finalized.parent_hash
        for _ in range(state.height - finalized.height + 2):
            clock.now += 60
            (accepted,) = await extend(node, parent, 1, "mallory")
            assert not accepted.on_main
            parent = accepted.entry.block_hash
        done = await check(facade, "mallory", "finality", seq)
        assert done.done and "was refused" in done.detail, done.detail
        assert not (await check(facade, "bob", "finality", seq)).done  # no block of bob's in the refused branch
        assert not (await check(facade, "mallory", "reorg", seq)).done  # a refusal is no reorg
    finally:
        await store.close()
