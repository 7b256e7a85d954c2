"""Durable storage: one database (SQLite, or PostgreSQL) behind small repositories (README "Durable store").

Every SQL statement of ``chain/`` lives in this package (the bot's own tables and keys are in
``bot/storage.py``); statements use bound parameters only.
"""

from chain.adapters.storage.blocks import stake_history_wallet
from chain.adapters.storage.database import Database, Reader, Transaction, WriteHorizon
from chain.adapters.storage.migrations import MIGRATIONS
from chain.adapters.storage.protection import decode_protection_record, encode_protection_record
from chain.adapters.storage.read_snapshot import HANDOFF_S, READ_BATCH_ROWS, ChainSnapshot
from chain.adapters.storage.records import (
    EnergyCounters,
    ReorgRecord,
    SealedSample,
    SealedSecrets,
    StoredChain,
    StoredChainHead,
    StoredKey,
    StoredOrphan,
    StoredSideBranch,
    StoredStakeEntry,
    StoredTransaction,
    StoredValidatorKey,
    StoredWallet,
)
from chain.adapters.storage.store import Store

__all__ = [
    "HANDOFF_S", "MIGRATIONS", "READ_BATCH_ROWS", "ChainSnapshot", "Database",
    "EnergyCounters", "Reader", "ReorgRecord", "SealedSample", "SealedSecrets", "Store", "StoredChain",
    "StoredChainHead", "StoredKey", "StoredOrphan", "StoredSideBranch", "StoredStakeEntry", "StoredTransaction",
    "StoredValidatorKey", "StoredWallet",
    "Transaction", "WriteHorizon", "decode_protection_record", "encode_protection_record", "stake_history_wallet",
]
