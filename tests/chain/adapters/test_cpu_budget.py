"""HASHING_CPU_PERCENT: the duty-cycle maths, and the workers pausing by it (no timed assertion)."""

import asyncio

import pytest

from chain.adapters import nonce_search
from chain.adapters.cpu_budget import CpuBudget
from chain.adapters.hashcore import HashingCore, Progress
from chain.adapters.nonce_search import DEFAULT_BACKEND, run_chunk


@pytest.mark.parametrize(
    ("percent", "cores", "workers", "duty"),
    [
        (100, 2, 2, (200, 200)),  # the whole machine: no pause
        (25, 2, 2, (50, 200)),  # a quarter of the machine: each worker busy a quarter of the time
        (25, 4, 1, (100, 100)),  # one worker on four cores: a quarter of the machine is a whole core
        (50, 1, 1, (50, 100)),  # the 1-core VPS at 50%
        (50, 1, 4, (50, 400)),  # more workers than cores share the one core's half
        (1, 64, 64, (64, 6400)),
    ],
)
def test_each_worker_gets_an_equal_part_of_the_machine_share(percent, cores, workers, duty):
    budget = CpuBudget(percent, cores, workers)
    assert budget.duty == duty
    assert budget.unlimited == (duty[0] == duty[1])


def test_pause_keeps_cpu_time_at_the_duty_share_of_wall_time():
    budget = CpuBudget(25, 2, 2)  # duty 1/4
    assert budget.pause_ns(1_000_000) == 3_000_000
    assert budget.pause_ns(0) == 0
    assert CpuBudget(100, 2, 2).pause_ns(1_000_000) == 0
    assert CpuBudget(25, 4, 1).pause_ns(1_000_000) == 0
    # Over any chunks, busy / (busy + pause) never exceeds the duty (integer rounding only shortens nothing).
    for percent in (1, 7, 25, 33, 50, 99):
        b = CpuBudget(percent, 3, 2)
        busy, whole = b.duty
        for cpu in (1, 999, 1_234_567, 75_000_000):
            pause = b.pause_ns(cpu)
            assert cpu * whole <= (cpu + pause) * busy + whole  # within 1 ns of rounding
            assert cpu * whole >= (cpu + pause - 1) * busy


def test_the_rate_under_the_budget_scales_with_the_duty():
    assert CpuBudget(25, 2, 2).scaled_rate(8_000_000) == 2_000_000
    assert CpuBudget(100, 2, 2).scaled_rate(8_000_000) == 8_000_000


@pytest.mark.parametrize(("percent", "cores", "workers"), [(0, 1, 1), (101, 1, 1), (50, 0, 1), (50, 1, 0)])
def test_impossible_budgets_are_refused(percent, cores, workers):
    with pytest.raises(ValueError):
        CpuBudget(percent, cores, workers)


def test_run_chunk_sleeps_the_budgets_pause_for_the_cpu_time_it_measured(monkeypatch):
    slept = []
    monkeypatch.setattr(nonce_search.time, "sleep", slept.append)
    budget = CpuBudget(20, 1, 1)  # duty 1/5: four times the CPU time asleep

    result = run_chunk(DEFAULT_BACKEND, bytes(76), 0, 0, 20_000, budget)

    assert result.cpu_ns > 0
    assert slept == [budget.pause_ns(result.cpu_ns) / 1e9]
    assert slept[0] > 0
    # No budget, or a full one: no pause at all.
    run_chunk(DEFAULT_BACKEND, bytes(76), 0, 0, 1_000)
    run_chunk(DEFAULT_BACKEND, bytes(76), 0, 0, 1_000, CpuBudget(100, 1, 1))
    assert len(slept) == 1


class EndlessJob:
    chain_id = 0
    tip = b""
    target = 0

    def header_prefix(self, extra_nonce: int) -> bytes:
        return extra_nonce.to_bytes(76, "little")


async def test_the_core_s_workers_pause_by_the_budget():
    # One worker at 1% of one core: each chunk is followed by a pause of 99 times its CPU time, in the
    # worker, before the chunk's result comes back. With one worker the chunks run one after the other,
    # so the session's wall time is at least 100 times the CPU time they took: a consequence of the
    # pauses (a sleep lasts at least what it was asked), not a timing measurement. Without the budget
    # the wall time is about the CPU time.
    loop = asyncio.get_running_loop()
    core = HashingCore(1, cpu_percent=1, cores=1, worker_niceness=0)
    async with core:
        assert core.stats().cpu_percent == 1
        chunks = asyncio.Queue()
        started = loop.time()
        session = core.start_session(EndlessJob(), on_progress=lambda p: chunks.put_nowait(p))
        for _ in range(3):
            progress: Progress = await chunks.get()
        elapsed_ns = (loop.time() - started) * 1e9
        cpu_ns = session.cpu_ns
        session.cancel()
    assert progress.hashes_tried > 0 and cpu_ns > 0
    assert elapsed_ns >= 100 * cpu_ns * 0.999
