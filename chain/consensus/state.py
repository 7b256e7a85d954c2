"""One chain's consensus state, and ``process_block``, the rule that extends it.

``process_block`` checks the header (parent, difficulty, proof of work, time)
and the body (coinbase, merkle root, every transfer) against the current tip,
and returns the block's effects without touching anything.  ``ChainState.apply``
then commits them in memory; the store commits the same effects to disk in one
transaction.

A chain created with a ``ConsensusConfig`` (chain/pos/beacon.py) also carries a
``BeaconState`` and is processed by ``process_consensus_block``: proof-of-work
blocks (version 1, or version 2 with operations) before the Merge, proof-of-stake
blocks after it (or from genesis in a pos chain), every epoch transition they
cross, and every operation.  ``build_template`` (proof of work) and
``build_pos_block`` (proof of stake) build blocks from the mempool's transfers
and an op pool; ``select_operations`` keeps the pool's valid operations and adds
exactly the expected withdrawals; ``admit_attestation`` is the op pool's check.
A chain without a consensus config is processed exactly as before.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, TypeVar

from chain.consensus.block import (
    BLOCK_VERSION,
    BLOCK_VERSION_OPERATIONS,
    Block,
    BlockTemplate,
    PosSeal,
)
from chain.errors import (
    BadCoinbaseError,
    BadParentError,
    BadProposerError,
    BlockTooLargeError,
    ChainError,
    DuplicateTransactionError,
    MergeError,
    MerkleRootMismatchError,
    OperationsError,
    ParamsError,
    SlotError,
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
from chain.hashing import ZERO_HASH, hash_to_display
from chain.keys import SigningKey
from chain.ledger.accounts import (
    Account,
    Ledger,
    LedgerView,
    compute_block_subsidy,
    compute_subsidy_total,
    process_transfer,
)
from chain.ledger.transaction import Coinbase, Transfer
from chain.mode import Mode
from chain.params import MEDIAN_TIME_SPAN_BLOCKS, ChainParams
from chain.pos.attestation import (
    AttestationData,
    Checkpoint,
    ProposalHeader,
    SignedAttestation,
    SignedProposalHeader,
    check_proposal_signature,
    sign_proposal_header,
)
from chain.pos.beacon import (
    BeaconState,
    ConsensusConfig,
    compute_epoch_at_slot,
    compute_slot_time,
    compute_total_supply_units,
    genesis_beacon_state,
    get_beacon_proposer_index,
    get_checkpoint_root,
    get_expected_withdrawals,
    is_merge_delayed,
    is_terminal_block,
    mark_terminal_block,
    process_attestation,
    process_attester_slashing,
    process_deposit,
    process_merge,
    process_merge_delay,
    process_proposer_slashing,
    process_slots,
    process_voluntary_exit,
    process_withdrawals,
    record_proposer,
)
from chain.pos.operations import (
    MAX_ATTESTATIONS,
    MAX_ATTESTER_SLASHINGS,
    MAX_DEPOSITS,
    MAX_PROPOSER_SLASHINGS,
    MAX_VOLUNTARY_EXITS,
    Deposit,
    Operations,
)
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

GENESIS_MINER = bytes(32)  # nobody: the genesis block mints nothing
GENESIS_TAG = b"consensus-playground genesis "
PARAMS_CHANGE_TAG = b"consensus-playground params "
MERGE_SCHEDULE_TAG = b"consensus-playground merge "
# ``for_ops``'s state and one kind of block operation.
_State = TypeVar("_State")
_Op = TypeVar("_Op")
# Rules a running chain may change; the rest (proof-of-work limit, name...) are fixed at genesis.
CHANGEABLE_PARAMS = frozenset(
    {"target_spacing_s", "retarget_window_blocks", "initial_subsidy_points", "halving_interval_blocks"}
)


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


def compute_genesis_commitment(params: ChainParams, chain_id: int, consensus: ConsensusConfig | None = None) -> bytes:
    """Genesis commits to its chain id, parameters and consensus config, so an export verifies alone.

    A chain without a consensus config commits exactly as before.
    """
    payload = struct.pack("<Q", chain_id) + params.to_bytes()
    if consensus is not None:
        payload += b"|consensus|" + consensus.to_bytes()
    return GENESIS_TAG + hashlib.sha256(payload).digest()


def compute_params_commitment(params: ChainParams) -> bytes:
    """What a block's coinbase message says to adopt ``params`` from the next block."""
    return PARAMS_CHANGE_TAG + hashlib.sha256(params.to_bytes()).digest()


def compute_kept_params(defaults: ChainParams, current: ChainParams) -> ChainParams:
    """A reset's rules when the server keeps its own: the defaults (so a new chain gets every rule
    added since the old one was created) with the changeable rules in force on the old chain."""
    return defaults.evolve(**{name: getattr(current, name) for name in sorted(CHANGEABLE_PARAMS)})


def check_params_change(current: ChainParams, proposed: ChainParams) -> None:
    """Only the rules in CHANGEABLE_PARAMS may change on a running chain."""
    changed = {f.name for f in fields(current) if getattr(current, f.name) != getattr(proposed, f.name)}
    fixed = changed - CHANGEABLE_PARAMS
    if fixed:
        raise ParamsError(f"these parameters are fixed at genesis and cannot change: {sorted(fixed)}")
    if not changed:
        raise ParamsError("the proposed parameters are the ones already in force")


def make_genesis_block(
    params: ChainParams, chain_id: int, time: int, bits: int, consensus: ConsensusConfig | None = None
) -> Block:
    """The anchor block: no proof of work, its ``bits`` set the first difficulty (0 in a pos chain)."""
    if consensus is not None and consensus.mode is Mode.POS:
        bits = 0
    else:
        compute_target(bits, params.pow_limit)
    coinbase = Coinbase(0, GENESIS_MINER, 0, 0, compute_genesis_commitment(params, chain_id, consensus))
    template = BlockTemplate.build(BLOCK_VERSION, ZERO_HASH, time, bits, coinbase, ())
    return template.solve(0, 0)


def check_genesis_block(
    block: Block, params: ChainParams, chain_id: int, consensus: ConsensusConfig | None = None
) -> None:
    if block.header.prev_hash != ZERO_HASH:
        raise BadParentError("the genesis block must have an all-zero parent hash")
    expected = Coinbase(
        0, GENESIS_MINER, 0, block.coinbase.extra_nonce, compute_genesis_commitment(params, chain_id, consensus)
    )
    if block.coinbase != expected or block.transfers or block.operations is not None:
        raise BadCoinbaseError("genesis does not commit to this chain id, these parameters and this consensus config")
    if block.compute_merkle_root() != block.header.merkle_root:
        raise MerkleRootMismatchError("genesis merkle root does not match its coinbase")
    if consensus is not None and consensus.mode is Mode.POS:
        if block.header.bits != 0 or block.header.nonce != 0:
            raise MergeError("a pos chain's genesis has no proof of work: bits and nonce are 0")
    else:
        compute_target(block.header.bits, params.pow_limit)


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

    @classmethod
    def replay(
        cls,
        params: ChainParams,
        chain_id: int,
        blocks: Sequence[Block],
        consensus: ConsensusConfig | None = None,
        param_changes: Sequence[tuple[int, ChainParams]] = (),
        consensus_changes: Sequence[tuple[int, ConsensusConfig]] = (),
    ) -> ChainState:
        """Rebuild by processing every block again (what ``verify`` does, without its report).

        Block times are judged against the last one.
        """
        state = cls(params, chain_id, blocks[0], consensus)
        changes = dict(param_changes)
        state.reserve_history(*changes.values())
        schedules = dict(consensus_changes)
        now = max(block.header.time for block in blocks)
        for block in blocks[1:]:
            height = state.height + 1
            state.apply(block, process_block(state, block, now, changes.get(height), schedules.get(height)))
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


def process_block(
    state: ChainState,
    block: Block,
    now: int,
    proposed_params: ChainParams | None = None,
    proposed_consensus: ConsensusConfig | None = None,
) -> BlockEffects:
    """Validate ``block`` on top of ``state``; return its effects, changing nothing.

    ``proposed_params`` are the rules this block may adopt: if its coinbase
    commits to them (``compute_params_commitment``) they govern the blocks
    after it.  A coinbase that commits to anything else is refused.
    """
    if state.beacon is not None:
        return process_consensus_block(state, block, now, proposed_params, proposed_consensus)
    if block.header.version != BLOCK_VERSION:
        raise BadCoinbaseError(
            f"block version {block.header.version}: this chain has no consensus config, so only version-1 blocks"
        )
    params = state.params
    height = state.height + 1
    process_header(state, block.header, now)
    _check_body(state, block, height)
    changes: dict[bytes, Account] = {}
    view = LedgerView(changes, state.ledger)
    fees = process_transfers(state, block, view, changes)
    subsidy = compute_block_subsidy(height, params)
    process_coinbase(block, view, changes, subsidy, fees, is_pos=False)
    params_change = process_params_commitment(state, block, proposed_params)
    block_hash = block.hash()
    events = compute_block_events(state, block, block_hash, subsidy, fees, changes)
    events += compute_rule_change_events(height, params, params_change)
    return BlockEffects(
        height, block_hash, changes, subsidy, fees, events, count_block_signatures(block), params_change
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


def compute_next_block_time(state: ChainState, now: int) -> int:
    """The time a new template should carry: now, but never at or before the median."""
    return max(now, compute_median_time_past(state.headers) + 1)


def compute_difficulty(bits: int, params: ChainParams) -> int:
    """Difficulty relative to the chain's easiest target, as a whole number (>= 1)."""
    target = decode_compact(bits).value
    return max(1, params.pow_limit // max(1, target))


def build_template(
    state: ChainState,
    miner: bytes,
    transfers: Sequence[Transfer],
    now: int,
    message: bytes = b"",
    proposed_params: ChainParams | None = None,
    pool: Operations | None = None,
    proposed_consensus: ConsensusConfig | None = None,
) -> BlockTemplate:
    """A block template paying ``miner``; ``transfers`` must already be valid in order.

    With ``proposed_params`` the coinbase commits to them instead of ``message``.
    On a chain with a consensus config the template is a version-2 block carrying
    the valid operations of ``pool`` and exactly the expected withdrawals.
    """
    if proposed_params is not None:
        message = compute_params_commitment(proposed_params)
    height = state.height + 1
    if proposed_consensus is not None:
        if proposed_params is not None:
            raise ParamsError("one block commits to one change: new parameters or a Merge schedule")
        check_merge_schedule(state, height, proposed_consensus)
        message = compute_merge_schedule_commitment(proposed_consensus)
    fees = sum(tx.fee for tx in transfers)
    coinbase = Coinbase(height, miner, compute_block_subsidy(height, state.params) + fees, 0, message)
    version, operations = BLOCK_VERSION, None
    if state.beacon is not None:
        if state.beacon.merged or state.beacon.terminal is not None:
            raise MergeError("this chain has merged: build its blocks with build_pos_block")
        version = BLOCK_VERSION_OPERATIONS
        operations = select_operations(state, height, pool or Operations(), False, None, transfers)
    elif pool is not None:
        raise OperationsError("this chain has no consensus config: its blocks carry no operations")
    return BlockTemplate.build(
        version,
        state.tip_hash,
        compute_next_block_time(state, now),
        compute_next_bits(state),
        coinbase,
        tuple(transfers),
        operations,
    )


# --- chains with a consensus config: pow, hybrid, pos and the Merge -----------------


def _check_body(state: ChainState, block: Block, height: int) -> None:
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


def check_pos_header(state: ChainState, block: Block, now: int) -> int:
    """A proof-of-stake header: right parent, no proof of work, a later slot whose start is its time."""
    beacon = state.beacon
    seal = block.seal
    if beacon is None or seal is None:
        raise MergeError("not a proof-of-stake block on a proof-of-stake chain")
    check_parent(state, block.header)
    header = block.header
    if header.bits != 0 or header.nonce != 0:
        raise MergeError(
            f"a proof-of-stake block has bits 0 and nonce 0, got bits {header.bits:#x} nonce {header.nonce}"
        )
    if seal.slot <= beacon.slot:
        raise SlotError(f"slot {seal.slot} is not after the parent's slot {beacon.slot}")
    expected_time = compute_slot_time(beacon, seal.slot)
    if header.time != expected_time:
        raise SlotError(f"slot {seal.slot} starts at time {expected_time}, but the block says {header.time}")
    if header.time > now:
        raise TimeTooNewError(f"slot {seal.slot} starts at {header.time}; it is only {now}")
    return seal.slot


def compute_pre_block_beacon(state: ChainState, slot: int, block_root: bytes, is_pos: bool) -> BeaconState:
    """The beacon state a block at ``slot`` is judged against: the Merge if it is the first
    proof-of-stake block, then every epoch transition up to the slot."""
    beacon = state.beacon
    if beacon is None:
        raise MergeError("this chain has no consensus config")
    beacon = replace(beacon, events=())
    if is_pos and not beacon.merged:
        beacon = process_merge(beacon, state.height + 1)
    return process_slots(beacon, slot, state.tip_hash, block_root, state.params.target_spacing_s)


def process_block_operations(
    beacon: BeaconState,
    view: Mapping[bytes, Account],
    changes: dict[bytes, Account],
    operations: Operations,
    chain_id: int,
    slot: int,
    proposer_index: int | None,
    params: ChainParams,
) -> BeaconState:
    """Capella's order: withdrawals, then phase0's ``process_operations`` (proposer slashings,
    attester slashings, attestations, deposits, voluntary exits).

    ``changes`` (the block's pending account changes, under ``view``) receives the withdrawal
    credits and deposit debits; it belongs to the block being checked, so when an operation
    fails the caller discards it with everything else, and nothing outside has changed."""
    beacon, paid = process_withdrawals(beacon, view, operations.withdrawals)
    changes.update(paid)

    def deposit_from_wallet(state: BeaconState, deposit: Deposit) -> BeaconState:
        state, wallet = process_deposit(state, view.get(deposit.wallet), deposit, chain_id, params.max_amount_points)
        changes[deposit.wallet] = wallet
        return state

    beacon = for_ops(beacon, "proposer slashing", operations.proposer_slashings,
                     lambda b, op: process_proposer_slashing(b, op, chain_id, proposer_index))
    beacon = for_ops(beacon, "attester slashing", operations.attester_slashings,
                     lambda b, op: process_attester_slashing(b, op, chain_id, proposer_index))
    beacon = for_ops(beacon, "attestation", operations.attestations,
                     lambda b, op: process_attestation(b, op, slot, chain_id))
    beacon = for_ops(beacon, "voluntary exit", operations.voluntary_exits,
                     lambda b, op: process_voluntary_exit(b, op, chain_id))
    # Deposits move ledger points, so they run with the accounts (phase0 runs them before exits;
    # an exit cannot name a validator deposited in the same block, which is not active yet anyway).
    return for_ops(beacon, "deposit", operations.deposits, deposit_from_wallet)


def for_ops(state: _State, kind: str, items: Sequence[_Op], step: Callable[[_State, _Op], _State]) -> _State:
    """consensus-specs' ``for_ops``: apply ``step`` to each operation in order; a refused one's
    error gets a note naming it (``kind`` and its index in the block)."""
    for index, item in enumerate(items):
        try:
            state = step(state, item)
        except ChainError as exc:
            exc.add_note(f"{kind} {index}")
            raise
    return state


def process_consensus_block(
    state: ChainState,
    block: Block,
    now: int,
    proposed_params: ChainParams | None = None,
    proposed_consensus: ConsensusConfig | None = None,
) -> BlockEffects:
    """``process_block`` for a chain with a consensus config: proof-of-work blocks before the
    Merge (version 1, or version 2 with operations), proof-of-stake blocks after it.

    Checks everything, then returns the effects, including the new beacon state; nothing is changed.
    """
    if state.beacon is None:
        raise MergeError("this chain has no consensus config")
    params = state.params
    height = state.height + 1
    block_hash = block.hash()
    is_pos = block.seal is not None
    slot = process_consensus_header(state, block, now)
    _check_body(state, block, height)
    pre = compute_pre_block_beacon(state, slot, block_hash, is_pos)
    proposer_index = process_block_proposer(state, pre, block, slot)
    changes: dict[bytes, Account] = {}
    view = LedgerView(changes, state.ledger)
    fees = process_transfers(state, block, view, changes)
    post = process_block_operations(
        pre, view, changes, block.operations or Operations(), state.chain_id, slot, proposer_index, params
    )
    subsidy = 0 if is_pos else compute_block_subsidy(height, params)
    process_coinbase(block, view, changes, subsidy, fees, is_pos)
    post = process_block_slot(post, block, height, slot, block_hash, proposer_index, params)
    params_change = process_params_commitment(state, block, proposed_params)
    consensus_change = process_merge_schedule(state, block, height, proposed_consensus, post.total_difficulty)
    if consensus_change is not None:
        post = replace(post, config=consensus_change)
    sealed_by = (slot, proposer_index) if is_pos else None
    events = compute_block_events(state, block, block_hash, subsidy, fees, changes, sealed_by)
    events += post.events
    events += compute_rule_change_events(height, params, params_change, consensus_change, post.total_difficulty)
    return BlockEffects(
        height, block_hash, changes, subsidy, fees, events, count_block_signatures(block), params_change,
        replace(post, events=()), consensus_change,
    )


def process_consensus_header(state: ChainState, block: Block, now: int) -> int:
    """The header of a block on a chain with a consensus config: a proof-of-stake header only after
    the Merge (``check_pos_header``), a proof-of-work one only before (``process_header``); returns
    the block's slot (a proof-of-work block's slot is its height)."""
    beacon = state.beacon
    if beacon is None:
        raise MergeError("this chain has no consensus config")
    height = state.height + 1
    merged = beacon.merged or beacon.terminal is not None
    if block.seal is not None:
        if not merged:
            raise MergeError(f"block {height} is a proof-of-stake block, but this chain has not merged yet")
        return check_pos_header(state, block, now)
    if merged:
        raise MergeError(
            f"block {height} is a proof-of-work block, but blocks after the Merge are proof-of-stake blocks"
        )
    process_header(state, block.header, now)
    return height


def process_block_proposer(state: ChainState, pre: BeaconState, block: Block, slot: int) -> int | None:
    """A proof-of-stake block's proposer: the slot's drawn validator, not slashed, whose signature
    seals the block (phase0's ``process_block_header`` and ``verify_block_signature``).  Returns
    its index; None for a proof-of-work block, which no validator proposes."""
    seal = block.seal
    if seal is None:
        return None
    proposer_index = get_beacon_proposer_index(pre, slot)
    if seal.proposer_index != proposer_index:
        raise BadProposerError(
            f"slot {slot}'s proposer is validator {proposer_index}, not validator {seal.proposer_index}"
        )
    proposer = pre.registry.validators[proposer_index]
    if proposer.slashed:
        raise BadProposerError(f"validator {proposer_index} was slashed and may not propose")
    header = compute_proposal_header(state, block, proposer.pubkey)
    check_proposal_signature(SignedProposalHeader(header, seal.signature))
    return proposer_index


def process_block_slot(
    beacon: BeaconState,
    block: Block,
    height: int,
    slot: int,
    block_hash: bytes,
    proposer_index: int | None,
    params: ChainParams,
) -> BeaconState:
    """Record the block in the beacon state: who proposed the slot, or (proof of work) its work,
    and whether it is the terminal block or the one where a due Merge waits for a validator."""
    if block.seal is not None and proposer_index is not None:
        beacon = record_proposer(beacon, slot, proposer_index)
    else:
        work = compute_block_work(compute_target(block.header.bits, params.pow_limit))
        beacon = replace(beacon, total_difficulty=beacon.total_difficulty + work)
        if is_terminal_block(beacon, height):
            beacon = mark_terminal_block(beacon, height, block.header.time, block_hash)
        elif is_merge_delayed(beacon, height, beacon.total_difficulty - work):
            beacon = process_merge_delay(beacon, height)
    return replace(beacon, slot=slot)


def compute_merge_schedule_commitment(consensus: ConsensusConfig) -> bytes:
    """What a proof-of-work block's coinbase says to schedule the Merge of ``consensus``."""
    return MERGE_SCHEDULE_TAG + hashlib.sha256(consensus.to_bytes()).digest()


def compute_next_total_difficulty(state: ChainState) -> int:
    """The total difficulty once the next proof-of-work block (at the expected bits) is added."""
    beacon = state.beacon
    if beacon is None:
        raise MergeError("this chain has no consensus config")
    bits = compute_next_bits(state)
    return beacon.total_difficulty + compute_block_work(compute_target(bits, state.params.pow_limit))


def check_merge_schedule(
    state: ChainState, height: int, proposed: ConsensusConfig, total_difficulty: int | None = None
) -> None:
    """Only the Merge schedule may change on a running chain, before the Merge, and into the future.

    ``height`` is the committing block's; ``total_difficulty`` includes it (default: the tip's).
    """
    beacon = state.beacon
    if beacon is None:
        raise MergeError("this chain has no consensus config, so it has no Merge to schedule")
    current = beacon.config
    if beacon.merged or beacon.terminal is not None:
        raise MergeError("this chain has already reached the Merge")
    bare = replace(proposed, merge_at_height=current.merge_at_height,
                   merge_at_total_difficulty=current.merge_at_total_difficulty)
    if bare != current:
        raise ParamsError("only the Merge schedule (merge_at_height, merge_at_total_difficulty) can change")
    if not proposed.has_merge:
        raise ParamsError("a Merge schedule needs a height or a total difficulty")
    if proposed.merge_at_height and proposed.merge_at_height <= height + 1:
        raise ParamsError(
            f"the Merge must come after the block that schedules it: height {proposed.merge_at_height} is not "
            f"after {height + 1}"
        )
    reached = beacon.total_difficulty if total_difficulty is None else total_difficulty
    if proposed.merge_at_total_difficulty and proposed.merge_at_total_difficulty <= reached:
        raise ParamsError(f"total difficulty {proposed.merge_at_total_difficulty} is already reached ({reached})")


def process_merge_schedule(
    state: ChainState, block: Block, height: int, proposed: ConsensusConfig | None, total_difficulty: int
) -> ConsensusConfig | None:
    """The Merge a proof-of-work block schedules, if its coinbase commits to one."""
    if not block.coinbase.message.startswith(MERGE_SCHEDULE_TAG):
        return None
    if proposed is None or block.coinbase.message != compute_merge_schedule_commitment(proposed):
        raise BadCoinbaseError("coinbase commits to a Merge schedule that was not proposed")
    if block.seal is not None:
        raise MergeError("a proof-of-stake block cannot schedule the Merge")
    check_merge_schedule(state, height, proposed, total_difficulty)
    return proposed


def compute_proposal_header(state: ChainState, block: Block, proposer: bytes) -> ProposalHeader:
    """What a proposer signs for ``block``: chain.pos.attestation's ``ProposalHeader``."""
    seal = block.seal
    if seal is None:
        raise MergeError("a proof-of-work block has no proposal header")
    return ProposalHeader(state.chain_id, seal.slot, proposer, block.header.prev_hash, block.header.merkle_root)


def select_operations(
    state: ChainState,
    slot: int,
    pool: Operations,
    is_pos: bool,
    proposer_index: int | None,
    transfers: Sequence[Transfer] = (),
) -> Operations:
    """The operations of ``pool`` that are valid, in order, on top of ``state`` at ``slot`` after
    the block's ``transfers`` (deposits share the wallet's nonce space with them), plus exactly
    the expected withdrawals, within the per-block caps.  A candidate that fails is left out (the
    op pool keeps it or drops it; this only decides what goes into the next block)."""
    pre = compute_pre_block_beacon(state, slot, ZERO_HASH, is_pos)
    changes: dict[bytes, Account] = {}
    view = LedgerView(changes, state.ledger)
    for tx in transfers:
        changes.update(process_transfer(view, tx, state.chain_id, state.params))
    ops = Operations(withdrawals=get_expected_withdrawals(pre))
    beacon = process_block_operations(pre, view, changes, ops, state.chain_id, slot, proposer_index, state.params)
    caps = {
        "proposer_slashings": MAX_PROPOSER_SLASHINGS,
        "attester_slashings": MAX_ATTESTER_SLASHINGS,
        "attestations": MAX_ATTESTATIONS,
        "deposits": MAX_DEPOSITS,
        "voluntary_exits": MAX_VOLUNTARY_EXITS,
    }
    # Any: each field wants its own item type; Operations checks every item's class when built.
    chosen: dict[str, list[Any]] = {name: [] for name in caps}
    for name, cap in caps.items():
        for item in getattr(pool, name):
            if len(chosen[name]) == cap:
                break
            trial_changes = dict(changes)
            trial_view = LedgerView(trial_changes, state.ledger)
            try:
                trial = process_block_operations(
                    beacon,
                    trial_view,
                    trial_changes,
                    Operations(**{name: (item,)}),
                    state.chain_id,
                    slot,
                    proposer_index,
                    state.params,
                )
            except ChainError:
                continue
            beacon, changes = trial, trial_changes
            chosen[name].append(item)
    return Operations(withdrawals=ops.withdrawals, **{name: tuple(items) for name, items in chosen.items()})


def build_unsigned_pos_block(
    state: ChainState,
    slot: int,
    transfers: Sequence[Transfer] = (),
    pool: Operations = Operations(),
    fee_recipient: bytes | None = None,
    message: bytes = b"",
    proposed_params: ChainParams | None = None,
) -> tuple[BlockTemplate, ProposalHeader, int]:
    """A proof-of-stake block for ``slot`` waiting for its proposer's signature.

    Returns the block (as a template), the ``ProposalHeader`` the proposer signs
    and the proposer's index.  Signing is left to the caller so that a custodial
    signer can check its slashing protection first (chain/adapters/signer.py).
    """
    beacon = state.beacon
    if beacon is None or (beacon.terminal is None and not beacon.merged):
        raise MergeError("this chain has not merged: its next block is a proof-of-work block")
    if slot <= beacon.slot:
        raise SlotError(f"slot {slot} is not after the tip's slot {beacon.slot}")
    pre = compute_pre_block_beacon(state, slot, ZERO_HASH, True)
    proposer_index = get_beacon_proposer_index(pre, slot)
    proposer = pre.registry.validators[proposer_index]
    if proposed_params is not None:
        message = compute_params_commitment(proposed_params)
    operations = select_operations(state, slot, pool, True, proposer_index, transfers)
    fees = sum(tx.fee for tx in transfers)
    recipient = fee_recipient if fee_recipient is not None else pre.withdrawal_addresses[proposer_index]
    coinbase = Coinbase(state.height + 1, recipient, fees, 0, message)
    template = BlockTemplate.build(
        BLOCK_VERSION_OPERATIONS, state.tip_hash, compute_slot_time(beacon, slot), 0, coinbase, tuple(transfers),
        operations,
    )
    header = ProposalHeader(
        state.chain_id, slot, proposer.pubkey, template.header.prev_hash, template.header.merkle_root
    )
    return template, header, proposer_index


def seal_pos_block(template: BlockTemplate, slot: int, proposer_index: int, signature: bytes) -> Block:
    """The signed block: ``template`` with its proposer's seal."""
    return Block(
        template.header, template.coinbase, template.transfers, template.operations,
        PosSeal(slot, proposer_index, signature),
    )


def build_pos_block(
    state: ChainState,
    proposer_key: SigningKey,
    slot: int,
    transfers: Sequence[Transfer] = (),
    pool: Operations = Operations(),
    fee_recipient: bytes | None = None,
    message: bytes = b"",
    proposed_params: ChainParams | None = None,
) -> Block:
    """A signed proof-of-stake block for ``slot`` from the mempool's transfers (already valid in
    order) and the op pool's candidates (filtered by ``select_operations``).

    Raises ``BadProposerError`` if ``proposer_key`` is not the slot's drawn proposer.  The fee
    recipient defaults to the proposer's withdrawal address.
    """
    template, header, proposer_index = build_unsigned_pos_block(
        state, slot, transfers, pool, fee_recipient, message, proposed_params
    )
    if header.proposer != proposer_key.public_key:
        raise BadProposerError(f"slot {slot}'s proposer is validator {proposer_index}, not this key")
    signed = sign_proposal_header(proposer_key, header)
    return seal_pos_block(template, slot, proposer_index, signed.signature)


def get_slot_proposer(state: ChainState, slot: int) -> int:
    """Who may propose ``slot`` on top of the current tip (for the Node's slot ticker)."""
    pre = compute_pre_block_beacon(state, slot, ZERO_HASH, True)
    return get_beacon_proposer_index(pre, slot)


def compute_epoch_of_slot(state: ChainState, slot: int) -> int:
    if state.beacon is None:
        raise MergeError("this chain has no consensus config")
    return compute_epoch_at_slot(state.beacon, slot)


def compute_attestation_data(state: ChainState, slot: int, head_root: bytes) -> AttestationData:
    """An honest vote at ``slot`` naming ``head_root``: the justified checkpoint as source and the
    slot's epoch checkpoint as target, as the block after ``head_root`` will judge them.

    ``head_root`` is the tip or a candidate block for ``slot`` (not yet on the chain).  Before
    the Merge (hybrid mode) a vote is for the tip, at its height.
    """
    beacon = state.beacon
    if beacon is None:
        raise OperationsError("this chain has no consensus config: it takes no votes")
    if not (beacon.merged or beacon.terminal is not None):
        if not beacon.ffg_enabled:
            raise OperationsError("this proof-of-work chain takes no votes before the Merge (hybrid mode does)")
        pre = beacon
    else:
        pre = compute_pre_block_beacon(state, slot, head_root, True)
    epoch = compute_epoch_at_slot(pre, slot)
    target = Checkpoint(epoch, get_checkpoint_root(pre, epoch))
    return AttestationData(state.chain_id, slot, head_root, pre.finality.current_justified_checkpoint, target)


def admit_attestation(state: ChainState, attestation: SignedAttestation, slot: int) -> int:
    """Whether a vote may go into a block at ``slot`` on top of the current tip (the op pool's check).

    Runs exactly the block rule (``process_attestation``) against the state that
    block would see; returns the voter's validator index, or raises the rule's typed error.
    """
    beacon = state.beacon
    if beacon is None:
        raise OperationsError("this chain has no consensus config: it takes no attestations")
    is_pos = beacon.merged or beacon.terminal is not None
    pre = compute_pre_block_beacon(state, slot, ZERO_HASH, is_pos)
    process_attestation(pre, attestation, slot, state.chain_id)
    index = pre.registry.index_of(attestation.validator)
    if index is None:  # unreachable: the rule above refuses strangers
        raise OperationsError("the voter is not a validator")
    return index
