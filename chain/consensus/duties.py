"""What validators do on top of the tip: who proposes a slot (``get_slot_proposer``), what an honest
vote says (``compute_attestation_data``) and whether a vote may go into the next block
(``admit_attestation``, the op pool's check)."""

from __future__ import annotations

from chain.consensus.consensus_block import compute_pre_block_beacon
from chain.consensus.state import ChainState
from chain.errors import OperationsError
from chain.hashing import ZERO_HASH
from chain.pos.attestation import AttestationData, Checkpoint, SignedAttestation
from chain.pos.beacon import get_beacon_proposer_index, get_checkpoint_root, get_epoch_at_slot
from chain.pos.operation_rules import process_attestation


def get_slot_proposer(state: ChainState, slot: int) -> int:
    """Who may propose ``slot`` on top of the current tip (for the Node's slot ticker)."""
    pre = compute_pre_block_beacon(state, slot, ZERO_HASH, True)
    return get_beacon_proposer_index(pre, slot)


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
    epoch = get_epoch_at_slot(pre, slot)
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
