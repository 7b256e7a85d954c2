"""Attestations, signed proposal headers and slashing evidence.

Rules from ethereum/consensus-specs specs/phase0/beacon-chain.md:
is_slashable_attestation_data, process_attester_slashing, process_proposer_slashing.
"""

import hashlib
import json
import struct
from pathlib import Path

import pytest

from chain.errors import (
    AttestationError,
    BadSignatureError,
    EncodingError,
    IdenticalMessagesError,
    NotSlashableError,
    SlotMismatchError,
    ValidatorMismatchError,
    WalletError,
    WrongChainError,
)
from chain.ledger.transaction import TRANSFER_SIGNING_DOMAIN
from chain.pos.attestation import (
    ATTESTATION_DATA_SIZE_BYTES,
    ATTESTATION_SIGNING_DOMAIN,
    PROPOSAL_SIGNING_DOMAIN,
    SIGNED_ATTESTATION_SIZE_BYTES,
    SIGNED_PROPOSAL_HEADER_SIZE_BYTES,
    AttestationData,
    AttesterSlashing,
    Checkpoint,
    Offence,
    ProposalHeader,
    ProposerSlashing,
    SignedAttestation,
    SignedProposalHeader,
    check_attestation_data,
    check_attestation_signature,
    check_attester_slashing,
    check_proposal_signature,
    check_proposer_slashing,
    compute_epoch_at_slot,
    compute_start_slot_at_epoch,
    is_slashable_attestation_data,
    is_valid_attestation_signature,
    sign_attestation,
    sign_proposal_header,
)
from tests.chainkit import CHAIN_ID, key
from tests.vectors import SLASHABLE_ATTESTATION_CASES

SLOTS_PER_EPOCH = 8
SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "vectors" / "bitcoin-and-friends.json"
ALICE = key("validator-alice")
BOB = key("validator-bob")


def root(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def vote(
    source: int, target: int, label: str = "A", chain_id: int = CHAIN_ID, slot: int | None = None
) -> AttestationData:
    """A vote whose head and target are block ``label``; the source root names its epoch."""
    return AttestationData(
        chain_id=chain_id,
        slot=target * SLOTS_PER_EPOCH if slot is None else slot,
        beacon_block_root=root(label),
        source=Checkpoint(source, root(f"checkpoint-{source}")),
        target=Checkpoint(target, root(label)),
    )


# --- is_slashable_attestation_data ------------------------------------------


@pytest.mark.parametrize(
    "a, b, slashable, why", SLASHABLE_ATTESTATION_CASES, ids=[c[3] for c in SLASHABLE_ATTESTATION_CASES]
)
def test_spec_cases(a, b, slashable, why):
    assert is_slashable_attestation_data(vote(*a), vote(*b)) is slashable, why


@pytest.mark.skipif(not SHARED.exists(), reason="../shared is not present")
def test_spec_cases_match_the_shared_vectors():
    shared = json.loads(SHARED.read_text())["ethereum_slashable_attestation_data"]["cases"]
    ours = [((a[0], a[1], a[2]), (b[0], b[1], b[2]), s) for a, b, s, _ in SLASHABLE_ATTESTATION_CASES]
    theirs = [
        (
            (c["a"]["source"], c["a"]["target"], c["a"]["root"]),
            (c["b"]["source"], c["b"]["target"], c["b"]["root"]),
            c["slashable"],
        )
        for c in shared
    ]
    assert ours == theirs


def test_surround_clause_is_one_sided_as_in_the_spec():
    outer, inner = vote(0, 7, "A"), vote(1, 6, "B")
    assert is_slashable_attestation_data(outer, inner)
    # data_1 must be the surrounding vote: the reverse order is not slashable by this function.
    assert not is_slashable_attestation_data(inner, outer)


def test_double_vote_in_both_orders():
    a, b = vote(0, 2, "A"), vote(1, 2, "B")
    assert is_slashable_attestation_data(a, b) and is_slashable_attestation_data(b, a)


def test_same_target_same_source_different_head_is_a_double_vote():
    a = vote(1, 2, "A")
    b = AttestationData(a.chain_id, a.slot + 1, root("another head"), a.source, a.target)
    assert is_slashable_attestation_data(a, b)


@pytest.mark.parametrize(
    "a, b",
    [
        ((0, 3), (0, 4)),  # same source, different target: consecutive honest votes
        ((0, 4), (1, 5)),  # overlapping, neither inside the other
        ((0, 2), (2, 4)),  # touching links
        ((0, 4), (0, 3)),  # same source, inner target: not strictly inside
        ((1, 6), (2, 6 + 1)),  # later source and later target
    ],
)
def test_not_slashable_in_either_order(a, b):
    d1, d2 = vote(*a, label="A"), vote(*b, label="B")
    assert not is_slashable_attestation_data(d1, d2)
    assert not is_slashable_attestation_data(d2, d1)


def test_surround_needs_strict_inequalities():
    # Equal sources: the inner vote starts from the same checkpoint, so it is not inside.
    assert not is_slashable_attestation_data(vote(1, 7), vote(1, 6, "B"))
    assert not is_slashable_attestation_data(vote(1, 6, "B"), vote(1, 7))
    assert is_slashable_attestation_data(vote(0, 7), vote(1, 6, "B"))


# --- bytes ---------------------------------------------------------------------


def test_attestation_data_layout():
    data = vote(3, 5, "A", slot=41)
    raw = data.serialize()
    assert len(raw) == ATTESTATION_DATA_SIZE_BYTES == 128
    assert raw[:16] == struct.pack("<QQ", CHAIN_ID, 41)
    assert raw[16:48] == root("A")
    assert raw[48:56] == struct.pack("<Q", 3) and raw[56:88] == root("checkpoint-3")
    assert raw[88:96] == struct.pack("<Q", 5) and raw[96:128] == root("A")
    assert AttestationData.deserialize(raw) == data
    assert data.signing_root() == hashlib.sha256(ATTESTATION_SIGNING_DOMAIN + raw).digest()


def test_signed_messages_round_trip():
    signed = sign_attestation(ALICE, vote(3, 5))
    assert len(signed.serialize()) == SIGNED_ATTESTATION_SIZE_BYTES
    assert SignedAttestation.deserialize(signed.serialize()) == signed
    header = sign_proposal_header(ALICE, ProposalHeader(CHAIN_ID, 812, ALICE.public_key, root("p"), root("b")))
    assert len(header.serialize()) == SIGNED_PROPOSAL_HEADER_SIZE_BYTES
    assert SignedProposalHeader.deserialize(header.serialize()) == header
    evidence = AttesterSlashing(signed, sign_attestation(ALICE, vote(4, 5, "B")))
    assert AttesterSlashing.deserialize(evidence.serialize()) == evidence
    proposal = ProposerSlashing(header, header)
    assert ProposerSlashing.deserialize(proposal.serialize()) == proposal


def test_invalid_lengths_and_fields():
    raw = vote(1, 2).serialize()
    with pytest.raises(EncodingError, match="128 bytes"):
        AttestationData.deserialize(raw[:-1])
    with pytest.raises(EncodingError, match="224 bytes"):
        SignedAttestation.deserialize(bytes(223))
    with pytest.raises(EncodingError, match="checkpoint root"):
        Checkpoint(1, b"short")
    with pytest.raises(EncodingError, match="64 bits"):
        Checkpoint(-1, root("x"))
    with pytest.raises(EncodingError, match="64 bits"):
        vote(1, 2, slot=1 << 64)
    with pytest.raises(EncodingError, match="64 bits"):
        Checkpoint(True, root("x"))
    with pytest.raises(EncodingError, match="attesting validator"):
        SignedAttestation(b"x" * 31, vote(1, 2))
    with pytest.raises(EncodingError, match="not signed|64 bytes"):
        SignedAttestation(ALICE.public_key, vote(1, 2)).serialize()
    with pytest.raises(EncodingError, match="448 bytes"):
        AttesterSlashing.deserialize(bytes(10))


def test_epochs_and_slots():
    assert compute_epoch_at_slot(0, 8) == 0
    assert compute_epoch_at_slot(7, 8) == 0
    assert compute_epoch_at_slot(8, 8) == 1
    assert compute_start_slot_at_epoch(3, 8) == 24
    with pytest.raises(EncodingError, match="at least one slot"):
        compute_epoch_at_slot(5, 0)


def test_check_attestation_data():
    check_attestation_data(vote(2, 3, slot=3 * SLOTS_PER_EPOCH + 7), SLOTS_PER_EPOCH)
    check_attestation_data(vote(0, 0, slot=0), SLOTS_PER_EPOCH)


def test_invalid_attestation_data_target_not_the_slots_epoch():
    with pytest.raises(AttestationError, match="target epoch 3 is not the epoch 4 of slot 32"):
        check_attestation_data(vote(2, 3, slot=32), SLOTS_PER_EPOCH)


def test_invalid_attestation_data_source_after_target():
    with pytest.raises(AttestationError, match="source epoch 4 is after target epoch 3"):
        check_attestation_data(vote(4, 3), SLOTS_PER_EPOCH)


# --- signatures -------------------------------------------------------------


def test_signature_verifies():
    signed = sign_attestation(ALICE, vote(1, 2))
    check_attestation_signature(signed)
    assert is_valid_attestation_signature(signed)


def test_invalid_signature_over_other_data():
    signed = sign_attestation(ALICE, vote(1, 2))
    forged = SignedAttestation(signed.validator, vote(1, 2, "B"), signed.signature)
    assert not is_valid_attestation_signature(forged)
    with pytest.raises(BadSignatureError, match="not signed by validator"):
        check_attestation_signature(forged)


def test_invalid_signature_replayed_on_another_chain():
    signed = sign_attestation(ALICE, vote(1, 2, chain_id=CHAIN_ID))
    replayed = SignedAttestation(signed.validator, vote(1, 2, chain_id=CHAIN_ID + 1), signed.signature)
    assert not is_valid_attestation_signature(replayed)


def test_invalid_signature_by_another_validator():
    signed = sign_attestation(ALICE, vote(1, 2))
    assert not is_valid_attestation_signature(SignedAttestation(BOB.public_key, signed.data, signed.signature))


def test_invalid_signature_length():
    with pytest.raises(BadSignatureError, match="64 bytes"):
        check_attestation_signature(SignedAttestation(ALICE.public_key, vote(1, 2), b"short"))


def test_domains_separate_message_types():
    domains = {ATTESTATION_SIGNING_DOMAIN, PROPOSAL_SIGNING_DOMAIN, TRANSFER_SIGNING_DOMAIN}
    assert len(domains) == 3
    # No tag is a prefix of another, so no message of one type reads as another's.
    assert not any(a != b and b.startswith(a) for a in domains for b in domains)


# --- attester slashing ------------------------------------------------------


def test_attester_slashing_double_vote():
    evidence = AttesterSlashing(sign_attestation(BOB, vote(0, 2, "A")), sign_attestation(BOB, vote(1, 2, "B")))
    verdict = check_attester_slashing(evidence, CHAIN_ID)
    assert verdict.offence is Offence.DOUBLE_VOTE
    assert verdict.validator == BOB.public_key
    assert verdict.description == "voted twice for target epoch 2, for two different things"


@pytest.mark.parametrize("surrounding_first", [True, False])
def test_attester_slashing_surround_in_either_order(surrounding_first):
    outer, inner = sign_attestation(BOB, vote(0, 7, "A")), sign_attestation(BOB, vote(1, 6, "B"))
    evidence = AttesterSlashing(outer, inner) if surrounding_first else AttesterSlashing(inner, outer)
    verdict = check_attester_slashing(evidence, CHAIN_ID)
    assert verdict.offence is Offence.SURROUND_VOTE
    assert verdict.description == "cast a vote 0 → 7 that surrounds its own vote 1 → 6"


def test_invalid_attester_slashing_two_validators():
    evidence = AttesterSlashing(sign_attestation(ALICE, vote(0, 2, "A")), sign_attestation(BOB, vote(1, 2, "B")))
    with pytest.raises(ValidatorMismatchError, match="two validators"):
        check_attester_slashing(evidence, CHAIN_ID)


def test_invalid_attester_slashing_identical_votes():
    signed = sign_attestation(BOB, vote(0, 2))
    with pytest.raises(IdenticalMessagesError, match="same vote"):
        check_attester_slashing(AttesterSlashing(signed, signed), CHAIN_ID)


def test_invalid_attester_slashing_not_slashable():
    evidence = AttesterSlashing(sign_attestation(BOB, vote(0, 2, "A")), sign_attestation(BOB, vote(1, 3, "B")))
    with pytest.raises(NotSlashableError, match="neither a double vote"):
        check_attester_slashing(evidence, CHAIN_ID)


def test_invalid_attester_slashing_other_chain():
    # A different chain id makes the data differ with the same target: the spec's function alone would say slashable.
    a, b = vote(0, 2, chain_id=CHAIN_ID), vote(0, 2, chain_id=CHAIN_ID + 1)
    assert is_slashable_attestation_data(a, b)
    evidence = AttesterSlashing(sign_attestation(BOB, a), sign_attestation(BOB, b))
    with pytest.raises(WrongChainError, match="not this chain"):
        check_attester_slashing(evidence, CHAIN_ID)


def test_invalid_attester_slashing_forged_signature():
    real = sign_attestation(BOB, vote(0, 2, "A"))
    forged = SignedAttestation(BOB.public_key, vote(1, 2, "B"), real.signature)
    with pytest.raises(BadSignatureError):
        check_attester_slashing(AttesterSlashing(real, forged), CHAIN_ID)


# --- proposer slashing ------------------------------------------------------


def proposal(signer, slot=812, body="one", proposer=None, chain_id=CHAIN_ID):
    header = ProposalHeader(chain_id, slot, proposer or signer.public_key, root("parent"), root(body))
    return sign_proposal_header(signer, header)


def test_proposer_slashing():
    verdict = check_proposer_slashing(ProposerSlashing(proposal(BOB, body="one"), proposal(BOB, body="two")), CHAIN_ID)
    assert verdict.offence is Offence.DOUBLE_PROPOSAL
    assert verdict.validator == BOB.public_key
    assert verdict.description == "signed two different blocks for slot 812"
    check_proposal_signature(proposal(BOB))


def test_invalid_proposer_slashing_different_slots():
    with pytest.raises(SlotMismatchError, match="slots 812 and 813"):
        check_proposer_slashing(ProposerSlashing(proposal(BOB), proposal(BOB, slot=813, body="two")), CHAIN_ID)


def test_invalid_proposer_slashing_two_proposers():
    with pytest.raises(ValidatorMismatchError, match="two proposers"):
        check_proposer_slashing(ProposerSlashing(proposal(ALICE), proposal(BOB, body="two")), CHAIN_ID)


def test_invalid_proposer_slashing_same_header():
    signed = proposal(BOB)
    with pytest.raises(IdenticalMessagesError, match="same block for slot 812"):
        check_proposer_slashing(ProposerSlashing(signed, signed), CHAIN_ID)


def test_invalid_proposer_slashing_other_chain():
    evidence = ProposerSlashing(proposal(BOB), proposal(BOB, body="two", chain_id=CHAIN_ID + 1))
    with pytest.raises(WrongChainError):
        check_proposer_slashing(evidence, CHAIN_ID)


def test_invalid_proposer_slashing_forged_signature():
    real = proposal(BOB)
    forged = SignedProposalHeader(
        ProposalHeader(CHAIN_ID, 812, BOB.public_key, root("parent"), root("two")), real.signature
    )
    with pytest.raises(BadSignatureError, match="slot 812 is not signed by proposer"):
        check_proposer_slashing(ProposerSlashing(real, forged), CHAIN_ID)


def test_invalid_signing_a_header_for_someone_else():
    with pytest.raises(WalletError, match="cannot sign a header"):
        proposal(ALICE, proposer=BOB.public_key)
