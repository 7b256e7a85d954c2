"""The chain engine: consensus rules, the façade cogs call, and the adapters to the outside world.

The folders are the layers (README "Architecture" draws them); each may import only from the
layers before it, and ``tests/test_layout.py`` checks it:

0. **Vocabulary**, here at the top: ``errors`` (typed refusals), ``events``, ``hashing``, ``keys``
   (Ed25519 and sealing), ``mode`` and ``params`` (per-network constants).
1. **Rules**, pure and deterministic (clock, randomness and storage arrive as arguments; integers
   only): ``pow/`` (headers, compact bits, merkle roots, difficulty) and ``ledger/`` (transfers,
   balances, the mempool), which never import each other;
2. ``pos/``, proof of stake (validators, votes, epochs, finality, proposers, slashing protection),
   which may use the ledger;
3. ``consensus/``, one chain from all three: blocks, the state and ``process_block``, replay
   (``verify``), export and the difficulty explainer.
   Beside it, ``games/``: the attack games' mathematics (the Bitcoin paper's double-spend chance
   and the exact race, selfish mining's state machine and closed-form revenue), with seeded
   simulations; it and ``consensus/`` never import each other.
4. **Adapters**, ``adapters/``, the only modules that touch the outside world: ``node`` and
   ``beacon_node`` (the runtime per server), ``storage/`` (SQLite: every SQL statement of chain/),
   ``hashcore`` and ``nonce_search`` (worker processes), ``signer`` (validator keys), budgets and energy counters.
5. **The front door**: ``playground.Playground``, the one thing ``cogs/`` and ``bot/`` call for a
   server's chain, and ``__main__``, the command line.

May import: the standard library, ``cryptography`` and ``aiosqlite`` (in ``adapters/storage``); never
``discord``, ``cogs`` or ``bot``.
"""
