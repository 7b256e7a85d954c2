"""process_transfer: every refusal has its own typed error, and refusals change nothing."""

from dataclasses import replace

import pytest

from chain.errors import (
    BadSignatureError,
    EncodingError,
    InsufficientBalanceError,
    InvalidAmountError,
    InvalidFeeError,
    NonceGapError,
    NonceReplayError,
    SelfTransferError,
    UnknownAccountError,
)
from chain.ledger.accounts import Account, process_transfer
from chain.ledger.transaction import Transfer, deserialize_transfer, make_transfer
from chain.params import REGTEST
from tests.chainkit import CHAIN_ID, key

ALICE, BOB = key("alice"), key("bob")


def accounts(balance=100, nonce=0):
    return {ALICE.public_key: Account(balance, nonce)}


def transfer(amount=10, fee=1, nonce=0, chain_id=CHAIN_ID, sender=ALICE):
    return make_transfer(sender, BOB.public_key, amount, fee, nonce, chain_id)


def test_valid_transfer_moves_amount_and_fee_and_bumps_nonce():
    before = accounts()
    after = process_transfer(before, transfer(), CHAIN_ID, REGTEST)
    assert after[ALICE.public_key] == Account(89, 1)
    assert after[BOB.public_key] == Account(10, 0)
    assert before == accounts()  # the input view is untouched


def test_serialization_round_trip():
    tx = transfer()
    assert deserialize_transfer(tx.serialize())[0] == tx
    assert len(tx.txid()) == 32


def test_invalid_bad_signature():
    tx = replace(transfer(), amount=50)  # signature was over amount 10
    with pytest.raises(BadSignatureError):
        process_transfer(accounts(), tx, CHAIN_ID, REGTEST)


def test_invalid_signature_from_another_chain():
    with pytest.raises(BadSignatureError):
        process_transfer(accounts(), transfer(chain_id=CHAIN_ID + 1), CHAIN_ID, REGTEST)


def test_invalid_replayed_nonce():
    with pytest.raises(NonceReplayError, match="already used"):
        process_transfer(accounts(nonce=1), transfer(nonce=0), CHAIN_ID, REGTEST)


def test_invalid_out_of_order_nonce():
    with pytest.raises(NonceGapError, match="out of order; the next nonce is 0"):
        process_transfer(accounts(), transfer(nonce=2), CHAIN_ID, REGTEST)


def test_invalid_insufficient_balance_counts_the_fee():
    with pytest.raises(InsufficientBalanceError, match="balance 100"):
        process_transfer(accounts(), transfer(amount=100, fee=1), CHAIN_ID, REGTEST)


@pytest.mark.parametrize("amount", [0, -5])
def test_invalid_non_positive_amount(amount):
    tx = Transfer(ALICE.public_key, BOB.public_key, amount, 0, 0, bytes(64))
    with pytest.raises(InvalidAmountError, match="positive"):
        process_transfer(accounts(), tx, CHAIN_ID, REGTEST)


def test_invalid_negative_fee():
    tx = Transfer(ALICE.public_key, BOB.public_key, 5, -1, 0, bytes(64))
    with pytest.raises(InvalidFeeError, match="zero or more"):
        process_transfer(accounts(), tx, CHAIN_ID, REGTEST)


def test_invalid_amount_beyond_supported_range():
    tx = Transfer(ALICE.public_key, BOB.public_key, REGTEST.max_amount_points + 1, 0, 0, bytes(64))
    with pytest.raises(InvalidAmountError, match="beyond the supported maximum"):
        process_transfer(accounts(), tx, CHAIN_ID, REGTEST)


def test_invalid_amount_plus_fee_beyond_range():
    tx = Transfer(ALICE.public_key, BOB.public_key, REGTEST.max_amount_points, 1, 0, bytes(64))
    with pytest.raises(InvalidFeeError, match="beyond the supported maximum"):
        process_transfer(accounts(), tx, CHAIN_ID, REGTEST)


def test_invalid_unknown_sender():
    with pytest.raises(UnknownAccountError, match="never held any points"):
        process_transfer({}, transfer(), CHAIN_ID, REGTEST)


def test_invalid_self_transfer():
    tx = make_transfer(ALICE, ALICE.public_key, 1, 0, 0, CHAIN_ID)
    with pytest.raises(SelfTransferError):
        process_transfer(accounts(), tx, CHAIN_ID, REGTEST)


def test_invalid_malformed_key():
    tx = Transfer(b"\x01" * 31, BOB.public_key, 1, 0, 0, bytes(64))
    with pytest.raises(EncodingError):
        process_transfer(accounts(), tx, CHAIN_ID, REGTEST)
