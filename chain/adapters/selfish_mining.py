"""The selfish-mining game on a server's real chain (issue 11, item 5; Eyal and Sirer 2014).

The bot runs a selfish pool with a share α of the chain's hash power against the honest side (the
members' normal ``/mine`` sessions and one honest session of the bot's own), and plays the paper's
Algorithm 1 live, with the very transition the simulation uses (``chain.games.selfish_mining.next_state``):

- the pool mines on its private branch with the hashing core (``Node.mine(parent_hash=pool tip,
  publish=False)``) and keeps what it finds (or, in a race, publishes it and wins);
- an honest block on the main chain is an event for the state machine: the pool publishes as
  Algorithm 1 says (lead 1: its block, to race; lead 2: everything, and wins; more: its oldest
  withheld block). Publishing is ``Node.accept_block``: a tie keeps the block seen first (the block
  tree does so), a longer branch reorganizes the chain (the node's reorg events are announced as any);
- in a race (state 0'), the bot's honest session mines on the pool's block with probability γ (one
  draw per race, from the randomness handed in); members always mine on the block they saw first
  (the main tip), so the honest side's effective γ is γ times the bot's share of the honest power.

**The tree is the truth.** Each honest block is stepped through ``next_state`` one at a time, then
the state is derived again from the block tree. When both agree, the game follows Algorithm 1 to the
letter (the runner tests check each step). When two honest blocks arrive before the pool could answer
the first (the network outran the pool, as on a real network), the tree decides, the pool takes the
state the tree shows (publishing what Algorithm 1 would have published by then) and the step is counted
as ``late``. Branches compare work, not length: a retarget inside a fork can make a branch of equal
length heavier, and then the tree's choice stands too.

**Hash power.** The hashing core shares its workers by session weight. Members' sessions weigh 1 each,
the bot's honest session ``HONEST_WEIGHT``; the pool's weight is set, each time its session starts, to
α/(1-α) times the honest sessions' total weight on this chain, and its session restarts when members
join or leave. The share set is therefore α of the chain's live sessions; the share *measured* is the
hashes each side actually computed (``HashingCore.hashes_by_key``), which the summary shows beside it
(other chains' sessions and chunk sizes make the two differ a little).

**Summary.** Counted from the block tree, not from the state machine: each side's blocks on the main
chain since the start and off it (orphaned), the pool's blocks never published, against the paper's
closed-form revenue R(α, γ) and profitability threshold (1-γ)/(3-2γ). At the end the pool publishes
every block it still withholds: with a lead they all win; a withheld block is never kept back.

A game lives in memory (a restart ends it; its blocks stay on the chain). It starts and ends through
``GameSessions`` (one game per chain) in ``chain.playground.Playground``; every step of the state
machine runs under the game's lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import islice

from chain.adapters.hashcore import MiningSession
from chain.adapters.node import Node
from chain.consensus.block import Block
from chain.consensus.tree import BlockEntry, BlockTree
from chain.errors import ChainError, DuplicateBlockError
from chain.games.chance import RandomSource, happens
from chain.games.selfish_mining import (
    SETTLED,
    Finder,
    PoolState,
    Transition,
    check_pool_share,
    check_tie_break,
    next_state,
    profitability_threshold,
    relative_revenue,
)

log = logging.getLogger(__name__)

KIND = "selfish_mining"
# Owners of the bot's two wallets in the game: a member's owner is a Discord id (digits), so no member
# can own these.
POOL_OWNER = "selfish:pool"
HONEST_OWNER = "selfish:honest"
# The bot's honest session weighs as much as one member's: members' sessions keep a real part of the
# honest side, and with no member mining the honest side is still there.
HONEST_WEIGHT = 1
# How often the game looks at the main tip for blocks that came from elsewhere (members' sessions),
# in seconds: how late the pool answers at most, its "network latency".
DEFAULT_POLL_S = 0.05
# After a failed step, a loop waits this long before trying again, in seconds (no busy loop on a bug).
ERROR_PAUSE_S = 1.0
# The pool's weight is set again when it differs from the right one by more than this share.
WEIGHT_TOLERANCE = Fraction(1, 20)


@dataclass(frozen=True, slots=True)
class SideTally:
    """One side's blocks since the game started, as the block tree has them, and its hashes."""

    main: int
    orphaned: int
    hashes: int


@dataclass(frozen=True, slots=True)
class SelfishTally:
    """Both sides, counted from the block tree (and the hashing core for hashes)."""

    pool: SideTally
    honest: SideTally
    withheld: int
    """Pool blocks found but not (yet) published: in no one's tree."""

    @property
    def main_chain(self) -> int:
        return self.pool.main + self.honest.main

    @property
    def pool_share(self) -> Fraction | None:
        """The pool's share of the main chain's blocks since the start (None before any)."""
        return Fraction(self.pool.main, self.main_chain) if self.main_chain else None

    @property
    def measured_alpha(self) -> Fraction | None:
        """The pool's share of the hashes both sides computed (None before any)."""
        total = self.pool.hashes + self.honest.hashes
        return Fraction(self.pool.hashes, total) if total else None


@dataclass(frozen=True, slots=True)
class SelfishSnapshot:
    """The game as it stands (``/selfish status``), or as it ended (``summary``; ``reason`` set)."""

    chain_id: int
    alpha: Fraction
    gamma: Fraction
    state: PoolState
    tally: SelfishTally
    started_at: float
    ends_at: float
    at: float
    """When this snapshot was taken (the node's clock): the end, for a summary."""
    start_height: int
    tip_height: int
    steps: int
    races: int
    races_on_pool: int
    """Races in which the bot's honest session mined on the pool's block (the γ draw)."""
    late: int
    """Steps where the network outran the pool and the tree's state was taken (see the module doc)."""
    stale_finds: int
    """Pool blocks found on a branch the pool had already left (not in the tree, not counted)."""
    reason: str | None = None
    chain_replaced: bool = False
    """The chain was started over under the game (reset, mode switch): nothing could be counted."""

    @property
    def revenue(self) -> Fraction:
        """The paper's closed-form relative revenue R(α, γ)."""
        return relative_revenue(self.alpha, self.gamma)

    @property
    def threshold(self) -> Fraction:
        """The paper's profitability threshold (1-γ)/(3-2γ)."""
        return profitability_threshold(self.gamma)


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One step the game took: the transition and the block it was about (for tests and logs)."""

    transition: Transition
    block_hash: bytes
    late: bool = False


@dataclass(slots=True)
class _Sessions:
    """The hashing core's session of each of the bot's two loops (None between sessions)."""

    pool: MiningSession | None = None
    honest: MiningSession | None = None


@dataclass
class SelfishMiningGame:
    """One selfish-mining game on one chain: the pool's state machine, its branch and its loops.

    ``begin`` records the start; ``run`` starts the mining loops and the deadline; ``pool_found`` and
    ``sync`` are the state machine's two inputs (the loops call them; tests call them directly with
    blocks they build); ``finish`` stops everything, publishes what is withheld and returns the summary.
    """

    node: Node
    chain_id: int
    alpha: Fraction
    gamma: Fraction
    rng: RandomSource
    duration_s: float
    poll_s: float = DEFAULT_POLL_S
    # --- filled by ``begin`` and the game ---
    state: PoolState = field(default=SETTLED, init=False)
    steps: list[StepRecord] = field(default_factory=list, init=False)
    _base: bytes = field(default=b"", init=False)
    _branch: list[Block] = field(default_factory=list, init=False)
    _found: set[bytes] = field(default_factory=set, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, init=False)
    _sessions: _Sessions = field(default_factory=_Sessions, init=False)
    _race_on_pool: bool = field(default=False, init=False)
    _races: int = field(default=0, init=False)
    _races_on_pool: int = field(default=0, init=False)
    _late: int = field(default=0, init=False)
    _stale_finds: int = field(default=0, init=False)
    _start_height: int = field(default=0, init=False)
    _start_sequence: int = field(default=0, init=False)
    _started_at: float = field(default=0.0, init=False)
    _hashes_at_start: dict[Hashable, int] = field(default_factory=dict, init=False)
    _summary: SelfishSnapshot | None = field(default=None, init=False)
    _on_end: Callable[[str], Awaitable[object]] | None = field(default=None, init=False)
    _genesis: bytes = field(default=b"", init=False)

    def __post_init__(self) -> None:
        self.alpha = check_pool_share(self.alpha)
        self.gamma = check_tie_break(self.gamma)

    # --- start ----------------------------------------------------------------------------

    async def begin(self) -> None:
        """Record where the game starts: the main tip is the pool's first fork point."""
        await self.node.address(self.chain_id, POOL_OWNER)
        await self.node.address(self.chain_id, HONEST_OWNER)
        tree = self.node.tree(self.chain_id)
        self._genesis = tree.genesis.block_hash
        self._base = tree.best.block_hash
        self._start_height = tree.best.height
        self._start_sequence = len(tree)
        self._started_at = self.node.clock()
        core = self.node.hashing_core
        self._hashes_at_start = core.hashes_by_key() if core is not None else {}
        log.info("chain %d: selfish mining starts at height %d (α=%s, γ=%s)", self.chain_id,
                 self._start_height, self.alpha, self.gamma)

    def run(self, on_end: Callable[[str], Awaitable[object]]) -> None:
        """Start the pool's and the honest side's mining loops, the tip watcher and the deadline.

        ``on_end(reason)`` is how the game ends by itself: ``"deadline"``, or ``"reset"`` when the chain
        was started over under it (the façade ends the game through ``GameSessions`` there)."""
        self._on_end = on_end
        loop = asyncio.get_running_loop()
        name = f"selfish-{self.chain_id}"
        self._tasks = [
            loop.create_task(self._pool_loop(), name=f"{name}-pool"),
            loop.create_task(self._honest_loop(), name=f"{name}-honest"),
            loop.create_task(self._watch_loop(), name=f"{name}-watch"),
            loop.create_task(self._deadline(), name=f"{name}-deadline"),
        ]

    async def expire(self) -> None:
        """The deadline, now (the deadline task calls it; tests call it to race it with a stop)."""
        await self._end_by_itself("deadline")

    async def _end_by_itself(self, reason: str) -> None:
        if self._on_end is not None and not self._stopping.is_set():
            await self._on_end(reason)

    @property
    def chain_replaced(self) -> bool:
        """The chain was started over (reset, mode switch) under the game: its blocks are gone."""
        try:
            tree = self.node.tree(self.chain_id)
        except ChainError:
            return True  # no such chain any more
        return tree.genesis.block_hash != self._genesis or self._base not in tree

    @property
    def ends_at(self) -> float:
        return self._started_at + self.duration_s

    @property
    def finished(self) -> bool:
        return self._summary is not None

    # --- the state machine's inputs ---------------------------------------------------------

    async def pool_found(self, block: Block) -> None:
        """The pool solved ``block`` (unpublished): withhold it, or in a race publish it and win."""
        async with self._lock:
            if self._summary is not None or self.chain_replaced:
                return
            await self._sync_locked()
            if block.header.prev_hash != self.pool_tip:
                # Found on a branch the pool left meanwhile (it adopted the honest chain): worthless.
                self._stale_finds += 1
                log.debug("chain %d: pool block on an abandoned branch dropped", self.chain_id)
                return
            self._branch.append(block)
            self._found.add(block.hash())
            await self._apply(next_state(self.state, Finder.POOL), block.hash())
        self._realign()

    async def sync(self) -> None:
        """Step the state machine through every honest block the main chain got since the last look."""
        async with self._lock:
            if self._summary is not None or self.chain_replaced:
                return
            await self._sync_locked()
        self._realign()

    @property
    def pool_tip(self) -> bytes:
        """Where the pool mines: its newest block, or the fork point."""
        return self._branch[-1].hash() if self._branch else self._base

    # --- end --------------------------------------------------------------------------------

    async def finish(self, reason: str) -> SelfishSnapshot:
        """Stop the loops, publish every withheld block, and count the game from the tree. Once."""
        self._stopping.set()
        self._cancel_sessions()
        current = asyncio.current_task()
        others = [t for t in self._tasks if t is not current]
        await asyncio.gather(*others, return_exceptions=True)
        async with self._lock:
            if self._summary is not None:
                return self._summary
            if self.chain_replaced:
                self._summary = self.snapshot(reason)
                log.info("chain %d: selfish mining ended (%s) on a chain started over", self.chain_id, reason)
                return self._summary
            await self._sync_locked()
            if self.state.withheld:
                log.info("chain %d: the game ends, the pool publishes its %d withheld block(s)",
                         self.chain_id, self.state.withheld)
                await self._publish(self._branch, len(self._branch))
                await self._derive(self._base, list(self._branch))
            self._summary = self.snapshot(reason)
        log.info("chain %d: selfish mining ended (%s): %s", self.chain_id, reason, self._summary.tally)
        return self._summary

    # --- reading ------------------------------------------------------------------------------

    def snapshot(self, reason: str | None = None) -> SelfishSnapshot:
        """The game now; on a chain started over under it, with nothing counted (its blocks are gone)."""
        replaced = self.chain_replaced
        tree = None if replaced else self.node.tree(self.chain_id)
        return SelfishSnapshot(
            chain_id=self.chain_id,
            alpha=self.alpha,
            gamma=self.gamma,
            state=self.state,
            tally=self.tally(tree) if tree is not None else SelfishTally(SideTally(0, 0, 0), SideTally(0, 0, 0), 0),
            started_at=self._started_at,
            ends_at=self.ends_at,
            at=self.node.clock(),
            start_height=self._start_height,
            tip_height=tree.best.height if tree is not None else self._start_height,
            steps=len(self.steps),
            races=self._races,
            races_on_pool=self._races_on_pool,
            late=self._late,
            stale_finds=self._stale_finds,
            reason=reason,
            chain_replaced=replaced,
        )

    def tally(self, tree: BlockTree) -> SelfishTally:
        """Each side's blocks since the start, from the tree: on the main chain, and added but off it."""
        pool_main = honest_main = pool_orphaned = honest_orphaned = 0
        for height in range(self._start_height + 1, tree.best.height + 1):
            entry = tree.best_chain_at(height)
            if entry is None:
                break
            if entry.block_hash in self._found:
                pool_main += 1
            else:
                honest_main += 1
        for entry in islice(tree, self._start_sequence, None):
            if _on_main(tree, entry):
                continue
            if entry.block_hash in self._found:
                pool_orphaned += 1
            else:
                honest_orphaned += 1
        pool_hashes, honest_hashes = self._hashes()
        withheld = sum(1 for h in self._found if h not in tree)
        return SelfishTally(
            SideTally(pool_main, pool_orphaned, pool_hashes),
            SideTally(honest_main, honest_orphaned, honest_hashes),
            withheld,
        )

    def _hashes(self) -> tuple[int, int]:
        """Hashes the pool and the honest side (every other session on this chain) computed since the start."""
        core = self.node.hashing_core
        if core is None:
            return 0, 0
        pool = honest = 0
        for key, count in core.hashes_by_key().items():
            if not (isinstance(key, tuple) and len(key) == 2 and key[0] == self.chain_id):
                continue
            gained = count - self._hashes_at_start.get(key, 0)
            if key[1] == POOL_OWNER:
                pool += gained
            else:
                honest += gained
        return pool, honest

    # --- the state machine, under the lock ------------------------------------------------------

    async def _sync_locked(self) -> None:
        """Step through every new honest block, one at a time; then check the state against the tree."""
        while (event := self._next_event()) is not None:
            finder, block_hash = event
            await self._apply(next_state(self.state, finder), block_hash)
        await self._take_tree_state()

    def _next_event(self) -> tuple[Finder, bytes] | None:
        """The lowest honest block on the main chain the state machine has not stepped through yet."""
        tree = self.node.tree(self.chain_id)
        base = tree.get(self._base)
        if not _on_main(tree, base):
            return None  # a reorg below the fork point: ``_take_tree_state`` takes the tree's state
        state = self.state
        if state.race:
            pool_tip = tree.get(self.pool_tip)
            if _on_main(tree, pool_tip):
                child = tree.best_chain_at(pool_tip.height + 1)
                if child is not None and child.block_hash not in self._found:
                    return Finder.HONEST_ON_POOL, child.block_hash
                return None
        first = tree.best_chain_at(base.height + 1)
        if first is not None and first.block_hash in self._found:
            return None  # the pool's branch is the main one, unexpectedly: ``_take_tree_state`` settles it
        entry = tree.best_chain_at(base.height + state.public + 1)
        if entry is None or entry.block_hash in self._found:
            return None
        return Finder.HONEST, entry.block_hash

    async def _apply(self, step: Transition, block_hash: bytes) -> None:
        """Do what ``step`` says (publish), take its state, and check its claim against the tree."""
        old_base, branch = self._base, list(self._branch)
        log.debug("chain %d: selfish pool %s -> %s (%s, publishes %d)", self.chain_id, step.before.name,
                  step.after.name, step.finder.value, step.publish)
        if step.publish:
            await self._publish(branch, step.before.published + step.publish)
        tree = self.node.tree(self.chain_id)
        if step.after.settled:
            pool_won = step.finder is Finder.POOL or (step.finder is Finder.HONEST and step.pool_settled > 0)
            settled_on = branch[-1].hash() if pool_won else block_hash
            claim_holds = settled_on in tree and _on_main(tree, tree.get(settled_on))
            claimed: tuple[bytes, list[Block]] = (settled_on, [])
        else:
            about = tree.get(block_hash) if block_hash in tree else None
            claim_holds = _on_main(tree, tree.get(old_base)) and (
                step.finder is Finder.POOL or (about is not None and _on_main(tree, about))
            )
            claimed = (old_base, branch)
        if claim_holds:
            self.steps.append(StepRecord(step, block_hash))
            self._base, self._branch = claimed
            self._enter(step.after)
            return
        # The network outran the pool (a second honest block came before this answer): the tree decides.
        self.steps.append(StepRecord(step, block_hash, late=True))
        self._late += 1
        await self._derive(old_base, branch)
        log.info("chain %d: the network outran the pool: Algorithm 1 said state %s, the tree shows %s",
                 self.chain_id, step.after.name, self.state.name)

    async def _take_tree_state(self) -> None:
        """With no honest block left to step through, the state must be the tree's; if not (a reorg
        below the fork point, a branch heavier by work), the tree's is taken and counted as late."""
        before = (self._base, len(self._branch), self.state)
        await self._derive(self._base, list(self._branch))
        if (self._base, len(self._branch), self.state) != before:
            self._late += 1
            log.info("chain %d: the tree moved the selfish pool to state %s", self.chain_id, self.state.name)

    async def _derive(self, base_hash: bytes, branch: list[Block]) -> None:
        """The state the tree shows for the pool's ``branch`` on ``base_hash``, publishing what Algorithm 1
        would have published by then (all of a tied branch; as many blocks as the honest side has)."""
        while True:
            tree = self.node.tree(self.chain_id)
            best = tree.best
            base = tree.get(base_hash)
            if not _on_main(tree, base):
                self._settle(best.block_hash)  # a reorg below the fork point: adopt the main chain
                return
            for index in range(len(branch) - 1, -1, -1):
                block_hash = branch[index].hash()
                if block_hash in tree and _on_main(tree, tree.get(block_hash)):
                    base, branch = tree.get(block_hash), branch[index + 1 :]
                    break
            public, private = best.height - base.height, len(branch)
            if private == 0 or public > private:
                self._settle(best.block_hash)  # no fork, or the honest branch is ahead: adopt it
                return
            published = sum(1 for b in branch if b.hash() in tree)
            wanted = private if public == private else max(published, public)
            if published >= wanted:
                self._base, self._branch = base.block_hash, branch
                self._enter(PoolState(private, published, public))
                return
            await self._publish(branch, wanted)
            base_hash = base.block_hash

    def _settle(self, tip: bytes) -> None:
        self._base, self._branch = tip, []
        self._enter(SETTLED)

    def _enter(self, state: PoolState) -> None:
        """Take ``state``; entering a race draws where the bot's honest session mines (γ)."""
        if state.race and not self.state.race:
            self._races += 1
            self._race_on_pool = happens(self.rng, self.gamma)
            self._races_on_pool += self._race_on_pool
        self.state = state

    async def _publish(self, branch: list[Block], upto: int) -> None:
        """Publish ``branch[:upto]`` (those not in the tree yet), oldest first.  Their events reach the
        outbox with them; whoever reads the outbox is woken by its writer once they commit."""
        for block in branch[:upto]:
            if block.hash() in self.node.tree(self.chain_id):
                continue
            with contextlib.suppress(DuplicateBlockError):
                await self.node.accept_block(self.chain_id, block)

    # --- the loops ----------------------------------------------------------------------------

    def _pool_work(self) -> tuple[bytes, list[Block]]:
        """Where the pool's next block goes: the newest of its blocks the tree has (or the fork point),
        and the withheld ones above it, which the template is built on without publishing them."""
        tree = self.node.tree(self.chain_id)
        published = 0
        while published < len(self._branch) and self._branch[published].hash() in tree:
            published += 1
        parent = self._branch[published - 1].hash() if published else self._base
        return parent, self._branch[published:]

    def _honest_parent(self) -> bytes | None:
        """Where the bot's honest session mines: the pool's block in a race it drew γ for, else the main tip."""
        if self.state.race and self._race_on_pool:
            return self.pool_tip
        return None

    def _pool_weight(self) -> float:
        """α/(1-α) times the weight of the honest sessions on this chain (the bot's and the members')."""
        core = self.node.hashing_core
        honest = float(HONEST_WEIGHT)
        if core is not None:
            honest = sum(
                s.weight for s in core.stats().per_session
                if s.chain_id == self.chain_id and s.key != (self.chain_id, POOL_OWNER)
                and s.key != (self.chain_id, HONEST_OWNER)
            ) + HONEST_WEIGHT
        return float(self.alpha / (1 - self.alpha)) * honest

    def _realign(self) -> None:
        """End a session mining on the wrong block (or, the pool's, with a stale weight): its loop
        starts the next one where the state machine says."""
        if self._stopping.is_set():
            return
        pool = self._sessions.pool
        if pool is not None and not pool.done():
            weight = self._pool_weight()
            if pool.tip != self.pool_tip or abs(pool.weight - weight) > float(WEIGHT_TOLERANCE) * weight:
                pool.cancel()
        honest = self._sessions.honest
        if honest is not None and not honest.done():
            wanted = self._honest_parent() or self.node.tree(self.chain_id).best.block_hash
            if honest.tip != wanted:
                honest.cancel()

    def _on_start(self, side: str) -> Callable[[MiningSession], None]:
        def started(session: MiningSession) -> None:
            if self._stopping.is_set():
                session.cancel()
            setattr(self._sessions, side, session)

        return started

    def _cancel_sessions(self) -> None:
        for session in (self._sessions.pool, self._sessions.honest):
            if session is not None:
                session.cancel()

    async def _pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less if the game stops meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _pool_loop(self) -> None:
        while not self._stopping.is_set() and not self.chain_replaced:
            try:
                parent, private = self._pool_work()
                result = await self.node.mine(
                    self.chain_id, POOL_OWNER, parent_hash=parent, private=private, transfers=(), publish=False,
                    weight=self._pool_weight(), on_start=self._on_start("pool"),
                )
                self._sessions.pool = None
                if result.block is not None and not self._stopping.is_set():
                    await self.pool_found(result.block)
            except Exception:  # one failed block must not end the pool: log it and mine again
                log.exception("chain %d: the selfish pool's mining failed; trying again", self.chain_id)
                await self._pause(ERROR_PAUSE_S)

    async def _honest_loop(self) -> None:
        while not self._stopping.is_set() and not self.chain_replaced:
            try:
                await self.node.mine(
                    self.chain_id, HONEST_OWNER, parent_hash=self._honest_parent(), weight=HONEST_WEIGHT,
                    on_start=self._on_start("honest"),
                )
                self._sessions.honest = None
                if not self._stopping.is_set():
                    await self.sync()
            except Exception:  # likewise for the honest side
                log.exception("chain %d: the honest side's mining failed; trying again", self.chain_id)
                await self._pause(ERROR_PAUSE_S)

    async def _watch_loop(self) -> None:
        """Look at the main tip every ``poll_s``: members' blocks reach the state machine from here; a
        chain started over under the game ends it."""
        seen = b""
        while not self._stopping.is_set():
            await self._pause(self.poll_s)
            if self._stopping.is_set():
                return
            try:
                if self.chain_replaced:
                    log.info("chain %d was started over during a selfish mining game: the game ends", self.chain_id)
                    await self._end_by_itself("reset")
                    return
                tip = self.node.tree(self.chain_id).best.block_hash
                if tip != seen:
                    seen = tip
                    await self.sync()
                else:
                    self._realign()
            except Exception:
                log.exception("chain %d: the selfish game's tip watcher failed; looking again", self.chain_id)
                await self._pause(ERROR_PAUSE_S)

    async def _deadline(self) -> None:
        await self._pause(max(self.ends_at - self.node.clock(), 0.0))
        try:
            await self.expire()
        except Exception:
            log.exception("chain %d: ending the selfish game at its deadline failed", self.chain_id)


def _on_main(tree: BlockTree, entry: BlockEntry) -> bool:
    return tree.best_chain_at(entry.height) is entry


def game_random(randomness: Callable[[int], bytes]) -> RandomSource:
    """A random source for the γ draws, seeded from the node's randomness (tests pass a fixed one)."""
    return random.Random(int.from_bytes(randomness(16), "big"))
