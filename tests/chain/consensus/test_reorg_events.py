"""The events of a reorg and of finality refusing one (chain/consensus/reorg_events.py), built from real
trees, real blocks and the undo step's real result."""

from __future__ import annotations

import hashlib

import pytest

from chain.consensus.block import Block
from chain.consensus.reorg_events import (
    compute_head_refusal_events,
    compute_reorg_events,
    compute_tree_refusal_events,
)
from chain.consensus.tree import BlockEntry, BlockTree, compute_header_work, compute_reorg
from chain.consensus.undo import DroppedTransfer, compute_returned_transfers
from chain.errors import ReorgEventsMismatchError
from chain.events import (
    ChainReorganized,
    PaymentReturnedToMempool,
    PaymentReversed,
    ReorgRefusedByFinality,
    decode_event,
)
from chain.pos.attestation import Checkpoint
from chain.pos.lmd_ghost import decide_head
from tests.chain.consensus.test_undo import ALICE, ATTACKER_TOO, BOB, CAROL, MERCHANT, connect, mine_block, replay
from tests.chain.pos.test_lmd_ghost import G, finality_race, finalize_x, r
from tests.chainkit import genesis_block, new_chain, pay


def _add(tree: BlockTree, block: Block, params) -> None:
    work = compute_header_work(block.header.bits, params.pow_limit)
    tree.add_block(block.header.hash(), block.header.prev_hash, block.height, work)


def double_spend_reorg():
    """Alice (block 1) and Bob (block 2) are funded. The public branch's block 3 confirms Alice paying
    the merchant 30 and Bob paying Carol 10; the attacker's branch spends Alice's nonce 0 on herself and
    grows two blocks, so it has more work and wins."""
    public = new_chain()
    funding = []
    for miner in (ALICE, BOB):
        funding.append(mine_block(public, miner.public_key))
        connect(public, funding[-1])
    to_merchant = pay(public, ALICE, MERCHANT.public_key, 30, fee=2)
    to_carol = pay(public, BOB, CAROL.public_key, 10, fee=1)
    block_3a = mine_block(public, CAROL.public_key, [to_merchant, to_carol])
    connect(public, block_3a)

    attack = replay(funding)
    to_self = pay(attack, ALICE, ATTACKER_TOO.public_key, 45)
    private = []
    for transfers in ([to_self], []):
        private.append(mine_block(attack, CAROL.public_key, transfers))
        connect(attack, private[-1])

    genesis = genesis_block().header
    tree = BlockTree(genesis.hash(), compute_header_work(genesis.bits, public.params.pow_limit))
    for block in [*funding, block_3a, *private]:
        _add(tree, block, public.params)
    assert tree.best.block_hash == private[-1].header.hash()
    reorg = compute_reorg(tree, block_3a.header.hash(), tree.best.block_hash)
    returned, dropped = compute_returned_transfers([block_3a], attack.ledger, attack.chain_id, attack.params)
    return reorg, block_3a, returned, dropped, to_merchant, to_carol, tree


@pytest.fixture(scope="module")
def double_spend():
    return double_spend_reorg()


def test_a_reorg_that_reverses_one_payment_and_returns_another(double_spend):
    reorg, block_3a, returned, dropped, to_merchant, to_carol, _tree = double_spend
    assert returned == (to_carol,) and [d.code for d in dropped] == ["nonce_replay"]
    events = compute_reorg_events(reorg, [block_3a], returned, dropped)
    assert [type(e) for e in events] == [ChainReorganized, PaymentReversed, PaymentReturnedToMempool]
    head, reversed_, back = events
    assert head == ChainReorganized(
        old_tip_height=3, old_tip_hash=block_3a.header.hash(),
        new_tip_height=4, new_tip_hash=reorg.new_tip.block_hash,
        fork_height=2, fork_hash=reorg.fork_point.block_hash,
        depth=1, connected=2, payments_returned=1, payments_reversed=1,
        old_chain_work=reorg.old_tip.chain_work, new_chain_work=reorg.new_tip.chain_work,
    )
    assert head.new_chain_work > head.old_chain_work
    assert reversed_ == PaymentReversed(
        txid=to_merchant.txid(), sender=ALICE.public_key, recipient=MERCHANT.public_key, amount=30, fee=2,
        nonce=0, height=3, code="nonce_replay", reason=dropped[0].reason,
    )
    assert back == PaymentReturnedToMempool(
        txid=to_carol.txid(), sender=BOB.public_key, recipient=CAROL.public_key, amount=10, fee=1, nonce=0, height=3,
    )
    for event in events:  # through the outbox and back, unchanged
        assert decode_event(event.kind, event.payload_json()) == event


def test_a_proof_of_stake_reorg_carries_no_work(double_spend):
    reorg, block_3a, returned, dropped, *_ = double_spend
    [head, *_rest] = compute_reorg_events(reorg, [block_3a], returned, dropped, proof_of_stake=True)
    assert isinstance(head, ChainReorganized)
    assert head.proof_of_stake and head.old_chain_work is None and head.new_chain_work is None


def test_moving_the_tip_forward_announces_nothing(double_spend):
    reorg, *_rest, tree = double_spend
    extension = compute_reorg(tree, reorg.fork_point.block_hash, reorg.new_tip.block_hash)
    assert not extension.is_reorg
    assert compute_reorg_events(extension, [], [], []) == ()


def test_invalid_blocks_that_are_not_the_reorgs(double_spend):
    reorg, block_3a, returned, dropped, *_ = double_spend
    for blocks in ([], [block_3a, block_3a], [genesis_block()]):
        with pytest.raises(ReorgEventsMismatchError) as refused:
            compute_reorg_events(reorg, blocks, returned, dropped)
        assert refused.value.code == "reorg_events_mismatch"


def test_invalid_payment_that_no_disconnected_block_confirmed(double_spend):
    reorg, block_3a, returned, dropped, *_rest = double_spend
    stranger = pay(new_chain(), ALICE, BOB.public_key, 1)
    with pytest.raises(ReorgEventsMismatchError, match="in none of the 1 disconnected"):
        compute_reorg_events(reorg, [block_3a], [stranger], dropped)
    fake_drop = DroppedTransfer(stranger, stranger.txid(), "nonce_replay", "made up")
    with pytest.raises(ReorgEventsMismatchError):
        compute_reorg_events(reorg, [block_3a], returned, [fake_drop])


def test_invalid_payments_when_nothing_is_disconnected(double_spend):
    reorg, _block, returned, *_rest, tree = double_spend
    extension = compute_reorg(tree, reorg.fork_point.block_hash, reorg.new_tip.block_hash)
    with pytest.raises(ReorgEventsMismatchError, match="only moves forward"):
        compute_reorg_events(extension, [], returned, [])


# --- finality refusing a heavier branch --------------------------------------------------------


def h(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def finality_fork() -> tuple[BlockTree, BlockEntry]:
    """g - f1 (finalized) - a2 is kept; b1 - b2 from g ties it (the first seen, a2, stays best).
    Returns the tree and its best tip, before b3 gives branch b more work."""
    tree = BlockTree(h("g"), 1)
    tree.add_block(h("f1"), h("g"), 1, 1)
    tree.add_block(h("a2"), h("f1"), 2, 1)
    tree.add_block(h("b1"), h("g"), 1, 1)
    before = tree.best
    tree.add_block(h("b2"), h("b1"), 2, 1)
    assert compute_tree_refusal_events(tree, h("f1"), before) == ()
    return tree, tree.best


def test_a_heavier_branch_conflicting_with_a_finalized_block_is_announced_once():
    """Branch b outgrows the finalized branch; later c1..c5 outgrows b."""
    tree, before = finality_fork()
    finalized = h("f1")
    tree.add_block(h("b3"), h("b2"), 3, 1)
    [event] = compute_tree_refusal_events(tree, finalized, before)
    assert event == ReorgRefusedByFinality(
        tip_hash=h("b3"), fork_hash=h("g"), finalized_hash=h("f1"), depth=2, branch_weight=4, canonical_weight=3,
        tip_height=3, finalized_height=1,
    )
    assert decode_event(event.kind, event.payload_json()) == event

    # The same refused branch growing is not news.
    before = tree.best
    tree.add_block(h("b4"), h("b3"), 4, 1)
    assert compute_tree_refusal_events(tree, finalized, before) == ()

    # Another conflicting branch taking the lead is.
    parent = h("g")
    for height in range(1, 6):
        before = tree.best
        tree.add_block(h(f"c{height}"), parent, height, 1)
        parent = h(f"c{height}")
    [event] = compute_tree_refusal_events(tree, finalized, before)
    assert (event.tip_hash, event.tip_height, event.branch_weight) == (h("c5"), 5, 6)


def test_a_branch_that_keeps_the_finalized_block_is_no_refusal():
    tree = BlockTree(h("g"), 1)
    tree.add_block(h("f1"), h("g"), 1, 1)
    before = tree.best
    tree.add_block(h("a2"), h("f1"), 2, 5)
    assert compute_tree_refusal_events(tree, h("f1"), before) == ()


def test_proof_of_stake_votes_refused_by_finality_are_announced_once():
    store = finalize_x(finality_race())
    change = decide_head(store, previous_head=r("X3"))
    [event] = compute_head_refusal_events(store, (), change)
    assert event == ReorgRefusedByFinality(
        tip_hash=r("Y1"), fork_hash=G, finalized_hash=r("X2"), depth=4, branch_weight=96, canonical_weight=32,
        tip_slot=2, finalized_epoch=1, proof_of_stake=True,
    )
    assert store.finalized_checkpoint == Checkpoint(1, r("X2"))
    assert decode_event(event.kind, event.payload_json()) == event
    assert compute_head_refusal_events(store, change.refused, decide_head(store, previous_head=r("X4"))) == ()
