"""Slashing protection: EIP-3076's refusal rules and its interchange format (version 5).

Conditions from EIP-3076 ("Conditions" 1-5, and "Advice for Minimal Databases");
slashability from consensus-specs phase0 is_slashable_attestation_data.
"""

import copy
import hashlib
import json

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from chain.errors import (
    AttestationError,
    BlockSlotTooLowError,
    DoubleProposalRefusedError,
    DoubleVoteRefusedError,
    InterchangeError,
    InterchangeGenesisMismatchError,
    SlashingProtectionError,
    SourceEpochTooLowError,
    SurroundVoteRefusedError,
    TargetEpochTooLowError,
)
from chain.hashing import hash_to_display
from chain.pos.attestation import (
    AttestationData,
    Checkpoint,
    ProposalHeader,
    is_slashable_attestation_data,
)
from chain.pos.slashing_protection import (
    SignedAttestationEntry,
    SignedBlockEntry,
    SlashingProtectionRecord,
    check_attestation_signing,
    check_block_signing,
    export_interchange,
    import_interchange,
    merge_records,
    record_attestation_signing,
    record_block_signing,
)
from tests.chainkit import CHAIN_ID, key
from tests.vectors import EIP3076_EXAMPLE

VALIDATOR = key("validator-carol")
OTHER = key("validator-dave")
GENESIS = hashlib.sha256(b"playground genesis").digest()


def root(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def vote(source: int, target: int, head: str = "A") -> AttestationData:
    return AttestationData(
        CHAIN_ID, target * 8, root(head), Checkpoint(source, root(f"cp{source}")), Checkpoint(target, root(head))
    )


def block(slot: int, body: str = "one", signer=VALIDATOR) -> ProposalHeader:
    return ProposalHeader(CHAIN_ID, slot, signer.public_key, root("parent"), root(body))


def signed(*votes: tuple[int, int], record: SlashingProtectionRecord | None = None) -> SlashingProtectionRecord:
    record = record or SlashingProtectionRecord(VALIDATOR.public_key)
    for source, target in votes:
        record = record_attestation_signing(record, vote(source, target))
    return record


# --- attestations -----------------------------------------------------------


def test_an_honest_validator_is_never_refused():
    record = SlashingProtectionRecord(VALIDATOR.public_key)
    # Source is the last justified checkpoint, target the current epoch; justification sometimes lags.
    for source, target in [(0, 1), (0, 2), (1, 3), (3, 4), (3, 5), (5, 6), (6, 9)]:
        check_attestation_signing(record, vote(source, target))
        record = record_attestation_signing(record, vote(source, target))
    assert record.highest_attestation == SignedAttestationEntry(6, 9, vote(6, 9).signing_root())
    assert record.highest_source_epoch == 6


def test_double_vote_refused():
    record = signed((1, 2))
    with pytest.raises(DoubleVoteRefusedError, match="different vote for target epoch 2"):
        check_attestation_signing(record, vote(1, 2, head="B"))
    with pytest.raises(DoubleVoteRefusedError):
        record_attestation_signing(record, vote(0, 2, head="B"))


def test_signing_the_same_vote_again_is_allowed():
    record = signed((1, 2))
    check_attestation_signing(record, vote(1, 2))
    assert record_attestation_signing(record, vote(1, 2)) is record


def test_new_vote_surrounding_the_last_is_refused():
    record = signed((1, 6))
    with pytest.raises(SurroundVoteRefusedError, match="0 → 7 would surround the vote 1 → 6"):
        check_attestation_signing(record, vote(0, 7))
    assert is_slashable_attestation_data(vote(0, 7), vote(1, 6))


def test_new_vote_surrounded_by_the_last_is_refused():
    record = signed((0, 7))
    with pytest.raises(SurroundVoteRefusedError, match="1 → 6 would be surrounded by the vote 0 → 7"):
        check_attestation_signing(record, vote(1, 6))
    assert is_slashable_attestation_data(vote(0, 7), vote(1, 6))


def test_new_vote_surrounding_an_older_vote_is_refused():
    # (4, 7) surrounds (5, 6), signed before the latest vote (6, 20).
    record = signed((5, 6), (6, 20))
    assert is_slashable_attestation_data(vote(4, 7), vote(5, 6))
    with pytest.raises(SourceEpochTooLowError, match="source epoch 4 is lower than source epoch 6"):
        check_attestation_signing(record, vote(4, 7))


def test_new_vote_surrounded_by_an_older_vote_is_refused():
    # (0, 10) surrounds (5, 8); the latest vote (10, 11) does not.
    record = signed((0, 10), (10, 11))
    assert is_slashable_attestation_data(vote(0, 10), vote(5, 8))
    with pytest.raises(SourceEpochTooLowError):
        check_attestation_signing(record, vote(5, 8))
    # (0, 10) surrounds (5, 8); the latest vote (5, 11) neither surrounds it nor has a higher source.
    record = signed((0, 10), (5, 11))
    with pytest.raises(TargetEpochTooLowError, match="target epoch 8 is not after target epoch 11"):
        check_attestation_signing(record, vote(5, 8))


def test_lower_source_refused():
    record = signed((3, 6))
    with pytest.raises(SourceEpochTooLowError, match="source epoch 2 is lower than source epoch 3"):
        check_attestation_signing(record, vote(2, 5))


def test_lower_target_refused():
    record = signed((3, 6))
    with pytest.raises(TargetEpochTooLowError, match="target epoch 5 is not after target epoch 6"):
        check_attestation_signing(record, vote(3, 5))


def test_invalid_vote_with_source_after_target():
    with pytest.raises(AttestationError, match="source epoch 5 is after target epoch 4"):
        check_attestation_signing(SlashingProtectionRecord(VALIDATOR.public_key), vote(5, 4))


# --- blocks -----------------------------------------------------------------


def test_blocks_move_forward():
    record = SlashingProtectionRecord(VALIDATOR.public_key)
    for slot in (3, 4, 10):
        check_block_signing(record, block(slot))
        record = record_block_signing(record, block(slot))
    assert record.highest_block == SignedBlockEntry(10, block(10).signing_root())


def test_double_proposal_refused():
    record = record_block_signing(SlashingProtectionRecord(VALIDATOR.public_key), block(812))
    with pytest.raises(DoubleProposalRefusedError, match="different block for slot 812"):
        check_block_signing(record, block(812, body="two"))


def test_same_block_again_is_allowed():
    record = record_block_signing(SlashingProtectionRecord(VALIDATOR.public_key), block(812))
    assert record_block_signing(record, block(812)) is record


def test_lower_slot_refused():
    record = record_block_signing(SlashingProtectionRecord(VALIDATOR.public_key), block(812))
    with pytest.raises(BlockSlotTooLowError, match="slot 811 is before slot 812"):
        record_block_signing(record, block(811))


def test_invalid_block_by_another_validator():
    with pytest.raises(SlashingProtectionError, match="but the block is by"):
        check_block_signing(SlashingProtectionRecord(VALIDATOR.public_key), block(5, signer=OTHER))


# --- interchange ------------------------------------------------------------


def full_record() -> SlashingProtectionRecord:
    return record_block_signing(signed((1, 2), (2, 3)), block(30))


def test_export_format():
    document = json.loads(export_interchange([full_record()], GENESIS))
    assert document["metadata"] == {
        "interchange_format_version": "5",
        "genesis_validators_root": "0x" + hash_to_display(GENESIS),
    }
    assert document["data"] == [
        {
            "pubkey": "0x" + VALIDATOR.public_key.hex(),
            "signed_blocks": [{"slot": "30", "signing_root": "0x" + block(30).signing_root().hex()}],
            "signed_attestations": [
                {"source_epoch": "2", "target_epoch": "3", "signing_root": "0x" + vote(2, 3).signing_root().hex()}
            ],
        }
    ]


def test_round_trip():
    records = [
        full_record(),
        signed((4, 5), record=SlashingProtectionRecord(OTHER.public_key)),
        SlashingProtectionRecord(key("idle").public_key),
    ]
    imported = import_interchange(export_interchange(records, GENESIS), GENESIS)
    assert imported == {r.pubkey: r for r in records}


def test_round_trip_keeps_a_source_watermark_above_the_last_vote():
    # An import of the votes (5, 6) and (1, 10): the highest source is not the last vote's.
    record = SlashingProtectionRecord(VALIDATOR.public_key, None, SignedAttestationEntry(1, 10, root("x")), 5)
    text = export_interchange([record], GENESIS)
    assert json.loads(text)["data"][0]["signed_attestations"][1] == {"source_epoch": "5", "target_epoch": "5"}
    again = import_interchange(text, GENESIS)[VALIDATOR.public_key]
    assert again == record
    # (3, 11) surrounds (5, 6) signed long ago: the watermark still refuses it.
    with pytest.raises(SourceEpochTooLowError):
        check_attestation_signing(again, vote(3, 11))


def test_import_merges_maxima_with_what_is_known():
    known = record_block_signing(signed((1, 2)), block(50))
    newer = record_block_signing(signed((3, 4)), block(40))
    merged = import_interchange(export_interchange([newer], GENESIS), GENESIS, {VALIDATOR.public_key: known})
    record = merged[VALIDATOR.public_key]
    assert record.highest_block.slot == 50
    assert record.highest_attestation.target_epoch == 4 and record.highest_source_epoch == 3


def test_conflicting_entries_merge_into_no_repeat():
    a = signed((1, 4))
    b = record_attestation_signing(SlashingProtectionRecord(VALIDATOR.public_key), vote(2, 4, head="B"))
    merged = merge_records(a, b)
    assert merged.highest_attestation == SignedAttestationEntry(2, 4, None)
    # Neither vote for epoch 4 may be signed again: each would be a double vote against the other.
    for data in (vote(1, 4), vote(2, 4, head="B")):
        with pytest.raises(DoubleVoteRefusedError):
            check_attestation_signing(merged, data)


def eip_example_for_us() -> dict:
    document = copy.deepcopy(EIP3076_EXAMPLE)
    document["metadata"]["genesis_validators_root"] = "0x" + hash_to_display(GENESIS)
    document["data"][0]["pubkey"] = "0x" + VALIDATOR.public_key.hex()
    return document


def test_eip_example_imports_with_its_conditions():
    record = import_interchange(json.dumps(eip_example_for_us()), GENESIS)[VALIDATOR.public_key]
    assert record.highest_block == SignedBlockEntry(
        81952, bytes.fromhex("4ff6f743a43f3b4f95350831aeaf0a122a1a392922c45d804280284a69eb850b")
    )
    # Target 3008 came without a signing root: nothing at epoch 3008 is a repeat.
    assert record.highest_attestation == SignedAttestationEntry(2290, 3008, None)
    with pytest.raises(DoubleVoteRefusedError):
        check_attestation_signing(record, vote(2290, 3008))
    with pytest.raises(TargetEpochTooLowError):  # condition 5
        check_attestation_signing(record, vote(2290, 3007))
    with pytest.raises(SurroundVoteRefusedError):  # condition 4 (and it surrounds 2290 → 3008)
        check_attestation_signing(record, vote(2289, 3009))
    check_attestation_signing(record, vote(2290, 3009))
    with pytest.raises(BlockSlotTooLowError):  # condition 2
        check_block_signing(record, block(81951))
    with pytest.raises(DoubleProposalRefusedError):  # condition 1
        check_block_signing(record, block(81952))
    check_block_signing(record, block(81953))


def test_invalid_import_of_the_eip_example_as_is():
    # Its pubkey is a 48-byte BLS key, and its chain is not ours.
    text = json.dumps(EIP3076_EXAMPLE)
    with pytest.raises(InterchangeGenesisMismatchError, match="not this chain"):
        import_interchange(text, GENESIS)
    document = copy.deepcopy(EIP3076_EXAMPLE)
    document["metadata"]["genesis_validators_root"] = "0x" + hash_to_display(GENESIS)
    with pytest.raises(InterchangeError, match="Ed25519 key"):
        import_interchange(json.dumps(document), GENESIS)


def mutate(path, value):
    document = eip_example_for_us()
    target = document
    for step in path[:-1]:
        target = target[step]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return json.dumps(document)


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "not valid JSON"),
        (json.dumps([]), "has no 'metadata'"),
        (mutate(["metadata", "interchange_format_version"], "4"), "version '4' is not supported"),
        (mutate(["metadata", "interchange_format_version"], 5), "version 5 is not supported"),
        (mutate(["metadata", "genesis_validators_root"], "0x1234"), "64 hex digits"),
        (mutate(["data"], {}), "data must be a list"),
        (mutate(["data", 0, "signed_blocks"], KeyError), "has no 'signed_blocks'"),
        (mutate(["data", 0, "signed_blocks", 0, "slot"], 81952), "must be a decimal string, got 81952"),
        (mutate(["data", 0, "signed_blocks", 0, "slot"], "-1"), "decimal string"),
        (mutate(["data", 0, "signed_blocks", 0, "slot"], str(1 << 64)), "64 bits"),
        (mutate(["data", 0, "signed_attestations", 1, "target_epoch"], KeyError), "has no 'target_epoch'"),
        (mutate(["data", 0, "signed_attestations", 0, "signing_root"], "0xabc"), "signing_root must be"),
        (
            mutate(["data", 0, "signed_attestations", 0, "source_epoch"], "3008"),
            "source epoch 3008 after target epoch 3007",
        ),
    ],
)
def test_invalid_interchange(text, message):
    with pytest.raises(InterchangeError, match=message):
        import_interchange(text, GENESIS, {VALIDATOR.public_key: full_record()})


def test_invalid_import_changes_nothing():
    known = {VALIDATOR.public_key: full_record()}
    document = eip_example_for_us()
    document["data"].append(
        {"pubkey": "0x" + OTHER.public_key.hex(), "signed_blocks": "nope", "signed_attestations": []}
    )
    with pytest.raises(InterchangeError, match=r"data\[1\] signed_blocks must be a list"):
        import_interchange(json.dumps(document), GENESIS, known)
    assert known == {VALIDATOR.public_key: full_record()}


# --- property: nothing the protection allows is slashable -------------------

# Votes are drawn around a clock that moves forward, so that runs sign long histories with
# conflicts mixed in: target = clock + target_shift, source = target - source_lag.
vote_shape = st.tuples(
    st.sampled_from([-3, -1, 0, 0, 1, 1, 2]), st.sampled_from([0, 1, 1, 2, 4]), st.sampled_from("AB")
)
attest_op = st.tuples(st.just("attest"), vote_shape)
# The same key signed a vote on another machine; its history arrives in an interchange file.
elsewhere_op = st.tuples(st.just("elsewhere"), vote_shape)
restart_op = st.just(("restart",))


def interchange_with(data: AttestationData) -> str:
    entry = {
        "source_epoch": str(data.source.epoch),
        "target_epoch": str(data.target.epoch),
        "signing_root": "0x" + data.signing_root().hex(),
    }
    return json.dumps(
        {
            "metadata": {"interchange_format_version": "5", "genesis_validators_root": "0x" + hash_to_display(GENESIS)},
            "data": [
                {"pubkey": "0x" + VALIDATOR.public_key.hex(), "signed_blocks": [], "signed_attestations": [entry]}
            ],
        }
    )


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(attest_op, attest_op, attest_op, elsewhere_op, restart_op), max_size=40))
def test_nothing_allowed_is_slashable_with_anything_signed_before(operations):
    record = SlashingProtectionRecord(VALIDATOR.public_key)
    history: list[AttestationData] = []  # every vote this key has signed, here or elsewhere
    signed_here = 0
    clock = 0
    for op in operations:
        if op[0] == "restart":
            # A restart, or a move to another machine, goes through the interchange file.
            record = import_interchange(export_interchange([record], GENESIS), GENESIS)[VALIDATOR.public_key]
            continue
        target_shift, source_lag, head = op[1]
        target = max(0, clock + target_shift)
        data = vote(max(0, target - source_lag), target, head)
        clock = max(clock, target + 1)
        if op[0] == "elsewhere":
            record = import_interchange(interchange_with(data), GENESIS, {record.pubkey: record})[record.pubkey]
            history.append(data)
            continue
        try:
            record = record_attestation_signing(record, data)
        except (SlashingProtectionError, AttestationError):
            continue
        if data in history:
            # A repeat (EIP-3076 allows it): the same signature again, no new evidence.  It may
            # conflict with history only if the key already misbehaved elsewhere, as hypothesis found.
            continue
        for earlier in history:
            assert not is_slashable_attestation_data(earlier, data), (earlier, data)
            assert not is_slashable_attestation_data(data, earlier), (data, earlier)
        history.append(data)
        signed_here += 1
    event(f"signed here: {min(signed_here, 6)}")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 3)), min_size=1, max_size=30))
def test_honest_sequences_are_always_allowed(steps):
    # An honest validator: the target moves forward each epoch it votes, the source never goes back.
    record = SlashingProtectionRecord(VALIDATOR.public_key)
    source, target = 0, 0
    for source_step, target_step in steps:
        target += target_step
        source = min(source + source_step, target)
        record = record_attestation_signing(record, vote(source, target))
    assert record.highest_attestation.target_epoch == target


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.sampled_from("ab")), max_size=30))
def test_allowed_blocks_never_conflict(proposals):
    record = SlashingProtectionRecord(VALIDATOR.public_key)
    signed_at: dict[int, set[bytes]] = {}
    for slot, body in proposals:
        header = block(slot, body)
        try:
            record = record_block_signing(record, header)
        except SlashingProtectionError:
            continue
        signed_at.setdefault(slot, set()).add(header.signing_root())
    assert all(len(roots) == 1 for roots in signed_at.values())


def test_invalid_record_watermark_outside_the_last_vote():
    with pytest.raises(InterchangeError, match="between the last vote's source 1 and target 10"):
        SlashingProtectionRecord(VALIDATOR.public_key, None, SignedAttestationEntry(1, 10), 11)
    with pytest.raises(InterchangeError, match="both or neither"):
        SlashingProtectionRecord(VALIDATOR.public_key, None, SignedAttestationEntry(1, 10), None)


def test_a_repeat_of_a_vote_signed_elsewhere_is_allowed():
    # Found by hypothesis: the key signed (0, 2) elsewhere, surrounding its own (1, 1) here.
    # Signing (0, 2) again gives the same signature: the evidence already exists, nothing new is.
    record = signed((1, 1))
    elsewhere = vote(0, 2, head="B")
    record = import_interchange(interchange_with(elsewhere), GENESIS, {record.pubkey: record})[record.pubkey]
    assert record_attestation_signing(record, elsewhere) is record
    with pytest.raises(DoubleVoteRefusedError):
        check_attestation_signing(record, vote(0, 2, head="A"))


def test_conflicting_blocks_merge_into_no_repeat():
    a = record_block_signing(SlashingProtectionRecord(VALIDATOR.public_key), block(9, body="one"))
    b = record_block_signing(SlashingProtectionRecord(VALIDATOR.public_key), block(9, body="two"))
    merged = merge_records(a, b)
    assert merged.highest_block == SignedBlockEntry(9, None)
    for header in (block(9, body="one"), block(9, body="two")):
        with pytest.raises(DoubleProposalRefusedError):
            check_block_signing(merged, header)
    assert merge_records(a, a) == a
