"""Event-loop lag while HashingCore keeps every worker hashing.

Run from the repository root: ``python -m benchmarks.bench_event_loop_lag``.
A ticker sleeps 10 ms at a time and records how late it wakes up; the
baseline runs it with the core started but idle, the load case with several
sessions (with progress callbacks) busy on all workers. Target: p99 lag under
load < 5 ms. Exits non-zero when missed.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

from chain.adapters.hashcore import HashingCore, Progress

REPEATS = 3
PHASE_SECONDS = 5.0
TICK_SECONDS = 0.010
P99_TARGET_MS = 5.0
SESSION_WEIGHTS = (1, 2, 3)


class EndlessJob:
    chain_id = 0
    tip = b""
    target = 0

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def header_prefix(self, extra_nonce: int) -> bytes:
        return self.seed.to_bytes(8, "little") + extra_nonce.to_bytes(68, "little")


async def ticker_lags_ms(seconds: float) -> list[float]:
    lags: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        before = time.perf_counter()
        await asyncio.sleep(TICK_SECONDS)
        lags.append((time.perf_counter() - before - TICK_SECONDS) * 1e3)
    return lags


def p50_p99(lags: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(lags, n=100)
    return cuts[49], cuts[98]


async def run() -> tuple[list[tuple[float, float]], list[tuple[float, float]], int, int]:
    idle: list[tuple[float, float]] = []
    busy: list[tuple[float, float]] = []
    progress_calls = 0

    def on_progress(progress: Progress) -> None:
        nonlocal progress_calls
        progress_calls += 1

    async with HashingCore() as core:
        for _ in range(REPEATS):
            idle.append(p50_p99(await ticker_lags_ms(PHASE_SECONDS)))
            sessions = [
                core.start_session(EndlessJob(seed), weight=weight, on_progress=on_progress)
                for seed, weight in enumerate(SESSION_WEIGHTS)
            ]
            busy.append(p50_p99(await ticker_lags_ms(PHASE_SECONDS)))
            for session in sessions:
                session.cancel()
        hashes = core.stats().hashes_total
    return idle, busy, hashes, progress_calls


def fmt(pairs: list[tuple[float, float]]) -> str:
    return ", ".join(f"{p99:.3f}" for _, p99 in pairs)


def median_pair(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(p for p, _ in pairs), statistics.median(p for _, p in pairs)


def main() -> int:
    idle, busy, hashes, callbacks = asyncio.run(run())
    idle_p50, idle_p99 = median_pair(idle)
    busy_p50, busy_p99 = median_pair(busy)
    passed = busy_p99 < P99_TARGET_MS
    print(
        f"ticker every {TICK_SECONDS * 1e3:.0f} ms, {REPEATS} runs of {PHASE_SECONDS} s per phase"
    )
    print("lag in ms, median over runs")
    print(
        f"  core idle (baseline)  p50 {idle_p50:6.3f}   p99 {idle_p99:6.3f}   runs p99 {fmt(idle)}"
    )
    print(
        f"  all workers hashing   p50 {busy_p50:6.3f}   p99 {busy_p99:6.3f}   runs p99 {fmt(busy)}"
    )
    print(f"  ({len(SESSION_WEIGHTS)} sessions, {hashes:,} hashes, {callbacks} progress callbacks)")
    verdict = "PASS" if passed else "FAIL"
    print(f"  p99 under load {busy_p99:.3f}   target < {P99_TARGET_MS} ms   {verdict}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
