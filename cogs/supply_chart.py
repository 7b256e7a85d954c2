"""The supply chart: points minted, burned, staked and circulating over height.

Built from ``Playground.supply_history`` (a replay of the stored chain, sampled to at most
``SUPPLY_MAX_POINTS`` heights: ``chain/consensus/supply_history.py``), drawn in points.  The alt
text states the tip's four totals and what the genesis block issued, and says how the heights
were sampled.
"""

from __future__ import annotations

from chain.playground import Playground
from chain.pos.rewards import UNITS_PER_POINT
from cogs.chart_book import OwnerNames
from cogs.chart_spec import ChartSpec, Series
from cogs.embeds import stake_points


def in_points(units: int) -> float:
    """Nanopoints as points, for drawing (the alt text states them exactly)."""
    return units / UNITS_PER_POINT


async def supply_chart(playground: Playground, guild_id: int, names: OwnerNames) -> ChartSpec:
    history = await playground.supply_history(guild_id)
    points = history.points
    first, tip = points[0], points[-1]
    sampled = (
        "every block" if history.stride == 1
        else f"{len(points)} heights, one every {history.stride:,} blocks and the tip"
    )
    alt = (
        f"Line chart of the points supply over block height 0 to {tip.height:,} ({sampled}), four lines. At the tip: "
        f"{stake_points(tip.minted_units)} minted, {stake_points(tip.burned_units)} burned, "
        f"{stake_points(tip.staked_units)} staked in validators and {stake_points(tip.circulating_units)} "
        "circulating in wallets; at every height minted minus burned equals staked plus circulating. "
        f"The genesis block issued {stake_points(first.minted_units)}"
        + (f" ({stake_points(first.staked_units)} of it as validators' stake)" if first.staked_units else "")
        + f"; block subsidies and staking rewards minted {stake_points(tip.minted_units - first.minted_units)} since. "
        + ("Nothing has been burned." if tip.burned_units == 0 else
           "Burned points are penalties, slashings and withdrawal dust; fees go to block makers, not burned.")
        + (" Nothing is staked yet." if tip.staked_units == 0 else "")
    )
    return ChartSpec(
        kind="line",
        title="Supply by height",
        x_label="block height",
        y_label="points",
        alt_text=alt,
        series=(
            Series("minted", tuple((p.height, in_points(p.minted_units)) for p in points)),
            Series("circulating (wallets)", tuple((p.height, in_points(p.circulating_units)) for p in points)),
            Series("staked (validators)", tuple((p.height, in_points(p.staked_units)) for p in points)),
            Series("burned", tuple((p.height, in_points(p.burned_units)) for p in points), dashed=True),
        ),
    )
