"""The ledger: transactions (coinbase and signed transfers, ``transaction``), balances and nonces
with the rules that move points (``accounts``), and the pending transfers of a chain (``mempool``).

Pure: no clock, no randomness, no I/O. May import the vocabulary at ``chain/``'s top (errors,
hashing, keys, params) and nothing else of ``chain/``: not proof of work, proof of stake or adapters.
"""
