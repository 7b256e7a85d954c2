"""The block tree (chain/consensus/tree.py): building 100,000 blocks with 1,000 orphans, and a 10-deep reorg.

Run: .venv/bin/python -m benchmarks.bench_tree [--blocks 100000] [--orphans 1000] [--repeats 5]

The tree a node would rebuild at startup: ``--blocks`` blocks on the best chain and ``--orphans``
one-block side branches spread along it, half of them seen before the block that beat them (so the
tree briefly switches to them and back, a 1-deep reorg each), all added in first-seen order. The
work of each block comes from real compact bits (``compute_header_work``), so chain work is a
big integer as on a real chain.

Measured:
- build time, median of ``--repeats`` runs, against the same-run baseline of appending the same
  entries (hash, parent, height, work, chain work, sequence) as tuples to a plain list: the least
  any index of these blocks can cost in Python;
- memory held by the built tree (tracemalloc, a separate run, hashes made inside the traced
  region so that the tree's own copies count), per block, against the plain list's;
- a 10-deep reorg's path (``compute_reorg``: fork point, 10 blocks to disconnect, 11 to connect) on
  that tree, median of 2,001 runs, against the same-run baseline of 21 parent lookups in a dict;
- for the explorer (not targeted): ``compute_side_branches`` (O(blocks)) and ``compute_best_tip``
  under a finality constraint that excludes the best branch (O(tips)).

Targets: build < 1 s (10 µs a block: the in-memory part of a startup, reading the blocks from
storage not included), memory < 400 bytes a block (40 MB for the whole tree) and < 2x the plain
list, a 10-deep reorg path < 0.1 ms (negligible beside connecting 11 blocks). Prints medians,
ratios and the targets; exits non-zero when a target is missed.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
import tracemalloc
from collections.abc import Iterator

from chain.consensus.tree import (
    BlockTree,
    compute_best_tip,
    compute_header_work,
    compute_reorg,
    compute_side_branches,
)
from chain.params import REGTEST
from chain.pow.compact import encode_compact

BUILD_TARGET_S = 1.0
BYTES_PER_BLOCK_TARGET = 400
MEMORY_RATIO_TARGET = 2.0
REORG_TARGET_MS = 0.1
REORG_DEPTH = 10
REORG_REPEATS = 2_001

Block = tuple[bytes, bytes, int, int]


def block_hash(label: bytes) -> bytes:
    return hashlib.sha256(label).digest()


GENESIS = block_hash(b"genesis")
# Targets a little below the regtest limit, as retargets would leave them: work ~2^1..2^3 x the easiest.
WORKS = tuple(
    compute_header_work(encode_compact(REGTEST.pow_limit // (2 + i % 7)), REGTEST.pow_limit) for i in range(64)
)


def blocks(count: int, orphans: int) -> Iterator[Block]:
    """(hash, parent, height, work) in first-seen order: the best chain with one-block side branches."""
    every = max(1, count // max(orphans, 1))
    parent = GENESIS
    made = 0
    for height in range(1, count + 1):
        main = (block_hash(b"main %d" % height), parent, height, WORKS[height % 64])
        if made < orphans and height % every == every // 2:
            made += 1
            # The orphan has less work than the main block, so the main block wins when it comes later.
            orphan = (block_hash(b"orphan %d" % height), parent, height, WORKS[height % 64] - 1)
            pair = (orphan, main) if made % 2 else (main, orphan)
            yield from pair
        else:
            yield main
        parent = main[0]


def build_tree(source: Iterator[Block]) -> BlockTree:
    tree = BlockTree(GENESIS, WORKS[0])
    add = tree.add_block
    for h, parent, height, work in source:
        add(h, parent, height, work)
    return tree


def build_list(source: Iterator[Block]) -> list[tuple[bytes, bytes, int, int, int, int]]:
    """The baseline: the same six fields per block, appended to a list (chain work from a dict of sums)."""
    out = [(GENESIS, bytes(32), 0, WORKS[0], WORKS[0], 0)]
    chain_work = {GENESIS: WORKS[0]}
    for h, parent, height, work in source:
        total = chain_work[parent] + work
        chain_work[h] = total
        out.append((h, parent, height, work, total, len(out)))
    return out


def held_bytes(build, count: int, orphans: int) -> tuple[int, object]:
    """Memory the built structure holds once its inputs are gone (tracemalloc, current after - before)."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    built = build(blocks(count, orphans))
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return after - before, built


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--blocks", type=int, default=100_000)
    parser.add_argument("--orphans", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    inputs = list(blocks(args.blocks, args.orphans))
    total = len(inputs) + 1
    # Interleave the two so that machine noise falls on both alike.
    ours, base = [], []
    for _ in range(args.repeats):
        started = time.perf_counter()
        tree = build_tree(iter(inputs))
        ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        build_list(iter(inputs))
        base.append(time.perf_counter() - started)
    del inputs

    # Sanity (explicit: python -O drops asserts): every block kept, the orphans off the best chain.
    side = compute_side_branches(tree)
    best = compute_best_tip(tree)
    if len(tree) != total or len(side) != args.orphans or best.height != args.blocks:
        print(f"FAIL: tree of {len(tree)} blocks, {len(side)} side blocks, best at height {best.height}")
        return 2

    tree_bytes, _held_tree = held_bytes(build_tree, args.blocks, args.orphans)
    del _held_tree
    list_bytes, _held_list = held_bytes(build_list, args.blocks, args.orphans)
    del _held_list

    # A 10-deep reorg: a branch from 10 blocks below the tip, one block longer, the same bits.
    fork = best.height - REORG_DEPTH
    parent = tree.best_chain_at(fork)
    if parent is None:
        print("FAIL: no best-chain block at the fork height")
        return 2
    parent_hash = parent.block_hash
    for height in range(fork + 1, best.height + 2):
        side_hash = block_hash(b"attack %d" % height)
        tree.add_block(side_hash, parent_hash, height, WORKS[height % 64] + 1)
        parent_hash = side_hash
    new_best = compute_best_tip(tree)
    reorg = compute_reorg(tree, best.block_hash, new_best.block_hash)
    if reorg.depth != REORG_DEPTH or len(reorg.connect) != REORG_DEPTH + 1:
        print(f"FAIL: expected a {REORG_DEPTH}-deep reorg, got depth {reorg.depth}")
        return 2
    by_hash = {entry.block_hash: entry for entry in tree}
    reorg_times, walk_times = [], []
    for _ in range(REORG_REPEATS):
        started = time.perf_counter()
        compute_reorg(tree, best.block_hash, new_best.block_hash)
        reorg_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        cursor = by_hash[new_best.block_hash]
        for _step in range(2 * REORG_DEPTH + 1):
            cursor = by_hash[cursor.parent_hash]
        walk_times.append(time.perf_counter() - started)

    started = time.perf_counter()
    side = compute_side_branches(tree)
    side_ms = (time.perf_counter() - started) * 1_000
    started = time.perf_counter()
    held = compute_best_tip(tree, finalized=best.block_hash)  # excludes the heavier attack branch
    finality_ms = (time.perf_counter() - started) * 1_000
    if held != best:
        print("FAIL: under finality the old tip should stay best")
        return 2

    build_s, base_s = statistics.median(ours), statistics.median(base)
    per_block = tree_bytes / total
    ratio = tree_bytes / list_bytes
    reorg_ms = statistics.median(reorg_times) * 1_000
    walk_ms = statistics.median(walk_times) * 1_000
    print(f"blocks: {args.blocks:,} on the best chain + {args.orphans:,} orphans = {total:,} entries; "
          f"build repeats: {args.repeats}")
    print(f"build the tree: median {build_s:.3f} s ({build_s / total * 1e6:.2f} µs a block; "
          f"min {min(ours):.3f}, max {max(ours):.3f})")
    print(f"baseline (same entries appended to a list): median {base_s:.3f} s; ratio {build_s / base_s:.2f}x")
    print(f"memory held: tree {tree_bytes / 1e6:.1f} MB = {per_block:.0f} bytes a block (an orphan costs the "
          f"same); list baseline {list_bytes / 1e6:.1f} MB = {list_bytes / total:.0f} bytes; ratio {ratio:.2f}x")
    print(f"{REORG_DEPTH}-deep reorg path (compute_reorg): median {reorg_ms * 1000:.1f} µs over {REORG_REPEATS:,} "
          f"runs; baseline ({2 * REORG_DEPTH + 1} dict parent lookups) {walk_ms * 1000:.1f} µs; "
          f"ratio {reorg_ms / walk_ms:.1f}x")
    print(f"explorer, once: compute_side_branches {side_ms:.1f} ms ({len(side):,} blocks); compute_best_tip "
          f"under finality that excludes the heaviest branch {finality_ms:.2f} ms "
          f"({len(tree.tips()):,} tips)")
    print(f"targets: build < {BUILD_TARGET_S} s; memory < {BYTES_PER_BLOCK_TARGET} bytes a block and "
          f"< {MEMORY_RATIO_TARGET}x the list; {REORG_DEPTH}-deep reorg path < {REORG_TARGET_MS} ms")
    ok = (
        build_s < BUILD_TARGET_S
        and per_block < BYTES_PER_BLOCK_TARGET
        and ratio < MEMORY_RATIO_TARGET
        and reorg_ms < REORG_TARGET_MS
    )
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
