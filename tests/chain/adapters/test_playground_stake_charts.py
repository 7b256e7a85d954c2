"""The façade's proof-of-stake chart reads (chain/playground.py, "chart data"): refusals before any read."""

from __future__ import annotations

import pytest

from chain.errors import ChartValueError, StakingUnavailableError
from tests.chain.adapters.test_node import CHAIN, mine_block, node  # noqa: F401 - the fixture
from tests.chain.adapters.test_playground_charts import facade


async def test_invalid_stake_and_participation_windows(node):  # noqa: F811
    with pytest.raises(ChartValueError, match="last_blocks 0 must be at least 1"):
        await facade(node).stake_shares(CHAIN, 0)
    with pytest.raises(ChartValueError, match="last_epochs 0 must be at least 1"):
        await facade(node).epoch_participation(CHAIN, 0)


async def test_invalid_stake_charts_without_proof_of_stake(node):  # noqa: F811
    await mine_block(node, "alice")
    with pytest.raises(StakingUnavailableError):
        await facade(node).stake_shares(CHAIN, 10)
    with pytest.raises(StakingUnavailableError):
        await facade(node).epoch_participation(CHAIN, 10)
