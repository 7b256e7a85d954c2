"""Startup time and memory against chain length: pow, pos with 16 validators, pos with 1,000.

Run: .venv/bin/python -m benchmarks.bench_startup            (1k, 10k, 100k blocks)
     .venv/bin/python -m benchmarks.bench_startup --quick    (1k, 10k)

What is measured is ``Node.load()`` of one stored chain, in a fresh process per run:
wall time (median of ``RUNS`` runs) and peak Python memory (tracemalloc, one more run,
since tracing slows everything down).  Target: under 2 s at 100,000 blocks for every
kind, and peak memory flat in the chain's length.

Baseline, same run: the startup this replaced.  For the plain proof-of-work chains,
``store.load_chain`` + ``ChainState.restore`` (every block read and kept) on the same
databases.  For proof of stake it was a full replay, every signature checked again,
which the synthetic chains below cannot give (their seals are not signed): it is
timed per block on a real 16-validator chain (tests/poskit.py: every slot proposed,
every validator voting) and multiplied by the length; the issue measured ~30 ms a
block with 1,000 validators.

The chains are written straight into the store, not mined or proposed, so that a
100,000-block chain takes seconds to build: real genesis (``Node.create_chain``),
then blocks that are structurally valid (parent hashes, merkle roots, heights, solved
regtest proof of work for pow) but whose proof-of-stake seals are not signed, with
the stored balances and, for pos, a beacon snapshot of the tip carrying the 16 or
1,000 validators.  Startup reads none of what is left out: it never re-checks old
blocks (``python -m chain verify`` does).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

from chain.adapters.node import Node
from chain.adapters.storage import Store
from chain.adapters.storage.migrations import compute_stored_block_work, encode_work
from chain.consensus.block import BLOCK_VERSION, BLOCK_VERSION_OPERATIONS, Block, BlockTemplate, PosSeal
from chain.consensus.state import ChainState
from chain.consensus.transition import replay_chain
from chain.keys import SigningKey
from chain.ledger.accounts import compute_block_subsidy
from chain.ledger.transaction import Coinbase
from chain.mode import Mode
from chain.params import REGTEST
from chain.pos.beacon import ConsensusConfig, GenesisAllocation, GenesisValidator
from chain.pos.operations import Operations
from chain.pos.snapshot import encode_beacon_state
from chain.pow.difficulty import is_valid_proof_of_work

CHAIN = 1
MASTER = b"\x5b" * 32
GENESIS_TIME = 1_800_000_000
SLOT_S = 30
RUNS = 3
TARGET_S = 2.0
LENGTHS = (1_000, 10_000, 100_000)
QUICK_LENGTHS = (1_000, 10_000)
KINDS = {"pow": 0, "pos-16": 16, "pos-1000": 1_000}
BATCH = 10_000


def _key(label: str) -> SigningKey:
    return SigningKey(hashlib.sha256(label.encode()).digest())


def _config(validators: int) -> ConsensusConfig | None:
    if not validators:
        return None
    keys = [_key(f"validator-{i}").public_key for i in range(validators)]
    wallets = [_key(f"wallet-{i}").public_key for i in range(validators)]
    return ConsensusConfig(
        mode=Mode.POS,
        slot_duration_s=SLOT_S,
        genesis_validators=tuple(GenesisValidator(k, w, 32) for k, w in zip(keys, wallets, strict=True)),
        genesis_allocations=tuple(GenesisAllocation(w, 100) for w in wallets),
    )


class _Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> float:
        return float(self.now)


async def build(path: Path, validators: int, length: int) -> None:
    """A stored chain of ``length`` blocks after genesis (see the module docstring)."""
    config = _config(validators)
    node = Node(await Store.open(path), clock=_Clock(GENESIS_TIME), randomness=os.urandom, master_key=MASTER)
    state = await node.create_chain(CHAIN, REGTEST, initial_bits=0x207FFFFF, consensus=config)
    await node.store.close()
    miner = _key("miner").public_key
    prev, rows, tree_rows, minted = state.tip_hash, [], [], 0
    # Each block's block_tree row, as migration 13's back-fill writes it for a stored main line (no
    # undo record: startup reads only whether one exists); the node rebuilds its tree from them.
    chain_work = compute_stored_block_work(state.tip.bits)
    db = sqlite3.connect(path)
    with db:
        for height in range(1, length + 1):
            if config is None:
                subsidy = compute_block_subsidy(height, REGTEST)
                minted += subsidy
                template = BlockTemplate.build(
                    BLOCK_VERSION, prev, GENESIS_TIME + 60 * height, 0x207FFFFF, Coinbase(height, miner, subsidy), ()
                )
                nonce = 0
                while not is_valid_proof_of_work(template.header.with_nonce(nonce).hash(), 0x207FFFFF, REGTEST):
                    nonce += 1
                block = template.solve(0, nonce)
            else:
                template = BlockTemplate.build(
                    BLOCK_VERSION_OPERATIONS, prev, GENESIS_TIME + SLOT_S * height, 0, Coinbase(height, miner, 0),
                    (), Operations(),
                )
                seal = PosSeal(height, height % validators, bytes(64))  # unsigned: startup never checks it
                block = Block(template.header, template.coinbase, (), Operations(), seal)
            block_hash = block.hash()
            rows.append((CHAIN, height, block_hash, block_hash[::-1], miner, block.header.time, block.serialize()))
            work = compute_stored_block_work(block.header.bits)
            chain_work += work
            tree_rows.append((CHAIN, block_hash, prev, height, encode_work(work), encode_work(chain_work), height))
            prev = block_hash
            if len(rows) == BATCH or height == length:
                db.executemany(
                    "INSERT INTO blocks (chain_id, height, hash, display_hash, miner, time, raw) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                db.executemany(
                    "INSERT INTO block_tree (chain_id, hash, parent_hash, height, work, chain_work, sequence) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    tree_rows,
                )
                rows, tree_rows = [], []
        if config is None:
            db.execute(
                "INSERT INTO accounts (chain_id, pubkey, balance, nonce) VALUES (?, ?, ?, 0)", (CHAIN, miner, minted)
            )
        else:
            beacon = state.beacon
            epoch = length // config.slots_per_epoch
            beacon = replace(
                beacon, slot=length, epoch=epoch, finality=replace(beacon.finality, current_epoch=epoch)
            )
            db.execute("DELETE FROM beacon_snapshots WHERE chain_id = ?", (CHAIN,))
            db.execute(
                "INSERT INTO beacon_snapshots (chain_id, height, blob) VALUES (?, ?, ?)",
                (CHAIN, length, encode_beacon_state(beacon)),
            )
            db.execute(
                "INSERT INTO accounts (chain_id, pubkey, balance, nonce) VALUES (?, ?, 0, 0)", (CHAIN, miner)
            )
    db.close()


async def _load(path: Path, baseline: bool) -> int:
    store = await Store.open(path)
    try:
        if baseline:
            # The startup this replaced, for a chain without a consensus config.
            stored = await store.load_chain(CHAIN)
            state = ChainState.restore(stored.params, CHAIN, stored.blocks, stored.accounts, stored.param_changes)
            return state.height
        node = Node(store, clock=_Clock(GENESIS_TIME), randomness=os.urandom, master_key=MASTER)
        await node.load()
        if node.offline_chain_ids():
            raise RuntimeError(f"the chain went offline: {node.offline_reason(CHAIN)}")
        return node.chain(CHAIN).state.height
    finally:
        await store.close()


def measure(path: Path, baseline: bool, traced: bool) -> dict:
    """One run, in this (fresh) process: seconds, or peak traced bytes."""
    if traced:
        tracemalloc.start()
    started = time.perf_counter()
    height = asyncio.run(_load(path, baseline))
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] if traced else 0
    return {"height": height, "seconds": elapsed, "peak_bytes": peak}


def run_child(path: Path, baseline: bool, traced: bool) -> dict:
    args = [sys.executable, "-m", "benchmarks.bench_startup", "--measure", str(path)]
    args += ["--baseline"] if baseline else []
    args += ["--traced"] if traced else []
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def case(path: Path, baseline: bool) -> tuple[float, int]:
    seconds = statistics.median(run_child(path, baseline, False)["seconds"] for _ in range(RUNS))
    return seconds, run_child(path, baseline, True)["peak_bytes"]


def replay_ms_per_block() -> float:
    """The old proof-of-stake startup, per block: a full replay of a real 16-validator chain."""
    from tests.poskit import pos_chain

    state, blocks = pos_chain(validators=16, epochs=4)
    timings = []
    for _ in range(RUNS):
        started = time.perf_counter()
        replay_chain(REGTEST, state.chain_id, blocks, state.consensus)
        timings.append((time.perf_counter() - started) / (len(blocks) - 1))
    return statistics.median(timings) * 1_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1k and 10k blocks only")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure is not None:
        print(json.dumps(measure(args.measure, args.baseline, args.traced)))
        return

    lengths = QUICK_LENGTHS if args.quick else LENGTHS
    replay_ms = replay_ms_per_block()
    worst = 0.0
    peaks: dict[str, list[int]] = {}
    print(f"Node.load() of one stored chain: median of {RUNS} fresh processes; peak = tracemalloc peak")
    print(f"{'chain':<10} {'blocks':>8} {'build s':>8} {'load s':>8} {'peak MB':>8}   baseline (old startup)")
    with tempfile.TemporaryDirectory() as tmp:
        for kind, validators in KINDS.items():
            for length in lengths:
                path = Path(tmp) / f"{kind}-{length}.sqlite3"
                started = time.perf_counter()
                asyncio.run(build(path, validators, length))
                built = time.perf_counter() - started
                seconds, peak = case(path, False)
                worst = max(worst, seconds)
                peaks.setdefault(kind, []).append(peak)
                line = f"{kind:<10} {length:>8,} {built:>8.1f} {seconds:>8.3f} {peak / 1e6:>8.2f}"
                if not validators:
                    old_seconds, old_peak = case(path, True)
                    line += f"   {old_seconds:.3f} s, {old_peak / 1e6:.1f} MB"
                elif validators == 16:
                    line += f"   full replay: {replay_ms:.2f} ms a block = {replay_ms * length / 1_000:,.0f} s"
                else:
                    line += f"   full replay: ~30 ms a block (issue) = ~{30 * length / 1_000:,.0f} s"
                print(line, flush=True)
                path.unlink()
    # Flat: the longest chain's peak within 1.5x the shortest's (the window and tables are the same).
    flat = all(max(p) <= 1.5 * min(p) for p in peaks.values())
    print(f"target: load < {TARGET_S:.0f} s at every length (worst {worst:.3f} s); peak memory flat in length: "
          f"{'yes' if flat else 'NO'}")
    print("PASS" if worst < TARGET_S and flat else "FAIL")


if __name__ == "__main__":
    main()
