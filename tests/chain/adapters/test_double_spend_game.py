"""The double-spend game on a real node and hashing core (chain/adapters/double_spend.py).

Blocks are real: mined by the hashing core's worker processes on a regtest chain whose first chunk
finds a block. Who mines which block is decided by the test where the outcome depends on it (the
bot lends all its core to the attackers, the test mines the public blocks), so no result depends on
how the scheduler shares the workers.
"""

import asyncio
import hashlib
from fractions import Fraction

import pytest
import pytest_asyncio

from chain.adapters.double_spend import ATTACKERS_OWNER, HONEST_OWNER, DoubleSpendGame, Phase
from chain.adapters.hashcore import HashingCore
from chain.adapters.node import Node
from chain.adapters.storage import Store
from chain.errors import (
    DoubleSpendBalanceError,
    DoubleSpendNotAttackerError,
    DoubleSpendOverError,
    DoubleSpendPlanError,
    GameAlreadyRunningError,
    NoGameRunningError,
    ValidationError,
)
from chain.events import PaymentReversed
from chain.games.double_spend import attacker_success_probability
from chain.games.double_spend_plan import Verdict
from chain.params import REGTEST
from chain.playground import EndReason, Playground
from chain.pos.beacon import ConsensusConfig
from chain.pow.compact import encode_compact

CHAIN = 7
# The easiest target regtest allows: a block in the first chunk of hashes, milliseconds.
EASY_BITS = encode_compact(REGTEST.pow_limit)
PAYER, MERCHANT, HONEST, TEAMMATE = "101", "202", "303", "404"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def core():
    c = HashingCore(2)
    await c.start()
    yield c
    await c.close()


def deterministic_randomness():
    counter = iter(range(1 << 30))
    return lambda n: hashlib.sha256(next(counter).to_bytes(4, "little")).digest()[:n]


class Defaults:
    default_params = REGTEST
    default_consensus = ConsensusConfig(mode="pow", slot_duration_s=2, slots_per_epoch=4, checkpoint_interval_blocks=4)

    async def hash_rate(self) -> int:
        return 1


@pytest_asyncio.fixture(loop_scope="module")
async def world(tmp_path, core):
    store = await Store.open(tmp_path / "double_spend.sqlite3")
    node = Node(store, clock=lambda: 1_900_000_000.0, randomness=deterministic_randomness(), master_key=bytes(32),
                hashing_core=core)
    await node.create_chain(CHAIN, REGTEST, initial_bits=EASY_BITS)
    playground = Playground(node, None, Defaults())
    assert (await node.mine(CHAIN, PAYER)).found  # the payer's 50 points
    yield node, playground
    await playground.stop_double_spends()
    await store.close()


pytestmark = pytest.mark.asyncio(loop_scope="module")


class Ending:
    """The game's ``on_end``: the summary, once, for the test to wait on."""

    def __init__(self):
        self.summaries = []
        self.done = asyncio.Event()

    async def __call__(self, summary):
        self.summaries.append(summary)
        self.done.set()


async def start(playground, ending=None, *, team=(), **changes):
    settings = dict(payer=PAYER, merchant=MERCHANT, attackers=frozenset({PAYER}), amount=10, confirmations=2,
                    attack_percent=0, honest_percent=0, deadline_minutes=10)
    settings.update(changes)

    async def is_attacker(owner):
        return owner == PAYER or owner in team

    return await playground.start_double_spend(CHAIN, is_attacker=is_attacker, on_end=ending, **settings)


async def mine_privately(node, game, owner=PAYER):
    """What Playground.mine does for an attacking member: mine on the route, hand the result back."""
    route = await game.route_miner(owner)
    assert route is not None and not route.publish
    result = await node.mine(CHAIN, owner, parent_hash=route.parent_hash, transfers=route.transfers,
                             private=route.private, publish=False)
    assert result.found
    await game.on_mined(owner, route, result)
    return result.block


async def mine_publicly(node, owner=HONEST):
    result = await node.mine(CHAIN, owner)
    assert result.found
    return result.block


async def balance(node, owner):
    return node.account(CHAIN, await node.address(CHAIN, owner)).balance


async def test_the_bots_attackers_overtake_and_the_payment_is_reversed(world):
    node, playground = world
    ending = Ending()
    status = await start(playground, ending, attack_percent=100, confirmations=2)
    game = playground.double_spend(CHAIN)
    assert status.race.confirmations == 0 and status.fork_height == 1
    assert str(status.p_before) == "1.0000000"  # q as set = 1: the bot lends to the attackers only
    # The honest side: two public blocks, the payment in the first, while the bot mines privately.
    first = await mine_publicly(node)
    assert [tx.txid() for tx in first.transfers] == [game.payment_txid]
    await mine_publicly(node)
    await asyncio.wait_for(ending.done.wait(), 60)  # the automatic publish: 2 confirmations, more work

    [summary] = ending.summaries
    assert summary.reason is EndReason.AUTOMATIC and summary.verdict is Verdict.DOUBLE_SPENT
    assert summary.race.confirmations == 2 and summary.race.private_work > summary.race.public_work
    assert summary.reorg_depth == 2 and summary.race.public_blocks == 2
    assert summary.attacker_bot_blocks == summary.race.private_blocks >= 3 and summary.attacker_member_blocks == 0
    [reversed_] = [e for e in summary.events if isinstance(e, PaymentReversed)]
    assert reversed_.txid == game.payment_txid and reversed_.code == "nonce_replay" and reversed_.amount == 10
    # The merchant's points are gone; the same nonce paid the attackers' wallet instead.
    assert await balance(node, MERCHANT) == 0
    stash = await balance(node, ATTACKERS_OWNER)
    assert stash == 10 + 50 * summary.race.private_blocks
    assert node.tree(CHAIN).best.height == 1 + summary.race.private_blocks
    assert not playground.has_double_spend(CHAIN) and game.phase is Phase.ENDED
    assert summary.q_measured == Fraction(summary.race.private_blocks, summary.race.private_blocks + 2)
    assert str(summary.p_after) == "1.0000000"
    with pytest.raises(DoubleSpendOverError):
        await game.publish()
    assert (await node.verify(CHAIN)).blocks == node.chain(CHAIN).state.height + 1


async def test_members_route_to_the_private_branch_with_the_conflicting_transfer_first(world):
    node, playground = world
    await start(playground, team=(TEAMMATE,))
    game = playground.double_spend(CHAIN)
    assert await game.route_miner(HONEST) is None and await game.route_miner(MERCHANT) is None
    route = await game.route_miner(TEAMMATE)
    assert route.parent_hash == game.fork_hash and route.transfers == (game.conflict,)
    assert game.conflict.nonce == game.payment.nonce and game.conflict.recipient == await node.address(
        CHAIN, ATTACKERS_OWNER)
    block = await mine_privately(node, game, TEAMMATE)
    again = await game.route_miner(PAYER)
    assert again.parent_hash == game.fork_hash and again.private == (block,) and again.transfers == ()
    # Kept, not published: neither the main chain nor the tree has it.
    assert node.chain(CHAIN).state.height == 1 and block.header.hash() not in node.tree(CHAIN)
    status = await game.status()
    assert status.race.private_blocks == 1 and status.race.public_blocks == 0


async def test_a_block_on_an_old_private_tip_is_not_kept(world):
    node, playground = world
    await start(playground)
    game = playground.double_spend(CHAIN)
    route = await game.route_miner(PAYER)
    await mine_privately(node, game)
    late = await node.mine(CHAIN, PAYER, parent_hash=route.parent_hash, transfers=route.transfers,
                           private=route.private, publish=False)
    await game.on_mined(PAYER, route, late)  # another attacker's block came first: a fork of the fork
    assert (await game.status()).race.private_blocks == 1


async def test_a_lighter_private_branch_loses_at_the_deadline_and_stays_as_orphans(world):
    node, playground = world
    ending = Ending()
    await start(playground, ending, confirmations=1)
    game = playground.double_spend(CHAIN)
    private = await mine_privately(node, game)
    await mine_publicly(node)
    await mine_publicly(node)
    summary = await game.expire()
    assert summary.reason is EndReason.DEADLINE and summary.verdict is Verdict.PUBLIC_CHAIN_WON
    assert summary.reorg_depth == 0 and summary.events == () and ending.summaries == [summary]
    assert await balance(node, MERCHANT) == 10  # the payment stands
    tree = node.tree(CHAIN)
    assert private.header.hash() in tree and tree.best.height == 3
    assert node.chain(CHAIN).state.tip_hash != private.header.hash()
    assert summary.p_before is None  # the bot lent nothing: q was not known beforehand
    assert summary.q_measured == Fraction(1, 3)
    assert summary.p_after == attacker_success_probability(Fraction(1, 3), 1)


async def test_reversed_before_the_merchant_shipped_gains_nothing(world):
    node, playground = world
    await start(playground, confirmations=2)
    game = playground.double_spend(CHAIN)
    for _ in range(3):
        await mine_privately(node, game)
    await mine_publicly(node)  # the payment's block: 1 confirmation of 2
    summary = await playground.publish_double_spend(CHAIN, PAYER, admin=False)
    assert summary.reason is EndReason.PUBLISHED and summary.verdict is Verdict.REVERSED_TOO_EARLY
    assert summary.reorg_depth == 1 and await balance(node, MERCHANT) == 0


async def test_publish_publish_and_the_deadline_at_the_same_moment_publish_once(world):
    node, playground = world
    ending = Ending()
    await start(playground, ending, confirmations=1)
    game = playground.double_spend(CHAIN)
    for _ in range(2):
        await mine_privately(node, game)
    await mine_publicly(node)
    results = await asyncio.gather(
        playground.publish_double_spend(CHAIN, PAYER, admin=False),
        playground.publish_double_spend(CHAIN, "999", admin=True),
        game.expire(),
        return_exceptions=True,
    )
    summaries = [r for r in results if not isinstance(r, BaseException)]
    refusals = [r for r in results if isinstance(r, BaseException)]
    assert len(summaries) == 1 and len(refusals) == 2, results
    assert all(isinstance(r, DoubleSpendOverError | NoGameRunningError) for r in refusals), refusals
    assert ending.summaries == summaries and summaries[0].verdict is Verdict.DOUBLE_SPENT
    assert summaries[0].reorg_depth == 1 and node.tree(CHAIN).best.height == 3
    assert not playground.has_double_spend(CHAIN)


async def test_two_starts_at_the_same_moment_start_one_game_and_pay_once(world):
    node, playground = world
    results = await asyncio.gather(start(playground), start(playground), return_exceptions=True)
    assert sum(isinstance(r, GameAlreadyRunningError) for r in results) == 1, results
    payer = await node.address(CHAIN, PAYER)
    assert len(node.chain(CHAIN).mempool.pending_for(payer)) == 1


async def test_the_private_branch_carries_the_payers_earlier_pending_payments(world):
    node, playground = world
    merchant = await node.address(CHAIN, MERCHANT)
    await node.pay(CHAIN, PAYER, await node.address(CHAIN, HONEST), 5)  # pending, nonce 0
    await start(playground, confirmations=1)
    game = playground.double_spend(CHAIN)
    assert game.payment.nonce == 1 and game.payment.recipient == merchant
    route = await game.route_miner(PAYER)
    assert [tx.nonce for tx in route.transfers] == [0, 1] and route.transfers[1] == game.conflict
    await mine_privately(node, game)
    await mine_privately(node, game)
    await mine_publicly(node)
    summary = await game.publish()
    assert summary.verdict is Verdict.DOUBLE_SPENT
    # The earlier payment is confirmed on the winning branch too; the honest block's reward was orphaned.
    assert await balance(node, HONEST) == 5


async def test_invalid_amount_above_the_attackers_balance_starts_nothing(world):
    node, playground = world
    with pytest.raises(DoubleSpendBalanceError, match="has 50 points to spend"):
        await start(playground, amount=51)
    assert not playground.has_double_spend(CHAIN)
    assert len(node.chain(CHAIN).mempool) == 0


async def test_invalid_merchant_is_the_attacker(world):
    _, playground = world
    with pytest.raises(DoubleSpendPlanError, match="merchant must not be the attacker"):
        await start(playground, merchant=PAYER)
    assert not playground.has_double_spend(CHAIN)


@pytest.mark.parametrize("k", [0, 7])
async def test_invalid_confirmations_out_of_range(world, k):
    _, playground = world
    with pytest.raises(DoubleSpendPlanError, match="from 1 to 6"):
        await start(playground, confirmations=k)


async def test_invalid_publish_by_a_member_who_is_not_an_attacker(world):
    node, playground = world
    await start(playground)
    with pytest.raises(DoubleSpendNotAttackerError):
        await playground.publish_double_spend(CHAIN, HONEST, admin=False)
    assert playground.has_double_spend(CHAIN)
    assert len(node.chain(CHAIN).mempool) == 1


async def test_invalid_status_or_publish_with_no_game_running(world):
    _, playground = world
    with pytest.raises(NoGameRunningError):
        await playground.double_spend_status(CHAIN)
    with pytest.raises(NoGameRunningError):
        await playground.publish_double_spend(CHAIN, PAYER, admin=True)


async def test_a_shutdown_stops_the_bots_sessions_without_publishing(world, core):
    node, playground = world
    await start(playground, attack_percent=50, honest_percent=50)
    game = playground.double_spend(CHAIN)
    await playground.stop_double_spends()
    assert game.phase is Phase.ENDED and not playground.has_double_spend(CHAIN)
    assert core.session((CHAIN, ATTACKERS_OWNER)) is None and core.session((CHAIN, HONEST_OWNER)) is None
    assert isinstance(game, DoubleSpendGame)


async def test_a_reset_under_the_round_ends_it_without_a_summary(world):
    node, playground = world
    ending = Ending()
    await start(playground, ending)
    game = playground.double_spend(CHAIN)
    await mine_privately(node, game)
    await playground.reset_chain(CHAIN)
    with pytest.raises(DoubleSpendOverError, match="the chain changed under the round"):
        await game.publish()
    assert game.phase is Phase.ENDED and not playground.has_double_spend(CHAIN) and ending.summaries == []


async def test_invalid_unpublished_blocks_that_do_not_extend_the_parent_are_refused(world):
    node, playground = world
    await start(playground)
    game = playground.double_spend(CHAIN)
    block = await mine_privately(node, game)
    genesis = node.tree(CHAIN).genesis.block_hash
    with pytest.raises(ValidationError):
        await node.branch_template(CHAIN, genesis, await node.address(CHAIN, PAYER), (), private=(block,))
    assert node.chain(CHAIN).state.height == 1 and block.header.hash() not in node.tree(CHAIN)
