"""Block append rate and full-verification rate of a 5,000-block chain with transfers.

Run: .venv/bin/python -m benchmarks.bench_chain [--blocks 5000] [--transfers 4]

Baselines, measured in the same run on the same machine:
- append: a bare durable SQLite commit of the same block bytes (WAL,
  synchronous=FULL), the floor any crash-safe append pays;
- verify: cryptography's raw Ed25519 verification of the same signatures,
  the floor of replaying signed transfers.

Targets: append at least 100 blocks/s; verification of the whole chain at
least 1,000 blocks/s and at least 50% of the raw signature rate.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from chain.adapters.node import Node
from chain.adapters.storage import Store
from chain.consensus.block import Block
from chain.consensus.verify import verify_chain
from chain.keys import verify_signature
from chain.params import REGTEST
from chain.pow.difficulty import is_valid_proof_of_work

APPEND_TARGET_BLOCKS_S = 100
VERIFY_TARGET_BLOCKS_S = 1_000
VERIFY_TARGET_SIG_RATIO = 0.5
CHAIN_ID = 1


def solve(template) -> Block:
    for nonce in range(1 << 20):
        header = template.header.with_nonce(nonce)
        if is_valid_proof_of_work(header.hash(), header.bits, REGTEST):
            return template.solve(template.coinbase.extra_nonce, nonce)
    raise RuntimeError("no nonce")


class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000

    def __call__(self) -> float:
        return float(self.t)


async def build(path: Path, blocks: int, transfers_per_block: int) -> tuple[Node, list[float]]:
    store = await Store.open(path)
    clock = Clock()
    node = Node(store, clock=clock, randomness=os.urandom, master_key=bytes(32))
    await node.create_chain(CHAIN_ID, REGTEST.evolve(max_pending_per_account=1_000), initial_bits=0x207FFFFF)
    names = [f"m{i}" for i in range(8)]
    addresses = [await node.address(CHAIN_ID, n) for n in names]
    append_times = []
    for height in range(1, blocks + 1):
        clock.t += 30
        if height > len(names):
            for i in range(transfers_per_block):
                sender = names[(height + i) % len(names)]
                await node.pay(CHAIN_ID, sender, addresses[(height + i + 1) % len(names)], 1, fee=1)
        block = solve(node.template(CHAIN_ID, addresses[height % len(names)]))
        started = time.perf_counter()
        await node.submit_block(CHAIN_ID, block)
        append_times.append(time.perf_counter() - started)
    return node, append_times


def raw_commit_times(raw_blocks: list[bytes], path: Path) -> list[float]:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE b (h INTEGER PRIMARY KEY, raw BLOB)")
    times = []
    for height, raw in enumerate(raw_blocks):
        started = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO b VALUES (?, ?)", (height, raw))
        db.execute("COMMIT")
        times.append(time.perf_counter() - started)
    db.close()
    return times


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--blocks", type=int, default=5_000)
    parser.add_argument("--transfers", type=int, default=4, help="transfers per block")
    parser.add_argument("--repeats", type=int, default=3, help="verification repeats (median)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        node, append_times = await build(Path(tmp) / "bench.sqlite3", args.blocks, args.transfers)
        stored = await node.store.load_chain(CHAIN_ID)
        blocks = stored.blocks
        signatures = sum(len(b.transfers) for b in blocks)
        raw_times = raw_commit_times([b.serialize() for b in blocks[1:]], Path(tmp) / "raw.sqlite3")

        verify_times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            verify_chain(stored.params, CHAIN_ID, blocks, node.now(), stored.accounts)
            verify_times.append(time.perf_counter() - started)

        pairs = [(tx.sender, tx.signing_message(CHAIN_ID), tx.signature) for b in blocks for tx in b.transfers]
        sig_times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            for public_key, message, signature in pairs:
                verify_signature(public_key, message, signature)
            sig_times.append(time.perf_counter() - started)
        await node.store.close()

    append_median = statistics.median(append_times)
    raw_median = statistics.median(raw_times)
    append_rate = 1 / append_median
    verify_s = statistics.median(verify_times)
    verify_blocks_s = len(blocks) / verify_s
    verify_sigs_s = signatures / verify_s
    raw_sigs_s = signatures / statistics.median(sig_times)
    sig_ratio = verify_sigs_s / raw_sigs_s if raw_sigs_s else 0.0

    print(f"chain: {len(blocks):,} blocks, {signatures:,} signed transfers")
    print(
        f"append: median {append_median * 1e3:.2f} ms/block = {append_rate:,.0f} blocks/s "
        f"(p99 {sorted(append_times)[int(len(append_times) * 0.99)] * 1e3:.2f} ms); "
        f"bare durable commit {raw_median * 1e3:.2f} ms; ratio {append_median / raw_median:.1f}x the bare commit"
        f"  [target >= {APPEND_TARGET_BLOCKS_S} blocks/s]"
    )
    print(
        f"verify: median {verify_s:.2f} s = {verify_blocks_s:,.0f} blocks/s, {verify_sigs_s:,.0f} signatures/s; "
        f"raw Ed25519 {raw_sigs_s:,.0f}/s; ratio {sig_ratio:.2f}"
        f"  [target >= {VERIFY_TARGET_BLOCKS_S} blocks/s and ratio >= {VERIFY_TARGET_SIG_RATIO}]"
    )
    ok = (
        append_rate >= APPEND_TARGET_BLOCKS_S
        and verify_blocks_s >= VERIFY_TARGET_BLOCKS_S
        and sig_ratio >= VERIFY_TARGET_SIG_RATIO
    )
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
