"""The engine's async façade: chains, wallets, mempools, mining, verification.

(Wallet keys are kept by ``chain.adapters.wallet_keys``; verify and export run in
``chain.adapters.chain_reads``; a mining session's templates are a
``chain.adapters.template_job.TemplateJob``.)

``Node`` wires the pure engine to the store and the hashing core.  It owns no
clock and no randomness of its own: both are passed in.  Every state change
is validated in memory first, committed to the store in one transaction, and
only then applied in memory, so a crash between the two loses nothing that
was acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, BinaryIO

from chain.adapters.branches import MAX_BRANCH_DEPTH_BLOCKS, BeaconStates, Branch, load_branch
from chain.adapters.chain_reads import ChainReads, ExportSummary
from chain.adapters.hashcore import HashingCore, MiningOutcome, MiningSession, OutcomeKind, Progress
from chain.adapters.storage import (
    ReorgRecord,
    Store,
    StoredChainHead,
    StoredTransaction,
    StoredValidatorKey,
    Transaction,
)
from chain.adapters.storage.migrations import compute_stored_block_work
from chain.adapters.template_job import TemplateJob
from chain.adapters.wallet_keys import WalletKeys
from chain.consensus.block import Block, BlockTemplate
from chain.consensus.consensus_block import check_merge_schedule, compute_next_total_difficulty
from chain.consensus.genesis import make_genesis_block
from chain.consensus.reorg_events import compute_reorg_events, compute_tree_refusal_events
from chain.consensus.rule_changes import check_params_change, compute_kept_params
from chain.consensus.state import BlockEffects, ChainState
from chain.consensus.supply_history import SupplyHistory
from chain.consensus.templates import build_template, compute_next_block_time
from chain.consensus.transition import process_block
from chain.consensus.tree import (
    BlockEntry,
    BlockTree,
    Reorg,
    compute_fork_point,
    get_ancestor_at_height,
    is_ancestor,
)
from chain.consensus.undo import DroppedTransfer, compute_block_undo, compute_returned_transfers
from chain.consensus.verify import VerifyReport
from chain.errors import (
    BranchStateUnavailableError,
    BranchTooDeepError,
    ChainError,
    ChainNotFoundError,
    ChainNotOwnedError,
    ChainOfflineError,
    DepositPendingError,
    DuplicateBlockError,
    FaucetCooldownError,
    FaucetEmptyError,
    HashingCoreError,
    NoFaucetError,
    SnapshotError,
    StaleBlockError,
    UndoRecordMissingError,
    UnknownParentError,
)
from chain.events import ChainEvent, ReorgRefusedByFinality
from chain.hashing import hash_to_display
from chain.keys import SigningKey
from chain.ledger.accounts import Account, LedgerView
from chain.ledger.mempool import Admission, Mempool, PendingTransfer
from chain.ledger.transaction import Transfer, make_transfer
from chain.mode import Mode
from chain.params import ChainParams
from chain.pos.beacon import ConsensusConfig, GenesisAllocation
from chain.pos.op_pool import Operation, OpPool, PooledOperation, is_dead_operation
from chain.pos.operations import Deposit, Operations
from chain.pos.snapshot import decode_beacon_state, encode_beacon_state
from chain.pow.compact import compute_target
from chain.pow.difficulty import compute_calibrated_bits, compute_rescaled_bits

if TYPE_CHECKING:  # beacon_runtime imports this module; the runtime's type is named for checkers only
    from chain.adapters.beacon_runtime import BeaconRuntime


log = logging.getLogger(__name__)

# A chain that fails to load is logged in full; members see the first characters of why.
MAX_OFFLINE_REASON_CHARS = 200
# How far below the tip a node's in-memory block tree reaches after a start: one past the deepest
# fork a branch may have, so every branch that can still be extended or switched to is in it.
TREE_KEPT_BELOW_TIP_BLOCKS = MAX_BRANCH_DEPTH_BLOCKS + 1
# Blocks read per batch when a chain without a usable snapshot is replayed (memory stays flat).
REPLAY_BATCH_BLOCKS = 500

Clock = Callable[[], float]
Randomness = Callable[[int], bytes]
# Whether this node serves a chain (the bot's shard of it): it loads, creates and resets only those.
Ownership = Callable[[int], bool]


def owns_every_chain(_chain_id: int) -> bool:
    return True

# The owner name of the bot's faucet wallet. Members' owners are Discord ids (digits only), so
# no member can ever own this wallet; it is custodied and sealed like theirs.
FAUCET_OWNER = "faucet"

@dataclass(frozen=True, slots=True)
class TransactionMatches:
    """Transactions whose id, as shown, starts with a prefix: pending ones (all of them, the mempool
    is bounded) and up to a limit of the confirmed ones, newest first, with how many confirmed
    ones there are in all (with no prefix, only those listed are counted)."""

    pending: tuple[PendingTransfer, ...]
    confirmed: tuple[StoredTransaction, ...]
    confirmed_count: int

    @property
    def count(self) -> int:
        return len(self.pending) + self.confirmed_count


@dataclass(frozen=True, slots=True)
class FaucetClaim:
    """A faucet payout pooled for a member: ``amount`` points, in the next block."""

    admission: Admission
    amount: int
    # When the member may claim again (node clock), and the faucet's points left after this payout.
    next_claim_at: int
    left: int


@dataclass(frozen=True)
class FaucetReward:
    """A reward paid from the faucet (``admission``: the pooled transfer), or why none was
    (``reason``: ``no_faucet`` or ``faucet_empty``; then ``admission`` is None and ``amount`` 0)."""

    admission: Admission | None
    amount: int
    reason: str | None


# Writes the caller's record inside the reward's transaction: (transaction, txid or None, points paid).
RewardRecorder = Callable[[Transaction, bytes | None, int], Awaitable[None]]


@dataclass
class ChainRuntime:
    state: ChainState
    mempool: Mempool
    next_arrival: int
    # Rules the next mined block will commit to (see ``Node.propose_params``).
    proposed_params: ChainParams | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Kept in memory so that the commands members type most never wait on SQLite. Keyword-only
    # and required: every runtime is built with its tip (genesis, or the stored tip at load).
    tip_block: Block = field(kw_only=True)
    blocks_mined: Counter[bytes] = field(default_factory=Counter)
    # The same, counting only blocks joined since this runtime was built (load, reset or creation):
    # the hashing core's per-member hash counts start with the process, so a chart comparing hash
    # power with blocks won compares the same stretch of time.
    mined_since_load: Counter[bytes] = field(default_factory=Counter)
    # Proof of stake: operations waiting for a block, and a Merge schedule the next block commits to.
    op_pool: OpPool = field(default_factory=OpPool)
    proposed_consensus: ConsensusConfig | None = None
    # Bumped whenever the mempool or the op pool changes: mining templates refresh their body then.
    pool_version: int = 0
    # When a member last acted on the chain (node clock): an idle chain skips its empty slots.
    last_activity: int = 0
    # The faucet wallet funded at this chain's genesis; None for a chain created without one.
    faucet: bytes | None = None
    # The consensus client's memory of this chain (``chain.adapters.beacon_runtime.BeaconRuntime``: fork choice,
    # candidates, validator owners, auto-attest), built by ``BeaconNode`` on first use. It lives here
    # so that a server has one runtime: a reset or mode switch that replaces this object drops it too.
    consensus: BeaconRuntime | None = None
    # Every valid block of the chain (chain/consensus/tree.py), rebuilt from the store at load; the
    # main chain is ``state``'s line through it. Keyword-only and required, like the tip.
    tree: BlockTree = field(kw_only=True)
    genesis: Block = field(kw_only=True)
    # The beacon states of recent blocks, main and side (chain/adapters/branches.py): how a side
    # branch of a chain with a consensus config gets the state it forks from.
    beacon_states: BeaconStates = field(default_factory=BeaconStates)


@dataclass(frozen=True, slots=True)
class BlockAcceptance:
    """What ``Node.accept_block`` did with a block: where it stands in the tree, and any reorg."""

    block: Block
    entry: BlockEntry
    # The block's effects on its own branch (on a side branch they are not applied to the main chain).
    effects: BlockEffects
    on_main: bool
    # Set when the main chain switched to the block's branch (``reorg.depth`` blocks taken off).
    reorg: Reorg | None
    # The reorg's events, or a heavier branch refused by finality; in the outbox with the block.
    events: tuple[ChainEvent, ...]


@dataclass(frozen=True, slots=True)
class MiningResult:
    outcome: MiningOutcome
    block: Block | None = None
    effects: BlockEffects | None = None
    # For a stale result: the height that was won by someone else.
    tip_height: int = 0
    # How the found block joined the tree (None when nothing was found or it was kept unpublished):
    # a stale block is kept as a side block now, not thrown away.
    acceptance: BlockAcceptance | None = None

    @property
    def found(self) -> bool:
        return self.block is not None


def _process_withheld(state: ChainState, blocks: Sequence[Block], now: int) -> None:
    """Apply a withheld branch's blocks (never accepted, so not in the tree) to a fresh branch state."""
    for block in blocks:
        state.apply(block, process_block(state, block, now))


def _process_and_snapshot(
    state: ChainState,
    block: Block,
    now: int,
    proposed_params: ChainParams | None,
    proposed_consensus: ConsensusConfig | None,
) -> tuple[BlockEffects, bytes | None]:
    """``process_block`` plus the bytes of the beacon state after the block (None without one)."""
    effects = process_block(state, block, now, proposed_params, proposed_consensus)
    return effects, None if effects.beacon is None else encode_beacon_state(effects.beacon)


def _mempool_after_reorg(
    disconnected: Sequence[Block],
    connect: Sequence[tuple[Block, BlockEffects]],
    state: ChainState,
    pooled: Sequence[PendingTransfer],
    next_arrival: int,
    unlimited: frozenset[bytes],
) -> tuple[Mempool, list[PendingTransfer], tuple[DroppedTransfer, ...]]:
    """The mempool on a reorg's new tip (``state``): the disconnected blocks' transfers still valid
    there first (they were sent earlier), then what was pooled; whatever the new branch confirmed or
    made invalid leaves it. Returns it, the returned transfers it kept, and those dropped with why."""
    confirmed = {tx.txid() for block, _ in connect for tx in block.transfers}
    returned, dropped = compute_returned_transfers(disconnected, state.ledger, state.chain_id, state.params, confirmed)
    mempool = Mempool(state.params, state.chain_id, unlimited_senders=unlimited)
    first = min((e.arrival for e in pooled), default=next_arrival) - len(returned)
    candidates = [PendingTransfer(tx, tx.txid(), first + i) for i, tx in enumerate(returned)]
    refused = {e.txid for e in mempool.restore([*candidates, *pooled], state.ledger)}
    kept = [e for e in candidates if e.txid not in refused]
    dropped = (*dropped, *(
        DroppedTransfer(e.tx, e.txid, "mempool_refused", "the mempool had no room for it on the new branch")
        for e in candidates if e.txid in refused
    ))
    return mempool, kept, dropped


def _unlimited(faucet: bytes | None) -> frozenset[bytes]:
    """Senders exempt from the mempool's per-sender limit: the faucet, whose payouts the claim
    cooldown bounds (a class claiming at once must not wait a block per 25 members)."""
    return frozenset() if faucet is None else frozenset((faucet,))


def _genesis_tree(genesis: Block) -> BlockTree:
    """A chain's block tree holding its genesis block alone (work as the store records it)."""
    return BlockTree(genesis.hash(), compute_stored_block_work(genesis.header.bits), genesis.header.prev_hash)


def _replay_blocks(
    state: ChainState,
    blocks: list[Block],
    now: int,
    changes: dict[int, ChainParams],
    schedules: dict[int, ConsensusConfig],
) -> None:
    for block in blocks:
        height = state.height + 1
        state.apply(block, process_block(state, block, now, changes.get(height), schedules.get(height)))


class Node:
    def __init__(
        self,
        store: Store,
        *,
        clock: Clock,
        randomness: Randomness,
        master_key: bytes | None,
        hashing_core: HashingCore | None = None,
        faucet_fund_points: int = 0,
        owns: Ownership = owns_every_chain,
    ) -> None:
        """``owns``: the chains this node serves (default: all). Several nodes (processes) can share one
        PostgreSQL database, each owning a disjoint part of its chains: a node loads only its own, and
        refuses to create, reset or delete another's (``ChainNotOwnedError``), so it never holds a
        second in-memory copy of a chain another node is changing."""
        self.store = store
        self.owns = owns
        # Points every chain this node creates with a consensus config allocates at genesis to
        # its faucet (``FAUCET_OWNER``'s wallet); 0: chains get no faucet.
        self.faucet_fund_points = faucet_fund_points
        self.clock = clock
        self.randomness = randomness
        self.hashing_core = hashing_core
        self._chains: dict[int, ChainRuntime] = {}
        # Stored chains that failed to load at startup -> why; offline until reset.
        self._offline: dict[int, str] = {}
        # The members' wallet keys (chain/adapters/wallet_keys.py): made on first use, sealed at rest.
        self.wallet_keys = WalletKeys(store, master_key=master_key, randomness=randomness, now=self.now)
        # Chains whose server the bot is not in (see ``pause``); kept in memory only.
        self._paused: set[int] = set()
        # Verify and export (chain/adapters/chain_reads.py), in a reader thread of their own.
        self.reads = ChainReads(store)

    def close(self) -> None:
        """Stop the whole-chain reader thread; a read under way finishes on its own connection."""
        self.reads.close()

    def now(self) -> int:
        return int(self.clock())

    # --- chains ---------------------------------------------------------------

    async def load(self) -> None:
        """Load every stored chain: tip, balances and mempool.

        One by one, and each on its own: a chain that cannot be loaded (a corrupt row, a bug) is
        logged and taken offline (``offline_reason``), and every other chain loads and plays on.
        Only the chains this node ``owns`` are loaded; the others are another node's.
        """
        stored = await self.store.chains.chain_ids()
        owned = [chain_id for chain_id in stored if self.owns(chain_id)]
        if len(owned) != len(stored):
            log.info("loading %d of %d stored chains (the others belong to other processes)", len(owned), len(stored))
        for chain_id in owned:
            try:
                await self._load_chain(chain_id)
            except Exception as exc:  # whatever broke one chain must not stop the others
                reason = f"{type(exc).__name__}: {exc}"
                if len(reason) > MAX_OFFLINE_REASON_CHARS:
                    reason = reason[: MAX_OFFLINE_REASON_CHARS - 1] + "…"
                self._offline[chain_id] = reason
                log.exception("chain %d could not be loaded and is offline until it is reset", chain_id)

    async def _load_chain(self, chain_id: int) -> ChainRuntime:
        """The chain from its stored tables and recent end (``Store.load_chain_head``, chain/adapters/storage/store.py):
        no replay, a bounded number of blocks read, whatever the chain's length.

        A chain with a consensus config resumes from the beacon-state snapshot stored with its
        tip.  Without a usable one (a database from before snapshots, or a corrupt one) the chain
        is replayed once, off the event loop, and the snapshot written.
        """
        head = await self.store.load_chain_head(chain_id)
        state: ChainState | None = None
        if head.consensus is None:
            state = ChainState.resume(
                head.params, chain_id, head.genesis, head.tip_height, head.recent, head.accounts, head.param_changes
            )
        elif head.snapshot is not None and head.snapshot[0] == head.tip_height:
            try:
                beacon = decode_beacon_state(
                    head.snapshot[1], [head.consensus, *(config for _, config in head.consensus_changes)]
                )
            except SnapshotError as exc:
                log.warning("chain %d: the beacon snapshot of block %d is unusable (%s); replaying",
                            chain_id, head.tip_height, exc)
            else:
                state = ChainState.resume(
                    head.params, chain_id, head.genesis, head.tip_height, head.recent, head.accounts,
                    head.param_changes, head.consensus, head.consensus_changes, beacon,
                )
        else:
            log.info("chain %d has no beacon snapshot of its tip (block %d); replaying it once",
                     chain_id, head.tip_height)
        if state is None:
            state = await self._replay_stored(head)
        if state.tip_hash != head.tip_block.hash():
            raise ChainError(f"chain {chain_id}: the stored tip block does not match the headers read with it")
        state.reserve_history(head.proposed_params)
        faucet = await self._genesis_faucet(chain_id, state.consensus)
        mempool = Mempool(head.params, chain_id, unlimited_senders=_unlimited(faucet))
        dropped = mempool.restore(head.mempool, state.ledger)
        if dropped:
            await self.store.mempool.remove(chain_id, [e.txid for e in dropped])
        next_arrival = max((e.arrival for e in head.mempool), default=0) + 1
        tree = await self._load_tree(chain_id, head.genesis, head.tip_height)
        if state.tip_hash not in tree:
            raise ChainError(f"chain {chain_id}: the stored tip is not in its block tree")
        runtime = ChainRuntime(
            state, mempool, next_arrival, head.proposed_params, tip_block=head.tip_block,
            proposed_consensus=head.proposed_consensus, last_activity=self.now(), faucet=faucet,
            tree=tree, genesis=head.genesis,
        )
        runtime.beacon_states.keep(state.tip_hash, state.beacon)
        runtime.blocks_mined.update(head.blocks_mined)
        runtime.op_pool.restore(head.operations)
        await self._prune_dead_operations(chain_id, runtime)
        self._chains[chain_id] = runtime
        self._offline.pop(chain_id, None)
        log.info("loaded chain %d at height %d with %d pending transfers", chain_id, state.height, len(mempool))
        return runtime

    async def _load_tree(self, chain_id: int, genesis: Block, tip_height: int) -> BlockTree:
        """The recent part of the chain's block tree from its ``block_tree`` rows, added in first-seen
        order (so ties go the same way after a restart).

        Only blocks from ``TREE_KEPT_BELOW_TIP_BLOCKS`` below the tip up are read: no branch may fork
        deeper (``MAX_BRANCH_DEPTH_BLOCKS``), so older side blocks can never be extended or switched
        to, and startup reads and holds a few hundred entries, not one per block of the chain. The
        tree is rooted at the main-chain block there, with its stored cumulative work; a side block
        whose branch leaves the main chain below the root is not loaded (the store keeps it).
        """
        root_height = max(0, tip_height - TREE_KEPT_BELOW_TIP_BLOCKS)
        if root_height == 0:
            entries = await self.store.tree.entries(chain_id)
            tree = _genesis_tree(genesis)
        else:
            root_hash = (await self.store.blocks.block_hashes(chain_id, [root_height])).get(root_height)
            entries = [] if root_hash is None else await self.store.tree.entries(chain_id, root=root_hash)
            root = entries[0] if entries else None
            if root is None or root.block_hash != root_hash or not root.on_main_chain:
                raise ChainError(f"chain {chain_id}: no main-chain block {root_height} in its block tree")
            tree = BlockTree(
                root.block_hash, root.work, root.parent_hash, height=root_height, chain_work=root.chain_work
            )
        for entry in entries:
            if entry.block_hash not in tree and entry.parent_hash in tree:
                tree.add_block(entry.block_hash, entry.parent_hash, entry.height, entry.work)
        return tree

    async def _replay_stored(self, head: StoredChainHead) -> ChainState:
        """Process every stored block again (batches read here, processed in a thread), then store
        the beacon snapshot of the tip so that the next start needs no replay."""
        chain_id = head.chain_id
        state = ChainState(head.params, chain_id, head.genesis, head.consensus)
        changes = dict(head.param_changes)
        schedules = dict(head.consensus_changes)
        state.reserve_history(head.proposed_params, *changes.values())
        # Block times are judged against the latest one, as when the newest block arrived.
        now = await self.store.blocks.latest_block_time(chain_id)
        for start in range(1, head.tip_height + 1, REPLAY_BATCH_BLOCKS):
            stop = min(start + REPLAY_BATCH_BLOCKS, head.tip_height + 1)
            blocks = [b async for b in self.store.blocks.iter_blocks(chain_id, start, stop)]
            await asyncio.to_thread(_replay_blocks, state, blocks, now, changes, schedules)
        stored = {k: v for k, v in head.accounts.items() if v.balance or v.nonce}
        if {k: v for k, v in state.ledger.items() if v.balance or v.nonce} != stored:
            log.warning("chain %d: stored balances differ from the replayed ones; using the replay", chain_id)
        if state.beacon is not None:
            blob = await asyncio.to_thread(encode_beacon_state, state.beacon)
            await self.store.replace_beacon_snapshot(chain_id, state.height, blob)
        return state

    def offline_reason(self, chain_id: int) -> str | None:
        """Why a stored chain could not be loaded at startup, or None if it is not offline."""
        return self._offline.get(chain_id)

    def offline_chain_ids(self) -> list[int]:
        return sorted(self._offline)

    def has_chain(self, chain_id: int) -> bool:
        return chain_id in self._chains

    def require_owned(self, chain_id: int) -> None:
        """Raise ``ChainNotOwnedError`` if another node serves this chain."""
        if not self.owns(chain_id):
            raise ChainNotOwnedError(chain_id)

    def require_online(self, chain_id: int) -> None:
        """Raise ``ChainOfflineError`` (saying why and what to do) if the chain failed to load."""
        reason = self._offline.get(chain_id)
        if reason is not None:
            raise ChainOfflineError(chain_id, reason)

    def chain(self, chain_id: int) -> ChainRuntime:
        try:
            return self._chains[chain_id]
        except KeyError:
            self.require_online(chain_id)
            raise ChainNotFoundError(f"there is no chain {chain_id} yet") from None

    def chain_ids(self) -> list[int]:
        return sorted(self._chains)

    @asynccontextmanager
    async def locked(self, chain_id: int) -> AsyncIterator[ChainRuntime]:
        """The chain's runtime under its lock: every check-then-act on a chain happens in here.

        Nonces, pending deposits, the mempool, the op pool and the tip change only
        under this lock.  A reset replaces the runtime while holding the old one's
        lock; a caller that was waiting for it then takes the new chain's lock.
        """
        while True:
            runtime = self.chain(chain_id)
            async with runtime.lock:
                if self._chains.get(chain_id) is runtime:
                    yield runtime
                    return

    async def create_chain(
        self,
        chain_id: int,
        params: ChainParams,
        *,
        initial_bits: int | None = None,
        consensus: ConsensusConfig | None = None,
    ) -> ChainState:
        """Create a chain whose first blocks arrive near the target spacing on this machine.

        With a ``consensus`` config the chain can stake (and merge, or run pos or
        hybrid); without one it is the plain proof-of-work chain of old.
        """
        self.require_owned(chain_id)
        if consensus is not None and consensus.mode is Mode.POS:
            initial_bits = 0
        if initial_bits is None:
            if self.hashing_core is None:
                raise ValueError("initial_bits is required when no hashing core is attached")
            rate = await self.hashing_core.measure_rate()
            initial_bits = compute_calibrated_bits(rate, params)
            log.info("chain %d calibrated to bits %#010x from %d hashes/s", chain_id, initial_bits, rate)
        consensus = await self._fund_faucet(chain_id, consensus)
        genesis = make_genesis_block(params, chain_id, self.now(), initial_bits, consensus)
        initial = ChainState(params, chain_id, genesis, consensus)
        allocations = dict(initial.ledger.items())
        snapshot = None if initial.beacon is None else encode_beacon_state(initial.beacon)
        await self.store.create_chain(
            chain_id, params, genesis, self.now(), consensus=consensus, accounts=allocations,
            beacon_snapshot=snapshot,
        )
        state = (await self._load_chain(chain_id)).state
        if self.hashing_core is not None:
            self.hashing_core.notify_tip(chain_id, state.tip_hash)
        return state

    async def delete_chain(self, chain_id: int) -> None:
        self.require_owned(chain_id)
        await self.store.delete_chain(chain_id)
        self._chains.pop(chain_id, None)
        self._offline.pop(chain_id, None)
        # Only now: sessions that end see the chain gone, not a moved tip.
        if self.hashing_core is not None:
            self.hashing_core.notify_tip(chain_id, b"deleted", started_over=True)

    async def replace_chain(
        self,
        chain_id: int,
        params: ChainParams,
        *,
        initial_bits: int,
        consensus: ConsensusConfig | None = None,
        validator_keys: tuple[StoredValidatorKey, ...] = (),
        auto_attest: tuple[str, ...] = (),
        keep_rules: bool = False,
    ) -> ChainState:
        """Start a chain over (a reset or a mode switch) as one atomic step.

        ``keep_rules``: the new chain keeps the changeable rules in force on the old one
        (``compute_kept_params`` over ``params``), read under the old chain's lock so a rule change
        landing meanwhile is not lost; ``initial_bits`` (calibrated for ``params``) is rescaled to
        the kept block time the way a block time change rescales it (``compute_rescaled_bits``).
        A chain that failed to load has no rules to keep: it starts with ``params``.

        The old chain's lock is held throughout, the store swaps old for new in one
        transaction, and the new runtime replaces the old one without an await in
        between: no command can see the chain missing, create a default chain in
        the gap, or land a block or payment on the old chain meanwhile.  Commands
        waiting for the old chain's lock go on with the new chain.
        """
        self.require_owned(chain_id)
        async with contextlib.AsyncExitStack() as stack:
            if chain_id in self._chains:
                await stack.enter_async_context(self.locked(chain_id))
            # else: a chain that failed to load (offline) has no runtime to lock, and no command
            # can act on it (they are refused until this returns).
            if keep_rules and chain_id in self._chains:
                kept = compute_kept_params(params, self._chains[chain_id].state.params)
                initial_bits = compute_rescaled_bits(initial_bits, params.target_spacing_s, kept.target_spacing_s, kept)
                params = kept
            consensus = await self._fund_faucet(chain_id, consensus)
            genesis = make_genesis_block(params, chain_id, self.now(), initial_bits, consensus)
            state = ChainState(params, chain_id, genesis, consensus)
            faucet = await self._genesis_faucet(chain_id, consensus)
            await self.store.replace_chain(
                chain_id, params, genesis, self.now(), consensus=consensus,
                accounts=dict(state.ledger.items()), validator_keys=validator_keys, auto_attest=auto_attest,
            )
            self._chains[chain_id] = ChainRuntime(
                state, Mempool(params, chain_id, unlimited_senders=_unlimited(faucet)), 1,
                tip_block=genesis, last_activity=self.now(), faucet=faucet,
                tree=_genesis_tree(genesis), genesis=genesis,
            )
            self._chains[chain_id].beacon_states.keep(genesis.hash(), state.beacon)
            self._offline.pop(chain_id, None)
        # The old chain's sessions end as stale; the cog tells a reset from a lost race by the genesis.
        if self.hashing_core is not None:
            self.hashing_core.notify_tip(chain_id, state.tip_hash, started_over=True)
        log.info("chain %d started over (%s)", chain_id, Mode.POW if consensus is None else consensus.mode)
        return state

    # --- pausing ----------------------------------------------------------------
    # A chain whose server the bot left (or that is gone) keeps all its data but makes no
    # blocks: the slot driver asks ``is_paused`` first.  The set lives in memory: the bot
    # rebuilds it from the guild list it gets at every connection.

    def pause(self, chain_id: int) -> bool:
        """Stop making blocks for this chain; True if it was running."""
        if chain_id in self._paused:
            return False
        self._paused.add(chain_id)
        log.info("chain %d paused", chain_id)
        return True

    def resume(self, chain_id: int) -> bool:
        """Make blocks for this chain again; True if it was paused."""
        if chain_id not in self._paused:
            return False
        self._paused.discard(chain_id)
        log.info("chain %d resumed", chain_id)
        return True

    def is_paused(self, chain_id: int) -> bool:
        return chain_id in self._paused

    def paused_chain_ids(self) -> list[int]:
        return sorted(self._paused)

    # --- wallets ----------------------------------------------------------------

    async def wallet(self, chain_id: int, owner: str) -> SigningKey:
        """The owner's key on this chain, created (and sealed at rest) on first use."""
        return await self.wallet_keys.wallet(chain_id, owner)

    async def address(self, chain_id: int, owner: str) -> bytes:
        """The owner's public key; remembered, since almost every command needs it."""
        return await self.wallet_keys.address(chain_id, owner)

    async def owners(self, chain_id: int) -> dict[bytes, str]:
        """Public key -> owner of every wallet on this chain (a live view: do not mutate)."""
        return await self.wallet_keys.owners(chain_id)

    def note_activity(self, chain_id: int) -> None:
        """A member acted on the chain (a vote, a deposit...): it is not idle (chain/adapters/budget.py)."""
        self.chain(chain_id).last_activity = self.now()

    def account(self, chain_id: int, pubkey: bytes) -> Account:
        return self.chain(chain_id).state.ledger.get(pubkey, Account())

    # --- transfers ---------------------------------------------------------------

    async def submit_transfer(self, chain_id: int, tx: Transfer) -> Admission:
        """Admit a transfer signed elsewhere; it may replace a pending one as a fee bump."""
        async with self.locked(chain_id) as runtime:
            return await self._admit(chain_id, runtime, tx)

    async def _admit(
        self, chain_id: int, runtime: ChainRuntime, tx: Transfer, *, replace: bool = True, evict: bool = True
    ) -> Admission:
        """Check, persist, then apply one admission; the caller holds the chain's lock."""
        admission = runtime.mempool.check_admission(
            tx, runtime.state.ledger, runtime.next_arrival, replace=replace, evict=evict
        )
        await self.store.mempool.admit(chain_id, admission)
        runtime.mempool.commit(admission)
        runtime.next_arrival += 1
        runtime.pool_version += 1
        return admission

    async def pay(self, chain_id: int, owner: str, recipient: bytes, amount: int, fee: int = 0) -> Admission:
        """Sign a transfer with the owner's custodied key and queue it.

        The nonce is chosen, the transfer signed and admitted under the chain's
        lock, so payments fired at the same moment get consecutive nonces.  A
        payment the bot builds never replaces or evicts another pending one:
        each was acknowledged to a member.
        """
        key = await self.wallet(chain_id, owner)
        async with self.locked(chain_id) as runtime:
            self._check_no_pending_deposit(runtime, key.public_key)
            nonce = runtime.mempool.next_nonce(key.public_key, runtime.state.ledger)
            tx = make_transfer(key, recipient, amount, fee, nonce, chain_id)
            admission = await self._admit(chain_id, runtime, tx, replace=False, evict=False)
            runtime.last_activity = self.now()
            return admission

    # --- faucet --------------------------------------------------------------------
    # Points do not come from nowhere: the faucet is a wallet the genesis block allocates
    # ``faucet_fund_points`` to (committed with the consensus config, so a replay counts them as
    # issued), and a claim is an ordinary signed transfer from it. Supply checks, ``verify`` and
    # offline replays hold as for any payment.

    async def _fund_faucet(self, chain_id: int, consensus: ConsensusConfig | None) -> ConsensusConfig | None:
        """``consensus`` with this node's faucet allocation (in place of any other allocation to
        the faucet wallet: a pos switch funds every wallet, and the faucet's is one of them)."""
        if consensus is None or self.faucet_fund_points <= 0:
            return consensus
        faucet = await self.address(chain_id, FAUCET_OWNER)
        allocations = tuple(a for a in consensus.genesis_allocations if a.address != faucet)
        return consensus.evolve(
            genesis_allocations=(*allocations, GenesisAllocation(faucet, self.faucet_fund_points))
        )

    async def _genesis_faucet(self, chain_id: int, consensus: ConsensusConfig | None) -> bytes | None:
        """The faucet wallet if this chain's genesis funded it (read, never created here)."""
        if consensus is None:
            return None
        stored = await self.wallet_keys.stored(chain_id, FAUCET_OWNER)
        if stored is None or not any(a.address == stored.pubkey for a in consensus.genesis_allocations):
            return None
        return stored.pubkey

    def faucet_address(self, chain_id: int) -> bytes | None:
        """The chain's faucet wallet, or None if it was created without one."""
        return self.chain(chain_id).faucet

    async def faucet(self, chain_id: int, owner: str, amount: int, *, cooldown_s: int) -> FaucetClaim:
        """Pay ``owner`` a starter allowance from the faucet: at most one claim per ``cooldown_s``.

        Under the chain's lock, the cooldown is read, the faucet's points left after its pending
        payouts checked, the transfer signed with the next nonce, and the claim recorded in the
        transaction that pools the transfer: claims at the same moment are served one after the
        other, and a refused claim writes nothing (no transfer, no cooldown).
        """
        if self.chain(chain_id).faucet is None:
            raise NoFaucetError(
                chain_id, "this server's chain was created before the faucet existed, so it holds no points to give"
            )
        key = await self.wallet(chain_id, FAUCET_OWNER)
        recipient = await self.address(chain_id, owner)
        async with self.locked(chain_id) as runtime:
            # A reset while we waited for the lock may have made a chain without one.
            if runtime.faucet != key.public_key:
                raise NoFaucetError(chain_id, "this server's chain has no faucet")
            now = self.now()
            claimed_at = await self.store.mempool.faucet_claimed_at(chain_id, owner)
            if claimed_at is not None and now < claimed_at + cooldown_s:
                raise FaucetCooldownError(
                    f"you claimed from the faucet {now - claimed_at} s ago; the next claim opens "
                    f"{claimed_at + cooldown_s - now} s from now",
                    claimed_at + cooldown_s,
                )
            ledger = runtime.state.ledger
            pending = runtime.mempool.pending_for(key.public_key)
            left = ledger.get(key.public_key, Account()).balance - sum(e.tx.amount + e.tx.fee for e in pending)
            if left < amount:
                raise FaucetEmptyError(max(left, 0), amount)
            tx = make_transfer(key, recipient, amount, 0, runtime.mempool.next_nonce(key.public_key, ledger), chain_id)
            admission = runtime.mempool.check_admission(tx, ledger, runtime.next_arrival, replace=False, evict=False)
            await self.store.mempool.admit(chain_id, admission, faucet_claim=(owner, now))
            runtime.mempool.commit(admission)
            runtime.next_arrival += 1
            runtime.pool_version += 1
            runtime.last_activity = now
            log.info("chain %d: faucet pays %d points to %s", chain_id, amount, owner)
            return FaucetClaim(admission, amount, now + cooldown_s, left - amount)

    async def faucet_reward(
        self, chain_id: int, owner: str, amount: int, record: RewardRecorder,
        *, earned: Callable[[ChainRuntime], Awaitable[bool]] | None = None,
    ) -> FaucetReward | None:
        """Pay ``owner`` a reward of ``amount`` points from the faucet, and have ``record`` write the
        caller's own row in the transaction that pools the transfer.

        ``earned``, when given, decides under the same lock whether the reward is due, on the runtime
        the payment will use: when it says no, nothing is recorded or paid and the result is None (so
        no reset or block lands between the check and the payment).

        Under the chain's lock and in one database transaction: ``record(tx, txid, paid)`` runs first
        and refuses by raising (then nothing is written: no transfer, no record), then the signed
        transfer is pooled; it lands in the next block like a claim. A reward is not a claim: it
        neither reads nor starts the member's claim cooldown. Without a faucet, or with too few points
        left in it, ``record`` still runs, with ``txid`` None and ``paid`` 0: the record is kept and
        no points move (``FaucetReward.reason`` says why).
        """
        has_faucet = self.chain(chain_id).faucet is not None
        key = await self.wallet(chain_id, FAUCET_OWNER) if has_faucet else None
        recipient = await self.address(chain_id, owner)
        async with self.locked(chain_id) as runtime:
            if earned is not None and not await earned(runtime):
                return None
            admission: Admission | None = None
            reason: str | None = None
            if key is None or runtime.faucet != key.public_key:
                reason = "no_faucet"
            elif amount > 0:
                ledger = runtime.state.ledger
                pending = runtime.mempool.pending_for(key.public_key)
                left = ledger.get(key.public_key, Account()).balance - sum(e.tx.amount + e.tx.fee for e in pending)
                if left < amount:
                    reason = "faucet_empty"
                else:
                    nonce = runtime.mempool.next_nonce(key.public_key, ledger)
                    tx = make_transfer(key, recipient, amount, 0, nonce, chain_id)
                    admission = runtime.mempool.check_admission(
                        tx, ledger, runtime.next_arrival, replace=False, evict=False
                    )
            async with self.store.db.transaction(chain_id) as t:
                await record(t, None if admission is None else admission.entry.txid, 0 if admission is None else amount)
                if admission is not None:
                    await self.store.mempool.admit(chain_id, admission, tx=t)
            if admission is None:
                return FaucetReward(None, 0, reason)
            runtime.mempool.commit(admission)
            runtime.next_arrival += 1
            runtime.pool_version += 1
            runtime.last_activity = self.now()
            log.info("chain %d: faucet rewards %s with %d points", chain_id, owner, amount)
            return FaucetReward(admission, amount, None)

    # --- blocks --------------------------------------------------------------------

    async def find_transactions(self, chain_id: int, prefix: str, limit: int) -> TransactionMatches:
        """Pending and confirmed transactions whose id, as shown (byte-reversed hex), starts with
        ``prefix`` (lowercase hex; empty: the newest ones).

        The mempool is read before the store: a block is committed to the store before its
        transfers leave the mempool, so a transfer confirming meanwhile is found in one of them.
        """
        runtime = self.chain(chain_id)
        pending = tuple(
            e for e in reversed(runtime.mempool.entries()) if e.txid[::-1].hex().startswith(prefix)
        )
        if prefix:
            count, confirmed = await self.store.blocks.find_transactions_by_txid_prefix(chain_id, prefix, limit)
        else:
            confirmed = await self.store.blocks.recent_transactions(chain_id, limit)
            count = len(confirmed)
        pending_ids = {e.txid for e in pending}
        fresh = [t for t in confirmed if bytes(t.txid) not in pending_ids]
        return TransactionMatches(pending, tuple(fresh), count - (len(confirmed) - len(fresh)))

    async def propose_params(self, chain_id: int, params: ChainParams) -> None:
        """Change the rules from the next block mined; that block commits to them on chain.

        Running mining sessions keep their templates: a block they find is
        valid under the old rules and the change waits for the next one.
        """
        async with self.locked(chain_id) as runtime:
            check_params_change(runtime.state.params, params)
            # A longer retarget window reads further back than the headers kept in memory: fetch
            # them now, before a block adopts it (under the lock: a block check may be reading them).
            state = runtime.state
            missing = state.history_shortfall(params)
            if missing:
                oldest = state.headers.oldest_kept
                state.prepend_history(await self.store.blocks.headers_between(chain_id, oldest - missing, oldest))
            state.reserve_history(params)
            await self.store.chains.set_proposed_params(chain_id, params)
            runtime.proposed_params = params

    def pending_params(self, chain_id: int) -> ChainParams | None:
        return self.chain(chain_id).proposed_params

    async def propose_consensus(self, chain_id: int, consensus: ConsensusConfig) -> None:
        """Schedule the Merge: the next proof-of-work block commits to ``consensus`` on chain.

        Checked as that block will check it: at its height and with its own work added,
        so a total difficulty the committing block itself would reach is refused now.
        """
        async with self.locked(chain_id) as runtime:
            check_merge_schedule(
                runtime.state, runtime.state.height + 1, consensus, compute_next_total_difficulty(runtime.state)
            )
            await self.store.chains.set_proposed_consensus(chain_id, consensus)
            runtime.proposed_consensus = consensus

    async def drop_stale_consensus_proposal(self, chain_id: int) -> None:
        """Withdraw a Merge schedule the next block could no longer commit to (the chain passed
        its height or total difficulty first): left in place it would make every template fail."""
        runtime = self.chain(chain_id)
        proposed = runtime.proposed_consensus
        if proposed is None:
            return
        try:
            check_merge_schedule(
                runtime.state, runtime.state.height + 1, proposed, compute_next_total_difficulty(runtime.state)
            )
        except ChainError as stale:
            log.warning("chain %d: the scheduled Merge can no longer be committed (%s); withdrawn", chain_id, stale)
            await self.store.chains.set_proposed_consensus(chain_id, None)
            runtime.proposed_consensus = None

    # --- operations (proof of stake) -------------------------------------------------

    async def add_operation(
        self, chain_id: int, operation: Operation, *, verify_ops: int = 0,
        validator_key: StoredValidatorKey | None = None,
    ) -> PooledOperation:
        """Queue a deposit, exit, vote or slashing evidence for the next block (durably);
        ``verify_ops`` signature checks it took are counted with it, and ``validator_key`` (the new
        key a first deposit is signed with) is stored in the same transaction."""
        runtime = self.chain(chain_id)
        entry = runtime.op_pool.prepare(operation)
        if entry.op_id in runtime.op_pool:
            return entry
        await self.store.add_operation(
            chain_id, entry, verify_ops=verify_ops, validator_key=validator_key, now=self.now()
        )
        runtime.op_pool.commit(entry)
        runtime.pool_version += 1
        return entry

    async def _prune_dead_operations(self, chain_id: int, runtime: ChainRuntime) -> None:
        """Drop pooled operations no block can take any more (stored by a version that never pruned)."""
        dead = runtime.op_pool.select_ids(
            lambda e: is_dead_operation(e.operation, runtime.state.beacon, runtime.state.ledger)
        )
        if dead:
            await self.store.operations.remove(chain_id, dead)
            runtime.op_pool.discard(dead)
            log.info("chain %d: dropped %d operation(s) no block can include any more", chain_id, len(dead))

    async def drop_operations(self, chain_id: int, op_ids: list[bytes]) -> None:
        if op_ids:
            await self.store.operations.remove(chain_id, op_ids)
            self.chain(chain_id).op_pool.discard(op_ids)

    def pending_deposits(self, chain_id: int, wallet: bytes) -> list[Deposit]:
        return [d for d in self.chain(chain_id).op_pool.pending(Deposit) if d.wallet == wallet]

    @staticmethod
    def _check_no_pending_deposit(runtime: ChainRuntime, wallet: bytes) -> None:
        """Deposits and transfers share the wallet's nonces; one kind waits for the other's block
        (called under the chain's lock)."""
        pending = [d for d in runtime.op_pool.pending(Deposit) if d.wallet == wallet]
        if pending:
            raise DepositPendingError(
                f"your deposit of {pending[0].amount} points is waiting for the next block; "
                "pay once it is included"
            )

    def template(self, chain_id: int, miner: bytes, message: bytes = b"") -> BlockTemplate:
        runtime = self.chain(chain_id)
        transfers = runtime.mempool.select(runtime.state.params.max_block_transfers)
        pool = runtime.op_pool.operations() if runtime.state.beacon is not None else None
        return build_template(
            runtime.state, miner, transfers, self.now(), message, runtime.proposed_params, pool,
            runtime.proposed_consensus,
        )

    def mining_job(self, chain_id: int, miner: bytes, *, max_nonce: int = 0xFFFFFFFF) -> TemplateJob:
        """Work for the hashing core on the chain's tip, refreshed while it is searched.

        A refresh dates the header now.  When the mempool or op pool changed, a new body
        (their current contents: payments sent while a session runs go into its block)
        is built in a thread under the chain's lock, since choosing a consensus chain's
        operations checks every pooled vote, and the job takes it at the next chunk.
        A session whose tip moved is about to end as stale; its template is left as it was.
        """
        runtime = self.chain(chain_id)
        template = self.template(chain_id, miner)
        seen = runtime.pool_version

        def refresh(previous: BlockTemplate) -> BlockTemplate:
            nonlocal seen
            if self._chains.get(chain_id) is not runtime or runtime.state.tip_hash != previous.header.prev_hash:
                return previous
            base = job.take_offer() or previous
            if runtime.pool_version != seen and (job.rebuilding is None or job.rebuilding.done()):
                seen = runtime.pool_version
                job.rebuilding = asyncio.get_running_loop().create_task(
                    self._rebuild_template(chain_id, runtime, miner, job), name=f"template-{chain_id}"
                )
            return base.with_time(compute_next_block_time(runtime.state, self.now()))

        target = compute_target(template.header.bits, runtime.state.params.pow_limit)
        job = TemplateJob(chain_id, template, target, refresh=refresh, clock=self.clock, max_nonce=max_nonce)
        return job

    async def _rebuild_template(self, chain_id: int, runtime: ChainRuntime, miner: bytes, job: TemplateJob) -> None:
        """A new body for a running session, from the pools as they are now (``mining_job``)."""
        try:
            async with self.locked(chain_id) as current:
                if current is not runtime or runtime.state.tip_hash != job.tip:
                    return
                transfers = runtime.mempool.select(runtime.state.params.max_block_transfers)
                pool = runtime.op_pool.operations() if runtime.state.beacon is not None else None
                # Writers hold this lock, so the state stays as it is while the thread reads it.
                template = await asyncio.to_thread(
                    build_template, runtime.state, miner, transfers, self.now(), b"", runtime.proposed_params,
                    pool, runtime.proposed_consensus,
                )
            job.offer(template)
        except ChainError as refusal:  # e.g. a Merge schedule the next block can no longer carry
            log.warning("chain %d: mining template not rebuilt: %s", chain_id, refusal)

    async def submit_block(self, chain_id: int, block: Block) -> BlockEffects:
        """Validate, persist (block, balances, events: one transaction), then apply.

        For callers that want the block on the main chain: a block that ends off it (it built on an
        older block, or its branch is not the best) is still kept as a side block by
        ``accept_block``, and then ``StaleBlockError`` says it did not extend the chain."""
        accepted = await self.accept_block(chain_id, block)
        if not accepted.on_main:
            raise StaleBlockError(
                f"block {hash_to_display(accepted.entry.block_hash)[:16]} builds on block "
                f"{accepted.entry.height - 1}, not on the tip; it is kept as a side block"
            )
        return accepted.effects

    async def accept_block(self, chain_id: int, block: Block) -> BlockAcceptance:
        """Any valid block whose parent is in the chain's tree (issue 11, item 1).

        A block on the main tip extends the main chain, as before. A block on any other block is
        checked against its own branch's state (``chain.adapters.branches.load_branch``) and kept as
        a side block, unless its branch now has more work than the main chain (a tie stays with the
        block seen first): then the main chain switches to it, a reorg done in ONE store transaction
        (``Store.reorganize``) with its events, and the transfers of the blocks taken off go back to
        the mempool when still valid or are announced as reversed. On a chain with a finalized
        checkpoint, a heavier branch that would take a finalized block off is refused, kept as a side
        block and announced (``ReorgRefusedByFinality``). A proof-of-stake chain's blocks are kept
        in the tree, but its head is moved by votes, not work (the slot driver's fork choice).

        Refuses ``DuplicateBlockError`` (already in the tree), ``UnknownParentError`` (a parent the
        chain has not kept), and every rule ``process_block`` checks, changing nothing.
        """
        async with self.locked(chain_id) as runtime:
            block_hash = block.hash()
            if block_hash in runtime.tree:
                raise DuplicateBlockError(
                    f"block {hash_to_display(block_hash)[:16]} is already in chain {chain_id}'s tree"
                )
            parent = block.header.prev_hash
            if parent == runtime.state.tip_hash:
                accepted = await self._extend_main(chain_id, runtime, block)
            elif parent not in runtime.tree:
                raise UnknownParentError(
                    f"block {hash_to_display(block_hash)[:16]} builds on {hash_to_display(parent)[:16]}, a block "
                    f"chain {chain_id} has not kept",
                    parent_hash=parent,
                )
            else:
                accepted = await self._accept_off_tip(chain_id, runtime, block)
        if accepted.on_main and self.hashing_core is not None:
            self.hashing_core.notify_tip(chain_id, runtime.state.tip_hash)
        if accepted.reorg is not None:
            log.info("chain %d: reorg of depth %d to block %d %s", chain_id, accepted.reorg.depth,
                     accepted.entry.height, block.header.hash_hex())
        elif accepted.on_main:
            log.info("chain %d: block %d %s", chain_id, accepted.entry.height, block.header.hash_hex())
        else:
            log.info("chain %d: side block %d %s", chain_id, accepted.entry.height, block.header.hash_hex())
        return accepted

    async def _extend_main(self, chain_id: int, runtime: ChainRuntime, block: Block) -> BlockAcceptance:
        """The block builds on the main tip: validate, persist in one transaction, then apply."""
        # In a thread: a proof-of-stake block checks every vote's signature, tens of ms the
        # event loop (and the Discord heartbeat on it) must not wait for. Nothing changes the
        # state meanwhile: writers hold the chain's lock.
        # The beacon snapshot is encoded there too (a 1,000-validator state is milliseconds).
        effects, snapshot = await asyncio.to_thread(
            _process_and_snapshot, runtime.state, block, self.now(), runtime.proposed_params,
            runtime.proposed_consensus,
        )
        after = LedgerView(effects.accounts, runtime.state.ledger)
        invalidated = runtime.mempool.invalidated_by(after)
        included = runtime.op_pool.included_by(block.operations) if block.operations is not None else []
        # Operations this block made impossible go in the same transaction, in every mode: a
        # deposit whose nonce a transfer used would otherwise hold the wallet for ever.
        beacon_after = effects.beacon if effects.beacon is not None else runtime.state.beacon
        taken = set(included)
        dead = runtime.op_pool.select_ids(
            lambda e: e.op_id not in taken and is_dead_operation(e.operation, beacon_after, after)
        )
        included = included + dead
        await self.store.append_block(
            chain_id, block, effects, [e.txid for e in invalidated], self.now(), included_operations=included,
            beacon_snapshot=snapshot,
        )
        runtime.state.apply(block, effects)
        entry = runtime.tree.add_block(
            effects.block_hash, block.header.prev_hash, effects.height, compute_stored_block_work(block.header.bits)
        )
        runtime.beacon_states.keep(effects.block_hash, effects.beacon)
        runtime.tip_block = block
        runtime.blocks_mined[block.coinbase.miner] += 1
        runtime.mined_since_load[block.coinbase.miner] += 1
        runtime.mempool.discard(invalidated)
        runtime.op_pool.discard(included)
        if effects.params_change is not None:
            runtime.proposed_params = None
        if effects.consensus_change is not None:
            runtime.proposed_consensus = None
        return BlockAcceptance(block, entry, effects, True, None, ())

    async def _accept_off_tip(self, chain_id: int, runtime: ChainRuntime, block: Block) -> BlockAcceptance:
        """A block on a block other than the main tip: a side block, or a reorg onto its branch."""
        now = self.now()
        tree, main_state = runtime.tree, runtime.state
        branch = await self._branch(chain_id, runtime, block.header.prev_hash)
        effects = await asyncio.to_thread(
            process_block, branch.state, block, now, runtime.proposed_params, runtime.proposed_consensus
        )
        undo = compute_block_undo(branch.state.ledger, effects, block.header.prev_hash)
        work = compute_stored_block_work(block.header.bits)
        entry = BlockEntry(effects.block_hash, branch.tip.block_hash, effects.height, work,
                           branch.tip.chain_work + work, len(tree))
        main_tip = tree.get(main_state.tip_hash)
        beacon = main_state.beacon
        finalized = None if beacon is None else beacon.finality.finalized_checkpoint.root
        # After the Merge the head follows votes (the slot driver's fork choice), not work.
        merged = beacon is not None and (beacon.merged or beacon.terminal is not None)
        heavier = entry.chain_work > main_tip.chain_work and not merged
        keeps_finality = finalized is None or finalized not in tree or finalized == entry.block_hash or (
            is_ancestor(tree, finalized, branch.tip.block_hash)
        )
        if heavier and keeps_finality:
            state = branch.state
            # ``apply`` moves the branch's state to the new block; the effects were computed on it.
            state.apply(block, effects)
            reorg, written = await self._reorganize(
                chain_id, runtime, branch, (*branch.connected, (block, effects)), entry, block, ()
            )
            return BlockAcceptance(block, runtime.tree.get(entry.block_hash), effects, True, reorg, written)
        previous_best = tree.best
        # The tree is append-only, so it takes the block before the store does (the refusal is
        # decided on the tree with the block in it); should the store refuse, the tree is read again
        # from the store, which the failed transaction left as it was.
        added = tree.add_block(entry.block_hash, entry.parent_hash, entry.height, work)
        try:
            events: tuple[ChainEvent, ...] = ()
            log_record = None
            if heavier and finalized is not None:
                events = compute_tree_refusal_events(tree, finalized, previous_best)
                refusal = next((e for e in events if isinstance(e, ReorgRefusedByFinality)), None)
                if refusal is not None:  # logged once, as announced: /learn's finality lesson reads it
                    log_record = ReorgRecord(
                        "refused", entry.height, refusal.depth,
                        branch=frozenset(b.coinbase.miner for b in (*(c for c, _ in branch.connected), block)),
                    )
            await self.store.store_side_block(chain_id, block, undo, events, now, log=log_record)
        except BaseException:
            runtime.tree = await self._load_tree(chain_id, runtime.genesis, runtime.state.height)
            raise
        runtime.beacon_states.keep(added.block_hash, effects.beacon)
        return BlockAcceptance(block, added, effects, False, None, events)

    async def switch_to(
        self, chain_id: int, block_hash: bytes, events: Sequence[ChainEvent] = ()
    ) -> Reorg:
        """Make the branch ending at ``block_hash`` (a side block already in the tree) the main chain:
        the same one-transaction reorg as ``accept_block``'s, for a head chosen by votes (proof of
        stake's LMD-GHOST), not by work. ``events`` (e.g. a branch finality refused) go in with it."""
        async with self.locked(chain_id) as runtime:
            tree = runtime.tree
            if block_hash == runtime.state.tip_hash:
                raise DuplicateBlockError(f"block {hash_to_display(block_hash)[:16]} is already the main tip")
            branch = await self._branch(chain_id, runtime, block_hash)
            if not branch.connected:
                raise DuplicateBlockError(
                    f"block {hash_to_display(block_hash)[:16]} is on the main chain already, below the tip"
                )
            tip_block, _ = branch.connected[-1]
            reorg, _ = await self._reorganize(
                chain_id, runtime, branch, branch.connected, tree.get(block_hash), tip_block, tuple(events), add=False
            )
        if self.hashing_core is not None:
            self.hashing_core.notify_tip(chain_id, block_hash)
        log.info("chain %d: head moved by votes to %s, %d block(s) taken off", chain_id,
                 hash_to_display(block_hash)[:16], reorg.depth)
        return reorg

    async def _reorganize(
        self,
        chain_id: int,
        runtime: ChainRuntime,
        branch: Branch,
        connect: tuple[tuple[Block, BlockEffects], ...],
        new_tip: BlockEntry,
        tip_block: Block,
        extra_events: tuple[ChainEvent, ...],
        *,
        add: bool = True,
    ) -> tuple[Reorg, tuple[ChainEvent, ...]]:
        """Switch the main chain to ``branch`` extended by ``connect`` (``branch.state`` is already at
        ``new_tip``): one store transaction, then memory. ``add``: ``new_tip`` is a new block the tree
        takes once the store has committed it. Returns the reorg and the events written."""
        tree = runtime.tree
        state = branch.state
        main_tip = tree.get(runtime.state.tip_hash)
        reorg = Reorg(
            old_tip=main_tip,
            new_tip=new_tip,
            fork_point=branch.fork,
            disconnect=tuple(tree.get(b.hash()) for b in branch.disconnected),
            connect=(*(tree.get(b.hash()) for b, _ in branch.connected), *((new_tip,) if add else ())),
        )
        pooled = runtime.mempool.entries()
        # In a thread: every returned and pooled transfer's signature is checked again (up to a few
        # thousand over a deep reorg). Writers hold the chain's lock, so nothing changes meanwhile.
        mempool, kept_returned, dropped = await asyncio.to_thread(
            _mempool_after_reorg, branch.disconnected, connect, state, pooled, runtime.next_arrival,
            _unlimited(runtime.faucet),
        )
        removed = [e.txid for e in pooled if e.txid not in mempool]
        merged = state.beacon is not None and (state.beacon.merged or state.beacon.terminal is not None)
        events = (*extra_events, *compute_reorg_events(
            reorg, branch.disconnected, [e.tx for e in kept_returned], dropped, proof_of_stake=merged,
        ))
        included: list[bytes] = []
        for connected, _ in connect:
            if connected.operations is not None:
                included += runtime.op_pool.included_by(connected.operations)
        snapshot = None if state.beacon is None else await asyncio.to_thread(encode_beacon_state, state.beacon)
        # Who took part, logged with the reorg (/learn's reorg lesson reads it): a switch by work or by votes.
        log_record = ReorgRecord(
            "reorg", new_tip.height, reorg.depth,
            orphaned=frozenset(b.coinbase.miner for b in branch.disconnected),
            branch=frozenset(b.coinbase.miner for b, _ in connect),
        )
        await self.store.reorganize(
            chain_id, [b.hash() for b in branch.disconnected], connect, events, self.now(),
            removed_from_mempool=removed, returned_to_mempool=kept_returned, included_operations=included,
            beacon_snapshot=snapshot, log=log_record,
        )
        if add:
            tree.add_block(new_tip.block_hash, new_tip.parent_hash, new_tip.height, new_tip.work)
        for _, connected_effects in connect:
            runtime.beacon_states.keep(connected_effects.block_hash, connected_effects.beacon)
        state.reserve_history(runtime.proposed_params)
        runtime.state = state
        runtime.tip_block = tip_block
        runtime.mempool = mempool
        for gone in branch.disconnected:
            runtime.blocks_mined[gone.coinbase.miner] -= 1
            # A block joined before the load was never counted here (a reorg deeper than the load).
            if runtime.mined_since_load[gone.coinbase.miner] > 0:
                runtime.mined_since_load[gone.coinbase.miner] -= 1
        for connected, _ in connect:
            runtime.blocks_mined[connected.coinbase.miner] += 1
            runtime.mined_since_load[connected.coinbase.miner] += 1
        runtime.blocks_mined += Counter()  # drop miners left with no block
        runtime.mined_since_load += Counter()
        runtime.op_pool.discard(included)
        if any(e.params_change is not None for _, e in connect):
            runtime.proposed_params = None
        if any(e.consensus_change is not None for _, e in connect):
            runtime.proposed_consensus = None
        runtime.pool_version += 1
        return reorg, events

    async def check_branch_base(self, chain_id: int, parent_hash: bytes, max_depth: int) -> BlockEntry:
        """Refuse, before any hashing, a block that ``mine(parent_hash=...)`` could not build on; the
        point where its branch leaves the main chain (the block itself when it is on the main chain).

        ``UnknownParentError``: not in the tree; ``BranchTooDeepError``: the branch would leave the main
        chain more than ``max_depth`` blocks below the tip; ``BranchStateUnavailableError``: its beacon
        state is no longer kept; ``UndoRecordMissingError``: a main-chain block above the fork has no
        undo record (``load_branch``'s checks, read without rebuilding the branch's state)."""
        runtime = self.chain(chain_id)
        tree, state = runtime.tree, runtime.state
        if parent_hash not in tree:
            raise UnknownParentError(
                f"chain {chain_id} has no block {hash_to_display(parent_hash)[:16]} to build on",
                parent_hash=parent_hash,
            )
        fork = compute_fork_point(tree, parent_hash, state.tip_hash)
        if fork.block_hash == state.tip_hash:
            return fork
        if state.height - fork.height > max_depth:
            raise BranchTooDeepError(
                f"a branch from there would leave the main chain at block {fork.height}, "
                f"{state.height - fork.height} blocks below the tip (block {state.height}); a branch may leave it "
                f"at most {max_depth} blocks below",
                depth=state.height - fork.height, limit=max_depth,
            )
        if state.beacon is not None and runtime.beacon_states.get(fork.block_hash) is None:
            raise BranchStateUnavailableError(
                f"the beacon state of block {fork.height}, where this branch leaves the main chain, is no longer kept"
            )
        for height in range(state.height, fork.height, -1):
            main_block = get_ancestor_at_height(tree, state.tip_hash, height)
            undo = await self.store.tree.undo_record(chain_id, main_block.block_hash)
            if undo is None:
                raise UndoRecordMissingError(
                    f"block {height} was stored before undo records were kept: no branch can fork below it",
                    height=height,
                )
            if undo.consensus_change_digest is not None:
                raise BranchStateUnavailableError(
                    f"main-chain block {height} committed a Merge schedule; a branch forking below it cannot be checked"
                )
        return fork

    def tree(self, chain_id: int) -> BlockTree:
        """The chain's block tree (read it only: the node adds to it under the chain's lock)."""
        return self.chain(chain_id).tree

    async def branch_state(self, chain_id: int, block_hash: bytes, private: Sequence[Block] = ()) -> ChainState:
        """The state with ``block_hash`` (any block of the tree) as its tip: a fresh object, for
        building a block on that branch (``UnknownParentError`` for a block not in the tree).
        ``private``: withheld blocks on top of it (as ``branch_template`` takes them), applied too."""
        async with self.locked(chain_id) as runtime:
            branch = await self._branch(chain_id, runtime, block_hash)
            if private:
                self._check_withheld_depth(branch, private)
                await asyncio.to_thread(_process_withheld, branch.state, private, self.now())
            return branch.state

    async def _branch(self, chain_id: int, runtime: ChainRuntime, block_hash: bytes) -> Branch:
        """The branch ending at ``block_hash``, or ``UnknownParentError`` for a block not in the tree
        (the caller holds the chain's lock)."""
        if block_hash not in runtime.tree:
            raise UnknownParentError(
                f"chain {chain_id} has no block {hash_to_display(block_hash)[:16]} to build on",
                parent_hash=block_hash,
            )
        return await load_branch(
            self.store, chain_id, runtime.state, runtime.tree, runtime.beacon_states, runtime.genesis,
            block_hash, self.now(),
        )

    @staticmethod
    def _check_withheld_depth(branch: Branch, private: Sequence[Block]) -> None:
        """A withheld branch is replayed under the chain's lock: bounded as a branch of the tree is
        (``load_branch``)."""
        above = branch.tip.height - branch.fork.height + len(private)
        if above > MAX_BRANCH_DEPTH_BLOCKS:
            raise BranchTooDeepError(
                f"a withheld branch of {len(private)} block(s) on block {branch.tip.height} runs {above} "
                f"blocks above the main chain: branches are checked up to {MAX_BRANCH_DEPTH_BLOCKS} deep",
                depth=above, limit=MAX_BRANCH_DEPTH_BLOCKS,
            )

    async def branch_template(
        self,
        chain_id: int,
        parent_hash: bytes,
        miner: bytes,
        transfers: Sequence[Transfer] | None = None,
        message: bytes = b"",
        private: Sequence[Block] = (),
        operations: Operations | None = None,
    ) -> BlockTemplate:
        """A block template on any block of the chain's tree, built on that branch's state.

        ``transfers``: exactly these (each must be valid on the branch, in order); None takes the
        mempool's when ``parent_hash`` is the main tip and none otherwise (the mempool was checked
        against the main chain, not the branch). ``UnknownParentError`` for a block not in the tree.
        ``private``: a withheld branch on top of ``parent_hash`` (blocks the tree has not seen, oldest
        first: a network split's side, a private pool), processed on a fresh copy of the branch's
        state; the template builds on its last block. A block that does not follow is refused as
        ``process_block`` refuses it.
        ``operations``: the pool the template takes its operations from instead of the node's op pool
        (a hybrid split's side: the votes its validators signed on that branch, even for its first
        block on the main tip), keeping what is valid on the branch's state (``select_operations``).
        Without it, a block on the main tip takes the op pool and one on any other block none.
        """
        async with self.locked(chain_id) as runtime:
            if parent_hash == runtime.state.tip_hash and not private:
                chosen = runtime.mempool.select(runtime.state.params.max_block_transfers) if transfers is None else (
                    list(transfers)
                )
                pool = None
                if runtime.state.beacon is not None:
                    pool = runtime.op_pool.operations() if operations is None else operations
                return await asyncio.to_thread(
                    build_template, runtime.state, miner, chosen, self.now(), message, runtime.proposed_params, pool,
                    runtime.proposed_consensus,
                )
            branch = await self._branch(chain_id, runtime, parent_hash)
            if private:
                self._check_withheld_depth(branch, private)
                await asyncio.to_thread(_process_withheld, branch.state, private, self.now())
            # A side branch's block carries no pooled votes or rule proposals: those were checked
            # against the main chain (a chain with a consensus config still gets its withdrawals).
            # Only the caller's own ``operations``, chosen on this branch's state, go in.
            pool = operations if branch.state.beacon is not None else None
            return await asyncio.to_thread(
                build_template, branch.state, miner, list(transfers or ()), self.now(), message, None, pool,
            )

    async def mine(
        self,
        chain_id: int,
        owner: str,
        *,
        on_progress: Callable[[Progress], None] | None = None,
        on_start: Callable[[MiningSession], None] | None = None,
        deadline_s: float | None = None,
        weight: float = 1,
        max_nonce: int = 0xFFFFFFFF,
        parent_hash: bytes | None = None,
        transfers: Sequence[Transfer] | None = None,
        publish: bool = True,
        private: Sequence[Block] = (),
        operations: Operations | None = None,
    ) -> MiningResult:
        """One mining session on the hashing core: found, stale, cancelled or timed out.

        ``on_start`` is called with the core's session as soon as it exists, before any chunk
        can return: the moment a caller that was told to stop while this method awaited can
        cancel it (on an easy chain the first chunk finds the block, before any progress report).

        A found block joins the chain's tree (``accept_block``); one found a moment too late ends
        STALE but is kept as a side block (``MiningResult.acceptance``). With ``parent_hash`` the
        session mines on that block of the tree (a private branch, one side of a network split) with
        ``transfers`` (see ``branch_template``), and a new main tip does not end it; with
        ``publish=False`` the solved block is returned unaccepted, for the caller to publish later;
        ``private`` (with ``parent_hash``): such withheld blocks on top of it, to mine on their tip;
        ``operations`` (with ``parent_hash``): the block's own pool instead of the op pool (``branch_template``).
        """
        if self.hashing_core is None:
            raise RuntimeError("this node has no hashing core")
        runtime = self.chain(chain_id)
        miner = await self.address(chain_id, owner)
        await self.drop_stale_consensus_proposal(chain_id)
        on_branch = parent_hash is not None and (parent_hash != runtime.state.tip_hash or bool(private))
        if parent_hash is None or (not on_branch and transfers is None):
            job = self.mining_job(chain_id, miner, max_nonce=max_nonce)
        else:
            template = await self.branch_template(
                chain_id, parent_hash, miner, transfers, private=private, operations=operations
            )
            params = runtime.state.params
            job = TemplateJob(
                chain_id, template, compute_target(template.header.bits, params.pow_limit), clock=self.clock,
                max_nonce=max_nonce, follows_tip=not on_branch,
            )
        session = self.hashing_core.start_session(
            job, weight=weight, on_progress=on_progress, key=(chain_id, owner), deadline=deadline_s
        )
        if on_start is not None:
            try:
                on_start(session)
            except BaseException:
                session.cancel()  # nobody would wait for it: it must not hash on until its deadline
                raise
        outcome = await session.wait()
        await self._record_pow_energy()
        if outcome.kind is not OutcomeKind.FOUND:
            return MiningResult(outcome, tip_height=runtime.state.height)
        if outcome.extra_nonce is None or outcome.nonce is None:
            raise HashingCoreError(f"the hashing core reported a found block without its nonces: {outcome!r}")
        block = job.template_for(outcome.extra_nonce).solve(outcome.extra_nonce, outcome.nonce)
        if not publish:
            return MiningResult(outcome, block, None, block.height)
        accepted = await self.accept_block(chain_id, block)
        if not accepted.on_main:  # kept as a side block: found, but not the chain's block
            return MiningResult(
                replace(outcome, kind=OutcomeKind.STALE), tip_height=runtime.state.height, acceptance=accepted
            )
        return MiningResult(outcome, block, accepted.effects, accepted.entry.height, accepted)

    async def _record_pow_energy(self) -> None:
        """Hand the hashing core's CPU time per chain to the store (for ``/chain energy``)."""
        if self.hashing_core is None:
            return
        for chain_id, cpu_ns in self.hashing_core.drain_cpu_ns().items():
            if cpu_ns > 0 and chain_id in self._chains:
                await self.store.energy.add(chain_id, pow_cpu_ns=cpu_ns)

    # --- reading ------------------------------------------------------------------

    async def verify(self, chain_id: int) -> VerifyReport:
        """Replay the stored chain from genesis and compare with the stored balances (``ChainReads``)."""
        self.chain(chain_id)
        return await self.reads.verify(chain_id, self.now())

    async def supply_history(self, chain_id: int) -> SupplyHistory:
        """The supply over height from a replay of the stored chain, off the event loop (``ChainReads``)."""
        return await self.reads.supply_history(chain_id, self.now(), self.chain(chain_id).state.height)

    async def export_to(self, chain_id: int, out: BinaryIO, *, limit: int | None = None) -> ExportSummary:
        """Stream the chain as compact JSON to ``out``, off the event loop (``ChainReads``)."""
        self.chain(chain_id)
        return await self.reads.export_to(chain_id, out, limit=limit)

    async def export(self, chain_id: int) -> dict[str, Any]:
        """The export as a document (for callers that want one in memory; ``export_to`` streams)."""
        self.chain(chain_id)
        return await self.reads.export(chain_id)
