"""The double-spend game, played on a server's real chain (issue 11, item 4).

``DoubleSpendGame.begin`` pays the merchant from the attacker's wallet (an ordinary pooled payment
that the public chain confirms) and, from the main tip at that moment (the fork point), signs the
same nonce back to the attackers' wallet: that conflicting transfer goes only into the first block of
a private branch. Then, until the round ends:

- the attacking team's ``/mine`` sessions mine on the private tip and keep what they find
  (``route_miner``/``on_mined``: the ``MinerRouter`` protocol of ``chain.adapters.game_sessions``);
- the bot lends its hashing core: one session for the attackers (on the private tip, unpublished)
  and one for the honest side (on the main tip, published), each weighted by its share in percent
  (a member's ``/mine`` session weighs 1, so the bot's whole core weighs as a hundred members);
- a watcher publishes the private branch once the merchant's payment has k confirmations and the
  private branch has more work than the public one since the fork, or at the deadline.

Publishing is ``Node.accept_block`` on each private block, oldest first: when one makes the private
branch the heaviest, the node reorganises in one transaction and the payment is dropped as a nonce
replay (``PaymentReversed``). At the deadline the private blocks are published too, heavier or not:
valid blocks cannot be unmade, a published lighter branch stays in the tree as orphans for the
explorer, and a heavier one wins as it would on Bitcoin (the summary then says the merchant had not
shipped yet).

Every step that reads then changes the game's state (keeping a block, publishing, ending) happens
under the game's lock, and the game ends through ``GameSessions.end`` exactly once, so a member's
publish, the automatic one and the deadline arriving together publish once: the others get
``DoubleSpendOverError``. The game lives in memory: a restart ends it without a summary (its
published blocks stay; unpublished private blocks are lost, as a private miner's would be).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from chain.adapters.game_sessions import GameSessions, MinerRoute
from chain.adapters.hashcore import MiningSession
from chain.adapters.node import MiningResult, Node
from chain.consensus.block import Block
from chain.consensus.tree import compute_fork_point, compute_header_work
from chain.errors import ChainError, DoubleSpendBalanceError, DoubleSpendOverError
from chain.events import ChainEvent, ChainReorganized, PaymentReversed
from chain.games.double_spend_plan import (
    BranchRace,
    DoubleSpendPlan,
    Verdict,
    is_ready_to_publish,
    judge,
    measured_share,
    paper_figure,
)
from chain.hashing import hash_to_display
from chain.ledger.transaction import Transfer, make_transfer

log = logging.getLogger(__name__)

GAME_KIND = "double_spend"
# The bot's lent miners: owner names no Discord id can be (ids are digits), custodied like the faucet.
# The attackers' one is also where the conflicting transfer sends the points back to.
ATTACKERS_OWNER = "pool:double-spend-attackers"
HONEST_OWNER = "pool:double-spend-honest"
# Blocks members mine on the public chain reach the game through no callback: the watcher looks at
# the two branches this often as well as after every block of the bot's own sessions.
CHECK_INTERVAL_S = 1.0
# A bot session that ends without a block (its tip moved, it was cancelled to restart on a new one)
# starts again after this pause, so a session that keeps ending at once cannot spin the event loop.
RESTART_AFTER_S = 0.02
# The private branch holds at most this many blocks: each new private block's template checks the whole
# branch again (it is in no tree until published), and a class's round needs a handful. On an easy chain
# the bot's share reaches it in seconds; then the attackers wait for the publish.
MAX_PRIVATE_BLOCKS = 100

IsAttacker = Callable[[str], Awaitable[bool]]


class Phase(enum.Enum):
    STARTING = "starting"
    RUNNING = "running"
    PUBLISHING = "publishing"
    ENDED = "ended"


class EndReason(enum.Enum):
    PUBLISHED = "published"  # an attacker or an admin asked
    AUTOMATIC = "automatic"  # k confirmations and a heavier private branch
    DEADLINE = "deadline"


@dataclass(frozen=True, slots=True)
class DoubleSpendStatus:
    """The round now: the plan, both branches since the fork, and when it ends at the latest."""

    plan: DoubleSpendPlan
    race: BranchRace
    fork_height: int
    payment_txid: bytes
    deadline_at: float
    p_before: Decimal | None


@dataclass(frozen=True, slots=True)
class DoubleSpendSummary:
    """How a round ended, with the paper's figure before (q as set) and after (q as measured)."""

    plan: DoubleSpendPlan
    reason: EndReason
    verdict: Verdict
    race: BranchRace  # both branches just before publishing
    fork_height: int
    payment_txid: bytes
    reorg_depth: int  # public blocks the reorg took off (0: no reorg)
    attacker_bot_blocks: int
    attacker_member_blocks: int
    honest_bot_blocks: int
    p_before: Decimal | None
    q_measured: Fraction | None
    p_after: Decimal | None
    events: tuple[ChainEvent, ...]
    # A block the node refused while publishing (the chain was reset meanwhile...), else None.
    publish_error: str | None = None

    @property
    def attacker_blocks(self) -> int:
        return self.race.private_blocks

    @property
    def honest_blocks(self) -> int:
        return self.race.public_blocks


OnEnd = Callable[[DoubleSpendSummary], Awaitable[None]]


class DoubleSpendGame:
    """One round on one chain; implements ``MinerRouter`` for the attacking team's ``/mine``."""

    def __init__(
        self,
        node: Node,
        sessions: GameSessions,
        chain_id: int,
        plan: DoubleSpendPlan,
        *,
        is_attacker: IsAttacker,
        on_end: OnEnd | None = None,
    ) -> None:
        self._node = node
        self._sessions = sessions
        self.chain_id = chain_id
        self.plan = plan
        self._is_attacker = is_attacker
        self._on_end = on_end
        self._lock = asyncio.Lock()
        self._phase = Phase.STARTING
        # Decided once per owner: a member's team does not change during a round.
        self._team: dict[str, bool] = {plan.payer: True, plan.merchant: False}
        self._private: list[Block] = []
        self._private_work = 0
        self._attacker_bot_blocks = 0
        self._honest_bot_blocks = 0
        self._first_transfers: tuple[Transfer, ...] = ()
        self.payment: Transfer | None = None
        self.conflict: Transfer | None = None
        self.fork_hash = b""
        self.fork_height = 0
        self.deadline_at = 0.0
        self._bot_sessions: dict[str, MiningSession] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        # Set when the round stops: what a bot session waiting on a full private branch waits for.
        self._full = asyncio.Event()
        self.summary: DoubleSpendSummary | None = None

    # --- starting ----------------------------------------------------------------------

    @classmethod
    async def start(
        cls,
        node: Node,
        sessions: GameSessions,
        chain_id: int,
        plan: DoubleSpendPlan,
        *,
        is_attacker: IsAttacker,
        on_end: OnEnd | None = None,
    ) -> DoubleSpendGame:
        """Register the round as the chain's game (or ``GameAlreadyRunningError``), pay the merchant,
        sign the conflicting transfer and set the bot's sessions going. A refused payment ends the
        registration again: nothing was started."""
        game = cls(node, sessions, chain_id, plan, is_attacker=is_attacker, on_end=on_end)
        await sessions.start(chain_id, GAME_KIND, game)
        try:
            await game._begin()
        except BaseException:
            await sessions.end(chain_id, GAME_KIND)
            raise
        return game

    async def _begin(self) -> None:
        node, chain_id, plan = self._node, self.chain_id, self.plan
        key = await node.wallet(chain_id, plan.payer)
        merchant = await node.address(chain_id, plan.merchant)
        stash = await node.address(chain_id, ATTACKERS_OWNER)
        runtime = node.chain(chain_id)
        balance = node.account(chain_id, key.public_key).balance
        pending = sum(e.tx.amount + e.tx.fee for e in runtime.mempool.pending_for(key.public_key))
        if plan.amount > balance - pending:
            raise DoubleSpendBalanceError(
                f"the attacker's wallet has {balance - pending} points to spend ({balance} confirmed, "
                f"{pending} already pending), not the {plan.amount} asked for",
                balance - pending, plan.amount,
            )
        admission = await node.pay(chain_id, plan.payer, merchant, plan.amount)
        # Read with no await since the payment was admitted under the chain's lock: no block has been
        # added since, so this tip is from before the payment, and the payer's pending transfers are
        # exactly those before it (the private branch must carry them too, for its nonce to be next).
        runtime = node.chain(chain_id)
        self.fork_hash = runtime.state.tip_hash
        self.fork_height = runtime.state.height
        payment = admission.entry.tx
        earlier = sorted(
            (e.tx for e in runtime.mempool.pending_for(key.public_key) if e.tx.nonce < payment.nonce),
            key=lambda tx: tx.nonce,
        )
        self.payment = payment
        self.conflict = make_transfer(key, stash, payment.amount, payment.fee, payment.nonce, chain_id)
        self._first_transfers = (*earlier, self.conflict)
        self.deadline_at = node.clock() + plan.deadline_s
        self._phase = Phase.RUNNING
        log.info("chain %d: double spend started, payment %s, fork at %s", chain_id,
                 hash_to_display(payment.txid()), hash_to_display(self.fork_hash))
        self._spawn(self._watch, "watch")
        if plan.attack_percent:
            self._spawn(self._mine_privately, "attackers")
        if plan.honest_percent:
            self._spawn(self._mine_publicly, "honest")

    def _spawn(self, work: Callable[[], Awaitable[None]], name: str) -> None:
        async def run() -> None:
            try:
                await work()
            except asyncio.CancelledError:
                raise
            except Exception:  # one side's failure must not stop the round: the deadline still ends it
                log.exception("chain %d: the double spend's %s task failed", self.chain_id, name)

        self._tasks.append(asyncio.create_task(run(), name=f"double-spend-{self.chain_id}-{name}"))

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def payment_txid(self) -> bytes:
        return b"" if self.payment is None else self.payment.txid()

    # --- who mines where ---------------------------------------------------------------

    async def is_attacker(self, owner: str) -> bool:
        known = self._team.get(owner)
        if known is None:
            known = self._team[owner] = await self._is_attacker(owner)
        return known

    def _private_route(self) -> MinerRoute:
        """On the private tip: the fork point with the private blocks above it (they are in no tree until
        published), the conflicting transfer in the branch's first block (under the lock)."""
        transfers = () if self._private else self._first_transfers
        return MinerRoute(self.fork_hash, "the attackers' private branch", False, transfers, tuple(self._private))

    def _private_tip(self) -> bytes:
        return self._private[-1].header.hash() if self._private else self.fork_hash

    async def route_miner(self, owner: str) -> MinerRoute | None:
        if self._phase is not Phase.RUNNING or not await self.is_attacker(owner):
            return None
        async with self._lock:
            return self._private_route() if self._phase is Phase.RUNNING else None

    async def on_mined(self, owner: str, route: MinerRoute, result: MiningResult) -> None:
        await self._keep(route, result, by_bot=False)

    async def _keep(self, route: MinerRoute, result: MiningResult, *, by_bot: bool) -> bool:
        """Add a privately found block to the private branch if it extends its tip; True if kept."""
        block = result.block
        if block is None or route.publish:
            return False
        async with self._lock:
            if self._phase is not Phase.RUNNING or block.header.prev_hash != self._private_tip():
                # Another attacker extended the private tip first (or the round is over): this block
                # would fork the private branch itself, so it is not kept.
                log.info("chain %d: private block %s not kept (%s)", self.chain_id, block.header.hash_hex(),
                         "round over" if self._phase is not Phase.RUNNING else "private tip moved")
                return False
            if len(self._private) >= MAX_PRIVATE_BLOCKS:
                log.info("chain %d: the private branch is full (%d blocks)", self.chain_id, MAX_PRIVATE_BLOCKS)
                return False
            self._private.append(block)
            pow_limit = self._node.chain(self.chain_id).state.params.pow_limit
            self._private_work += compute_header_work(block.header.bits, pow_limit)
            if by_bot:
                self._attacker_bot_blocks += 1
            else:
                # The bot's session mines on the old private tip now: end it, it restarts on this one.
                session = self._bot_sessions.get(ATTACKERS_OWNER)
                if session is not None:
                    session.cancel()
        self._wake.set()
        return True

    def _started(self, owner: str) -> Callable[[MiningSession], None]:
        def remember(session: MiningSession) -> None:
            if self._phase is not Phase.RUNNING:
                session.cancel()  # the round ended while this session was being set up
            self._bot_sessions[owner] = session

        return remember

    async def _mine_privately(self) -> None:
        while self._phase is Phase.RUNNING:
            async with self._lock:
                route = self._private_route()
            if len(route.private) >= MAX_PRIVATE_BLOCKS:
                await self._full.wait()  # set when the round ends: nothing more to mine privately
                return
            result = await self._node.mine(
                self.chain_id, ATTACKERS_OWNER, parent_hash=route.parent_hash, transfers=route.transfers,
                private=route.private, publish=False, weight=self.plan.attack_percent,
                on_start=self._started(ATTACKERS_OWNER),
            )
            self._bot_sessions.pop(ATTACKERS_OWNER, None)
            if not await self._keep(route, result, by_bot=True):
                await asyncio.sleep(RESTART_AFTER_S)

    async def _mine_publicly(self) -> None:
        while self._phase is Phase.RUNNING:
            result = await self._node.mine(
                self.chain_id, HONEST_OWNER, weight=self.plan.honest_percent, on_start=self._started(HONEST_OWNER)
            )
            self._bot_sessions.pop(HONEST_OWNER, None)
            if result.found:
                self._honest_bot_blocks += 1
                self._wake.set()
            else:
                await asyncio.sleep(RESTART_AFTER_S)

    # --- watching, publishing, ending --------------------------------------------------

    async def race(self) -> BranchRace:
        """Both branches since the fork, and the payment's public confirmations."""
        tree = self._node.tree(self.chain_id)
        best = tree.best
        fork = tree.get(self.fork_hash)
        # The public branch is the main chain: from the fork point, unless the main chain left it.
        base = compute_fork_point(tree, self.fork_hash, best.block_hash)
        matches = await self._node.find_transactions(self.chain_id, hash_to_display(self.payment_txid), 1)
        height = next((t.height for t in matches.confirmed if bytes(t.txid) == self.payment_txid), None)
        return BranchRace(
            public_work=best.chain_work - base.chain_work,
            private_work=self._private_work + (fork.chain_work - base.chain_work),
            public_blocks=best.height - base.height,
            private_blocks=len(self._private),
            payment_height=height,
            public_height=best.height,
        )

    def opening_status(self) -> DoubleSpendStatus:
        """The round as it starts (nothing mined since the fork yet): read from memory, so a start that
        paid the merchant always has its plan to show."""
        race = BranchRace(0, 0, 0, 0, None, self.fork_height)
        return DoubleSpendStatus(
            self.plan, race, self.fork_height, self.payment_txid, self.deadline_at,
            paper_figure(self.plan.planned_share, self.plan.confirmations),
        )

    async def status(self) -> DoubleSpendStatus:
        """The round now, or ``DoubleSpendOverError`` once it is publishing or over."""
        if self._phase is not Phase.RUNNING:
            raise DoubleSpendOverError("the double spend is over: its summary was posted")
        return DoubleSpendStatus(
            self.plan, await self.race(), self.fork_height,
            self.payment_txid, self.deadline_at, paper_figure(self.plan.planned_share, self.plan.confirmations),
        )

    async def _watch(self) -> None:
        """Publish once ready, or at the deadline."""
        while self._phase is Phase.RUNNING:
            left = self.deadline_at - self._node.clock()
            if left <= 0:
                with contextlib.suppress(DoubleSpendOverError):
                    await self.expire()
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(CHECK_INTERVAL_S, left))
            self._wake.clear()
            if self._phase is not Phase.RUNNING:
                return
            try:
                race = await self.race()
            except ChainError as gone:  # the chain was reset or replaced under the round: nothing to publish
                log.warning("chain %d: double spend abandoned: %s", self.chain_id, gone)
                await self.close()
                return
            if is_ready_to_publish(race, self.plan.confirmations):
                with contextlib.suppress(DoubleSpendOverError):
                    await self.finish(EndReason.AUTOMATIC)
                return

    async def publish(self) -> DoubleSpendSummary:
        """An attacker or an admin publishes the private branch now."""
        return await self.finish(EndReason.PUBLISHED)

    async def expire(self) -> DoubleSpendSummary:
        """The deadline: the round ends, its private blocks published whatever their work."""
        return await self.finish(EndReason.DEADLINE)

    async def finish(self, reason: EndReason) -> DoubleSpendSummary:
        """Stop the bot's sessions, publish the private branch, end the game, post the summary.

        Once only: a second caller (at the same moment or later) gets ``DoubleSpendOverError``.
        """
        async with self._lock:
            if self._phase is not Phase.RUNNING:
                raise DoubleSpendOverError("the double spend was already published or ended")
            self._phase = Phase.PUBLISHING
            for session in list(self._bot_sessions.values()):
                session.cancel()
            abandoned: ChainError | None = None
            try:
                race = await self.race()
            except ChainError as gone:
                self._phase = Phase.ENDED
                abandoned = gone
            else:
                events, depth, error = await self._publish(self._private)
                self._phase = Phase.ENDED
        await self._sessions.end(self.chain_id, GAME_KIND)
        await self._stop_tasks()
        if abandoned is not None:
            raise DoubleSpendOverError(f"the chain changed under the round; it ended unpublished ({abandoned})")
        reversed_ = any(isinstance(e, PaymentReversed) and e.txid == self.payment_txid for e in events)
        q_measured = measured_share(race.private_blocks, race.public_blocks)
        summary = DoubleSpendSummary(
            plan=self.plan,
            reason=reason,
            verdict=judge(payment_reversed=reversed_, confirmations_at_publish=race.confirmations,
                          confirmations=self.plan.confirmations),
            race=race,
            fork_height=self.fork_height,
            payment_txid=self.payment_txid,
            reorg_depth=depth,
            attacker_bot_blocks=self._attacker_bot_blocks,
            attacker_member_blocks=len(self._private) - self._attacker_bot_blocks,
            honest_bot_blocks=self._honest_bot_blocks,
            p_before=paper_figure(self.plan.planned_share, self.plan.confirmations),
            q_measured=q_measured,
            p_after=paper_figure(q_measured, self.plan.confirmations),
            events=events,
            publish_error=error,
        )
        self.summary = summary
        log.info("chain %d: double spend ended (%s): %s, reorg depth %d", self.chain_id, reason.value,
                 summary.verdict.value, depth)
        if self._on_end is not None:
            try:
                await self._on_end(summary)
            except Exception:  # the summary is kept on the game; a failed post must not undo the round
                log.exception("chain %d: the double spend's summary could not be posted", self.chain_id)
        return summary

    async def _publish(self, blocks: Sequence[Block]) -> tuple[tuple[ChainEvent, ...], int, str | None]:
        """``accept_block`` on each private block in order: (the events, the deepest reorg, an error)."""
        events: list[ChainEvent] = []
        depth = 0
        for block in blocks:
            try:
                acceptance = await self._node.accept_block(self.chain_id, block)
            except ChainError as refusal:
                log.warning("chain %d: private block %s refused: %s", self.chain_id, block.header.hash_hex(), refusal)
                return tuple(events), depth, str(refusal)
            events.extend(acceptance.events)
            if acceptance.reorg is not None:
                depth = max(depth, acceptance.reorg.depth)
        depth = max([depth, *(e.depth for e in events if isinstance(e, ChainReorganized))])
        return tuple(events), depth, None

    async def _stop_tasks(self) -> None:
        self._full.set()
        current = asyncio.current_task()
        others = [t for t in self._tasks if t is not current]
        for session in list(self._bot_sessions.values()):
            session.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    async def close(self) -> None:
        """The bot is shutting down: stop without publishing (the private blocks are lost, as a
        private miner's would be when it stops), and end the game."""
        async with self._lock:
            if self._phase is not Phase.RUNNING:
                return
            self._phase = Phase.ENDED
        with contextlib.suppress(ChainError):
            await self._sessions.end(self.chain_id, GAME_KIND)
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        await self._stop_tasks()
