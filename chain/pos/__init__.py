"""Proof of stake, shaped after consensus-specs phase0: votes and slashing evidence
(``attestation``), validators (``staking``), rewards, epoch accounting, Casper FFG finality,
proposer selection, block operations and their pool, fork choice (for one slot in ``forkchoice``,
over a block tree in ``lmd_ghost``), EIP-3076 slashing protection,
the beacon state (``beacon``) and its bytes (``snapshot``), and its transitions: epochs
(``epoch_transition``), block operations (``operation_rules``), ``withdrawals`` and the ``merge``.

Pure: no clock, no randomness, no I/O. May import the vocabulary at ``chain/``'s top and the
ledger (deposits and withdrawals move points); never proof of work's rules, ``consensus`` or adapters.
"""
