"""Proof-of-stake blocks: no proof of work (bits 0, nonce 0), a slot whose start is the block's time,
the slot's drawn proposer (phase0 ``process_block_header``: ``block.proposer_index ==
get_beacon_proposer_index(state)``, proposer not slashed) and its signature over the
``ProposalHeader``; the coinbase pays fees only."""

from dataclasses import replace

import pytest

from chain.consensus.block import Block
from chain.consensus.duties import get_slot_proposer
from chain.consensus.templates import build_pos_block, build_template
from chain.consensus.transition import process_block
from chain.errors import (
    BadCoinbaseError,
    BadProposerError,
    BadSignatureError,
    EncodingError,
    MergeError,
    MerkleRootMismatchError,
    SlotError,
    TimeTooNewError,
)
from chain.events import BLOCK_MINED
from chain.ledger.transaction import make_transfer
from chain.pos.attestation import AttesterSlashing
from chain.pos.operations import Operations
from tests.chainkit import CHAIN_ID, key, new_chain, solve
from tests.poskit import (
    Harness,
    assert_refused,
    forge_pos_block,
    new_consensus_chain,
    pos_config,
    validator_keys,
)

KEYS = validator_keys()
ALICE, BOB = key("wallet-0"), key("wallet-1")


def harness():
    return Harness(new_consensus_chain(pos_config()), KEYS)


def test_proposer_block_pays_fees_only_and_moves_transfers():
    h = harness()
    tx = make_transfer(ALICE, BOB.public_key, 10, 2, 0, CHAIN_ID)
    block, effects = h.propose(1, transfers=[tx])
    assert block.header.bits == 0 and block.header.nonce == 0
    assert block.coinbase.amount == 2 and effects.subsidy == 0
    assert h.state.ledger[ALICE.public_key].balance == 1_000 - 12
    assert h.state.ledger[BOB.public_key].balance == 1_010 + (2 if block.coinbase.miner == BOB.public_key else 0)
    mined = effects.events[0]
    assert mined.kind == BLOCK_MINED and mined.payload["slot"] == 1 and mined.payload["proof_of_stake"]
    assert h.state.beacon.slot == 1


def test_pos_block_roundtrips_through_bytes():
    h = harness()
    block, _ = h.propose(1)
    assert Block.deserialize(block.serialize()) == block
    assert block.serialize()[:80] == block.header.serialize()


def test_empty_slots_are_skipped():
    h = harness()
    h.propose(1)
    h.propose(5)
    assert h.state.beacon.slot == 5 and h.state.height == 2


def test_invalid_block_by_someone_other_than_the_drawn_proposer():
    h = harness()
    drawn = get_slot_proposer(h.state, 1)
    other = (drawn + 1) % 4
    assert_refused(h.state, forge_pos_block(h.state, 1, proposer_index=other), BadProposerError)
    with pytest.raises(BadProposerError):
        build_pos_block(h.state, KEYS[other], 1)


def test_invalid_block_signed_by_the_wrong_key():
    h = harness()
    drawn = get_slot_proposer(h.state, 1)
    assert_refused(h.state, forge_pos_block(h.state, 1, signer=KEYS[(drawn + 1) % 4]), BadSignatureError)


def test_invalid_block_with_proof_of_work_fields():
    h = harness()
    block = forge_pos_block(h.state, 1)
    assert_refused(h.state, replace(block, header=replace(block.header, nonce=7)), MergeError)


def test_invalid_block_time_off_its_slot():
    h = harness()
    block = forge_pos_block(h.state, 1, time=h.slot_time(1) + 1)
    assert_refused(h.state, block, SlotError, now=h.slot_time(2))


def test_invalid_block_for_a_slot_already_filled():
    h = harness()
    h.propose(3)
    assert_refused(h.state, forge_pos_block(h.state, 3, time=h.slot_time(3)), SlotError, now=h.slot_time(4))


def test_invalid_block_from_a_future_slot():
    h = harness()
    assert_refused(h.state, forge_pos_block(h.state, 4), TimeTooNewError, now=h.slot_time(4) - 1)


def test_invalid_block_minting_more_than_its_fees():
    h = harness()
    assert_refused(h.state, forge_pos_block(h.state, 1, coinbase_amount=50), BadCoinbaseError)


def test_invalid_block_whose_operations_were_changed_after_signing():
    h = harness()
    from chain.pos.operations import make_voluntary_exit

    block = forge_pos_block(h.state, 1)
    extra = replace(block, operations=Operations(voluntary_exits=(make_voluntary_exit(KEYS[0], 0, 0, CHAIN_ID),)))
    assert_refused(h.state, extra, MerkleRootMismatchError)


def test_invalid_proof_of_work_block_on_a_pos_chain():
    h = harness()
    with pytest.raises(MergeError):
        build_template(h.state, ALICE.public_key, [], h.slot_time(1))


def test_invalid_block_by_a_slashed_proposer():
    h = harness()
    from chain.pos.attestation import AttestationData, Checkpoint, sign_attestation

    def vote(i, head):
        data = AttestationData(CHAIN_ID, 8, head, Checkpoint(0, bytes(32)), Checkpoint(1, bytes(32)))
        return sign_attestation(KEYS[i], data)

    slot = 1
    victim = get_slot_proposer(h.state, 3)
    while get_slot_proposer(h.state, slot) == victim:
        slot += 1
    h.propose(
        slot,
        pool=Operations(attester_slashings=(AttesterSlashing(vote(victim, b"\x01" * 32), vote(victim, b"\x02" * 32)),)),
    )
    later = next(s for s in range(slot + 1, 8) if get_slot_proposer(h.state, s) == victim)
    assert_refused(h.state, forge_pos_block(h.state, later), BadProposerError)


def test_invalid_version_2_block_on_a_chain_without_consensus_config():
    state = new_chain()
    template = build_template(state, ALICE.public_key, [], state.tip.time + 60)
    from chain.consensus.block import BlockTemplate

    v2 = solve(
        BlockTemplate.build(
            2,
            template.header.prev_hash,
            template.header.time,
            template.header.bits,
            template.coinbase,
            (),
            Operations(),
        ),
        state.params,
    )
    with pytest.raises(BadCoinbaseError):
        process_block(state, v2, v2.header.time)


def test_invalid_block_bytes_with_a_bad_seal_flag():
    h = harness()
    block, _ = h.propose(1)
    data = bytearray(block.serialize())
    flag_at = len(block.header.serialize()) + len(block.coinbase.serialize()) + 2
    assert data[flag_at] == 1
    data[flag_at] = 7
    with pytest.raises(EncodingError):
        Block.deserialize(bytes(data))


def test_version_1_blocks_keep_their_exact_layout_and_genesis_commitment():
    import hashlib
    import struct

    from chain.consensus.genesis import GENESIS_TAG, compute_genesis_commitment
    from tests.chainkit import mine, pay

    state = new_chain()
    mine(state, ALICE.public_key)
    block = mine(state, BOB.public_key, [pay(state, ALICE, BOB.public_key, 5, fee=1)])
    expected = (
        block.header.serialize() + block.coinbase.serialize() + struct.pack("<H", 1) + block.transfers[0].serialize()
    )
    assert block.serialize() == expected and block.operations is None and block.seal is None
    assert Block.deserialize(expected) == block
    assert block.leaf_ids() == block.txids()
    params = state.genesis_params
    assert (
        compute_genesis_commitment(params, CHAIN_ID)
        == GENESIS_TAG + hashlib.sha256(struct.pack("<Q", CHAIN_ID) + params.to_bytes()).digest()
    )


def test_slot_clock_of_a_pos_chain():
    from chain.pos.beacon import compute_slot_at_time, compute_slot_time

    h = harness()
    beacon = h.state.beacon
    assert compute_slot_time(beacon, 0) == beacon.genesis_time
    assert compute_slot_time(beacon, 5) == beacon.genesis_time + 5 * 30
    assert compute_slot_at_time(beacon, beacon.genesis_time + 5 * 30 + 29) == 5
    assert compute_slot_at_time(beacon, beacon.genesis_time - 100) == 0
