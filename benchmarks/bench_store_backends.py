"""Commit latency per block on both storage backends: SQLite (the default) and PostgreSQL.

Run: .venv/bin/python -m benchmarks.bench_store_backends [--blocks 200] [--postgres-url URL]

Without ``--postgres-url`` it starts a PostgreSQL server of its own (tests/postgres_server.py: local,
a temporary folder) with fsync ON, so both sides pay for a durable commit: SQLite runs with
``synchronous=FULL``, PostgreSQL with its defaults (``fsync=on``, ``synchronous_commit=on``).

Measured: ``Store.append_block`` of one mined block with its coinbase (block, balances, index, tree
row with undo record, events), one at a time, ``--blocks`` of them on a fresh chain; the median and
p90 per backend, and PostgreSQL's median over SQLite's (SQLite is the same-run baseline). No target
yet (issue 13 asks for the figure first): it prints, and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from chain.adapters.storage import Store
from chain.consensus.transition import process_block
from chain.params import REGTEST
from tests.chainkit import genesis_block, key, mine, new_chain
from tests.postgres_server import PostgresServer

CHAIN_ID = 1_187_654_321_098_765_432  # a Discord-sized id


def build_blocks(count: int, *, chain_id: int = CHAIN_ID) -> list:
    """``count`` blocks and their effects, mined in memory before anything is timed."""
    state = new_chain(REGTEST, chain_id=chain_id)
    miner = key("bench-miner").public_key
    blocks = []
    for _ in range(count):
        block = mine(state, miner, apply=False)
        effects = process_block(state, block, block.header.time)
        state.apply(block, effects)
        blocks.append((block, effects))
    return blocks


async def measure(target: str | Path, blocks: list) -> list[float]:
    """Seconds each append took, in order."""
    store = await Store.open(target)
    try:
        await store.create_chain(CHAIN_ID, REGTEST, genesis_block(REGTEST, CHAIN_ID), 0)
        seconds = []
        for block, effects in blocks:
            start = time.perf_counter()
            await store.append_block(CHAIN_ID, block, effects, [], 1)
            seconds.append(time.perf_counter() - start)
        return seconds
    finally:
        await store.close()


def describe(name: str, seconds: list[float]) -> float:
    median = statistics.median(seconds)
    p90 = statistics.quantiles(seconds, n=10)[-1] if len(seconds) >= 2 else median
    print(f"{name:<11} median {median * 1000:7.2f} ms   p90 {p90 * 1000:7.2f} ms   ({len(seconds)} blocks)")
    return median


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--blocks", type=int, default=200)
    parser.add_argument("--postgres-url", default=None, help="an empty database; default: start a local server")
    args = parser.parse_args(argv)
    blocks = build_blocks(args.blocks)
    server = None
    url = args.postgres_url
    if url is None:
        server = PostgresServer.start(durable=True)
        url = server.create_database()
    try:
        with tempfile.TemporaryDirectory() as folder:
            sqlite = asyncio.run(measure(Path(folder) / "bench.sqlite3", blocks))
        postgres = asyncio.run(measure(url, blocks))
    finally:
        if server is not None:
            server.stop()
    print(f"commit latency per block (Store.append_block), {args.blocks} blocks, same run:")
    base = describe("SQLite", sqlite)
    other = describe("PostgreSQL", postgres)
    print(f"PostgreSQL / SQLite median: {other / base:.2f}x   (target: none yet)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
