"""Issue 10: every engine error names a stable, unique code; front ends key their words on it."""

import re

import pytest

from chain import errors
from chain.errors import (
    CODES,
    ChainBeforeStakingError,
    ChainError,
    ChainOfflineError,
    ChaosModeOffError,
    FaucetEmptyError,
    NoFaucetError,
    NotStakingChainError,
    NoValidatorError,
    StakingError,
)


def hierarchy(cls: type[ChainError]) -> list[type[ChainError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found += hierarchy(sub)
    return found


def test_every_error_class_has_its_own_snake_case_code_and_no_two_share_one():
    classes = hierarchy(ChainError)
    assert len(classes) > 90
    codes = [cls.code for cls in classes]
    assert len(set(codes)) == len(codes), sorted(c for c in codes if codes.count(c) > 1)
    for cls in classes:
        assert "code" in cls.__dict__, f"{cls.__name__} inherits its parent's code"
        assert re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", cls.code), cls.code
    assert {cls.code: cls for cls in classes} == CODES
    # Every class in chain/errors.py is in the hierarchy (nothing defined outside it by mistake).
    defined = {v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, Exception)}
    assert defined == set(classes)


def test_the_codes_front_ends_key_on_stay_what_they_are():
    """Renaming a class must not change its code: cogs/refusals.py and logs key on these strings."""
    expected = {
        NoValidatorError: "no_validator", ChaosModeOffError: "chaos_mode_off", ChainOfflineError: "chain_offline",
        NoFaucetError: "no_faucet", FaucetEmptyError: "faucet_empty", ChainBeforeStakingError: "chain_before_staking",
        NotStakingChainError: "not_staking_chain", ChainError: "chain_error",
    }
    assert {cls: cls.code for cls in expected} == expected


def test_a_class_without_its_own_code_or_with_a_taken_one_is_refused_when_defined():
    with pytest.raises(TypeError, match="must set its own code"):
        type("NoCodeError", (StakingError,), {})
    with pytest.raises(TypeError, match="'no_validator' is already NoValidatorError's"):
        type("AnotherNoValidatorError", (StakingError,), {"code": "no_validator"})
    assert "AnotherNoValidatorError" not in {cls.__name__ for cls in CODES.values()}


@pytest.mark.parametrize(
    ("error", "sentence", "facts"),
    [
        (NoValidatorError(7, "42", "withdraw"), "you have no validator on this chain",
         {"chain_id": 7, "owner": "42", "action": "withdraw"}),
        (ChaosModeOffError(7, "equivocate"), "equivocate only works in chaos mode, which is off on chain 7",
         {"chain_id": 7, "action": "equivocate"}),
        (ChainOfflineError(7, "EncodingError: bad bytes"), "chain 7 could not be loaded (EncodingError: bad bytes)",
         {"chain_id": 7, "reason": "EncodingError: bad bytes"}),
        (FaucetEmptyError(3, 32), "the faucet has 3 points left, fewer than the 32 a claim gives",
         {"left": 3, "amount": 32}),
        (ChainBeforeStakingError(7), "chain 7 was created before proof of stake existed, so it cannot stake",
         {"chain_id": 7}),
    ],
)
def test_an_error_keeps_its_facts_and_says_them_in_a_plain_sentence(error, sentence, facts):
    assert str(error).startswith(sentence)
    assert "/" not in str(error) and "admin" not in str(error)  # the words of a front end are its own
    assert {name: getattr(error, name) for name in facts} == facts
