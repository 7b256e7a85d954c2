"""Proposer slashing operations: consensus-specs phase0 ``process_proposer_slashing`` (two different
signed headers by one proposer for one slot, ``check_proposer_slashing``), applied with
``slash_validator``: burn effective // 32 (Bellatrix's MIN_SLASHING_PENALTY_QUOTIENT_BELLATRIX), forced
exit, the longer lock, and the whistleblower reward effective // 512 of which the proposer keeps 1/8."""

from dataclasses import replace

from chain.consensus.duties import get_slot_proposer
from chain.errors import (
    BadSignatureError,
    IdenticalMessagesError,
    SlotMismatchError,
    ValidatorMismatchError,
)
from chain.events import VALIDATOR_SLASHED
from chain.pos.attestation import (
    AttestationData,
    Checkpoint,
    ProposalHeader,
    ProposerSlashing,
    sign_attestation,
    sign_proposal_header,
)
from chain.pos.operations import Operations
from chain.pos.rewards import UNITS_PER_POINT
from tests.chainkit import CHAIN_ID
from tests.poskit import (
    Harness,
    assert_refused,
    forge_pos_block,
    new_consensus_chain,
    pos_config,
    validator_keys,
)

KEYS = validator_keys()
STAKE = 32 * UNITS_PER_POINT


def harness():
    h = Harness(new_consensus_chain(pos_config()), KEYS)
    h.propose(1)
    return h


def vote(index, source_epoch, target_epoch, head=b"\x01" * 32, chain_id=CHAIN_ID, signer=None):
    data = AttestationData(
        chain_id, target_epoch * 8, head, Checkpoint(source_epoch, bytes(32)), Checkpoint(target_epoch, bytes(32))
    )
    return sign_attestation(signer or KEYS[index], data)


def proposal(index, slot, body=b"\x01" * 32, chain_id=CHAIN_ID):
    return sign_proposal_header(KEYS[index], ProposalHeader(chain_id, slot, KEYS[index].public_key, bytes(32), body))


def slot_not_proposed_by(h, index):
    return next(s for s in range(2, 8) if get_slot_proposer(h.state, s) != index)


def test_double_proposal_is_slashed_with_its_slot_in_the_event():
    h = harness()
    evidence = ProposerSlashing(proposal(2, 812), proposal(2, 812, body=b"\x02" * 32))
    _, effects = h.propose(slot_not_proposed_by(h, 2), pool=Operations(proposer_slashings=(evidence,)))
    (event,) = [e for e in effects.events if e.kind == VALIDATOR_SLASHED]
    assert event.payload["offence"] == "double proposal"
    assert event.payload["slot"] == 812
    assert event.payload["description"] == "signed two different blocks for slot 812"
    assert h.state.beacon.registry.validators[2].slashed


def test_invalid_proposer_slashing_of_one_header_twice():
    h = harness()
    same = proposal(2, 5)
    assert_refused(
        h.state,
        forge_pos_block(h.state, 2, Operations(proposer_slashings=(ProposerSlashing(same, same),))),
        IdenticalMessagesError,
    )


def test_invalid_proposer_slashing_across_slots():
    h = harness()
    evidence = ProposerSlashing(proposal(2, 5), proposal(2, 6))
    assert_refused(h.state, forge_pos_block(h.state, 2, Operations(proposer_slashings=(evidence,))), SlotMismatchError)


def test_invalid_proposer_slashing_of_two_proposers():
    h = harness()
    evidence = ProposerSlashing(proposal(2, 5), proposal(3, 5))
    assert_refused(
        h.state, forge_pos_block(h.state, 2, Operations(proposer_slashings=(evidence,))), ValidatorMismatchError
    )


def test_invalid_proposer_slashing_with_a_forged_signature():
    h = harness()
    evidence = ProposerSlashing(proposal(2, 5), replace(proposal(2, 5, body=b"\x02" * 32), signature=bytes(64)))
    assert_refused(h.state, forge_pos_block(h.state, 2, Operations(proposer_slashings=(evidence,))), BadSignatureError)
