"""Deposit operations: wallet-signed, nonce-protected, with the validator key's proof of possession.

Rules after consensus-specs phase0 ``process_deposit`` (new validator or top-up; a new
validator activates at the next epoch here, see chain/pos/staking.py) with the wallet's nonce
space standing in for Ethereum's deposit contract, so a deposit cannot be replayed.
"""

from dataclasses import replace

from chain.errors import (
    BadSignatureError,
    DepositError,
    InsufficientBalanceError,
    InvalidAmountError,
    NonceGapError,
    NonceReplayError,
    UnknownAccountError,
)
from chain.events import STAKE_DEPOSITED, VALIDATOR_ACTIVATED
from chain.ledger.accounts import Account
from chain.pos.operations import Deposit, Operations, make_deposit
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

WALLET = key("wallet-0")
NEW_VALIDATOR = key("val-new")


def harness():
    state = new_consensus_chain(pos_config())
    return Harness(state, [*validator_keys(), NEW_VALIDATOR])


def deposit(amount=32, nonce=0, wallet=WALLET, validator=NEW_VALIDATOR, chain_id=CHAIN_ID):
    return make_deposit(wallet, validator, amount, nonce, chain_id)


def test_deposit_creates_a_validator_that_activates_next_epoch():
    h = harness()
    _, effects = h.propose(1, pool=Operations(deposits=(deposit(),)))
    beacon = h.state.beacon
    assert len(beacon.registry.validators) == 5
    assert beacon.registry.balances[4] == 32 * UNITS_PER_POINT
    assert beacon.registry.validators[4].activation_epoch == 1
    assert beacon.withdrawal_addresses[4] == WALLET.public_key
    assert h.state.ledger[WALLET.public_key] == Account(1_000 - 32, 1)
    assert any(e.kind == STAKE_DEPOSITED and e.payload["validator_index"] == 4 for e in effects.events)
    h.propose(8)  # first slot of epoch 1
    assert any(e.kind == VALIDATOR_ACTIVATED and e.payload["validator_index"] == 4 for e in h.events)
    assert h.state.total_supply_units() == h.state.issued_supply_units()


def test_top_up_adds_to_the_existing_validator():
    h = harness()
    h.propose(1, pool=Operations(deposits=(deposit(),)))
    h.propose(2, pool=Operations(deposits=(deposit(amount=5, nonce=1),)))
    assert len(h.state.beacon.registry.validators) == 5
    assert h.state.beacon.registry.balances[4] == 37 * UNITS_PER_POINT


def test_deposit_roundtrips_through_bytes():
    d = deposit()
    assert Deposit.deserialize(d.serialize()) == d


def test_invalid_deposit_replayed_is_refused():
    h = harness()
    h.propose(1, pool=Operations(deposits=(deposit(),)))
    assert_refused(h.state, forge_pos_block(h.state, 2, Operations(deposits=(deposit(),))), NonceReplayError)


def test_invalid_deposit_with_a_nonce_gap():
    h = harness()
    assert_refused(h.state, forge_pos_block(h.state, 1, Operations(deposits=(deposit(nonce=3),))), NonceGapError)


def test_invalid_deposit_without_proof_of_possession():
    h = harness()
    good = deposit()
    # Someone else's key signed the "possession" message: registering a key you do not hold.
    forged = replace(good, possession_signature=key("mallory").sign(good.possession_message(CHAIN_ID)))
    forged = replace(forged, wallet_signature=WALLET.sign(forged.signing_message(CHAIN_ID)))
    assert_refused(h.state, forge_pos_block(h.state, 1, Operations(deposits=(forged,))), BadSignatureError)


def test_invalid_deposit_not_signed_by_the_wallet():
    h = harness()
    forged = replace(deposit(), wallet_signature=key("mallory").sign(b"x"))
    assert_refused(h.state, forge_pos_block(h.state, 1, Operations(deposits=(forged,))), BadSignatureError)


def test_invalid_deposit_signed_for_another_chain():
    h = harness()
    other = deposit(chain_id=CHAIN_ID + 1)
    assert_refused(h.state, forge_pos_block(h.state, 1, Operations(deposits=(other,))), BadSignatureError)


def test_invalid_deposit_below_the_minimum_for_a_new_validator():
    h = harness()
    info = assert_refused(
        h.state, forge_pos_block(h.state, 1, Operations(deposits=(deposit(amount=31),))), DepositError
    )
    assert "at least" in str(info.value)


def test_invalid_deposit_beyond_the_balance():
    h = harness()
    assert_refused(
        h.state, forge_pos_block(h.state, 1, Operations(deposits=(deposit(amount=1_001),))), InsufficientBalanceError
    )


def test_invalid_deposit_of_zero_points():
    h = harness()
    assert_refused(h.state, forge_pos_block(h.state, 1, Operations(deposits=(deposit(amount=0),))), InvalidAmountError)


def test_invalid_deposit_from_an_unknown_wallet():
    h = harness()
    stranger = make_deposit(key("stranger"), NEW_VALIDATOR, 32, 0, CHAIN_ID)
    assert_refused(h.state, forge_pos_block(h.state, 1, Operations(deposits=(stranger,))), UnknownAccountError)


def test_block_builder_leaves_out_an_invalid_deposit():
    h = harness()
    block, _ = h.propose(1, pool=Operations(deposits=(deposit(amount=31), deposit())))
    assert block.operations.deposits == (deposit(),)


def test_block_builder_orders_a_deposit_after_the_same_wallets_transfer():
    from chain.ledger.transaction import make_transfer

    h = harness()
    pay = make_transfer(WALLET, key("wallet-1").public_key, 10, 0, 0, CHAIN_ID)
    block, _ = h.propose(1, transfers=[pay], pool=Operations(deposits=(deposit(nonce=1), deposit(nonce=0))))
    assert block.operations.deposits == (deposit(nonce=1),)  # nonce 0 is the transfer's
    assert h.state.ledger[WALLET.public_key] == Account(1_000 - 10 - 32, 2)
