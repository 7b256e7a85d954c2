"""The double spend: the attacker's chance to catch up, from the Bitcoin paper and from the race itself.

Nakamoto, "Bitcoin: A Peer-to-Peer Electronic Cash System" (2008), section 11 "Calculations": an
attacker with a share ``q`` of the hash power (honest miners ``p = 1 - q``) pays a merchant, who
waits until ``z`` blocks are on the public chain, while the attacker mines a private branch. The
paper takes the attacker's progress meanwhile as Poisson with mean ``λ = z·q/p`` and a gambler's-ruin
chance ``(q/p)^(z-k)`` to catch up from ``z - k`` behind:

    P = 1 - Σ_{k=0..z} (λ^k e^(-λ) / k!) · (1 - (q/p)^(z-k))          (and P = 1 when q ≥ p)

``attacker_success_probability`` evaluates it without binary floats: ``q/p`` and ``λ`` are exact
fractions, the series and ``e^(-λ)`` are Decimals with enough guard digits that the figure is within
``10^-ACCURACY_PLACES`` of the true value before it is rounded (half even) to the places asked for,
7 like the paper's tables.

The Poisson is an approximation: the honest side's z blocks take a random time, not their mean
time. Block by block, each new block is the attacker's with probability q, so when the honest side
has its z blocks the attacker's count k is negative binomial, ``C(k+z-1, k)·p^z·q^k``.
``race_success_probability`` is that exact figure (a Fraction, no approximation at all), and
``simulate_race`` plays that race block by block. Their difference from the paper's figure is the
Poisson approximation alone (``tests/chain/games/test_double_spend.py`` pins it).

Two options shape the race to the playable game: ``must_overtake`` (a reorg needs strictly more
work, ties going to the first seen, so the attacker needs one block more than the paper's "catch
up"), and ``give_up_behind`` (the attacker stops once that many blocks behind; without it a losing
race never ends).

Pure: no clock, no randomness of its own, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from fractions import Fraction

from chain.errors import (
    InvalidConfirmationsError,
    InvalidGiveUpError,
    InvalidHashShareError,
    InvalidPlacesError,
    InvalidRiskError,
    InvalidSimulationLengthError,
    NoSafeConfirmationsError,
)
from chain.games.chance import RandomSource, exact_fraction, happens, whole_number

# The paper prints its tables with 7 decimal places.
PAPER_PLACES = 7
# The unrounded figure is within 10^-40 of the true value (see _nakamoto_sum); rounding to fewer
# places is then exact unless the true value lies within 10^-40 of a rounding boundary.
ACCURACY_PLACES = 40
# Beyond this the exact sums grow to tens of thousands of digits: a bound on the work one call can
# ask for (the paper's tables stop at 340; a game waits for a handful).
MAX_CONFIRMATIONS = 1000
# A simulation plays at most this many races per call, so no input can hold the caller for minutes.
MAX_ROUNDS = 1_000_000
# The paper's second table: the confirmations a merchant needs for the attacker's chance to fall under 0.1%.
PAPER_RISK = Fraction(1, 1000)


def check_attacker_share(q: object) -> Fraction:
    """The attacker's share ``q`` of the hash power, an exact fraction in [0, 1]."""
    share = exact_fraction("the attacker's hash share q", q, InvalidHashShareError)
    if not 0 <= share <= 1:
        raise InvalidHashShareError(f"the attacker's hash share q must be between 0 and 1, not {share}")
    return share


def check_confirmations(z: object) -> int:
    """The blocks ``z`` the merchant waits for: a whole number from 0 to MAX_CONFIRMATIONS."""
    blocks = whole_number("the confirmations z", z, InvalidConfirmationsError)
    if blocks < 0:
        raise InvalidConfirmationsError(f"the confirmations z cannot be negative ({blocks})")
    if blocks > MAX_CONFIRMATIONS:
        raise InvalidConfirmationsError(f"the confirmations z can be at most {MAX_CONFIRMATIONS:,}, not {blocks:,}")
    return blocks


def attacker_success_probability(q: Fraction | int, z: int, places: int = PAPER_PLACES) -> Decimal:
    """Nakamoto's ``AttackerSuccessProbability(q, z)`` (section 11), rounded half even to ``places``.

    Raises InvalidHashShareError for q outside [0, 1] or not exact, InvalidConfirmationsError for a
    bad z, InvalidPlacesError for ``places`` outside 0..ACCURACY_PLACES.
    """
    share = check_attacker_share(q)
    blocks = check_confirmations(z)
    if isinstance(places, bool) or not isinstance(places, int) or not 0 <= places <= ACCURACY_PLACES:
        raise InvalidPlacesError(f"places must be a whole number from 0 to {ACCURACY_PLACES}, not {places!r}")
    quantum = Decimal(1).scaleb(-places)
    if share >= Fraction(1, 2):
        # The paper: with p ≤ q the attacker catches up with certainty (gambler's ruin, q_z = 1).
        return Decimal(1).quantize(quantum)
    ratio = share / (1 - share)  # q/p, exact
    lam = blocks * ratio
    # Error budget: every Decimal operation below is correctly rounded to `digits` significant
    # digits, a relative error of at most 10^(1-digits). Rounding λ costs λ·10^(1-digits)
    # relatively in e^(-λ); the k-th Poisson weight λ^k/k! and the power (q/p)^(z-k) each carry at
    # most about 2z+2 roundings, the running sum z+1 more. Every term is positive (q < p) and the
    # weights sum to at most 1, so the absolute error of P stays under (λ + 4z + 8)·10^(1-digits),
    # which these guard digits keep below 10^-ACCURACY_PLACES.
    digits = ACCURACY_PLACES + len(str(math.floor(lam) + 4 * blocks + 8)) + 2
    with localcontext(Context(prec=digits, rounding=ROUND_HALF_EVEN, Emin=-(10**9), Emax=10**9)):
        lam_d = Decimal(lam.numerator) / Decimal(lam.denominator)
        ratio_d = Decimal(ratio.numerator) / Decimal(ratio.denominator)
        # powers[j] = (q/p)^j, for the gambler's-ruin chance of catching up from j behind.
        powers = [Decimal(1)]
        for _ in range(blocks):
            powers.append(powers[-1] * ratio_d)
        weight = (-lam_d).exp()  # the Poisson weight λ^k e^(-λ) / k!, for k = 0 first
        caught = Decimal(0)
        for k in range(blocks + 1):
            if k:
                weight = weight * lam_d / k
            caught += weight * (1 - powers[blocks - k])
        return (Decimal(1) - caught).quantize(quantum)


def format_probability(probability: Decimal) -> str:
    """Fixed-point text as the paper prints it: ``0.0000006``, never ``6E-7``."""
    return f"{probability:f}"


def confirmations_needed(q: Fraction | int, risk: Fraction | int = PAPER_RISK) -> int:
    """The smallest z for which the paper's P is below ``risk`` (section 11's second table, for 0.1%).

    Compares the figure at ACCURACY_PLACES, not the 7-place rounding. Raises NoSafeConfirmationsError
    when q ≥ 1/2 (P is 1 for every z) or when no z up to MAX_CONFIRMATIONS is enough.
    """
    share = check_attacker_share(q)
    bound = exact_fraction("the risk bound", risk, InvalidRiskError)
    if not 0 < bound <= 1:
        raise InvalidRiskError(f"the risk bound must be above 0 and at most 1, not {bound}")
    if share >= Fraction(1, 2):
        raise NoSafeConfirmationsError(
            f"with a hash share of {share} (at least half) the attacker always catches up: no number of "
            "confirmations is safe"
        )
    for z in range(MAX_CONFIRMATIONS + 1):
        if Fraction(attacker_success_probability(share, z, ACCURACY_PLACES)) < bound:
            return z
    raise NoSafeConfirmationsError(
        f"with a hash share of {share}, even {MAX_CONFIRMATIONS:,} confirmations leave the attacker a chance "
        f"of at least {bound}"
    )


def _check_race_share(q: object) -> Fraction:
    share = check_attacker_share(q)
    if share == 1:
        # The honest side never finds a block, so the merchant's wait (and the race) never ends.
        raise InvalidHashShareError("an attacker with all the hash power (q = 1) has no race to run: q must be below 1")
    return share


def _check_give_up(give_up_behind: object, z: int, must_overtake: bool) -> int:
    depth = whole_number("the give-up depth", give_up_behind, InvalidGiveUpError)
    # Deeper than the deepest the attacker can be when the merchant's wait ends, so the attacker
    # never gives up during the wait (the race's first phase) and the formula stays a sum of two phases.
    deepest = z + (1 if must_overtake else 0)
    if depth <= deepest:
        raise InvalidGiveUpError(
            f"the attacker must give up deeper than {deepest} blocks behind (z = {z}), not at {depth}"
        )
    return depth


def _catch_up(ratio: Fraction, gap: int, give_up_behind: int | None) -> Fraction:
    """Gambler's ruin: the chance a walk that closes the gap with odds ``ratio`` = q/p ever reaches 0
    from ``gap``, before reaching ``give_up_behind`` if given."""
    if gap <= 0:
        return Fraction(1)
    if give_up_behind is None:
        return ratio**gap if ratio < 1 else Fraction(1)
    if ratio == 1:
        return 1 - Fraction(gap, give_up_behind)
    # Hitting give_up_behind first: (1 - r^gap) / (1 - r^D), with r = q/p the odds of closing a step.
    return 1 - (1 - ratio**gap) / (1 - ratio**give_up_behind)


def race_success_probability(
    q: Fraction | int, z: int, *, must_overtake: bool = False, give_up_behind: int | None = None
) -> Fraction:
    """The exact chance that the block-by-block race ``simulate_race`` plays ends with the attacker caught up.

    When the honest side has z blocks the attacker has k with the negative-binomial chance
    ``C(k+z-1, k)·p^z·q^k`` (k = 0 with certainty when z = 0); from there a gambler's ruin decides.
    """
    share = _check_race_share(q)
    blocks = check_confirmations(z)
    depth = None if give_up_behind is None else _check_give_up(give_up_behind, blocks, must_overtake)
    if share == 0:
        return Fraction(1) if blocks == 0 and not must_overtake else Fraction(0)
    honest = 1 - share
    ratio = share / honest
    extra = 1 if must_overtake else 0
    if blocks == 0:
        return _catch_up(ratio, extra, depth)
    # 1 - Σ over the counts k that leave the attacker behind of NB(k)·(1 - catch-up chance).
    lost = Fraction(0)
    for k in range(blocks + extra):
        arrived = math.comb(k + blocks - 1, k) * honest**blocks * share**k
        lost += arrived * (1 - _catch_up(ratio, blocks - k + extra, depth))
    return 1 - lost


@dataclass(frozen=True)
class RaceOutcome:
    """One race: did the attacker catch up, and how many blocks each side found."""

    caught_up: bool
    attacker_blocks: int
    honest_blocks: int


def simulate_race(
    q: Fraction | int, z: int, rng: RandomSource, *, give_up_behind: int, must_overtake: bool = False
) -> RaceOutcome:
    """Play one race block by block: each block is the attacker's with probability exactly q.

    First the merchant waits for z honest blocks (the attacker mines privately meanwhile); then the
    attacker keeps mining until caught up (level, or one ahead with ``must_overtake``) or
    ``give_up_behind`` blocks behind.
    """
    share = _check_race_share(q)
    blocks = check_confirmations(z)
    depth = _check_give_up(give_up_behind, blocks, must_overtake)
    attacker = honest = 0
    while honest < blocks:
        if happens(rng, share):
            attacker += 1
        else:
            honest += 1
    extra = 1 if must_overtake else 0
    while 0 < honest - attacker + extra < depth:
        if happens(rng, share):
            attacker += 1
        else:
            honest += 1
    return RaceOutcome(honest - attacker + extra <= 0, attacker, honest)


def simulate_races(
    q: Fraction | int, z: int, rng: RandomSource, rounds: int, *, give_up_behind: int, must_overtake: bool = False
) -> int:
    """How many of ``rounds`` independent races the attacker wins."""
    count = whole_number("the rounds", rounds, InvalidSimulationLengthError)
    if not 0 < count <= MAX_ROUNDS:
        raise InvalidSimulationLengthError(f"the rounds must be from 1 to {MAX_ROUNDS:,}, not {count:,}")
    return sum(
        simulate_race(q, z, rng, give_up_behind=give_up_behind, must_overtake=must_overtake).caught_up
        for _ in range(count)
    )
