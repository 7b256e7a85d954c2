"""The façade's chart reads (chain/playground.py, "chart data"): what /chain chart plots."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest

from chain.consensus.state import compute_difficulty
from chain.errors import ChartEmptyInputError, ChartValueError
from chain.params import REGTEST
from chain.playground import Playground
from tests.chain.adapters.test_node import CHAIN, mine_block, node  # noqa: F401 - the fixture
from tests.chainkit import solve

# Short windows, so a few blocks make several retargets.
PARAMS = replace(REGTEST, retarget_window_blocks=4, no_retargeting=False)


class Defaults:
    default_params = REGTEST

    async def hash_rate(self) -> int:
        return 1


def facade(node) -> Playground:  # noqa: F811
    return Playground(node, None, Defaults())  # type: ignore[arg-type]


async def test_difficulty_series_samples_evenly_and_keeps_the_tip(node):  # noqa: F811
    for _ in range(9):
        await mine_block(node, "alice")
    series, _ = await facade(node).difficulty_series(CHAIN, max_points=4)
    heights = [p.height for p in series.points]
    # 10 blocks in at most 4 points: every third height, and the tip always.
    assert heights == [0, 3, 6, 9]
    state = node.chain(CHAIN).state
    assert series.points[-1].difficulty == compute_difficulty(state.tip.bits, state.params)


async def test_difficulty_series_averages_whole_windows(node):  # noqa: F811
    other = CHAIN + 5
    await node.create_chain(other, PARAMS, initial_bits=0x207FFFFF)
    miner = await node.address(other, "alice")
    for _ in range(10):
        await node.submit_block(other, solve(node.template(other, miner), PARAMS))
    headers = node.chain(other).state.headers
    _, averages = await facade(node).difficulty_series(other, max_points=100)
    # Windows 0-4 and 4-8 are whole at height 10; 8-12 is not yet.
    assert averages == [(4, (headers[4].time - headers[0].time) // 4), (8, (headers[8].time - headers[4].time) // 4)]


async def test_invalid_difficulty_series_with_fewer_than_two_points(node):  # noqa: F811
    with pytest.raises(ChartValueError, match="max_points 1 must be at least 2"):
        await facade(node).difficulty_series(CHAIN, max_points=1)


async def test_interval_histogram_reads_the_last_blocks_only(node):  # noqa: F811
    for _ in range(6):
        await mine_block(node, "alice")
    histogram = await facade(node).interval_histogram(CHAIN, 4, [0, 1, 2])
    assert histogram.intervals == 3
    assert sum(b.observed for b in histogram.bins) == 3


async def test_mining_shares_compare_hashes_since_start_with_blocks_since_load(node):  # noqa: F811
    await mine_block(node, "alice")
    await mine_block(node, "alice")
    await mine_block(node, "bob")
    # The core's per-key counters: this chain's members, and another chain's, which must not count.
    node.hashing_core = SimpleNamespace(
        hashes_by_key=lambda: {(CHAIN, "alice"): 300, (CHAIN, "bob"): 100, (CHAIN + 1, "alice"): 10_000}
    )
    rows = {r.participant: r for r in await facade(node).mining_shares(CHAIN)}
    assert set(rows) == {"alice", "bob"}
    assert (rows["alice"].share, rows["alice"].wins) == (pytest.approx(0.75), 2)
    assert rows["bob"].win_share * 3 == 1


async def test_invalid_mining_shares_before_any_block(node):  # noqa: F811
    node.hashing_core = SimpleNamespace(hashes_by_key=lambda: {(CHAIN, "alice"): 5})
    with pytest.raises(ChartEmptyInputError, match="no blocks won"):
        await facade(node).mining_shares(CHAIN)
