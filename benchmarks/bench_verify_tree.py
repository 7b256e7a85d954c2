"""Verifying the whole block tree (chain/consensus/verify.py): what checking orphaned blocks adds.

Run: .venv/bin/python -m benchmarks.bench_verify_tree [--blocks 2000] [--orphans 200] [--repeats 5]

A REGTEST chain of ``--blocks`` blocks, each mined by a new miner (so the ledger the branches copy
grows to ``--blocks`` accounts), and ``--orphans`` one-block side branches at distinct heights
spread along it: every orphan is its own fork point, the worst case for copying state (a copy of
the ledger and recent headers per orphan; a longer branch copies once for all its blocks).

Measured, median of ``--repeats`` runs in this process:
- ``verify_chain`` of the main chain alone (the same-run baseline) and with the orphans; the cost
  per orphan against the cost per main-chain block;
- the peak memory (tracemalloc, one run each) of the main chain alone and with a tenth of the orphans
  and with all of them: the branches' states are dropped as soon as no orphan builds on them, so what
  the orphans add to the peak (about one copy of the ledger) must not grow with their number.

Targets: an orphan costs < 3x a main-chain block (it is one ``process_block`` plus one state copy);
the peak added by all the orphans is < 1.5x the peak added by a tenth of them. Exits non-zero when a
target is missed.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
import tracemalloc

from chain.consensus.block import Block, BlockTemplate
from chain.consensus.genesis import make_genesis_block
from chain.consensus.state import ChainState
from chain.consensus.templates import build_template
from chain.consensus.transition import process_block
from chain.consensus.verify import Orphans, verify_chain
from chain.params import REGTEST
from chain.pow.compact import encode_compact
from chain.pow.difficulty import is_valid_proof_of_work

CHAIN_ID = 4242
GENESIS_TIME = 1_700_000_000
ORPHAN_COST_RATIO_TARGET = 3.0
PEAK_GROWTH_TARGET = 1.5


def solve(template: BlockTemplate) -> Block:
    header = template.header
    for nonce in range(1 << 20):
        candidate = header.with_nonce(nonce)
        if is_valid_proof_of_work(candidate.hash(), candidate.bits, REGTEST):
            return template.solve(template.coinbase.extra_nonce, nonce)
    raise RuntimeError("no nonce found")


def miner(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def build(blocks: int, orphans: int) -> tuple[list[Block], list[tuple[int, Block]]]:
    genesis = make_genesis_block(REGTEST, CHAIN_ID, GENESIS_TIME, encode_compact(REGTEST.pow_limit))
    state = ChainState(REGTEST, CHAIN_ID, genesis)
    main = [genesis]
    every = max(1, blocks // max(1, orphans))
    side: list[tuple[int, Block]] = []
    for height in range(1, blocks + 1):
        now = state.tip.time + REGTEST.target_spacing_s
        if len(side) < orphans and height % every == 0:
            template = build_template(state, miner(f"orphan-{height}"), [], now + 1)
            side.append((height, solve(template)))
        block = solve(build_template(state, miner(f"miner-{height}"), [], now))
        state.apply(block, process_block(state, block, now))
        main.append(block)
    return main, side


def run(main: list[Block], orphans: Orphans) -> float:
    started = time.perf_counter()
    verify_chain(REGTEST, CHAIN_ID, main, main[-1].header.time, orphans=orphans)
    return time.perf_counter() - started


def peak(main: list[Block], orphans: Orphans) -> int:
    tracemalloc.start()
    try:
        verify_chain(REGTEST, CHAIN_ID, main, main[-1].header.time, orphans=orphans)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main_() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=2000)
    parser.add_argument("--orphans", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    main, side = build(args.blocks, args.orphans)
    none, tree, tenth = Orphans.of([]), Orphans.of(side), Orphans.of(side[::10])
    verify_chain(REGTEST, CHAIN_ID, main, main[-1].header.time, orphans=tree)  # warm up, and it must pass
    baselines, trees = [], []
    for _ in range(args.repeats):  # interleaved, so that a busy moment of the machine hits both
        baselines.append(run(main, none))
        trees.append(run(main, tree))
    baseline, with_tree = statistics.median(baselines), statistics.median(trees)
    per_block = baseline / args.blocks
    per_orphan = (with_tree - baseline) / max(1, len(side))
    ratio = per_orphan / per_block
    peak_main, peak_tenth, peak_tree = peak(main, none), peak(main, tenth), peak(main, tree)
    growth = (peak_tree - peak_main) / max(1, peak_tenth - peak_main)
    print(f"chain: {args.blocks} blocks, {len(side)} one-block side branches (each its own fork point)")
    print(f"verify, main chain only (baseline): {baseline * 1000:.1f} ms ({per_block * 1e6:.0f} µs a block)")
    print(f"verify, whole tree:                 {with_tree * 1000:.1f} ms ({per_orphan * 1e6:.0f} µs an orphan, "
          f"{ratio:.2f}x a main-chain block; target < {ORPHAN_COST_RATIO_TARGET}x)")
    print(f"peak memory: main chain {peak_main / 1024:.0f} KB, with {len(side[::10])} orphans "
          f"{peak_tenth / 1024:.0f} KB, with {len(side)} orphans {peak_tree / 1024:.0f} KB (added peak grows "
          f"{growth:.2f}x for 10x the orphans; target < {PEAK_GROWTH_TARGET}x)")
    missed = ratio >= ORPHAN_COST_RATIO_TARGET or growth >= PEAK_GROWTH_TARGET
    print("targets missed" if missed else "targets met")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main_())


