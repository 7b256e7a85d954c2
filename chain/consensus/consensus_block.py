"""Blocks of a chain with a ``ConsensusConfig`` (chain/pos/beacon.py), which carries a
``BeaconState``: ``process_consensus_block`` takes proof-of-work blocks (version 1, or version 2
with operations) before the Merge and proof-of-stake blocks after it (or from genesis in a pos
chain), every epoch transition they cross, and every operation, as a list of named steps
(``process_consensus_header``, the body checks, ``compute_pre_block_beacon``,
``process_block_proposer``, ``process_transfers``, ``process_block_operations``,
``process_coinbase``, ``process_block_slot``, then its events).  A block may also schedule the
Merge (``check_merge_schedule``, ``process_merge_schedule``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TypeVar

from chain.consensus.block import Block
from chain.consensus.rule_changes import MERGE_SCHEDULE_TAG, compute_merge_schedule_commitment
from chain.consensus.state import (
    BlockEffects,
    ChainState,
    check_block_body,
    check_parent,
    compute_block_events,
    compute_next_bits,
    compute_rule_change_events,
    count_block_signatures,
    process_coinbase,
    process_header,
    process_params_commitment,
    process_transfers,
)
from chain.errors import (
    BadCoinbaseError,
    BadProposerError,
    ChainError,
    MergeError,
    ParamsError,
    SlotError,
    TimeTooNewError,
)
from chain.ledger.accounts import Account, LedgerView, compute_block_subsidy
from chain.params import ChainParams
from chain.pos.attestation import ProposalHeader, SignedProposalHeader, check_proposal_signature
from chain.pos.beacon import BeaconState, ConsensusConfig, compute_slot_time, get_beacon_proposer_index
from chain.pos.epoch_transition import process_slots
from chain.pos.merge import is_merge_delayed, is_terminal_block, mark_terminal_block, process_merge, process_merge_delay
from chain.pos.operation_rules import (
    process_attestation,
    process_attester_slashing,
    process_deposit,
    process_proposer_slashing,
    process_voluntary_exit,
    record_proposer,
)
from chain.pos.operations import Deposit, Operations
from chain.pos.withdrawals import process_withdrawals
from chain.pow.compact import compute_block_work, compute_target

# ``for_ops``'s state and one kind of block operation.
_State = TypeVar("_State")
_Op = TypeVar("_Op")


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
    check_block_body(state, block, height)
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


def compute_proposal_header(state: ChainState, block: Block, proposer: bytes) -> ProposalHeader:
    """What a proposer signs for ``block``: chain.pos.attestation's ``ProposalHeader``."""
    seal = block.seal
    if seal is None:
        raise MergeError("a proof-of-work block has no proposal header")
    return ProposalHeader(state.chain_id, seal.slot, proposer, block.header.prev_hash, block.header.merkle_root)


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
