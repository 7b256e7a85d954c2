"""The fork choice's weights (a slashed validator has no say) and
the slashing detector that turns conflicting signed messages into evidence (double vote, surround
vote both ways, double proposal; the conditions of phase0 ``is_slashable_attestation_data``, the
same ones EIP-3076 slashing protection refuses to sign)."""

from dataclasses import replace

import pytest

from chain.consensus.consensus_block import compute_proposal_header
from chain.consensus.duties import get_slot_proposer
from chain.consensus.templates import build_pos_block
from chain.errors import (
    BadSignatureError,
)
from chain.pos.attestation import (
    AttestationData,
    Checkpoint,
    Offence,
    SignedProposalHeader,
    check_attester_slashing,
    check_proposer_slashing,
    sign_attestation,
)
from chain.pos.forkchoice import SlashingDetector, get_fork_choice_weights
from chain.pos.operations import Operations
from tests.chainkit import CHAIN_ID
from tests.poskit import Harness, new_consensus_chain, pos_config, validator_keys

KEYS = validator_keys()


def harness():
    h = Harness(new_consensus_chain(pos_config()), KEYS)
    h.propose(1)
    return h


def equivocation(h, slot):
    proposer = get_slot_proposer(h.state, slot)
    a = build_pos_block(h.state, KEYS[proposer], slot, message=b"first")
    b = build_pos_block(h.state, KEYS[proposer], slot, message=b"second")
    return proposer, a, b


def effective(h):
    return get_fork_choice_weights(h.state.beacon)


def test_the_two_signed_blocks_are_ready_made_proposer_slashing_evidence():
    h = harness()
    proposer, a, b = equivocation(h, 2)
    detector = SlashingDetector()
    signed = [
        SignedProposalHeader(compute_proposal_header(h.state, blk, KEYS[proposer].public_key), blk.seal.signature)
        for blk in (a, b)
    ]
    assert detector.observe_proposal(signed[0]) is None
    evidence = detector.observe_proposal(signed[1])
    verdict = check_proposer_slashing(evidence, CHAIN_ID)
    assert verdict.offence is Offence.DOUBLE_PROPOSAL and verdict.validator == KEYS[proposer].public_key
    assert verdict.description == "signed two different blocks for slot 2"
    h.apply(a, now=h.slot_time(2))
    later = next(s for s in range(3, 8) if get_slot_proposer(h.state, s) != proposer)
    h.propose(later, pool=Operations(proposer_slashings=(evidence,)))
    assert h.state.beacon.registry.validators[proposer].slashed


def vote(index, source, target, head=b"\x01" * 32):
    data = AttestationData(CHAIN_ID, target * 8, head, Checkpoint(source, bytes(32)), Checkpoint(target, bytes(32)))
    return sign_attestation(KEYS[index], data)


def test_detector_finds_a_double_vote():
    detector = SlashingDetector()
    assert detector.observe_attestation(vote(0, 1, 2)) is None
    assert detector.observe_attestation(vote(0, 1, 2)) is None  # the same vote again is no offence
    evidence = detector.observe_attestation(vote(0, 1, 2, head=b"\x02" * 32))
    assert check_attester_slashing(evidence, CHAIN_ID).offence is Offence.DOUBLE_VOTE


@pytest.mark.parametrize(
    "first,second", [((0, 3), (1, 2)), ((1, 2), (0, 3))], ids=["surrounded later", "surrounding later"]
)
def test_detector_finds_a_surround_vote_in_both_directions(first, second):
    detector = SlashingDetector()
    assert detector.observe_attestation(vote(1, *first)) is None
    evidence = detector.observe_attestation(vote(1, *second))
    assert check_attester_slashing(evidence, CHAIN_ID).offence is Offence.SURROUND_VOTE
    outer = evidence.attestation_1.data
    assert (outer.source.epoch, outer.target.epoch) == (0, 3)  # the surrounding vote first, as phase0 wants


def test_detector_ignores_votes_by_different_validators_and_non_conflicting_votes():
    detector = SlashingDetector()
    assert detector.observe_attestation(vote(0, 1, 2)) is None
    assert detector.observe_attestation(vote(1, 1, 2, head=b"\x02" * 32)) is None
    assert detector.observe_attestation(vote(0, 2, 3)) is None


def test_invalid_forged_message_is_not_recorded():
    detector = SlashingDetector()
    forged = replace(vote(0, 1, 2), signature=bytes(64))
    with pytest.raises(BadSignatureError):
        detector.observe_attestation(forged)
    assert detector.observe_attestation(vote(0, 1, 2, head=b"\x02" * 32)) is None


def test_a_slashed_validator_has_no_say_in_the_fork_choice():
    h = harness()
    proposer, a, b = equivocation(h, 2)
    detector = SlashingDetector()
    detector.observe_attestation(vote(3, 0, 0))
    evidence = detector.observe_attestation(vote(3, 0, 0, head=b"\x02" * 32))
    h.apply(a, now=h.slot_time(2))
    slot = next(s for s in range(3, 8) if get_slot_proposer(h.state, s) != 3)
    h.propose(slot, pool=Operations(attester_slashings=(evidence,)))
    weights = get_fork_choice_weights(h.state.beacon)
    assert weights[3] == 0 and weights[0] > 0
