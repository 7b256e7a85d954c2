"""One chain, from the three rule sets: the block (``block``: header, coinbase, transfers,
operations), the genesis block (``genesis``), the rules a running chain may change
(``rule_changes``), the state and the checks blocks share (``state``), ``process_block`` and
``replay_chain`` (``transition``), blocks of a chain with a consensus config
(``consensus_block``), the block tree's fork choice by work and reorg paths (``tree``), the events a
reorg or a reorg refused by finality announces (``reorg_events``),
building the next block (``templates``), validator duties on top of the tip (``duties``), a full
replay with its report (``verify``), the self-verifying export (``export``) and the difficulty
explainer (``retargets``).

Pure: no clock, no randomness, no I/O. May import the vocabulary, ``pow``, ``ledger`` and ``pos``;
never adapters.
"""
