"""A proof-of-stake server with 1,000 validators and 30-second slots: CPU per slot.

Run: .venv/bin/python -m benchmarks.bench_validators

What runs is the bot's own code below Discord: the store (SQLite, durable
commits), the node, the validator signer (EIP-3076 record written before every
signature) and the beacon node's slot tick: settle the last slot's block,
propose and sign the next one, and auto-attest for every validator once an
epoch (spread over the epoch's slots, as phase0 spreads committees).

Each slot's CPU time (this process, all threads: the event loop and SQLite's)
is divided by the slot length, 30 s, for the share of one core the server
costs.  Baseline, same run: the bare Ed25519 work of the same number of votes
(sign + verify), the part no implementation can skip.

Target: under 5% of one core (median and p90 over the measured slots).
"""

from __future__ import annotations

import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bot.health import LoopLagMonitor
from chain.adapters.beacon_node import BeaconNode
from chain.adapters.node import Node
from chain.adapters.signer import ValidatorSigner
from chain.adapters.storage import Store
from chain.keys import SigningKey, verify_signature
from chain.params import PLAYGROUND
from chain.pos.beacon import ConsensusConfig, GenesisAllocation, GenesisValidator

VALIDATORS = 1_000
SLOT_S = 30
SLOTS_PER_EPOCH = 8
MEASURED_EPOCHS = 4
TARGET_CORE_SHARE = 0.05
CHAIN = 1
MASTER = b"\x5a" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000

    def __call__(self) -> float:
        return float(self.now)


def bare_vote_cost_s(votes: int) -> float:
    key = SigningKey(bytes(range(32)))
    messages = [i.to_bytes(128, "little") for i in range(votes)]
    started = time.process_time()
    for message in messages:
        verify_signature(key.public_key, message, key.sign(message))
    return time.process_time() - started


async def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        clock = Clock()
        store = await Store.open(Path(tmp) / "validators.sqlite3")
        node = Node(store, clock=clock, randomness=os.urandom, master_key=MASTER)
        signer = ValidatorSigner(store, clock=clock, randomness=os.urandom, master_key=MASTER)
        beacon = BeaconNode(node, signer)
        owners = [f"member{i}" for i in range(VALIDATORS)]
        setup_started = time.perf_counter()
        validators, allocations = [], []
        for owner in owners:
            wallet = await node.address(CHAIN, owner)
            validators.append(GenesisValidator(await signer.validator_key(CHAIN, owner), wallet, 32))
            allocations.append(GenesisAllocation(wallet, 10))
        config = ConsensusConfig(
            mode="pos", slot_duration_s=SLOT_S, slots_per_epoch=SLOTS_PER_EPOCH,
            genesis_validators=tuple(validators), genesis_allocations=tuple(allocations),
        )
        await node.create_chain(CHAIN, PLAYGROUND, consensus=config)
        for owner in owners:
            await beacon.set_auto_attest(CHAIN, owner, True)
        print(f"set up {VALIDATORS} validators in {time.perf_counter() - setup_started:.1f} s")

        per_slot: list[float] = []
        votes = 0
        blocks = 0
        # How long the event loop (the Discord heartbeat's) waits while slots run.
        lag = LoopLagMonitor()
        lag.start()
        # One warm-up epoch (first votes, caches), then the measured ones.
        for slot_number in range((1 + MEASURED_EPOCHS) * SLOTS_PER_EPOCH):
            clock.now += SLOT_S
            started = time.process_time()
            outcome = await beacon.on_slot(CHAIN, int(clock.now))
            spent = time.process_time() - started
            if slot_number >= SLOTS_PER_EPOCH and outcome is not None:
                per_slot.append(spent)
                votes += outcome.auto_votes
                blocks += outcome.block is not None
        state = node.chain(CHAIN).state
        finalized = state.beacon.finality.finalized_checkpoint.epoch
        lag_stats = lag.stats()
        await lag.stop()
        await store.close()

    slots = len(per_slot)
    baseline = bare_vote_cost_s(max(1, votes // max(1, slots)))
    median, p90 = statistics.median(per_slot), sorted(per_slot)[int(slots * 0.9)]
    print(f"{VALIDATORS} validators, {SLOT_S} s slots, {SLOTS_PER_EPOCH} slots an epoch; {slots} slots measured")
    print(f"  {votes} votes and {blocks} blocks; chain height {state.height}, finalized epoch {finalized}")
    print(f"  CPU per slot: median {median * 1e3:.1f} ms, p90 {p90 * 1e3:.1f} ms, max {max(per_slot) * 1e3:.1f} ms")
    print(f"  bare Ed25519 sign+verify of one slot's votes: {baseline * 1e3:.1f} ms "
          f"(ratio median/bare {median / baseline if baseline else float('inf'):.1f})")
    print(f"  event-loop lag while the slots ran (10 ms ticker): p50 {lag_stats.p50_ms:.2f} ms, "
          f"p99 {lag_stats.p99_ms:.2f} ms, max {lag_stats.max_ms:.2f} ms  (for information)")
    share, share90 = median / SLOT_S, p90 / SLOT_S
    print(f"  share of one core: median {share * 100:.2f}%, p90 {share90 * 100:.2f}%   "
          f"target < {TARGET_CORE_SHARE * 100:.0f}%")
    # Finality needs two justified epochs in a row: epoch 2 is final once epoch 3's votes are in.
    ok = share90 < TARGET_CORE_SHARE and finalized >= 2
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
