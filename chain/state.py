"""One chain's consensus state, and ``process_block``, the rule that extends it.

``process_block`` checks the header (parent, difficulty, proof of work, time)
and the body (coinbase, merkle root, every transfer) against the current tip,
and returns the block's effects without touching anything.  ``ChainState.apply``
then commits them in memory; the store commits the same effects to disk in one
transaction.
"""

from __future__ import annotations

import hashlib
import struct
from collections import ChainMap
from collections.abc import Sequence
from dataclasses import dataclass, fields

from chain.block import BLOCK_VERSION, Block, BlockTemplate
from chain.compact import compute_target, decode_compact
from chain.errors import (
    BadCoinbaseError,
    BadParentError,
    BlockTooLargeError,
    DuplicateTransactionError,
    MerkleRootMismatchError,
    ParamsError,
    StaleBlockError,
    TimeTooNewError,
    TimeTooOldError,
)
from chain.events import (
    BLOCK_MINED,
    DIFFICULTY_CHANGED,
    MILESTONE_REACHED,
    PARAMS_CHANGED,
    REWARD_PAID,
    ChainEvent,
    compute_crossed_milestone,
)
from chain.hashing import ZERO_HASH, hash_to_display
from chain.header import BlockHeader
from chain.ledger import Account, Ledger, compute_block_subsidy, process_transfer
from chain.params import ChainParams
from chain.pow import (
    check_expected_bits,
    check_proof_of_work,
    compute_expected_bits,
    compute_median_time_past,
    explain_retarget,
)
from chain.transaction import Coinbase, Transfer

GENESIS_MINER = bytes(32)  # nobody: the genesis block mints nothing
GENESIS_TAG = b"consensus-playground genesis "
PARAMS_CHANGE_TAG = b"consensus-playground params "
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


def compute_genesis_commitment(params: ChainParams, chain_id: int) -> bytes:
    """Genesis commits to its chain id and parameters, so an export verifies alone."""
    digest = hashlib.sha256(struct.pack("<Q", chain_id) + params.to_bytes()).digest()
    return GENESIS_TAG + digest


def compute_params_commitment(params: ChainParams) -> bytes:
    """What a block's coinbase message says to adopt ``params`` from the next block."""
    return PARAMS_CHANGE_TAG + hashlib.sha256(params.to_bytes()).digest()


def check_params_change(current: ChainParams, proposed: ChainParams) -> None:
    """Only the rules in CHANGEABLE_PARAMS may change on a running chain."""
    changed = {f.name for f in fields(current) if getattr(current, f.name) != getattr(proposed, f.name)}
    fixed = changed - CHANGEABLE_PARAMS
    if fixed:
        raise ParamsError(f"these parameters are fixed at genesis and cannot change: {sorted(fixed)}")
    if not changed:
        raise ParamsError("the proposed parameters are the ones already in force")


def make_genesis_block(params: ChainParams, chain_id: int, time: int, bits: int) -> Block:
    """The anchor block: no proof of work, its ``bits`` set the first difficulty."""
    compute_target(bits, params.pow_limit)
    coinbase = Coinbase(0, GENESIS_MINER, 0, 0, compute_genesis_commitment(params, chain_id))
    template = BlockTemplate.build(BLOCK_VERSION, ZERO_HASH, time, bits, coinbase, ())
    return template.solve(0, 0)


def check_genesis_block(block: Block, params: ChainParams, chain_id: int) -> None:
    if block.header.prev_hash != ZERO_HASH:
        raise BadParentError("the genesis block must have an all-zero parent hash")
    expected = Coinbase(0, GENESIS_MINER, 0, block.coinbase.extra_nonce, compute_genesis_commitment(params, chain_id))
    if block.coinbase != expected or block.transfers:
        raise BadCoinbaseError("genesis does not commit to this chain id and these parameters")
    if block.compute_merkle_root() != block.header.merkle_root:
        raise MerkleRootMismatchError("genesis merkle root does not match its coinbase")
    compute_target(block.header.bits, params.pow_limit)


class ChainState:
    """Headers of the main chain plus the ledger at its tip."""

    def __init__(self, params: ChainParams, chain_id: int, genesis: Block) -> None:
        check_genesis_block(genesis, params, chain_id)
        self.genesis_params = params
        # (height of the committing block, params in force from the block after it)
        self.param_changes: list[tuple[int, ChainParams]] = []
        self.chain_id = chain_id
        self.headers: list[BlockHeader] = [genesis.header]
        self.hashes: list[bytes] = [genesis.hash()]
        self._height_of: dict[bytes, int] = {self.hashes[0]: 0}
        self.ledger = Ledger()

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

        Startup has to be quick; ``chain.verify`` is the full replay.
        """
        state = cls(params, chain_id, blocks[0])
        state.param_changes = sorted(param_changes, key=lambda change: change[0])
        for block in blocks[1:]:
            block_hash = block.hash()
            state.headers.append(block.header)
            state.hashes.append(block_hash)
            state._height_of[block_hash] = block.height
        minted = sum(compute_block_subsidy(h, state.params_at(h)) for h in range(1, len(blocks)))
        state.ledger = Ledger(accounts, minted)
        return state

    def params_at(self, height: int) -> ChainParams:
        """The rules a block at ``height`` is judged by."""
        params = self.genesis_params
        for committed_at, changed in self.param_changes:
            if committed_at < height:
                params = changed
        return params

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
        return self._height_of.get(block_hash)

    def apply(self, block: Block, effects: BlockEffects) -> None:
        self.headers.append(block.header)
        self.hashes.append(effects.block_hash)
        self._height_of[effects.block_hash] = effects.height
        self.ledger.apply(effects.accounts, effects.subsidy)
        if effects.params_change is not None:
            self.param_changes.append((effects.height, effects.params_change))


def process_header(state: ChainState, header: BlockHeader, now: int) -> None:
    """Contextual header checks, cheapest first; raises the first failure."""
    if header.prev_hash != state.tip_hash:
        parent_height = state.height_of(header.prev_hash)
        if parent_height is not None:
            raise StaleBlockError(
                f"block builds on height {parent_height}, but block {state.height} "
                f"({hash_to_display(state.tip_hash)[:16]}…) is already the tip"
            )
        raise BadParentError(f"parent {hash_to_display(header.prev_hash)} is not in this chain")
    check_expected_bits(header, state.headers, state.params)
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
    state: ChainState, block: Block, now: int, proposed_params: ChainParams | None = None
) -> BlockEffects:
    """Validate ``block`` on top of ``state``; return its effects, changing nothing.

    ``proposed_params`` are the rules this block may adopt: if its coinbase
    commits to them (``compute_params_commitment``) they govern the blocks
    after it.  A coinbase that commits to anything else is refused.
    """
    params = state.params
    height = state.height + 1
    process_header(state, block.header, now)
    if len(block.transfers) > params.max_block_transfers:
        raise BlockTooLargeError(
            f"block has {len(block.transfers)} transfers; the limit is {params.max_block_transfers}"
        )
    if block.coinbase.height != height:
        raise BadCoinbaseError(f"coinbase says height {block.coinbase.height}, block is at {height}")
    txids = block.txids()
    if len(set(txids)) != len(txids):
        raise DuplicateTransactionError("block contains the same transaction twice")
    if block.compute_merkle_root() != block.header.merkle_root:
        raise MerkleRootMismatchError(
            f"merkle root {hash_to_display(block.header.merkle_root)} does not match the block's transactions"
        )

    changes: dict[bytes, Account] = {}
    view = ChainMap(changes, state.ledger)
    fees = 0
    for index, tx in enumerate(block.transfers):
        try:
            changes.update(process_transfer(view, tx, state.chain_id, params))
        except Exception as exc:
            exc.add_note(f"transfer {index} ({hash_to_display(txids[index + 1])[:16]}…)")
            raise
        fees += tx.fee

    subsidy = compute_block_subsidy(height, params)
    if block.coinbase.amount != subsidy + fees:
        raise BadCoinbaseError(
            f"coinbase pays {block.coinbase.amount}, but subsidy {subsidy} plus fees {fees} "
            f"is {subsidy + fees}"
        )
    miner = view.get(block.coinbase.miner, Account())
    changes[block.coinbase.miner] = Account(miner.balance + block.coinbase.amount, miner.nonce)

    params_change = process_params_commitment(state, block, proposed_params)
    block_hash = block.hash()
    events = _block_events(state, block, block_hash, subsidy, fees, changes)
    if params_change is not None:
        events += (ChainEvent(PARAMS_CHANGED, {"height": height, **describe_params_change(params, params_change)}),)
    return BlockEffects(height, block_hash, changes, subsidy, fees, events, len(block.transfers), params_change)


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


def describe_params_change(old: ChainParams, new: ChainParams) -> dict[str, list[int]]:
    return {name: [getattr(old, name), getattr(new, name)] for name in sorted(CHANGEABLE_PARAMS)
            if getattr(old, name) != getattr(new, name)}


def _block_events(
    state: ChainState,
    block: Block,
    block_hash: bytes,
    subsidy: int,
    fees: int,
    changes: dict[bytes, Account],
) -> tuple[ChainEvent, ...]:
    height = state.height + 1
    miner = block.coinbase.miner.hex()
    events = [
        ChainEvent(
            BLOCK_MINED,
            {
                "height": height,
                "hash": hash_to_display(block_hash),
                "miner": miner,
                "reward": block.coinbase.amount,
                "transfers": len(block.transfers),
                "time": block.header.time,
                "bits": block.header.bits,
            },
        ),
        ChainEvent(REWARD_PAID, {"height": height, "miner": miner, "subsidy": subsidy, "fees": fees}),
    ]
    explanation = explain_retarget(state.headers, state.params)
    if explanation is not None and explanation.new_bits != explanation.old_bits:
        events.append(
            ChainEvent(
                DIFFICULTY_CHANGED,
                {
                    "height": height,
                    "old_bits": explanation.old_bits,
                    "new_bits": explanation.new_bits,
                    "actual_timespan_s": explanation.actual_timespan_s,
                    "target_timespan_s": explanation.target_timespan_s,
                    "sentence": explanation.sentence(),
                },
            )
        )
    for account, after in changes.items():
        before = state.ledger.get(account, Account()).balance
        milestone = compute_crossed_milestone(before, after.balance)
        if milestone is not None:
            events.append(
                ChainEvent(
                    MILESTONE_REACHED,
                    {"height": height, "account": account.hex(), "milestone": milestone, "balance": after.balance},
                )
            )
    return tuple(events)


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
) -> BlockTemplate:
    """A block template paying ``miner``; ``transfers`` must already be valid in order.

    With ``proposed_params`` the coinbase commits to them instead of ``message``.
    """
    if proposed_params is not None:
        message = compute_params_commitment(proposed_params)
    height = state.height + 1
    fees = sum(tx.fee for tx in transfers)
    coinbase = Coinbase(height, miner, compute_block_subsidy(height, state.params) + fees, 0, message)
    return BlockTemplate.build(
        BLOCK_VERSION,
        state.tip_hash,
        compute_next_block_time(state, now),
        compute_expected_bits(state.headers, state.params),
        coinbase,
        tuple(transfers),
    )
