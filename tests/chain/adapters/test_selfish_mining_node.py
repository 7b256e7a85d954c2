"""The selfish-mining game on the real node and hashing core, through the façade (chain/playground.py):
blocks really mined (an easy chain: a block every chunk), published with ``Node.accept_block``, reorgs
through the store; started, stopped and expired as the cog does it."""

from __future__ import annotations

import asyncio
import os
from fractions import Fraction

import pytest
import pytest_asyncio

from chain.adapters.beacon_node import BeaconNode
from chain.adapters.hashcore import HashingCore
from chain.adapters.node import Node
from chain.adapters.selfish_mining import HONEST_OWNER, KIND, POOL_OWNER, SelfishMiningGame
from chain.adapters.signer import ValidatorSigner
from chain.adapters.storage import Store
from chain.errors import (
    GameAlreadyRunningError,
    InvalidHashShareError,
    InvalidTieBreakError,
    NoGameRunningError,
    SelfishGameDurationError,
    SelfishMiningUnavailableError,
)
from chain.mode import Mode
from chain.params import REGTEST
from chain.playground import Playground
from chain.pos.beacon import ConsensusConfig

MASTER = bytes(range(32))
CHAIN = 31
CONFIG = ConsensusConfig(mode="pow", slot_duration_s=2, slots_per_epoch=4, checkpoint_interval_blocks=4)
SUBSIDY = REGTEST.initial_subsidy_points

pytestmark = pytest.mark.asyncio(loop_scope="module")


class Defaults:
    default_params = REGTEST  # no retargeting: every block has the same work, ties go to the first seen
    default_consensus = CONFIG

    async def hash_rate(self) -> int:
        return 1  # the easiest target: a block in every chunk


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def core():
    c = HashingCore(2, worker_niceness=0)
    await c.start()
    yield c
    await c.close()


@pytest_asyncio.fixture(loop_scope="module")
async def facade(tmp_path, core):
    store = await Store.open(tmp_path / "selfish.sqlite3")
    clock = [1_800_000_000.0]
    node = Node(store, clock=lambda: clock[0], randomness=os.urandom, master_key=MASTER, hashing_core=core)
    await node.load()
    beacon = BeaconNode(node, ValidatorSigner(store, clock=lambda: clock[0], randomness=os.urandom, master_key=MASTER))
    playground = Playground(node, beacon, Defaults())
    await playground.ensure_chain(CHAIN)
    yield playground, node
    for chain_id in playground.selfish_mining_games():
        await playground.stop_selfish_mining(chain_id)
    await store.close()


async def start(playground, *, alpha=Fraction(1, 3), gamma=Fraction(1, 2), duration_s=600.0, ended=None):
    async def on_end(summary) -> None:
        if ended is not None:
            ended.append(summary)

    return await playground.start_selfish_mining(CHAIN, alpha=alpha, gamma=gamma, duration_s=duration_s,
                                                  on_end=on_end)


async def blocks_since(node: Node, height: int, count: int) -> None:
    """Wait until the main chain is ``count`` blocks above ``height`` (blocks come every few ms)."""
    async with asyncio.timeout(60):
        while node.tree(CHAIN).best.height < height + count:
            await asyncio.sleep(0.01)


async def test_a_game_plays_on_the_real_chain_to_its_summary(facade):
    playground, node = facade
    started = await start(playground)
    assert started.state.settled and started.start_height == node.tree(CHAIN).best.height
    await blocks_since(node, started.start_height, 30)
    status = playground.selfish_mining_status(CHAIN)
    assert status.reason is None and status.tip_height >= started.start_height + 30

    summary = await playground.stop_selfish_mining(CHAIN)
    tree = node.tree(CHAIN)
    tally = summary.tally
    # Every block since the start is counted, on the main chain or off it; nothing stayed withheld.
    assert tally.main_chain == tree.best.height - summary.start_height
    assert tally.pool.main + tally.pool.orphaned + tally.honest.main + tally.honest.orphaned == (
        len(tree) - 1 - started.start_height)
    assert tally.withheld == 0 and summary.reason == "stopped"
    # Both sides really hashed; their measured shares are what the core counted.
    assert tally.pool.hashes > 0 and tally.honest.hashes > 0 and 0 < tally.measured_alpha < 1
    # Rewards follow the main chain through every reorg: each side holds the subsidy of its blocks on it.
    pool_wallet = node.account(CHAIN, await node.address(CHAIN, POOL_OWNER)).balance
    honest_wallet = node.account(CHAIN, await node.address(CHAIN, HONEST_OWNER)).balance
    assert pool_wallet == SUBSIDY * tally.pool.main
    assert honest_wallet == SUBSIDY * tally.honest.main  # no member mined here: the bot's honest miner is all
    # The stored chain replays to the same state.
    report = await node.verify(CHAIN)
    assert report.blocks == tree.best.height + 1 and report.tip_hash == tree.best.block_hash[::-1].hex()
    # The chain is free again, and nothing mines for the game any more.
    assert playground.games.current(CHAIN) is None
    assert not [s for s in node.hashing_core.stats().per_session if s.chain_id == CHAIN]


async def test_a_stop_and_the_deadline_at_the_same_moment_end_the_game_once(facade):
    playground, node = facade
    ended: list = []
    await start(playground, ended=ended)
    game = playground.games.get(CHAIN, KIND)
    assert isinstance(game, SelfishMiningGame)
    await blocks_since(node, node.tree(CHAIN).best.height, 3)
    results = await asyncio.gather(
        playground.stop_selfish_mining(CHAIN), game.expire(), playground.stop_selfish_mining(CHAIN),
        return_exceptions=True,
    )
    summaries = [r for r in results if r is not None and not isinstance(r, BaseException)] + ended
    refused = [r for r in results if isinstance(r, NoGameRunningError)]
    assert len(summaries) == 1, results
    assert len(refused) == 1 + len(ended)  # each stop that did not end it was told no game runs
    assert [r for r in results if isinstance(r, BaseException) and not isinstance(r, NoGameRunningError)] == []
    assert playground.games.current(CHAIN) is None
    # A second game starts on the freed chain, and the first one's deadline, firing late (past its own
    # check that it was stopped), leaves it alone: the façade ends only the game whose deadline it is.
    await start(playground)
    await game._on_end("deadline")
    assert playground.games.current(CHAIN) is not None and playground.games.get(CHAIN, KIND) is not game
    await playground.stop_selfish_mining(CHAIN)


async def test_the_deadline_ends_the_game_and_hands_its_summary_on(facade):
    playground, node = facade
    ended: list = []
    await start(playground, duration_s=0.2, ended=ended)
    async with asyncio.timeout(30):
        while not ended:
            await asyncio.sleep(0.01)
    [summary] = ended
    assert summary.reason == "deadline" and summary.tally.withheld == 0
    assert playground.games.current(CHAIN) is None
    with pytest.raises(NoGameRunningError):
        await playground.stop_selfish_mining(CHAIN)


async def test_a_reset_under_a_running_game_ends_it(facade):
    playground, node = facade
    ended: list = []
    await start(playground, ended=ended)
    await blocks_since(node, node.tree(CHAIN).best.height, 2)
    await playground.reset_chain(CHAIN)
    async with asyncio.timeout(30):
        while not ended:
            await asyncio.sleep(0.01)
    [summary] = ended
    assert summary.reason == "reset" and summary.chain_replaced and summary.tally.main_chain == 0
    assert playground.games.current(CHAIN) is None
    assert not [s for s in node.hashing_core.stats().per_session if s.chain_id == CHAIN]
    await start(playground)  # the new chain takes a new game
    await playground.stop_selfish_mining(CHAIN)


async def test_invalid_second_start_while_a_game_runs_changes_nothing(facade):
    playground, node = facade
    await start(playground)
    first = playground.games.get(CHAIN, KIND)
    with pytest.raises(GameAlreadyRunningError):
        await start(playground, alpha=Fraction(1, 4))
    assert playground.games.get(CHAIN, KIND) is first
    assert playground.selfish_mining_status(CHAIN).alpha == Fraction(1, 3)
    await playground.stop_selfish_mining(CHAIN)


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"alpha": Fraction(0)}, InvalidHashShareError),
        ({"alpha": Fraction(1, 2)}, InvalidHashShareError),
        ({"alpha": 0.3}, InvalidHashShareError),
        ({"gamma": Fraction(101, 100)}, InvalidTieBreakError),
        ({"duration_s": 0}, SelfishGameDurationError),
        ({"duration_s": 3601}, SelfishGameDurationError),
    ],
)
async def test_invalid_start_is_refused_and_starts_nothing(facade, options, error):
    playground, node = facade
    height = node.tree(CHAIN).best.height
    with pytest.raises(error):
        await start(playground, **options)
    assert playground.games.current(CHAIN) is None
    assert node.tree(CHAIN).best.height == height
    assert not [s for s in node.hashing_core.stats().per_session if s.chain_id == CHAIN]


async def test_invalid_start_on_a_proof_of_stake_chain(facade):
    playground, node = facade
    await playground.switch_mode(CHAIN, Mode.POS, "admin")
    with pytest.raises(SelfishMiningUnavailableError, match="proof of stake"):
        await start(playground)
    assert playground.games.current(CHAIN) is None


async def test_the_node_mines_on_top_of_blocks_only_the_pool_has(facade):
    """``Node.mine(private=...)``: a template on unpublished blocks, which stay unpublished."""
    playground, node = facade
    tip = node.tree(CHAIN).best
    first = (await node.mine(CHAIN, POOL_OWNER, parent_hash=tip.block_hash, transfers=(), publish=False)).block
    second = (await node.mine(CHAIN, POOL_OWNER, parent_hash=tip.block_hash, private=[first], transfers=(),
                              publish=False)).block
    assert first is not None and second is not None
    assert second.header.prev_hash == first.hash() and second.height == tip.height + 2
    assert first.hash() not in node.tree(CHAIN) and second.hash() not in node.tree(CHAIN)
    # Published in order, they make the longer branch: the chain switches to it.
    await node.accept_block(CHAIN, first)
    accepted = await node.accept_block(CHAIN, second)
    assert accepted.on_main and node.tree(CHAIN).best.block_hash == second.hash()
