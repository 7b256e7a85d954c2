"""Exact chances from an integer random source, and the checks on the fractions the games take."""

import random
from fractions import Fraction

import pytest

from chain.errors import InvalidHashShareError, InvalidSimulationLengthError
from chain.games.chance import exact_fraction, happens, whole_number


class EveryValueOnce:
    """A random source that returns 0, 1, ..., stop-1 in turn: each outcome exactly once per cycle."""

    def __init__(self) -> None:
        self.next = 0

    def randrange(self, stop: int) -> int:
        value = self.next % stop
        self.next += 1
        return value


@pytest.mark.parametrize("probability", [Fraction(1, 10), Fraction(3, 7), Fraction(0), Fraction(1), Fraction(99, 100)])
def test_an_event_happens_for_exactly_its_share_of_outcomes(probability):
    source = EveryValueOnce()
    outcomes = [happens(source, probability) for _ in range(probability.denominator)]
    assert sum(outcomes) == probability.numerator


def test_a_seeded_source_replays():
    draws = [happens(random.Random(3), Fraction(1, 3)) for _ in range(5)]
    assert draws == [happens(random.Random(3), Fraction(1, 3)) for _ in range(5)]


def test_exact_fraction_accepts_ints_and_fractions():
    assert exact_fraction("q", 1, InvalidHashShareError) == 1
    assert exact_fraction("q", Fraction(1, 10), InvalidHashShareError) == Fraction(1, 10)


@pytest.mark.parametrize("value", [0.1, "0.1", True, None, 1j])
def test_invalid_exact_fraction_refuses_floats_and_others(value):
    with pytest.raises(InvalidHashShareError, match="q must be an exact fraction"):
        exact_fraction("q", value, InvalidHashShareError)


@pytest.mark.parametrize("value", [1.0, "3", False, Fraction(3)])
def test_invalid_whole_number(value):
    with pytest.raises(InvalidSimulationLengthError, match="whole number"):
        whole_number("the rounds", value, InvalidSimulationLengthError)
