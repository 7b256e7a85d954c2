"""Voluntary exits: consensus-specs phase0 ``process_voluntary_exit`` (signed by the validator key,
active, not already exiting, its epoch reached)."""

from chain.errors import (
    BadSignatureError,
    ExitError,
    UnknownValidatorError,
    ValidatorStatusError,
)
from chain.events import VALIDATOR_EXITED
from chain.pos.operations import Operations, VoluntaryExit, make_voluntary_exit
from chain.pos.staking import FAR_FUTURE_EPOCH, is_active_validator
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


def harness(**overrides):
    return Harness(new_consensus_chain(pos_config(unbonding_epochs=2, slashed_unbonding_epochs=4, **overrides)), KEYS)


def exit_of(index, epoch=0, signer=None, chain_id=CHAIN_ID):
    return make_voluntary_exit(signer or KEYS[index], index, epoch, chain_id)


def test_exit_takes_effect_next_epoch_and_unlocks_after_unbonding():
    h = harness()
    h.propose(1, pool=Operations(voluntary_exits=(exit_of(3),)))
    validator = h.state.beacon.registry.validators[3]
    assert (validator.exit_epoch, validator.withdrawable_epoch) == (1, 3)
    h.propose(8)
    assert any(e.kind == VALIDATOR_EXITED and e.payload["validator_index"] == 3 for e in h.events)
    assert not is_active_validator(h.state.beacon.registry.validators[3], 1)


def test_exit_roundtrips_through_bytes():
    e = exit_of(2, epoch=7)
    assert VoluntaryExit.deserialize(e.serialize()) == e


def test_invalid_exit_signed_by_another_key():
    h = harness()
    forged = exit_of(3, signer=KEYS[0])
    assert_refused(h.state, forge_pos_block(h.state, 1, Operations(voluntary_exits=(forged,))), BadSignatureError)


def test_invalid_exit_signed_for_another_chain():
    h = harness()
    other = exit_of(3, chain_id=CHAIN_ID + 1)
    assert_refused(h.state, forge_pos_block(h.state, 1, Operations(voluntary_exits=(other,))), BadSignatureError)


def test_invalid_exit_before_its_epoch():
    h = harness()
    early = exit_of(3, epoch=5)
    assert_refused(h.state, forge_pos_block(h.state, 1, Operations(voluntary_exits=(early,))), ExitError)


def test_invalid_exit_of_an_unknown_validator():
    h = harness()
    ghost = make_voluntary_exit(key("ghost"), 9, 0, CHAIN_ID)
    assert_refused(h.state, forge_pos_block(h.state, 1, Operations(voluntary_exits=(ghost,))), UnknownValidatorError)


def test_invalid_exit_twice():
    h = harness()
    h.propose(1, pool=Operations(voluntary_exits=(exit_of(3),)))
    again = exit_of(3)
    assert h.state.beacon.registry.validators[3].exit_epoch != FAR_FUTURE_EPOCH
    assert_refused(h.state, forge_pos_block(h.state, 2, Operations(voluntary_exits=(again,))), ValidatorStatusError)


def test_invalid_exit_of_a_pending_validator():
    from chain.pos.operations import make_deposit

    new = key("val-new")
    h = Harness(h_state := new_consensus_chain(pos_config()), [*KEYS, new])
    h.propose(1, pool=Operations(deposits=(make_deposit(key("wallet-0"), new, 32, 0, CHAIN_ID),)))
    pending_exit = make_voluntary_exit(new, 4, 0, CHAIN_ID)
    block = forge_pos_block(h_state, 2, Operations(voluntary_exits=(pending_exit,)), keys=[*KEYS, new])
    assert_refused(h_state, block, ValidatorStatusError)
