"""A network split on a real node (chain/adapters/network_split.py): real blocks mined by the hashing
core on an easy chain, kept by their side, published at the heal; and the façade's refusals."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest
import pytest_asyncio

from bot.storage import OutboxRepository
from chain.adapters.beacon_node import BeaconNode
from chain.adapters.game_sessions import GameSessions
from chain.adapters.hashcore import HashingCore
from chain.adapters.network_split import KIND, NetworkSplit, SplitSummary
from chain.adapters.node import Node
from chain.adapters.signer import ValidatorSigner
from chain.adapters.storage import Store
from chain.errors import (
    BranchTooDeepError,
    ChainError,
    GameAlreadyRunningError,
    NoGameRunningError,
    SplitDurationError,
    SplitPaymentError,
)
from chain.events import ChainReorganized
from chain.mode import Mode
from chain.params import REGTEST
from chain.playground import Playground
from chain.pos.beacon import ConsensusConfig
from chain.pow.compact import encode_compact

CHAIN = 5
EASY_BITS = encode_compact(REGTEST.pow_limit)
GROUP_A = {"alice"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def core():
    c = HashingCore(1)
    await c.start()
    yield c
    await c.close()


def deterministic_randomness():
    counter = iter(range(1 << 30))
    return lambda n: hashlib.sha256(next(counter).to_bytes(4, "little")).digest()[:n]


@pytest_asyncio.fixture(loop_scope="module")
async def node(tmp_path, core):
    store = await Store.open(tmp_path / "split.sqlite3")
    n = Node(store, clock=lambda: 1_900_000_000.0, randomness=deterministic_randomness(), master_key=bytes(32),
             hashing_core=core)
    await n.create_chain(CHAIN, REGTEST, initial_bits=EASY_BITS)  # a block in a few hashes
    yield n
    await store.close()


pytestmark = pytest.mark.asyncio(loop_scope="module")


async def in_group_a(owner: str) -> bool:
    return owner in GROUP_A


class Gate:
    """The split's deadline, opened by the test (no timed waits)."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.waiting = asyncio.Event()

    async def sleep(self, _seconds: float) -> None:
        self.waiting.set()
        await self.opened.wait()


async def start(node, games=None, gate=None, healed=None, minutes=3, lent_weight=0) -> NetworkSplit:
    gate = gate or Gate()

    async def on_healed(summary: SplitSummary) -> None:
        if healed is not None:
            healed.append(summary)

    return await NetworkSplit.start(
        node, games or GameSessions(), CHAIN, groups=("@north", "everyone else"), in_group_a=in_group_a,
        minutes=minutes, on_healed=on_healed, sleep=gate.sleep, lent_weight=lent_weight,
    )


async def mine(node, split: NetworkSplit, owner: str):
    """What ``Playground.mine`` does while a game routes the member: mine where the route says, then
    hand the result to the game."""
    route = await split.route_miner(owner)
    assert route is not None and not route.publish
    result = await node.mine(CHAIN, owner, parent_hash=route.parent_hash, transfers=route.transfers,
                             private=route.private, publish=route.publish)
    assert result.found
    await split.on_mined(owner, route, result)
    return route, result


async def fund(node, *owners: str) -> None:
    """Mine a block for each owner on the main chain (50 points each)."""
    for owner in owners:
        assert (await node.mine(CHAIN, owner)).found


def balance(node, address: bytes) -> int:
    return node.account(CHAIN, address).balance


async def test_each_side_mines_its_own_branch_and_the_heavier_one_wins_at_the_heal(node):
    split = await start(node)
    base = node.chain(CHAIN).state.height
    _, a1 = await mine(node, split, "alice")
    route, b1 = await mine(node, split, "bob")
    assert route.label == "group B (everyone else)'s side of the split"
    assert route.parent_hash == split.branches["B"].base_hash and route.private == ()  # from the split's base
    await mine(node, split, "bob")
    # Withheld: the main chain did not move, and each side sees only its own blocks.
    assert node.chain(CHAIN).state.height == base
    assert (split.view("A").blocks, split.view("B").blocks) == (1, 2)
    assert split.view("A").latest[-1].block_hash == a1.block.hash()
    summary = await split.heal("admin")
    assert summary.winner == "B" and summary.published_first == "A"
    assert (summary.sides[0].blocks, summary.sides[1].blocks) == (1, 2)
    assert summary.orphaned == 1 and summary.reorg_depth == 1
    state = node.chain(CHAIN).state
    assert state.height == base + 2 and node.tree(CHAIN).best_chain_at(base + 1).block_hash == b1.block.hash()
    # The heal's reorg is announced by the node's own events, written to the outbox with it.
    events = [row.event for row in await OutboxRepository(node.store.db).all_events(CHAIN)]
    reorgs = [e for e in events if isinstance(e, ChainReorganized)]
    assert [(e.depth, e.new_tip_hash) for e in reorgs] == [(1, state.tip_hash)]


async def test_a_payment_only_the_losing_side_confirmed_returns_and_a_double_spend_is_reversed(node):
    await fund(node, "alice", "carol", "erin")
    alice, bob, dave = [await node.address(CHAIN, o) for o in ("alice", "bob", "dave")]
    split = await start(node)
    # Side A only: alice pays dave. Side B only: carol pays bob 30. The mempool (both sides): carol pays
    # alice 30 with the same nonce (the mempool never heard of her side payment), erin pays bob 1.
    side, to_dave = await split.pay("alice", dave, 5)
    assert side == "A"
    side, to_bob = await split.pay("carol", bob, 30)
    assert side == "B"
    to_alice = (await node.pay(CHAIN, "carol", alice, 30)).entry.tx
    both = (await node.pay(CHAIN, "erin", bob, 1)).entry.tx
    assert to_alice.nonce == to_bob.nonce
    _, a1 = await mine(node, split, "alice")
    assert set(a1.block.transfers) == {to_dave, to_alice, both}
    _, b1 = await mine(node, split, "bob")
    assert set(b1.block.transfers) == {to_bob, both}  # carol's mempool payment reuses a nonce used here
    await mine(node, split, "carol")
    summary = await split.heal("deadline")
    assert summary.winner == "B" and summary.confirmed_on_both == 1 and summary.double_spends == 1
    assert [e.txid for e in summary.returned] == [to_dave.txid()]
    assert [e.txid for e in summary.reversed] == [to_alice.txid()]
    pool = node.chain(CHAIN).mempool
    assert to_dave.txid() in pool and to_alice.txid() not in pool
    assert balance(node, dave) == 0 and balance(node, bob) == 31 + 50  # 30 + 1, and his block on side B


async def test_two_heals_at_the_same_moment_heal_once(node):
    games, healed = GameSessions(), []
    split = await start(node, games, healed=healed)
    await mine(node, split, "bob")
    results = await asyncio.gather(split.heal("admin"), split.heal("admin"), return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["NoGameRunningError", "SplitSummary"]
    assert len(healed) == 1 and games.current(CHAIN) is None


async def test_a_heal_raced_by_the_deadline_heals_once(node):
    games, healed, gate = GameSessions(), [], Gate()
    split = await start(node, games, gate=gate, healed=healed)
    await mine(node, split, "alice")
    await gate.waiting.wait()
    gate.opened.set()  # the deadline's heal is now ready to run, as the admin's is called
    result = await asyncio.gather(split.heal("admin"), return_exceptions=True)
    await split.done.wait()
    assert games.current(CHAIN) is None and len(healed) == 1
    assert healed[0].reason in ("admin", "deadline")
    assert isinstance(result[0], SplitSummary) == (healed[0].reason == "admin")


async def test_a_block_found_while_the_split_heals_lands_after_the_heal(node):
    split = await start(node)
    await mine(node, split, "bob")
    route = await split.route_miner("bob")
    assert route is not None
    late = await node.mine(CHAIN, "bob", parent_hash=route.parent_hash, transfers=route.transfers,
                           private=route.private, publish=False)
    # The heal and the late block's hand-in at the same moment: whichever is first, the block ends on
    # the main chain (on side B's tip, which the heal keeps), never lost and never published twice.
    summary, _ = await asyncio.gather(split.heal("admin"), split.on_mined("bob", route, late))
    assert summary.winner == "B"
    assert node.chain(CHAIN).state.tip_hash == late.block.hash()
    assert await split.route_miner("bob") is None  # healed: members mine on the main tip again


async def test_the_bots_lent_miners_find_blocks_on_both_sides_and_stop_at_the_heal(node, core):
    split = await start(node, lent_weight=1)
    while not (split.view("A").blocks and split.view("B").blocks):
        await split.block_kept.wait()
        split.block_kept.clear()
    assert node.chain(CHAIN).state.height == split.base_height  # withheld, as members' blocks
    summary = await split.heal("admin")
    await split.lenders_stopped()
    assert summary.winner is not None and summary.sides[0].miners == summary.sides[1].miners == 1
    assert core.session((CHAIN, "split:a")) is None and core.session((CHAIN, "split:b")) is None
    lost = summary.sides[1] if summary.winner == "A" else summary.sides[0]
    assert summary.orphaned == lost.blocks


async def test_invalid_split_lengths_start_nothing(node):
    games = GameSessions()
    for minutes in (0, 11, True):
        with pytest.raises(SplitDurationError, match="a split lasts 1 to 10 minutes"):
            await start(node, games, minutes=minutes)
    assert games.current(CHAIN) is None


async def test_invalid_second_game_on_a_chain_is_refused(node):
    games = GameSessions()
    first = await start(node, games)
    with pytest.raises(GameAlreadyRunningError):
        await start(node, games)
    assert games.get(CHAIN, KIND) is first
    await first.heal("admin")
    with pytest.raises(NoGameRunningError):
        await first.heal("admin")


async def test_invalid_side_payment_beyond_the_side_balance_changes_nothing(node):
    split = await start(node)
    bob = await node.address(CHAIN, "bob")
    with pytest.raises(SplitPaymentError, match="on side A of the split you have 0 points"):
        await split.pay("alice", bob, 1)  # a fresh chain: alice has nothing yet
    assert split.view("A").side_payments == 0
    await split.heal("admin")


# --- the façade's refusals ---------------------------------------------------------------

MASTER = bytes(range(32))
CONFIG = ConsensusConfig(mode="pow", slot_duration_s=2, slots_per_epoch=4, checkpoint_interval_blocks=4)


class Defaults:
    default_params = REGTEST
    default_consensus = CONFIG

    async def hash_rate(self) -> int:
        return 1


@pytest_asyncio.fixture(loop_scope="module")
async def facade(tmp_path):
    store = await Store.open(tmp_path / "facade.sqlite3")
    node = Node(store, clock=lambda: 1_800_000_000.0, randomness=os.urandom, master_key=MASTER)
    await node.load()
    beacon = BeaconNode(node, ValidatorSigner(store, clock=lambda: 1_800_000_000.0, randomness=os.urandom,
                                              master_key=MASTER))
    yield Playground(node, beacon, Defaults())
    await store.close()


async def test_a_split_on_a_pos_chain_takes_the_slots_until_it_heals(facade):
    """Before: a proof-of-stake chain was refused (``SplitUnavailableError``): its blocks are proposed."""
    await facade.switch_mode(CHAIN, Mode.POS, "alice")
    split = await facade.start_split(CHAIN, groups=("@north", "everyone else"), in_group_a=in_group_a, minutes=3)
    slots = facade._beacon.slots
    assert split.proof_of_stake and split.hybrid and slots.splits[CHAIN] is split
    summary = await split.heal("admin")
    assert summary.proof_of_stake and CHAIN not in slots.splits and facade.games.current(CHAIN) is None


async def test_a_split_on_a_hybrid_chain_starts_with_each_sides_votes(facade):
    await facade.switch_mode(CHAIN, Mode.HYBRID, "alice")
    split = await facade.start_split(CHAIN, groups=("@north", "everyone else"), in_group_a=in_group_a, minutes=3)
    assert split.hybrid and split.view("A").finality is not None and split.view("B").finality is not None
    summary = await split.heal("admin")
    assert summary.finalized_before == summary.finalized_after == 0


async def test_a_withheld_branch_is_mined_on_its_own_tip(node):
    """``Node.mine(private=...)``: blocks the tree never saw, replayed on the base's state."""
    base = node.chain(CHAIN).state.tip_hash
    first = await node.mine(CHAIN, "bob", parent_hash=base, transfers=(), publish=False)
    second = await node.mine(CHAIN, "bob", parent_hash=base, transfers=(), private=(first.block,), publish=False)
    assert second.block.header.prev_hash == first.block.hash() and second.block.height == first.block.height + 1
    assert first.block.hash() not in node.tree(CHAIN) and node.chain(CHAIN).state.tip_hash == base
    # Published in order later, they extend the main chain as any blocks do.
    for found in (first, second):
        assert (await node.accept_block(CHAIN, found.block)).on_main
    # A withheld block that does not follow its parent is refused as process_block refuses it.
    with pytest.raises(ChainError):
        await node.branch_template(CHAIN, base, first.block.coinbase.miner, (), private=(second.block,))


async def test_a_withheld_branch_longer_than_the_node_checks_is_refused(node, monkeypatch):
    """Replayed under the chain's lock, a withheld branch is bounded as the tree's branches are."""
    monkeypatch.setattr("chain.adapters.node.MAX_BRANCH_DEPTH_BLOCKS", 1)
    base = node.chain(CHAIN).state.tip_hash
    withheld = []
    for _ in range(2):
        found = await node.mine(CHAIN, "bob", parent_hash=base, transfers=(), private=tuple(withheld), publish=False)
        withheld.append(found.block)
    with pytest.raises(BranchTooDeepError, match="a withheld branch of 2 block"):
        await node.mine(CHAIN, "bob", parent_hash=base, transfers=(), private=tuple(withheld), publish=False)
