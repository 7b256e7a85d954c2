"""The live selfish-mining game's state machine (chain/adapters/selfish_mining.py), with block arrivals
the test decides: each pool block is handed to ``pool_found``, each honest block is accepted into the
chain's block tree (as a member's block would be) and ``sync`` looks. Every step is checked against
Algorithm 1 (Eyal and Sirer 2014) and every count against the block tree.

These tests use a stand-in node over the real ``BlockTree`` (every block of equal work, as on a chain
between retargets): the game reads the tree and publishes with ``accept_block``, nothing else. The
tests on the real node and hashing core are in test_selfish_mining_node.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import count
from types import SimpleNamespace

import pytest

from chain.adapters.selfish_mining import HONEST_OWNER, HONEST_WEIGHT, POOL_OWNER, SelfishMiningGame
from chain.consensus.tree import BlockTree
from chain.errors import DuplicateBlockError, InvalidHashShareError, InvalidTieBreakError
from chain.games.chance import happens
from chain.games.selfish_mining import Finder, PoolState, simulate_selfish_mining

CHAIN = 7
GENESIS = hashlib.sha256(b"genesis").digest()
_serial = count()


@dataclass(frozen=True)
class Header:
    prev_hash: bytes


@dataclass(frozen=True)
class FakeBlock:
    """What the game reads of a block: its hash and its parent."""

    header: Header
    digest: bytes = field(default_factory=lambda: hashlib.sha256(next(_serial).to_bytes(8, "big")).digest())

    def hash(self) -> bytes:
        return self.digest


class TreeNode:
    """The node as the game uses it: the block tree, ``accept_block`` and the clock."""

    def __init__(self) -> None:
        self._tree = BlockTree(GENESIS, 1)
        self.hashing_core = None
        self.accepted: list[bytes] = []

    def tree(self, chain_id: int) -> BlockTree:
        assert chain_id == CHAIN
        return self._tree

    async def accept_block(self, chain_id: int, block: FakeBlock) -> None:
        parent = self.tree(chain_id).get(block.header.prev_hash)
        self._tree.add_block(block.hash(), parent.block_hash, parent.height + 1, 1)
        self.accepted.append(block.hash())

    async def address(self, chain_id: int, owner: str) -> bytes:
        return hashlib.sha256(owner.encode()).digest()

    def clock(self) -> float:
        return 1_000.0


class Game:
    """A game and the hands that play it."""

    def __init__(self, alpha=Fraction(1, 3), gamma=Fraction(0), seed=0) -> None:
        self.node = TreeNode()
        self.game = SelfishMiningGame(self.node, CHAIN, alpha, gamma, random.Random(seed), 60.0)
        self.published = 0

    async def begin(self) -> Game:
        await self.game.begin()
        return self

    @property
    def tree(self) -> BlockTree:
        return self.node.tree(CHAIN)

    async def pool(self) -> FakeBlock:
        """The pool finds a block on its tip."""
        block = FakeBlock(Header(self.game.pool_tip))
        await self.game.pool_found(block)
        return block

    async def honest(self, parent: bytes | None = None, *, sync: bool = True) -> FakeBlock:
        """An honest miner's block on the main tip (or ``parent``), accepted as the node would."""
        block = FakeBlock(Header(parent or self.tree.best.block_hash))
        await self.node.accept_block(CHAIN, block)
        if sync:
            await self.game.sync()
        return block

    def on_main(self, block: FakeBlock) -> bool:
        entry = self.tree.get(block.hash())
        return self.tree.best_chain_at(entry.height) is entry

    def last(self):
        return self.game.steps[-1]

    def tally(self):
        return self.game.tally(self.tree)


def state(private, published, public):
    return PoolState(private, published, public)


async def test_state_0_an_honest_block_is_everyone_s_tip():
    g = await Game().begin()
    block = await g.honest()
    assert g.last().transition.finder is Finder.HONEST and g.game.state == state(0, 0, 0)
    assert g.game.pool_tip == block.hash()  # the pool mines on it
    assert g.tally().honest.main == 1


async def test_the_pool_keeps_its_block_private():
    g = await Game().begin()
    block = await g.pool()
    assert g.game.state == state(1, 0, 0) and g.last().transition.publish == 0
    assert block.hash() not in g.tree  # nobody else has it
    assert g.game.pool_tip == block.hash()
    assert g.tally().withheld == 1


async def test_lead_1_the_pool_publishes_to_race_and_the_first_seen_stays_main():
    g = await Game().begin()
    pool = await g.pool()
    honest = await g.honest()
    step = g.last().transition
    assert (step.before, step.after, step.publish) == (state(1, 0, 0), state(1, 1, 1), 1)
    assert pool.hash() in g.tree and not g.on_main(pool) and g.on_main(honest)
    assert g.game.state.race and g.game.snapshot().races == 1


async def test_state_0_prime_the_pool_finds_publishes_and_wins():
    g = await Game().begin()
    first = await g.pool()
    beaten = await g.honest()
    second = await g.pool()
    step = g.last().transition
    assert step.before == state(1, 1, 1) and step.after == state(0, 0, 0) and step.publish == 1
    assert g.on_main(first) and g.on_main(second) and not g.on_main(beaten)
    tally = g.tally()
    assert (tally.pool.main, tally.honest.main, tally.pool.orphaned, tally.honest.orphaned) == (2, 0, 0, 1)
    assert g.game.pool_tip == second.hash()


async def test_state_0_prime_an_honest_block_on_the_honest_branch_orphans_the_pools():
    g = await Game().begin()
    pool = await g.pool()
    first = await g.honest()
    second = await g.honest()
    assert g.last().transition.finder is Finder.HONEST and g.game.state == state(0, 0, 0)
    assert g.on_main(first) and g.on_main(second) and not g.on_main(pool)
    tally = g.tally()
    assert (tally.pool.main, tally.honest.main, tally.pool.orphaned, tally.honest.orphaned) == (0, 2, 1, 0)
    assert g.game.pool_tip == second.hash()  # the pool adopted the honest chain


async def test_state_0_prime_an_honest_block_on_the_pools_branch_keeps_the_pools_block():
    g = await Game().begin()
    pool = await g.pool()
    beaten = await g.honest()
    on_pool = await g.honest(parent=pool.hash())
    step = g.last().transition
    assert step.finder is Finder.HONEST_ON_POOL and step.after == state(0, 0, 0)
    assert g.on_main(pool) and g.on_main(on_pool) and not g.on_main(beaten)
    tally = g.tally()
    assert (tally.pool.main, tally.honest.main, tally.pool.orphaned, tally.honest.orphaned) == (1, 1, 0, 1)
    assert g.game.pool_tip == on_pool.hash()


async def test_lead_2_the_pool_publishes_everything_and_wins_by_one():
    g = await Game().begin()
    blocks = [await g.pool(), await g.pool()]
    assert g.game.state == state(2, 0, 0)
    honest = await g.honest()
    step = g.last().transition
    assert (step.before, step.after, step.publish) == (state(2, 0, 0), state(0, 0, 0), 2)
    assert all(g.on_main(b) for b in blocks) and not g.on_main(honest)
    assert g.game.pool_tip == blocks[-1].hash()


async def test_lead_above_2_the_pool_publishes_one_block_per_honest_block_then_wins():
    g = await Game().begin()
    blocks = [await g.pool() for _ in range(3)]
    first = await g.honest()
    assert g.last().transition.after == state(3, 1, 1) and g.last().transition.publish == 1
    assert blocks[0].hash() in g.tree and blocks[1].hash() not in g.tree
    assert g.on_main(first)  # a tie at one block each: the honest block was seen first
    second = await g.honest()
    assert g.last().transition.after == state(0, 0, 0) and g.last().transition.publish == 2
    assert all(g.on_main(b) for b in blocks) and not g.on_main(first) and not g.on_main(second)
    tally = g.tally()
    assert (tally.pool.main, tally.honest.orphaned) == (3, 2)


async def test_two_honest_blocks_before_the_pool_answers_the_tree_decides():
    """Lead 2, and two honest blocks arrive before the pool looks: it publishes everything as Algorithm
    1 says, but the honest branch is as long and was seen first. The game takes the tree's state, a tie
    (0' of two blocks each), and counts the step as late."""
    g = await Game().begin()
    pool = [await g.pool(), await g.pool()]
    await g.honest(sync=False)
    await g.honest(sync=False)
    await g.game.sync()
    assert g.game.state == state(2, 2, 2) and g.game.state.race
    assert g.game.snapshot().late == 1 and g.last().late
    assert all(b.hash() in g.tree and not g.on_main(b) for b in pool)
    # The race goes on: the pool's next block wins it.
    await g.pool()
    assert g.game.state == state(0, 0, 0)
    tally = g.tally()
    assert (tally.pool.main, tally.honest.orphaned) == (3, 2)


async def test_several_honest_blocks_in_state_0_are_stepped_one_at_a_time():
    g = await Game().begin()
    for _ in range(3):
        await g.honest(sync=False)
    await g.game.sync()
    assert [s.transition.finder for s in g.game.steps] == [Finder.HONEST] * 3
    assert g.game.snapshot().late == 0 and g.tally().honest.main == 3


async def test_a_pool_block_on_a_branch_the_pool_left_is_dropped():
    g = await Game().begin()
    old_tip = g.game.pool_tip
    await g.honest()
    await g.game.pool_found(FakeBlock(Header(old_tip)))
    assert g.game.snapshot().stale_finds == 1 and g.game.state == state(0, 0, 0)


async def test_the_end_publishes_what_the_pool_withholds():
    g = await Game().begin()
    blocks = [await g.pool(), await g.pool(), await g.pool()]
    await g.honest()
    summary = await g.game.finish("stopped")
    assert all(g.on_main(b) for b in blocks)
    assert (summary.tally.pool.main, summary.tally.honest.orphaned, summary.tally.withheld) == (3, 1, 0)
    assert summary.reason == "stopped" and g.game.finished
    assert await g.game.finish("deadline") is summary  # once


async def test_gamma_decides_where_the_bots_honest_miner_goes_in_a_race():
    on_pool = await Game(gamma=Fraction(1)).begin()
    await on_pool.pool()
    await on_pool.honest()
    assert on_pool.game._honest_parent() == on_pool.game.pool_tip
    assert on_pool.game.snapshot().races_on_pool == 1
    first_seen = await Game(gamma=Fraction(0)).begin()
    await first_seen.pool()
    await first_seen.honest()
    assert first_seen.game._honest_parent() is None  # the main tip
    assert first_seen.game.snapshot().races_on_pool == 0


@pytest.mark.parametrize(
    ("alpha", "gamma", "seed"),
    [(Fraction(1, 3), Fraction(0), 1), (Fraction(2, 5), Fraction(1, 2), 2), (Fraction(1, 4), Fraction(1), 3)],
)
async def test_the_live_game_ends_as_the_simulation_for_the_same_arrivals(alpha, gamma, seed):
    """The same draws as ``simulate_selfish_mining``: each block is the pool's with probability α, and in a
    race an honest block lands on the pool's branch with probability γ. Counted from the block tree, the
    live game's main chain and orphans are the simulation's, block for block."""
    blocks = 1_000
    g = await Game(alpha, gamma).begin()
    rng = random.Random(seed)
    found = 0
    while found < blocks or not g.game.state.settled:
        found += 1
        if happens(rng, alpha):
            await g.pool()
        elif g.game.state.race and happens(rng, gamma):
            await g.honest(parent=g.game.pool_tip)
        else:
            await g.honest()
    expected = simulate_selfish_mining(alpha, gamma, random.Random(seed), blocks=blocks)
    tally = g.tally()
    assert (tally.pool.main, tally.honest.main, tally.pool.orphaned, tally.honest.orphaned) == (
        expected.pool_blocks, expected.honest_blocks, expected.pool_orphaned, expected.honest_orphaned)
    assert g.game.snapshot().late == 0 and tally.withheld == 0
    # And the state machine's own settled counts say the same.
    steps = [s.transition for s in g.game.steps]
    assert sum(s.pool_settled for s in steps) == expected.pool_blocks
    assert sum(s.honest_orphaned for s in steps) == expected.honest_orphaned


def test_invalid_shares_are_refused_before_anything_runs():
    with pytest.raises(InvalidHashShareError):
        SelfishMiningGame(TreeNode(), CHAIN, Fraction(1, 2), Fraction(0), random.Random(0), 60.0)
    with pytest.raises(InvalidTieBreakError):
        SelfishMiningGame(TreeNode(), CHAIN, Fraction(1, 3), Fraction(3, 2), random.Random(0), 60.0)


async def test_publishing_a_block_the_tree_has_already_is_harmless():
    g = await Game().begin()
    block = await g.pool()
    honest = await g.honest(sync=False)
    await g.node.accept_block(CHAIN, block)  # someone else relayed the pool's block first
    with pytest.raises(DuplicateBlockError):
        await g.node.accept_block(CHAIN, block)
    await g.game.sync()  # lead 1: the pool "publishes" a block already in the tree
    assert g.game.state == state(1, 1, 1) and g.on_main(honest)


# --- the mining loops, with the test deciding which side finds the next block ----------------------------


class FakeSession:
    """A hashing-core session as the game sees it: where it mines, its weight, cancel."""

    def __init__(self, owner: str, tip: bytes, weight: float, publish: bool) -> None:
        self.owner, self.tip, self.weight, self.publish = owner, tip, weight, publish
        self.outcome: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def cancel(self) -> None:
        if not self.outcome.done():
            self.outcome.set_result(False)

    def done(self) -> bool:
        return self.outcome.done()


class MiningNode(TreeNode):
    """``Node.mine`` as the game calls it: a session per call that finds a block when the test says so."""

    def __init__(self) -> None:
        super().__init__()
        self.sessions: list[FakeSession] = []
        self.changed = asyncio.Condition()

    async def mine(self, chain_id, owner, *, parent_hash=None, transfers=None, publish=True, weight=1,
                   on_start=None, private=(), **_):
        # A private branch's template extends its last block (Node.branch_template), not ``parent_hash``.
        tip = private[-1].hash() if private else parent_hash or self._tree.best.block_hash
        session = FakeSession(owner, tip, weight, publish)
        self.sessions.append(session)
        if on_start is not None:
            on_start(session)
        async with self.changed:
            self.changed.notify_all()
        found = await session.outcome
        block = FakeBlock(Header(tip)) if found else None
        if block is not None and publish:
            await self.accept_block(chain_id, block)
        return SimpleNamespace(block=block)

    def live(self, owner: str) -> FakeSession | None:
        return next((s for s in reversed(self.sessions) if s.owner == owner and not s.done()), None)

    async def wait_live(self, owner: str, *, not_: FakeSession | None = None) -> FakeSession:
        """The owner's live session, once there is one (other than ``not_``)."""
        async with asyncio.timeout(10), self.changed:
            await self.changed.wait_for(lambda: (s := self.live(owner)) is not None and s is not not_)
        session = self.live(owner)
        assert session is not None
        return session

    async def find(self, owner: str) -> FakeSession:
        """The owner's live session finds its block; returns once the game has started its next session."""
        session = await self.wait_live(owner)
        session.outcome.set_result(True)
        return await self.wait_live(owner, not_=session)


async def playing(alpha=Fraction(1, 3), gamma=Fraction(0), duration_s=600.0):
    node = MiningNode()
    game = SelfishMiningGame(node, CHAIN, alpha, gamma, random.Random(0), duration_s)
    await game.begin()
    ended: list[object] = []
    node.ended = asyncio.Event()

    async def at_end(reason: str) -> None:
        ended.append(await game.finish(reason))
        node.ended.set()

    game.run(at_end)
    return node, game, ended


async def test_the_pool_mines_privately_on_its_tip_and_the_honest_miner_publishes_on_the_main_tip():
    node, game, _ = await playing()
    try:
        pool = await node.wait_live(POOL_OWNER)
        honest = await node.wait_live(HONEST_OWNER)
        assert (pool.tip, pool.publish) == (GENESIS, False) and (honest.tip, honest.publish) == (GENESIS, True)
        # α = 1/3 against the bot's honest weight alone: the pool weighs half as much.
        assert pool.weight == pytest.approx(0.5 * HONEST_WEIGHT)
        nxt = await node.find(POOL_OWNER)
        assert game.state == PoolState(1, 0, 0) and nxt.tip == game.pool_tip != GENESIS
        assert node.tree(CHAIN).best.block_hash == GENESIS  # withheld
    finally:
        await game.finish("stopped")


async def test_an_honest_block_in_lead_1_starts_a_race_and_gamma_sends_the_bots_honest_miner_to_the_pool():
    node, game, _ = await playing(gamma=Fraction(1))
    try:
        await node.find(POOL_OWNER)
        pool_block = game.pool_tip
        moved = await node.find(HONEST_OWNER)
        assert game.state == PoolState(1, 1, 1)
        # γ = 1: the bot's honest session now mines on the pool's block, published to match.
        session = moved if moved.tip == pool_block else await node.wait_live(HONEST_OWNER, not_=moved)
        assert session.tip == pool_block
        await node.find(HONEST_OWNER)  # the honest block on the pool's branch settles the race for the pool
        assert game.steps[-1].transition.finder is Finder.HONEST_ON_POOL and game.state.settled
        tally = game.tally(node.tree(CHAIN))
        assert (tally.pool.main, tally.honest.main, tally.honest.orphaned) == (1, 1, 1)
    finally:
        await game.finish("stopped")


async def test_when_the_honest_side_wins_the_pool_starts_again_on_its_tip():
    node, game, _ = await playing()
    try:
        await node.find(POOL_OWNER)
        await node.find(HONEST_OWNER)  # race
        await node.find(HONEST_OWNER)  # on the first-seen block: the honest branch wins
        assert game.state.settled
        tip = node.tree(CHAIN).best.block_hash
        async with asyncio.timeout(10):
            while (pool := node.live(POOL_OWNER)) is None or pool.tip != tip:
                await node.wait_live(POOL_OWNER, not_=pool)
    finally:
        await game.finish("stopped")


async def test_the_deadline_ends_the_game_and_stops_every_session():
    node, game, ended = await playing(duration_s=0.01)
    async with asyncio.timeout(10):
        await node.ended.wait()
    [summary] = ended
    assert summary.reason == "deadline" and game.finished
    assert all(s.done() for s in node.sessions)
    assert await game.finish("stopped") is summary  # a stop that comes after gets the same summary


async def test_two_finishes_at_the_same_moment_count_the_game_once():
    node, game, _ = await playing()
    await node.find(POOL_OWNER)
    first, second = await asyncio.gather(game.finish("stopped"), game.finish("deadline"))
    assert first is second and first.reason == "stopped"
    assert first.tally.pool.main == 1  # the withheld block was published once, at the end
