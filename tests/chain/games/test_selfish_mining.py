"""Selfish mining: Eyal and Sirer, "Majority is not Enough: Bitcoin Mining is Vulnerable" (Financial
Cryptography 2014; arXiv 1311.0243): Algorithm 1 as a seeded simulation, the closed-form revenue of
the pool (section 4.2, equation (8)) and the profitability threshold (1-γ)/(3-2γ) (Observation 1).

Statistical bound used below: batch means. Each batch is one independent run of the simulation
(from state 0 until BLOCKS blocks are found and the last fork has settled, so no block is left
pending); the pool's share of the main chain in each run is one sample. The mean of B = 30 samples
lies within 4 standard errors (sample standard deviation / sqrt(B)) of the true revenue except with
probability about 4e-4 (Student's t with 29 degrees of freedom); a run of BLOCKS blocks biases its
ratio by O(1/BLOCKS), about 1e-5 here against standard errors of 1e-3 to 2e-3. Exact fractions throughout:
(mean - R)² ≤ 16·s²/B.
"""

import random
from fractions import Fraction

import pytest

from chain.errors import (
    GameError,
    InvalidHashShareError,
    InvalidPoolStateError,
    InvalidSimulationLengthError,
    InvalidTieBreakError,
)
from chain.games.chance import happens
from chain.games.selfish_mining import (
    MAX_BLOCKS,
    Finder,
    PoolState,
    SelfishMiningResult,
    next_state,
    profitability_threshold,
    relative_revenue,
    simulate_selfish_mining,
)

BATCHES = 30
BLOCKS = 20_000


def batch_mean_and_variance(alpha, gamma, seed):
    """The mean pool share over BATCHES runs, and the squared standard error of that mean."""
    rng = random.Random(seed)
    shares = [simulate_selfish_mining(alpha, gamma, rng, blocks=BLOCKS).pool_share for _ in range(BATCHES)]
    mean = sum(shares) / BATCHES
    sample_variance = sum((s - mean) ** 2 for s in shares) / (BATCHES - 1)
    return mean, sample_variance / BATCHES


def stationary_revenue(a: Fraction, g: Fraction) -> Fraction:
    """The pool's revenue from the state machine's stationary distribution (section 4.2, equations
    (1)-(7)), independently of the closed form: balance gives p1 = α·p0, p0' = (1-α)·α·p0 and
    p_k = (α/(1-α))^(k-1)·p1 for k ≥ 1; the revenue of each transition is counted as in the paper."""
    odds = a / (1 - a)
    p0 = 1 / (1 + a * (1 - a) + a * (1 - a) / (1 - 2 * a))
    p1 = a * p0
    p0_race = (1 - a) * a * p0
    p2 = odds * p1
    from_three_up = p1 * odds**2 * (1 - a) / (1 - 2 * a)  # Σ_{k≥3} p_k
    pool = p0_race * a * 2 + p0_race * g * (1 - a) + p2 * (1 - a) * 2 + from_three_up * (1 - a)
    others = p0 * (1 - a) + p0_race * g * (1 - a) + p0_race * (1 - g) * (1 - a) * 2
    return pool / (pool + others)


def test_thresholds_from_the_paper():
    assert profitability_threshold(0) == Fraction(1, 3)
    assert profitability_threshold(Fraction(1, 2)) == Fraction(1, 4)
    assert profitability_threshold(1) == 0


def test_at_the_threshold_the_pool_earns_exactly_its_share():
    assert relative_revenue(Fraction(1, 3), 0) == Fraction(1, 3)
    assert relative_revenue(Fraction(1, 4), Fraction(1, 2)) == Fraction(1, 4)


@pytest.mark.parametrize("gamma", [Fraction(0), Fraction(1, 4), Fraction(1, 2), Fraction(3, 4), Fraction(1)])
def test_closed_form_below_the_threshold_is_under_alpha_and_above_it_over(gamma):
    threshold = profitability_threshold(gamma)
    for alpha in (Fraction(n, 100) for n in range(1, 50)):
        revenue = relative_revenue(alpha, gamma)
        if alpha < threshold:
            assert revenue < alpha, (alpha, gamma)
        elif alpha > threshold:
            assert revenue > alpha, (alpha, gamma)
        else:
            assert revenue == alpha


@pytest.mark.parametrize(
    ("alpha", "gamma"),
    [(Fraction(1, 3), Fraction(0)), (Fraction(2, 5), Fraction(0)), (Fraction(1, 4), Fraction(1, 2)),
     (Fraction(1, 5), Fraction(1)), (Fraction(9, 20), Fraction(3, 10)), (Fraction(1, 10), Fraction(1, 2))],
)
def test_closed_form_is_the_state_machines_stationary_revenue(alpha, gamma):
    assert relative_revenue(alpha, gamma) == stationary_revenue(alpha, gamma)


@pytest.mark.parametrize(
    ("alpha", "gamma", "seed"),
    [
        (Fraction(1, 3), Fraction(0), 1),
        (Fraction(2, 5), Fraction(0), 2),
        (Fraction(1, 4), Fraction(1, 2), 3),
        (Fraction(1, 5), Fraction(1), 4),
        (Fraction(3, 10), Fraction(1, 2), 5),
    ],
)
def test_simulation_matches_the_closed_form_within_four_standard_errors(alpha, gamma, seed):
    mean, se2 = batch_mean_and_variance(alpha, gamma, seed)
    expected = relative_revenue(alpha, gamma)
    assert (mean - expected) ** 2 <= 16 * se2, (float(mean), float(expected), float(se2) ** 0.5)
    # The bound is tight enough to mean something: four standard errors are under one point.
    assert 16 * se2 < Fraction(1, 100) ** 2


def test_simulation_shows_the_pool_gaining_above_the_threshold_and_losing_below():
    """α = 2/5 with γ = 0 (threshold 1/3): R = 104/215 ≈ 0.4837, so the pool earns more than its 40%;
    α = 1/4 with γ = 0: R ≈ 0.2045, less than its 25%. Both more than 4 standard errors from α."""
    above, se2_above = batch_mean_and_variance(Fraction(2, 5), 0, 6)
    assert above > Fraction(2, 5) and (above - Fraction(2, 5)) ** 2 > 16 * se2_above
    below, se2_below = batch_mean_and_variance(Fraction(1, 4), 0, 7)
    assert below < Fraction(1, 4) and (Fraction(1, 4) - below) ** 2 > 16 * se2_below


def test_every_block_found_is_on_the_main_chain_or_orphaned_and_no_fork_is_left_open():
    result = simulate_selfish_mining(Fraction(1, 3), Fraction(1, 2), random.Random(8), blocks=5_000)
    found = result.main_chain + result.pool_orphaned + result.honest_orphaned
    # The run stops at the first settled state after 5,000 blocks (a fork settles within a few blocks).
    assert 5_000 <= found < 5_100
    assert result.pool_share == Fraction(result.pool_blocks, result.main_chain)


def test_with_gamma_one_the_pool_never_loses_a_block():
    # γ = 1: every honest miner builds on the pool's branch in a race, so the pool's blocks all stay.
    result = simulate_selfish_mining(Fraction(1, 5), 1, random.Random(9), blocks=5_000)
    assert result.pool_orphaned == 0 and result.honest_orphaned > 0


def test_a_tiny_pool_orphans_little():
    result = simulate_selfish_mining(Fraction(1, 100), 0, random.Random(10), blocks=5_000)
    assert result.honest_orphaned + result.pool_orphaned < 5_000 // 50


def test_the_same_seed_plays_the_same_game():
    first = simulate_selfish_mining(Fraction(1, 3), Fraction(1, 2), random.Random(42), blocks=2_000)
    assert simulate_selfish_mining(Fraction(1, 3), Fraction(1, 2), random.Random(42), blocks=2_000) == first
    assert isinstance(first, SelfishMiningResult)


@pytest.mark.parametrize("alpha", [Fraction(0), Fraction(1, 2), Fraction(3, 5), Fraction(-1, 10), 1, 0])
def test_invalid_pool_share_outside_zero_to_one_half(alpha):
    with pytest.raises(InvalidHashShareError, match="above 0 and below 1/2"):
        relative_revenue(alpha, 0)
    with pytest.raises(InvalidHashShareError):
        simulate_selfish_mining(alpha, 0, random.Random(0), blocks=10)


@pytest.mark.parametrize("alpha", [0.3, "1/3", True])
def test_invalid_pool_share_not_an_exact_fraction(alpha):
    with pytest.raises(InvalidHashShareError, match="exact fraction"):
        relative_revenue(alpha, 0)


@pytest.mark.parametrize("gamma", [Fraction(-1, 10), Fraction(11, 10), 2, 0.5, None])
def test_invalid_tie_break_outside_zero_to_one(gamma):
    with pytest.raises(InvalidTieBreakError):
        relative_revenue(Fraction(1, 3), gamma)
    with pytest.raises(InvalidTieBreakError):
        profitability_threshold(gamma)
    with pytest.raises(InvalidTieBreakError):
        simulate_selfish_mining(Fraction(1, 3), gamma, random.Random(0), blocks=10)


@pytest.mark.parametrize("blocks", [0, -1, MAX_BLOCKS + 1, 10.0])
def test_invalid_simulation_length(blocks):
    with pytest.raises(InvalidSimulationLengthError):
        simulate_selfish_mining(Fraction(1, 3), 0, random.Random(0), blocks=blocks)


def test_every_refusal_is_a_game_error():
    for error in (InvalidHashShareError, InvalidTieBreakError, InvalidSimulationLengthError):
        assert issubclass(error, GameError)


# --- Algorithm 1, one block at a time (the transition the simulation and the live game share) -----------


def state(private, published, public):
    return PoolState(private, published, public)


@pytest.mark.parametrize(
    ("before", "finder", "after", "publish", "settled"),
    [
        # The pool finds a block: kept private, whatever the lead (the paper: "append new block to private chain").
        (state(0, 0, 0), Finder.POOL, state(1, 0, 0), 0, (0, 0, 0, 0)),
        (state(1, 0, 0), Finder.POOL, state(2, 0, 0), 0, (0, 0, 0, 0)),
        (state(3, 1, 1), Finder.POOL, state(4, 1, 1), 0, (0, 0, 0, 0)),
        # State 0', the pool finds: it publishes and wins, its two blocks against the honest one.
        (state(1, 1, 1), Finder.POOL, state(0, 0, 0), 1, (2, 0, 0, 1)),
        # Honest block, lead 0: the honest miners win, no fork.
        (state(0, 0, 0), Finder.HONEST, state(0, 0, 0), 0, (0, 1, 0, 0)),
        # Lead 1: the pool publishes its block to match, a race (0').
        (state(1, 0, 0), Finder.HONEST, state(1, 1, 1), 1, (0, 0, 0, 0)),
        # Lead 2: the pool publishes everything and wins by one.
        (state(2, 0, 0), Finder.HONEST, state(0, 0, 0), 2, (2, 0, 0, 1)),
        (state(4, 2, 2), Finder.HONEST, state(0, 0, 0), 2, (4, 0, 0, 3)),
        # Lead above 2: the pool publishes its oldest withheld block and keeps the lead.
        (state(3, 0, 0), Finder.HONEST, state(3, 1, 1), 1, (0, 0, 0, 0)),
        (state(5, 1, 1), Finder.HONEST, state(5, 2, 2), 1, (0, 0, 0, 0)),
        # State 0', an honest block on the honest branch: the pool's block is orphaned.
        (state(1, 1, 1), Finder.HONEST, state(0, 0, 0), 0, (0, 2, 1, 0)),
        # State 0', an honest block on the pool's branch (γ): the pool's block stays, the first honest one is orphaned.
        (state(1, 1, 1), Finder.HONEST_ON_POOL, state(0, 0, 0), 0, (1, 1, 0, 1)),
        # A longer tie (two honest blocks arrived before the pool answered): the same rules.
        (state(2, 2, 2), Finder.POOL, state(0, 0, 0), 1, (3, 0, 0, 2)),
        (state(2, 2, 2), Finder.HONEST, state(0, 0, 0), 0, (0, 3, 2, 0)),
    ],
)
def test_each_transition_is_algorithm_1(before, finder, after, publish, settled):
    step = next_state(before, finder)
    assert step.before == before and step.finder is finder
    assert step.after == after
    assert step.publish == publish
    assert (step.pool_settled, step.honest_settled, step.pool_orphaned, step.honest_orphaned) == settled


def test_state_names_are_the_papers():
    assert [s.name for s in (state(0, 0, 0), state(1, 1, 1), state(1, 0, 0), state(2, 0, 0), state(5, 2, 2))] == [
        "0", "0'", "1", "2", "3"]
    assert state(1, 1, 1).race and not state(0, 0, 0).race and state(0, 0, 0).settled
    assert state(4, 1, 1).withheld == 3


def test_the_simulation_walks_the_same_transitions():
    """Every step the simulation takes is ``next_state``'s: replaying its draws step by step gives its tallies."""
    rng, replay = random.Random(11), random.Random(11)
    result = simulate_selfish_mining(Fraction(1, 3), Fraction(1, 2), rng, blocks=3_000)
    current, totals, found = PoolState(), [0, 0, 0, 0], 0
    while found < 3_000 or not current.settled:
        found += 1
        if happens(replay, Fraction(1, 3)):
            finder = Finder.POOL
        elif current.race and happens(replay, Fraction(1, 2)):
            finder = Finder.HONEST_ON_POOL
        else:
            finder = Finder.HONEST
        step = next_state(current, finder)
        for i, n in enumerate((step.pool_settled, step.honest_settled, step.pool_orphaned, step.honest_orphaned)):
            totals[i] += n
        current = step.after
    assert tuple(totals) == (result.pool_blocks, result.honest_blocks, result.pool_orphaned, result.honest_orphaned)


@pytest.mark.parametrize(
    "counts",
    [(-1, 0, 0), (1, 2, 0), (1, 0, 2), (1, 0, 1), (2, 1, 2), (True, 0, 0), (1.0, 0, 0)],
)
def test_invalid_pool_state(counts):
    with pytest.raises(InvalidPoolStateError):
        PoolState(*counts)


@pytest.mark.parametrize("before", [state(0, 0, 0), state(1, 0, 0), state(3, 1, 1)])
def test_invalid_honest_block_on_the_pools_branch_outside_a_race(before):
    with pytest.raises(InvalidPoolStateError, match="needs a race"):
        next_state(before, Finder.HONEST_ON_POOL)


def test_invalid_transition_arguments():
    with pytest.raises(InvalidPoolStateError):
        next_state((0, 0, 0), Finder.POOL)
    with pytest.raises(InvalidPoolStateError):
        next_state(PoolState(), "pool")
    assert issubclass(InvalidPoolStateError, GameError)
