"""Attestations in blocks: consensus-specs phase0 ``process_attestation`` (target epoch is the
current or previous one and the slot's epoch, inclusion from ``MIN_ATTESTATION_INCLUSION_DELAY``
to one epoch later, source is the matching justified checkpoint, signed by an active validator)."""

from dataclasses import replace

from chain.errors import (
    AttestationError,
    BadSignatureError,
    DuplicateAttestationError,
    OperationsError,
    UnknownValidatorError,
    WrongChainError,
)
from chain.pos.attestation import AttestationData, Checkpoint, sign_attestation
from chain.pos.beacon import ConsensusConfig, GenesisValidator
from chain.pos.operations import Operations
from tests.chainkit import key
from tests.poskit import (
    Harness,
    assert_refused,
    forge_pos_block,
    mine_v2,
    new_consensus_chain,
    pos_config,
    validator_keys,
)

KEYS = validator_keys()


def harness():
    h = Harness(new_consensus_chain(pos_config()), KEYS)
    h.propose(1)
    return h


def ops(*attestations):
    return Operations(attestations=tuple(attestations))


def test_attestation_counts_toward_the_current_target():
    h = harness()
    votes = h.attest(1)
    h.propose(2, pool=ops(*votes))
    assert h.state.beacon.current_attesters == frozenset(range(4))


def test_late_vote_counts_for_the_previous_epoch():
    h = harness()
    votes = h.attest(1)
    h.propose(8)  # epoch 1 begins; the epoch-0 votes are now the previous epoch's
    h.propose(9, pool=ops(*votes))
    assert h.state.beacon.previous_attesters == frozenset(range(4))
    assert h.state.beacon.current_attesters == frozenset()


def test_invalid_attestation_included_in_its_own_slot():
    h = harness()
    (vote,) = h.attest(2, voters=[0])
    assert_refused(h.state, forge_pos_block(h.state, 2, ops(vote)), AttestationError)


def test_invalid_attestation_included_too_late():
    h = harness()
    (vote,) = h.attest(1, voters=[0])
    h.propose(8)
    assert_refused(h.state, forge_pos_block(h.state, 10, ops(vote)), AttestationError)


def test_invalid_attestation_with_the_wrong_source():
    h = harness()
    (vote,) = h.attest(1, voters=[0])
    bad = replace(vote.data, source=Checkpoint(0, bytes(32)))
    assert_refused(h.state, forge_pos_block(h.state, 2, ops(sign_attestation(KEYS[0], bad))), AttestationError)


def test_invalid_attestation_with_the_wrong_target_root():
    h = harness()
    (vote,) = h.attest(1, voters=[0])
    bad = replace(vote.data, target=Checkpoint(0, b"\x01" * 32))
    assert_refused(h.state, forge_pos_block(h.state, 2, ops(sign_attestation(KEYS[0], bad))), AttestationError)


def test_invalid_attestation_for_a_future_epoch():
    h = harness()
    (vote,) = h.attest(1, voters=[0])
    bad = replace(vote.data, slot=9, target=Checkpoint(1, vote.data.target.root))
    assert_refused(h.state, forge_pos_block(h.state, 2, ops(sign_attestation(KEYS[0], bad))), AttestationError)


def test_invalid_attestation_for_another_chain():
    h = harness()
    (vote,) = h.attest(1, voters=[0])
    bad = replace(vote.data, chain_id=vote.data.chain_id + 1)
    assert_refused(h.state, forge_pos_block(h.state, 2, ops(sign_attestation(KEYS[0], bad))), WrongChainError)


def test_invalid_attestation_with_a_bad_signature():
    h = harness()
    (vote,) = h.attest(1, voters=[0])
    assert_refused(h.state, forge_pos_block(h.state, 2, ops(replace(vote, signature=bytes(64)))), BadSignatureError)


def test_invalid_attestation_by_a_stranger():
    h = harness()
    (vote,) = h.attest(1, voters=[0])
    assert_refused(
        h.state, forge_pos_block(h.state, 2, ops(sign_attestation(key("stranger"), vote.data))), UnknownValidatorError
    )


def test_invalid_attestation_counted_twice():
    h = harness()
    (vote,) = h.attest(1, voters=[0])
    h.propose(2, pool=ops(vote))
    assert_refused(h.state, forge_pos_block(h.state, 3, ops(vote)), DuplicateAttestationError)


def test_invalid_attestation_in_a_pow_chain_before_the_merge():
    validator = KEYS[0]
    config = ConsensusConfig(
        mode="pow", genesis_validators=(GenesisValidator(validator.public_key, bytes(32), 32),), merge_at_height=100
    )
    state = new_consensus_chain(config)
    mine_v2(state, key("miner").public_key)
    beacon = state.beacon
    data = AttestationData(
        state.chain_id,
        1,
        state.tip_hash,
        beacon.finality.current_justified_checkpoint,
        Checkpoint(0, beacon.checkpoint_roots[0]),
    )
    block = mine_v2(state, key("miner").public_key, apply=False)
    import pytest

    from chain.consensus.block import BlockTemplate
    from chain.consensus.transition import process_block
    from tests.chainkit import solve

    template = BlockTemplate.build(
        2,
        state.tip_hash,
        block.header.time,
        block.header.bits,
        block.coinbase,
        (),
        ops(sign_attestation(validator, data)),
    )
    forged = solve(template, state.params)
    with pytest.raises(OperationsError):
        process_block(state, forged, forged.header.time)


def test_op_pool_admission_runs_the_block_rule():
    from chain.consensus.duties import admit_attestation

    h = harness()
    votes = h.attest(1)
    assert [admit_attestation(h.state, v, 2) for v in votes] == [0, 1, 2, 3]
    h.propose(2, pool=ops(*votes))
    import pytest as _pytest

    with _pytest.raises(DuplicateAttestationError):
        admit_attestation(h.state, votes[0], 3)
