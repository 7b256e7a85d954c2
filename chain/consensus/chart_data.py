"""The data series the coming ``/chain chart`` plots, computed from engine values.

Pure: integers and ``Fraction``s only, no binary floats, no I/O; the renderer (which may use
floats to draw) turns these into pictures.  Each function validates its inputs and raises a
``ChartDataError`` subclass that says what was wrong.

* ``compute_difficulty_series``: difficulty over height, retarget heights marked.
* ``compute_interval_histogram``: observed inter-block times per bin against the counts an
  exponential distribution with mean = target spacing predicts.
* ``compute_share_vs_wins``: per participant, share of hash power (or stake) against share of
  blocks won (or proposals); one function serves miners and validators.
* ``compute_energy_comparison``: proof of work's energy against proof of stake's, per block of
  each kind when a chain has both, and their ratio.

The supply over height needs a replay of the chain: ``chain/consensus/supply_history.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from fractions import Fraction
from typing import Generic, TypeVar

from chain.consensus.state import compute_difficulty
from chain.errors import ChartBinsError, ChartEmptyInputError, ChartValueError
from chain.params import ChainParams
from chain.pow.difficulty import is_retarget_height
from chain.pow.header import BlockHeader

# e^(-x) is irrational: it is computed as a Decimal correctly rounded to this many significant
# digits (relative error <= 10^-(EXP_PRECISION_DIGITS - 1)), then converted exactly to a Fraction.
# Adjacent bins share the value at their common edge, so the expected counts telescope and sum to
# exactly n whatever the rounding.
EXP_PRECISION_DIGITS = 50

# A participant key: a miner's public key (bytes), a validator index (int) or a name (str).
K = TypeVar("K", bytes, str, int)


@dataclass(frozen=True, slots=True)
class DifficultyPoint:
    height: int
    difficulty: int
    bits: int
    # A scheduled retarget height under ``params`` (Core's height % window == 0).
    is_retarget: bool
    # The bits differ from the previous point's (a retarget that moved, an early retarget or a
    # block time change); False for the first point.
    bits_changed: bool


@dataclass(frozen=True, slots=True)
class DifficultySeries:
    points: tuple[DifficultyPoint, ...]
    target_spacing_s: int


@dataclass(frozen=True, slots=True)
class HistogramBin:
    lower_s: int
    # None: the last bin, open-ended.
    upper_s: int | None
    observed: int
    # n · (e^(-lower/T) − e^(-upper/T)), e^(-∞) = 0; see EXP_PRECISION_DIGITS.
    expected: Fraction


@dataclass(frozen=True, slots=True)
class IntervalHistogram:
    bins: tuple[HistogramBin, ...]
    target_spacing_s: int
    # How many intervals were measured (block times − 1); the expected counts sum to exactly this.
    intervals: int
    # Intervals below 0 (a timestamp earlier than its parent's, which the median-time-past rule
    # allows) are counted in the first bin; this says how many.
    negative_intervals: int


@dataclass(frozen=True, slots=True)
class ShareVsWins(Generic[K]):
    participant: K
    share: Fraction
    win_share: Fraction
    wins: int


def compute_difficulty_series(
    headers_with_heights: Sequence[tuple[int, BlockHeader]], params: ChainParams
) -> DifficultySeries:
    """Difficulty (``chain.consensus.state.compute_difficulty``) at each given height, in the order
    given, which must be strictly increasing heights (gaps allowed: a sampled long chain)."""
    if not headers_with_heights:
        raise ChartEmptyInputError("no headers to plot a difficulty series from")
    points: list[DifficultyPoint] = []
    previous: tuple[int, BlockHeader] | None = None
    for height, header in headers_with_heights:
        if height < 0:
            raise ChartValueError(f"height {height} is negative")
        if previous is not None and height <= previous[0]:
            raise ChartValueError(f"height {height} follows height {previous[0]}: heights must strictly increase")
        points.append(
            DifficultyPoint(
                height=height,
                difficulty=compute_difficulty(header.bits, params),
                bits=header.bits,
                is_retarget=height > 0 and is_retarget_height(height, params),
                bits_changed=previous is not None and header.bits != previous[1].bits,
            )
        )
        previous = (height, header)
    return DifficultySeries(points=tuple(points), target_spacing_s=params.target_spacing_s)


def _check_bin_edges(bins: Sequence[int]) -> None:
    if not bins:
        raise ChartBinsError("no bin edges: give at least [0]")
    for edge in bins:
        if isinstance(edge, bool) or not isinstance(edge, int):
            raise ChartBinsError(f"bin edge {edge!r} is not a whole number of seconds")
    if bins[0] != 0:
        raise ChartBinsError(f"the first bin edge is {bins[0]}; it must be 0 so every interval has a bin")
    for lower, upper in zip(bins, bins[1:], strict=False):
        if upper <= lower:
            raise ChartBinsError(f"bin edges must strictly increase; {upper} follows {lower}")


def _exp_neg(numerator: int, denominator: int) -> Fraction:
    """e^(-numerator/denominator) to EXP_PRECISION_DIGITS significant digits, as an exact Fraction."""
    context = Context(prec=EXP_PRECISION_DIGITS, rounding=ROUND_HALF_EVEN, Emin=-(10**9), Emax=10**9)
    with localcontext(context):
        value = (-(Decimal(numerator) / Decimal(denominator))).exp()
    return Fraction(value)


def compute_interval_histogram(
    block_times: Sequence[int], target_spacing_s: int, bins: Sequence[int]
) -> IntervalHistogram:
    """Inter-block times of ``block_times`` (timestamps in height order) counted per bin.

    ``bins`` are the lower edges in seconds, starting at 0 and strictly increasing: bin i is
    [bins[i], bins[i+1]), the last [bins[-1], ∞).  Block arrivals at a steady hash rate are a
    Poisson process, so an interval exceeds t with probability e^(-t/T), T = ``target_spacing_s``;
    the expected count of bin [a, b) among n intervals is n·(e^(-a/T) − e^(-b/T))."""
    if isinstance(target_spacing_s, bool) or not isinstance(target_spacing_s, int) or target_spacing_s < 1:
        raise ChartValueError(f"target spacing {target_spacing_s!r} must be a whole number of seconds, at least 1")
    _check_bin_edges(bins)
    if len(block_times) < 2:
        raise ChartEmptyInputError(f"{len(block_times)} block time(s): an interval needs at least two blocks")
    intervals = [later - earlier for earlier, later in zip(block_times, block_times[1:], strict=False)]
    observed = [0] * len(bins)
    negative = 0
    for interval in intervals:
        if interval < 0:
            negative += 1
        # The last edge at or below the interval; a negative interval goes to the first bin.
        index = 0
        for i, edge in enumerate(bins):
            if interval >= edge:
                index = i
            else:
                break
        observed[index] += 1
    n = len(intervals)
    # Survival e^(-edge/T) at each edge, then 0 for the open end: computed once per edge so
    # adjacent bins telescope and the expected counts sum to exactly n.
    survival = [_exp_neg(edge, target_spacing_s) for edge in bins] + [Fraction(0)]
    survival[0] = Fraction(1)  # e^0, exactly
    histogram = tuple(
        HistogramBin(
            lower_s=bins[i],
            upper_s=bins[i + 1] if i + 1 < len(bins) else None,
            observed=observed[i],
            expected=n * (survival[i] - survival[i + 1]),
        )
        for i in range(len(bins))
    )
    return IntervalHistogram(
        bins=histogram, target_spacing_s=target_spacing_s, intervals=n, negative_intervals=negative
    )


def compute_share_vs_wins(shares: Mapping[K, int], wins: Mapping[K, int]) -> tuple[ShareVsWins[K], ...]:
    """Each participant's share of the input (hash power, or stake) against its share of the
    blocks won (or proposals made).  Anyone in either mapping is listed (missing counts as 0),
    sorted by share, then win share, both descending, then by key."""
    for label, counts in (("share", shares), ("win", wins)):
        for participant, count in counts.items():
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ChartValueError(f"{label} count {count!r} of {participant!r} must be a whole number >= 0")
    total_share = sum(shares.values())
    total_wins = sum(wins.values())
    if total_share == 0:
        raise ChartEmptyInputError("no hash power or stake to compare against (all shares are 0)")
    if total_wins == 0:
        raise ChartEmptyInputError("no blocks won or proposed yet: nothing to compare the shares with")
    participants = set(shares) | set(wins)
    rows = [
        ShareVsWins(
            participant=p,
            share=Fraction(shares.get(p, 0), total_share),
            win_share=Fraction(wins.get(p, 0), total_wins),
            wins=wins.get(p, 0),
        )
        for p in participants
    ]
    rows.sort(key=lambda row: (-row.share, -row.win_share, row.participant))
    return tuple(rows)


@dataclass(frozen=True, slots=True)
class EnergyComparison:
    """Proof of work's energy against proof of stake's on one chain, in total and per block made."""

    pow_millijoules: int
    pos_millijoules: int
    pow_blocks: int
    pos_blocks: int
    # mJ per block of each kind; None when the chain has no block of that kind.
    pow_per_block: Fraction | None
    pos_per_block: Fraction | None
    # How many times proof of work's energy proof of stake's is: per block when both kinds of block
    # exist, else in total; None while proof of stake's rounds to 0 mJ.
    ratio: Fraction | None
    per_block: bool


def compute_energy_comparison(
    pow_millijoules: int, pos_millijoules: int, pow_blocks: int, pos_blocks: int
) -> EnergyComparison:
    """The energy report's two totals, per block of each kind when the chain has both (a merged
    chain), and their ratio."""
    inputs = (
        ("proof-of-work energy (mJ)", pow_millijoules), ("proof-of-stake energy (mJ)", pos_millijoules),
        ("proof-of-work blocks", pow_blocks), ("proof-of-stake blocks", pos_blocks),
    )
    for label, value in inputs:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ChartValueError(f"{label} {value!r} must be a whole number >= 0")
    if pow_millijoules == 0 and pos_millijoules == 0:
        raise ChartEmptyInputError("no energy to compare yet: this chain's hashing and signatures add up to under 1 mJ")
    pow_per_block = Fraction(pow_millijoules, pow_blocks) if pow_blocks else None
    pos_per_block = Fraction(pos_millijoules, pos_blocks) if pos_blocks else None
    ratio: Fraction | None
    if pow_per_block is not None and pos_per_block is not None:
        per_block = True
        ratio = pow_per_block / pos_per_block if pos_per_block else None
    else:
        per_block = False
        ratio = Fraction(pow_millijoules, pos_millijoules) if pos_millijoules else None
    return EnergyComparison(
        pow_millijoules, pos_millijoules, pow_blocks, pos_blocks, pow_per_block, pos_per_block, ratio, per_block
    )
