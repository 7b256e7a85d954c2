"""HASHING_CPU_PERCENT: the CPU share the hashing processes really use under a budget, and the calibration.

Run from the repository root: ``python -m benchmarks.bench_cpu_budget [seconds] [percent] [niceness]``
(defaults: 60 s, 25%, niceness 19 with SCHED_IDLE as the bot runs its workers; 0 runs them as
ordinary processes, which on a machine busy with other work shows what the budget does when the
workers are not starved). Exits non-zero when a target is missed.

* One member's session mines on a HashingCore with every core and ``cpu_percent`` = percent for the
  given time; the CPU time of the worker processes is read from /proc (user + system, everything the
  processes did: hashing, pickling, pauses excluded by nature) at the start and the end of the window.
  Share = that CPU time / (wall time x cores). Target: within +-5 points of percent.
* Same run baseline: the same session without a budget for a quarter of the time (its share shows
  what the machine let the workers have: on a machine shared with other work, SCHED_IDLE workers get
  less than 100%, and then so may the budgeted run).
* Calibration: ``measure_rate()`` (what a new chain's difficulty is calibrated from) with and
  without the budget; their ratio should be about percent / 100. Printed, no target.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from chain.adapters.hashcore import DEFAULT_WORKER_NICENESS, HashingCore

SHARE_TOLERANCE_POINTS = 5.0
WARM_UP_SECONDS = 1.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class EndlessJob:
    chain_id = 0
    tip = b""
    target = 0

    def header_prefix(self, extra_nonce: int) -> bytes:
        return extra_nonce.to_bytes(76, "little")


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            # Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
            fields = stat.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


async def share_and_rate(percent: int, seconds: float, niceness: int) -> tuple[float, int, int]:
    """(CPU share of the machine in percent, hashes per wall second, calibration rate)."""
    cores = os.cpu_count() or 1
    async with HashingCore(cpu_percent=percent, worker_niceness=niceness) as core:
        calibration = await core.measure_rate()
        pids = list(core._pool._processes)  # type: ignore[union-attr]  # the pool's worker processes
        session = core.start_session(EndlessJob())
        await asyncio.sleep(WARM_UP_SECONDS)
        cpu0, wall0, hashes0 = cpu_seconds(pids), time.monotonic(), session.hashes_tried
        await asyncio.sleep(seconds)
        cpu1, wall1, hashes1 = cpu_seconds(pids), time.monotonic(), session.hashes_tried
        session.cancel()
    wall = wall1 - wall0
    return 100 * (cpu1 - cpu0) / (wall * cores), int((hashes1 - hashes0) / wall), calibration


def main(argv: list[str]) -> int:
    seconds = float(argv[0]) if argv else 60.0
    percent = int(argv[1]) if len(argv) > 1 else 25
    niceness = int(argv[2]) if len(argv) > 2 else DEFAULT_WORKER_NICENESS
    print(f"{os.cpu_count()} cores, one worker each, niceness {niceness}"
          f"{' (and SCHED_IDLE)' if niceness > 0 else ''}; load average before: {os.getloadavg()[0]:.2f}")
    full_share, full_rate, full_calibration = asyncio.run(share_and_rate(100, seconds / 4, niceness))
    share, rate, calibration = asyncio.run(share_and_rate(percent, seconds, niceness))
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"  no budget ({seconds / 4:g} s)   CPU share {full_share:5.1f}%   {full_rate:,} H/s"
          f"   calibration {full_calibration:,} H/s")
    print(f"  HASHING_CPU_PERCENT={percent} ({seconds:g} s)   CPU share {share:5.1f}%   {rate:,} H/s"
          f"   calibration {calibration:,} H/s")
    off = share - percent
    ok = abs(off) <= SHARE_TOLERANCE_POINTS
    print(f"  share {share:.1f}% vs {percent}%: {off:+.1f} points   target within +-{SHARE_TOLERANCE_POINTS:g}"
          f"   {'PASS' if ok else 'FAIL'}")
    ratio = calibration / full_calibration
    print(f"  calibration under the budget / without: {ratio:.2f} (budget {percent / 100:.2f})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
