"""The rules a running chain may change, and how a block commits to a change: a coinbase message
naming new parameters (``compute_params_commitment``) or a Merge schedule
(``compute_merge_schedule_commitment``).  Only ``CHANGEABLE_PARAMS`` may change; the rest are fixed
at genesis.  Judging a commitment against a chain is block processing (``state.process_params_commitment``,
``consensus_block.process_merge_schedule``)."""

from __future__ import annotations

import hashlib
from dataclasses import fields

from chain.errors import ParamsError
from chain.params import ChainParams
from chain.pos.beacon import ConsensusConfig

PARAMS_CHANGE_TAG = b"consensus-playground params "
MERGE_SCHEDULE_TAG = b"consensus-playground merge "
# Rules a running chain may change; the rest (proof-of-work limit, name...) are fixed at genesis.
CHANGEABLE_PARAMS = frozenset(
    {"target_spacing_s", "retarget_window_blocks", "initial_subsidy_points", "halving_interval_blocks"}
)


def compute_params_commitment(params: ChainParams) -> bytes:
    """What a block's coinbase message says to adopt ``params`` from the next block."""
    return PARAMS_CHANGE_TAG + hashlib.sha256(params.to_bytes()).digest()


def compute_merge_schedule_commitment(consensus: ConsensusConfig) -> bytes:
    """What a proof-of-work block's coinbase says to schedule the Merge of ``consensus``."""
    return MERGE_SCHEDULE_TAG + hashlib.sha256(consensus.to_bytes()).digest()


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
