"""The chain engine: consensus rules, the façade cogs call, and the adapters to the outside world.

What lives here, by layer (README "Architecture" draws it):

- **Rules**, pure and deterministic (clock, randomness and storage arrive as arguments; integers
  only; typed errors from ``errors``): proof of work (``header``, ``compact``, ``pow``,
  ``merkle``, ``params``, ``hashing``), the ledger (``transaction``, ``block``, ``ledger``,
  ``mempool``, ``state``, ``verify``, ``keys``), proof of stake (``attestation``, ``staking``,
  ``rewards``, ``epoch``, ``finality``, ``proposer``, ``beacon``, ``operations``, ``forkchoice``,
  ``slashing_protection``).
- **The façade**, ``playground.Playground``: the one thing ``cogs/`` and ``bot/`` call for a
  server's chain.
- **Adapters**, the only modules that touch the outside world: ``node`` and ``beacon_node`` (the
  engine's runtime per server), ``storage`` (SQLite, every SQL statement of chain/), ``hashcore`` and
  ``nonce_search`` (worker processes), ``signer`` (validator keys), ``__main__`` (the command line).

May import: the standard library, ``cryptography`` and ``aiosqlite`` (in ``storage``); never
``discord``, ``cogs`` or ``bot`` (``tests/test_layout.py`` checks it).
"""
