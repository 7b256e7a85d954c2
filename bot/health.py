"""Event-loop lag: how late a 10 ms ticker wakes up, the heartbeat's early warning.

A Discord heartbeat is sent from this loop; if anything blocks the loop, the
ticker sees it first.  Operators get the figures with SIGUSR1 (logged, then
reset) and admins in ``/playground status``.

A late tick has two causes: the loop's thread computed for that long (the bot's
fault: work that belongs in a thread), or the host did not schedule the process
(a busy machine).  ``busy`` tells them apart: the CPU time the loop's thread
used between two ticks, which a descheduled thread does not accumulate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass

log = logging.getLogger(__name__)

TICK_S = 0.010
WINDOW_SAMPLES = 60_000  # ten minutes of ticks


@dataclass(frozen=True, slots=True)
class LagStats:
    samples: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    # The most CPU time the loop's thread used between two ticks: a blocked loop, not a busy host.
    max_busy_ms: float = 0.0

    def __str__(self) -> str:
        return (f"{self.samples} ticks, p50 {self.p50_ms:.2f} ms, p99 {self.p99_ms:.2f} ms, max {self.max_ms:.2f} ms, "
                f"loop thread busy at most {self.max_busy_ms:.2f} ms between ticks")


def summarize(lags_s: list[float], busy_s: list[float] | None = None) -> LagStats:
    if not lags_s:
        return LagStats(0, 0.0, 0.0, 0.0)
    ordered = sorted(lags_s)
    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1e3
    return LagStats(len(ordered), at(0.50), at(0.99), ordered[-1] * 1e3, max(busy_s or [0.0]) * 1e3)


class LoopLagMonitor:
    def __init__(self, tick_s: float = TICK_S) -> None:
        self._tick_s = tick_s
        self._lags: deque[float] = deque(maxlen=WINDOW_SAMPLES)
        self._busy: deque[float] = deque(maxlen=WINDOW_SAMPLES)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="loop-lag-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self._tick_s
            cpu = time.thread_time()  # this task runs on the loop's thread
            await asyncio.sleep(self._tick_s)
            self._lags.append(max(0.0, loop.time() - due))
            self._busy.append(time.thread_time() - cpu)

    def stats(self) -> LagStats:
        return summarize(list(self._lags), list(self._busy))

    def report_and_reset(self) -> LagStats:
        stats = self.stats()
        self._lags.clear()
        self._busy.clear()
        log.info("event loop lag since the last report: %s", stats)
        return stats
