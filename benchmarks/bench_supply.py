"""The supply chart's replay (chain/adapters/supply_replay.py) on a 5,000-block chain.

Run: .venv/bin/python -m benchmarks.bench_supply [--blocks 5000] [--pos-blocks 5000] [--repeats 5]

1. A proof-of-work chain of ``--blocks`` blocks (with a consensus config, as the bot creates them)
   is written through a real ``Node`` to a database file; then, in this process:
   - baseline, same run: ``/chain verify``'s replay of the same chain (``Node.verify``), which does
     the same ``process_block`` per block;
   - the first supply request (a new ``SupplyReplays``: the whole chain replayed in the reader thread);
   - a request after 10 more blocks (the kept replay extended with them only);
   - a request with nothing new (the kept replay's tip checked, no block replayed).
   Each the median of ``--repeats`` (verify and the first request interleaved).
2. For information, the pure replay (``SupplyReplay.extend``) of a proof-of-stake chain of about
   ``--pos-blocks`` blocks, 16 validators, every slot proposed and every active validator voting
   (tests/poskit.py), per block.

Targets: the first replay costs at most 1.5x verify's (it is the same replay plus sampling); a
request after 10 new blocks and one with nothing new are under 50 ms (they are what members see once
a chain was charted).  Exits non-zero when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from chain.adapters.node import Node
from chain.adapters.storage import Store
from chain.adapters.supply_replay import SupplyReplays
from chain.consensus.genesis import make_genesis_block
from chain.consensus.supply_history import SupplyReplay
from chain.keys import SigningKey
from chain.params import REGTEST
from chain.pos.beacon import ConsensusConfig
from chain.pow.difficulty import is_valid_proof_of_work

CHAIN_ID = 7
MASTER_KEY = b"\x5a" * 32
# The same replay plus sampling: run synchronously the two take the same time (0.19 s for 2,000 blocks);
# the margin is for the shared machine's noise between interleaved runs.
FIRST_REPLAY_VS_VERIFY_TARGET = 1.5
KEPT_REPLAY_TARGET_MS = 50.0


def solve(template):
    for nonce in range(1 << 20):
        header = template.header.with_nonce(nonce)
        if is_valid_proof_of_work(header.hash(), header.bits, REGTEST):
            return template.solve(template.coinbase.extra_nonce, nonce)
    raise RuntimeError("no nonce")


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> float:
        return float(self.now)


async def mine(node: Node, clock: Clock, miners: list[bytes], blocks: int) -> None:
    for _ in range(blocks):
        clock.now += REGTEST.target_spacing_s
        height = node.chain(CHAIN_ID).state.height + 1
        await node.submit_block(CHAIN_ID, solve(node.template(CHAIN_ID, miners[height % len(miners)])))


async def timed(coroutine_factory, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = await coroutine_factory()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


async def bench_pow(blocks: int, repeats: int, directory: Path) -> bool:
    clock = Clock(int(time.time()) - (blocks + 100) * REGTEST.target_spacing_s)
    store = await Store.open(directory / "supply.sqlite3")
    node = Node(store, clock=clock, randomness=os.urandom, master_key=MASTER_KEY)
    await node.create_chain(CHAIN_ID, REGTEST, initial_bits=0x207FFFFF, consensus=ConsensusConfig())
    miners = [SigningKey(os.urandom(32)).public_key for _ in range(8)]
    started = time.perf_counter()
    await mine(node, clock, miners, blocks)
    print(f"built a {blocks:,}-block proof-of-work chain in {time.perf_counter() - started:.1f} s")
    try:
        def fresh():
            # A new SupplyReplays each time: nothing kept, the whole chain replayed.
            node.reads.supply = SupplyReplays(store, node.reads._bulk_read, wait_s=600)
            return node.supply_history(CHAIN_ID)

        # Interleaved, so a neighbour's load on the shared machine hits both alike.
        verifies, firsts = [], []
        for _ in range(repeats):
            verifies.append((await timed(lambda: node.verify(CHAIN_ID), 1))[0])
            first, history = await timed(fresh, 1)
            firsts.append(first)
        verify_s, first_s = statistics.median(verifies), statistics.median(firsts)
        points = len(history.points)  # type: ignore[attr-defined]
        extended = []
        for _ in range(repeats):
            await mine(node, clock, miners, 10)
            started = time.perf_counter()
            await node.supply_history(CHAIN_ID)
            extended.append(time.perf_counter() - started)
        extend_s = statistics.median(extended)
        kept_s, _ = await timed(lambda: node.supply_history(CHAIN_ID), repeats)
    finally:
        node.close()
        await store.close()
    ratio = first_s / verify_s
    print(f"baseline /chain verify replay: {verify_s * 1e3:,.0f} ms ({verify_s / blocks * 1e6:,.0f} µs a block)")
    print(f"first supply request (whole replay, {points} points): {first_s * 1e3:,.0f} ms = {ratio:.2f}x verify "
          f"(target <= {FIRST_REPLAY_VS_VERIFY_TARGET}x)")
    print(f"request after 10 new blocks (kept replay extended): {extend_s * 1e3:,.1f} ms "
          f"(target < {KEPT_REPLAY_TARGET_MS:.0f} ms)")
    print(f"request with nothing new: {kept_s * 1e3:,.1f} ms (target < {KEPT_REPLAY_TARGET_MS:.0f} ms)")
    return (ratio <= FIRST_REPLAY_VS_VERIFY_TARGET and extend_s * 1e3 < KEPT_REPLAY_TARGET_MS
            and kept_s * 1e3 < KEPT_REPLAY_TARGET_MS)


def bench_pos(blocks: int) -> None:
    from tests.chainkit import CHAIN_ID as POS_CHAIN_ID
    from tests.chainkit import GENESIS_TIME
    from tests.poskit import Harness, new_consensus_chain, pos_config, validator_keys

    config = pos_config(16)
    harness = Harness(new_consensus_chain(config), validator_keys(16))
    started = time.perf_counter()
    harness.run_epochs(max(1, blocks // config.slots_per_epoch))
    print(f"built a {len(harness.blocks):,}-block proof-of-stake chain (16 validators) in "
          f"{time.perf_counter() - started:.1f} s")
    genesis = make_genesis_block(REGTEST, POS_CHAIN_ID, GENESIS_TIME, 0x207FFFFF, config)
    replay = SupplyReplay(REGTEST, POS_CHAIN_ID, genesis, config)
    now = max(block.header.time for block in harness.blocks) + 3_600
    started = time.perf_counter()
    for block in harness.blocks:
        replay.extend(block, now)
    elapsed = time.perf_counter() - started
    tip = replay.history().points[-1]
    print(f"proof-of-stake supply replay: {elapsed * 1e3:,.0f} ms ({elapsed / len(harness.blocks) * 1e6:,.0f} µs a "
          f"block); at the tip {tip.staked_units / 1e9:,.3f} pts staked, {tip.minted_units / 1e9:,.3f} pts minted")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=5_000)
    parser.add_argument("--pos-blocks", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as directory:
        ok = await bench_pow(args.blocks, args.repeats, Path(directory))
    if args.pos_blocks:
        bench_pos(args.pos_blocks)
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
