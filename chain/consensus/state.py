"""One chain's consensus state: ``ChainState`` (the recent headers, the ledger and, with a
consensus config, the beacon state at its tip), the ``BlockEffects`` a valid block has, and the
checks and steps block processing shares (chain/consensus/transition.py's ``process_block`` and
chain/consensus/consensus_block.py's ``process_consensus_block``): parent, header, body, transfers,
coinbase, a parameter change, the next bits, and the events a block emits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from chain.consensus.block import Block
from chain.consensus.genesis import check_genesis_block
from chain.consensus.rule_changes import (
    CHANGEABLE_PARAMS,
    PARAMS_CHANGE_TAG,
    check_params_change,
    compute_params_commitment,
)
from chain.errors import (
    BadCoinbaseError,
    BadParentError,
    BlockTooLargeError,
    DuplicateTransactionError,
    MergeError,
    MerkleRootMismatchError,
    StaleBlockError,
    TimeTooNewError,
    TimeTooOldError,
)
from chain.events import (
    BlockMined,
    ChainEvent,
    DifficultyChanged,
    MergeScheduled,
    MilestoneReached,
    ParamsChanged,
    RewardPaid,
    compute_crossed_milestone,
)
from chain.hashing import hash_to_display
from chain.ledger.accounts import Account, Ledger, compute_subsidy_total, process_transfer
from chain.mode import Mode
from chain.params import MEDIAN_TIME_SPAN_BLOCKS, ChainParams
from chain.pos.beacon import BeaconState, ConsensusConfig, compute_total_supply_units, genesis_beacon_state
from chain.pos.rewards import UNITS_PER_POINT
from chain.pow.compact import compute_block_work, compute_target, decode_compact
from chain.pow.difficulty import (
    SpacingChange,
    check_expected_bits,
    check_proof_of_work,
    compute_expected_bits,
    compute_median_time_past,
    explain_retarget,
)
from chain.pow.header import BlockHeader
from chain.pow.window import RecentWindow


@dataclass(frozen=True, slots=True)
class BlockEffects:
    """Everything a valid block changes, ready for memory and for the store."""

    height: int
    block_hash: bytes
    accounts: dict[bytes, Account]
    subsidy: int
    fees: int
    events: tuple[ChainEvent, ...]
    signatures_checked: int
    # New rules this block commits to; they govern the blocks after it.
    params_change: ChainParams | None = None
    # Chains with a ConsensusConfig: the proof-of-stake state after this block.
    beacon: BeaconState | None = None
    # A Merge this block schedules (a new consensus config); it governs the blocks after it.
    consensus_change: ConsensusConfig | None = None


# Recent blocks a state keeps in memory at least (see ``compute_history_blocks``).
MIN_HISTORY_BLOCKS = 64


def compute_history_blocks(*params: ChainParams | None) -> int:
    """How many recent headers judging the next block needs under any of ``params``: a whole
    retarget window (``compute_expected_bits`` reads ``headers[height - window]``) and the
    11 blocks of the median time, with a margin for a stale block's parent (``check_parent``)."""
    windows = [p.retarget_window_blocks for p in params if p is not None]
    return max(MIN_HISTORY_BLOCKS, max(windows, default=0) + MEDIAN_TIME_SPAN_BLOCKS + 1)


def compute_minted_subsidies(
    genesis_params: ChainParams, param_changes: Sequence[tuple[int, ChainParams]], last_height: int
) -> int:
    """Points the block subsidies of heights 1..``last_height`` minted, segment by rule change:
    what summing ``compute_block_subsidy(h, params_at(h))`` over every block gives, without the blocks."""
    total = 0
    first, params = 1, genesis_params
    for committed_at, changed in sorted(param_changes, key=lambda change: change[0]):
        # A change committed at height c governs the blocks from c + 1 on.
        total += compute_subsidy_total(first, min(committed_at, last_height), params)
        first, params = max(first, committed_at + 1), changed
    return total + compute_subsidy_total(first, last_height, params)


class ChainState:
    """The recent headers of the main chain (a ``RecentWindow``: ``len`` is the whole chain's)
    plus the ledger and, with a consensus config, the beacon state at its tip."""

    def __init__(
        self, params: ChainParams, chain_id: int, genesis: Block, consensus: ConsensusConfig | None = None
    ) -> None:
        check_genesis_block(genesis, params, chain_id, consensus)
        self.genesis_params = params
        # (height of the committing block, params in force from the block after it)
        self.param_changes: list[tuple[int, ChainParams]] = []
        self.chain_id = chain_id
        self.genesis_hash = genesis.hash()
        capacity = compute_history_blocks(params)
        self.headers: RecentWindow[BlockHeader] = RecentWindow(genesis.header, capacity)
        self.hashes: RecentWindow[bytes] = RecentWindow(self.genesis_hash, capacity)
        # Heights of the blocks in the window (and of genesis): a stale block's parent is recent.
        self._height_of: dict[bytes, int] = {self.genesis_hash: 0}
        self.ledger = Ledger()
        self.consensus = consensus
        # (height of the committing block, consensus config in force after it): Merge schedules.
        self.consensus_changes: list[tuple[int, ConsensusConfig]] = []
        # The proof-of-stake state; None for a chain created without a consensus config.
        self.beacon: BeaconState | None = None
        if consensus is not None:
            work = 0
            if consensus.mode is not Mode.POS:
                work = compute_block_work(compute_target(genesis.header.bits, params.pow_limit))
            self.beacon = genesis_beacon_state(consensus, self.genesis_hash, genesis.header.time, work)
            allocations: dict[bytes, Account] = {}
            for allocation in consensus.genesis_allocations:
                before = allocations.get(allocation.address, Account())
                allocations[allocation.address] = Account(before.balance + allocation.amount_points, 0)
            self.ledger = Ledger(allocations, sum(a.amount_points for a in consensus.genesis_allocations))

    @classmethod
    def restore(
        cls,
        params: ChainParams,
        chain_id: int,
        blocks: Sequence[Block],
        accounts: dict[bytes, Account],
        param_changes: Sequence[tuple[int, ChainParams]] = (),
    ) -> ChainState:
        """Rebuild from stored blocks and balances without re-checking signatures.

        ``resume`` does the same from the recent headers alone; ``chain.consensus.verify`` is the full replay.
        """
        state = cls(params, chain_id, blocks[0])
        state.param_changes = sorted(param_changes, key=lambda change: change[0])
        state.reserve_history(*(p for _, p in state.param_changes))
        for block in blocks[1:]:
            state._append(block.header, block.hash(), block.height)
        state.ledger = Ledger(accounts, compute_minted_subsidies(params, state.param_changes, state.height))
        return state

    @classmethod
    def resume(
        cls,
        params: ChainParams,
        chain_id: int,
        genesis: Block,
        tip_height: int,
        recent: Sequence[tuple[BlockHeader, bytes]],
        accounts: Mapping[bytes, Account],
        param_changes: Sequence[tuple[int, ChainParams]] = (),
        consensus: ConsensusConfig | None = None,
        consensus_changes: Sequence[tuple[int, ConsensusConfig]] = (),
        beacon: BeaconState | None = None,
    ) -> ChainState:
        """The state at block ``tip_height`` from what the store keeps current, without a replay.

        ``recent`` is (header, hash) of the blocks just below and up to the tip, oldest first (at
        least ``compute_history_blocks`` of them, or all from block 1); ``accounts`` the stored
        balances after the tip; ``beacon`` the beacon state after the tip (chain/pos/snapshot.py), for a
        chain with a consensus config.  The points minted are recomputed from the rules alone.
        """
        state = cls(params, chain_id, genesis, consensus)
        state.param_changes = sorted(param_changes, key=lambda change: change[0])
        state.consensus_changes = sorted(consensus_changes, key=lambda change: change[0])
        start = tip_height - len(recent) + 1
        if tip_height > 0 and (not recent or start < 1):
            raise ValueError(f"recent blocks must end at the tip {tip_height} and start after genesis")
        capacity = compute_history_blocks(params, *(p for _, p in state.param_changes))
        state.headers = RecentWindow(genesis.header, capacity, (h for h, _ in recent), start)
        state.hashes = RecentWindow(state.genesis_hash, capacity, (block_hash for _, block_hash in recent), start)
        state._height_of.update((block_hash, start + i) for i, (_, block_hash) in enumerate(recent))
        if consensus is None:
            minted = compute_minted_subsidies(params, state.param_changes, tip_height)
        else:
            if beacon is None:
                raise MergeError("a chain with a consensus config resumes from its beacon state")
            # Blocks after the terminal proof-of-work block (every block of a pos chain) mint nothing.
            last_pow = beacon.terminal.height if beacon.terminal is not None else tip_height
            if consensus.mode is Mode.POS:
                last_pow = 0
            minted = state.ledger.minted + compute_minted_subsidies(params, state.param_changes, last_pow)
            state.beacon = beacon
        state.ledger = Ledger(accounts, minted)
        return state

    def reserve_history(self, *params: ChainParams | None) -> None:
        """Keep enough recent headers for the retarget windows of ``params`` too (rules that a
        block may adopt): a window grows only forward, so it must grow before it is needed."""
        capacity = compute_history_blocks(*params)
        self.headers.reserve(capacity)
        self.hashes.reserve(capacity)

    def history_shortfall(self, *params: ChainParams | None) -> int:
        """How many headers below the window ``reserve_history(*params)`` would still miss."""
        wanted = compute_history_blocks(*params)
        kept = len(self.headers) - self.headers.oldest_kept
        return max(0, min(wanted - kept, self.headers.oldest_kept - 1))

    def prepend_history(self, older: Sequence[tuple[BlockHeader, bytes]]) -> None:
        """Headers and hashes of the blocks just below the window, oldest first (read from the store)."""
        start = self.headers.oldest_kept - len(older)
        self.headers.prepend([h for h, _ in older])
        self.hashes.prepend([block_hash for _, block_hash in older])
        self._height_of.update((block_hash, start + i) for i, (_, block_hash) in enumerate(older))

    def total_supply_units(self) -> int:
        """Ledger balances plus validator balances, in nanopoints."""
        if self.beacon is None:
            return self.ledger.total_balance() * UNITS_PER_POINT
        return compute_total_supply_units(self.ledger.total_balance(), self.beacon)

    def issued_supply_units(self) -> int:
        """Everything minted (subsidies, allocations, genesis stake, rewards) minus everything burned."""
        issued = self.ledger.minted * UNITS_PER_POINT
        if self.beacon is not None:
            issued += self.beacon.minted_units - self.beacon.burned_units
        return issued

    def params_at(self, height: int) -> ChainParams:
        """The rules a block at ``height`` is judged by."""
        params = self.genesis_params
        for committed_at, changed in self.param_changes:
            if committed_at < height:
                params = changed
        return params

    def spacing_change_at(self, height: int) -> SpacingChange | None:
        """The latest change of target spacing that governs the block at ``height`` (committed
        below it), from the committed parameter changes; None if the spacing never changed."""
        previous = self.genesis_params.target_spacing_s
        latest = None
        for committed_at, changed in self.param_changes:
            if committed_at >= height:
                break
            if changed.target_spacing_s != previous:
                latest = SpacingChange(committed_at + 1, previous)
            previous = changed.target_spacing_s
        return latest

    @property
    def params(self) -> ChainParams:
        """The rules for the next block."""
        return self.params_at(len(self.headers))

    @property
    def height(self) -> int:
        return len(self.headers) - 1

    @property
    def tip_hash(self) -> bytes:
        return self.hashes[-1]

    @property
    def tip(self) -> BlockHeader:
        return self.headers[-1]

    def height_of(self, block_hash: bytes) -> int | None:
        """The height of a block in the recent window (or genesis); None for older or unknown blocks."""
        return self._height_of.get(block_hash)

    def _append(self, header: BlockHeader, block_hash: bytes, height: int) -> None:
        self.headers.append(header)
        for dropped in self.hashes.append(block_hash):
            self._height_of.pop(dropped, None)
        self._height_of[block_hash] = height

    def apply(self, block: Block, effects: BlockEffects) -> None:
        self._append(block.header, effects.block_hash, effects.height)
        self.ledger.apply(effects.accounts, effects.subsidy)
        if effects.beacon is not None:
            self.beacon = effects.beacon
        if effects.consensus_change is not None:
            self.consensus_changes.append((effects.height, effects.consensus_change))
        if effects.params_change is not None:
            self.param_changes.append((effects.height, effects.params_change))
            self.reserve_history(effects.params_change)

    def copy_for_branch(self) -> ChainState:
        """The state at this block for another branch to grow from: applying blocks to either one
        leaves the other as it was.

        Costs one copy of the accounts and of the recent headers (bounded), not of the chain: the
        beacon state is shared, as it is never changed in place (a block's effects replace it).
        """
        twin = object.__new__(ChainState)
        twin.genesis_params = self.genesis_params
        twin.param_changes = list(self.param_changes)
        twin.chain_id = self.chain_id
        twin.genesis_hash = self.genesis_hash
        twin.headers = self.headers.copy()
        twin.hashes = self.hashes.copy()
        twin._height_of = dict(self._height_of)
        twin.ledger = self.ledger.copy()
        twin.consensus = self.consensus
        twin.consensus_changes = list(self.consensus_changes)
        twin.beacon = self.beacon
        return twin


def check_parent(state: ChainState, header: BlockHeader) -> None:
    if header.prev_hash != state.tip_hash:
        parent_height = state.height_of(header.prev_hash)
        if parent_height is not None:
            raise StaleBlockError(
                f"block builds on height {parent_height}, but block {state.height} "
                f"({hash_to_display(state.tip_hash)[:16]}…) is already the tip"
            )
        raise BadParentError(f"parent {hash_to_display(header.prev_hash)} is not in this chain")


def process_header(state: ChainState, header: BlockHeader, now: int) -> None:
    """Contextual header checks, cheapest first; raises the first failure."""
    check_parent(state, header)
    check_expected_bits(header, state.headers, state.params, state.spacing_change_at(len(state.headers)))
    check_proof_of_work(header.hash(), header.bits, state.params)
    median = compute_median_time_past(state.headers)
    if header.time <= median:
        raise TimeTooOldError(
            f"block time {header.time} is not after the median {median} of the previous blocks"
        )
    latest = now + state.params.max_future_block_time_s
    if header.time > latest:
        raise TimeTooNewError(
            f"block time {header.time} is more than {state.params.max_future_block_time_s}s in the future "
            f"(now {now})"
        )


def process_transfers(
    state: ChainState, block: Block, view: Mapping[bytes, Account], changes: dict[bytes, Account]
) -> int:
    """Apply the block's transfers in order into ``changes`` (read through ``view``); returns their fees.

    A failing transfer's error gets a note naming it (index and txid)."""
    txids = block.txids()
    fees = 0
    for index, tx in enumerate(block.transfers):
        try:
            changes.update(process_transfer(view, tx, state.chain_id, state.params))
        except Exception as exc:
            exc.add_note(f"transfer {index} ({hash_to_display(txids[index + 1])[:16]}…)")
            raise
        fees += tx.fee
    return fees


def process_coinbase(
    block: Block,
    view: Mapping[bytes, Account],
    changes: dict[bytes, Account],
    subsidy: int,
    fees: int,
    is_pos: bool,
) -> None:
    """The coinbase pays exactly the subsidy plus the fees (fees only in a proof-of-stake block),
    credited to its recipient in ``changes``."""
    if block.coinbase.amount != subsidy + fees:
        what = "fees" if is_pos else f"subsidy {subsidy} plus fees"
        raise BadCoinbaseError(
            f"coinbase pays {block.coinbase.amount}, but {what} {fees} is {subsidy + fees}"
            + (" (a proof-of-stake block pays fees only; issuance comes from epoch rewards)" if is_pos else "")
        )
    miner = view.get(block.coinbase.miner, Account())
    changes[block.coinbase.miner] = Account(miner.balance + block.coinbase.amount, miner.nonce)


def count_block_signatures(block: Block) -> int:
    """Signatures checked for ``block``: one per transfer, exit and vote, two per deposit (wallet and
    validator key) and per piece of slashing evidence, and the proposer's seal."""
    signatures = len(block.transfers) + (1 if block.seal is not None else 0)
    if block.operations is not None:
        ops = block.operations
        signatures += 2 * len(ops.deposits) + len(ops.voluntary_exits) + len(ops.attestations)
        signatures += 2 * len(ops.attester_slashings) + 2 * len(ops.proposer_slashings)
    return signatures


def process_params_commitment(
    state: ChainState, block: Block, proposed: ChainParams | None
) -> ChainParams | None:
    """The rules a block adopts, if its coinbase commits to a change."""
    message = block.coinbase.message
    if not message.startswith(PARAMS_CHANGE_TAG):
        return None
    if proposed is None or message != compute_params_commitment(proposed):
        raise BadCoinbaseError("coinbase commits to a parameter change that was not proposed")
    check_params_change(state.params, proposed)
    return proposed


def describe_params_change(old: ChainParams, new: ChainParams) -> dict[str, tuple[int, int]]:
    return {name: (getattr(old, name), getattr(new, name)) for name in sorted(CHANGEABLE_PARAMS)
            if getattr(old, name) != getattr(new, name)}


def compute_block_events(
    state: ChainState,
    block: Block,
    block_hash: bytes,
    subsidy: int,
    fees: int,
    changes: dict[bytes, Account],
    sealed_by: tuple[int, int | None] | None = None,
) -> tuple[ChainEvent, ...]:
    """Block, reward, retarget (proof of work only) and milestone events; ``sealed_by`` is a
    proof-of-stake block's ``(slot, proposer index)``."""
    height = state.height + 1
    miner = block.coinbase.miner
    slot, proposer_index = sealed_by if sealed_by is not None else (None, None)
    events: list[ChainEvent] = [
        BlockMined(
            height=height, hash=block_hash, miner=miner, reward=block.coinbase.amount,
            transfers=len(block.transfers), time=block.header.time, bits=block.header.bits,
            slot=slot, proposer_index=proposer_index, proof_of_stake=sealed_by is not None,
        ),
        RewardPaid(height=height, miner=miner, subsidy=subsidy, fees=fees, proof_of_stake=block.seal is not None),
    ]
    if block.seal is None:
        events += compute_retarget_events(state, height)
    events += compute_milestone_events(state, changes, height)
    return tuple(events)


def compute_retarget_events(state: ChainState, height: int) -> tuple[ChainEvent, ...]:
    """DIFFICULTY_CHANGED when proof-of-work block ``height`` carries new bits, with the reason."""
    explanation = explain_retarget(state.headers, state.params, state.spacing_change_at(height))
    if explanation is None or explanation.new_bits == explanation.old_bits:
        return ()
    return (
        DifficultyChanged(
            height=height,
            old_bits=explanation.old_bits,
            new_bits=explanation.new_bits,
            actual_timespan_s=explanation.actual_timespan_s,
            target_timespan_s=explanation.target_timespan_s,
            sentence=explanation.sentence(),
        ),
    )


def compute_milestone_events(
    state: ChainState, changes: Mapping[bytes, Account], height: int
) -> tuple[ChainEvent, ...]:
    """MILESTONE_REACHED for each account whose balance crossed a milestone: before (the ledger)
    against after (``changes``)."""
    events: list[ChainEvent] = []
    for account, after in changes.items():
        before = state.ledger.get(account, Account()).balance
        milestone = compute_crossed_milestone(before, after.balance)
        if milestone is not None:
            events.append(
                MilestoneReached(height=height, account=account, milestone=milestone, balance=after.balance)
            )
    return tuple(events)


def compute_rule_change_events(
    height: int,
    params: ChainParams,
    params_change: ChainParams | None,
    consensus_change: ConsensusConfig | None = None,
    total_difficulty: int = 0,
) -> tuple[ChainEvent, ...]:
    """The rule changes block ``height`` commits to: new parameters, or a Merge schedule."""
    events: tuple[ChainEvent, ...] = ()
    if params_change is not None:
        events += (ParamsChanged(height=height, **describe_params_change(params, params_change)),)
    if consensus_change is not None:
        events += (
            MergeScheduled(
                height=height, merge_at_height=consensus_change.merge_at_height,
                merge_at_total_difficulty=consensus_change.merge_at_total_difficulty,
                total_difficulty=total_difficulty,
            ),
        )
    return events


def compute_next_bits(state: ChainState) -> int:
    """The bits the next proof-of-work block must carry (``compute_expected_bits`` with the chain's
    committed spacing changes): what templates use and what ``process_header`` checks."""
    return compute_expected_bits(state.headers, state.params, state.spacing_change_at(len(state.headers)))


def compute_difficulty(bits: int, params: ChainParams) -> int:
    """Difficulty relative to the chain's easiest target, as a whole number (>= 1)."""
    target = decode_compact(bits).value
    return max(1, params.pow_limit // max(1, target))


def check_block_body(state: ChainState, block: Block, height: int) -> None:
    """The body's shape: within the transfer limit, the coinbase at ``height``, no transaction or
    operation twice, and the merkle root of exactly these leaves."""
    params = state.params
    if len(block.transfers) > params.max_block_transfers:
        raise BlockTooLargeError(
            f"block has {len(block.transfers)} transfers; the limit is {params.max_block_transfers}"
        )
    if block.coinbase.height != height:
        raise BadCoinbaseError(f"coinbase says height {block.coinbase.height}, block is at {height}")
    leaves = block.leaf_ids()
    if len(set(leaves)) != len(leaves):
        raise DuplicateTransactionError("block contains the same transaction or operation twice")
    if block.compute_merkle_root() != block.header.merkle_root:
        raise MerkleRootMismatchError(
            f"merkle root {hash_to_display(block.header.merkle_root)} does not match the block's transactions"
        )
