"""The cost of keeping side branches in the real SQLite store (issue 11): storage per orphaned
block, startup with a tree of 100,000 blocks and 1,000 orphans, and reorgs of depth 1, 2 and 10.

Run: .venv/bin/python -m benchmarks.bench_side_branches [--blocks 100000] [--orphans 1000] [--repeats 11]

``benchmarks/bench_tree.py`` measures the in-memory ``BlockTree`` alone; this one goes through
``chain/adapters/storage`` and ``Node``.

1. Storage per orphaned block.  The same N real blocks (4 signed transfers each, on a funded
   prefix) are appended to one database with ``Store.append_block`` and kept off the main chain in
   another with ``Store.store_side_block`` (block bytes + undo record + tree row).  Bytes per block
   = growth of the VACUUMed file over the prefix's, divided by N, with a per-table breakdown from
   SQLite's ``dbstat``.  The main block's figure counts its outbox events separately: the bot prunes
   them once delivered.  Target: an orphan costs at most what the same block costs on the main
   chain (1.0x, stricter than the issue's ~1.5x): it keeps a subset of a main block's data, the same
   bytes and undo record and tree row, without the ``blocks`` row's indexes and the transaction
   index.  Printed beside it, not targeted: the orphan against its payload (block bytes + undo
   record), the tree row's keys and indexes and the B-tree pages' slack.
2. Startup with a tree.  ``Node.load()``, which since blocks join the tree also rebuilds the recent
   part of the ``BlockTree`` (``Node._load_tree``, also timed alone after the load), of a
   chain of ``--blocks`` blocks with ``--orphans`` side blocks (single blocks and branches of 2 and
   3, spread along the chain), against the same chain without orphans (baseline, same run), in a
   fresh process per run: median wall time of ``RUNS``, peak RSS of that process (and its RSS
   before the load), and the tracemalloc peak of one more run.  Targets: with orphans within 1.2x
   of without, time and traced peak (1,000 orphans are 1% more tree rows), and under 2 s at
   100,000 blocks: README's startup target ("Startup and big chains"), kept now that the tree is
   read too.
3. Reorgs of depth 1, 2 and 10 on a copy of that database.  Store level: ``Store.reorganize``
   disconnecting d main blocks and connecting a (d+1)-block branch stored beforehand as side
   blocks, every block with 4 signed transfers, the disconnected transfers returned to the mempool;
   median of ``--repeats`` (each reorg is switched back, untimed, before the next).  Baseline, same
   run: appending d+1 fresh blocks of the same size one by one with ``Store.append_block`` (what
   the same blocks cost arriving on the tip).  Node level, through ``Node.accept_block``: an
   honest chain of d blocks accepted on the tip, then a private (d+1)-block branch from the same
   fork point published block by block; the last one triggers the reorg (reported).  Targets, store
   level: a reorg within 2x its baseline (it writes the d+1 blocks and takes d back: at most twice
   the writes, in one commit instead of d+1), and a 10-deep one under 1 s (a member waits for it).

The big databases are built fast but faithfully: real genesis (``Node.create_chain``), real blocks
at the easiest regtest difficulty (solved), each with the rows the store writes for it (``blocks``,
the coinbase's ``transactions`` row, a ``block_tree`` row with its work, cumulative work, first-seen
sequence and undo record; a side block's row carries its bytes), inserted with ``executemany`` in
big transactions; the outbox events are left out (pruned once delivered; startup never reads them).
tests/benchmarks/test_bench_side_branches.py checks at a small size that the bulk writer leaves
exactly the rows ``Store.append_block`` and ``Store.store_side_block`` leave for the same blocks.
Built databases are cached in ``benchmarks/.cache/`` (gitignored), keyed by ``BUILD_VERSION`` and
the schema's latest migration, so reruns skip the build.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import hashlib
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chain.adapters.node import Node
from chain.adapters.storage import MIGRATIONS, Store
from chain.adapters.storage.migrations import compute_stored_block_work, encode_work
from chain.consensus.block import BLOCK_VERSION, Block, BlockTemplate
from chain.consensus.genesis import make_genesis_block
from chain.consensus.state import BlockEffects, ChainState
from chain.consensus.templates import build_template
from chain.consensus.transition import process_block
from chain.consensus.undo import AccountUndo, BlockUndo, compute_block_undo, compute_returned_transfers
from chain.keys import SigningKey
from chain.ledger.accounts import Account, compute_block_subsidy
from chain.ledger.mempool import PendingTransfer
from chain.ledger.transaction import Coinbase, Transfer, make_transfer
from chain.params import REGTEST
from chain.pow.difficulty import is_valid_proof_of_work

# Bump when the bulk writer changes what it writes: cached databases of another version are rebuilt.
BUILD_VERSION = 1
ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / ".cache"
CHAIN = 1
MASTER = b"\x5c" * 32
GENESIS_TIME = 1_800_000_000
SPACING_S = 60
BITS = 0x207FFFFF
BATCH = 10_000
MINERS = 8
# Side branches, in turn: mostly single blocks, some of 2 and 3 (a race lost, a short private run).
BRANCH_LENGTHS = (1, 1, 2, 1, 3)
TRANSFERS_PER_BLOCK = 4
STORAGE_BLOCKS = 500
RUNS = 5
REORG_DEPTHS = (1, 2, 10)

ORPHAN_RATIO_TARGET = 1.0
STARTUP_RATIO_TARGET = 1.2
STARTUP_TARGET_S = 2.0
REORG_RATIO_TARGET = 2.0
REORG_10_TARGET_S = 1.0


def signing_key(label: str) -> SigningKey:
    return SigningKey(hashlib.sha256(label.encode()).digest())


MINER_KEYS = tuple(signing_key(f"side-branches-miner-{i}") for i in range(MINERS))
ORPHAN_MINER = signing_key("side-branches-orphan-miner").public_key


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> float:
        return float(self.now)


def solve(template: BlockTemplate) -> Block:
    nonce = 0
    while not is_valid_proof_of_work(template.header.with_nonce(nonce).hash(), template.header.bits, REGTEST):
        nonce += 1
    return template.solve(template.coinbase.extra_nonce, nonce)


# --- 2. the tree: blocks in first-seen order, and the bulk writer ---------------------------------


@dataclass(frozen=True, slots=True)
class TreeItem:
    """One block of the tree in first-seen order, with the undo record the store keeps for it."""

    side: bool
    height: int
    block: Block
    undo: BlockUndo


def plan_branches(length: int, orphans: int) -> list[tuple[int, int]]:
    """(first height, length) of each side branch: lengths from ``BRANCH_LENGTHS`` in turn until
    ``orphans`` blocks, spread evenly along the chain."""
    lengths: list[int] = []
    while sum(lengths) < orphans:
        lengths.append(min(BRANCH_LENGTHS[len(lengths) % len(BRANCH_LENGTHS)], orphans - sum(lengths)))
    plan = []
    for index, size in enumerate(lengths):
        first = max(1, (index + 1) * length // (len(lengths) + 1))
        plan.append((min(first, length - size + 1), size))
    if any(first < 1 for first, _ in plan):
        raise ValueError(f"{orphans} orphans do not fit on a chain of {length} blocks")
    return plan


def tree_items(genesis_hash: bytes, length: int, orphans: int) -> Iterator[TreeItem]:
    """The main chain (coinbase-only blocks, ``MINERS`` miners in turn) with its side branches, each
    branch seen just after the main block that beat its last block (so ties keep the main chain).
    A side branch is mined by ``ORPHAN_MINER``, who has nothing on the main chain: its undo record
    starts from no account, as ``compute_block_undo`` on the branch's own state would."""
    ending: dict[int, list[tuple[int, int, int]]] = {}
    for index, (first, size) in enumerate(plan_branches(length, orphans) if orphans else []):
        ending.setdefault(first + size - 1, []).append((index, first, size))
    hashes = [genesis_hash]
    balances: dict[bytes, Account] = {}
    for height in range(1, length + 1):
        miner = MINER_KEYS[height % MINERS].public_key
        amount = compute_block_subsidy(height, REGTEST)
        block = solve(BlockTemplate.build(
            BLOCK_VERSION, hashes[-1], GENESIS_TIME + SPACING_S * height, BITS, Coinbase(height, miner, amount), ()
        ))
        before = balances.get(miner)
        after = Account((before.balance if before else 0) + amount, before.nonce if before else 0)
        balances[miner] = after
        undo = BlockUndo(height, block.hash(), hashes[-1], amount, (AccountUndo(miner, before, after),))
        hashes.append(block.hash())
        yield TreeItem(False, height, block, undo)
        for index, first, size in ending.get(height, ()):
            parent, side_before = hashes[first - 1], None
            for side_height in range(first, first + size):
                amount = compute_block_subsidy(side_height, REGTEST)
                # A second or two later than the main block: another block, and seen later anyway.
                side_time = GENESIS_TIME + SPACING_S * side_height + 1 + index % (SPACING_S - 1)
                side = solve(BlockTemplate.build(
                    BLOCK_VERSION, parent, side_time, BITS, Coinbase(side_height, ORPHAN_MINER, amount), ()
                ))
                side_after = Account((side_before.balance if side_before else 0) + amount, 0)
                side_undo = BlockUndo(
                    side_height, side.hash(), parent, amount, (AccountUndo(ORPHAN_MINER, side_before, side_after),)
                )
                yield TreeItem(True, side_height, side, side_undo)
                parent, side_before = side.hash(), side_after


async def create_genesis(path: Path) -> bytes:
    node = Node(await Store.open(path), clock=Clock(GENESIS_TIME), randomness=os.urandom, master_key=MASTER)
    state = await node.create_chain(CHAIN, REGTEST, initial_bits=BITS)
    await node.store.close()
    return state.tip_hash


def write_tree(path: Path, genesis_hash: bytes, length: int, orphans: int) -> None:
    """Insert the chain of ``tree_items`` after its stored genesis, in batches of ``BATCH`` blocks."""
    work = compute_stored_block_work(BITS)
    chain_work = {genesis_hash: work}
    balances: dict[bytes, Account] = {}
    blocks: list[tuple[Any, ...]] = []
    txs: list[tuple[Any, ...]] = []
    tree: list[tuple[Any, ...]] = []
    db = sqlite3.connect(path)
    try:
        with db:
            for sequence, item in enumerate(tree_items(genesis_hash, length, orphans), start=1):
                block, block_hash = item.block, item.undo.block_hash
                total = chain_work[block.header.prev_hash] + work
                chain_work[block_hash] = total
                tree.append((CHAIN, block_hash, block.header.prev_hash, item.height, encode_work(work),
                             encode_work(total), sequence, block.serialize() if item.side else None,
                             item.undo.serialize()))
                if not item.side:
                    miner = block.coinbase.miner
                    blocks.append((CHAIN, item.height, block_hash, block_hash[::-1], miner, block.header.time,
                                   block.serialize()))
                    txid = block.txids()[0]
                    txs.append((CHAIN, txid, txid[::-1], item.height, 0, None, miner, block.coinbase.amount, 0))
                    balances[miner] = item.undo.accounts[0].after
                if len(tree) >= BATCH:
                    _flush(db, blocks, txs, tree)
            _flush(db, blocks, txs, tree)
            db.executemany(
                "INSERT INTO accounts (chain_id, pubkey, balance, nonce) VALUES (?, ?, ?, ?)",
                [(CHAIN, k, a.balance, a.nonce) for k, a in balances.items()],
            )
    finally:
        db.close()


def _flush(db: sqlite3.Connection, *batches: list[tuple[Any, ...]]) -> None:
    blocks, txs, tree = batches
    db.executemany(
        "INSERT INTO blocks (chain_id, height, hash, display_hash, miner, time, raw) VALUES (?, ?, ?, ?, ?, ?, ?)",
        blocks,
    )
    db.executemany(
        "INSERT INTO transactions (chain_id, txid, display_txid, height, position, sender, recipient, amount, fee) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        txs,
    )
    db.executemany(
        "INSERT INTO block_tree (chain_id, hash, parent_hash, height, work, chain_work, sequence, raw, undo) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        tree,
    )
    for batch in batches:
        batch.clear()


def build_tree_database(path: Path, length: int, orphans: int) -> None:
    genesis_hash = asyncio.run(create_genesis(path))
    write_tree(path, genesis_hash, length, orphans)


def cached_database(length: int, orphans: int, cache: Path = CACHE) -> tuple[Path, float]:
    """The built database for (length, orphans), from the cache or built now; seconds spent building."""
    schema = max(version for version, _ in MIGRATIONS)
    path = cache / f"tree-v{BUILD_VERSION}-schema{schema}-{length}-{orphans}.sqlite3"
    if path.exists():
        return path, 0.0
    cache.mkdir(exist_ok=True)
    partial = path.with_suffix(".building")
    for leftover in cache.glob(partial.name + "*"):
        leftover.unlink()
    started = time.perf_counter()
    build_tree_database(partial, length, orphans)
    _checkpoint(partial)
    partial.rename(path)
    return path, time.perf_counter() - started


def _checkpoint(path: Path) -> None:
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()


# --- 2. startup, measured in a fresh process --------------------------------------------------------


def _rss_kb() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def _load(path: Path, started: float) -> dict[str, Any]:
    store = await Store.open(path)
    try:
        node = Node(store, clock=Clock(GENESIS_TIME), randomness=os.urandom, master_key=MASTER)
        await node.load()
        seconds = time.perf_counter() - started
        # The load's memory, before the tree is read once more below.
        peak = tracemalloc.get_traced_memory()[1] if tracemalloc.is_tracing() else 0
        rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if node.offline_chain_ids():
            raise RuntimeError(f"the chain went offline: {node.offline_reason(CHAIN)}")
        runtime = node.chain(CHAIN)
        loaded = {"seconds": seconds, "peak_bytes": peak, "rss_peak_kb": rss_peak, "height": runtime.state.height,
                  "tree_blocks": len(runtime.tree)}
        # Not part of the load's time: the tree's part alone, read and rebuilt once more as the load
        # does (the recent part: from TREE_KEPT_BELOW_TIP_BLOCKS below the tip).
        started = time.perf_counter()
        await node._load_tree(CHAIN, runtime.genesis, runtime.state.height)
        return {**loaded, "tree_rebuild_s": time.perf_counter() - started}
    finally:
        await store.close()


def measure_load(path: Path, traced: bool) -> dict[str, Any]:
    """One ``Node.load()`` in this process: seconds, RSS before and peak, traced peak bytes."""
    rss_before = _rss_kb()
    if traced:
        tracemalloc.start()
    started = time.perf_counter()
    loaded = asyncio.run(_load(path, started))
    tracemalloc.stop()
    return {**loaded, "rss_before_kb": rss_before}


def run_child(path: Path, traced: bool) -> dict[str, Any]:
    args = [sys.executable, "-m", "benchmarks.bench_side_branches", "--measure", str(path)]
    args += ["--traced"] if traced else []
    out = subprocess.run(args, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


@dataclass
class Startup:
    seconds: float
    rss_before_mb: float
    rss_peak_mb: float
    traced_peak_mb: float
    height: int
    tree_blocks: int
    file_bytes: int
    tree_rebuild_s: float
    runs: list[float] = field(default_factory=list)


def measure_startups(paths: Sequence[Path], runs: int) -> list[Startup]:
    """Each database loaded ``runs`` times in fresh processes, interleaved (noise falls on all
    alike), and once more traced."""
    results: list[list[dict[str, Any]]] = [[] for _ in paths]
    for _ in range(runs):
        for index, path in enumerate(paths):
            results[index].append(run_child(path, traced=False))
    out = []
    for path, found in zip(paths, results, strict=True):
        traced = run_child(path, traced=True)
        seconds = [r["seconds"] for r in found]
        out.append(Startup(
            statistics.median(seconds), statistics.median(r["rss_before_kb"] for r in found) / 1024,
            max(r["rss_peak_kb"] for r in found) / 1024, traced["peak_bytes"] / 1e6, found[0]["height"],
            found[0]["tree_blocks"], path.stat().st_size,
            statistics.median(r["tree_rebuild_s"] for r in found), seconds,
        ))
    return out


# --- 1 and 3: real blocks with transfers ---------------------------------------------------------------


@dataclass
class Branch:
    """Blocks mined one on another from a state (changed in place), with effects and undo records."""

    state: ChainState
    blocks: list[Block] = field(default_factory=list)
    effects: list[BlockEffects] = field(default_factory=list)
    undos: list[BlockUndo] = field(default_factory=list)

    @property
    def hashes(self) -> list[bytes]:
        return [b.hash() for b in self.blocks]

    @property
    def connect(self) -> list[tuple[Block, BlockEffects]]:
        return list(zip(self.blocks, self.effects, strict=True))

    @property
    def txids(self) -> list[bytes]:
        return [t.txid() for b in self.blocks for t in b.transfers]


def grow(state: ChainState, count: int, miner: bytes, *, transfers: int, salt: int = 0) -> Branch:
    """``count`` blocks on ``state`` (changed in place), each with ``transfers`` signed transfers
    between the miners' wallets; ``salt`` shifts amounts and times so that branches differ."""
    branch = Branch(state)
    for _ in range(count):
        height = state.height + 1
        payments: list[Transfer] = []
        nonces: dict[bytes, int] = {}
        for i in range(transfers):
            sender = MINER_KEYS[(height + i) % MINERS]
            recipient = MINER_KEYS[(height + i + 1) % MINERS].public_key
            account = state.ledger.get(sender.public_key) or Account()
            nonce = nonces.get(sender.public_key, account.nonce)
            nonces[sender.public_key] = nonce + 1
            payments.append(make_transfer(sender, recipient, 1 + salt % 7, 1, nonce, state.chain_id))
        now = state.tip.time + SPACING_S + salt % 13
        block = solve(build_template(state, miner, payments, now))
        effects = process_block(state, block, now)
        branch.undos.append(compute_block_undo(state.ledger, effects, block.header.prev_hash))
        state.apply(block, effects)
        branch.blocks.append(block)
        branch.effects.append(effects)
    return branch


def fork(state: ChainState) -> ChainState:
    return copy.deepcopy(state)


# --- 1. storage per block -------------------------------------------------------------------------------


def _table_bytes(path: Path) -> dict[str, int]:
    """Page bytes per table, its indexes included (``dbstat``), after VACUUM."""
    db = sqlite3.connect(path)
    try:
        db.execute("VACUUM")
        owner = dict(db.execute("SELECT name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index')"))
        sizes: dict[str, int] = {}
        for name, pgsize in db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"):
            table = owner.get(name, name)
            sizes[table] = sizes.get(table, 0) + pgsize
        return sizes
    finally:
        db.close()


def _file_bytes(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        db.execute("VACUUM")
        (pages,) = db.execute("PRAGMA page_count").fetchone()
        (size,) = db.execute("PRAGMA page_size").fetchone()
        return int(pages) * int(size)
    finally:
        db.close()


@dataclass
class Storage:
    blocks: int
    main_bytes: float  # per block, the outbox left out
    main_outbox_bytes: float
    side_bytes: float
    payload_bytes: float  # block bytes + undo record, per block
    main_tables: dict[str, float]
    side_tables: dict[str, float]

    @property
    def ratio(self) -> float:
        return self.side_bytes / self.main_bytes

    @property
    def overhead(self) -> float:
        return self.side_bytes / self.payload_bytes


async def measure_storage(tmp: Path, count: int, transfers: int) -> Storage:
    """The same ``count`` blocks appended in one database, stored as side blocks in another."""
    genesis = make_genesis_block(REGTEST, CHAIN, GENESIS_TIME, BITS)
    state = ChainState(REGTEST, CHAIN, genesis)
    base = tmp / "storage-base.sqlite3"
    store = await Store.open(base)
    await store.create_chain(CHAIN, REGTEST, genesis, GENESIS_TIME)
    for miner in MINER_KEYS * 10:  # every sender gets 10 coinbases first: 500 points, for 500 blocks
        for block, effects in grow(state, 1, miner.public_key, transfers=0).connect:
            await store.append_block(CHAIN, block, effects, [], GENESIS_TIME)
    await store.close()
    branch = grow(state, count, MINER_KEYS[1].public_key, transfers=transfers)

    main, side = tmp / "storage-main.sqlite3", tmp / "storage-side.sqlite3"
    for path in (main, side):
        shutil.copyfile(base, path)
    store = await Store.open(main)
    for block, effects in branch.connect:
        await store.append_block(CHAIN, block, effects, [], GENESIS_TIME)
    await store.close()
    store = await Store.open(side)
    for block, undo in zip(branch.blocks, branch.undos, strict=True):
        await store.store_side_block(CHAIN, block, undo)
    await store.close()

    base_tables, main_tables, side_tables = (_table_bytes(p) for p in (base, main, side))
    base_size, main_size, side_size = (_file_bytes(p) for p in (base, main, side))
    outbox = main_tables.get("outbox", 0) - base_tables.get("outbox", 0)

    def growth(tables: dict[str, int]) -> dict[str, float]:
        grown = {name: (size - base_tables.get(name, 0)) / count for name, size in tables.items()}
        return {name: size for name, size in sorted(grown.items(), key=lambda kv: -kv[1]) if size}

    payload = sum(len(b.serialize()) + len(u.serialize()) for b, u in zip(branch.blocks, branch.undos, strict=True))
    for path in (base, main, side):
        path.unlink()
    return Storage(
        count, (main_size - base_size - outbox) / count, outbox / count, (side_size - base_size) / count,
        payload / count, growth(main_tables), growth(side_tables),
    )


# --- 3. reorgs --------------------------------------------------------------------------------------------


@dataclass
class Reorg:
    depth: int
    reorg_s: list[float]
    append_s: list[float]
    node_reorg_s: list[float] = field(default_factory=list)
    node_side_s: list[float] = field(default_factory=list)
    node_append_s: list[float] = field(default_factory=list)

    @property
    def reorg(self) -> float:
        return statistics.median(self.reorg_s)

    @property
    def append(self) -> float:
        return statistics.median(self.append_s)


def _returned(disconnected: Branch, new: Branch, now: int) -> list[PendingTransfer]:
    returned, _dropped = compute_returned_transfers(
        disconnected.blocks, new.state.ledger, CHAIN, REGTEST, frozenset(new.txids)
    )
    return [PendingTransfer(t, t.txid(), now) for t in returned]


async def _switch(store: Store, old: Branch, new: Branch, now: int) -> float:
    returned = _returned(old, new, now)
    started = time.perf_counter()
    await store.reorganize(
        CHAIN, old.hashes[::-1], new.connect, [], now, removed_from_mempool=new.txids, returned_to_mempool=returned
    )
    return time.perf_counter() - started


async def measure_store_reorgs(path: Path, depths: Sequence[int], repeats: int, transfers: int) -> list[Reorg]:
    """On ``path`` (changed): for each depth, the tip's branch A (d blocks, appended) against B
    (d+1, stored as side blocks), ``repeats`` times: A -> B timed, B -> A untimed, then d+1 fresh
    blocks appended on A's tip, timed, and taken back untimed.  A stays on top."""
    store = await Store.open(path)
    node = Node(store, clock=Clock(GENESIS_TIME), randomness=os.urandom, master_key=MASTER)
    try:
        await node.load()
        state = node.chain(CHAIN).state
        out = []
        for depth in depths:
            now = state.tip.time
            old = grow(fork(state), depth, MINER_KEYS[2].public_key, transfers=transfers, salt=1)
            new = grow(fork(state), depth + 1, MINER_KEYS[3].public_key, transfers=transfers, salt=2)
            for block, effects in old.connect:
                await store.append_block(CHAIN, block, effects, [], now)
            for block, undo in zip(new.blocks, new.undos, strict=True):
                await store.store_side_block(CHAIN, block, undo)
            result = Reorg(depth, [], [])
            # Interleaved, so that the machine's noise falls on both alike.
            for salt in range(repeats):
                result.reorg_s.append(await _switch(store, old, new, now))
                await _switch(store, new, old, now)
                fresh = grow(fork(old.state), depth + 1, MINER_KEYS[4].public_key, transfers=transfers,
                             salt=3 + salt)
                started = time.perf_counter()
                for block, effects in fresh.connect:
                    await store.append_block(CHAIN, block, effects, [t.txid() for t in block.transfers], now)
                result.append_s.append(time.perf_counter() - started)
                await store.reorganize(CHAIN, fresh.hashes[::-1], [], [], now)
            out.append(result)
            state = old.state
        return out
    finally:
        node.close()
        await store.close()


async def measure_node_reorgs(path: Path, results: Sequence[Reorg], repeats: int, transfers: int) -> None:
    """Through ``Node.accept_block``: per repeat, d honest blocks accepted on
    the tip, then a private (d+1)-block branch from the same fork point published block by block
    (the last one reorganises).  Fills each result's ``node_*`` timings."""
    store = await Store.open(path)
    clock = Clock(GENESIS_TIME)
    node = Node(store, clock=clock, randomness=os.urandom, master_key=MASTER)
    try:
        await node.load()
        for result in results:
            for salt in range(repeats):
                state = node.chain(CHAIN).state
                honest = grow(fork(state), result.depth, MINER_KEYS[5].public_key, transfers=transfers, salt=salt)
                private = grow(fork(state), result.depth + 1, MINER_KEYS[6].public_key, transfers=transfers,
                               salt=salt + 5)
                clock.now = private.blocks[-1].header.time + SPACING_S
                for block in honest.blocks:
                    started = time.perf_counter()
                    await node.accept_block(CHAIN, block)
                    result.node_append_s.append(time.perf_counter() - started)
                for block in private.blocks[:-1]:
                    started = time.perf_counter()
                    await node.accept_block(CHAIN, block)
                    result.node_side_s.append(time.perf_counter() - started)
                started = time.perf_counter()
                accepted = await node.accept_block(CHAIN, private.blocks[-1])
                result.node_reorg_s.append(time.perf_counter() - started)
                if accepted.reorg is None or accepted.reorg.depth != result.depth:
                    raise RuntimeError(f"the {result.depth}-deep private branch did not become the main chain")
    finally:
        node.close()
        await store.close()


# --- the report -------------------------------------------------------------------------------------------


@dataclass
class Report:
    storage: Storage
    startup: Startup
    startup_baseline: Startup
    reorgs: list[Reorg]
    blocks: int
    orphans: int
    lines: list[str] = field(default_factory=list)

    def check(self, full_size: bool) -> bool:
        s, st, base = self.storage, self.startup, self.startup_baseline
        ten = next((r for r in self.reorgs if r.depth == 10), None)
        ok = s.ratio <= ORPHAN_RATIO_TARGET
        ok = ok and st.seconds <= STARTUP_RATIO_TARGET * base.seconds
        ok = ok and st.traced_peak_mb <= STARTUP_RATIO_TARGET * base.traced_peak_mb
        ok = ok and (not full_size or st.seconds < STARTUP_TARGET_S)
        ok = ok and all(r.reorg <= REORG_RATIO_TARGET * r.append for r in self.reorgs)
        return ok and (ten is None or ten.reorg < REORG_10_TARGET_S)


def format_report(report: Report) -> list[str]:
    s, st, base = report.storage, report.startup, report.startup_baseline
    lines = [
        f"1. storage, {s.blocks} blocks of {TRANSFERS_PER_BLOCK} transfers (payload {s.payload_bytes:,.0f} bytes "
        f"a block: block + undo record), VACUUMed file growth per block:",
        f"   orphan (store_side_block) {s.side_bytes:,.0f} bytes; main block (append_block) {s.main_bytes:,.0f} "
        f"bytes + {s.main_outbox_bytes:,.0f} bytes of outbox events (pruned once delivered); "
        f"ratio {s.ratio:.2f}x; orphan / payload {s.overhead:.2f}x",
        "   main by table: " + ", ".join(f"{k} {v:,.0f}" for k, v in s.main_tables.items()),
        "   orphan by table: " + ", ".join(f"{k} {v:,.0f}" for k, v in s.side_tables.items()),
        f"2. startup, Node.load() of {report.blocks:,} blocks, median of {len(st.runs)} fresh processes "
        f"(the load rebuilds the block tree: {st.tree_blocks:,} blocks):",
        f"   with {report.orphans:,} orphans {st.seconds:.3f} s (runs {', '.join(f'{x:.3f}' for x in st.runs)}); "
        f"RSS {st.rss_before_mb:.0f} -> peak {st.rss_peak_mb:.0f} MB; tracemalloc peak {st.traced_peak_mb:.1f} MB",
        f"   baseline, no orphans {base.seconds:.3f} s (runs {', '.join(f'{x:.3f}' for x in base.runs)}); "
        f"RSS {base.rss_before_mb:.0f} -> peak {base.rss_peak_mb:.0f} MB; tracemalloc peak "
        f"{base.traced_peak_mb:.1f} MB",
        f"   the tree's part alone (the node's recent-tree read, timed after the load): "
        f"{st.tree_rebuild_s:.3f} s with orphans, {base.tree_rebuild_s:.3f} s without",
        f"   ratio {st.seconds / base.seconds:.2f}x; database files {st.file_bytes / 1e6:.1f} MB and "
        f"{base.file_bytes / 1e6:.1f} MB: {(st.file_bytes - base.file_bytes) / max(report.orphans, 1):,.0f} bytes "
        f"an orphan (coinbase-only blocks, not VACUUMed)",
        f"3. reorgs ({TRANSFERS_PER_BLOCK} transfers a block), median of {len(report.reorgs[0].reorg_s)}:",
    ]
    for r in report.reorgs:
        line = (f"   depth {r.depth:>2}: Store.reorganize ({r.depth} off, {r.depth + 1} on) {r.reorg * 1e3:.1f} ms; "
                f"baseline: {r.depth + 1} append_block {r.append * 1e3:.1f} ms; ratio {r.reorg / r.append:.2f}x")
        lines.append(line)
        if r.node_reorg_s:
            lines.append(
                f"             Node.accept_block: the reorging block {statistics.median(r.node_reorg_s) * 1e3:.1f} ms, "
                f"a side block {statistics.median(r.node_side_s) * 1e3 if r.node_side_s else 0:.1f} ms, "
                f"a block on the tip {statistics.median(r.node_append_s) * 1e3:.1f} ms "
                f"(x{r.depth + 1} = {statistics.median(r.node_append_s) * (r.depth + 1) * 1e3:.1f} ms)"
            )
    lines.append(
        f"targets: orphan <= {ORPHAN_RATIO_TARGET}x a main block; "
        f"startup with orphans <= {STARTUP_RATIO_TARGET}x without (time and traced peak) and "
        f"< {STARTUP_TARGET_S:.0f} s at 100,000 blocks; a reorg <= {REORG_RATIO_TARGET}x appending its blocks, "
        f"a 10-deep one < {REORG_10_TARGET_S:.0f} s"
    )
    return lines


async def _storage_and_reorgs(
    tmp: Path, tree_db: Path, storage_blocks: int, depths: Sequence[int], repeats: int
) -> tuple[Storage, list[Reorg]]:
    storage = await measure_storage(tmp, storage_blocks, TRANSFERS_PER_BLOCK)
    reorg_db = tmp / "reorg.sqlite3"
    shutil.copyfile(tree_db, reorg_db)
    reorgs = await measure_store_reorgs(reorg_db, depths, repeats, TRANSFERS_PER_BLOCK)
    await measure_node_reorgs(reorg_db, reorgs, repeats, TRANSFERS_PER_BLOCK)
    return storage, reorgs


def run(
    blocks: int, orphans: int, repeats: int, *, runs: int = RUNS, storage_blocks: int = STORAGE_BLOCKS,
    depths: Sequence[int] = REORG_DEPTHS, cache: Path = CACHE,
) -> Report:
    """Everything at the given size (the test runs it tiny, with its own cache)."""
    with_orphans, built = cached_database(blocks, orphans, cache)
    without, built_base = cached_database(blocks, 0, cache)
    startup, baseline = measure_startups([with_orphans, without], runs)
    with tempfile.TemporaryDirectory() as tmp:
        storage, reorgs = asyncio.run(_storage_and_reorgs(Path(tmp), with_orphans, storage_blocks, depths, repeats))
    report = Report(storage, startup, baseline, reorgs, blocks, orphans)
    if built or built_base:
        report.lines.append(f"(built the databases now: {built:.1f} s and {built_base:.1f} s; cached in {cache})")
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=100_000)
    parser.add_argument("--orphans", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=11, help="reorg repeats (median)")
    parser.add_argument("--runs", type=int, default=RUNS, help="startup runs, fresh processes (median)")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure is not None:
        print(json.dumps(measure_load(args.measure, args.traced)))
        return 0
    report = run(args.blocks, args.orphans, args.repeats, runs=args.runs)
    for line in report.lines + format_report(report):
        print(line)
    ok = report.check(full_size=args.blocks >= 100_000)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
