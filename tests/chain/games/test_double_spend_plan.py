"""The double-spend game's rules: the start's checks, the automatic publish, the verdict, the figures."""

from decimal import Decimal
from fractions import Fraction

import pytest

from chain.errors import DoubleSpendError, DoubleSpendPlanError
from chain.games.double_spend_plan import (
    BranchRace,
    Verdict,
    check_plan,
    is_ready_to_publish,
    judge,
    measured_share,
    paper_figure,
)

GOOD = dict(payer="1", merchant="2", attackers=frozenset({"1"}), amount=10, confirmations=2,
            attack_percent=90, honest_percent=10, deadline_minutes=5)


def plan(**changes):
    return check_plan(**{**GOOD, **changes})


def race(public_work=2, private_work=3, payment_height=5, public_height=6, public_blocks=2, private_blocks=3):
    return BranchRace(public_work, private_work, public_blocks, private_blocks, payment_height, public_height)


def test_a_good_plan():
    p = plan()
    assert (p.payer, p.merchant, p.amount, p.confirmations) == ("1", "2", 10, 2)
    assert (p.attack_percent, p.honest_percent, p.deadline_s) == (90, 10, 300)
    assert p.planned_share == Fraction(9, 10)


def test_q_as_set_is_the_attackers_part_of_what_the_bot_lends():
    assert plan(attack_percent=30, honest_percent=60).planned_share == Fraction(1, 3)
    assert plan(attack_percent=0, honest_percent=50).planned_share == 0
    # The bot lends nothing: the members alone decide, q is only known once measured.
    assert plan(attack_percent=0, honest_percent=0).planned_share is None


def test_the_papers_figure_before_is_its_table():
    # Section 11's table: q = 0.1, z = 5 -> 0.0009137; q = 0.3, z = 5 -> 0.1773523.
    assert paper_figure(Fraction(1, 10), 5) == Decimal("0.0009137")
    assert paper_figure(Fraction(3, 10), 5) == Decimal("0.1773523")
    assert paper_figure(Fraction(9, 10), 2) == Decimal("1.0000000")
    assert paper_figure(None, 2) is None


def test_confirmations_count_the_payments_block_and_those_on_top():
    assert race(payment_height=None).confirmations == 0
    assert race(payment_height=6, public_height=6).confirmations == 1
    assert race(payment_height=4, public_height=6).confirmations == 3


def test_published_automatically_only_with_k_confirmations_and_strictly_more_work():
    assert is_ready_to_publish(race(payment_height=5, public_height=6, public_work=2, private_work=3), 2)
    # One confirmation short.
    assert not is_ready_to_publish(race(payment_height=6, public_height=6, public_work=2, private_work=3), 2)
    # Level work: the public tip was seen first and keeps the tie.
    assert not is_ready_to_publish(race(public_work=3, private_work=3), 2)
    assert not is_ready_to_publish(race(payment_height=None), 1)


def test_the_verdict():
    assert judge(payment_reversed=True, confirmations_at_publish=2, confirmations=2) is Verdict.DOUBLE_SPENT
    assert judge(payment_reversed=True, confirmations_at_publish=1, confirmations=2) is Verdict.REVERSED_TOO_EARLY
    assert judge(payment_reversed=False, confirmations_at_publish=6, confirmations=2) is Verdict.PUBLIC_CHAIN_WON


def test_measured_share():
    assert measured_share(6, 2) == Fraction(3, 4)
    assert measured_share(0, 3) == 0
    assert measured_share(0, 0) is None


@pytest.mark.parametrize(("changes", "words"), [
    ({"merchant": "1"}, "merchant must not be the attacker"),
    ({"merchant": "3", "attackers": frozenset({"1", "3"})}, "one of the attacking team"),
    ({"amount": 0}, "at least 1 point"),
    ({"amount": 2.5}, "whole number"),
    ({"amount": True}, "whole number"),
    ({"confirmations": 0}, "from 1 to 6, not 0"),
    ({"confirmations": 7}, "from 1 to 6, not 7"),
    ({"attack_percent": 101}, "from 0 to 100 %, not 101"),
    ({"honest_percent": -1}, "from 0 to 100 %, not -1"),
    ({"attack_percent": 60, "honest_percent": 50}, "at most 100 % of its hashing core in all"),
    ({"deadline_minutes": 0}, "from 1 to 60 minutes"),
    ({"deadline_minutes": 61}, "from 1 to 60 minutes"),
])
def test_invalid_plans_say_what_is_wrong(changes, words):
    with pytest.raises(DoubleSpendPlanError, match=words):
        plan(**changes)


def test_invalid_plan_errors_are_double_spend_errors():
    assert issubclass(DoubleSpendPlanError, DoubleSpendError)
    assert DoubleSpendPlanError.code == "double_spend_plan"
