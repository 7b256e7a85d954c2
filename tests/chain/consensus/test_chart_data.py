"""chain/consensus/chart_data.py: the series `/chain chart` will plot, exact and validated."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain.consensus.chart_data import (
    compute_difficulty_series,
    compute_energy_comparison,
    compute_interval_histogram,
    compute_share_vs_wins,
)
from chain.errors import ChartBinsError, ChartDataError, ChartEmptyInputError, ChartValueError
from chain.params import PLAYGROUND
from chain.pow.header import BlockHeader

# e^-1 and e^-2 to 30 decimal places (published constants), to check the Decimal exp against.
E_MINUS_1 = Fraction("0.367879441171442321595523770161")
E_MINUS_2 = Fraction("0.135335283236612691893999494972")
TOLERANCE = Fraction(1, 10**28)

EASIEST_BITS = 0x207FFFFF  # PLAYGROUND's pow limit: difficulty 1
HARDER_BITS = 0x1F7FFFFF  # the same mantissa 2^8 smaller: difficulty 256


def header(bits: int, time: int = 0) -> BlockHeader:
    return BlockHeader(version=1, prev_hash=b"\0" * 32, merkle_root=b"\0" * 32, time=time, bits=bits, nonce=0)


def test_difficulty_series_marks_retargets_and_bit_changes():
    series = compute_difficulty_series(
        [(9, header(EASIEST_BITS)), (10, header(HARDER_BITS)), (11, header(HARDER_BITS)), (20, header(HARDER_BITS))],
        PLAYGROUND,
    )
    assert series.target_spacing_s == 60
    assert [(p.height, p.difficulty, p.is_retarget, p.bits_changed) for p in series.points] == [
        (9, 1, False, False),
        (10, 256, True, True),
        (11, 256, False, False),
        (20, 256, True, False),  # a retarget that kept the bits
    ]


def test_difficulty_series_genesis_is_not_a_retarget():
    (point,) = compute_difficulty_series([(0, header(EASIEST_BITS))], PLAYGROUND).points
    assert point.height == 0 and not point.is_retarget


def test_invalid_difficulty_series_inputs():
    with pytest.raises(ChartEmptyInputError):
        compute_difficulty_series([], PLAYGROUND)
    with pytest.raises(ChartValueError, match="strictly increase"):
        compute_difficulty_series([(5, header(EASIEST_BITS)), (5, header(EASIEST_BITS))], PLAYGROUND)
    with pytest.raises(ChartValueError, match="negative"):
        compute_difficulty_series([(-1, header(EASIEST_BITS))], PLAYGROUND)


def test_histogram_exact_small_case_checked_by_hand():
    # Times 0, 30, 90, 300 give intervals 30, 60, 210; bins [0, 60) and [60, inf) with T = 60.
    # Expected count of [a, b) among n intervals: n·(e^(-a/T) − e^(-b/T)), so with n = 3:
    # [0, 60): 3·(1 − e^-1) ≈ 1.896,  [60, inf): 3·e^-1 ≈ 1.104.
    histogram = compute_interval_histogram([0, 30, 90, 300], 60, [0, 60])
    assert histogram.intervals == 3 and histogram.negative_intervals == 0
    first, last = histogram.bins
    assert (first.lower_s, first.upper_s, first.observed) == (0, 60, 1)
    assert (last.lower_s, last.upper_s, last.observed) == (60, None, 2)
    assert abs(first.expected - 3 * (1 - E_MINUS_1)) < TOLERANCE
    assert abs(last.expected - 3 * E_MINUS_1) < TOLERANCE
    assert isinstance(first.expected, Fraction) and isinstance(last.expected, Fraction)


def test_histogram_middle_bin_is_the_difference_of_two_exponentials():
    # One interval; [60, 120) with T = 60 expects 1·(e^-1 − e^-2).
    histogram = compute_interval_histogram([0, 100], 60, [0, 60, 120])
    assert [b.observed for b in histogram.bins] == [0, 1, 0]
    assert abs(histogram.bins[1].expected - (E_MINUS_1 - E_MINUS_2)) < TOLERANCE
    assert abs(histogram.bins[2].expected - E_MINUS_2) < TOLERANCE


@given(
    times=st.lists(st.integers(min_value=0, max_value=10_000), min_size=2, max_size=40),
    spacing=st.integers(min_value=1, max_value=600),
    widths=st.lists(st.integers(min_value=1, max_value=500), max_size=8),
)
def test_histogram_expected_counts_sum_to_n_and_observed_too(times, spacing, widths):
    edges = [0]
    for width in widths:
        edges.append(edges[-1] + width)
    histogram = compute_interval_histogram(times, spacing, edges)
    n = len(times) - 1
    assert histogram.intervals == n
    assert sum(b.expected for b in histogram.bins) == n  # exactly: the bins telescope
    assert sum(b.observed for b in histogram.bins) == n
    assert all(b.expected >= 0 for b in histogram.bins)


def test_histogram_counts_a_backwards_timestamp_in_the_first_bin():
    histogram = compute_interval_histogram([100, 90, 200], 60, [0, 60])
    assert histogram.negative_intervals == 1
    assert [b.observed for b in histogram.bins] == [1, 1]


def test_histogram_edges_are_inclusive_below():
    histogram = compute_interval_histogram([0, 60], 60, [0, 60])
    assert [b.observed for b in histogram.bins] == [0, 1]


@pytest.mark.parametrize(
    "bins",
    [[], [10, 60], [0, 60, 60], [0, 60, 30], [0, 1.5], [0, True]],
    ids=["empty", "not-from-zero", "repeated", "decreasing", "float", "bool"],
)
def test_invalid_bins(bins):
    with pytest.raises(ChartBinsError):
        compute_interval_histogram([0, 60, 120], 60, bins)


@pytest.mark.parametrize("times", [[], [5]], ids=["no-blocks", "one-block"])
def test_invalid_empty_block_times(times):
    with pytest.raises(ChartEmptyInputError, match="at least two"):
        compute_interval_histogram(times, 60, [0, 60])


@pytest.mark.parametrize("spacing", [0, -60, True])
def test_invalid_target_spacing(spacing):
    with pytest.raises(ChartValueError):
        compute_interval_histogram([0, 60], spacing, [0, 60])


def test_share_vs_wins_for_miners_and_validators():
    miner_a, miner_b, miner_c = b"a" * 32, b"b" * 32, b"c" * 32
    rows = compute_share_vs_wins({miner_a: 30, miner_b: 10}, {miner_a: 2, miner_b: 1, miner_c: 1})
    assert [(r.participant, r.share, r.win_share, r.wins) for r in rows] == [
        (miner_a, Fraction(3, 4), Fraction(1, 2), 2),
        (miner_b, Fraction(1, 4), Fraction(1, 4), 1),
        (miner_c, Fraction(0), Fraction(1, 4), 1),  # won without reported hash power
    ]
    # Validators by index: stake vs proposals; ties broken by key.
    rows = compute_share_vs_wins({2: 32, 1: 32}, {1: 3, 2: 3})
    assert [(r.participant, r.share, r.win_share) for r in rows] == [
        (1, Fraction(1, 2), Fraction(1, 2)),
        (2, Fraction(1, 2), Fraction(1, 2)),
    ]


def test_invalid_share_vs_wins():
    with pytest.raises(ChartEmptyInputError, match="no blocks won"):
        compute_share_vs_wins({"a": 1}, {})
    with pytest.raises(ChartEmptyInputError, match="all shares are 0"):
        compute_share_vs_wins({"a": 0}, {"a": 1})
    with pytest.raises(ChartValueError, match="-1"):
        compute_share_vs_wins({"a": -1, "b": 2}, {"a": 1})
    with pytest.raises(ChartValueError):
        compute_share_vs_wins({"a": 1}, {"a": 1.5})  # type: ignore[dict-item]


def test_chart_errors_share_a_family():
    assert issubclass(ChartBinsError, ChartDataError)
    assert issubclass(ChartEmptyInputError, ChartDataError)
    assert issubclass(ChartValueError, ChartDataError)


def test_energy_is_compared_per_block_when_the_chain_has_both_kinds_of_block():
    merged = compute_energy_comparison(pow_millijoules=9_000, pos_millijoules=6, pow_blocks=10, pos_blocks=3)
    assert merged.per_block
    assert (merged.pow_per_block, merged.pos_per_block) == (Fraction(900), Fraction(2))
    assert merged.ratio == 450
    # Before the Merge (or in a hybrid chain) there are no proof-of-stake blocks: totals, compared.
    hybrid = compute_energy_comparison(9_000, 6, pow_blocks=10, pos_blocks=0)
    assert not hybrid.per_block and hybrid.pos_per_block is None and hybrid.ratio == 1_500
    # Proof of stake's few signatures round to 0 mJ: no ratio to state.
    assert compute_energy_comparison(9_000, 0, 10, 3).ratio is None


def test_invalid_energy_comparison_inputs():
    with pytest.raises(ChartEmptyInputError, match="under 1 mJ"):
        compute_energy_comparison(0, 0, 5, 5)
    with pytest.raises(ChartValueError, match="proof-of-work blocks"):
        compute_energy_comparison(1, 1, -1, 0)
    with pytest.raises(ChartValueError, match="proof-of-stake energy"):
        compute_energy_comparison(1, True, 1, 0)
