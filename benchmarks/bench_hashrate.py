"""Hash rate of the nonce search backend, and its scaling over HashingCore workers.

Run from the repository root: ``python -m benchmarks.bench_hashrate``.
Exits non-zero when a target is missed.

* one worker: the backend against the naive loop in this process, alternating
  runs of each; target: backend / naive >= 1.3.
* scaling: sustained rate of one session through HashingCore with 1 and with
  2 workers; target: rate2 / (2 * rate1) >= 0.75.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Callable

from chain.adapters.hashcore import HashingCore, Progress
from chain.adapters.nonce_search import DEFAULT_BACKEND, SearchResult, get_backend, naive_search

REPEATS = 5
CORE_REPEATS = 3
BACKEND_HASHES = 400_000
NAIVE_HASHES = 150_000
CORE_WARM_UP_SECONDS = 0.5
CORE_WINDOW_SECONDS = 2.0
BACKEND_RATIO_TARGET = 1.3
SCALING_TARGET = 0.75

PREFIX = bytes(range(76))
IMPOSSIBLE = 0

Search = Callable[[bytes, int, int, int], SearchResult]


class EndlessJob:
    chain_id = 0
    tip = b""
    target = IMPOSSIBLE

    def header_prefix(self, extra_nonce: int) -> bytes:
        return extra_nonce.to_bytes(76, "little")


def in_process_rate(search: Search, hashes: int) -> float:
    started = time.perf_counter()
    result = search(PREFIX, IMPOSSIBLE, 0, hashes)
    return result.hashes_tried / (time.perf_counter() - started)


async def core_rate(workers: int) -> float:
    """Hashes per second of one session with every worker, past a warm-up."""
    samples: list[tuple[float, int]] = []

    def record(progress: Progress) -> None:
        samples.append((time.perf_counter(), progress.hashes_tried))

    async with HashingCore(workers) as core:
        session = core.start_session(EndlessJob(), on_progress=record)
        window_start = time.perf_counter() + CORE_WARM_UP_SECONDS
        await asyncio.sleep(CORE_WARM_UP_SECONDS + CORE_WINDOW_SECONDS)
        session.cancel()
    window = [(t, h) for t, h in samples if t >= window_start]
    (first_time, first_hashes), (last_time, last_hashes) = window[0], window[-1]
    return (last_hashes - first_hashes) / (last_time - first_time)


def verdict(value: float, target: float) -> str:
    return f"target >= {target}   {'PASS' if value >= target else 'FAIL'}"


def fmt(rates: list[float]) -> str:
    return ", ".join(f"{r / 1e6:.3f}" for r in rates)


def main() -> int:
    backend = get_backend(DEFAULT_BACKEND)
    backend_rates: list[float] = []
    naive_rates: list[float] = []
    for _ in range(REPEATS):
        naive_rates.append(in_process_rate(naive_search, NAIVE_HASHES))
        backend_rates.append(in_process_rate(backend.search, BACKEND_HASHES))
    backend_rate = statistics.median(backend_rates)
    naive_rate = statistics.median(naive_rates)
    ratio = backend_rate / naive_rate

    one_worker: list[float] = []
    two_workers: list[float] = []
    for _ in range(CORE_REPEATS):
        one_worker.append(asyncio.run(core_rate(1)))
        two_workers.append(asyncio.run(core_rate(2)))
    rate1 = statistics.median(one_worker)
    rate2 = statistics.median(two_workers)
    scaling = rate2 / (2 * rate1)

    print(f"single worker, in process, median of {REPEATS} runs (MH/s)")
    label = f"backend {backend.name!r}"
    print(f"  {label:22} {backend_rate / 1e6:6.3f}   runs {fmt(backend_rates)}")
    print(f"  {'naive loop (baseline)':22} {naive_rate / 1e6:6.3f}   runs {fmt(naive_rates)}")
    print(f"  ratio {ratio:.2f}   {verdict(ratio, BACKEND_RATIO_TARGET)}")
    print(
        f"HashingCore, one session, median of {CORE_REPEATS} runs of {CORE_WINDOW_SECONDS} s (MH/s)"
    )
    print(f"  {'1 worker':22} {rate1 / 1e6:6.3f}   runs {fmt(one_worker)}")
    print(f"  {'2 workers':22} {rate2 / 1e6:6.3f}   runs {fmt(two_workers)}")
    print(f"  scaling rate2 / (2 * rate1) {scaling:.2f}   {verdict(scaling, SCALING_TARGET)}")
    print(f"  (1 worker through the core / in process: {rate1 / backend_rate:.2f})")
    return 0 if ratio >= BACKEND_RATIO_TARGET and scaling >= SCALING_TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
