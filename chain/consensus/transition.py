"""``process_block``, the rule that extends a chain, and ``replay_chain``, which applies it to every
block again.

``process_block`` checks the header (parent, difficulty, proof of work, time) and the body
(coinbase, merkle root, every transfer) against the current tip, and returns the block's effects
without touching anything.  ``ChainState.apply`` then commits them in memory; the store commits the
same effects to disk in one transaction.  A chain with a consensus config is processed by
``consensus_block.process_consensus_block``; a chain without one exactly as before."""

from __future__ import annotations

from collections.abc import Sequence

from chain.consensus.block import BLOCK_VERSION, Block
from chain.consensus.consensus_block import process_consensus_block
from chain.consensus.state import (
    BlockEffects,
    ChainState,
    check_block_body,
    compute_block_events,
    compute_rule_change_events,
    count_block_signatures,
    process_coinbase,
    process_header,
    process_params_commitment,
    process_transfers,
)
from chain.errors import BadCoinbaseError
from chain.ledger.accounts import Account, LedgerView, compute_block_subsidy
from chain.params import ChainParams
from chain.pos.beacon import ConsensusConfig


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
    check_block_body(state, block, height)
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


def replay_chain(
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
    state = ChainState(params, chain_id, blocks[0], consensus)
    changes = dict(param_changes)
    state.reserve_history(*changes.values())
    schedules = dict(consensus_changes)
    now = max(block.header.time for block in blocks)
    for block in blocks[1:]:
        height = state.height + 1
        state.apply(block, process_block(state, block, now, changes.get(height), schedules.get(height)))
    return state
