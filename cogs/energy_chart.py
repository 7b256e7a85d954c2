"""The energy chart: proof of work's energy against proof of stake's, as measured on the bot's CPU.

Built from ``Playground.energy_comparison``: per block of each kind when the chain has both (a
merged chain), else the totals.  The two can be four or five orders of magnitude apart, so the y
axis is logarithmic; a kind that used no energy yet has no bar (a log axis has no 0), and the alt
text says so.  ``/chain chart kind:energy`` draws it, and ``/chain energy`` attaches it.
"""

from __future__ import annotations

from fractions import Fraction

from chain.playground import Playground
from cogs.chart_book import OwnerNames
from cogs.chart_spec import ChartSpec, Series
from cogs.errors import UserFacingError

MILLIJOULES_PER_JOULE = 1_000
MILLIJOULES_PER_WATT_HOUR = 3_600_000


def energy_text(millijoules: Fraction | int) -> str:
    """``0.0234 mJ``, ``850 mJ``, ``12.3 J``, ``4.56 Wh``: the unit that keeps the number readable."""
    value = Fraction(millijoules)
    if value < 1:
        return f"{float(value):.3g} mJ"
    if value < MILLIJOULES_PER_JOULE:
        return f"{float(value):,.3g} mJ" if value < 100 else f"{float(value):,.0f} mJ"
    if value < MILLIJOULES_PER_WATT_HOUR:
        return f"{float(value / MILLIJOULES_PER_JOULE):,.1f} J"
    return f"{float(value / MILLIJOULES_PER_WATT_HOUR):,.2f} Wh"


def times_text(ratio: Fraction) -> str:
    return f"{float(ratio):,.0f}" if ratio >= 10 else f"{float(ratio):.1f}"


async def energy_chart(playground: Playground, guild_id: int, names: OwnerNames) -> ChartSpec:
    if playground.mode(guild_id) is None:
        raise UserFacingError("This chain was created before proof of stake: there is nothing to compare with.")
    c = await playground.energy_comparison(guild_id)
    if c.per_block and c.pow_per_block is not None and c.pos_per_block is not None:
        values = (c.pow_per_block, c.pos_per_block)
        what = "per block made"
        detail = (
            f"proof of work used {energy_text(c.pow_per_block)} per block over its {c.pow_blocks:,} blocks "
            f"({energy_text(c.pow_millijoules)} in all) and proof of stake {energy_text(c.pos_per_block)} per block "
            f"over its {c.pos_blocks:,} blocks ({energy_text(c.pos_millijoules)} in all)"
        )
    else:
        values = (Fraction(c.pow_millijoules), Fraction(c.pos_millijoules))
        what = "in total"
        detail = (
            f"proof of work used {energy_text(c.pow_millijoules)} in all and proof of stake "
            f"{energy_text(c.pos_millijoules)} (this chain has no blocks of "
            f"{'proof of stake' if c.pos_blocks == 0 else 'proof of work'} to divide by)"
        )
    if c.pow_millijoules == 0:
        verdict = "Proof of work has used no energy on this chain yet (no hashing measured), so it has no bar."
    elif c.ratio is None:
        verdict = "Proof of stake's signatures add up to under 1 mJ, too little for a bar."
    elif c.ratio >= 1:
        verdict = f"Proof of work used {times_text(c.ratio)} times the energy of proof of stake {what}."
    else:
        verdict = f"Proof of stake used {times_text(1 / c.ratio)} times the energy of proof of work {what} so far."
    alt = (
        f"Bar chart on a logarithmic scale of the CPU energy each consensus used on this chain {what}, "
        f"estimated from the bot's own CPU time at the same power per core: {detail}. {verdict}"
    )
    bars = tuple((x, float(v) / MILLIJOULES_PER_JOULE) for x, v in enumerate(values) if v > 0)
    return ChartSpec(
        kind="bar",
        title=f"Energy {what}: proof of work vs proof of stake",
        x_label="",
        y_label=f"joules {what} (log scale)",
        alt_text=alt,
        series=(Series("energy", bars),),
        x_ticks=((0, "proof of work"), (1, "proof of stake")),
        log_y=True,
    )
