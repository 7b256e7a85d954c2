"""The engine's adapters to the outside world: the runtime per server (``node`` for blocks, wallets
and mining, with ``wallet_keys`` for its members' wallet keys, ``chain_reads`` for its whole-chain
verify and export and ``template_job`` for a mining session's templates; ``beacon_node`` for
validators, votes and slots, composed of ``stake_requests``, ``votes``, ``slot_driver``,
``slashing_reports``, ``beacon_lifecycle`` and ``beacon_status`` over the shared
``beacon_runtime``), durable storage (``storage/``, every SQL statement of chain/), the hashing
core's worker processes (``hashcore``, ``nonce_search`` with its C extension ``_noncesearch``,
``cpu_budget``, ``worker_lifeline``), the custodial
validator signer (``signer``), the master-key check (``key_check``), the per-server work budget
(``budget``) and the energy counters and report (``energy``).

Clock and randomness still arrive as arguments. May import everything of ``chain/`` below the
front door (the rules and the vocabulary); never ``chain.playground``, ``discord``, ``cogs`` or ``bot``.
"""
