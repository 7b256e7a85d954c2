"""How long moving a SQLite database to PostgreSQL takes (``python -m bot.copy_database``), per block.

Run: .venv/bin/python -m benchmarks.bench_copy_database [--blocks 3000] [--postgres-url URL] [--runs 3]

Builds a SQLite database of one chain with ``--blocks`` blocks (every other block carries a payment)
through ``Store.append_block``, then copies it into an empty PostgreSQL database ``--runs`` times
(a fresh database each run; without ``--postgres-url`` a local server of its own with fsync on) and
prints the median of each phase: checking the source (a replay of every chain, and every table
read), the copy itself, the check inside the transaction (the same on the target) and the check
after the commit.  The same-run baseline is ``/chain verify``'s replay of the source (``ChainReads.
verify``): the copy costs about three of those plus the copying.  No target: it prints, exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from chain.adapters.chain_reads import ChainReads
from chain.adapters.storage import Store
from chain.adapters.storage.database_copy import copy_database
from chain.consensus.transition import process_block
from chain.params import REGTEST
from tests.chainkit import genesis_block, key, mine, new_chain, pay
from tests.postgres_server import PostgresServer

CHAIN_ID = 1_187_654_321_098_765_432  # a Discord-sized id


async def build_source(path: Path, count: int) -> None:
    state = new_chain(REGTEST, chain_id=CHAIN_ID)
    alice, bob = key("bench-alice"), key("bench-bob")
    store = await Store.open(path)
    try:
        await store.create_chain(CHAIN_ID, REGTEST, genesis_block(REGTEST, CHAIN_ID), 0)
        for height in range(1, count + 1):
            transfers = [pay(state, alice, bob.public_key, 1, fee=1)] if height > 1 and height % 2 == 0 else []
            block = mine(state, alice.public_key, transfers, apply=False)
            effects = process_block(state, block, block.header.time)
            state.apply(block, effects)
            await store.append_block(CHAIN_ID, block, effects, [], height)
    finally:
        await store.close()


async def verify_seconds(path: Path) -> float:
    store = await Store.open(path)
    reads = ChainReads(store)
    try:
        start = time.perf_counter()
        await reads.verify(CHAIN_ID, 2**40)
        return time.perf_counter() - start
    finally:
        reads.close()
        await store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--blocks", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres-url", default=None, help="a server's URL whose database is empty (one run)")
    args = parser.parse_args(argv)
    server = None if args.postgres_url is not None else PostgresServer.start(durable=True)
    phases: dict[str, list[float]] = {}
    totals, baseline = [], []
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "bench.sqlite3"
            asyncio.run(build_source(path, args.blocks))
            runs = 1 if server is None else args.runs
            for _ in range(runs):
                baseline.append(asyncio.run(verify_seconds(path)))
                url = args.postgres_url if server is None else server.create_database()
                report = asyncio.run(copy_database(path, url))
                totals.append(report.seconds)
                for name, seconds in report.phases.items():
                    phases.setdefault(name, []).append(seconds)
                if server is not None:
                    server.drop_database(url)
    finally:
        if server is not None:
            server.stop()
    per_k = 1000 / args.blocks
    print(f"copy of a {args.blocks}-block chain (SQLite -> PostgreSQL, fsync on), median of {len(totals)} runs:")
    for name, seconds in phases.items():
        print(f"  {name:<30} {statistics.median(seconds):7.2f} s")
    total = statistics.median(totals)
    base = statistics.median(baseline)
    print(f"  {'total':<30} {total:7.2f} s   ({total * per_k:.2f} s per 1,000 blocks)")
    print(f"baseline, /chain verify's replay of the source: {base:.2f} s ({base * per_k:.2f} s per 1,000 blocks); "
          f"copy / verify: {total / base:.1f}x   (target: none)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
