"""Fork choice between a proposer's competing blocks for one slot (LMD-GHOST's latest-message rule,
consensus-specs phase0 fork-choice.md, on a one-level tree), finality that is never reverted, and
the slashing detector that turns conflicting signed messages into evidence (double vote, surround
vote both ways, double proposal; the conditions of phase0 ``is_slashable_attestation_data``, the
same ones EIP-3076 slashing protection refuses to sign)."""

from dataclasses import replace

import pytest

from chain.consensus.consensus_block import compute_proposal_header
from chain.consensus.duties import get_slot_proposer
from chain.consensus.templates import build_pos_block
from chain.consensus.transition import process_block
from chain.errors import (
    BadSignatureError,
    FinalizedConflictError,
    ForkChoiceError,
    SlotError,
    StaleBlockError,
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
from chain.pos.forkchoice import ForkChoiceStore, SlashingDetector, get_fork_choice_weights
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


def store_for(h, slot):
    finalized = h.state.beacon.finality.finalized_checkpoint
    return ForkChoiceStore(
        h.state.tip_hash, h.state.height, slot, finalized.root, h.state.height_of(finalized.root) or 0
    )


def effective(h):
    return get_fork_choice_weights(h.state.beacon)


def test_the_block_with_the_most_attesting_stake_wins_and_is_appended():
    h = harness()
    proposer, a, b = equivocation(h, 2)
    store = store_for(h, 2)
    for block in (a, b):
        process_block(h.state, block, h.slot_time(2))  # both are valid blocks
        store = store.on_block(block.hash(), 2, block.header.prev_hash, h.state.height, proposer)
    for index, head in ((0, a), (1, b), (2, b), (3, b)):
        store = store.on_attestation(index, 2, head.hash())
    assert store.get_weight(b.hash(), effective(h)) == 3 * effective(h)[0]
    assert store.get_head(effective(h)) == b.hash()
    winner = b if store.get_head(effective(h)) == b.hash() else a
    h.apply(winner, now=h.slot_time(3))
    assert h.state.tip_hash == b.hash()
    with pytest.raises(StaleBlockError):
        process_block(h.state, a, h.slot_time(3))


def test_a_tie_goes_to_the_lowest_root_and_no_votes_is_a_tie():
    h = harness()
    proposer, a, b = equivocation(h, 2)
    store = store_for(h, 2)
    for block in (a, b):
        store = store.on_block(block.hash(), 2, block.header.prev_hash, h.state.height, proposer)
    assert store.get_head(effective(h)) == min(a.hash(), b.hash())
    store = store.on_attestation(0, 2, a.hash()).on_attestation(1, 2, b.hash())
    assert store.get_head(effective(h)) == min(a.hash(), b.hash())


def test_only_a_newer_vote_replaces_a_validators_latest_message():
    h = harness()
    proposer, a, b = equivocation(h, 2)
    store = store_for(h, 2)
    for block in (a, b):
        store = store.on_block(block.hash(), 2, block.header.prev_hash, h.state.height, proposer)
    store = store.on_attestation(0, 5, a.hash()).on_attestation(0, 4, b.hash())
    assert store.get_weight(a.hash(), effective(h)) == effective(h)[0]
    store = store.on_attestation(0, 6, b.hash())
    assert store.get_weight(a.hash(), effective(h)) == 0


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


def test_a_finalized_block_is_never_reverted():
    h = harness()
    h.run_epochs(4)
    finalized = h.state.beacon.finality.finalized_checkpoint
    finalized_height = h.state.height_of(finalized.root)
    assert finalized.epoch >= 2 and finalized_height is not None
    store = store_for(h, h.state.beacon.slot + 1)
    # A block built on the finalized block's parent would replace it: refused by the fork choice ...
    old_parent = h.state.hashes[finalized_height - 1]
    with pytest.raises(FinalizedConflictError):
        store.on_block(b"\x09" * 32, store.slot, old_parent, finalized_height - 1, 0)
    # ... and by the chain, whose finalized history is append-only.
    block = h.blocks[finalized_height - 1]  # the block that sat on that height, resubmitted
    with pytest.raises(StaleBlockError):
        process_block(h.state, block, h.slot_time(h.state.beacon.slot + 1))
    with pytest.raises(FinalizedConflictError):
        store.advance(h.state.tip_hash, h.state.height, store.slot + 1, bytes(32), finalized_height - 1)


def test_invalid_candidate_for_another_slot_or_off_the_tip():
    h = harness()
    proposer, a, _ = equivocation(h, 2)
    store = store_for(h, 3)
    with pytest.raises(SlotError):
        store.on_block(a.hash(), 2, a.header.prev_hash, h.state.height, proposer)
    h.propose(3)
    h.propose(4)
    store = ForkChoiceStore(h.state.tip_hash, h.state.height, 5, h.state.hashes[0], 0)
    with pytest.raises(ForkChoiceError):
        store.on_block(b"\x07" * 32, 5, h.state.hashes[1], 1, 0)


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
