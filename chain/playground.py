"""The one front door to a server's chain: what the cogs and the bot call.

``Node`` (blocks, wallets, mempool, mining) and ``BeaconNode`` (validators, votes, slots, the
Merge) are the engine's two halves; each keeps its own per-server runtime. Cogs used to reach
into both, and into their store and runtimes, and had to keep them in step (create a chain
through one, then tell the other). ``Playground`` owns that: a slash command converts its input,
makes one call here, and formats what comes back (a frozen read model or an engine value).

What lives here is orchestration and read models only: every rule stays in the engine below,
and every check-then-act still happens under the engine's own per-chain lock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, BinaryIO, Protocol

from chain.adapters.beacon_lifecycle import GENESIS_ALLOCATION_POINTS
from chain.adapters.beacon_node import BeaconNode
from chain.adapters.beacon_status import FinalityView, ValidatorView, VoteProgress
from chain.adapters.branches import BEACON_STATES_KEPT
from chain.adapters.budget import IDLE_AFTER_S, MIN_SLOT_DURATION_S
from chain.adapters.double_spend import GAME_KIND as DOUBLE_SPEND_KIND
from chain.adapters.double_spend import DoubleSpendGame, DoubleSpendStatus, DoubleSpendSummary, EndReason, IsAttacker
from chain.adapters.energy import ETHEREUM_MERGE_PERCENT_SAVED_THOUSANDTHS, EnergyReport
from chain.adapters.game_sessions import GameSessions, MinerRouter
from chain.adapters.hashcore import MiningSession, OutcomeKind, Progress
from chain.adapters.network_split import KIND as SPLIT_KIND
from chain.adapters.network_split import (
    LENT_OWNERS,
    MAX_SPLIT_MINUTES,
    MIN_SPLIT_MINUTES,
    InGroupA,
    NetworkSplit,
    SideView,
    SplitSummary,
)
from chain.adapters.node import (
    FAUCET_OWNER,
    ChainRuntime,
    FaucetClaim,
    FaucetReward,
    MiningResult,
    Node,
    RewardRecorder,
    TransactionMatches,
)
from chain.adapters.selfish_mining import DEFAULT_POLL_S as SELFISH_POLL_S
from chain.adapters.selfish_mining import HONEST_OWNER as SELFISH_HONEST_OWNER
from chain.adapters.selfish_mining import KIND as SELFISH_KIND
from chain.adapters.selfish_mining import POOL_OWNER as SELFISH_POOL_OWNER
from chain.adapters.selfish_mining import SelfishMiningGame, SelfishSnapshot, game_random
from chain.adapters.slot_driver import SlotOutcome
from chain.adapters.split_votes import SideFinality, SplitVoting
from chain.adapters.storage import (
    ReorgRecord,
    StoredOrphan,
    StoredSideBranch,
    StoredStakeEntry,
    StoredTransaction,
)
from chain.adapters.storage import Transaction as StoreTransaction
from chain.adapters.votes import VoteReceipt
from chain.consensus.block import Block
from chain.consensus.chart_data import (
    DifficultySeries,
    EnergyComparison,
    IntervalHistogram,
    ShareVsWins,
    compute_difficulty_series,
    compute_energy_comparison,
    compute_interval_histogram,
    compute_share_vs_wins,
)
from chain.consensus.retargets import retarget_history
from chain.consensus.rule_changes import compute_kept_params
from chain.consensus.stake_chart_data import (
    ParticipationSeries,
    compute_block_proposers,
    compute_participation_series,
    compute_stake_vs_proposals,
)
from chain.consensus.state import ChainState, compute_difficulty, compute_next_bits
from chain.consensus.supply_history import SupplyHistory
from chain.consensus.tree import BlockEntry, get_ancestor_at_height
from chain.consensus.tree_layout import TreeLayout, TreeWindow, collect_tree_window, compute_tree_layout
from chain.consensus.verify import VerifyReport
from chain.errors import (
    ChainBeforeStakingError,
    ChartValueError,
    DoubleSpendNotAttackerError,
    DoubleSpendPlanError,
    LessonUnavailableError,
    MiningBaseDuringGameError,
    NoGameRunningError,
    SelfishGameDurationError,
    SelfishMiningUnavailableError,
    SplitUnavailableError,
    StakingUnavailableError,
)
from chain.games.double_spend_plan import (
    MAX_DEADLINE_MINUTES,
    MAX_GAME_CONFIRMATIONS,
    MAX_LENT_PERCENT,
    MIN_GAME_CONFIRMATIONS,
    BranchRace,
    DoubleSpendPlan,
    Verdict,
    check_plan,
)
from chain.games.lessons import (
    LESSONS,
    PAYMENT_CONFIRMATIONS,
    FinalityKind,
    Lesson,
    LessonFacts,
    LessonResult,
    ReorgRole,
    ReorgSeen,
    check_lesson,
    get_lesson,
)
from chain.games.network_split import stake_percent
from chain.games.selfish_mining import check_pool_share, check_tie_break
from chain.hashing import hash_to_display
from chain.ledger.accounts import Account
from chain.ledger.mempool import Admission, PendingTransfer
from chain.ledger.transaction import Transfer
from chain.mode import Mode
from chain.params import ChainParams
from chain.pos.attestation import AttesterSlashing, ProposerSlashing
from chain.pos.beacon import ConsensusConfig
from chain.pos.merge import is_proposed_height
from chain.pos.proposer import ProposerDraw
from chain.pos.staking import is_active_validator
from chain.pow.compact import compute_block_work, compute_target
from chain.pow.difficulty import RetargetExplanation, compute_calibrated_bits

log = logging.getLogger(__name__)

# The longest selfish-mining game, in seconds: games live in memory, and an hour is a long lesson.
SELFISH_MAX_DURATION_S = 3600

# Engine values the cogs format, handed on from here so that cogs import no engine internals.
__all__ = [
    "TreeLayout",
    "TreeWindow",
    "ETHEREUM_MERGE_PERCENT_SAVED_THOUSANDTHS",
    "IDLE_AFTER_S",
    "MIN_SLOT_DURATION_S",
    "EnergyReport",
    "FAUCET_OWNER",
    "GENESIS_ALLOCATION_POINTS",
    "MiningResult",
    "MiningSession",
    "OutcomeKind",
    "Progress",
    "RetargetExplanation",
    "TransactionMatches",
    "VerifyReport",
    "Admission",
    "BlockEntry",
    "ChainState",
    "FaucetClaim",
    "FaucetReward",
    "LESSONS",
    "PAYMENT_CONFIRMATIONS",
    "SELFISH_HONEST_OWNER",
    "SELFISH_MAX_DURATION_S",
    "SELFISH_POOL_OWNER",
    "SelfishSnapshot",
    "Lesson",
    "LessonResult",
    "RewardRecorder",
    "StoreTransaction",
    "get_lesson",
    "FinalityView",
    "SlotOutcome",
    "StoredOrphan",
    "StoredSideBranch",
    "StoredStakeEntry",
    "StoredTransaction",
    "ValidatorView",
    "VoteProgress",
    "VoteReceipt",
    "ChainDefaults",
    "ChainStatusView",
    "HistoryView",
    "Playground",
    "SlotReport",
    "WalletView",
    "MiningRace",
    "RaceEntry",
    "RecentBlock",
    "BranchRace",
    "DoubleSpendPlan",
    "DoubleSpendStatus",
    "DoubleSpendSummary",
    "EndReason",
    "MAX_DEADLINE_MINUTES",
    "MAX_GAME_CONFIRMATIONS",
    "MAX_LENT_PERCENT",
    "MIN_GAME_CONFIRMATIONS",
    "Verdict",
    "InGroupA",
    "LENT_OWNERS",
    "MAX_SPLIT_MINUTES",
    "MIN_SPLIT_MINUTES",
    "NetworkSplit",
    "SideFinality",
    "SideView",
    "SplitSummary",
    "stake_percent",
]


class ChainDefaults(Protocol):
    """Where the rules of a new chain come from (the bot's settings; tests change them while running)."""

    default_params: ChainParams
    default_consensus: ConsensusConfig

    async def hash_rate(self) -> int:
        """The hashing core's measured rate, for a new chain's difficulty."""
        ...


@dataclass(frozen=True)
class WalletView:
    """A member's wallet on one server's chain, as /wallet balance shows it."""

    address: bytes
    balance: int
    pending: tuple[PendingTransfer, ...]
    next_nonce: int

    @property
    def pending_out(self) -> int:
        return sum(e.tx.amount + e.tx.fee for e in self.pending)


@dataclass(frozen=True)
class HistoryView:
    """What /wallet history lists: pooled transfers, then confirmed ones and staking entries."""

    address: bytes
    faucet: bytes | None
    pending_out: tuple[PendingTransfer, ...]
    # Faucet claims for this member still in the mempool.
    pending_claims: tuple[PendingTransfer, ...]
    transactions: tuple[StoredTransaction, ...]
    stakes: tuple[StoredStakeEntry, ...]
    # Heights whose block reward was a proposer's fees (proof of stake), not a mining reward.
    proposed_heights: frozenset[int]


@dataclass(frozen=True)
class ChainStatusView:
    """A server's chain at a glance: what several commands show beside their answer."""

    state: ChainState
    pending_transfers: int
    mode: Mode | None
    merged: bool
    consensus: ConsensusConfig | None


@dataclass(frozen=True)
class SlotReport:
    """One chain's slot that ran: the outcome, and the finality after it."""

    guild_id: int
    outcome: SlotOutcome
    finality: FinalityView


@dataclass(frozen=True, slots=True)
class RaceEntry:
    """One member's mining session in a chain's race for its next block (the classroom dashboard)."""

    owner: str  # the member mining (their member id); "" for a session the bot runs for no member
    hashes_tried: int
    share_percent: int  # of this chain's hash power now, by the sessions' weights
    elapsed_s: int


@dataclass(frozen=True, slots=True)
class MiningRace:
    """Who is mining a chain's next block right now, and how many hashes a block takes on average."""

    height: int  # the height the sessions race for
    expected_hashes: int
    entries: tuple[RaceEntry, ...]


@dataclass(frozen=True, slots=True)
class RecentBlock:
    """A main-chain block as the classroom dashboard lists it: public facts only, no block body."""

    height: int
    block_hash: bytes
    miner: bytes  # the coinbase's recipient: the miner, or a proof-of-stake block's proposer
    transfers: int
    time: int
    proof_of_stake: bool


class Playground:
    """One façade per bot over every server's chain (``guild_id`` is the chain id)."""

    def __init__(self, node: Node, beacon: BeaconNode | None, defaults: ChainDefaults) -> None:
        self._node = node
        self._beacon = beacon
        self._defaults = defaults
        self._creating: dict[int, asyncio.Lock] = {}
        # The game running on each chain (one at a time): double spend, selfish mining, network split.
        self.games = GameSessions()

    # --- chains: creation, reset, modes -------------------------------------------------

    def now(self) -> int:
        return self._node.now()

    def clock(self) -> float:
        return self._node.clock()

    def has_chain(self, guild_id: int) -> bool:
        return self._node.has_chain(guild_id)

    def offline_reason(self, guild_id: int) -> str | None:
        return self._node.offline_reason(guild_id)

    def is_paused(self, guild_id: int) -> bool:
        return self._node.is_paused(guild_id)

    def chain_ids(self) -> list[int]:
        return self._node.chain_ids()

    def offline_chain_ids(self) -> list[int]:
        return self._node.offline_chain_ids()

    def pause(self, guild_id: int) -> bool:
        """The bot left this server: its chain makes no blocks (data kept). True if it was running."""
        return self._node.pause(guild_id)

    def resume(self, guild_id: int) -> bool:
        return self._node.resume(guild_id)

    def close(self) -> None:
        self._node.close()

    async def ensure_chain(self, guild_id: int) -> ChainState:
        """This server's chain, created on first use with a calibrated difficulty.

        A stored chain that failed to load raises ``ChainOfflineError`` (an ephemeral answer that
        points to ``/playground reset``): it is never replaced behind the admins' back. Creation
        goes through ``Node.create_chain``, which the beacon node reads its runtime from: the two
        halves see one new chain, never one each.
        """
        if self._node.has_chain(guild_id):
            return self._node.chain(guild_id).state
        lock = self._creating.setdefault(guild_id, asyncio.Lock())
        async with lock:
            self._node.require_owned(guild_id)
            self._node.require_online(guild_id)
            if not self._node.has_chain(guild_id):
                params = self._defaults.default_params
                bits = compute_calibrated_bits(await self._defaults.hash_rate(), params)
                await self._node.create_chain(
                    guild_id, params, initial_bits=bits, consensus=self._defaults.default_consensus
                )
        return self._node.chain(guild_id).state

    async def reset_chain(self, guild_id: int, *, defaults: bool = False) -> ChainState:
        """Start this server's chain over, as one atomic step: with the rules in force on the old
        chain (block time, reward...), or with the default rules if ``defaults``."""
        self._node.require_owned(guild_id)
        params = self._defaults.default_params
        bits = compute_calibrated_bits(await self._defaults.hash_rate(), params)
        keep = not defaults
        consensus = self._defaults.default_consensus
        if self._beacon is not None:
            await self._beacon.reset(guild_id, params, initial_bits=bits, consensus=consensus, keep_rules=keep)
        else:
            await self._node.replace_chain(guild_id, params, initial_bits=bits, consensus=consensus, keep_rules=keep)
        return self._node.chain(guild_id).state

    def state(self, guild_id: int) -> ChainState:
        """The chain's state now (the chain must exist: commands run after ``ensure_chain``)."""
        return self._node.chain(guild_id).state

    def status(self, guild_id: int) -> ChainStatusView:
        runtime = self._node.chain(guild_id)
        beacon = self._beacon
        mode = beacon.mode(guild_id) if beacon is not None else None
        return ChainStatusView(
            state=runtime.state,
            pending_transfers=len(runtime.mempool),
            mode=mode,
            merged=beacon is not None and beacon.is_merged(guild_id),
            consensus=beacon.config(guild_id) if beacon is not None and mode is not None else None,
        )

    # --- chaos mode (the other server settings are the bot's: cogs/services.py) ------------

    async def chaos_mode(self, guild_id: int) -> bool:
        return await self._node.store.chaos_mode.get_chaos_mode(guild_id)

    async def set_chaos_mode(self, guild_id: int, on: bool) -> bool:
        """Turn chaos mode on or off; returns what it was (read in the same transaction)."""
        return await self._node.store.chaos_mode.set_chaos_mode(guild_id, on)

    # --- wallets --------------------------------------------------------------------------

    async def address(self, guild_id: int, owner: str) -> bytes:
        return await self._node.address(guild_id, owner)

    def account(self, guild_id: int, address: bytes) -> Account:
        return self._node.account(guild_id, address)

    def faucet_address(self, guild_id: int) -> bytes | None:
        return self._node.faucet_address(guild_id)

    async def wallet(self, guild_id: int, owner: str) -> WalletView:
        await self.ensure_chain(guild_id)
        address = await self._node.address(guild_id, owner)
        runtime = self._node.chain(guild_id)
        return WalletView(
            address=address,
            balance=self._node.account(guild_id, address).balance,
            pending=tuple(runtime.mempool.pending_for(address)),
            next_nonce=runtime.mempool.next_nonce(address, runtime.state.ledger),
        )

    async def history(self, guild_id: int, owner: str, limit: int) -> HistoryView:
        await self.ensure_chain(guild_id)
        address = await self._node.address(guild_id, owner)
        runtime = self._node.chain(guild_id)
        faucet = self._node.faucet_address(guild_id)
        claims = () if faucet is None else tuple(
            e for e in runtime.mempool.pending_for(faucet) if e.tx.recipient == address
        )
        transactions = tuple(await self._node.store.blocks.history(guild_id, address, limit))
        beacon = runtime.state.beacon
        return HistoryView(
            address=address,
            faucet=faucet,
            pending_out=tuple(runtime.mempool.pending_for(address)),
            pending_claims=claims,
            transactions=transactions,
            stakes=tuple(await self._node.store.blocks.stake_history(guild_id, address, limit)),
            proposed_heights=frozenset(
                tx.height for tx in transactions if tx.sender is None and is_proposed_height(beacon, tx.height)
            ),
        )

    async def pay(self, guild_id: int, sender: str, recipient: str, amount: int, fee: int = 0) -> Admission:
        """``sender`` pays ``recipient`` (both owners: member ids); pooled until a block includes it."""
        await self.ensure_chain(guild_id)
        to = await self._node.address(guild_id, recipient)
        return await self._node.pay(guild_id, sender, to, amount, fee)

    async def faucet(self, guild_id: int, owner: str, amount: int, *, cooldown_s: int) -> FaucetClaim:
        await self.ensure_chain(guild_id)
        return await self._node.faucet(guild_id, owner, amount, cooldown_s=cooldown_s)

    def member_balances(self, guild_id: int) -> list[tuple[int, bytes]]:
        """(balance, address) of every positive balance but the faucet's (it is nobody's)."""
        faucet = self._node.faucet_address(guild_id)
        return [(acc.balance, key) for key, acc in self._node.chain(guild_id).state.ledger.items()
                if acc.balance > 0 and key != faucet]

    def blocks_mined(self, guild_id: int) -> list[tuple[bytes, int]]:
        return self._node.chain(guild_id).blocks_mined.most_common()

    async def owners(self, guild_id: int) -> dict[bytes, str]:
        """Public key -> owner (member id, or ``FAUCET_OWNER``) of wallets and validators."""
        owners = dict(await self._node.owners(guild_id))
        if self._beacon is not None:
            owners.update(await self._beacon.validator_owners(guild_id))
        return owners

    # --- lessons (issue 11, item 7) -------------------------------------------------------

    # Transactions of a member a lesson check reads, newest first: a payment older than the last
    # this many is not seen (it has long had its confirmations; a newer one will be checked).
    LESSON_HISTORY_LIMIT = 200

    # Reorgs (and refusals) a reorg lesson's check reads after the member's start, oldest first:
    # it passes on the first one the member took part in, so a class's busy hour is read in one go.
    LESSON_REORGS_LIMIT = 500

    async def complete_lesson(
        self, guild_id: int, owner: str, lesson_id: str, *, start_height: int | None, record: RewardRecorder,
        start_reorg_seq: int = 0,
    ) -> tuple[LessonResult, FaucetReward | None]:
        """Check a lesson and, when it is done, pay its reward from the faucet with ``record`` writing
        the completion in the same transaction (``Node.faucet_reward``). The check runs under the
        chain's lock that the payment takes, so a reset or a block cannot land between them: a lesson
        done on a chain that a reset then replaced is checked again on the new one.
        ``start_reorg_seq``: ``reorg_log_seq`` when the member started (later reorgs count)."""
        lesson = self._available_lesson(lesson_id)
        await self.ensure_chain(guild_id)
        results: list[LessonResult] = []

        async def earned(runtime: ChainRuntime) -> bool:
            results.append(
                await self._lesson_result(guild_id, owner, lesson_id, start_height, runtime, start_reorg_seq)
            )
            return results[-1].done

        reward = await self._node.faucet_reward(guild_id, owner, lesson.reward_points, record, earned=earned)
        return results[-1], reward

    @staticmethod
    def _available_lesson(lesson_id: str) -> Lesson:
        lesson = get_lesson(lesson_id)
        if not lesson.available:
            raise LessonUnavailableError(lesson_id, lesson.unavailable_reason or "not available yet")
        return lesson

    async def reorg_log_seq(self, guild_id: int) -> int:
        """The newest entry of the chain's reorg log (0: none): a lesson started now counts later ones."""
        await self.ensure_chain(guild_id)
        return await self._node.store.reorg_log.last_seq(guild_id)

    async def _lesson_result(
        self, guild_id: int, owner: str, lesson_id: str, start_height: int | None, runtime: ChainRuntime,
        start_reorg_seq: int = 0,
    ) -> LessonResult:
        address = await self._node.address(guild_id, owner)
        state = runtime.state
        transactions = await self._node.store.blocks.history(guild_id, address, self.LESSON_HISTORY_LIMIT)
        validator = None
        if self._beacon is not None and self._beacon.mode(guild_id) is not None:
            validator = await self._beacon.validator(guild_id, owner)
        logged = await self._node.store.reorg_log.since(guild_id, start_reorg_seq, self.LESSON_REORGS_LIMIT)

        def seen(record: ReorgRecord) -> ReorgSeen:
            role: ReorgRole | None = (
                "branch" if address in record.branch else "orphaned" if address in record.orphaned else None
            )
            return ReorgSeen(record.height, record.depth, role)

        finality, finalized_height = self._lesson_finality(guild_id, runtime)
        facts = LessonFacts(
            tip_height=state.height,
            params=state.params,
            blocks_mined=runtime.blocks_mined[address],
            payment_heights=tuple(t.height for t in transactions if t.sender == address and t.recipient != address),
            has_validator=validator is not None,
            vote_counted=validator is not None and (validator.voted_current_epoch or validator.voted_previous_epoch),
            start_height=start_height,
            reorgs=tuple(seen(r) for r in logged if r.kind == "reorg"),
            refusals=tuple(seen(r) for r in logged if r.kind == "refused"),
            finality=finality,
            finalized_height=finalized_height,
        )
        return check_lesson(lesson_id, facts)

    def _lesson_finality(self, guild_id: int, runtime: ChainRuntime) -> tuple[FinalityKind, int | None]:
        """What can stop a reorg on the chain, and the finalized block's height (checkpoints only)."""
        beacon = runtime.state.beacon
        mode = self.mode(guild_id)
        if beacon is None or mode is None:
            return "none", None
        # The node's own test (Node._accept_off_tip): after the Merge the head follows votes, not work.
        if mode is Mode.POS or beacon.merged or beacon.terminal is not None:
            return "votes", None
        if mode is not Mode.HYBRID:
            return "none", None
        root = beacon.finality.finalized_checkpoint.root
        tree = runtime.tree
        height = tree.get(root).height if root in tree else 0
        return "checkpoints", height or None

    # --- mining on a chosen block (/mine start on_block, for the reorg lessons) -----------------

    # How far below the main tip a member's branch may leave the main chain: each block of a branch
    # rebuilds the state back to its fork, and a proof-of-stake-aware chain keeps the beacon states of
    # only this many recent blocks (chain/adapters/branches.py) anyway.
    MINE_ON_BLOCK_MAX_DEPTH = BEACON_STATES_KEPT

    def main_block_at(self, guild_id: int, height: int) -> BlockEntry:
        """The main chain's block at ``height`` (at most the tip's), from the in-memory tree."""
        state = self._node.chain(guild_id).state
        return get_ancestor_at_height(self._node.tree(guild_id), state.tip_hash, height)

    def find_tree_blocks(self, guild_id: int, prefix: str, limit: int) -> tuple[int, list[BlockEntry]]:
        """(how many, the first ``limit``) blocks of the chain's tree, main and side, whose hash as
        shown (``hash_to_display``) starts with ``prefix`` (lowercase hex), highest first."""
        found = [e for e in self._node.tree(guild_id) if hash_to_display(e.block_hash).startswith(prefix)]
        found.sort(key=lambda e: e.height, reverse=True)
        return len(found), found[:limit]

    async def check_mining_base(self, guild_id: int, parent_hash: bytes) -> BlockEntry:
        """Refuse, before a session starts, a block a member cannot mine on (``Node.check_branch_base``,
        and while a game routes members); where its branch leaves the main chain."""
        running = self.games.current(guild_id)
        if running is not None and isinstance(running.game, MinerRouter):
            raise MiningBaseDuringGameError(guild_id, running.kind)
        return await self._node.check_branch_base(guild_id, parent_hash, self.MINE_ON_BLOCK_MAX_DEPTH)

    # --- staking --------------------------------------------------------------------------

    def _staking(self) -> BeaconNode:
        if self._beacon is None:
            raise StakingUnavailableError("Proof of stake is not available on this bot yet.")
        return self._beacon

    @property
    def can_stake(self) -> bool:
        return self._beacon is not None

    async def staking_chain(self, guild_id: int) -> None:
        """Refuse, before anything runs, on a server whose chain cannot stake."""
        beacon = self._staking()
        await self.ensure_chain(guild_id)
        if beacon.mode(guild_id) is None:
            raise ChainBeforeStakingError(guild_id)

    def mode(self, guild_id: int) -> Mode | None:
        return self._beacon.mode(guild_id) if self._beacon is not None else None

    def is_merged(self, guild_id: int) -> bool:
        return self._beacon is not None and self._beacon.is_merged(guild_id)

    def consensus(self, guild_id: int) -> ConsensusConfig:
        return self._staking().config(guild_id)

    def current_slot(self, guild_id: int, now: int) -> int:
        return self._staking().current_slot(guild_id, now)

    def slot_time(self, guild_id: int, slot: int) -> int:
        return self._staking().slot_time(guild_id, slot)

    def current_epoch(self, guild_id: int) -> int:
        return self._staking().current_epoch(guild_id)

    def finality(self, guild_id: int) -> FinalityView:
        return self._staking().finality(guild_id)

    def validators(self, guild_id: int) -> list[ValidatorView]:
        beacon = self._staking()
        return beacon.validators(guild_id) if beacon.mode(guild_id) is not None else []

    async def validator(self, guild_id: int, owner: str) -> ValidatorView | None:
        await self.staking_chain(guild_id)
        return await self._staking().validator(guild_id, owner)

    async def pending_deposit_points(self, guild_id: int, owner: str) -> int:
        """Points the owner's wallet has deposited in the pool, waiting for a block."""
        wallet = await self._node.address(guild_id, owner)
        return self._staking().pending_deposit_points(guild_id, wallet)

    async def deposit(self, guild_id: int, owner: str, amount: int) -> ValidatorView | None:
        await self.staking_chain(guild_id)
        return await self._staking().deposit(guild_id, owner, amount)

    async def withdraw(self, guild_id: int, owner: str) -> ValidatorView:
        await self.staking_chain(guild_id)
        return await self._staking().withdraw(guild_id, owner)

    async def attest(
        self, guild_id: int, owner: str, *, head_root: bytes | None = None, double_vote: bool = False
    ) -> VoteReceipt:
        """Sign the owner's vote; a double vote is refused unless the server is in chaos mode
        (the beacon node checks it, the one place it is checked)."""
        await self.staking_chain(guild_id)
        return await self._staking().attest(guild_id, owner, head_root=head_root, double_vote=double_vote)

    async def set_auto_attest(self, guild_id: int, owner: str, on: bool) -> None:
        await self.staking_chain(guild_id)
        await self._staking().set_auto_attest(guild_id, owner, on)

    async def protection(self, guild_id: int, owner: str) -> dict[str, Any]:
        await self.staking_chain(guild_id)
        return await self._staking().protection(guild_id, owner)

    async def equivocate(self, guild_id: int, owner: str) -> Block:
        await self.staking_chain(guild_id)
        return await self._staking().equivocate(guild_id, owner, self.now())

    async def report(self, guild_id: int, evidence_hex: str) -> AttesterSlashing | ProposerSlashing:
        self._staking()
        await self.ensure_chain(guild_id)
        return await self._staking().report(guild_id, evidence_hex)

    # --- the slot clock -------------------------------------------------------------------

    async def run_slots(self, now: int, *, stopping: Callable[[], bool] = lambda: False) -> AsyncIterator[SlotReport]:
        """Advance every proof-of-stake chain to the slot due at ``now``; yield each slot that ran.

        Paused servers (the bot is not in them) and unmerged hybrid chains (they vote on mined
        blocks) are skipped; one server's failure is logged and never stops the others."""
        beacon = self._beacon
        if beacon is None:
            return
        for guild_id in beacon.consensus_chain_ids():
            if stopping():
                return
            if self._node.is_paused(guild_id):
                continue  # the bot is not in that server: no block, no auto-attest vote
            try:
                if beacon.mode(guild_id) is Mode.POW and not beacon.is_merged(guild_id):  # hybrid votes on mined blocks
                    continue
                outcome = await beacon.on_slot(guild_id, now)
            except Exception:
                log.exception("guild %d: the slot due at %d failed", guild_id, now)
                continue
            if outcome is None:
                continue
            yield SlotReport(guild_id, outcome, beacon.finality(guild_id))

    # --- rules and modes (admins) ----------------------------------------------------------

    def pending_params(self, guild_id: int) -> ChainParams | None:
        return self._node.pending_params(guild_id)

    async def propose_params(self, guild_id: int, params: ChainParams) -> None:
        await self._node.propose_params(guild_id, params)

    def kept_params(self, current: ChainParams) -> ChainParams:
        """The rules a reset keeps: the chain's own, on top of today's defaults."""
        return compute_kept_params(self._defaults.default_params, current)

    async def switch_mode(
        self, guild_id: int, mode: Mode, admin: str, *, base: ConsensusConfig | None = None
    ) -> ChainState:
        """Start the chain over in ``mode`` (the beacon node swaps both halves' runtimes in one step)."""
        await self.ensure_chain(guild_id)
        await self._staking().switch_mode(guild_id, mode, admin, self.now(), base=base)
        return self._node.chain(guild_id).state

    async def schedule_merge(
        self, guild_id: int, *, at_height: int | None = None, at_total_difficulty: int | None = None
    ) -> ConsensusConfig:
        return await self._staking().schedule_merge(
            guild_id, at_height=at_height, at_total_difficulty=at_total_difficulty
        )

    def slot_budget(self, guild_id: int) -> tuple[int, int, bool]:
        """(slot blocks left this hour, blocks an hour, idle) of the slot driver's budget."""
        beacon, now = self._staking(), self.now()
        return beacon.budget(guild_id, now), beacon.blocks_per_hour, beacon.is_idle(guild_id, now)

    def vote_progress(self, guild_id: int) -> VoteProgress:
        return self._staking().progress(guild_id)

    def next_block_work(self, guild_id: int) -> int:
        """About how many hashes the next block needs (its bits after any retarget)."""
        state = self._node.chain(guild_id).state
        return compute_block_work(compute_target(compute_next_bits(state), state.params.pow_limit))

    # --- mining ---------------------------------------------------------------------------

    @staticmethod
    def difficulty(bits: int, params: ChainParams) -> int:
        return compute_difficulty(bits, params)

    @staticmethod
    def work_for_bits(bits: int, pow_limit: int) -> int:
        """Expected hashes to find a block at ``bits``."""
        return compute_block_work(compute_target(bits, pow_limit))

    @staticmethod
    def work_for_target(target: int) -> int:
        return compute_block_work(target)

    def mining_is_over(self, guild_id: int) -> bool:
        """Whether this server's chain takes no more proof-of-work blocks: merged, past its terminal block, or pos."""
        if self._beacon is None or not self._node.has_chain(guild_id):
            return False
        if self._beacon.is_merged(guild_id):
            return True
        beacon = self._node.chain(guild_id).state.beacon
        return beacon is not None and beacon.terminal is not None

    def genesis_hash(self, guild_id: int) -> bytes | None:
        """The chain's genesis hash, or None without a chain (a reset makes a new one)."""
        return self._node.chain(guild_id).state.genesis_hash if self._node.has_chain(guild_id) else None

    async def mine(
        self,
        guild_id: int,
        owner: str,
        *,
        on_progress: Callable[[Progress], None] | None = None,
        on_start: Callable[[MiningSession], None] | None = None,
        deadline_s: float | None = None,
        parent_hash: bytes | None = None,
    ) -> MiningResult:
        """A member's mining session: on the main tip, or where the chain's running game sends it
        (``MinerRouter``: one side of a network split, an attacking team's private branch), or on
        ``parent_hash``, a block the member chose (``/mine start on_block``: a competing branch, for
        the reorg lessons; refused while a game decides where members mine)."""
        running = self.games.current(guild_id)
        router = running.game if running is not None and isinstance(running.game, MinerRouter) else None
        if parent_hash is not None:
            if router is not None and running is not None:
                raise MiningBaseDuringGameError(guild_id, running.kind)
            return await self._node.mine(
                guild_id, owner, on_progress=on_progress, on_start=on_start, deadline_s=deadline_s,
                parent_hash=parent_hash,
            )
        route = None if router is None else await router.route_miner(owner)
        if router is None or route is None:
            return await self._node.mine(
                guild_id, owner, on_progress=on_progress, on_start=on_start, deadline_s=deadline_s
            )
        result = await self._node.mine(
            guild_id, owner, on_progress=on_progress, on_start=on_start, deadline_s=deadline_s,
            parent_hash=route.parent_hash, transfers=route.transfers, publish=route.publish, private=route.private,
            operations=route.operations,
        )
        await router.on_mined(owner, route, result)
        return result

    # --- explorer ------------------------------------------------------------------------

    def tip_block(self, guild_id: int) -> Block:
        return self._node.chain(guild_id).tip_block

    async def get_block(self, guild_id: int, height: int) -> Block:
        return await self._node.store.blocks.get_block(guild_id, height=height)

    async def find_blocks_by_hash_prefix(
        self, guild_id: int, prefix: str, limit: int
    ) -> tuple[int, list[tuple[int, bytes]]]:
        return await self._node.store.blocks.find_blocks_by_hash_prefix(guild_id, prefix, limit)

    async def block_hashes(self, guild_id: int, heights: Iterable[int]) -> dict[int, bytes]:
        return await self._node.store.blocks.block_hashes(guild_id, heights)

    async def retarget_history(self, guild_id: int) -> tuple[list[RetargetExplanation], RetargetExplanation | None]:
        return await retarget_history(self._node.store.blocks, guild_id, self._node.chain(guild_id).state)

    # --- chart data (issue 12): what ``/chain chart`` and the dashboard plot -------------------

    async def difficulty_series(
        self, guild_id: int, max_points: int
    ) -> tuple[DifficultySeries, list[tuple[int, int]]]:
        """Difficulty over the whole chain, sampled at no more than ``max_points`` heights (evenly
        spaced, the tip always included), and (height it ends at, average seconds a block, rounded
        down) of each whole retarget window (at most ``max_points`` of them, the latest)."""
        if max_points < 2:
            raise ChartValueError(f"max_points {max_points} must be at least 2")
        state = self._node.chain(guild_id).state
        params = state.params
        stride = -(-(state.height + 1) // max_points)
        heights = sorted({*range(0, state.height + 1, stride), state.height})
        headers = await self._node.store.blocks.headers_at(guild_id, heights)
        series = compute_difficulty_series([(h, headers[h]) for h in heights if h in headers], params)
        window = params.retarget_window_blocks
        edges = list(range(0, state.height + 1, window))[-(max_points + 1):]
        times = await self._node.store.blocks.headers_at(guild_id, edges)
        averages = [
            (later, (times[later].time - times[earlier].time) // window)
            for earlier, later in zip(edges, edges[1:], strict=False) if earlier in times and later in times
        ]
        return series, averages

    async def interval_histogram(self, guild_id: int, last_blocks: int, bins: list[int]) -> IntervalHistogram:
        """The times between the last ``last_blocks`` blocks against the exponential curve."""
        state = self._node.chain(guild_id).state
        start = max(0, state.height + 1 - last_blocks)
        headers = await self._node.store.blocks.headers_between(guild_id, start, state.height + 1)
        return compute_interval_histogram([h.time for h, _ in headers], state.params.target_spacing_s, bins)

    async def mining_shares(self, guild_id: int) -> tuple[ShareVsWins[str], ...]:
        """Each miner's share of the hashes the bot's core computed for this chain since the bot
        started, against its share of the blocks won since then (by owner: a member id, or the
        public key's hex for a miner the bot holds no wallet for)."""
        core = self._node.hashing_core
        hashes: dict[str, int] = {}
        if core is not None:
            for key, count in core.hashes_by_key().items():
                if isinstance(key, tuple) and len(key) == 2 and key[0] == guild_id:
                    hashes[str(key[1])] = hashes.get(str(key[1]), 0) + count
        owners = await self._node.owners(guild_id)
        wins: dict[str, int] = {}
        for miner, count in self._node.chain(guild_id).mined_since_load.items():
            owner = owners.get(miner, miner.hex())
            wins[owner] = wins.get(owner, 0) + count
        return compute_share_vs_wins(hashes, wins)

    async def stake_shares(self, guild_id: int, last_blocks: int) -> tuple[tuple[ShareVsWins[int], ...], int]:
        """Each validator's share of the active stake now (effective balances: what weighs the
        proposer draw) against its share of the proof-of-stake blocks among the main chain's last
        ``last_blocks``; and how many such blocks there were."""
        if last_blocks < 1:
            raise ChartValueError(f"last_blocks {last_blocks} must be at least 1")
        await self.staking_chain(guild_id)
        state = self._node.chain(guild_id).state
        beacon = state.beacon
        stakes: dict[int, int] = {}
        if beacon is not None:
            stakes = {
                i: v.effective_balance for i, v in enumerate(beacon.registry.validators)
                if is_active_validator(v, beacon.epoch)
            }
        start = max(1, state.height + 1 - last_blocks)
        raws = await self._node.store.blocks.raw_blocks_between(guild_id, start, state.height + 1)
        # Parsing a thousand blocks is milliseconds of CPU: not on the event loop.
        proposers = await asyncio.to_thread(compute_block_proposers, raws)
        return compute_stake_vs_proposals(stakes, proposers), len(proposers)

    async def epoch_participation(self, guild_id: int, last_epochs: int) -> ParticipationSeries:
        """The participation of the chain's last ``last_epochs`` recorded epoch ends (stored with the
        blocks that ended them, so it survives restarts; epochs ended before that record existed, or
        with nobody active, are absent)."""
        if last_epochs < 1:
            raise ChartValueError(f"last_epochs {last_epochs} must be at least 1")
        await self.staking_chain(guild_id)
        records = await self._node.store.blocks.epoch_records(guild_id, last_epochs)
        return compute_participation_series(records)
    async def supply_history(self, guild_id: int) -> SupplyHistory:
        """Points minted, burned, staked and circulating over height, from a replay of the stored chain
        in the reader thread (kept, then extended; ``SupplyHistoryPendingError`` while a long chain's
        first replay runs)."""
        return await self._node.supply_history(guild_id)

    async def energy_comparison(self, guild_id: int) -> EnergyComparison:
        """``energy`` with the blocks each kind made: proof-of-work blocks up to the terminal block
        (all of them before the Merge, none in a pos chain), proof-of-stake blocks after it."""
        report = await self.energy(guild_id)
        state = self.state(guild_id)
        if self.mode(guild_id) is Mode.POS:
            pow_blocks = 0
        elif state.beacon is not None and state.beacon.terminal is not None:
            pow_blocks = state.beacon.terminal.height
        else:
            pow_blocks = state.height
        return compute_energy_comparison(
            report.pow_millijoules, report.pos_millijoules, pow_blocks, state.height - pow_blocks
        )
    def block_tree_window(
        self, guild_id: int, max_heights: int, max_lanes: int, from_height: int | None = None
    ) -> TreeWindow:
        """The block tree's last ``max_heights`` heights (from ``from_height`` on, for a game's fork) laid
        out on lanes (chain/consensus/tree_layout.py), with the finality checkpoints inside them.

        From the node's in-memory tree (the blocks of the last ``TREE_KEPT_BELOW_TIP_BLOCKS`` heights at
        a start, and every block since): O(heights shown + side tips), quick enough for the event loop.
        ``TreeHasNoForksError`` while no block lies off the main chain."""
        runtime = self._node.chain(guild_id)
        tree = runtime.tree
        blocks, window_tip = collect_tree_window(tree, runtime.state.tip_hash, max_heights, from_height)
        layout = compute_tree_layout(blocks, window_tip, max_lanes=max_lanes)
        beacon = runtime.state.beacon
        finalized = justified = None
        by_votes = False
        if beacon is not None:
            by_votes = self.mode(guild_id) is Mode.POS or beacon.merged or beacon.terminal is not None

            def in_window(root: bytes) -> int | None:
                height = tree.get(root).height if root in tree else None
                # Height 0 is the genesis block, final by definition: not worth a mark.
                return height if height and layout.first_height <= height <= layout.last_height else None

            finalized = in_window(beacon.finality.finalized_checkpoint.root)
            justified = in_window(beacon.finality.current_justified_checkpoint.root)
        return TreeWindow(layout, finalized, justified, by_votes)

    async def find_transactions(self, guild_id: int, prefix: str, limit: int) -> TransactionMatches:
        return await self._node.find_transactions(guild_id, prefix, limit)

    async def verify(self, guild_id: int) -> VerifyReport:
        await self.ensure_chain(guild_id)
        return await self._node.verify(guild_id)

    async def export_to(self, guild_id: int, out: BinaryIO, *, limit: int | None = None) -> Any:
        await self.ensure_chain(guild_id)
        return await self._node.export_to(guild_id, out, limit=limit)

    async def validator_owners_by_index(self, guild_id: int) -> dict[int, str]:
        """Validator index -> owner (member id), for the validators the bot holds keys for."""
        beacon = self._beacon
        if beacon is None or beacon.mode(guild_id) is None:
            return {}
        owners = await beacon.validator_owners(guild_id)
        return {v.index: owners[v.pubkey] for v in beacon.validators(guild_id) if v.pubkey in owners}

    def proposer_draw(self, guild_id: int, slot: int) -> ProposerDraw:
        """Pure CPU (a slot ahead runs epoch transitions): callers run it in a thread."""
        return self._staking().proposer_draw(guild_id, slot)

    async def energy(self, guild_id: int) -> EnergyReport:
        return await self._staking().energy(guild_id)

    @property
    def milliwatts_per_core(self) -> int:
        return self._staking().milliwatts_per_core

    # --- the block tree in the explorer: orphaned blocks and side branches (issue 11, item 3) ---

    async def find_orphans_by_hash_prefix(
        self, guild_id: int, prefix: str, limit: int
    ) -> tuple[int, list[tuple[int, bytes]]]:
        """Blocks off the main chain whose hash (as shown) starts with ``prefix``: how many, and up
        to ``limit`` as (height, hash), newest first."""
        return await self._node.store.tree.find_orphans_by_hash_prefix(guild_id, prefix, limit)

    async def orphan(self, guild_id: int, block_hash: bytes) -> StoredOrphan:
        """A block off the main chain, with the main chain's block and work at its height."""
        return await self._node.store.tree.orphan(guild_id, block_hash)

    async def orphans_at(self, guild_id: int, height: int) -> int:
        """How many blocks off the main chain compete with the main chain's at ``height``."""
        return await self._node.store.tree.count_orphans_at(guild_id, height)

    async def side_branches(self, guild_id: int, limit: int) -> tuple[int, list[StoredSideBranch]]:
        """How many side branches the chain's tree has, and the ``limit`` newest."""
        return await self._node.store.tree.side_branches(guild_id, limit)

    # --- selfish mining (issue 11, item 5) -------------------------------------------------

    async def start_selfish_mining(
        self,
        guild_id: int,
        *,
        alpha: Fraction,
        gamma: Fraction,
        duration_s: float,
        on_end: Callable[[SelfishSnapshot], Awaitable[None]],
        poll_s: float = SELFISH_POLL_S,
    ) -> SelfishSnapshot:
        """Start a selfish pool of share ``alpha`` and tie-break ``gamma`` on this server's chain for
        ``duration_s`` (chain/adapters/selfish_mining.py). One game per chain (``GameSessions``): a
        second start raises ``GameAlreadyRunningError`` and changes nothing. At the deadline (or when
        the chain is started over under it) the game ends by itself and ``on_end`` gets its summary,
        unless a stop ended it first."""
        alpha, gamma = check_pool_share(alpha), check_tie_break(gamma)
        if not isinstance(duration_s, int | float) or isinstance(duration_s, bool) or not (
            0 < duration_s <= SELFISH_MAX_DURATION_S
        ):
            raise SelfishGameDurationError(
                f"a selfish-mining game lasts more than 0 and at most {SELFISH_MAX_DURATION_S} seconds, "
                f"not {duration_s!r}"
            )
        await self.ensure_chain(guild_id)
        if self.mining_is_over(guild_id) or self.mode(guild_id) is Mode.POS:
            raise SelfishMiningUnavailableError(guild_id)
        game = SelfishMiningGame(
            self._node, guild_id, alpha, gamma, game_random(self._node.randomness), duration_s,
            poll_s=poll_s,
        )
        await self.games.start(guild_id, SELFISH_KIND, game)
        try:
            await game.begin()
        except BaseException:
            await self.games.end(guild_id, SELFISH_KIND, game)
            raise

        async def by_itself(reason: str) -> None:
            try:
                await self.games.end(guild_id, SELFISH_KIND, game)
            except NoGameRunningError:
                return  # an admin's stop ended it first: that stop shows the summary
            await on_end(await game.finish(reason))

        game.run(by_itself)
        return game.snapshot()

    async def stop_selfish_mining(self, guild_id: int, reason: str = "stopped") -> SelfishSnapshot:
        """End this chain's selfish-mining game now and return its summary; ``NoGameRunningError`` if
        none runs (of a stop and the deadline at the same moment, exactly one ends it)."""
        game = await self.games.end(guild_id, SELFISH_KIND)
        assert isinstance(game, SelfishMiningGame)  # only this section starts games of this kind
        return await game.finish(reason)

    def selfish_mining_status(self, guild_id: int) -> SelfishSnapshot:
        """The running game as it stands; ``NoGameRunningError`` if none runs."""
        game = self.games.get(guild_id, SELFISH_KIND)
        assert isinstance(game, SelfishMiningGame)
        return game.snapshot()

    def selfish_mining_games(self) -> list[int]:
        """The chains running a selfish-mining game (the bot ends them when it shuts down)."""
        return [chain_id for chain_id in self._node.chain_ids()
                if (running := self.games.current(chain_id)) is not None and running.kind == SELFISH_KIND]

    # --- the double-spend game (issue 11, item 4) --------------------------------------------

    async def start_double_spend(
        self,
        guild_id: int,
        *,
        payer: str,
        merchant: str,
        attackers: frozenset[str],
        amount: int,
        confirmations: int,
        attack_percent: int,
        honest_percent: int,
        deadline_minutes: int,
        is_attacker: IsAttacker,
        on_end: Callable[[DoubleSpendSummary], Awaitable[None]] | None = None,
    ) -> DoubleSpendStatus:
        """Check the plan, then start the round (one game per chain): the payment is pooled, the
        bot's lent sessions mine. A refused start changes nothing."""
        plan = check_plan(
            payer=payer, merchant=merchant, attackers=attackers, amount=amount, confirmations=confirmations,
            attack_percent=attack_percent, honest_percent=honest_percent, deadline_minutes=deadline_minutes,
        )
        await self.ensure_chain(guild_id)
        if self.mining_is_over(guild_id) or self.mode(guild_id) is Mode.POS:
            raise DoubleSpendPlanError("a double spend races proof-of-work blocks, and this chain mines none")
        game = await DoubleSpendGame.start(
            self._node, self.games, guild_id, plan, is_attacker=is_attacker, on_end=on_end
        )
        return game.opening_status()

    def has_double_spend(self, guild_id: int) -> bool:
        running = self.games.current(guild_id)
        return running is not None and running.kind == DOUBLE_SPEND_KIND

    def double_spend(self, guild_id: int) -> DoubleSpendGame:
        """The chain's running double spend, or ``NoGameRunningError``."""
        game = self.games.get(guild_id, DOUBLE_SPEND_KIND)
        if not isinstance(game, DoubleSpendGame):
            raise NoGameRunningError(guild_id, DOUBLE_SPEND_KIND)
        return game

    async def double_spend_status(self, guild_id: int) -> DoubleSpendStatus:
        return await self.double_spend(guild_id).status()

    async def publish_double_spend(self, guild_id: int, owner: str, *, admin: bool) -> DoubleSpendSummary:
        """Publish the private branch now: the attacking side or an admin (``admin``) only."""
        game = self.double_spend(guild_id)
        if not admin and not await game.is_attacker(owner):
            raise DoubleSpendNotAttackerError("only the attacking side or an admin can publish the private branch")
        return await game.publish()

    async def stop_double_spends(self) -> None:
        """Shutdown: every running double spend stops without publishing (``DoubleSpendGame.close``)."""
        for guild_id in self._node.chain_ids():
            running = self.games.current(guild_id)
            if running is not None and isinstance(running.game, DoubleSpendGame):
                await running.game.close()

    # --- games: the network split (issue 11, games item 6) --------------------------------

    async def start_split(
        self,
        guild_id: int,
        *,
        groups: tuple[str, str],
        in_group_a: InGroupA,
        minutes: int,
        on_healed: Callable[[SplitSummary], Awaitable[None]] | None = None,
        lent_weight: int = 0,
    ) -> NetworkSplit:
        """Split the server's miners into two groups for ``minutes`` (``chain.adapters.network_split``).

        On a hybrid chain each side's validators (owners with auto-attest on, split by the same role)
        vote on their side's blocks only (``chain.adapters.split_votes``); on a proof-of-stake chain
        (pos mode, or merged) each side's drawn proposers also propose its blocks, slot by slot, and
        the heal lets the votes choose the branch. A chain past its terminal block but not yet merged
        is refused (``SplitUnavailableError``). ``GameAlreadyRunningError`` when another game runs.
        Nothing starts when it refuses. ``lent_weight`` > 0: the bot mines on each side too, with that
        weight on the hashing core (a member's session has 1)."""
        await self.ensure_chain(guild_id)
        mode = self.mode(guild_id)
        beacon = self._beacon
        proof_of_stake = beacon is not None and (mode is Mode.POS or beacon.is_merged(guild_id))
        if proof_of_stake and beacon is not None:
            voting: SplitVoting | None = SplitVoting(
                beacon.chains, guild_id, heads=beacon.heads, slots=beacon.slots
            )
        elif mode is Mode.POS or self.mining_is_over(guild_id):
            raise SplitUnavailableError(
                "a network split needs mined or proposed blocks, and this chain is between the two (its "
                "terminal block is mined, the Merge not done yet): play it after the Merge", mode=str(mode),
            )
        else:
            voting = None
            if mode is Mode.HYBRID and beacon is not None:
                voting = SplitVoting(beacon.chains, guild_id)
        return await NetworkSplit.start(
            self._node, self.games, guild_id, groups=groups, in_group_a=in_group_a, minutes=minutes,
            on_healed=on_healed, lent_weight=lent_weight, voting=voting,
        )

    def split(self, guild_id: int) -> NetworkSplit:
        """The server's running split, or ``NoGameRunningError``."""
        game = self.games.get(guild_id, SPLIT_KIND)
        if not isinstance(game, NetworkSplit):
            raise NoGameRunningError(guild_id, SPLIT_KIND)
        return game

    def split_side_label(self, guild_id: int, owner: str) -> str | None:
        """Where a member's blocks go while a split runs ("group A (@north)'s side of the split"), for
        the ``/mine`` reply; None without a split or before the member's side is known."""
        running = self.games.current(guild_id)
        if running is None or not isinstance(running.game, NetworkSplit):
            return None
        return running.game.label_of(owner)

    async def heal_split(self, guild_id: int, reason: str = "admin") -> SplitSummary:
        """Heal the running split now; ``NoGameRunningError`` if none runs (or it just healed)."""
        return await self.split(guild_id).heal(reason)

    async def split_pay(
        self, guild_id: int, owner: str, recipient: str, amount: int, fee: int = 0
    ) -> tuple[str, Transfer]:
        """A payment only the payer's side of the split hears of: (the side, the signed transfer)."""
        split = self.split(guild_id)
        return await split.pay(owner, await self.address(guild_id, recipient), amount, fee)

    async def close_splits(self) -> None:
        """Bot shutdown: heal every running split (its blocks are published, its summary sent)."""
        for guild_id in self.chain_ids():
            running = self.games.current(guild_id)
            if running is not None and isinstance(running.game, NetworkSplit):
                await running.game.close()

    # --- the classroom dashboard (issue 12, item 4): reads only -----------------------------

    def mining_race(self, guild_id: int) -> MiningRace:
        """The mining sessions racing for this chain's next block, from the hashing core's memory."""
        state = self._node.chain(guild_id).state
        core = self._node.hashing_core
        sessions = [s for s in core.stats().per_session if s.chain_id == guild_id] if core is not None else []
        total = sum(s.weight for s in sessions)
        entries = []
        for session in sessions:
            key = session.key
            # A member's session is keyed (chain id, member id); a game's own miners are not members.
            owner = key[1] if isinstance(key, tuple) and len(key) == 2 and isinstance(key[1], str) else ""
            share = int(session.weight * 100 // total) if total > 0 else 0
            entries.append(RaceEntry(owner, session.hashes_tried, share, int(session.elapsed)))
        entries.sort(key=lambda e: (-e.hashes_tried, e.owner))
        return MiningRace(state.height + 1, self.next_block_work(guild_id), tuple(entries))

    def pending_transfers(self, guild_id: int, limit: int) -> tuple[PendingTransfer, ...]:
        """The newest ``limit`` transfers waiting in this chain's mempool, newest first."""
        entries = self._node.chain(guild_id).mempool.entries()
        entries.sort(key=lambda e: (e.arrival, e.txid), reverse=True)
        return tuple(entries[: max(0, limit)])

    async def recent_blocks(self, guild_id: int, count: int) -> tuple[RecentBlock, ...]:
        """The newest ``count`` blocks of the main chain, newest first (the tip from memory, the rest
        read from the store)."""
        runtime = self._node.chain(guild_id)
        tip = runtime.tip_block
        blocks = [tip]
        for height in range(tip.height - 1, max(-1, tip.height - count), -1):
            blocks.append(await self._node.store.blocks.get_block(guild_id, height=height))
        return tuple(
            RecentBlock(
                b.height, b.hash(), b.coinbase.miner, len(b.transfers), b.header.time, b.is_proof_of_stake
            )
            for b in blocks[: max(0, count)]
        )
