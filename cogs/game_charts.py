"""The picture each game's summary carries: the fork(s) it made, or (selfish mining) the shares it is about.

* ``/doublespend`` and ``/split``: the block tree from the game's fork point on (``cogs/tree_charts.py``):
  the branch that won and the one orphaned, at a glance.
* ``/selfish``: the tree would show many one-block orphans and say little; the game is about shares,
  so its picture is each side's share of the hash power against its share of the main chain's blocks
  and the paper's long-run share R(α, γ).

Best effort, bounded: ``game_picture`` renders in the bot's chart worker (never on the event loop)
and waits at most ``GAME_PICTURE_WAIT_S``; a failing, refused or slow render is logged and the summary
is posted without its picture. The game has already ended in the engine when its summary is built,
so a picture can delay the summary by that bound at most, never the game's end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import discord

from chain.errors import ChartDataError
from chain.playground import Playground, SelfishSnapshot
from cogs.chart_book import ChartBook, ChartPicture
from cogs.chart_spec import ChartSpec, Series
from cogs.tree_charts import game_tree_spec

log = logging.getLogger(__name__)

# How long a summary waits for its picture: the chart worker draws one in about 0.15 s when idle;
# past this it is busy (or stuck, and its own 10 s timeout replaces it) and the summary goes without.
GAME_PICTURE_WAIT_S = 5.0


def double_spend_tree(playground: Playground, guild_id: int, fork_height: int) -> ChartSpec:
    return game_tree_spec(playground, guild_id, fork_height, f"Double spend: the block tree from block {fork_height}")


def split_tree(playground: Playground, guild_id: int, base_height: int) -> ChartSpec:
    return game_tree_spec(playground, guild_id, base_height, f"Network split: the block tree from block {base_height}")


def _percent(share: Fraction) -> float:
    return float(share * 100)


def _one_decimal(share: Fraction) -> str:
    tenths = round(share * 1000)
    return f"{tenths // 10}.{tenths % 10}%"


def selfish_shares(snapshot: SelfishSnapshot) -> ChartSpec:
    """Pool and honest miners: hash power set, share of the main chain's blocks won in the game, and the
    paper's R(α, γ). ``ChartDataError`` when no block joined the main chain (nothing to compare)."""
    tally = snapshot.tally
    earned = tally.pool_share
    if snapshot.chain_replaced or earned is None:
        raise ChartDataError("no block joined the main chain during the game: no shares to draw")
    alpha, revenue = snapshot.alpha, snapshot.revenue
    measured = tally.measured_alpha
    verdict = "more than" if earned > alpha else "less than" if earned < alpha else "exactly"
    alt = (
        "Grouped bar chart, selfish pool against honest miners, in percent: hash power as set (pool "
        f"{_one_decimal(alpha)}, honest {_one_decimal(1 - alpha)}"
        + (f"; measured pool {_one_decimal(measured)}" if measured is not None else "")
        + f"), share of the {tally.main_chain} main-chain blocks of the game (pool {tally.pool.main}, "
        f"{_one_decimal(earned)}; honest {tally.honest.main}, {_one_decimal(1 - earned)}), and the share the paper "
        f"predicts in the long run, R(α, γ) = {_one_decimal(revenue)} for the pool. The pool got {verdict} its "
        f"hash power; {tally.pool.orphaned} pool and {tally.honest.orphaned} honest blocks were orphaned."
    )
    return ChartSpec(
        kind="bar",
        title=f"Selfish mining: α = {_one_decimal(alpha)}, γ = {_one_decimal(snapshot.gamma)}",
        x_label="side",
        y_label="% of the total",
        alt_text=alt,
        series=(
            Series("hash power (set) %", ((0, _percent(alpha)), (1, _percent(1 - alpha)))),
            Series("main-chain blocks won %", ((0, _percent(earned)), (1, _percent(1 - earned)))),
            Series("paper's long run R(α, γ) %", ((0, _percent(revenue)), (1, _percent(1 - revenue)))),
        ),
        x_ticks=((0, "selfish pool"), (1, "honest miners")),
    )


async def game_picture(
    charts: ChartBook | None, guild_id: int, name: str, build: Callable[[], ChartSpec]
) -> ChartPicture | None:
    """The game's picture, or None (logged) when it cannot be had within ``GAME_PICTURE_WAIT_S``."""
    if charts is None:
        return None
    try:
        spec = build()
        return await asyncio.wait_for(charts.render(guild_id, name, spec), GAME_PICTURE_WAIT_S)
    except ChartDataError as nothing:  # e.g. no fork: a summary without a picture says it all
        log.info("chain %d: the %s summary goes without a picture: %s", guild_id, name, nothing)
    except TimeoutError:
        log.warning("chain %d: the %s picture took over %.1f s: the summary goes without it",
                    guild_id, name, GAME_PICTURE_WAIT_S)
    except Exception:  # a picture is an extra: whatever broke it must not cost the game its summary
        log.exception("chain %d: the %s picture failed: the summary goes without it", guild_id, name)
    return None


def with_picture(embed: discord.Embed, picture: ChartPicture | None) -> dict[str, Any]:
    """Keyword arguments for ``send``: the embed, showing the picture when there is one."""
    if picture is None:
        return {"embed": embed}
    return {"embed": picture.show_in(embed), "file": picture.file()}
