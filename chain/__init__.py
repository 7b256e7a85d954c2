"""Consensus Playground's chain engine.

The consensus modules (header, compact, pow, merkle, transaction, block, ledger,
mempool, validation, verify, keys, params, errors, and proof of stake's attestation,
staking, rewards, epoch, finality, proposer, beacon, operations, forkchoice,
slashing_protection) are pure and deterministic:
clock, randomness and storage arrive as arguments.  The adapters that touch the
outside world live in their own modules: ``store`` (SQLite), ``hashcore``
(worker processes), ``node`` (wires engine, store and hashing core together)
and ``__main__`` (the command line).
"""
