"""The events a reorg, or finality refusing one, announces (issue 11 item 3).

The pure results exist elsewhere: the path of a reorg (``chain.consensus.tree.Reorg``), the
transfers it hands back to the mempool or drops (``chain.consensus.undo.compute_returned_transfers``),
the heavier branches finality refuses (``chain.consensus.tree.compute_best_tip`` with a finalized
block, ``chain.pos.lmd_ghost.get_refused_branches``).  This module only turns them into events for the
durable outbox, in a step of its own like ``chain.consensus.state.compute_block_events``: it compares
before with after (the tip before and after, the refusals known before and found now), so a caller
that asks on every block announces each fact once.

Order of a reorg's events: ``ChainReorganized`` first (what a member reads first in the channel),
then one ``PaymentReversed`` per dropped payment, then one ``PaymentReturnedToMempool`` per returned
one, each in the order given (block order, so nonce order per sender).

Pure: no clock, no storage.  Misuse (blocks or payments that are not the reorg's) is refused with
``ReorgEventsMismatchError`` and nothing is built.
"""

from __future__ import annotations

from collections.abc import Sequence

from chain.consensus.block import Block
from chain.consensus.tree import (
    BlockEntry,
    BlockTree,
    Reorg,
    compute_best_tip,
    compute_fork_point,
    compute_reorg,
    is_ancestor,
)
from chain.consensus.undo import DroppedTransfer
from chain.errors import ReorgEventsMismatchError
from chain.events import (
    ChainEvent,
    ChainReorganized,
    PaymentReturnedToMempool,
    PaymentReversed,
    ReorgRefusedByFinality,
)
from chain.hashing import hash_to_display
from chain.ledger.transaction import Transfer
from chain.pos.lmd_ghost import HeadChange, RefusedBranch, Store, get_common_ancestor


def _short(block_hash: bytes) -> str:
    return hash_to_display(block_hash)[:16] + "…"


def compute_reorg_events(
    reorg: Reorg,
    disconnected_blocks: Sequence[Block],
    returned: Sequence[Transfer],
    dropped: Sequence[DroppedTransfer],
    *,
    proof_of_stake: bool = False,
) -> tuple[ChainEvent, ...]:
    """The events of moving the tip along ``reorg``: none when it only extends the old tip.

    ``disconnected_blocks`` are the blocks of ``reorg.disconnect`` (any order), ``returned`` and
    ``dropped`` what ``compute_returned_transfers`` made of their transfers (a transfer the mempool
    then refused for its own limits belongs in ``dropped``).  Each payment event names the height of
    the orphaned block that had confirmed it.
    """
    expected = {entry.block_hash for entry in reorg.disconnect}
    given = {block.header.hash(): block for block in disconnected_blocks}
    if len(given) != len(disconnected_blocks) or set(given) != expected:
        missing = sorted(_short(h) for h in expected - set(given))
        extra = sorted(_short(h) for h in set(given) - expected)
        raise ReorgEventsMismatchError(
            f"the reorg disconnects {len(expected)} block(s) but {len(disconnected_blocks)} were given "
            f"(missing {missing or 'none'}, not disconnected {extra or 'none'}, each block once)"
        )
    if not reorg.is_reorg:
        if returned or dropped:
            raise ReorgEventsMismatchError(
                "the tip only moves forward: no block is disconnected, so no payment can be returned or reversed"
            )
        return ()
    confirmed_at = {tx.txid(): block.height for block in disconnected_blocks for tx in block.transfers}

    def height_of(txid: bytes) -> int:
        height = confirmed_at.get(txid)
        if height is None:
            raise ReorgEventsMismatchError(
                f"payment {_short(txid)} is in none of the {len(disconnected_blocks)} disconnected block(s)"
            )
        return height

    events: list[ChainEvent] = [
        ChainReorganized(
            old_tip_height=reorg.old_tip.height,
            old_tip_hash=reorg.old_tip.block_hash,
            new_tip_height=reorg.new_tip.height,
            new_tip_hash=reorg.new_tip.block_hash,
            fork_height=reorg.fork_point.height,
            fork_hash=reorg.fork_point.block_hash,
            depth=reorg.depth,
            connected=len(reorg.connect),
            payments_returned=len(returned),
            payments_reversed=len(dropped),
            # The tree's work is proof of work's; proof of stake switched on votes, not on work.
            old_chain_work=None if proof_of_stake else reorg.old_tip.chain_work,
            new_chain_work=None if proof_of_stake else reorg.new_tip.chain_work,
            proof_of_stake=proof_of_stake,
        )
    ]
    for drop in dropped:
        tx = drop.tx
        events.append(
            PaymentReversed(
                txid=drop.txid, sender=tx.sender, recipient=tx.recipient, amount=tx.amount, fee=tx.fee,
                nonce=tx.nonce, height=height_of(drop.txid), code=drop.code, reason=drop.reason,
            )
        )
    for tx in returned:
        txid = tx.txid()
        events.append(
            PaymentReturnedToMempool(
                txid=txid, sender=tx.sender, recipient=tx.recipient, amount=tx.amount, fee=tx.fee,
                nonce=tx.nonce, height=height_of(txid),
            )
        )
    return tuple(events)


def compute_tree_refusal_events(
    tree: BlockTree, finalized: bytes, previous_best: BlockEntry
) -> tuple[ChainEvent, ...]:
    """``ReorgRefusedByFinality`` when the tree's most-work tip now conflicts with the finalized
    block and did not before on the same branch: ``previous_best`` is ``tree.best`` before the
    block just added.  A refused branch that only grows is announced once; another conflicting
    branch taking the lead is announced again.

    The kept tip is ``compute_best_tip(tree, finalized)``; the depth is what switching from it to the
    refused tip would have disconnected.
    """
    best = tree.best
    if is_ancestor(tree, finalized, best.block_hash):
        return ()
    was_refused = not is_ancestor(tree, finalized, previous_best.block_hash)
    if was_refused and is_ancestor(tree, previous_best.block_hash, best.block_hash):
        return ()
    kept = compute_best_tip(tree, finalized)
    checkpoint = tree.get(finalized)
    return (
        ReorgRefusedByFinality(
            tip_hash=best.block_hash,
            fork_hash=compute_fork_point(tree, best.block_hash, finalized).block_hash,
            finalized_hash=checkpoint.block_hash,
            depth=compute_reorg(tree, kept.block_hash, best.block_hash).depth,
            branch_weight=best.chain_work,
            canonical_weight=kept.chain_work,
            tip_height=best.height,
            finalized_height=checkpoint.height,
        ),
    )


def compute_head_refusal_events(
    store: Store, refused_before: Sequence[RefusedBranch], change: HeadChange
) -> tuple[ChainEvent, ...]:
    """``ReorgRefusedByFinality`` for each branch ``change`` (``decide_head``) refuses that was not
    refused before (``refused_before``: the previous decision's ``refused``), by its first block: a
    refused branch that only grows or gains votes is announced once.

    The depth is what switching from the new head to the branch's tip would have disconnected.
    """
    known = {branch.root for branch in refused_before}
    finalized = store.finalized_checkpoint
    events: list[ChainEvent] = []
    for branch in change.refused:
        if branch.root in known:
            continue
        common = get_common_ancestor(store, change.head, branch.tip)
        depth = 0
        node = store.blocks[change.head]
        while node.root != common:
            depth += 1
            node = store.blocks[node.parent_root]
        events.append(
            ReorgRefusedByFinality(
                tip_hash=branch.tip,
                fork_hash=branch.fork_point,
                finalized_hash=finalized.root,
                depth=depth,
                branch_weight=branch.weight,
                canonical_weight=branch.canonical_weight,
                tip_slot=store.blocks[branch.tip].slot,
                finalized_epoch=finalized.epoch,
                proof_of_stake=True,
            )
        )
    return tuple(events)
