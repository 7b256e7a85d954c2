"""Exact chances: the random source the games are handed, and the checks on the fractions they take.

A game never imports ``random``: the caller passes something with ``randrange`` (a seeded
``random.Random`` in tests, so every simulated round can be replayed). An event of probability
``n/d`` happens when ``randrange(d) < n``, which is exact for any fraction, where comparing a
float ``random()`` with 0.1 would not be (0.1 has no exact binary value).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Protocol

from chain.errors import GameError


class RandomSource(Protocol):
    """Uniform integers in ``[0, stop)``; ``random.Random`` is one."""

    def randrange(self, stop: int, /) -> int: ...


def happens(rng: RandomSource, probability: Fraction) -> bool:
    """One draw of an event that has exactly ``probability``."""
    return rng.randrange(probability.denominator) < probability.numerator


def exact_fraction(name: str, value: object, error: type[GameError]) -> Fraction:
    """``value`` as a Fraction, if it is one already or an int; a float or anything else raises ``error``.

    Floats are refused rather than converted: ``Fraction(0.1)`` is 3602879701896397/36028797018963968,
    not the tenth the caller meant.
    """
    if isinstance(value, bool) or not isinstance(value, int | Fraction):
        raise error(f"{name} must be an exact fraction such as Fraction(1, 10), not {value!r}")
    return Fraction(value)


def whole_number(name: str, value: object, error: type[GameError]) -> int:
    """``value`` if it is an int (and not a bool); anything else raises ``error``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(f"{name} must be a whole number, not {value!r}")
    return value
