"""Attester slashing operations: consensus-specs phase0 ``process_attester_slashing`` (double and
surround votes, ``is_slashable_attestation_data``), applied with ``slash_validator``: burn
effective // 32 (Bellatrix's MIN_SLASHING_PENALTY_QUOTIENT_BELLATRIX), forced exit, the longer lock,
and the whistleblower reward effective // 512 of which the proposer keeps 1/8 (here the proposer is
also the whistleblower, so it gets all of it)."""

from dataclasses import replace

import pytest

from chain.consensus.duties import get_slot_proposer
from chain.errors import (
    BadSignatureError,
    NotSlashableError,
    UnknownValidatorError,
    ValidatorMismatchError,
    ValidatorStatusError,
    WrongChainError,
)
from chain.events import VALIDATOR_SLASHED
from chain.pos.attestation import (
    AttestationData,
    AttesterSlashing,
    Checkpoint,
    ProposalHeader,
    ProposerSlashing,
    sign_attestation,
    sign_proposal_header,
)
from chain.pos.operations import Operations
from chain.pos.rewards import UNITS_PER_POINT
from tests.chainkit import CHAIN_ID, key
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


def test_double_vote_is_slashed_with_the_bellatrix_penalty():
    h = harness()
    slot = slot_not_proposed_by(h, 0)
    proposer = get_slot_proposer(h.state, slot)
    evidence = AttesterSlashing(vote(0, 0, 1), vote(0, 0, 1, head=b"\x02" * 32))
    before = h.state.beacon.registry.balances
    burned_before = h.state.beacon.burned_units
    _, effects = h.propose(slot, pool=Operations(attester_slashings=(evidence,)))
    beacon = h.state.beacon
    slashed = beacon.registry.validators[0]
    assert slashed.slashed and slashed.exit_epoch == 1
    assert slashed.withdrawable_epoch == 360  # slashed_unbonding_epochs, longer than unbonding_epochs
    assert beacon.registry.balances[0] == before[0] - STAKE // 32
    assert beacon.registry.balances[proposer] == before[proposer] + STAKE // 512
    assert beacon.burned_units - burned_before == STAKE // 32 - STAKE // 512
    (event,) = [e for e in effects.events if e.kind == VALIDATOR_SLASHED]
    assert event.payload["offence"] == "double vote" and event.payload["validator_index"] == 0
    assert h.state.total_supply_units() == h.state.issued_supply_units()


@pytest.mark.parametrize("order", ["surrounding first", "surrounded first"])
def test_surround_vote_is_slashed_in_either_order(order):
    h = harness()
    outer, inner = vote(1, 0, 3), vote(1, 1, 2)
    evidence = AttesterSlashing(outer, inner) if order == "surrounding first" else AttesterSlashing(inner, outer)
    _, effects = h.propose(slot_not_proposed_by(h, 1), pool=Operations(attester_slashings=(evidence,)))
    (event,) = [e for e in effects.events if e.kind == VALIDATOR_SLASHED]
    assert event.payload["offence"] == "surround vote"
    assert h.state.beacon.registry.validators[1].slashed


def test_invalid_attester_slashing_of_votes_that_do_not_conflict():
    h = harness()
    evidence = AttesterSlashing(vote(0, 0, 1), vote(0, 1, 2))
    assert_refused(h.state, forge_pos_block(h.state, 2, Operations(attester_slashings=(evidence,))), NotSlashableError)


def test_invalid_attester_slashing_of_two_validators():
    h = harness()
    evidence = AttesterSlashing(vote(0, 0, 1), vote(1, 0, 1, head=b"\x02" * 32))
    assert_refused(
        h.state, forge_pos_block(h.state, 2, Operations(attester_slashings=(evidence,))), ValidatorMismatchError
    )


def test_invalid_attester_slashing_with_a_forged_signature():
    h = harness()
    evidence = AttesterSlashing(vote(0, 0, 1), replace(vote(0, 0, 1, head=b"\x02" * 32), signature=bytes(64)))
    assert_refused(h.state, forge_pos_block(h.state, 2, Operations(attester_slashings=(evidence,))), BadSignatureError)


def test_invalid_attester_slashing_for_another_chain():
    h = harness()
    evidence = AttesterSlashing(vote(0, 0, 1, chain_id=1), vote(0, 0, 1, head=b"\x02" * 32, chain_id=1))
    assert_refused(h.state, forge_pos_block(h.state, 2, Operations(attester_slashings=(evidence,))), WrongChainError)


def test_invalid_attester_slashing_of_a_stranger():
    h = harness()
    stranger = key("stranger")
    evidence = AttesterSlashing(vote(0, 0, 1, signer=stranger), vote(0, 0, 1, head=b"\x02" * 32, signer=stranger))
    assert_refused(
        h.state, forge_pos_block(h.state, 2, Operations(attester_slashings=(evidence,))), UnknownValidatorError
    )


def test_invalid_slashing_of_a_validator_already_slashed():
    h = harness()
    evidence = AttesterSlashing(vote(0, 0, 1), vote(0, 0, 1, head=b"\x02" * 32))
    slot = slot_not_proposed_by(h, 0)
    h.propose(slot, pool=Operations(attester_slashings=(evidence,)))
    again = ProposerSlashing(proposal(0, 5), proposal(0, 5, body=b"\x02" * 32))
    assert_refused(
        h.state,
        forge_pos_block(
            h.state,
            slot + 1 if get_slot_proposer(h.state, slot + 1) != 0 else slot + 2,
            Operations(proposer_slashings=(again,)),
        ),
        ValidatorStatusError,
    )
