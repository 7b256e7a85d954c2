"""Attestation signature verification rate on one core.

Run: .venv/bin/python -m benchmarks.bench_attestations [--validators 500] [--epochs 6] [--repeats 7]

Each of ``--validators`` validators signs one attestation per epoch, for ``--epochs``
epochs; all validators of an epoch vote for the same data, as honest ones do.

Baseline, measured in the same run on the same core: cryptography's raw Ed25519
``verify`` of the same signatures over the same 32-byte signing roots, with the
public-key objects already loaded and the roots already computed.  The engine's
``check_attestation_signature`` also serializes the data, hashes the signing
root and looks the key up, every time.

Target: at least 5,000 attestations/s.  Prints medians, the ratio and the
target; exits non-zero when the target is missed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from chain.keys import SigningKey
from chain.pos.attestation import (
    AttestationData,
    Checkpoint,
    check_attestation_signature,
    sign_attestation,
)

TARGET_PER_S = 5_000
CHAIN_ID = 1
SLOTS_PER_EPOCH = 8


def build(validators: int, epochs: int) -> list:
    keys = [SigningKey(hashlib.sha256(f"bench validator {i}".encode()).digest()) for i in range(validators)]
    attestations = []
    for epoch in range(1, epochs + 1):
        head = hashlib.sha256(f"block {epoch}".encode()).digest()
        source = Checkpoint(epoch - 1, hashlib.sha256(f"block {epoch - 1}".encode()).digest())
        data = AttestationData(CHAIN_ID, epoch * SLOTS_PER_EPOCH, head, source, Checkpoint(epoch, head))
        attestations.extend(sign_attestation(key, data) for key in keys)
    return attestations


def time_loop(function, items, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for item in items:
            function(item)
        times.append(time.perf_counter() - started)
    return times


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--validators", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the target says

    attestations = build(args.validators, args.epochs)
    count = len(attestations)

    # The first pass loads every public key into the engine's cache, as a running bot's would be.
    started = time.perf_counter()
    for attestation in attestations:
        check_attestation_signature(attestation)
    cold_s = time.perf_counter() - started

    raw = [
        (Ed25519PublicKey.from_public_bytes(a.validator), a.signature, a.data.signing_root()) for a in attestations
    ]

    def raw_verify(item) -> None:
        public_key, signature, message = item
        public_key.verify(signature, message)

    # Interleave the two so that machine noise falls on both alike.
    ours_times, raw_times = [], []
    for _ in range(args.repeats):
        ours_times += time_loop(check_attestation_signature, attestations, 1)
        raw_times += time_loop(raw_verify, raw, 1)

    ours_rate = count / statistics.median(ours_times)
    raw_rate = count / statistics.median(raw_times)
    overhead_us = (1 / ours_rate - 1 / raw_rate) * 1e6
    print(
        f"attestations: {count:,} ({args.validators} validators x {args.epochs} epochs), "
        f"one core, {args.repeats} repeats"
    )
    print(f"check_attestation_signature: median {ours_rate:,.0f}/s (first pass, loading keys: {count / cold_s:,.0f}/s)")
    print(f"raw Ed25519 verify, same messages: median {raw_rate:,.0f}/s")
    print(
        f"ratio {ours_rate / raw_rate:.3f}; overhead {overhead_us:.1f} µs per attestation  [target >= "
        f"{TARGET_PER_S:,}/s]"
    )
    ok = ours_rate >= TARGET_PER_S
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
