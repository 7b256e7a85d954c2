"""Proof-of-work charts: difficulty over height, block intervals against the exponential curve,
and each miner's hash power against the blocks they won.

Each builder turns the façade's series (integers and ``Fraction``s, ``chain/consensus/chart_data.py``)
into a ``ChartSpec`` whose alt text says in words what the picture shows, numbers included, for
members who cannot see it.
"""

from __future__ import annotations

from fractions import Fraction

from chain.playground import Playground
from cogs.chart_book import OwnerNames
from cogs.chart_spec import MAX_MARKERS, ChartSpec, Marker, Series
from cogs.embeds import duration

# Points drawn along the chain: enough for a smooth line at 800 px, well under the spec's cap.
DIFFICULTY_POINTS = 800
# Retargets marked with a line each; past this many the lines would hide the curve (the alt text
# still counts them).
MARKED_RETARGETS = 12
INTERVAL_BLOCKS = 500
# Bins of a quarter target spacing up to three spacings, then one open bin: the exponential's
# shape is visible there, and the open bin catches the long tail.
INTERVAL_BINS_PER_SPACING = 4
INTERVAL_SPACINGS = 3
MAX_MINERS_SHOWN = 12


def percent(share: Fraction) -> float:
    return float(share * 100)


async def difficulty_chart(playground: Playground, guild_id: int, names: OwnerNames) -> ChartSpec:
    series, averages = await playground.difficulty_series(guild_id, DIFFICULTY_POINTS)
    params = playground.state(guild_id).params
    points = series.points
    changes = [p for p in points[1:] if p.bits_changed]
    markers = tuple(Marker(p.height, f"retarget {p.height}") for p in changes[-MARKED_RETARGETS:])
    assert len(markers) <= MAX_MARKERS
    window = params.retarget_window_blocks
    right: tuple[Series, ...] = ()
    target = series.target_spacing_s
    if averages and not params.no_retargeting:
        right = (
            Series("block time per window (s)", tuple(averages)),
            Series("target block time (s)", ((0, target), (points[-1].height, target)), dashed=True),
        )
    low = min(p.difficulty for p in points)
    high = max(p.difficulty for p in points)
    now = points[-1]
    alt = (
        f"Line chart of difficulty over block height 0 to {now.height}: it ranged from {low:,} to {high:,} "
        f"and is {now.difficulty:,} at the tip. "
        + (
            "The chain never retargets, so the line is flat."
            if params.no_retargeting
            else f"It changed at {len(changes)} of the plotted heights (retargets every {window} blocks"
            + (f", the last {len(markers)} marked" if markers else "")
            + f"). The target block time is {duration(series.target_spacing_s)}"
            + (
                f"; the last full window averaged {duration(averages[-1][1])} a block."
                if averages else "; no retarget window has completed yet."
            )
        )
    )
    return ChartSpec(
        kind="line",
        title="Difficulty by height",
        x_label="block height",
        y_label="difficulty",
        alt_text=alt,
        series=(Series("difficulty", tuple((p.height, p.difficulty) for p in points), steps=True),),
        markers=markers,
        series2=right,
        y2_label="seconds per block" if right else "",
    )


def interval_bins(target_spacing_s: int) -> list[int]:
    edges = {target_spacing_s * k // INTERVAL_BINS_PER_SPACING
             for k in range(INTERVAL_BINS_PER_SPACING * INTERVAL_SPACINGS + 1)}
    return sorted(edges)


async def interval_chart(playground: Playground, guild_id: int, names: OwnerNames) -> ChartSpec:
    spacing = playground.state(guild_id).params.target_spacing_s
    histogram = await playground.interval_histogram(guild_id, INTERVAL_BLOCKS, interval_bins(spacing))
    bins = histogram.bins
    # Bars at each bin's lower edge; the label says the range.
    ticks = tuple(
        (i, f"{b.lower_s}–{b.upper_s}s" if b.upper_s is not None else f"≥{b.lower_s}s") for i, b in enumerate(bins)
    )
    within_one = sum(b.observed for b in bins if b.upper_s is not None and b.upper_s <= spacing)
    expected_within_one = sum((b.expected for b in bins if b.upper_s is not None and b.upper_s <= spacing), Fraction(0))
    alt = (
        f"Bar chart of the times between the last {histogram.intervals + 1} blocks, in {len(bins)} bins of "
        f"{duration(max(1, spacing // INTERVAL_BINS_PER_SPACING))}, with a dashed curve for the counts an exponential "
        f"distribution with a mean of {duration(spacing)} predicts. {within_one} intervals were at most "
        f"{duration(spacing)}; the curve expects {float(expected_within_one):.1f}. Short intervals are the most "
        "common, as a memoryless search predicts."
        + (f" {histogram.negative_intervals} block(s) had an earlier timestamp than the one before; they are "
           "counted in the first bin." if histogram.negative_intervals else "")
    )
    return ChartSpec(
        kind="bar",
        title=f"Time between blocks (last {histogram.intervals} intervals)",
        x_label="seconds since the previous block",
        y_label="intervals",
        alt_text=alt,
        series=(Series("observed", tuple((i, b.observed) for i, b in enumerate(bins))),),
        expected=tuple((i, float(b.expected)) for i, b in enumerate(bins)),
        x_ticks=ticks,
    )


async def hash_share_chart(playground: Playground, guild_id: int, names: OwnerNames) -> ChartSpec:
    rows = (await playground.mining_shares(guild_id))[:MAX_MINERS_SHOWN]
    labels = [await names(str(r.participant)) for r in rows]
    ticks = tuple(enumerate(labels))
    lines = "; ".join(
        f"{label}: {percent(r.share):.0f}% of the hashes, {percent(r.win_share):.0f}% of the blocks ({r.wins})"
        for label, r in zip(labels, rows, strict=True)
    )
    alt = (
        "Grouped bar chart, per miner since the bot started: share of the hashes the bot's core computed for them "
        f"against share of the blocks they won. {lines}. Over many blocks the two bars of each miner should "
        "match; over a few, luck dominates."
    )
    return ChartSpec(
        kind="bar",
        title="Hash power share vs blocks won",
        x_label="miner",
        y_label="% of the total",
        alt_text=alt[:1024],
        series=(
            Series("hash power %", tuple((i, percent(r.share)) for i, r in enumerate(rows))),
            Series("blocks won %", tuple((i, percent(r.win_share)) for i, r in enumerate(rows))),
        ),
        x_ticks=ticks,
    )
