"""Proof-of-work rules, byte for byte Bitcoin's: the 80-byte header (``header``), compact bits
(``compact``), merkle roots (``merkle``), difficulty retargeting (``difficulty``, as pow.cpp) and
the recent window of headers (``window``).  The nonce search itself times its CPU, so it runs with the
hashing core in ``adapters``.

Pure: no clock, no randomness, no I/O. May import the vocabulary at ``chain/``'s top (errors,
hashing, params...) and nothing else of ``chain/``: not the ledger, proof of stake or adapters.
"""
