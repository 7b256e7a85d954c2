"""One chain, from the three rule sets: the block (``block``: header, coinbase, transfers,
operations), the state and ``process_block`` (``state``), a full replay (``verify``), the
self-verifying export (``export``) and the difficulty explainer (``retargets``).

Pure: no clock, no randomness, no I/O. May import the vocabulary, ``pow``, ``ledger`` and ``pos``;
never adapters.
"""
