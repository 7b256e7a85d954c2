"""Every chart ``/chain chart`` offers, in the order its choices list them.

Each kind's builder lives in the module of its domain (``cogs/mining_charts.py``, ...); this list is
the one place that names them all, for the command, ``/help`` and the dashboard.
"""

from __future__ import annotations

from cogs.chart_book import ChartKind
from cogs.mining_charts import difficulty_chart, hash_share_chart, interval_chart
from cogs.tree_charts import tree_chart

CHART_KINDS: dict[str, ChartKind] = {
    kind.name: kind
    for kind in (
        ChartKind(
            "difficulty", "Difficulty and retargets",
            "Difficulty over height with each retarget marked, and each window's average block time against the "
            "target: the difficulty climbs when blocks came too fast and falls when they came too slow.",
            difficulty_chart,
        ),
        ChartKind(
            "intervals", "Block intervals vs the exponential curve",
            "How many of the last 500 blocks came after each waiting time, against the exponential curve a "
            "memoryless search predicts: short waits are the most common, and long ones still happen.",
            interval_chart,
        ),
        ChartKind(
            "hashpower", "Hash power vs blocks won",
            "Each miner's share of the hashes against their share of the blocks won since the bot started: they "
            "match over many blocks, not over a few.",
            hash_share_chart,
        ),
        ChartKind(
            "tree", "Block tree with orphaned branches",
            "The last 60 heights of the block tree: the main chain as a line of circles, each orphaned side branch "
            "as squares on a lane above it, joined to the block it forked from: every fork, and which branch won.",
            tree_chart,
        ),
    )
}
