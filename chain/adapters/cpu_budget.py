"""The hashing core's CPU budget: at most a share of the machine's CPU (``HASHING_CPU_PERCENT``).

A self-hoster on a small VPS may not want mining to take the whole machine.  The
budget is a percentage of the machine (all its cores together); the hashing core's
workers share it equally, so each worker may be busy at most

    duty = percent × cores / (100 × workers)        (at most 1)

of the time.  Each worker duty-cycles per chunk: after a chunk that took ``c`` of
CPU time it sleeps ``c × (1 - duty) / duty``, so over any run of chunks its CPU
time is at most ``duty`` of its wall time, whatever the chunk sizes.  Pausing by
CPU time (not wall time) keeps the cap when other processes take the core away:
a chunk that waited for the CPU does not earn a shorter pause.

Integers only (nanoseconds), so the maths is exact and testable on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

FULL_PERCENT = 100


@dataclass(frozen=True)
class CpuBudget:
    """``percent`` (1..100) of a machine of ``cores`` cores, shared by ``workers`` hashing workers."""

    percent: int
    cores: int
    workers: int

    def __post_init__(self) -> None:
        if not 1 <= self.percent <= FULL_PERCENT:
            raise ValueError(f"the hashing CPU budget is 1..100 percent, got {self.percent}")
        if self.cores < 1 or self.workers < 1:
            raise ValueError(f"need at least one core and one worker, got {self.cores} and {self.workers}")

    @property
    def duty(self) -> tuple[int, int]:
        """Each worker's busy share of wall time as a fraction (numerator, denominator), at most 1."""
        denominator = FULL_PERCENT * self.workers
        return min(self.percent * self.cores, denominator), denominator

    @property
    def unlimited(self) -> bool:
        busy, whole = self.duty
        return busy == whole

    def pause_ns(self, cpu_ns: int) -> int:
        """How long a worker sleeps after a chunk that took ``cpu_ns`` of CPU time."""
        busy, whole = self.duty
        return max(0, cpu_ns) * (whole - busy) // busy

    def scaled_rate(self, full_rate: int) -> int:
        """A worker's hashes per second under the budget, given its rate when busy all the time."""
        busy, whole = self.duty
        return full_rate * busy // whole
