"""A network split running on a server's chain (issue 11, games item 6): the runner.

``NetworkSplit`` is the running game (``GameSessions`` kind ``network_split``). While it runs it is the
chain's ``MinerRouter``: a member's ``/mine`` mines on the tip of their group's branch and the block is
kept by the game (``publish=False``), not published, so that the main chain does not flip back and
forth and each group sees only its own blocks. Payments sent with ``/wallet pay`` go to the mempool,
which both sides hear of; ``pay`` makes a payment only one side hears of. Each side's next block takes
the payments valid on its own branch (``chain.games.network_split.select_side_transfers``).

The split heals at its deadline, on an admin's ``heal`` or when the bot shuts down, exactly once (a
flag set under the game's lock; a second heal gets ``NoGameRunningError``). Healing publishes both
branches with ``Node.accept_block``, the branch whose first block was found first before the other,
so that on equal work the first seen stays; the node's fork choice keeps the heavier branch, and a
switch is one reorg in one transaction whose events (``ChainReorganized``, ``PaymentReversed``,
``PaymentReturnedToMempool``) the node writes to the outbox with it. A block found on a side after the
heal began is published as soon as the heal is over, where it lands (on the winner's tip it extends
the chain; on the loser's it is one more orphan).

On a hybrid chain (``voting``: ``chain.adapters.split_votes``) each side's validators vote on its own
blocks only: after each side block they sign votes computed on the side's branch state, and the
side's next block carries them (``MinerRoute.operations``); views and the summary show each side's
stake share and checkpoints, and a heavier branch the node refuses because it conflicts with a
finalized checkpoint (``ReorgRefusedByFinality``).

On a proof-of-stake chain (``voting.proof_of_stake``) nobody mines: the slot driver hands each slot to
the split (``on_slot``, registered in ``SlotDriver.splits`` until the heal). For each side, the slot's
proposer drawn on that side's branch state proposes there if its owner is on that side; the block is
withheld like a mined one and the side's auto-attest validators vote on it, computed on the side's
branch; the main chain makes no block meanwhile. The heal takes the slot lock first (the slot
driver's order: slot lock, then the split's), publishes both branches (side blocks never win by
work on a proof-of-stake chain), feeds the fork choice every published block and the votes they
carry, and lets it decide (``HeadChoice.decide``): the branch with more attesting stake becomes the
main chain, unless it conflicts with a finalized checkpoint (refused and announced as
``ReorgRefusedByFinality``). Neither side justifies a checkpoint without two thirds of the stake.

What can go wrong: a restart loses nothing of the chain (the bot heals the split as it shuts down),
but a crash loses the withheld blocks, which were never stored; the mempool's payments stay. A side
picks its payments from the main chain's balances, the split's base unless a block found outside the
game during the split (a session started before it) moves them; the node checks the side's template
against the base's own state, so such a pick can be refused and that member's session fails.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from chain.adapters.beacon_runtime import BeaconRuntime
from chain.adapters.game_sessions import GameSessions, MinerRoute
from chain.adapters.hashcore import MiningSession
from chain.adapters.head_choice import HeadChoice
from chain.adapters.node import MiningResult, Node
from chain.adapters.split_votes import SideFinality, SplitVoting, pending_after
from chain.consensus.block import Block
from chain.consensus.tree import BlockEntry, compute_header_work, get_ancestor_at_height
from chain.errors import ChainError, NoGameRunningError, SplitDurationError, SplitPaymentError
from chain.events import (
    ChainEvent,
    ChainReorganized,
    PaymentReturnedToMempool,
    PaymentReversed,
    ReorgRefusedByFinality,
)
from chain.games.network_split import (
    SIDE_A,
    SIDE_B,
    SIDES,
    SideBlock,
    SplitBranch,
    compute_publish_order,
    compute_side_next_nonce,
    compute_side_spendable,
    confirmed_on_both,
    count_double_spends,
    predict_winner,
    select_side_transfers,
    side_label,
)
from chain.ledger.accounts import Account
from chain.ledger.transaction import Transfer, make_transfer
from chain.pos.attestation import SignedAttestation
from chain.pos.operations import Operations

log = logging.getLogger(__name__)

KIND = "network_split"
# "For a few minutes": long enough for each side to find blocks, short enough for a lesson (and
# inside the 15 minutes a Discord interaction's follow-up token lives, which posts the summary).
MIN_SPLIT_MINUTES = 1
MAX_SPLIT_MINUTES = 10
# How many of a side's newest blocks its status shows.
STATUS_BLOCKS = 5

# The bot's own miners lent to each side (so that a small class, or a side nobody mines for, still
# finds blocks): custodial wallets whose owner names cannot be Discord ids (digits only).
LENT_OWNERS = {SIDE_A: "split:a", SIDE_B: "split:b"}

# Is this owner (a member's Discord id) in group A (has the split's role)? Asked once per member.
InGroupA = Callable[[str], Awaitable[bool]]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SideView:
    """One side as its own group sees it (``/split status``)."""

    side: str
    group: str
    height: int
    work: int
    blocks: int
    latest: tuple[SideBlock, ...]
    side_payments: int
    miners: int
    # Hybrid chain: the side's voting stake and its branch's checkpoints (None on proof of work).
    finality: SideFinality | None = None
    # Proof of stake: the side's blocks are proposed slot by slot (no work, no mining).
    proof_of_stake: bool = False


@dataclass(frozen=True, slots=True)
class SideSummary:
    side: str
    group: str
    blocks: int
    work: int
    tip_height: int
    miners: int
    finality: SideFinality | None = None


@dataclass(frozen=True, slots=True)
class SplitSummary:
    """What the heal did: each side's blocks and work, the branch kept, and the reorg's consequences.

    ``winner`` is the side the main chain follows after the heal (None when neither side found a
    block); ``orphaned`` counts the split's blocks left off the main chain plus any main-chain
    blocks a reorg disconnected; ``returned``/``reversed`` are the reorg's payment events.
    """

    reason: str
    sides: tuple[SideSummary, SideSummary]
    published_first: str
    winner: str | None
    orphaned: int
    reorg_depth: int
    returned: tuple[PaymentReturnedToMempool, ...]
    reversed: tuple[PaymentReversed, ...]
    confirmed_on_both: int
    double_spends: int
    unpublished: int
    stale_in_side: int
    # Hybrid chain: the finalized epoch before the split and after the heal, and the heavier branch the
    # node refused at the heal because it conflicts with a finalized checkpoint (None: none was).
    finalized_before: int | None = None
    finalized_after: int | None = None
    refused_by_finality: ReorgRefusedByFinality | None = None
    # Proof of stake: the branch the votes chose (LMD-GHOST), not work.
    proof_of_stake: bool = False
    # The main tip's height when the split began: both branches build on that block (the picture's start).
    base_height: int | None = None


class NetworkSplit:
    """A running split: two branches, the members' groups, the deadline. See the module's docstring."""

    def __init__(
        self,
        node: Node,
        games: GameSessions,
        chain_id: int,
        *,
        groups: tuple[str, str],
        in_group_a: InGroupA,
        duration_s: float,
        on_healed: Callable[[SplitSummary], Awaitable[None]] | None = None,
        sleep: Sleep = asyncio.sleep,
        lent_weight: int = 0,
        voting: SplitVoting | None = None,
    ) -> None:
        self._node = node
        self._games = games
        self.chain_id = chain_id
        self.groups = {SIDE_A: groups[0], SIDE_B: groups[1]}
        self._in_group_a = in_group_a
        self.duration_s = duration_s
        self._on_healed = on_healed
        self._sleep = sleep
        # The hashing core's weight of each side's lent miner (0: none), against members' sessions (1).
        self.lent_weight = lent_weight
        self._lenders: list[asyncio.Task[None]] = []
        # Held by every check-then-act on the branches: routing, keeping a block, paying, healing.
        self._lock = asyncio.Lock()
        runtime = node.chain(chain_id)
        base = runtime.state
        self.branches = {side: SplitBranch(side, base.tip_hash, base.height) for side in SIDES}
        self.started_at = node.now()
        self.ends_at = self.started_at + int(duration_s)
        self._sides: dict[str, str] = {}  # owner -> side, fixed at the member's first question
        self._miners: dict[str, set[str]] = {side: set() for side in SIDES}
        self._bodies: dict[bytes, Block] = {}
        self._found = 0
        self._stale_in_side = 0
        self.healed: str | None = None
        # Set once the heal is over and its summary handed on: what a waiter (a test, shutdown) awaits.
        self.done = asyncio.Event()
        # Set whenever a side keeps a block (cleared by whoever waits on it): tests wait on it, not on time.
        self.block_kept = asyncio.Event()
        self._timer: asyncio.Task[None] | None = None
        # Hybrid chain: each side's validators' votes, waiting for that side's next block, and what
        # its branch's state says of finality (at the split: the main chain's).
        self._voting = voting
        self._votes: dict[str, list[SignedAttestation]] = {side: [] for side in SIDES}
        self._finality: dict[str, SideFinality] = {}
        beacon = base.beacon
        self.finalized_before = None if voting is None or beacon is None else beacon.finality.finalized_checkpoint.epoch

    @classmethod
    async def start(
        cls,
        node: Node,
        games: GameSessions,
        chain_id: int,
        *,
        groups: tuple[str, str],
        in_group_a: InGroupA,
        minutes: int,
        on_healed: Callable[[SplitSummary], Awaitable[None]] | None = None,
        sleep: Sleep = asyncio.sleep,
        lent_weight: int = 0,
        voting: SplitVoting | None = None,
    ) -> NetworkSplit:
        """Split the chain's miners now: ``GameAlreadyRunningError`` if a game runs on the chain,
        ``SplitDurationError`` for a length outside the game's range; nothing starts then."""
        if isinstance(minutes, bool) or not MIN_SPLIT_MINUTES <= minutes <= MAX_SPLIT_MINUTES:
            raise SplitDurationError(
                f"a split lasts {MIN_SPLIT_MINUTES} to {MAX_SPLIT_MINUTES} minutes, not {minutes!r}"
            )
        split = cls(
            node, games, chain_id, groups=groups, in_group_a=in_group_a, duration_s=minutes * 60,
            on_healed=on_healed, sleep=sleep, lent_weight=lent_weight, voting=voting,
        )
        if voting is not None:
            state = node.chain(chain_id).state
            await voting.resolve(split.side_of, state)
            split._finality = {side: voting.finality(side, state) for side in SIDES}
        await games.start(chain_id, KIND, split)
        if voting is not None and voting.slots is not None:
            voting.slots.splits[chain_id] = split
        loop = asyncio.get_running_loop()
        split._timer = loop.create_task(split._deadline(), name=f"split-{chain_id}")
        if lent_weight > 0 and not split.proof_of_stake:  # proof of stake: nothing to mine, blocks are proposed
            for side, owner in LENT_OWNERS.items():
                split._sides[owner] = side
                split._lenders.append(loop.create_task(split._lend(owner), name=f"split-{chain_id}-{owner}"))
        return split

    # --- the members' sides -------------------------------------------------------------

    async def side_of(self, owner: str) -> str:
        """The member's side: A with the split's role, B without. Fixed at the first answer, so a
        role changed during the split does not move a member between branches."""
        side = self._sides.get(owner)
        if side is None:
            side = SIDE_A if await self._in_group_a(owner) else SIDE_B
            side = self._sides.setdefault(owner, side)
        return side

    @property
    def hybrid(self) -> bool:
        """Whether the sides' validators vote (a hybrid chain: ``chain.adapters.split_votes``)."""
        return self._voting is not None

    @property
    def proof_of_stake(self) -> bool:
        """Whether the sides' blocks are proposed slot by slot (a proof-of-stake chain), not mined."""
        return self._voting is not None and self._voting.proof_of_stake

    @property
    def base_height(self) -> int:
        """The height both branches start from: the main tip when the split began."""
        return self.branches[SIDE_A].base_height

    def label(self, side: str) -> str:
        return side_label(side, self.groups[side])

    def label_of(self, owner: str) -> str | None:
        """The member's side's label, once their side is known (they mined or asked)."""
        side = self._sides.get(owner)
        return None if side is None else self.label(side)

    def _base_account(self, address: bytes) -> Account:
        return self._node.account(self.chain_id, address)

    def _mempool(self) -> list[Transfer]:
        return [entry.tx for entry in self._node.chain(self.chain_id).mempool.entries()]

    # --- MinerRouter ---------------------------------------------------------------------

    async def route_miner(self, owner: str) -> MinerRoute | None:
        """The member mines on their side's tip, with the payments valid there, and the game keeps
        the block; None (the main tip, as usual) once the split has healed."""
        side = await self.side_of(owner)
        async with self._lock:
            if self.healed is not None:
                return None
            branch = self.branches[side]
            limit = self._node.chain(self.chain_id).state.params.max_block_transfers
            transfers = select_side_transfers(branch, self._base_account, self._mempool(), limit)
            self._miners[side].add(owner)
            # The side's blocks are withheld (not in the node's tree): the route names the split's base,
            # which is, and hands the side's blocks over as the private branch to build on.
            private = tuple(self._bodies[block.block_hash] for block in branch.blocks)
            operations = None if self._voting is None else Operations(attestations=tuple(self._votes[side]))
            return MinerRoute(parent_hash=branch.base_hash, label=self.label(side), publish=False,
                              transfers=tuple(transfers), private=private, operations=operations)

    async def on_mined(self, owner: str, route: MinerRoute, result: MiningResult) -> None:
        """Keep a found block on its side (or, after the heal, publish it where it lands)."""
        block = result.block
        if block is None:
            return
        async with self._lock:
            if self.healed is not None:
                await self._publish_late(block)
                return
            side = await self.side_of(owner)
            branch = self.branches[side]
            if block.header.prev_hash != branch.tip_hash:
                # Another member of the group found this height first: a stale block within the side.
                self._stale_in_side += 1
                log.info("chain %d: a block of side %s came after its tip moved; not kept", self.chain_id, side)
                return
            self._found += 1
            params = self._node.chain(self.chain_id).state.params
            branch.append(SideBlock(
                block_hash=block.hash(), parent_hash=block.header.prev_hash, height=block.height,
                work=compute_header_work(block.header.bits, params.pow_limit), miner=block.coinbase.miner,
                reward=block.coinbase.amount, transfers=block.transfers, found_order=self._found,
            ))
            self._bodies[block.hash()] = block
            if self._voting is not None:
                await self._vote_on(side, branch, block)
            self.block_kept.set()
            log.info("chain %d: side %s of the split at block %d", self.chain_id, side, branch.height)

    # --- proof of stake: the slot driver's slots ------------------------------------------

    async def on_slot(self, slot: int) -> int:
        """Proof of stake (``SlotSplit``): each side's proposer for ``slot``, drawn on its side's branch,
        proposes there when its owner is on that side; the block is kept by the side and its voters
        vote on it. Called by the slot driver under the chain's slot lock. Returns the blocks kept."""
        voting = self._voting
        kept = 0
        async with self._lock:
            if voting is None or self.healed is not None:
                return 0
            limit = self._node.chain(self.chain_id).state.params.max_block_transfers
            for side in SIDES:
                branch = self.branches[side]
                private = tuple(self._bodies[b.block_hash] for b in branch.blocks)
                transfers = tuple(select_side_transfers(branch, self._base_account, self._mempool(), limit))
                try:
                    state = await self._node.branch_state(self.chain_id, branch.base_hash, private)
                    block = await voting.propose(side, state, slot, transfers, tuple(self._votes[side]), self.side_of)
                except ChainError as refused:  # e.g. the branch outgrew what the node replays
                    log.warning("chain %d: side %s has no block for slot %d: %s", self.chain_id, side, slot, refused)
                    continue
                if block is None:
                    continue
                self._found += 1
                owner = await self._owner_of_miner(block)
                if owner is not None:
                    self._miners[side].add(owner)
                branch.append(SideBlock(
                    block_hash=block.hash(), parent_hash=block.header.prev_hash, height=block.height, work=0,
                    miner=block.coinbase.miner, reward=block.coinbase.amount, transfers=block.transfers,
                    found_order=self._found,
                ))
                self._bodies[block.hash()] = block
                await self._vote_on(side, branch, block, slot)
                kept += 1
            if kept:
                self.block_kept.set()
        return kept

    async def _owner_of_miner(self, block: Block) -> str | None:
        """The proposer's owner (its block's seal names the validator), counted as the side's miner."""
        seal = block.seal
        beacon = self._node.chain(self.chain_id).state.beacon
        if seal is None or beacon is None or seal.proposer_index >= len(beacon.registry.validators):
            return None
        pubkey = beacon.registry.validators[seal.proposer_index].pubkey
        for stored in await self._node.store.validator_keys.all(self.chain_id):
            if stored.pubkey == pubkey:
                return stored.owner
        return None

    async def _vote_on(self, side: str, branch: SplitBranch, block: Block, slot: int | None = None) -> None:
        """Hybrid chain: the side's validators vote for its new block, on its branch's state; the votes
        wait for the side's next block (called under the lock)."""
        voting = self._voting
        if voting is None:
            return
        try:
            state = await self._node.branch_state(
                self.chain_id, branch.base_hash, tuple(self._bodies[b.block_hash] for b in branch.blocks)
            )
        except ChainError as refused:  # e.g. the branch outgrew what the node replays: no more votes
            log.warning("chain %d: side %s's branch state is unavailable: %s", self.chain_id, side, refused)
            return
        included = () if block.operations is None else block.operations.attestations
        epoch = 0 if state.beacon is None else state.beacon.epoch
        self._votes[side] = pending_after(self._votes[side], included, epoch) + await voting.vote(side, state, slot)
        self._finality[side] = voting.finality(side, state)

    async def _publish_late(self, block: Block) -> None:
        try:
            acceptance = await self._node.accept_block(self.chain_id, block)
        except ChainError as refused:
            log.warning("chain %d: a block found as the split healed was refused: %s", self.chain_id, refused)
            return
        log.info("chain %d: a block found as the split healed joined the tree at %d (main chain: %s)",
                 self.chain_id, acceptance.entry.height, acceptance.on_main)

    async def _lend(self, owner: str) -> None:
        """The bot's miner on one side: mines on that side's tip, block after block, until the heal."""
        try:
            while self.healed is None:
                route = await self.route_miner(owner)
                if route is None:
                    return
                result = await self._node.mine(
                    self.chain_id, owner, parent_hash=route.parent_hash, transfers=route.transfers,
                    private=route.private, operations=route.operations, publish=False, weight=self.lent_weight,
                    deadline_s=self.duration_s,
                    on_start=self._on_lent_start,
                )
                await self.on_mined(owner, route, result)
        except ChainError as refused:  # e.g. the chain was reset under the split: this side's bot stops
            log.warning("chain %d: the bot's miner %s stopped: %s", self.chain_id, owner, refused)

    async def lenders_stopped(self) -> None:
        """Wait for the bot's lent miners to end (they end at the heal)."""
        if self._lenders:
            await asyncio.gather(*self._lenders)

    def _on_lent_start(self, session: MiningSession) -> None:
        # A heal that came while the node set this session up found nothing to stop: stop it here.
        if self.healed is not None:
            session.cancel()

    def _stop_lenders(self) -> None:
        """End the lent miners' sessions now (called with ``healed`` set, so their loops end)."""
        core = self._node.hashing_core
        for owner in LENT_OWNERS.values() if self._lenders else ():
            session = None if core is None else core.session((self.chain_id, owner))
            if session is not None:
                session.cancel()

    # --- payments only one side hears of -------------------------------------------------

    async def pay(self, owner: str, recipient: bytes, amount: int, fee: int = 0) -> tuple[str, Transfer]:
        """A payment from ``owner`` that only their side hears of: signed with their next nonce on
        that side, carried by that side's next block. ``SplitPaymentError`` if their balance there
        does not cover it; ``NoGameRunningError`` once the split has healed."""
        side = await self.side_of(owner)
        key = await self._node.wallet(self.chain_id, owner)
        async with self._lock:
            if self.healed is not None:
                raise NoGameRunningError(self.chain_id, KIND)
            branch = self.branches[side]
            spendable = compute_side_spendable(branch, self._base_account, key.public_key)
            if amount + fee > spendable:
                raise SplitPaymentError(
                    f"on side {side} of the split you have {spendable} points to spend, fewer than the "
                    f"{amount + fee} this payment needs",
                    side=side, balance=spendable, needed=amount + fee,
                )
            nonce = compute_side_next_nonce(branch, self._base_account, key.public_key)
            tx = make_transfer(key, recipient, amount, fee, nonce, self.chain_id)
            branch.pool.append(tx)
            return side, tx

    # --- reading --------------------------------------------------------------------------

    def view(self, side: str) -> SideView:
        branch = self.branches[side]
        return SideView(
            side=side, group=self.groups[side], height=branch.height, work=branch.work,
            blocks=len(branch.blocks), latest=tuple(branch.blocks[-STATUS_BLOCKS:]),
            side_payments=len(branch.pool), miners=len(self._miners[side]), finality=self._finality.get(side),
            proof_of_stake=self.proof_of_stake,
        )

    # --- healing --------------------------------------------------------------------------

    async def _deadline(self) -> None:
        await self._sleep(self.duration_s)
        try:
            await self.heal("deadline")
        except NoGameRunningError:
            return  # healed by an admin first
        except Exception:  # nobody awaits this task: what broke the heal must reach the log
            log.exception("chain %d: the split could not heal at its deadline", self.chain_id)

    async def heal(self, reason: str) -> SplitSummary:
        """Publish both branches and end the game, exactly once: a second call (an admin's heal
        raced by the deadline, two admins) gets ``NoGameRunningError``. Calls ``on_healed`` with the
        summary (outside the lock; its failure is logged, the chain is healed either way). On proof of
        stake the chain's slot lock is taken first, as the slot driver takes it before the split's."""
        voting = self._voting
        if voting is not None and voting.slots is not None:
            async with voting.chains.lock(self.chain_id):
                summary = await self._heal_locked(reason)
        else:
            summary = await self._heal_locked(reason)
        log.info("chain %d: the split healed (%s): side %s kept, %d block(s) orphaned", self.chain_id, reason,
                 summary.winner, summary.orphaned)
        try:
            if self._on_healed is not None:
                await self._on_healed(summary)
        except Exception:  # the summary is a message: the heal itself is done
            log.exception("chain %d: the split's summary could not be delivered", self.chain_id)
        finally:
            self.done.set()
        return summary

    async def _heal_locked(self, reason: str) -> SplitSummary:
        async with self._lock:
            if self.healed is not None:
                raise NoGameRunningError(self.chain_id, KIND)
            self.healed = reason
            timer = self._timer
            if timer is not None and timer is not asyncio.current_task():
                timer.cancel()
            self._stop_lenders()
            voting = self._voting
            if voting is not None and voting.slots is not None and voting.slots.splits.get(self.chain_id) is self:
                del voting.slots.splits[self.chain_id]
            try:
                summary = await self._publish(reason)
            finally:
                try:
                    await self._games.end(self.chain_id, KIND)
                except NoGameRunningError:
                    log.warning("chain %d: the split's game session had already ended", self.chain_id)
            return summary

    async def _publish(self, reason: str) -> SplitSummary:
        a, b = self.branches[SIDE_A], self.branches[SIDE_B]
        first, second = compute_publish_order(a, b)
        main_before = self._node.chain(self.chain_id).state.tip_hash
        events: list[ChainEvent] = []
        unpublished = 0
        voting = self._voting
        heads = None if voting is None or not voting.proof_of_stake else voting.heads
        rt = None if heads is None or voting is None else await voting.chains.runtime(self.chain_id)
        if heads is not None and rt is not None:
            heads.store(self.chain_id, rt)  # anchored at the split's base (or before), never at a side's tip
        for branch in (first, second):
            for index, side_block in enumerate(branch.blocks):
                body = self._bodies[side_block.block_hash]
                try:
                    acceptance = await self._node.accept_block(self.chain_id, body)
                except ChainError as refused:
                    # The rest of this branch builds on the refused block: none of it can join.
                    unpublished += len(branch.blocks) - index
                    log.warning("chain %d: side %s's block %d was refused at the heal: %s", self.chain_id,
                                branch.side, side_block.height, refused)
                    break
                events.extend(acceptance.events)
                if heads is not None and rt is not None and acceptance.effects.beacon is not None:
                    heads.on_block(self.chain_id, rt, body, acceptance.effects.beacon)
        switched = 0
        if heads is not None and rt is not None:
            switched = await self._choose_head(heads, rt)
        return self._summarize(reason, first.side, events, unpublished, main_before, switched)

    async def _choose_head(self, heads: HeadChoice, rt: BeaconRuntime) -> int:
        """Proof of stake: the votes the published blocks carry weigh in the fork choice, which then
        moves the main chain to the branch with more attesting stake (or keeps it; a branch finality
        forbids is announced, never switched to). The caller holds the chain's slot lock. Returns the
        depth of the switch (0: the head stayed)."""
        beacon = self._node.chain(self.chain_id).state.beacon
        if beacon is None:
            return 0
        slot = rt.last_slot
        for branch in self.branches.values():
            for side_block in branch.blocks:
                body = self._bodies[side_block.block_hash]
                for vote in () if body.operations is None else body.operations.attestations:
                    index = beacon.registry.index_of(vote.validator)
                    if index is not None:
                        heads.on_vote(self.chain_id, rt, index, vote.data)
                        slot = max(slot, vote.data.slot + 1)
        return len(await heads.decide(self.chain_id, rt, slot))

    def _orphaned_outsiders(self, main_before: bytes) -> int:
        """Blocks found outside the game during the split (sessions started before it) that were on
        the main chain before the heal and are not after it."""
        tree = self._node.tree(self.chain_id)
        base_height = self.branches[SIDE_A].base_height
        count = 0
        entry = tree.get(main_before)
        while entry.height > base_height:
            main = self._main_at(entry.height)
            if main is None or main.block_hash != entry.block_hash:
                count += 1
            entry = tree.get(entry.parent_hash)
        return count

    def _main_at(self, height: int) -> BlockEntry | None:
        """The main chain's block at ``height``: the node's tip's ancestor, not the tree's most-work
        branch (a hybrid chain's node keeps a finalized branch against a heavier one)."""
        state = self._node.chain(self.chain_id).state
        if height > state.height:
            return None
        return get_ancestor_at_height(self._node.tree(self.chain_id), state.tip_hash, height)

    def _summarize(
        self, reason: str, first: str, events: list[ChainEvent], unpublished: int, main_before: bytes,
        switched: int = 0,
    ) -> SplitSummary:
        tree = self._node.tree(self.chain_id)
        on_main: dict[str, int] = {}
        orphaned = 0
        for side, branch in self.branches.items():
            kept = 0
            for side_block in branch.blocks:
                entry = tree.get(side_block.block_hash) if side_block.block_hash in tree else None
                main = None if entry is None else self._main_at(entry.height)
                if main is not None and main.block_hash == side_block.block_hash:
                    kept += 1
                else:
                    orphaned += 1
            on_main[side] = kept
        reorgs = [e for e in events if isinstance(e, ChainReorganized)]
        orphaned += self._orphaned_outsiders(main_before)
        winner = max(on_main, key=lambda side: on_main[side]) if any(on_main.values()) else None
        expected = predict_winner(self.branches[SIDE_A], self.branches[SIDE_B])
        refused = next((e for e in events if isinstance(e, ReorgRefusedByFinality)), None)
        if unpublished == 0 and refused is None and winner != expected and not self.proof_of_stake:
            log.warning("chain %d: the split's kept side %s is not the one its rule predicts (%s)",
                        self.chain_id, winner, expected)
        a, b = self.branches[SIDE_A], self.branches[SIDE_B]
        return SplitSummary(
            reason=reason,
            sides=(self._side_summary(a), self._side_summary(b)),
            published_first=first,
            winner=winner,
            orphaned=orphaned,
            reorg_depth=max(max((e.depth for e in reorgs), default=0), switched),
            returned=tuple(e for e in events if isinstance(e, PaymentReturnedToMempool)),
            reversed=tuple(e for e in events if isinstance(e, PaymentReversed)),
            confirmed_on_both=confirmed_on_both(a, b),
            double_spends=count_double_spends(a, b),
            unpublished=unpublished,
            stale_in_side=self._stale_in_side,
            finalized_before=self.finalized_before,
            finalized_after=self._finalized_epoch(),
            refused_by_finality=refused,
            proof_of_stake=self.proof_of_stake,
            base_height=self.base_height,
        )

    def _finalized_epoch(self) -> int | None:
        """The main chain's finalized epoch now (hybrid splits only)."""
        beacon = self._node.chain(self.chain_id).state.beacon
        return None if self._voting is None or beacon is None else beacon.finality.finalized_checkpoint.epoch

    def _side_summary(self, branch: SplitBranch) -> SideSummary:
        return SideSummary(
            side=branch.side, group=self.groups[branch.side], blocks=len(branch.blocks), work=branch.work,
            tip_height=branch.height, miners=len(self._miners[branch.side]),
            finality=self._finality.get(branch.side),
        )

    async def close(self) -> None:
        """Bot shutdown: heal now (publishing both sides' blocks) unless it already healed."""
        try:
            await self.heal("shutdown")
        except NoGameRunningError:
            return
