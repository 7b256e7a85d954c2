"""Every chart ``/chain chart`` offers, in the order its choices list them.

Each kind's builder lives in the module of its domain (``cogs/mining_charts.py``, ...); this list is
the one place that names them all, for the command, ``/help`` and the dashboard.
"""

from __future__ import annotations

from cogs.chart_book import ChartKind
from cogs.energy_chart import energy_chart
from cogs.mining_charts import difficulty_chart, hash_share_chart, interval_chart
from cogs.staking_charts import participation_chart, stake_share_chart
from cogs.supply_chart import supply_chart
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
            "stake", "Stake vs blocks proposed",
            "Each validator's share of the active stake against its share of the last 1,000 blocks' proposals: the "
            "draw picks proposers in proportion to stake, so the bars match over many slots, not over a few.",
            stake_share_chart,
        ),
        ChartKind(
            "participation", "Votes per epoch and finality",
            "The share of the active stake that voted for each epoch's checkpoint, against the two thirds that "
            "justify it, with justified and finalized checkpoints marked: two justified epochs in a row finalize "
            "the first.",
            participation_chart,
        ),
        ChartKind(
            "supply", "Supply: minted, burned, staked, circulating",
            "Points minted, burned, staked in validators and circulating in wallets over height, replayed from the "
            "stored chain: minted minus burned always equals staked plus circulating, and deposits move points "
            "from the circulating line to the staked one.",
            supply_chart,
        ),
        ChartKind(
            "energy", "Energy: proof of work vs proof of stake",
            "The CPU energy proof of work and proof of stake used on this chain, per block of each kind once both "
            "exist, on a logarithmic scale: hashing costs thousands of times what signing does.",
            energy_chart,
        ),
        ChartKind(
            "tree", "Block tree with orphaned branches",
            "The last 60 heights of the block tree: the main chain as a line of circles, each orphaned side branch "
            "as squares on a lane above it, joined to the block it forked from: every fork, and which branch won.",
            tree_chart,
        ),
    )
}
