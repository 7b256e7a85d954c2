"""bot/health.py: the loop-lag ticker tells a blocked loop from a busy host."""

from __future__ import annotations

import asyncio
import time

from bot.health import LoopLagMonitor

BLOCK_S = 0.2


def spin(cpu_s: float) -> None:
    """Compute on this thread until it has used ``cpu_s`` of CPU, however long the host makes that take."""
    start = time.thread_time()
    while time.thread_time() - start < cpu_s:
        pass


async def test_computing_on_the_loop_shows_as_busy_and_waiting_does_not():
    monitor = LoopLagMonitor()
    monitor.start()
    try:
        await asyncio.sleep(0.05)
        time.sleep(BLOCK_S)  # the loop blocked, but its thread used no CPU (a descheduled host looks alike)
        await asyncio.sleep(0.05)
        waited = monitor.report_and_reset()
        spin(BLOCK_S)  # the loop blocked computing: the bot's own fault
        await asyncio.sleep(0.05)
        computed = monitor.stats()
    finally:
        await monitor.stop()
    assert waited.max_ms >= BLOCK_S * 1e3 * 0.9 and waited.max_busy_ms < BLOCK_S * 1e3 / 2
    assert computed.max_ms >= BLOCK_S * 1e3 * 0.9 and computed.max_busy_ms >= BLOCK_S * 1e3
    assert "loop thread busy at most" in str(computed)
