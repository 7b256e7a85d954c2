"""The slot tick of a proof-of-stake chain (and the vote tick of a hybrid one).

``SlotDriver.on_slot`` runs the slot due at ``now``, under the chain's slot lock: the fork choice
first moves the main chain to the head the votes so far choose (``HeadChoice.decide``, LMD-GHOST over
the block tree: mostly the tip already), then the slot's drawn proposer signs a block from the
mempool and op pool, which joins the chain at once, in its own slot, and validators with
auto-attest on vote for it.  A slot whose block would carry nothing is skipped
while the chain is idle or over its block budget (chain/adapters/budget.py); the budgets, one
token bucket per chain, live here, in memory.  In chaos mode a proposer can sign a second block
for its slot (``equivocate``), which the ``SlashingDetector`` turns into evidence.

While a network split runs on a proof-of-stake chain (``splits``, registered by the split) the slot
is the split's: each side's proposer proposes on its own side's branch (``SlotSplit.on_slot``) and the
main chain gets no block, no fork-choice move and no auto votes until the split heals.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Protocol

from chain.adapters.beacon_runtime import BeaconChains, BeaconRuntime, is_pos, require_beacon
from chain.adapters.beacon_status import BeaconStatus, VoteProgress
from chain.adapters.budget import DEFAULT_BLOCKS_PER_HOUR, BlockBudget, is_idle, should_skip_empty_slot
from chain.adapters.head_choice import HeadChoice
from chain.adapters.votes import Votes
from chain.consensus.block import Block
from chain.consensus.consensus_block import compute_pre_block_beacon
from chain.consensus.templates import build_unsigned_pos_block, seal_pos_block
from chain.errors import ChainError, NotProposerError
from chain.pos.attestation import AttesterSlashing, ProposerSlashing
from chain.pos.beacon import compute_slot_at_time, get_epoch_at_slot
from chain.pos.op_pool import is_dead_operation
from chain.pos.operations import Operations

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SlotOutcome:
    """What one slot tick did, for the cog to post."""

    slot: int
    epoch: int
    # Blocks the fork choice took off the main chain at the slot's start (votes preferred another branch).
    orphaned: tuple[bytes, ...]
    # This slot's proposal (None when the proposer's key is not ours or nothing could be proposed).
    proposer_index: int | None
    proposer_owner: str | None
    block: Block | None
    auto_votes: int
    progress: VoteProgress | None
    evidence: tuple[AttesterSlashing | ProposerSlashing, ...] = ()
    # The slot's block would have carried nothing and the chain is idle or over its budget.
    skipped: bool = False


class SlotSplit(Protocol):
    """A network split on a proof-of-stake chain (``chain.adapters.network_split``): it takes the slots."""

    async def on_slot(self, slot: int) -> int:
        """Each side's proposal for ``slot``; returns how many blocks the sides kept."""
        ...


class SlotDriver:
    """Runs each chain's due slot: settle, propose, auto-attest; and the per-chain block budget."""

    def __init__(
        self, chains: BeaconChains, status: BeaconStatus, votes: Votes, heads: HeadChoice, *,
        blocks_per_hour: int = DEFAULT_BLOCKS_PER_HOUR,
    ) -> None:
        self.chains = chains
        self.status = status
        self.votes = votes
        self.heads = heads
        # Slot blocks each server may get (chain/adapters/budget.py): a token bucket per chain, in memory.
        self.blocks_per_hour = blocks_per_hour
        self.budgets: dict[int, BlockBudget] = {}
        # The network split running on each proof-of-stake chain, which takes its slots (see the module).
        self.splits: dict[int, SlotSplit] = {}

    async def on_slot(self, chain_id: int, now: int) -> SlotOutcome | None:
        """Run the slot that is due at ``now``; None if it already ran or the chain has not merged."""
        node = self.chains.node
        runtime = node.chain(chain_id)
        beacon = runtime.state.beacon
        if beacon is None:
            return None
        if not is_pos(beacon):
            if beacon.ffg_enabled:
                return await self._hybrid_tick(chain_id)
            return None
        async with self.chains.lock(chain_id):
            rt = await self.chains.runtime(chain_id)
            beacon = self.chains.beacon(chain_id)
            slot = compute_slot_at_time(beacon, now)
            if slot <= rt.last_slot or slot <= beacon.slot:
                return None
            split = self.splits.get(chain_id)
            if split is not None:
                rt.last_slot = slot
                rt.proposed = {}
                await split.on_slot(slot)
                return SlotOutcome(
                    slot=slot, epoch=get_epoch_at_slot(beacon, slot), orphaned=(), proposer_index=None,
                    proposer_owner=None, block=None, auto_votes=0, progress=self.status.progress(chain_id),
                )
            orphaned = await self.heads.decide(chain_id, rt, slot)
            rt.last_slot = slot
            rt.proposed = {}
            await self._prune_pool(chain_id)
            state = node.chain(chain_id).state
            runtime = node.chain(chain_id)
            skipped = (len(runtime.mempool) == 0 and len(runtime.op_pool) == 0 and should_skip_empty_slot(
                last_activity=runtime.last_activity, now=now, slots_since_block=slot - require_beacon(state).slot,
                slots_per_epoch=require_beacon(state).config.slots_per_epoch, budget_left=self.budget(chain_id, now),
            ))
            if skipped:
                proposer_index, owner, block = None, None, None
            else:
                proposer_index, owner, block = await self._propose(chain_id, rt, slot, now)
                if block is not None:
                    self._budget(chain_id, now).spend(now)
            state = node.chain(chain_id).state
            head = state.tip_hash
            auto_votes, evidence = await self.votes.auto_attest(chain_id, rt, slot, head)
            return SlotOutcome(
                slot=slot,
                epoch=get_epoch_at_slot(compute_pre_block_beacon(state, slot, head, True), slot),
                orphaned=orphaned,
                proposer_index=proposer_index,
                proposer_owner=owner,
                block=block,
                auto_votes=auto_votes,
                progress=self.status.progress(chain_id),
                evidence=tuple(evidence),
                skipped=skipped,
            )

    def _budget(self, chain_id: int, now: int) -> BlockBudget:
        budget = self.budgets.get(chain_id)
        if budget is None:
            budget = self.budgets[chain_id] = BlockBudget.full(self.blocks_per_hour, now)
        return budget

    def budget(self, chain_id: int, now: int) -> int:
        """Slot blocks this server may still get now (its budget refills by ``blocks_per_hour``)."""
        return self._budget(chain_id, now).available(now)

    def is_idle(self, chain_id: int, now: int) -> bool:
        return is_idle(self.chains.node.chain(chain_id).last_activity, now)

    async def _hybrid_tick(self, chain_id: int) -> SlotOutcome | None:
        """Hybrid mode (Casper FFG over proof of work): a block's slot is its height; when a new
        block arrives, validators with auto-attest on vote for it, and miners include the votes."""
        async with self.chains.lock(chain_id):
            rt = await self.chains.runtime(chain_id)
            state = self.chains.node.chain(chain_id).state
            if state.height <= rt.last_slot:
                return None
            rt.last_slot = state.height
            await self._prune_pool(chain_id)
            votes, evidence = await self.votes.auto_attest(chain_id, rt, state.height, state.tip_hash)
            return SlotOutcome(
                slot=state.height, epoch=require_beacon(state).epoch, orphaned=(), proposer_index=None,
                proposer_owner=None, block=None, auto_votes=votes, progress=self.status.progress(chain_id),
                evidence=tuple(evidence),
            )

    async def _propose(
        self, chain_id: int, rt: BeaconRuntime, slot: int, now: int, *, chaos: bool = False, message: bytes = b"",
        parent: bytes | None = None,
    ) -> tuple[int | None, str | None, Block | None]:
        """The slot's proposer signs a block on the main tip (or, chaos, on ``parent``: a second block
        for the slot beside the first), and the node keeps it at once."""
        node = self.chains.node
        runtime = node.chain(chain_id)
        if parent is None or parent == runtime.state.tip_hash:
            state = runtime.state
            transfers = runtime.mempool.select(state.params.max_block_transfers)
            pool = runtime.op_pool.operations()
        else:  # the mempool and op pool were checked against the main tip, not this branch
            state, transfers, pool = await node.branch_state(chain_id, parent), [], Operations()
        # Choosing the operations checks every pooled vote: in a thread, off the event loop.
        template, header, proposer_index = await asyncio.to_thread(
            build_unsigned_pos_block, state, slot, transfers, pool, None, message,
            None if message else runtime.proposed_params,
        )
        owner = rt.owners.get(header.proposer)
        if owner is None:
            for stored in await self.chains.store.validator_keys.all(chain_id):
                rt.owners[stored.pubkey] = stored.owner
            owner = rt.owners.get(header.proposer)
        if owner is None:
            log.warning(
                "chain %d: slot %d's proposer %d has no key here; the slot stays empty", chain_id, slot, proposer_index
            )
            return proposer_index, None, None
        try:
            signed = await self.chains.signer.sign_proposal(chain_id, owner, header, chaos=chaos)
        except ChainError as refusal:
            log.warning("chain %d: slot %d: no block from %s: %s", chain_id, slot, owner, refusal)
            return proposer_index, owner, None
        block = seal_pos_block(template, slot, proposer_index, signed.signature)
        try:
            accepted = await node.accept_block(chain_id, block)
        except ChainError as refusal:  # e.g. a slashed validator drawn before its exit: the slot stays empty
            log.warning("chain %d: slot %d: no block from %s: %s", chain_id, slot, owner, refusal)
            return proposer_index, owner, None
        # A proof-of-stake seal comes only with a version-2 block, which always has operations.
        if block.operations is not None:
            await self.chains.store.energy.add(chain_id, pos_verify_ops=1 + len(block.operations.attestations))
        beacon_after = accepted.effects.beacon
        if beacon_after is not None:
            self.heads.on_block(chain_id, rt, block, beacon_after)
        rt.proposed[block.hash()] = block
        evidence = rt.detector.observe_proposal(signed)
        if evidence is not None:
            log.warning("chain %d: %s signed two blocks for slot %d; evidence queued", chain_id, owner, slot)
            await self.chains.node.add_operation(chain_id, evidence)
        return proposer_index, owner, block

    async def _prune_pool(self, chain_id: int) -> None:
        """Drop pooled operations no block can take any more (old votes, used nonces, done exits)."""
        runtime = self.chains.node.chain(chain_id)
        beacon, ledger = runtime.state.beacon, runtime.state.ledger
        await self.chains.node.drop_operations(
            chain_id, runtime.op_pool.select_ids(lambda e: is_dead_operation(e.operation, beacon, ledger))
        )

    async def equivocate(self, chain_id: int, owner: str, now: int) -> Block:
        """Chaos mode: the slot's proposer signs a second, different block for the same slot."""
        await self.chains.require_chaos(chain_id, "equivocate")
        async with self.chains.lock(chain_id):
            rt = await self.chains.runtime(chain_id)
            if not rt.proposed:
                raise NotProposerError("no block has been proposed in this slot yet; wait for the next one")
            first = next(iter(rt.proposed.values()))
            pubkey = await self.chains.signer.find_validator_key(chain_id, owner)
            if pubkey is None or rt.owners.get(pubkey) != owner or first.seal is None or (
                self.chains.beacon(chain_id).registry.index_of(pubkey) != first.seal.proposer_index
            ):
                raise NotProposerError(f"only slot {rt.last_slot}'s proposer can sign a second block for it")
            _, _, block = await self._propose(
                chain_id, rt, rt.last_slot, now, chaos=True, message=b"a second block for this slot",
                parent=first.header.prev_hash,
            )
            if block is None:
                raise NotProposerError("the second block could not be made; see the bot's log")
            return block
