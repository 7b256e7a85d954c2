"""One epoch's end for 1,000 validators: finality weighing plus rewards and penalties.

Run: .venv/bin/python -m benchmarks.bench_epoch [--validators 1000] [--repeats 9]

Each run does ``process_justification_and_finalization`` and
``process_rewards_and_penalties`` for one epoch in which 90% of the validators
attested and every slot but one got a block, while finality is 6 epochs behind
(so the inactivity leak's extra arithmetic is exercised too).

Baseline, measured in the same run: a plain Python loop summing the balances,
the least any per-validator pass can cost.

Target: median below 200 ms.  Prints medians, the ratio and the target; exits
non-zero when the target is missed.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time

from chain.pos.finality import (
    genesis_finality_state,
    process_justification_and_finalization,
)
from chain.pos.rewards import (
    DEFAULT_REWARDS,
    UNITS_PER_POINT,
    EpochParticipation,
    process_rewards_and_penalties,
)

TARGET_MS = 200
EPOCHS_SINCE_FINALITY = 6


def build(validators: int):
    balances = tuple(32 * UNITS_PER_POINT + i * 1_000 for i in range(validators))
    effective = tuple(32 * UNITS_PER_POINT for _ in range(validators))
    attested = tuple(i % 10 != 0 for i in range(validators))
    proposers = tuple(None if s == 3 else (s * 97) % validators for s in range(DEFAULT_REWARDS.slots_per_epoch))
    participation = EpochParticipation(effective, (True,) * validators, attested, proposers)
    total = sum(effective)
    votes = sum(e for e, a in zip(effective, attested, strict=True) if a)
    return balances, participation, total, votes


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--validators", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()

    balances, participation, total, _votes = build(args.validators)
    # Start the finality state at epoch 10 (genesis plus ten processed epochs of full votes).
    state = genesis_finality_state(hashlib.sha256(b"genesis").digest())
    for epoch in range(10):
        state = process_justification_and_finalization(
            state, total, total, total, hashlib.sha256(b"%d" % max(epoch - 1, 0)).digest(),
            hashlib.sha256(b"%d" % epoch).digest(),
        )
    previous_root = hashlib.sha256(b"%d" % (state.current_epoch - 1)).digest()
    current_root = hashlib.sha256(b"%d" % state.current_epoch).digest()

    def epoch_end():
        # The validators' vote totals are part of the work: the engine must add them up each epoch.
        attesting = sum(
            e for e, a in zip(participation.effective_balances, participation.attested_target, strict=True) if a
        )
        process_justification_and_finalization(state, total, attesting, attesting, previous_root, current_root)
        return process_rewards_and_penalties(balances, participation, DEFAULT_REWARDS, EPOCHS_SINCE_FINALITY)

    def baseline():
        running = 0
        for balance in balances:
            running += balance
        return running

    # Interleave the two so that machine noise falls on both alike.
    ours, base = [], []
    for _ in range(args.repeats):
        started = time.perf_counter()
        new_balances, summary = epoch_end()
        ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        baseline()
        base.append(time.perf_counter() - started)

    # Sanity: the run did real work and kept the books (an explicit check: python -O drops asserts).
    if sum(new_balances) != sum(balances) + summary.minted - summary.burned or summary.burned == 0:
        print("FAIL: the epoch's books do not balance")
        return 2

    ours_ms = statistics.median(ours) * 1_000
    base_ms = statistics.median(base) * 1_000
    print(f"validators: {args.validators:,}, repeats: {args.repeats}, epochs since finality: {EPOCHS_SINCE_FINALITY}")
    print(
        f"epoch end (finality + rewards): median {ours_ms:.2f} ms (min {min(ours) * 1000:.2f}, max "
        f"{max(ours) * 1000:.2f})"
    )
    print(f"baseline (loop summing balances): median {base_ms:.3f} ms")
    print(f"ratio {ours_ms / base_ms:.1f}x baseline; minted {summary.minted:,} burned {summary.burned:,} nanopoints")
    wired_ms = statistics.median(wired_epoch_transition(args.validators, args.repeats)) * 1_000
    print("as wired (chain/pos/beacon.py process_epoch: the above plus activations, exits,")
    print(f"  withdrawability and the events): median {wired_ms:.2f} ms")
    print(f"target: < {TARGET_MS} ms (both)")
    ok = ours_ms < TARGET_MS and wired_ms < TARGET_MS
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def wired_epoch_transition(validators: int, repeats: int) -> list[float]:
    """The epoch end the beacon node really runs, for ``validators`` genesis validators, 90% voting."""
    from dataclasses import replace

    from chain.keys import SigningKey
    from chain.pos.beacon import ConsensusConfig, GenesisValidator, genesis_beacon_state
    from chain.pos.epoch_transition import process_epoch

    keys = [SigningKey(hashlib.sha256(b"validator %d" % i).digest()).public_key for i in range(validators)]
    config = ConsensusConfig(
        mode="pos", genesis_validators=tuple(GenesisValidator(k, k, 32) for k in keys)
    )
    state = genesis_beacon_state(config, hashlib.sha256(b"genesis").digest(), 1_800_000_000, 0)
    voters = frozenset(range(validators * 9 // 10))
    state = replace(state, current_attesters=voters, previous_attesters=voters)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        process_epoch(state, 60)
        times.append(time.perf_counter() - started)
    return times


if __name__ == "__main__":
    sys.exit(main())
