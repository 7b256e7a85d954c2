"""Proof of stake's head, chosen by the validators' latest votes over the block tree (LMD-GHOST).

Issue 11, item 2. Every proof-of-stake block joins the node's tree in the slot it is proposed
(``Node.accept_block``: on the head it extends the main chain; a second block for a slot, or one on
an older block, is kept as a side block). Which branch is the main chain is then the fork choice's
call, not work's: ``chain.pos.lmd_ghost`` (consensus-specs phase0 ``fork-choice.md``) fed with every
block and every vote the node sees, and asked at the start of each slot (``decide``). When its head
is not the main tip the node switches branches in one store transaction (``Node.switch_to``), and a
branch the votes prefer but finality forbids is announced once (``ReorgRefusedByFinality``) and never
switched to: no head ever leaves the finalized checkpoint's subtree.

The fork choice store is anchored at the main tip the first time a chain needs it (after a start:
blocks kept from before are not weighed again, their branches having lost already), and re-anchored
at the main tip whenever it holds more than ``HEAD_CHOICE_BLOCKS_KEPT`` blocks and no side branch, so
its memory stays bounded (``lmd_ghost.on_block`` copies its block map, O(blocks held)).
"""

from __future__ import annotations

import logging

from chain.adapters.beacon_runtime import BeaconChains, BeaconRuntime, require_beacon
from chain.consensus.block import Block
from chain.consensus.reorg_events import compute_head_refusal_events
from chain.errors import ChainError
from chain.pos import lmd_ghost
from chain.pos.attestation import AttestationData
from chain.pos.beacon import BeaconState
from chain.pos.forkchoice import get_fork_choice_weights

log = logging.getLogger(__name__)

# Blocks the fork choice store holds before it is re-anchored at the main tip (when no side branch is open).
HEAD_CHOICE_BLOCKS_KEPT = 256


def _block_node(block: Block, beacon: BeaconState) -> lmd_ghost.BlockNode:
    slot = block.seal.slot if block.seal is not None else beacon.slot
    return lmd_ghost.BlockNode(
        block.hash(), block.header.prev_hash, slot,
        beacon.finality.current_justified_checkpoint, beacon.finality.finalized_checkpoint,
    )


class HeadChoice:
    """Feeds each chain's LMD-GHOST store and moves the main chain to its head."""

    def __init__(self, chains: BeaconChains) -> None:
        self.chains = chains

    def store(self, chain_id: int, rt: BeaconRuntime) -> lmd_ghost.Store:
        """The chain's fork choice store, anchored at the main tip when there is none yet (or the one
        held has grown past ``HEAD_CHOICE_BLOCKS_KEPT`` with no side branch to weigh)."""
        state = self.chains.node.chain(chain_id).state
        store = rt.head_choice
        if store is not None and (store.anchor_root not in self.chains.node.tree(chain_id) or (
            len(store.blocks) > HEAD_CHOICE_BLOCKS_KEPT and len(store.children) == len(store.blocks) - 1
            and all(len(children) == 1 for children in store.children.values())
        )):
            store = None  # a reset's new chain, or a long single line: start again from the tip
        if store is None:
            beacon = require_beacon(state)
            store = lmd_ghost.get_forkchoice_store(
                state.tip_hash, beacon.slot, get_fork_choice_weights(beacon),
                slots_per_epoch=beacon.config.slots_per_epoch, anchor_parent_root=state.tip.prev_hash,
                current_slot=max(beacon.slot, rt.last_slot, 0),
            )
            rt.head_choice, rt.refused_branches = store, ()
        return store

    def on_block(self, chain_id: int, rt: BeaconRuntime, block: Block, beacon_after: BeaconState) -> None:
        """A block the node accepted (main or side) joins the fork choice."""
        store = self.store(chain_id, rt)
        node = _block_node(block, beacon_after)
        try:
            if node.slot > store.current_slot:
                store = lmd_ghost.on_tick(store, node.slot)
            rt.head_choice = lmd_ghost.on_block(store, node, get_fork_choice_weights(beacon_after))
        except ChainError as refusal:  # e.g. a branch off the finalized checkpoint: kept, never weighed
            log.info("chain %d: block %s stays out of the fork choice: %s", chain_id, block.header.hash_hex(), refusal)

    def on_vote(self, chain_id: int, rt: BeaconRuntime, index: int, data: AttestationData) -> None:
        """A checked vote weighs for its head (phase0 ``on_attestation``); a vote the fork choice cannot
        count (a head it does not hold, a vote from the future) still goes to the op pool."""
        store = self.store(chain_id, rt)
        try:
            if data.slot + 1 > store.current_slot:
                store = lmd_ghost.on_tick(store, data.slot + 1)
            rt.head_choice = lmd_ghost.on_attestation(store, (index,), data)
        except ChainError as refusal:
            log.debug("chain %d: vote of validator %d not weighed: %s", chain_id, index, refusal)

    def on_equivocation(self, chain_id: int, rt: BeaconRuntime, indices: tuple[int, ...]) -> None:
        """Slashing evidence: the equivocators' votes never weigh again."""
        rt.head_choice = lmd_ghost.on_attester_slashing(self.store(chain_id, rt), indices)

    async def decide(self, chain_id: int, rt: BeaconRuntime, slot: int) -> tuple[bytes, ...]:
        """At the start of ``slot``: move the main chain to the fork choice's head, and announce each
        branch finality refuses once. Returns the blocks taken off the main chain (none mostly)."""
        store = self.store(chain_id, rt)
        if slot > store.current_slot:
            store = rt.head_choice = lmd_ghost.on_tick(store, slot)
        node = self.chains.node
        tip = node.chain(chain_id).state.tip_hash
        if tip not in store.blocks:
            return ()
        change = lmd_ghost.decide_head(store, tip)
        events = compute_head_refusal_events(store, rt.refused_branches, change)
        rt.refused_branches = change.refused
        if change.head == tip:
            if events:
                await self.chains.store.write_events(chain_id, events, node.now())
            return ()
        await node.switch_to(chain_id, change.head, events)
        return change.orphaned
