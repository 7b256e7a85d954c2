"""Saving the sandbox world during play: what one save costs the event loop.

Run: .venv/bin/python -m benchmarks.bench_sandbox_world [--rounds 30]

In sandbox play (``bash scripts/run.sh``) the sandbox shares its event loop with the bot,
and saves its world about a second after each change (a mining progress edit every 3 s is
one).  The world here is full: every channel of the demo world holds the 200 messages a
save keeps, each with an embed of ~1 KB and five buttons.  Each round edits one message
(as a progress edit does) and takes a snapshot, the part of a save that runs on the loop;
the write and fsync run on a worker thread.

Baseline, same run: the same snapshot without the per-message cache (every message encoded
again), which is also what the first save after a start costs.
Target: a save during play costs the loop under 5 ms (median).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sandbox import Sandbox
from sandbox.demo import populate_demo
from sandbox.models import KIND_BOT
from sandbox.world_file import MESSAGES_KEPT_PER_CHANNEL, WorldWriter, snapshot

TARGET_MS = 5.0
EMBED = {
    "title": "⛏️ Mining block 12",
    "description": "`█░░░░░░░░░░░░░░░░░░░ 6%` of the hashes a block takes on average\n" * 4,
    "fields": [{"name": f"Field {i}", "value": "x" * 60, "inline": True} for i in range(8)],
}
BUTTONS = [
    {
        "type": 1,
        "components": [{"type": 2, "style": 2, "label": f"Topic {i}", "custom_id": f"pg:help:{i}"} for i in range(5)],
    }
]


async def measure(rounds: int) -> int:
    async with Sandbox() as sb:
        populate_demo(sb)
        channels = list(sb.channels.values())
        for channel in channels:
            for _ in range(MESSAGES_KEPT_PER_CHANNEL):
                sb.create_message(
                    channel, sb.bot_user, KIND_BOT, {"embeds": [EMBED], "components": BUTTONS}, [], source="bot"
                )
        last = channels[0].messages[-1]
        with tempfile.TemporaryDirectory() as folder:
            writer = WorldWriter(Path(folder) / "world.json")
            writer.write(*writer.take(sb))  # the first save encodes everything and fills the cache
            cached, uncached, writes = [], [], []
            for i in range(rounds):
                sb.edit_message(last, {"content": f"progress {i}"}, [], source="bot")
                start = time.perf_counter()
                generation, text = writer.take(sb)
                cached.append((time.perf_counter() - start) * 1000)
                start = time.perf_counter()
                writer.write(generation, text)
                writes.append((time.perf_counter() - start) * 1000)
                start = time.perf_counter()
                snapshot(sb)
                uncached.append((time.perf_counter() - start) * 1000)
            size = writer.path.stat().st_size
    got, base = statistics.median(cached), statistics.median(uncached)
    print(
        f"world: {len(channels)} channels x {MESSAGES_KEPT_PER_CHANNEL} messages, "
        f"file {size / 1e6:.2f} MB, {rounds} rounds"
    )
    print(f"on the loop, per save:  median {got:.2f} ms  (baseline, no cache: {base:.1f} ms; {base / got:.0f}x)")
    print(f"worker thread (write + fsync + rename): median {statistics.median(writes):.1f} ms")
    print(f"target: on the loop < {TARGET_MS} ms: {'met' if got < TARGET_MS else 'MISSED'}")
    return 0 if got < TARGET_MS else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    sys.exit(asyncio.run(measure(args.rounds)))


if __name__ == "__main__":
    main()
