"""Chart latency, and the event loop's lag while charts render.

Run from the repository root: ``python -m benchmarks.bench_charts``.
A 10 ms ticker records how late it wakes up: first with the chart worker
started but idle (baseline, same run), then while 20 charts (line charts of
2,000 points with markers, and bar charts with an expected curve; no cache
key, so each is really drawn) are rendered back to back, 4 requests in flight.
Prints chart latency p50/p99 (request to PNG, queueing included), the
worker's time per chart, and both lags.

Targets: loop lag p99 while rendering < 5 ms (the README's event-loop lag
target, as for the hashing core) and chart latency p99 < 3 s (Discord's
acknowledgement window, though the command would defer first).
Exits non-zero when one is missed.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

from bot.charts import MAX_POINTS_PER_SERIES, ChartRenderer, ChartSpec, Marker, Series

CHARTS = 20
IN_FLIGHT = 4
IDLE_SECONDS = 5.0
TICK_SECONDS = 0.010
LAG_P99_TARGET_MS = 5.0
LATENCY_P99_TARGET_S = 3.0


def spec(index: int) -> ChartSpec:
    if index % 2:
        return ChartSpec(
            kind="bar", title=f"Block intervals {index}", x_label="seconds", y_label="blocks",
            alt_text="intervals", series=(Series("blocks", tuple((s, (s * 37 + index) % 50) for s in range(120))),),
            expected=tuple((s, 50 - s // 3) for s in range(120)),
        )
    points = tuple((h, 10_000 + (h * 7919 + index) % 997) for h in range(MAX_POINTS_PER_SERIES))
    return ChartSpec(
        kind="line", title=f"Difficulty {index}", x_label="height", y_label="difficulty", alt_text="difficulty",
        series=(Series("difficulty", points), Series("hash rate", tuple((x, y // 2) for x, y in points))),
        markers=tuple(Marker(h, f"retarget {h}") for h in range(0, MAX_POINTS_PER_SERIES, 200)),
    )


async def ticker(stop: asyncio.Event) -> list[float]:
    lags: list[float] = []
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(TICK_SECONDS)
        lags.append((time.perf_counter() - before - TICK_SECONDS) * 1e3)
    return lags


def p50_p99(values: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(values, n=100)
    return cuts[49], cuts[98]


async def run() -> tuple[list[float], list[float], list[float], float]:
    renderer = ChartRenderer()
    await renderer.start()
    try:
        stop = asyncio.Event()
        idle_task = asyncio.create_task(ticker(stop))
        await asyncio.sleep(IDLE_SECONDS)
        stop.set()
        idle = await idle_task

        latencies: list[float] = []
        slots = asyncio.Semaphore(IN_FLIGHT)

        async def one(index: int) -> None:
            async with slots:
                start = time.perf_counter()
                await renderer.render(spec(index))
                latencies.append(time.perf_counter() - start)

        stop = asyncio.Event()
        busy_task = asyncio.create_task(ticker(stop))
        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(CHARTS)))
        elapsed = time.perf_counter() - started
        stop.set()
        busy = await busy_task
    finally:
        await renderer.close()
    return idle, busy, latencies, elapsed


def main() -> int:
    idle, busy, latencies, elapsed = asyncio.run(run())
    idle_p50, idle_p99 = p50_p99(idle)
    busy_p50, busy_p99 = p50_p99(busy)
    lat_p50, lat_p99 = p50_p99(latencies)
    lag_ok = busy_p99 < LAG_P99_TARGET_MS
    latency_ok = lat_p99 < LATENCY_P99_TARGET_S
    print(f"{CHARTS} charts (800x450 PNG), {IN_FLIGHT} requests in flight, one chart worker")
    print(f"  chart latency          p50 {lat_p50 * 1e3:7.1f} ms   p99 {lat_p99 * 1e3:7.1f} ms   "
          f"target p99 < {LATENCY_P99_TARGET_S:.0f} s   {'PASS' if latency_ok else 'FAIL'}")
    print(f"  worker time per chart  {elapsed / CHARTS * 1e3:7.1f} ms   (a request waits for those queued before it)")
    print(f"loop lag, {TICK_SECONDS * 1e3:.0f} ms ticker (ms)")
    print(f"  worker idle (baseline) p50 {idle_p50:6.3f}   p99 {idle_p99:6.3f}   ({len(idle)} ticks)")
    print(f"  {CHARTS} charts rendering   p50 {busy_p50:6.3f}   p99 {busy_p99:6.3f}   max {max(busy):6.3f}   "
          f"({len(busy)} ticks)   target p99 < {LAG_P99_TARGET_MS} ms   {'PASS' if lag_ok else 'FAIL'}")
    return 0 if lag_ok and latency_ok else 1


if __name__ == "__main__":
    sys.exit(main())
