"""Proof-of-stake charts: each validator's stake against the blocks it proposed, and each epoch's
votes against the two thirds that justify its checkpoint.

Like ``cogs/mining_charts.py``: each builder turns the façade's series (integers and
``Fraction``s, ``chain/consensus/stake_chart_data.py``) into a ``ChartSpec`` whose alt text says in
words what the picture shows, the chain's numbers included.
"""

from __future__ import annotations

from fractions import Fraction

from chain.playground import Playground
from cogs.chart_book import OwnerNames
from cogs.chart_spec import MAX_ALT_TEXT, MAX_MARKERS, ChartSpec, Marker, Series
from cogs.embeds import counted, stake_points
from cogs.mining_charts import percent

# Proposals are counted over the main chain's last this many blocks: long enough for the draw's
# luck to even out at a few validators, and a bounded read (their bytes are parsed in a thread).
PROPOSAL_BLOCKS = 1_000
MAX_VALIDATORS_SHOWN = 12
# Epochs plotted, the latest: one point each, well under the spec's cap of points.
PARTICIPATION_EPOCHS = 200
# Checkpoints marked with a line each, the latest; more would hide the line (the alt text counts them all).
MARKED_CHECKPOINTS = 12
THRESHOLD_PERCENT = 200 / 3
LABELLED_EPOCHS = 16


def fit_alt(head: str, items: list[str], tail: str) -> str:
    """``head`` + as many of ``items`` as fit in Discord's alt text limit (saying how many are left
    out) + ``tail``: never cut mid-sentence."""
    shown: list[str] = []
    for count, item in enumerate(items):
        rest = len(items) - count - 1
        more = f"; and {counted(rest, 'more')}" if rest else ""
        if len(head + "; ".join([*shown, item]) + more + ". " + tail) > MAX_ALT_TEXT:
            shown.append(f"and {counted(len(items) - count, 'more')}")
            break
        shown.append(item)
    return head + "; ".join(shown) + ". " + tail


async def validator_label(index: int, owners: dict[int, str], names: OwnerNames) -> str:
    owner = owners.get(index)
    return f"{await names(owner)} #{index}" if owner is not None else f"validator #{index}"


async def stake_share_chart(playground: Playground, guild_id: int, names: OwnerNames) -> ChartSpec:
    rows, blocks = await playground.stake_shares(guild_id, PROPOSAL_BLOCKS)
    owners = await playground.validator_owners_by_index(guild_id)
    shown = rows[:MAX_VALIDATORS_SHOWN]
    labels = [await validator_label(r.participant, owners, names) for r in shown]
    items = [
        f"{label}: {percent(r.share):.0f}% of the stake, {percent(r.win_share):.0f}% of the blocks ({r.wins})"
        for label, r in zip(labels, shown, strict=True)
    ]
    left_out = len(rows) - len(shown)
    head = (
        "Grouped bar chart, per validator: share of the active stake now (effective balances, which weigh the "
        f"proposer draw) against share of the last {counted(blocks, 'proof-of-stake block')} it proposed"
        + (f"; the {MAX_VALIDATORS_SHOWN} largest shown, {left_out} more left out" if left_out else "")
        + ". "
    )
    tail = "Over many slots the two bars of each validator should match; over a few, the draw's luck dominates."
    return ChartSpec(
        kind="bar",
        title="Stake share vs blocks proposed",
        x_label="validator",
        y_label="% of the total",
        alt_text=fit_alt(head, items, tail),
        series=(
            Series("stake %", tuple((i, percent(r.share)) for i, r in enumerate(shown))),
            Series(f"blocks proposed % (last {blocks:,})",
                   tuple((i, percent(r.win_share)) for i, r in enumerate(shown))),
        ),
        x_ticks=tuple(enumerate(labels)),
    )


def _share_text(share: Fraction) -> str:
    return f"{percent(share):.1f}%"


async def participation_chart(playground: Playground, guild_id: int, names: OwnerNames) -> ChartSpec:
    series = await playground.epoch_participation(guild_id, PARTICIPATION_EPOCHS)
    points = series.points
    first, last = points[0], points[-1]
    # Each epoch's share holds across the epoch (a step from its start to the next epoch's), so even
    # a single recorded epoch draws as a visible line.
    line = tuple((p.epoch, percent(p.share)) for p in points) + ((last.epoch + 1, percent(last.share)),)
    shown_epochs = range(first.epoch, last.epoch + 1)
    checkpoints = sorted(
        {c for c in series.justified + series.finalized if c in shown_epochs}
    )
    marked = checkpoints[-MARKED_CHECKPOINTS:]
    markers = tuple(
        Marker(c, f"finalized {c}" if c in series.finalized else f"justified {c}") for c in marked
    )
    assert len(markers) <= MAX_MARKERS
    justified_text = (
        f"{counted(len(series.justified), 'checkpoint')} justified (latest: epoch {series.justified[-1]:,})"
        if series.justified else "no checkpoint justified"
    )
    finalized_text = (
        f"{counted(len(series.finalized), 'finalized')} (latest: epoch {series.finalized[-1]:,})"
        if series.finalized else "none finalized"
    )
    alt = (
        f"Line chart of the share of the active stake that voted for each epoch's checkpoint, epochs {first.epoch:,} "
        f"to {last.epoch:,} ({counted(len(points), 'epoch')} recorded), against a dashed line at two thirds, the "
        f"share that justifies a checkpoint. The latest, epoch {last.epoch:,}: {_share_text(last.share)} "
        f"({stake_points(last.attesting_units)} of {stake_points(last.active_units)}). "
        f"{series.reached_threshold} of the {counted(len(points), 'epoch')} reached two thirds. "
        f"Their ends left {justified_text} and {finalized_text}"
        + (f"; vertical lines mark the last {len(markers)}, labelled with how far each got. " if markers else ". ")
        + (
            f"The inactivity leak is on: nothing finalized for {counted(series.finality_delay, 'epoch')}."
            if series.in_leak else ""
        )
    ).strip()
    return ChartSpec(
        kind="line",
        title="Votes for each epoch's checkpoint",
        x_label="epoch",
        y_label="% of the active stake",
        alt_text=alt,
        series=(
            Series("voted for the checkpoint", line, steps=True),
            Series("2/3: justifies", ((first.epoch, THRESHOLD_PERCENT), (last.epoch + 1, THRESHOLD_PERCENT)),
                   dashed=True),
        ),
        markers=markers,
        # Whole epochs on the axis while they fit (matplotlib would label halves of a few epochs).
        x_ticks=tuple((e, str(e)) for e in range(first.epoch, last.epoch + 2))
        if last.epoch + 1 - first.epoch <= LABELLED_EPOCHS else (),
    )
