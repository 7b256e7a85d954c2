"""Hash rate of the nonce search backends per CPU-second, their scaling over workers, and /mine stats.

Run from the repository root: ``python -m benchmarks.bench_hashrate``.
Exits non-zero when a target is missed.

* per CPU-second of one process (CPU time, not wall time: the machine is shared), median of
  alternating runs: the native backend (SHA extensions where present), its portable C path, the
  Python backend, the naive ``hashlib`` loop, and a plain C loop over OpenSSL's SHA-256 with the
  76-byte midstate copied per nonce (compiled here with gcc -lcrypto; skipped, saying so, without
  them). Targets: native >= 6 M hashes/s, >= 0.75 of the OpenSSL loop, >= 5x the Python backend;
  Python backend >= 1.3x the naive loop.
* scaling: one session through HashingCore (native backend) with 1 and with 2 workers, hashes per
  CPU-second of the workers; target: 2 workers / 1 worker >= 0.85 (each worker keeps its rate). The
  wall-clock scaling rate2 / (2 * rate1) is printed too: it is what members get, but on a machine
  shared with other work the workers (at the lowest priority) get only the CPU others leave, so it
  measures the neighbours as much as the core (the load average is printed beside it).
* /mine stats, before and after: one member's session through a HashingCore with every core, on the
  Python backend and on the native one, alternating; the "Core" figure /mine stats shows (worker rate
  x workers) and the session's own rate ("at N H/s"). Medians printed, with the ratio; no target.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from chain.adapters.hashcore import HashingCore, Progress
from chain.adapters.nonce_search import BACKENDS, DEFAULT_BACKEND, SearchResult, naive_search

REPEATS = 5
CORE_REPEATS = 3
NATIVE_HASHES = 8_000_000
PORTABLE_HASHES = 2_000_000
PYTHON_HASHES = 400_000
NAIVE_HASHES = 150_000
CORE_WARM_UP_SECONDS = 0.5
CORE_WINDOW_SECONDS = 2.0
STATS_SECONDS = 4.0
STATS_REPEATS = 3
NATIVE_RATE_TARGET = 6_000_000
OPENSSL_RATIO_TARGET = 0.75
PYTHON_RATIO_TARGET = 5.0
NAIVE_RATIO_TARGET = 1.3
SCALING_TARGET = 0.85

PREFIX = bytes(range(76))
IMPOSSIBLE = 0

Search = Callable[[bytes, int, int, int], SearchResult]

# The same-run baseline: what a plain C loop over OpenSSL's SHA-256 does per CPU-second, the midstate of
# the first 76 bytes (SHA256_CTX after them) copied for each nonce, then the 4 nonce bytes and the second hash.
OPENSSL_LOOP = r"""
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv) {
    unsigned long n = strtoul(argv[1], NULL, 10), i;
    unsigned char header[80], first[32], digest[32], best = 0xff;
    SHA256_CTX mid, ctx, second;
    struct timespec t0, t1;
    for (i = 0; i < 76; i++) header[i] = (unsigned char)i;
    SHA256_Init(&mid);
    SHA256_Update(&mid, header, 76);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    for (i = 0; i < n; i++) {
        unsigned int nonce = (unsigned int)i;
        memcpy(&ctx, &mid, sizeof ctx);
        SHA256_Update(&ctx, &nonce, 4);
        SHA256_Final(first, &ctx);
        /* Not SHA256(): in OpenSSL 3 that one-shot fetches the algorithm on every call. */
        SHA256_Init(&second);
        SHA256_Update(&second, first, 32);
        SHA256_Final(digest, &second);
        if (digest[31] < best) best = digest[31];  /* keep the work observable */
    }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
    printf("%.9f %u\n", (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9, best);
    return 0;
}
"""


class EndlessJob:
    chain_id = 0
    tip = b""
    target = IMPOSSIBLE

    def header_prefix(self, extra_nonce: int) -> bytes:
        return extra_nonce.to_bytes(76, "little")


def cpu_rate(search: Search, hashes: int) -> float:
    """Hashes per CPU-second of this process."""
    started = time.process_time()
    result = search(PREFIX, IMPOSSIBLE, 0, hashes)
    return result.hashes_tried / (time.process_time() - started)


def build_openssl_loop(folder: Path) -> Path | None:
    gcc = shutil.which("gcc")
    if gcc is None:
        return None
    source, binary = folder / "openssl_loop.c", folder / "openssl_loop"
    source.write_text(OPENSSL_LOOP)
    built = subprocess.run([gcc, "-O2", "-o", str(binary), str(source), "-lcrypto"], capture_output=True, text=True)
    if built.returncode != 0:
        print(f"(no OpenSSL baseline: gcc -lcrypto failed: {built.stderr.strip()[:200]})")
        return None
    return binary


def openssl_rate(binary: Path, hashes: int) -> float:
    out = subprocess.run([str(binary), str(hashes)], capture_output=True, text=True, check=True).stdout
    return hashes / float(out.split()[0])


async def core_rate(workers: int, backend: str) -> tuple[float, float]:
    """(hashes per wall second, hashes per worker CPU-second) of one session with every worker, past a warm-up."""
    samples: list[tuple[float, int, int]] = []
    async with HashingCore(workers, backend=backend) as core:

        def record(progress: Progress) -> None:
            samples.append((time.perf_counter(), progress.hashes_tried, session.cpu_ns))

        session = core.start_session(EndlessJob(), on_progress=record)
        window_start = time.perf_counter() + CORE_WARM_UP_SECONDS
        await asyncio.sleep(CORE_WARM_UP_SECONDS + CORE_WINDOW_SECONDS)
        session.cancel()
    window = [s for s in samples if s[0] >= window_start]
    (t0, h0, c0), (t1, h1, c1) = window[0], window[-1]
    # session.cpu_ns adds up every worker's CPU time: hashes over it are per worker CPU-second.
    return (h1 - h0) / (t1 - t0), (h1 - h0) / ((c1 - c0) / 1e9)


async def mine_stats(backend: str) -> tuple[int, int, str]:
    """What /mine stats shows for one member mining alone: the core's figure, the session's rate, the backend."""
    last: list[Progress] = []
    async with HashingCore(backend=backend) as core:
        session = core.start_session(EndlessJob(), on_progress=last.append, key="member")
        await asyncio.sleep(STATS_SECONDS)
        stats = core.stats()
        session.cancel()
    return stats.worker_rate * stats.workers, last[-1].rate, stats.backend


def verdict(value: float, target: float) -> str:
    return f"target >= {target:g}   {'PASS' if value >= target else 'FAIL'}"


def fmt(rates: list[float]) -> str:
    return ", ".join(f"{r / 1e6:.2f}" for r in rates)


def main() -> int:
    native = BACKENDS[DEFAULT_BACKEND]
    if not DEFAULT_BACKEND.startswith("native"):
        print(f"the native backend is not available here ({DEFAULT_BACKEND!r} runs): build it with scripts/setup.sh")
        return 1
    portable = BACKENDS["native-portable"]
    python = BACKENDS["python"]
    rates: dict[str, list[float]] = {"native": [], "portable": [], "python": [], "naive": [], "openssl": []}
    print(f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        binary = build_openssl_loop(Path(tmp))
        for _ in range(REPEATS):
            rates["native"].append(cpu_rate(native.search, NATIVE_HASHES))
            if binary is not None:
                rates["openssl"].append(openssl_rate(binary, NATIVE_HASHES))
            rates["portable"].append(cpu_rate(portable.search, PORTABLE_HASHES))
            rates["python"].append(cpu_rate(python.search, PYTHON_HASHES))
            rates["naive"].append(cpu_rate(naive_search, NAIVE_HASHES))
    med = {name: statistics.median(values) if values else 0.0 for name, values in rates.items()}

    ok = True
    print(f"per CPU-second of one process, median of {REPEATS} alternating runs (M hashes/s)")
    labels = {
        "native": f"{native.label}", "portable": f"{portable.label}", "python": "Python backend",
        "naive": "naive hashlib loop", "openssl": "C loop over OpenSSL",
    }
    for name, label in labels.items():
        if rates[name]:
            print(f"  {label:24} {med[name] / 1e6:7.2f}   runs {fmt(rates[name])}")
    native_m = med["native"] / 1e6
    print(f"  native per core: {native_m:.2f} M/s   {verdict(native_m, NATIVE_RATE_TARGET / 1e6)}")
    ok &= med["native"] >= NATIVE_RATE_TARGET
    if rates["openssl"]:
        ratio = med["native"] / med["openssl"]
        print(f"  native / OpenSSL loop: {ratio:.2f}   {verdict(ratio, OPENSSL_RATIO_TARGET)}")
        ok &= ratio >= OPENSSL_RATIO_TARGET
    else:
        print("  native / OpenSSL loop: not measured (no gcc or no OpenSSL headers)")
    ratio = med["native"] / med["python"]
    print(f"  native / Python backend: {ratio:.1f}   {verdict(ratio, PYTHON_RATIO_TARGET)}")
    ok &= ratio >= PYTHON_RATIO_TARGET
    ratio = med["python"] / med["naive"]
    print(f"  Python backend / naive loop: {ratio:.2f}   {verdict(ratio, NAIVE_RATIO_TARGET)}")
    ok &= ratio >= NAIVE_RATIO_TARGET
    print(f"  portable C / Python backend: {med['portable'] / med['python']:.1f}")

    one: list[tuple[float, float]] = []
    two: list[tuple[float, float]] = []
    for _ in range(CORE_REPEATS):
        one.append(asyncio.run(core_rate(1, DEFAULT_BACKEND)))
        two.append(asyncio.run(core_rate(2, DEFAULT_BACKEND)))
    rate1 = statistics.median(r for r, _ in one)
    rate2 = statistics.median(r for r, _ in two)
    cpu1 = statistics.median(c for _, c in one)
    cpu2 = statistics.median(c for _, c in two)
    print(f"HashingCore ({native.label}), one session, median of {CORE_REPEATS} runs of {CORE_WINDOW_SECONDS} s")
    print(f"  1 worker   per worker CPU-second {cpu1 / 1e6:6.2f} M/s (runs {fmt([c for _, c in one])})"
          f"   wall {rate1 / 1e6:6.2f} M/s (runs {fmt([r for r, _ in one])})")
    print(f"  2 workers  per worker CPU-second {cpu2 / 1e6:6.2f} M/s (runs {fmt([c for _, c in two])})"
          f"   wall {rate2 / 1e6:6.2f} M/s (runs {fmt([r for r, _ in two])})")
    scaling = cpu2 / cpu1
    print(f"  scaling per CPU-second, 2 workers / 1 worker {scaling:.2f}   {verdict(scaling, SCALING_TARGET)}")
    ok &= scaling >= SCALING_TARGET
    print(f"  wall-clock scaling rate2 / (2 * rate1) {rate2 / (2 * rate1):.2f} (no target: load average"
          f" {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; 1 worker through the core / in process"
          f" {rate1 / med['native']:.2f})")

    print(f"/mine stats, one member mining for {STATS_SECONDS:g} s on a core with every CPU ({os.cpu_count()} workers),"
          f" median of {STATS_REPEATS} alternating runs")
    runs: dict[str, list[tuple[int, int, str]]] = {"python": [], DEFAULT_BACKEND: []}
    for _ in range(STATS_REPEATS):
        for backend in runs:
            runs[backend].append(asyncio.run(mine_stats(backend)))
    medians = {}
    for backend, results in runs.items():
        core_figure = int(statistics.median(r[0] for r in results))
        session_rate = int(statistics.median(r[1] for r in results))
        medians[backend] = (core_figure, session_rate)
        print(f"  {results[0][2]:22} Core ~{core_figure:,} H/s   session at {session_rate:,} H/s"
              f"   (Core runs {fmt([r[0] for r in results])} M)")
    before, after = medians["python"], medians[DEFAULT_BACKEND]
    print(f"  after / before: Core {after[0] / before[0]:.1f}x, session {after[1] / before[1]:.1f}x"
          f"   load average {os.getloadavg()[0]:.2f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
