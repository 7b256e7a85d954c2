"""Building the next block: ``build_template`` (proof of work: the miner solves it) and
``build_pos_block`` (proof of stake: ``build_unsigned_pos_block`` then the proposer's signature and
``seal_pos_block``), from the mempool's transfers and an op pool; ``select_operations`` keeps the
pool's valid operations and adds exactly the expected withdrawals."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chain.consensus.block import BLOCK_VERSION, BLOCK_VERSION_OPERATIONS, Block, BlockTemplate, PosSeal
from chain.consensus.consensus_block import check_merge_schedule, compute_pre_block_beacon, process_block_operations
from chain.consensus.rule_changes import compute_merge_schedule_commitment, compute_params_commitment
from chain.consensus.state import ChainState, compute_next_bits
from chain.errors import BadProposerError, ChainError, MergeError, OperationsError, ParamsError, SlotError
from chain.hashing import ZERO_HASH
from chain.keys import SigningKey
from chain.ledger.accounts import Account, LedgerView, compute_block_subsidy, process_transfer
from chain.ledger.transaction import Coinbase, Transfer
from chain.params import ChainParams
from chain.pos.attestation import ProposalHeader, sign_proposal_header
from chain.pos.beacon import ConsensusConfig, compute_slot_time, get_beacon_proposer_index
from chain.pos.operations import (
    MAX_ATTESTATIONS,
    MAX_ATTESTER_SLASHINGS,
    MAX_DEPOSITS,
    MAX_PROPOSER_SLASHINGS,
    MAX_VOLUNTARY_EXITS,
    Operations,
)
from chain.pos.withdrawals import get_expected_withdrawals
from chain.pow.difficulty import compute_median_time_past


def compute_next_block_time(state: ChainState, now: int) -> int:
    """The time a new template should carry: now, but never at or before the median."""
    return max(now, compute_median_time_past(state.headers) + 1)


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
