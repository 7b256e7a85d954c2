"""The double spend's figures: Nakamoto, "Bitcoin: A Peer-to-Peer Electronic Cash System" (2008),
section 11 "Calculations" (its C function AttackerSuccessProbability and the two tables printed
after it), the exact block-by-block race, and a seeded simulation of that race.

Statistical bound used below: a simulated success count over N independent races is binomial, so
its rate lies within 4 standard errors, 4·sqrt(P(1-P)/N), of the true P except with probability
about 6e-5 (normal approximation); the seeds are fixed, so each run of the suite is the same draw.
The comparison is squared and done in exact fractions: (rate - P)² ≤ 16·P(1-P)/N.
"""

import random
from decimal import Context, Decimal, localcontext
from fractions import Fraction

import pytest

from chain.errors import (
    GameError,
    InvalidConfirmationsError,
    InvalidGiveUpError,
    InvalidHashShareError,
    InvalidPlacesError,
    InvalidRiskError,
    InvalidSimulationLengthError,
    NoSafeConfirmationsError,
)
from chain.games.double_spend import (
    MAX_CONFIRMATIONS,
    attacker_success_probability,
    confirmations_needed,
    format_probability,
    race_success_probability,
    simulate_race,
    simulate_races,
)

# Section 11, first table: "q=0.1" and "q=0.3", P rounded to 7 places.
PAPER_Q_TENTH = {
    0: "1.0000000", 1: "0.2045873", 2: "0.0509779", 3: "0.0131722", 4: "0.0034552", 5: "0.0009137",
    6: "0.0002428", 7: "0.0000647", 8: "0.0000173", 9: "0.0000046", 10: "0.0000012",
}
PAPER_Q_THREE_TENTHS = {
    0: "1.0000000", 5: "0.1773523", 10: "0.0416605", 15: "0.0101008", 20: "0.0024804", 25: "0.0006132",
    30: "0.0001522", 35: "0.0000379", 40: "0.0000095", 45: "0.0000024", 50: "0.0000006",
}
# Section 11, second table: "Solving for P less than 0.1%".
PAPER_Z_FOR_TENTH_OF_A_PERCENT = {
    "0.10": 5, "0.15": 8, "0.20": 11, "0.25": 15, "0.30": 24, "0.35": 41, "0.40": 89, "0.45": 340,
}


def within_four_standard_errors(successes: int, rounds: int, p: Fraction) -> bool:
    rate = Fraction(successes, rounds)
    return (rate - p) ** 2 <= 16 * p * (1 - p) / rounds


@pytest.mark.parametrize(("z", "figure"), sorted(PAPER_Q_TENTH.items()))
def test_matches_the_papers_table_for_q_one_tenth(z, figure):
    assert format_probability(attacker_success_probability(Fraction(1, 10), z)) == figure


@pytest.mark.parametrize(("z", "figure"), sorted(PAPER_Q_THREE_TENTHS.items()))
def test_matches_the_papers_table_for_q_three_tenths(z, figure):
    assert format_probability(attacker_success_probability(Fraction(3, 10), z)) == figure


def test_the_figure_is_a_decimal_to_the_places_asked_and_accurate_beyond_the_papers_seven():
    p = attacker_success_probability(Fraction(1, 10), 5)
    assert p == Decimal("0.0009137") and p.as_tuple().exponent == -7
    fine = attacker_success_probability(Fraction(1, 10), 5, places=40)
    assert fine.as_tuple().exponent == -40
    assert abs(fine - p) <= Decimal("0.00000005")
    # Rounding the 40-place figure gives the 7-place one: one computation, two roundings.
    assert fine.quantize(Decimal("0.0000001")) == p


@pytest.mark.parametrize(("q", "z"), sorted(PAPER_Z_FOR_TENTH_OF_A_PERCENT.items()))
def test_confirmations_needed_match_the_papers_second_table(q, z):
    assert confirmations_needed(Fraction(q)) == z
    # And it is the smallest: one block fewer is not below 0.1%.
    assert attacker_success_probability(Fraction(q), z, places=40) < Decimal("0.001")
    assert attacker_success_probability(Fraction(q), z - 1, places=40) >= Decimal("0.001")


def reference_figure(q: Fraction, z: int) -> Decimal:
    """The paper's P another way: the sum as one exact fraction, e^(-λ) at 150 digits."""
    ratio = q / (1 - q)
    lam = z * ratio
    total, term = Fraction(0), Fraction(1)
    for k in range(z + 1):
        term = term * lam / k if k else term
        total += term * (1 - ratio ** (z - k))
    with localcontext(Context(prec=150)):
        decay = (-(Decimal(lam.numerator) / Decimal(lam.denominator))).exp()
        return 1 - Decimal(total.numerator) * decay / Decimal(total.denominator)


@pytest.mark.parametrize(("q", "z"), [(Fraction(1, 10), 10), (Fraction(3, 10), 50), (Fraction(9, 20), 340),
                                      (Fraction(49, 100), 400), (Fraction(1, 1000), 3)])
def test_the_unrounded_figure_is_within_ten_to_the_minus_forty(q, z):
    with localcontext(Context(prec=150)):
        error = abs(attacker_success_probability(q, z, places=40) - reference_figure(q, z))
        # Within 10^-40 before rounding, plus half of the 40th place the rounding may add.
        assert error <= Decimal("1.5e-40")


def test_edge_shares():
    # No hash power: caught up only if nothing needs catching up.
    assert attacker_success_probability(0, 0) == 1 and attacker_success_probability(0, 3) == 0
    # The paper: with p ≤ q the attacker always catches up.
    assert attacker_success_probability(Fraction(1, 2), 100) == 1
    assert attacker_success_probability(1, 6) == 1


def test_the_figure_falls_with_every_confirmation():
    for q in (Fraction(1, 10), Fraction(3, 10), Fraction(9, 20)):
        figures = [attacker_success_probability(q, z, places=40) for z in range(30)]
        assert figures == sorted(figures, reverse=True) and len(set(figures)) == 30


def test_exact_race_small_cases_by_hand():
    # z = 1, q = 1/10: with chance 9/10 the honest block comes first and the attacker, one behind,
    # catches up with chance (q/p)^1 = 1/9; otherwise the attacker has a block by then (level or ahead).
    assert race_success_probability(Fraction(1, 10), 1) == Fraction(1, 10) + Fraction(9, 10) * Fraction(1, 9)
    assert race_success_probability(Fraction(1, 10), 0) == 1
    # Overtaking (the game's rule: ties go to the first seen) needs one more block: from level,
    # (q/p)^1; with z = 1, k attacker blocks before the honest one (chance (1/10)^k·9/10) leave a gap
    # of 2 - k: (1/9)^2 for k = 0, 1/9 for k = 1, and success for k ≥ 2 (chance 1/100).
    assert race_success_probability(Fraction(1, 10), 0, must_overtake=True) == Fraction(1, 9)
    assert race_success_probability(Fraction(1, 10), 1, must_overtake=True) == (
        Fraction(9, 10) * Fraction(1, 81) + Fraction(9, 100) * Fraction(1, 9) + Fraction(1, 100)
    )
    # Giving up 2 behind from 1 behind at even odds: a fair gambler's ruin, 1/2.
    assert race_success_probability(Fraction(1, 2), 0, must_overtake=True, give_up_behind=2) == Fraction(1, 2)


def test_giving_up_deep_enough_changes_the_exact_figure_only_by_the_ruin_tail():
    q = Fraction(3, 10)
    never = race_success_probability(q, 5)
    deep = race_success_probability(q, 5, give_up_behind=40)
    # Giving up can only lose races, and at 40 behind with odds 3/7 a step it loses under (3/7)^40·(7/4).
    assert 0 < never - deep < Fraction(3, 7) ** 35


def test_the_papers_poisson_figure_underestimates_the_exact_race():
    """Honestly stated: section 11 takes the attacker's progress as Poisson (the honest blocks taking
    their mean time); the real race's progress is negative binomial (the model Rosenfeld, "Analysis
    of hashrate-based double spending", 2014, uses). The exact figure is higher for every z ≥ 2 of
    the paper's table; only at z = 1 is the paper's a little higher (0.2045873 against exactly 1/5).
    At z = 5: 0.0009137 (paper) vs 0.00178184 (exact) for q = 0.1; 0.1773523 vs 0.1976173 for q = 0.3,
    and at z = 10, 0.0000012 vs 0.0000079 and 0.0416605 vs 0.0651067."""
    for q, table in ((Fraction(1, 10), PAPER_Q_TENTH), (Fraction(3, 10), PAPER_Q_THREE_TENTHS)):
        for z in table:
            exact = race_success_probability(q, z)
            paper = Fraction(attacker_success_probability(q, z, places=40))
            if z == 0:
                assert exact == paper == 1
            elif z == 1:
                assert exact == Fraction(1, 5) < paper
            else:
                assert exact > paper, (q, z)
    assert race_success_probability(Fraction(1, 10), 5) == Fraction(178184, 100000000)
    assert round(race_success_probability(Fraction(3, 10), 5), 7) == Fraction(1976173, 10**7)


@pytest.mark.parametrize(
    ("q", "z", "must_overtake", "give_up", "rounds", "seed"),
    [
        (Fraction(1, 10), 2, False, 10, 40_000, 11),
        (Fraction(3, 10), 5, False, 12, 40_000, 12),
        (Fraction(3, 10), 3, True, 12, 20_000, 13),
        (Fraction(9, 20), 6, True, 20, 10_000, 14),
    ],
)
def test_simulated_race_matches_the_exact_figure_within_four_standard_errors(
    q, z, must_overtake, give_up, rounds, seed
):
    exact = race_success_probability(q, z, must_overtake=must_overtake, give_up_behind=give_up)
    wins = simulate_races(q, z, random.Random(seed), rounds, give_up_behind=give_up, must_overtake=must_overtake)
    assert within_four_standard_errors(wins, rounds, exact), (wins, rounds, float(exact))


def test_the_simulation_tells_the_exact_race_from_the_papers_poisson_figure():
    """At q = 0.3, z = 5 the model gap (0.0203) is about 7 standard errors of 40,000 races: the
    simulated rate sits within 4 of the exact figure and more than 4 away from the paper's."""
    q, z, rounds = Fraction(3, 10), 5, 40_000
    wins = simulate_races(q, z, random.Random(12), rounds, give_up_behind=12)
    exact = race_success_probability(q, z, give_up_behind=12)
    paper = Fraction(attacker_success_probability(q, z, places=40))
    assert within_four_standard_errors(wins, rounds, exact)
    assert not within_four_standard_errors(wins, rounds, paper)


def test_one_race_reports_its_blocks():
    outcome = simulate_race(Fraction(1, 10), 3, random.Random(5), give_up_behind=6)
    assert outcome.honest_blocks >= 3
    gap = outcome.honest_blocks - outcome.attacker_blocks
    assert (gap <= 0) if outcome.caught_up else (gap == 6)


def test_the_same_seed_plays_the_same_races():
    first = simulate_races(Fraction(1, 4), 4, random.Random(99), 2_000, give_up_behind=10)
    assert simulate_races(Fraction(1, 4), 4, random.Random(99), 2_000, give_up_behind=10) == first


@pytest.mark.parametrize("q", [Fraction(-1, 10), Fraction(11, 10), 2, -1])
def test_invalid_attacker_share_outside_zero_to_one(q):
    with pytest.raises(InvalidHashShareError, match="between 0 and 1"):
        attacker_success_probability(q, 3)
    with pytest.raises(InvalidHashShareError):
        race_success_probability(q, 3)


@pytest.mark.parametrize("q", [0.1, "0.1", Decimal("0.1"), True, None])
def test_invalid_attacker_share_not_an_exact_fraction(q):
    with pytest.raises(InvalidHashShareError, match="exact fraction"):
        attacker_success_probability(q, 3)


def test_invalid_race_with_all_the_hash_power():
    with pytest.raises(InvalidHashShareError, match="no race"):
        simulate_race(1, 3, random.Random(0), give_up_behind=5)
    with pytest.raises(InvalidHashShareError, match="no race"):
        race_success_probability(1, 3)


@pytest.mark.parametrize("z", [-1, MAX_CONFIRMATIONS + 1, 2.0, True, "3"])
def test_invalid_confirmations(z):
    with pytest.raises(InvalidConfirmationsError):
        attacker_success_probability(Fraction(1, 10), z)
    with pytest.raises(InvalidConfirmationsError):
        race_success_probability(Fraction(1, 10), z)


def test_invalid_negative_confirmations_says_so():
    with pytest.raises(InvalidConfirmationsError, match="cannot be negative"):
        simulate_race(Fraction(1, 10), -3, random.Random(0), give_up_behind=5)


@pytest.mark.parametrize("give_up", [3, 2, 0, -1, 4.5, None])
def test_invalid_give_up_not_deeper_than_the_wait(give_up):
    # z = 3: the attacker can be 3 behind when the wait ends, so giving up must be deeper.
    with pytest.raises(InvalidGiveUpError):
        simulate_race(Fraction(1, 10), 3, random.Random(0), give_up_behind=give_up)


def test_invalid_give_up_counts_the_extra_block_to_overtake():
    race_success_probability(Fraction(1, 10), 3, give_up_behind=4)
    with pytest.raises(InvalidGiveUpError, match="deeper than 4"):
        race_success_probability(Fraction(1, 10), 3, give_up_behind=4, must_overtake=True)


@pytest.mark.parametrize("rounds", [0, -5, 1_000_001, 10.0])
def test_invalid_rounds(rounds):
    with pytest.raises(InvalidSimulationLengthError):
        simulate_races(Fraction(1, 10), 2, random.Random(0), rounds, give_up_behind=5)


@pytest.mark.parametrize("places", [-1, 41, 7.0])
def test_invalid_places(places):
    with pytest.raises(InvalidPlacesError):
        attacker_success_probability(Fraction(1, 10), 2, places=places)


@pytest.mark.parametrize("risk", [0, Fraction(-1, 100), Fraction(3, 2), 0.001])
def test_invalid_risk_bound(risk):
    with pytest.raises(InvalidRiskError):
        confirmations_needed(Fraction(1, 10), risk)


def test_invalid_no_safe_number_of_confirmations():
    with pytest.raises(NoSafeConfirmationsError, match="always catches up"):
        confirmations_needed(Fraction(1, 2))
    # A risk no z up to the cap reaches: at q = 0.49 the figure falls too slowly.
    with pytest.raises(NoSafeConfirmationsError, match="1,000 confirmations"):
        confirmations_needed(Fraction(49, 100), Fraction(1, 10**30))


def test_every_refusal_is_a_game_error():
    for error in (InvalidHashShareError, InvalidConfirmationsError, InvalidGiveUpError, InvalidPlacesError,
                  InvalidRiskError, InvalidSimulationLengthError, NoSafeConfirmationsError):
        assert issubclass(error, GameError)
