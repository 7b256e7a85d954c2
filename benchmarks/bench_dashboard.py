"""The classroom dashboard: how long a mined block takes to reach its viewers.

Run from the repository root: ``python -m benchmarks.bench_dashboard``.
A real store, node and façade (REGTEST, one hashing worker) and the real dashboard on 127.0.0.1,
with the outbox feed driving it.  Twenty blocks are mined, one at a time:

- baseline (same run): from ``mine()`` returning (the block is committed) to the outbox feed handing
  its events to the dashboard, with nobody watching;
- then with ``VIEWERS`` event streams open on one server (the per-server cap): from ``mine()``
  returning to each viewer reading the block's ``news`` event off its HTTP stream.

Prints medians and p99s of both.  Target: p99 to every viewer < 2 s (the issue's "within two
seconds"), measured here without a browser; the browser test checks the same on a real page.
Exits non-zero when missed.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from bot.dashboard import MAX_STREAMS_PER_SERVER, Dashboard
from bot.outbox_feed import FeedingOutboxWriter, OutboxFeed
from bot.storage import DashboardLinkRepository
from chain.adapters.hashcore import HashingCore
from chain.adapters.node import Node
from chain.adapters.storage import Store
from chain.adapters.storage.outbox import OutboxTableWriter
from chain.params import REGTEST
from chain.playground import Playground
from chain.pos.beacon import ConsensusConfig

BLOCKS = 20
VIEWERS = MAX_STREAMS_PER_SERVER
CHAIN = 1
TARGET_P99_S = 2.0


class Defaults:
    default_params = REGTEST
    default_consensus = ConsensusConfig()

    async def hash_rate(self) -> int:
        return 1


def p50_p99(values: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(values, n=100)
    return cuts[49], cuts[98]


async def viewer(http: aiohttp.ClientSession, link: str, arrived: dict[int, list[float]], ready: asyncio.Event,
                 opened: list[int]) -> None:
    async with http.get(link + "/events") as response:
        assert response.status == 200, response.status
        opened.append(1)
        if len(opened) == VIEWERS:
            ready.set()
        event = None
        async for line in response.content:
            if line.startswith(b"event: "):
                event = line[7:].strip()
            elif line.startswith(b"data: ") and event == b"news":
                data = json.loads(line[6:])
                if data["kind"] == "block_mined":
                    arrived.setdefault(data["height"], []).append(time.perf_counter())


async def main() -> int:
    folder = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    feed_box: list[OutboxFeed] = []
    store = await Store.open(
        folder / "bench.sqlite3",
        outbox=FeedingOutboxWriter(OutboxTableWriter(), lambda: feed_box[0].wake() if feed_box else None),
    )
    core = HashingCore(1)
    await core.start()
    node = Node(store, clock=time.time, randomness=os.urandom, master_key=bytes(32), hashing_core=core)
    await node.load()
    playground = Playground(node, None, Defaults())
    await playground.ensure_chain(CHAIN)
    dashboard = Dashboard(playground, DashboardLinkRepository(store.db), bytes(32), host="127.0.0.1", port=0)
    await dashboard.start()
    fed: dict[int, float] = {}

    def listener(events):
        for event in events:
            height = getattr(event.event, "height", None)
            if event.kind == "block_mined" and height is not None:
                fed.setdefault(height, time.perf_counter())
        dashboard.on_outbox_events(events)

    feed = OutboxFeed(store.db, listener)
    feed_box.append(feed)
    await feed.start()
    try:
        baseline = []
        for _ in range(BLOCKS):
            result = await playground.mine(CHAIN, "alice")
            done = time.perf_counter()
            while result.effects.height not in fed:
                await asyncio.sleep(0.001)
            baseline.append(fed[result.effects.height] - done)

        link = await dashboard.issue_link(CHAIN, 1)
        arrived: dict[int, list[float]] = {}
        ready, opened = asyncio.Event(), []
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=VIEWERS + 5)) as http:
            viewers = [asyncio.create_task(viewer(http, link, arrived, ready, opened)) for _ in range(VIEWERS)]
            await asyncio.wait_for(ready.wait(), 60)
            await asyncio.sleep(0.5)  # every stream past its first state
            latencies = []
            for _ in range(BLOCKS):
                result = await playground.mine(CHAIN, "alice")
                done = time.perf_counter()
                height = result.effects.height
                while len(arrived.get(height, ())) < VIEWERS:
                    await asyncio.sleep(0.001)
                latencies += [t - done for t in arrived[height]]
            for task in viewers:
                task.cancel()
            await asyncio.gather(*viewers, return_exceptions=True)
    finally:
        await dashboard.close()
        await feed.close()
        await core.close()
        await store.close()

    base50, base99 = p50_p99([s * 1e3 for s in baseline])
    lat50, lat99 = p50_p99([s * 1e3 for s in latencies])
    print(f"baseline: block committed -> outbox feed, nobody watching: p50 {base50:.1f} ms, p99 {base99:.1f} ms "
          f"({BLOCKS} blocks)")
    print(f"{VIEWERS} viewers: block committed -> news event read by each viewer: p50 {lat50:.1f} ms, "
          f"p99 {lat99:.1f} ms ({len(latencies)} deliveries); {lat50 / base50 if base50 else 0:.1f}x the baseline")
    print(f"target: p99 < {TARGET_P99_S * 1e3:.0f} ms: {'met' if lat99 < TARGET_P99_S * 1e3 else 'MISSED'}")
    return 0 if lat99 < TARGET_P99_S * 1e3 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
