"""The node keeps every valid block and reorganises onto the branch with the most work (issue 11, item 1).

Blocks here are built with ``Node.branch_template`` on any block of the tree and solved in the test
process (easy regtest targets), then handed to ``Node.accept_block``, as a member's late block, a
private branch being published, or one side of a network split would be.
"""

import asyncio
import os
from dataclasses import replace

import pytest

from bot.storage import OutboxRepository
from chain.adapters.node import BlockAcceptance, Node
from chain.adapters.storage import Store
from chain.consensus.verify import verify_chain
from chain.errors import (
    BranchTooDeepError,
    DuplicateBlockError,
    InsufficientBalanceError,
    StaleBlockError,
    UnknownAccountError,
    UnknownParentError,
)
from chain.events import ChainReorganized, PaymentReturnedToMempool, PaymentReversed
from chain.ledger.accounts import compute_block_subsidy
from chain.ledger.transaction import make_transfer
from chain.params import REGTEST
from tests.chainkit import solve

CHAIN = 7
MASTER = b"\x42" * 32


class FakeClock:
    def __init__(self, start: int = 1_800_000_000) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 1
        return float(self.now)


async def open_node(path) -> Node:
    store = await Store.open(path)
    node = Node(store, clock=FakeClock(), randomness=os.urandom, master_key=MASTER)
    await node.load()
    return node


@pytest.fixture
async def node(tmp_path):
    n = await open_node(tmp_path / "reorg.sqlite3")
    await n.create_chain(CHAIN, REGTEST, initial_bits=0x207FFFFF)
    yield n
    await n.store.close()


async def build_on(node: Node, parent: bytes, owner: str, transfers=None):
    miner = await node.address(CHAIN, owner)
    return solve(await node.branch_template(CHAIN, parent, miner, transfers), REGTEST)


async def extend(node: Node, parent: bytes, count: int, owner: str) -> list[BlockAcceptance]:
    """``count`` blocks on ``parent``, each on the one before, accepted as they are found."""
    accepted = []
    for _ in range(count):
        result = await node.accept_block(CHAIN, await build_on(node, parent, owner))
        accepted.append(result)
        parent = result.entry.block_hash
    return accepted


async def stored_events(node: Node) -> list:
    return [e.event for e in await OutboxRepository(node.store.db).pending_events(CHAIN)]


async def assert_matches_a_replay(node: Node) -> None:
    """The in-memory state, the stored accounts and a replay of the stored main chain agree."""
    runtime = node.chain(CHAIN)
    stored = await node.store.load_chain(CHAIN)
    # Raises VerificationError at the first block or balance that does not replay.
    replayed, _ = verify_chain(stored.params, CHAIN, stored.blocks, node.now(), stored.accounts)
    assert replayed.tip_hash == runtime.state.tip_hash
    assert stored.blocks[-1].hash() == runtime.state.tip_hash == runtime.tip_block.hash()
    live = {k: v for k, v in runtime.state.ledger.items() if v.balance or v.nonce}
    assert live == {k: v for k, v in stored.accounts.items() if v.balance or v.nonce}
    report = await node.verify(CHAIN)
    assert report.blocks == runtime.state.height + 1


async def test_a_late_block_is_kept_as_a_side_block_not_thrown_away(node):
    genesis = node.chain(CHAIN).state.tip_hash
    (first,) = await extend(node, genesis, 1, "alice")
    late = await build_on(node, genesis, "bob")
    with pytest.raises(StaleBlockError, match="kept as a side block"):
        await node.submit_block(CHAIN, late)
    tree = node.tree(CHAIN)
    assert late.hash() in tree and tree.get(late.hash()).height == 1
    assert node.chain(CHAIN).state.tip_hash == first.entry.block_hash  # equal work: the first seen stays
    assert (await node.store.tree.side_block(CHAIN, late.hash())).hash() == late.hash()
    assert node.account(CHAIN, await node.address(CHAIN, "bob")).balance == 0


@pytest.mark.parametrize("depth", [1, 2, 10])
async def test_a_heavier_branch_reorganises_the_chain(node, depth):
    fork = (await extend(node, node.chain(CHAIN).state.tip_hash, 1, "alice"))[-1].entry
    main = await extend(node, fork.block_hash, depth, "alice")
    side = await extend(node, fork.block_hash, depth, "bob")
    assert all(not a.on_main for a in side)  # as much work as the main chain: the first seen keeps it
    assert node.chain(CHAIN).state.tip_hash == main[-1].entry.block_hash
    (winner,) = await extend(node, side[-1].entry.block_hash, 1, "bob")
    assert winner.on_main and winner.reorg is not None
    assert winner.reorg.depth == depth
    assert [e.block_hash for e in winner.reorg.disconnect] == [a.entry.block_hash for a in reversed(main)]
    assert node.chain(CHAIN).state.height == fork.height + depth + 1
    bob = await node.address(CHAIN, "bob")
    alice = await node.address(CHAIN, "alice")
    subsidy = compute_block_subsidy(1, REGTEST)
    assert node.account(CHAIN, bob).balance == (depth + 1) * subsidy
    assert node.account(CHAIN, alice).balance == subsidy  # the fork block only
    assert node.chain(CHAIN).blocks_mined[alice] == 1 and node.chain(CHAIN).blocks_mined[bob] == depth + 1
    (reorganized,) = [e for e in winner.events if isinstance(e, ChainReorganized)]
    assert (reorganized.depth, reorganized.fork_height, reorganized.connected) == (depth, fork.height, depth + 1)
    assert reorganized in await stored_events(node)
    await assert_matches_a_replay(node)
    # The blocks taken off stay in the tree, as side blocks.
    for gone in main:
        assert (await node.store.tree.side_block(CHAIN, gone.entry.block_hash)).hash() == gone.entry.block_hash


async def test_a_reorg_reverses_a_double_spent_payment(node):
    start = node.chain(CHAIN).state.tip_hash
    await extend(node, start, 1, "mallory")
    fork = node.chain(CHAIN).state.tip_hash
    mallory_key = await node.wallet(CHAIN, "mallory")
    merchant = await node.address(CHAIN, "merchant")
    accomplice = await node.address(CHAIN, "accomplice")
    payment = await node.pay(CHAIN, "mallory", merchant, 30, fee=1)
    await extend(node, fork, 2, "honest")  # the payment confirms, with one block on top
    assert node.account(CHAIN, merchant).balance == 30
    # The private branch, from before the payment: the same nonce pays the accomplice instead.
    conflict = make_transfer(mallory_key, accomplice, 30, 1, payment.entry.tx.nonce, CHAIN)
    results = [await node.accept_block(CHAIN, await build_on(node, fork, "mallory", [conflict]))]
    for _ in range(2):
        results.append(await node.accept_block(CHAIN, await build_on(node, results[-1].entry.block_hash, "mallory")))
    assert [r.on_main for r in results] == [False, False, True]
    assert results[-1].reorg is not None and results[-1].reorg.depth == 2
    assert node.account(CHAIN, merchant).balance == 0
    assert node.account(CHAIN, accomplice).balance == 30
    (reversed_,) = [e for e in results[-1].events if isinstance(e, PaymentReversed)]
    assert reversed_.txid == payment.entry.txid and reversed_.code == "nonce_replay"
    assert payment.entry.txid not in node.chain(CHAIN).mempool
    assert await node.store.blocks.get_transaction(CHAIN, payment.entry.txid) is None
    await assert_matches_a_replay(node)


async def test_a_reorg_returns_a_still_valid_payment_to_the_mempool_and_it_confirms_again(node):
    start = node.chain(CHAIN).state.tip_hash
    await extend(node, start, 1, "alice")
    fork = node.chain(CHAIN).state.tip_hash
    bob = await node.address(CHAIN, "bob")
    payment = await node.pay(CHAIN, "alice", bob, 12)
    await extend(node, fork, 1, "carol")
    assert node.account(CHAIN, bob).balance == 12
    won = await extend(node, fork, 2, "dave")
    assert won[-1].reorg is not None
    (returned,) = [e for e in won[-1].events if isinstance(e, PaymentReturnedToMempool)]
    assert returned.txid == payment.entry.txid
    assert node.account(CHAIN, bob).balance == 0
    assert payment.entry.txid in node.chain(CHAIN).mempool
    restarted_pool = await node.store.mempool.entries(CHAIN)
    assert [e.txid for e in restarted_pool] == [payment.entry.txid]
    await extend(node, node.chain(CHAIN).state.tip_hash, 1, "dave")  # the mempool's template takes it
    assert node.account(CHAIN, bob).balance == 12
    await assert_matches_a_replay(node)


async def test_a_side_branch_survives_a_restart_and_can_still_win(node, tmp_path):
    genesis = node.chain(CHAIN).state.tip_hash
    await extend(node, genesis, 2, "alice")
    side = await extend(node, genesis, 2, "bob")
    await node.store.close()
    node = await open_node(tmp_path / "reorg.sqlite3")
    try:
        assert side[-1].entry.block_hash in node.tree(CHAIN)
        assert node.tree(CHAIN).get(side[-1].entry.block_hash) == side[-1].entry
        won = await extend(node, side[-1].entry.block_hash, 1, "bob")
        assert won[-1].reorg is not None and won[-1].reorg.depth == 2
        await assert_matches_a_replay(node)
    finally:
        await node.store.close()


async def test_invalid_side_block_spending_what_its_branch_never_had_changes_nothing(node):
    genesis = node.chain(CHAIN).state.tip_hash
    await extend(node, genesis, 1, "alice")  # alice's points exist on the main chain only
    alice_key = await node.wallet(CHAIN, "alice")
    bob = await node.address(CHAIN, "bob")
    spend = make_transfer(alice_key, bob, 5, 0, 0, CHAIN)
    # Valid on the main chain, not on a branch from genesis, where alice has nothing.
    bad = await build_on(node, genesis, "bob", [spend])
    before, tip = len(node.tree(CHAIN)), node.chain(CHAIN).state.tip_hash
    with pytest.raises((UnknownAccountError, InsufficientBalanceError)):
        await node.accept_block(CHAIN, bad)
    assert len(node.tree(CHAIN)) == before and bad.hash() not in node.tree(CHAIN)
    assert node.chain(CHAIN).state.tip_hash == tip
    assert [e.block_hash for e in await node.store.tree.entries(CHAIN)] == [e.block_hash for e in node.tree(CHAIN)]
    # The same spend on the main chain is fine.
    good = await build_on(node, tip, "bob", [spend])
    assert (await node.accept_block(CHAIN, good)).on_main


async def test_invalid_duplicate_and_unknown_parent_blocks_change_nothing(node):
    genesis = node.chain(CHAIN).state.tip_hash
    (first,) = await extend(node, genesis, 1, "alice")
    with pytest.raises(DuplicateBlockError):
        await node.accept_block(CHAIN, first.block)
    block = await build_on(node, first.entry.block_hash, "bob")
    stray = replace(block, header=replace(block.header, prev_hash=b"\x07" * 32))
    with pytest.raises(UnknownParentError) as refused:
        await node.accept_block(CHAIN, stray)
    assert refused.value.parent_hash == b"\x07" * 32
    assert len(node.tree(CHAIN)) == 2


async def test_competing_blocks_accepted_at_the_same_moment_give_one_main_block_and_one_side_block(node):
    genesis = node.chain(CHAIN).state.tip_hash
    a, b = await build_on(node, genesis, "alice"), await build_on(node, genesis, "bob")
    results = await asyncio.gather(node.accept_block(CHAIN, a), node.accept_block(CHAIN, b))
    assert sorted(r.on_main for r in results) == [False, True]
    assert len(node.tree(CHAIN)) == 3
    await assert_matches_a_replay(node)


async def test_a_payment_and_a_reorg_at_the_same_moment_leave_one_consistent_chain(node):
    genesis = node.chain(CHAIN).state.tip_hash
    await extend(node, genesis, 1, "alice")
    fork = node.chain(CHAIN).state.tip_hash
    await extend(node, fork, 1, "carol")
    side = await extend(node, fork, 1, "dave")
    winner = await build_on(node, side[-1].entry.block_hash, "dave")
    bob = await node.address(CHAIN, "bob")
    payment, accepted = await asyncio.gather(node.pay(CHAIN, "alice", bob, 3), node.accept_block(CHAIN, winner))
    assert accepted.reorg is not None
    # Whichever came first, the payment is pooled on the new tip, in memory and on disk alike.
    assert payment.entry.txid in node.chain(CHAIN).mempool
    assert [e.txid for e in await node.store.mempool.entries(CHAIN)] == [payment.entry.txid]
    await assert_matches_a_replay(node)


async def test_invalid_branch_forking_deeper_than_the_node_checks_changes_nothing(node, monkeypatch):
    """A block on a block far below the tip would have the node read and re-process its whole branch
    under the chain's lock: refused past MAX_BRANCH_DEPTH_BLOCKS, so no member can stall a chain."""
    from chain.adapters import branches

    monkeypatch.setattr(branches, "MAX_BRANCH_DEPTH_BLOCKS", 3)
    genesis = node.chain(CHAIN).state.tip_hash
    main = await extend(node, genesis, 5, "alice")
    old = main[0].entry.block_hash  # block 1: 4 below the tip
    before = len(node.tree(CHAIN))
    with pytest.raises(BranchTooDeepError) as refused:
        await build_on(node, old, "bob")  # even a template on it is refused
    assert (refused.value.depth, refused.value.limit) == (4, 3)
    recent = main[2].entry.block_hash  # block 3: 2 below the tip, within the limit
    side = await node.accept_block(CHAIN, await build_on(node, recent, "bob"))
    assert not side.on_main and len(node.tree(CHAIN)) == before + 1
