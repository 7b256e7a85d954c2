"""benchmarks/bench_startup.py cannot rot: the chains it writes straight into the store load online,
with their whole tree (no timing asserted: its targets are the script's)."""

import asyncio

import pytest

from benchmarks import bench_startup as bench
from chain.adapters.storage import Store


@pytest.mark.parametrize("validators", [0, 16])
def test_the_bulk_built_chain_loads_with_its_tree(tmp_path, validators):
    path = tmp_path / "startup.sqlite3"
    asyncio.run(bench.build(path, validators, 70))
    assert bench.measure(path, baseline=False, traced=False)["height"] == 70  # raises if the chain is offline

    async def tree_size() -> int:
        store = await Store.open(path)
        try:
            return len(await store.tree.entries(bench.CHAIN))
        finally:
            await store.close()

    assert asyncio.run(tree_size()) == 71
