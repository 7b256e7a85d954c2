"""The storage adapter: every SQL statement of the project lives here.

SQLite through aiosqlite, in WAL mode with ``synchronous=FULL`` so a commit
that returned survives a power cut.  Many chains (one per Discord server)
share one database, keyed by ``chain_id``.  Migrations are numbered and run
once each; statements use bound parameters only.

Proof-of-stake adapters (migration 4): validator keys (sealed like wallet
keys), EIP-3076 slashing protection records, beacon snapshots written with
their block, per-validator settings, and energy counters.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.request import pathname2url

import aiosqlite

from chain.beacon import ConsensusConfig
from chain.block import Block
from chain.errors import (
    BlockNotFoundError,
    ChainExistsError,
    ChainNotFoundError,
    EncodingError,
    EnergyError,
    SnapshotUnavailableError,
    StaleBlockError,
)
from chain.events import STAKE_DEPOSITED, STAKE_WITHDRAWN, VALIDATOR_SLASHED, ChainEvent
from chain.header import HEADER_SIZE_BYTES, BlockHeader
from chain.ledger import Account
from chain.mempool import Admission, PendingTransfer
from chain.op_pool import PooledOperation, deserialize_operation
from chain.params import ChainParams
from chain.slashing_protection import (
    SignedAttestationEntry,
    SignedBlockEntry,
    SlashingProtectionRecord,
)
from chain.state import BlockEffects, compute_history_blocks
from chain.transaction import deserialize_transfer

log = logging.getLogger(__name__)

# An SQL function registered on every connection, for migration 7's back-fill of display hashes.
_REVERSE_BYTES = "playground_reverse_bytes"


def _reverse_bytes(value: bytes | None) -> bytes | None:
    return None if value is None else bytes(value)[::-1]


MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            """CREATE TABLE chains (
                chain_id INTEGER PRIMARY KEY,
                params TEXT NOT NULL,
                genesis_hash BLOB NOT NULL,
                created_at INTEGER NOT NULL
            )""",
            """CREATE TABLE blocks (
                chain_id INTEGER NOT NULL REFERENCES chains(chain_id) ON DELETE CASCADE,
                height INTEGER NOT NULL,
                hash BLOB NOT NULL,
                miner BLOB NOT NULL,
                time INTEGER NOT NULL,
                raw BLOB NOT NULL,
                PRIMARY KEY (chain_id, height),
                UNIQUE (chain_id, hash)
            )""",
            """CREATE TABLE accounts (
                chain_id INTEGER NOT NULL REFERENCES chains(chain_id) ON DELETE CASCADE,
                pubkey BLOB NOT NULL,
                balance INTEGER NOT NULL CHECK (balance >= 0),
                nonce INTEGER NOT NULL CHECK (nonce >= 0),
                PRIMARY KEY (chain_id, pubkey)
            ) WITHOUT ROWID""",
            """CREATE TABLE transactions (
                chain_id INTEGER NOT NULL REFERENCES chains(chain_id) ON DELETE CASCADE,
                txid BLOB NOT NULL,
                height INTEGER NOT NULL,
                position INTEGER NOT NULL,
                sender BLOB,
                recipient BLOB NOT NULL,
                amount INTEGER NOT NULL,
                fee INTEGER NOT NULL,
                PRIMARY KEY (chain_id, txid)
            ) WITHOUT ROWID""",
            "CREATE INDEX transactions_sender ON transactions (chain_id, sender, height)",
            "CREATE INDEX transactions_recipient ON transactions (chain_id, recipient, height)",
            """CREATE TABLE mempool (
                chain_id INTEGER NOT NULL REFERENCES chains(chain_id) ON DELETE CASCADE,
                txid BLOB NOT NULL,
                arrival INTEGER NOT NULL,
                raw BLOB NOT NULL,
                PRIMARY KEY (chain_id, txid)
            ) WITHOUT ROWID""",
            """CREATE TABLE wallets (
                chain_id INTEGER NOT NULL,
                owner TEXT NOT NULL,
                pubkey BLOB NOT NULL,
                sealed_key BLOB NOT NULL,
                created_at INTEGER NOT NULL,
                PRIMARY KEY (chain_id, owner),
                UNIQUE (chain_id, pubkey)
            )""",
            """CREATE TABLE outbox (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                chain_id INTEGER NOT NULL,
                kind TEXT NOT NULL,
                payload TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                delivered_at INTEGER
            )""",
            "CREATE INDEX outbox_pending ON outbox (chain_id, id) WHERE delivered_at IS NULL",
        ),
    ),
    (
        2,
        (
            # One webhook per server; the URL is a secret, so it is stored sealed.
            """CREATE TABLE webhooks (
                chain_id INTEGER PRIMARY KEY,
                channel_id INTEGER NOT NULL,
                webhook_id INTEGER NOT NULL,
                sealed_url BLOB NOT NULL,
                disabled_reason TEXT,
                updated_at INTEGER NOT NULL
            )""",
            # Per-server settings that are not consensus rules (session length...).
            """CREATE TABLE server_settings (
                chain_id INTEGER PRIMARY KEY,
                settings TEXT NOT NULL
            )""",
        ),
    ),
    (
        3,
        (
            # Rule changes: proposed (height NULL) until a block commits to them.
            """CREATE TABLE param_changes (
                chain_id INTEGER NOT NULL REFERENCES chains(chain_id) ON DELETE CASCADE,
                height INTEGER,
                params TEXT NOT NULL
            )""",
            "CREATE UNIQUE INDEX param_changes_height ON param_changes (chain_id, height)",
            "CREATE UNIQUE INDEX param_changes_proposal ON param_changes (chain_id) WHERE height IS NULL",
        ),
    ),
    (
        4,
        (
            # Proof-of-stake validator keys, custodied and sealed like wallet keys. No
            # foreign key to chains: like wallets they outlive a reset of the chain.
            """CREATE TABLE validator_keys (
                chain_id INTEGER NOT NULL,
                owner TEXT NOT NULL,
                pubkey BLOB NOT NULL,
                sealed_key BLOB NOT NULL,
                created_at INTEGER NOT NULL,
                PRIMARY KEY (chain_id, owner),
                UNIQUE (chain_id, pubkey)
            )""",
            # EIP-3076 minimal record per validator. It outlives a reset on purpose:
            # signing roots name the chain id, not the genesis, so a vote signed on the
            # old chain could be paired with one on the new chain as slashing evidence.
            """CREATE TABLE slashing_protection (
                chain_id INTEGER NOT NULL,
                pubkey BLOB NOT NULL,
                record TEXT NOT NULL,
                updated_at INTEGER NOT NULL,
                PRIMARY KEY (chain_id, pubkey)
            ) WITHOUT ROWID""",
            # Opaque proof-of-stake state at a block, written with the block; gone with the chain.
            """CREATE TABLE beacon_snapshots (
                chain_id INTEGER NOT NULL REFERENCES chains(chain_id) ON DELETE CASCADE,
                height INTEGER NOT NULL,
                blob BLOB NOT NULL,
                PRIMARY KEY (chain_id, height)
            ) WITHOUT ROWID""",
            # Per-validator toggles that are not consensus rules.
            """CREATE TABLE validator_settings (
                chain_id INTEGER NOT NULL,
                owner TEXT NOT NULL,
                auto_attest INTEGER NOT NULL CHECK (auto_attest IN (0, 1)),
                PRIMARY KEY (chain_id, owner)
            ) WITHOUT ROWID""",
            # Work counters for the energy comparison. No foreign key to chains: a signer
            # may count a signature for a chain the store has not created (or just reset);
            # delete_chain removes the row explicitly.
            """CREATE TABLE energy (
                chain_id INTEGER PRIMARY KEY,
                pow_cpu_ns INTEGER NOT NULL DEFAULT 0 CHECK (pow_cpu_ns >= 0),
                pos_sign_ops INTEGER NOT NULL DEFAULT 0 CHECK (pos_sign_ops >= 0),
                pos_verify_ops INTEGER NOT NULL DEFAULT 0 CHECK (pos_verify_ops >= 0)
            )""",
        ),
    ),
    (
        5,
        (
            # NULL: a chain created before proof of stake existed (plain proof of work).
            "ALTER TABLE chains ADD COLUMN consensus TEXT",
            # Merge schedules committed by blocks (height) or proposed for the next block (NULL).
            """CREATE TABLE consensus_changes (
                chain_id INTEGER NOT NULL REFERENCES chains(chain_id) ON DELETE CASCADE,
                height INTEGER,
                consensus TEXT NOT NULL
            )""",
            "CREATE UNIQUE INDEX consensus_changes_proposal ON consensus_changes (chain_id) WHERE height IS NULL",
            # Deposits, exits, votes and slashing evidence waiting for a block: acknowledged, so durable.
            """CREATE TABLE op_pool (
                chain_id INTEGER NOT NULL REFERENCES chains(chain_id) ON DELETE CASCADE,
                op_id BLOB NOT NULL,
                kind INTEGER NOT NULL,
                raw BLOB NOT NULL,
                arrival INTEGER NOT NULL,
                PRIMARY KEY (chain_id, op_id)
            ) WITHOUT ROWID""",
        ),
    ),
    (
        6,
        (
            # A fixed value sealed under the master key the database's secrets are sealed
            # under: at startup it tells a wrong key apart before anything is sealed with it.
            """CREATE TABLE key_check (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                sealed BLOB NOT NULL,
                created_at INTEGER NOT NULL
            )""",
        ),
    ),
    (
        7,
        (
            # Hashes as members see them (byte-reversed, chain.hashing): a typed hash prefix is then
            # a range of this column, which the index answers without reading every block.
            "ALTER TABLE blocks ADD COLUMN display_hash BLOB",
            f"UPDATE blocks SET display_hash = {_REVERSE_BYTES}(hash)",
            "CREATE INDEX blocks_display_hash ON blocks (chain_id, display_hash)",
            # Blocks mined per miner at startup: one pass over this index, not over every block.
            "CREATE INDEX blocks_miner ON blocks (chain_id, miner)",
        ),
    ),
    (
        8,
        (
            # Pruning delivered announcements finds the old ones through this index instead of
            # scanning the whole outbox on every pass (most passes have nothing old enough).
            "CREATE INDEX outbox_delivered ON outbox (delivered_at) WHERE delivered_at IS NOT NULL",
        ),
    ),
    (
        9,
        (
            # What staking did to a wallet (deposits, stake paid back, slashing penalties), from the
            # events of the block that did it: the outbox is pruned once delivered, so /wallet history
            # reads these instead. Blocks appended before this migration have no rows here.
            """CREATE TABLE stake_history (
                chain_id INTEGER NOT NULL REFERENCES chains(chain_id) ON DELETE CASCADE,
                height INTEGER NOT NULL,
                seq INTEGER NOT NULL,
                wallet BLOB NOT NULL,
                kind TEXT NOT NULL,
                payload TEXT NOT NULL,
                PRIMARY KEY (chain_id, height, seq)
            ) WITHOUT ROWID""",
            "CREATE INDEX stake_history_wallet ON stake_history (chain_id, wallet, height)",
        ),
    ),
    (
        10,
        (
            # Transaction ids as members see them (byte-reversed, like block hashes in migration 7):
            # `/chain tx` takes a typed prefix, a range of this column that the index answers.
            "ALTER TABLE transactions ADD COLUMN display_txid BLOB",
            f"UPDATE transactions SET display_txid = {_REVERSE_BYTES}(txid)",
            "CREATE INDEX transactions_display_txid ON transactions (chain_id, display_txid)",
            # Its autocomplete lists the newest transactions first: read backwards along this index.
            "CREATE INDEX transactions_height ON transactions (chain_id, height, position)",
        ),
    ),
    (
        11,
        (
            # When each member last claimed from the chain's faucet (node clock): the cooldown
            # outlives a restart. Written in the transaction that pools the payout; a reset
            # (a new chain, a new faucet) clears it with the chain.
            """CREATE TABLE faucet_claims (
                chain_id INTEGER NOT NULL REFERENCES chains(chain_id) ON DELETE CASCADE,
                owner TEXT NOT NULL,
                claimed_at INTEGER NOT NULL,
                PRIMARY KEY (chain_id, owner)
            ) WITHOUT ROWID""",
        ),
    ),
    (
        12,
        (
            # The one message per server that shows the running epoch's slots (the slot driver
            # edits it as slots pass), so a restart keeps editing it instead of posting another.
            # Gone with the chain: a new chain's first slot posts a new message.
            """CREATE TABLE epoch_messages (
                chain_id INTEGER PRIMARY KEY REFERENCES chains(chain_id) ON DELETE CASCADE,
                channel_id INTEGER NOT NULL,
                message_id INTEGER NOT NULL,
                epoch INTEGER NOT NULL CHECK (epoch >= 0),
                updated_at INTEGER NOT NULL
            )""",
        ),
    ),
)

# Event kinds recorded in ``stake_history``, with the payload key naming the wallet concerned.
STAKE_HISTORY_WALLET_KEYS = {STAKE_DEPOSITED: "wallet", STAKE_WITHDRAWN: "address", VALIDATOR_SLASHED: "wallet"}

# Version of the JSON encoding of a stored slashing protection record.
_PROTECTION_RECORD_VERSION = 1


_DURABILITY_PRAGMAS = {
    "journal_mode": "PRAGMA journal_mode",
    "synchronous": "PRAGMA synchronous",
    "foreign_keys": "PRAGMA foreign_keys",
}


@dataclass(frozen=True, slots=True)
class EpochMessage:
    """Where a server's running epoch is shown: one Discord message, edited as slots pass."""

    chain_id: int
    channel_id: int
    message_id: int
    epoch: int


@dataclass(frozen=True, slots=True)
class StoredChain:
    chain_id: int
    params: ChainParams
    blocks: list[Block]
    accounts: dict[bytes, Account]
    mempool: list[PendingTransfer]
    param_changes: list[tuple[int, ChainParams]]
    proposed_params: ChainParams | None
    consensus: ConsensusConfig | None = None
    consensus_changes: list[tuple[int, ConsensusConfig]] = field(default_factory=list)
    proposed_consensus: ConsensusConfig | None = None
    operations: list[PooledOperation] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class StoredChainHead:
    """What startup reads of a chain: its current tables and recent end, never every block.

    ``recent`` is (header, hash) of the last ``compute_history_blocks`` blocks before and
    including the tip (from block 1 on), oldest first; ``snapshot`` the newest beacon-state
    snapshot as ``(height, blob)``; ``blocks_mined`` how many blocks each miner (or fee
    recipient) got, genesis left out.
    """

    chain_id: int
    params: ChainParams
    genesis: Block
    tip_height: int
    tip_block: Block
    recent: list[tuple[BlockHeader, bytes]]
    accounts: dict[bytes, Account]
    mempool: list[PendingTransfer]
    param_changes: list[tuple[int, ChainParams]]
    proposed_params: ChainParams | None
    consensus: ConsensusConfig | None
    consensus_changes: list[tuple[int, ConsensusConfig]]
    proposed_consensus: ConsensusConfig | None
    operations: list[PooledOperation]
    snapshot: tuple[int, bytes] | None
    blocks_mined: dict[bytes, int]


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    id: int
    chain_id: int
    kind: str
    payload: dict[str, Any]
    created_at: int


@dataclass(frozen=True, slots=True)
class StoredTransaction:
    chain_id: int
    txid: bytes
    height: int
    position: int
    sender: bytes | None
    recipient: bytes
    amount: int
    fee: int


@dataclass(frozen=True, slots=True)
class StoredStakeEntry:
    """One ``stake_history`` row: an engine event (``chain/events.py``) that concerned a wallet."""

    height: int
    seq: int
    kind: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StoredWebhook:
    chain_id: int
    channel_id: int
    webhook_id: int
    sealed_url: bytes
    disabled_reason: str | None


@dataclass(frozen=True, slots=True)
class StoredWallet:
    owner: str
    pubkey: bytes
    sealed_key: bytes


@dataclass(frozen=True, slots=True)
class StoredValidatorKey:
    owner: str
    pubkey: bytes
    sealed_key: bytes


@dataclass(frozen=True, slots=True)
class SealedSample:
    """One secret sealed under the master key, with what names it (its associated data)."""

    kind: str
    """``wallet``, ``validator key`` or ``webhook URL``."""
    chain_id: int
    owner: str | None
    sealed: bytes


@dataclass(frozen=True, slots=True)
class SealedSecrets:
    """What a database holds that only its master key opens, read without changing anything."""

    key_check: bytes | None
    sample: SealedSample | None

    @property
    def present(self) -> bool:
        return self.key_check is not None or self.sample is not None


@dataclass(frozen=True, slots=True)
class EnergyCounters:
    """Work done for one chain: CPU time of proof-of-work hashing, signatures made and checked."""

    pow_cpu_ns: int = 0
    pos_sign_ops: int = 0
    pos_verify_ops: int = 0


def _root_to_json(root: bytes | None) -> str | None:
    return None if root is None else root.hex()


def _root_from_json(value: Any) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise EncodingError(f"a signing root is stored as hex, got {value!r}")
    return bytes.fromhex(value)


def encode_protection_record(record: SlashingProtectionRecord) -> str:
    """The record as explicit JSON: every field by name, roots as hex, ``null`` for none.

    Our own encoding rather than EIP-3076's interchange file: the interchange
    names a genesis, and these records deliberately outlive a chain's genesis.
    """
    block = record.highest_block
    attestation = record.highest_attestation
    document = {
        "version": _PROTECTION_RECORD_VERSION,
        "pubkey": record.pubkey.hex(),
        "highest_block": None
        if block is None
        else {"slot": block.slot, "signing_root": _root_to_json(block.signing_root)},
        "highest_attestation": None
        if attestation is None
        else {
            "source_epoch": attestation.source_epoch,
            "target_epoch": attestation.target_epoch,
            "signing_root": _root_to_json(attestation.signing_root),
        },
        "highest_source_epoch": record.highest_source_epoch,
    }
    return json.dumps(document, sort_keys=True)


def decode_protection_record(text: str) -> SlashingProtectionRecord:
    try:
        document = json.loads(text)
        if document.get("version") != _PROTECTION_RECORD_VERSION:
            raise EncodingError(f"slashing protection record version {document.get('version')!r} is unknown")
        block = document["highest_block"]
        attestation = document["highest_attestation"]
        return SlashingProtectionRecord(
            bytes.fromhex(document["pubkey"]),
            None if block is None else SignedBlockEntry(int(block["slot"]), _root_from_json(block["signing_root"])),
            None
            if attestation is None
            else SignedAttestationEntry(
                int(attestation["source_epoch"]),
                int(attestation["target_epoch"]),
                _root_from_json(attestation["signing_root"]),
            ),
            None if document["highest_source_epoch"] is None else int(document["highest_source_epoch"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        # json.JSONDecodeError is a ValueError. A record that cannot be read must stop
        # the signer, never be taken for "nothing signed yet".
        raise EncodingError(f"stored slashing protection record cannot be decoded: {exc}") from exc


# Bound parameters per statement, well under SQLite's smallest default limit (999).
_MAX_BOUND_PARAMETERS = 500


def _display_prefix_range(prefix: str) -> tuple[bytes, bytes | None]:
    """The display-order hashes that start with the hex ``prefix``: ``low <= h < high`` (no ``high``
    when every hash from ``low`` on matches).  An odd digit count covers the last byte's half."""
    digits = prefix.lower()
    if not digits or any(c not in "0123456789abcdef" for c in digits):
        raise ValueError(f"a hash prefix is hex digits, got {prefix!r}")
    low = bytes.fromhex(digits + "0" * (len(digits) % 2))
    value = int(digits, 16) + 1
    if value >> (4 * len(digits)):
        return low, None  # the prefix was all f: nothing above it
    high = bytes.fromhex(format(value, f"0{len(digits)}x") + "0" * (len(digits) % 2))
    return low, high


# Rows a snapshot reads at once (see ``ChainSnapshot.raw_blocks``): a few hundred KB at most.
READ_BATCH_ROWS = 256
HANDOFF_S = 0.0002


class ChainSnapshot:
    """One chain as it was at one instant, read through a read-only connection of its own.

    Made by ``Store.read_snapshot`` in the thread that reads it (a worker thread:
    every method blocks).  Everything it returns comes from a single read
    transaction, which in WAL mode neither waits for the store's writers nor
    makes them wait: blocks appended meanwhile are simply not in it.
    """

    def __init__(self, db: sqlite3.Connection, chain_id: int) -> None:
        self._db = db
        self.chain_id = chain_id
        # The transaction's first read fixes the instant every later read sees.
        row = db.execute("SELECT params, consensus FROM chains WHERE chain_id = ?", (chain_id,)).fetchone()
        if row is None:
            raise ChainNotFoundError(f"there is no chain {chain_id}")
        self.params = ChainParams.from_json(row[0])
        self.consensus = None if row[1] is None else ConsensusConfig.from_json(row[1])
        self.height = int(db.execute("SELECT MAX(height) FROM blocks WHERE chain_id = ?", (chain_id,)).fetchone()[0])
        rows = db.execute(
            "SELECT height, params FROM param_changes WHERE chain_id = ? AND height IS NOT NULL ORDER BY height",
            (chain_id,),
        ).fetchall()
        self.param_changes = [(int(r[0]), ChainParams.from_json(r[1])) for r in rows]
        rows = db.execute(
            "SELECT height, consensus FROM consensus_changes WHERE chain_id = ? AND height IS NOT NULL "
            "ORDER BY height",
            (chain_id,),
        ).fetchall()
        self.consensus_changes = [(int(r[0]), ConsensusConfig.from_json(r[1])) for r in rows]

    def accounts(self) -> dict[bytes, Account]:
        rows = self._db.execute(
            "SELECT pubkey, balance, nonce FROM accounts WHERE chain_id = ?", (self.chain_id,)
        ).fetchall()
        return {r[0]: Account(r[1], r[2]) for r in rows}

    def raw_blocks(self) -> Iterator[bytes]:
        """Every block's stored bytes from genesis, a batch of rows at a time (never the whole chain)."""
        cursor = self._db.execute(
            "SELECT raw FROM blocks WHERE chain_id = ? AND height <= ? ORDER BY height", (self.chain_id, self.height)
        )
        # In batches, not row by row: sqlite3 lets go of the GIL around every row it steps, and a
        # thread that lets go and takes it back that often keeps the event loop's thread from ever
        # forcing its turn (measured: 30-150 ms stalls). Batched, the loop gets the GIL back within
        # Python's switch interval while the rows are processed.
        while batch := cursor.fetchmany(READ_BATCH_ROWS):
            # A real pause (not sleep(0), which lets go and takes back at once) hands the GIL to
            # a waiting event loop for certain: fetching the batch may have kept it waiting.
            time.sleep(HANDOFF_S)
            for (raw,) in batch:
                yield raw

    def blocks(self) -> Iterator[Block]:
        return (Block.deserialize(raw) for raw in self.raw_blocks())

    def raw_block(self, height: int) -> bytes:
        row = self._db.execute(
            "SELECT raw FROM blocks WHERE chain_id = ? AND height = ?", (self.chain_id, height)
        ).fetchone()
        if row is None:
            raise BlockNotFoundError(f"chain {self.chain_id} has no block {height}")
        return row[0]

    def raw_size(self) -> int:
        """Bytes of every stored block together (SQLite knows a blob's length without reading it)."""
        row = self._db.execute(
            "SELECT COALESCE(SUM(length(raw)), 0) FROM blocks WHERE chain_id = ? AND height <= ?",
            (self.chain_id, self.height),
        ).fetchone()
        return int(row[0])


class Store:
    """One SQLite database; open with ``await Store.open(path)``."""

    def __init__(self, db: aiosqlite.Connection, path: Path | None = None) -> None:
        self._db = db
        # aiosqlite serialises statements, not transactions: this lock keeps
        # each BEGIN..COMMIT whole.
        self._lock = asyncio.Lock()
        # The database file, for read-only snapshot connections (None: in memory, none possible).
        self._path = path

    @classmethod
    async def open(cls, path: str | Path) -> Store:
        in_memory = str(path) == ":memory:"
        if not in_memory:
            # Only the owner may read the database; SQLite gives its -wal and -shm
            # files the database file's mode, so creating it 0600 covers them too.
            Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        db = await aiosqlite.connect(str(path), isolation_level=None)
        store = cls(db, None if in_memory else Path(path).resolve())
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=FULL")
            await db.execute("PRAGMA foreign_keys=ON")
            await db.execute("PRAGMA busy_timeout=5000")
            await db.create_function(_REVERSE_BYTES, 1, _reverse_bytes, deterministic=True)
            await store._migrate()
        except BaseException:
            await db.close()
            raise
        return store

    @staticmethod
    async def sealed_secrets(path: str | Path) -> SealedSecrets | None:
        """The key check and one sealed secret of the database at ``path``; None if there is no file.

        Read-only: no migration, no pragma that writes. Used before the master key is
        trusted, so a wrong key is refused with the database untouched.
        """
        path = Path(path)
        if not path.exists():
            return None
        uri = f"file:{pathname2url(str(path.resolve()))}?mode=ro"
        async with aiosqlite.connect(uri, uri=True) as db:
            rows = await (await db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")).fetchall()
            tables = {name for (name,) in rows}
            key_check = None
            if "key_check" in tables:
                row = await (await db.execute("SELECT sealed FROM key_check WHERE id = 1")).fetchone()
                key_check = row[0] if row else None
            # The oldest secret: a database that once ran under a wrong key may hold newer
            # wallets sealed under that key, never older ones.
            queries = (
                ("wallets", "wallet", "SELECT chain_id, owner, sealed_key FROM wallets ORDER BY created_at LIMIT 1"),
                (
                    "validator_keys",
                    "validator key",
                    "SELECT chain_id, owner, sealed_key FROM validator_keys ORDER BY created_at LIMIT 1",
                ),
                (
                    "webhooks",
                    "webhook URL",
                    "SELECT chain_id, NULL, sealed_url FROM webhooks ORDER BY updated_at LIMIT 1",
                ),
            )
            for table, kind, query in queries:
                if table in tables:
                    row = await (await db.execute(query)).fetchone()
                    if row is not None:
                        return SealedSecrets(key_check, SealedSample(kind, row[0], row[1], row[2]))
            return SealedSecrets(key_check, None)

    async def close(self) -> None:
        async with self._lock:
            await self._db.close()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                await self._db.execute("ROLLBACK")
                raise
            await self._db.execute("COMMIT")

    async def _migrate(self) -> None:
        async with self._transaction() as db:
            await db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = await (await db.execute("SELECT MAX(version) FROM schema_version")).fetchone()
            current = row[0] or 0
            for version, statements in MIGRATIONS:
                if version <= current:
                    continue
                for statement in statements:
                    await db.execute(statement)
                await db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
                log.info("database migrated to schema version %d", version)

    async def schema_version(self) -> int:
        row = await (await self._db.execute("SELECT MAX(version) FROM schema_version")).fetchone()
        return int(row[0] or 0)

    async def durability_settings(self) -> dict[str, Any]:
        """The pragmas durability depends on, as SQLite reports them."""
        settings = {}
        for name, query in _DURABILITY_PRAGMAS.items():
            row = await (await self._db.execute(query)).fetchone()
            settings[name] = row[0]
        return settings

    # --- chains ---------------------------------------------------------------

    async def create_chain(
        self,
        chain_id: int,
        params: ChainParams,
        genesis: Block,
        now: int,
        *,
        beacon_snapshot: bytes | None = None,
        consensus: ConsensusConfig | None = None,
        accounts: dict[bytes, Account] | None = None,
    ) -> None:
        """Create a chain with its genesis block (and, if given, the proof-of-stake state at genesis)."""
        async with self._transaction() as db:
            row = await (await db.execute("SELECT 1 FROM chains WHERE chain_id = ?", (chain_id,))).fetchone()
            if row is not None:
                raise ChainExistsError(f"chain {chain_id} already exists")
            await self._insert_chain(db, chain_id, params, genesis, now, beacon_snapshot, consensus, accounts)

    async def replace_chain(
        self,
        chain_id: int,
        params: ChainParams,
        genesis: Block,
        now: int,
        *,
        consensus: ConsensusConfig | None = None,
        accounts: dict[bytes, Account] | None = None,
        validator_keys: Sequence[StoredValidatorKey] = (),
        auto_attest: Sequence[str] = (),
    ) -> None:
        """A reset or a mode switch: delete the chain and create its successor in ONE transaction.

        Nothing can see (or create) a missing chain in between, and a crash leaves
        either the old chain or the new one.  ``validator_keys`` (new keys for the
        new chain's genesis validators) and their owners' auto-attest (``auto_attest``) are
        stored in the same transaction; the old chain's undelivered announcements are dropped.
        """
        async with self._transaction() as db:
            await self._delete_chain(db, chain_id)
            # Announcements of the old chain not delivered yet would tell of blocks that no longer
            # exist (say, to a channel set up after the reset): they go with it.
            await db.execute("DELETE FROM outbox WHERE chain_id = ? AND delivered_at IS NULL", (chain_id,))
            await self._insert_chain(db, chain_id, params, genesis, now, None, consensus, accounts)
            await db.executemany(
                "INSERT INTO validator_keys (chain_id, owner, pubkey, sealed_key, created_at) VALUES (?, ?, ?, ?, ?)",
                [(chain_id, k.owner, k.pubkey, k.sealed_key, now) for k in validator_keys],
            )
            for owner in auto_attest:
                await db.execute(
                    "INSERT INTO validator_settings (chain_id, owner, auto_attest) VALUES (?, ?, 1)", (chain_id, owner)
                )

    async def _insert_chain(
        self,
        db: aiosqlite.Connection,
        chain_id: int,
        params: ChainParams,
        genesis: Block,
        now: int,
        beacon_snapshot: bytes | None,
        consensus: ConsensusConfig | None,
        accounts: dict[bytes, Account] | None,
    ) -> None:
        await db.execute(
            "INSERT INTO chains (chain_id, params, genesis_hash, created_at, consensus) VALUES (?, ?, ?, ?, ?)",
            (chain_id, params.to_json(), genesis.hash(), now, None if consensus is None else consensus.to_json()),
        )
        await db.execute(
            "INSERT INTO blocks (chain_id, height, hash, display_hash, miner, time, raw) "
            "VALUES (?, 0, ?, ?, ?, ?, ?)",
            (chain_id, genesis.hash(), genesis.hash()[::-1], genesis.coinbase.miner, genesis.header.time,
             genesis.serialize()),
        )
        if beacon_snapshot is not None:
            await self._insert_beacon_snapshot(db, chain_id, 0, beacon_snapshot)
        # Genesis allocations (a pos chain mints nothing by mining).
        await db.executemany(
            "INSERT INTO accounts (chain_id, pubkey, balance, nonce) VALUES (?, ?, ?, ?)",
            [(chain_id, key, acc.balance, acc.nonce) for key, acc in (accounts or {}).items()],
        )

    async def delete_chain(self, chain_id: int) -> None:
        """Remove a chain and everything of it except wallets, server settings and undelivered events.

        Validator keys, their slashing protection records and validator settings
        go too: a vote's signing root names the chain id, not the genesis, so a
        key that outlived a reset could have an old vote paired with a new one as
        evidence, or (with its record kept) be refused honest votes on the new
        chain until it passed the old epochs.  A new chain gets new keys.
        """
        async with self._transaction() as db:
            await self._delete_chain(db, chain_id)

    async def _delete_chain(self, db: aiosqlite.Connection, chain_id: int) -> None:
        await db.execute("DELETE FROM chains WHERE chain_id = ?", (chain_id,))
        await db.execute("DELETE FROM energy WHERE chain_id = ?", (chain_id,))
        await db.execute("DELETE FROM validator_keys WHERE chain_id = ?", (chain_id,))
        await db.execute("DELETE FROM slashing_protection WHERE chain_id = ?", (chain_id,))
        await db.execute("DELETE FROM validator_settings WHERE chain_id = ?", (chain_id,))

    async def chain_ids(self) -> list[int]:
        rows = await (await self._db.execute("SELECT chain_id FROM chains ORDER BY chain_id")).fetchall()
        return [r[0] for r in rows]

    async def load_chain(self, chain_id: int) -> StoredChain:
        row = await (
            await self._db.execute("SELECT params, consensus FROM chains WHERE chain_id = ?", (chain_id,))
        ).fetchone()
        if row is None:
            raise ChainNotFoundError(f"there is no chain {chain_id}")
        params = ChainParams.from_json(row[0])
        consensus = None if row[1] is None else ConsensusConfig.from_json(row[1])
        blocks = [b async for b in self.iter_blocks(chain_id)]
        rows = await (
            await self._db.execute("SELECT pubkey, balance, nonce FROM accounts WHERE chain_id = ?", (chain_id,))
        ).fetchall()
        accounts = {r[0]: Account(r[1], r[2]) for r in rows}
        rows = await (
            await self._db.execute(
                "SELECT txid, arrival, raw FROM mempool WHERE chain_id = ? ORDER BY arrival", (chain_id,)
            )
        ).fetchall()
        mempool = [PendingTransfer(deserialize_transfer(r[2])[0], r[0], r[1]) for r in rows]
        rows = await (
            await self._db.execute(
                "SELECT height, params FROM param_changes WHERE chain_id = ? ORDER BY height", (chain_id,)
            )
        ).fetchall()
        changes = [(r[0], ChainParams.from_json(r[1])) for r in rows if r[0] is not None]
        proposed = next((ChainParams.from_json(r[1]) for r in rows if r[0] is None), None)
        rows = await (
            await self._db.execute(
                "SELECT height, consensus FROM consensus_changes WHERE chain_id = ? ORDER BY height", (chain_id,)
            )
        ).fetchall()
        schedules = [(r[0], ConsensusConfig.from_json(r[1])) for r in rows if r[0] is not None]
        proposed_consensus = next((ConsensusConfig.from_json(r[1]) for r in rows if r[0] is None), None)
        rows = await (
            await self._db.execute(
                "SELECT op_id, kind, raw, arrival FROM op_pool WHERE chain_id = ? ORDER BY arrival", (chain_id,)
            )
        ).fetchall()
        operations = [PooledOperation(r[0], r[1], deserialize_operation(r[1], r[2]), r[3]) for r in rows]
        return StoredChain(
            chain_id, params, blocks, accounts, mempool, changes, proposed,
            consensus, schedules, proposed_consensus, operations,
        )

    async def load_chain_head(self, chain_id: int) -> StoredChainHead:
        """Everything startup needs of a chain, read in one transaction (one instant of the chain):
        current tables, the genesis and tip blocks, the recent headers, the newest beacon snapshot
        and the blocks mined per miner.  Reads a bounded number of blocks whatever the chain's length."""
        async with self._lock:
            await self._db.execute("BEGIN")
            try:
                return await self._load_chain_head(chain_id)
            finally:
                await self._db.execute("COMMIT")

    async def _load_chain_head(self, chain_id: int) -> StoredChainHead:
        db = self._db
        row = await (
            await db.execute("SELECT params, consensus FROM chains WHERE chain_id = ?", (chain_id,))
        ).fetchone()
        if row is None:
            raise ChainNotFoundError(f"there is no chain {chain_id}")
        params = ChainParams.from_json(row[0])
        consensus = None if row[1] is None else ConsensusConfig.from_json(row[1])
        rows = await (
            await db.execute(
                "SELECT height, params FROM param_changes WHERE chain_id = ? ORDER BY height", (chain_id,)
            )
        ).fetchall()
        changes = [(r[0], ChainParams.from_json(r[1])) for r in rows if r[0] is not None]
        proposed = next((ChainParams.from_json(r[1]) for r in rows if r[0] is None), None)
        rows = await (
            await db.execute(
                "SELECT height, consensus FROM consensus_changes WHERE chain_id = ? ORDER BY height", (chain_id,)
            )
        ).fetchall()
        schedules = [(r[0], ConsensusConfig.from_json(r[1])) for r in rows if r[0] is not None]
        proposed_consensus = next((ConsensusConfig.from_json(r[1]) for r in rows if r[0] is None), None)
        tip_height = await self._tip_height(db, chain_id)
        genesis = await self._block_at(db, chain_id, 0)
        tip_block = genesis if tip_height == 0 else await self._block_at(db, chain_id, tip_height)
        count = compute_history_blocks(params, proposed, *(p for _, p in changes))
        recent = await self._headers_between(db, chain_id, max(1, tip_height - count + 1), tip_height + 1)
        rows = await (
            await db.execute("SELECT pubkey, balance, nonce FROM accounts WHERE chain_id = ?", (chain_id,))
        ).fetchall()
        accounts = {r[0]: Account(r[1], r[2]) for r in rows}
        rows = await (
            await db.execute(
                "SELECT txid, arrival, raw FROM mempool WHERE chain_id = ? ORDER BY arrival", (chain_id,)
            )
        ).fetchall()
        mempool = [PendingTransfer(deserialize_transfer(r[2])[0], r[0], r[1]) for r in rows]
        rows = await (
            await db.execute(
                "SELECT op_id, kind, raw, arrival FROM op_pool WHERE chain_id = ? ORDER BY arrival", (chain_id,)
            )
        ).fetchall()
        operations = [PooledOperation(r[0], r[1], deserialize_operation(r[1], r[2]), r[3]) for r in rows]
        row = await (
            await db.execute(
                "SELECT height, blob FROM beacon_snapshots WHERE chain_id = ? ORDER BY height DESC LIMIT 1",
                (chain_id,),
            )
        ).fetchone()
        snapshot = (int(row[0]), bytes(row[1])) if row else None
        rows = await (
            await db.execute(
                "SELECT miner, COUNT(*) FROM blocks WHERE chain_id = ? AND height > 0 GROUP BY miner", (chain_id,)
            )
        ).fetchall()
        return StoredChainHead(
            chain_id, params, genesis, tip_height, tip_block, recent, accounts, mempool, changes, proposed,
            consensus, schedules, proposed_consensus, operations, snapshot, {r[0]: r[1] for r in rows},
        )

    async def _tip_height(self, db: aiosqlite.Connection, chain_id: int) -> int:
        row = await (await db.execute("SELECT MAX(height) FROM blocks WHERE chain_id = ?", (chain_id,))).fetchone()
        if row[0] is None:
            raise ChainNotFoundError(f"there is no chain {chain_id}")
        return int(row[0])

    async def _block_at(self, db: aiosqlite.Connection, chain_id: int, height: int) -> Block:
        row = await (
            await db.execute("SELECT raw FROM blocks WHERE chain_id = ? AND height = ?", (chain_id, height))
        ).fetchone()
        if row is None:
            raise BlockNotFoundError(f"chain {chain_id} has no block {height}")
        return Block.deserialize(bytes(row[0]))

    async def _headers_between(
        self, db: aiosqlite.Connection, chain_id: int, start: int, stop: int
    ) -> list[tuple[BlockHeader, bytes]]:
        # The header is the first 80 bytes of a stored block: read those, not the transfers.
        rows = await (
            await db.execute(
                "SELECT height, hash, substr(raw, 1, ?) FROM blocks WHERE chain_id = ? AND height >= ? "
                "AND height < ? ORDER BY height",
                (HEADER_SIZE_BYTES, chain_id, start, stop),
            )
        ).fetchall()
        if len(rows) != max(0, stop - start):
            raise BlockNotFoundError(f"chain {chain_id} is missing blocks between {start} and {stop - 1}")
        headers = []
        for height, block_hash, raw in rows:
            header = BlockHeader.deserialize(bytes(raw))
            if header.hash() != block_hash:
                raise EncodingError(f"stored block {height} of chain {chain_id} does not match its hash")
            headers.append((header, bytes(block_hash)))
        return headers

    async def headers_between(self, chain_id: int, start: int, stop: int) -> list[tuple[BlockHeader, bytes]]:
        """(header, hash) of blocks ``start..stop - 1``, oldest first (every one must exist)."""
        return await self._headers_between(self._db, chain_id, start, stop)

    async def headers_at(self, chain_id: int, heights: Iterable[int]) -> dict[int, BlockHeader]:
        """The headers of the blocks at ``heights`` that exist."""
        wanted = sorted(set(heights))
        found: dict[int, BlockHeader] = {}
        for first in range(0, len(wanted), _MAX_BOUND_PARAMETERS):
            batch = wanted[first:first + _MAX_BOUND_PARAMETERS]
            rows = await (
                await self._db.execute(
                    f"SELECT height, substr(raw, 1, ?) FROM blocks WHERE chain_id = ? AND height IN "
                    f"({', '.join('?' * len(batch))})",
                    (HEADER_SIZE_BYTES, chain_id, *batch),
                )
            ).fetchall()
            found.update((r[0], BlockHeader.deserialize(bytes(r[1]))) for r in rows)
        return found

    async def block_hashes(self, chain_id: int, heights: Iterable[int]) -> dict[int, bytes]:
        """Height -> hash of the blocks at ``heights`` that exist."""
        wanted = sorted(set(heights))
        found: dict[int, bytes] = {}
        for first in range(0, len(wanted), _MAX_BOUND_PARAMETERS):
            batch = wanted[first:first + _MAX_BOUND_PARAMETERS]
            rows = await (
                await self._db.execute(
                    f"SELECT height, hash FROM blocks WHERE chain_id = ? AND height IN ({', '.join('?' * len(batch))})",
                    (chain_id, *batch),
                )
            ).fetchall()
            found.update((r[0], bytes(r[1])) for r in rows)
        return found

    async def find_blocks_by_hash_prefix(
        self, chain_id: int, prefix: str, limit: int
    ) -> tuple[int, list[tuple[int, bytes]]]:
        """Blocks whose hash, as shown (``hash_to_display``), starts with the hex ``prefix``:
        how many there are, and up to ``limit`` of them as (height, hash), newest first.

        A range of the display-order hash column: the index finds it without reading the chain.
        """
        low, high = _display_prefix_range(prefix)
        where = "chain_id = ? AND display_hash >= ?" + (" AND display_hash < ?" if high is not None else "")
        args: tuple[Any, ...] = (chain_id, low) if high is None else (chain_id, low, high)
        row = await (await self._db.execute(f"SELECT COUNT(*) FROM blocks WHERE {where}", args)).fetchone()
        rows = await (
            await self._db.execute(
                f"SELECT height, hash FROM blocks WHERE {where} ORDER BY height DESC LIMIT ?", (*args, limit)
            )
        ).fetchall()
        return int(row[0]), [(r[0], bytes(r[1])) for r in rows]

    async def replace_beacon_snapshot(self, chain_id: int, height: int, blob: bytes) -> None:
        """Store the snapshot of block ``height`` as the chain's only one, if that block is still the tip
        (written after a replay rebuilt a state that had none)."""
        async with self._transaction() as db:
            if await self._tip_height(db, chain_id) != height:
                raise StaleBlockError(f"block {height} is no longer the tip of chain {chain_id}")
            await db.execute("DELETE FROM beacon_snapshots WHERE chain_id = ?", (chain_id,))
            await self._insert_beacon_snapshot(db, chain_id, height, blob)

    async def iter_blocks(self, chain_id: int, start: int = 0, stop: int | None = None) -> AsyncIterator[Block]:
        """Blocks ``start..stop - 1`` (to the tip without ``stop``), oldest first."""
        if stop is None:
            cursor = await self._db.execute(
                "SELECT raw FROM blocks WHERE chain_id = ? AND height >= ? ORDER BY height", (chain_id, start)
            )
        else:
            cursor = await self._db.execute(
                "SELECT raw FROM blocks WHERE chain_id = ? AND height >= ? AND height < ? ORDER BY height",
                (chain_id, start, stop),
            )
        async for row in cursor:
            yield Block.deserialize(row[0])

    async def latest_block_time(self, chain_id: int) -> int:
        """The latest time any stored block of the chain carries."""
        row = await (await self._db.execute("SELECT MAX(time) FROM blocks WHERE chain_id = ?", (chain_id,))).fetchone()
        if row[0] is None:
            raise ChainNotFoundError(f"there is no chain {chain_id}")
        return int(row[0])

    async def tip_height(self, chain_id: int) -> int:
        row = await (
            await self._db.execute("SELECT MAX(height) FROM blocks WHERE chain_id = ?", (chain_id,))
        ).fetchone()
        if row[0] is None:
            raise ChainNotFoundError(f"there is no chain {chain_id}")
        return int(row[0])

    # --- blocks ---------------------------------------------------------------

    async def append_block(
        self,
        chain_id: int,
        block: Block,
        effects: BlockEffects,
        removed_from_mempool: Sequence[bytes],
        now: int,
        *,
        beacon_snapshot: bytes | None = None,
        included_operations: Sequence[bytes] = (),
    ) -> list[int]:
        """Block, balances, index, mempool clean-up, events and beacon snapshot: one transaction.

        Returns the outbox ids of the events.  Refuses if the stored tip is not
        the block's parent, so two writers can never both extend one tip.
        ``beacon_snapshot``, when given, is the proof-of-stake state after this
        block (opaque bytes); it commits with the block or not at all, and the
        chain's older snapshots are deleted in the same commit.
        """
        async with self._transaction() as db:
            row = await (
                await db.execute(
                    "SELECT height, hash FROM blocks WHERE chain_id = ? ORDER BY height DESC LIMIT 1", (chain_id,)
                )
            ).fetchone()
            if row is None:
                raise ChainNotFoundError(f"there is no chain {chain_id}")
            if row[0] != effects.height - 1 or row[1] != block.header.prev_hash:
                raise StaleBlockError(f"stored tip is block {row[0]}; block {effects.height} does not extend it")
            await db.execute(
                "INSERT INTO blocks (chain_id, height, hash, display_hash, miner, time, raw) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (chain_id, effects.height, effects.block_hash, effects.block_hash[::-1], block.coinbase.miner,
                 block.header.time, block.serialize()),
            )
            await db.executemany(
                "INSERT INTO accounts (chain_id, pubkey, balance, nonce) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (chain_id, pubkey) DO UPDATE SET balance = excluded.balance, nonce = excluded.nonce",
                [(chain_id, key, acc.balance, acc.nonce) for key, acc in effects.accounts.items()],
            )
            txids = block.txids()
            rows = [
                (chain_id, txids[0], txids[0][::-1], effects.height, 0, None, block.coinbase.miner,
                 block.coinbase.amount, 0)
            ]
            rows += [
                (chain_id, txids[i + 1], txids[i + 1][::-1], effects.height, i + 1, tx.sender, tx.recipient,
                 tx.amount, tx.fee)
                for i, tx in enumerate(block.transfers)
            ]
            await db.executemany(
                "INSERT INTO transactions (chain_id, txid, display_txid, height, position, sender, recipient, "
                "amount, fee) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            await db.executemany(
                "DELETE FROM mempool WHERE chain_id = ? AND txid = ?", [(chain_id, t) for t in removed_from_mempool]
            )
            if effects.params_change is not None:
                await db.execute("DELETE FROM param_changes WHERE chain_id = ? AND height IS NULL", (chain_id,))
                await db.execute(
                    "INSERT INTO param_changes (chain_id, height, params) VALUES (?, ?, ?)",
                    (chain_id, effects.height, effects.params_change.to_json()),
                )
            if effects.consensus_change is not None:
                await db.execute("DELETE FROM consensus_changes WHERE chain_id = ? AND height IS NULL", (chain_id,))
                await db.execute(
                    "INSERT INTO consensus_changes (chain_id, height, consensus) VALUES (?, ?, ?)",
                    (chain_id, effects.height, effects.consensus_change.to_json()),
                )
            await db.executemany(
                "DELETE FROM op_pool WHERE chain_id = ? AND op_id = ?", [(chain_id, i) for i in included_operations]
            )
            if beacon_snapshot is not None:
                await self._insert_beacon_snapshot(db, chain_id, effects.height, beacon_snapshot)
                # Startup reads only the newest; older ones would grow the table by a state per block.
                await db.execute(
                    "DELETE FROM beacon_snapshots WHERE chain_id = ? AND height < ?", (chain_id, effects.height)
                )
            await db.executemany(
                "INSERT INTO stake_history (chain_id, height, seq, wallet, kind, payload) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (chain_id, effects.height, seq, bytes.fromhex(e.payload[STAKE_HISTORY_WALLET_KEYS[e.kind]]),
                     e.kind, e.payload_json())
                    for seq, e in enumerate(effects.events)
                    if e.kind in STAKE_HISTORY_WALLET_KEYS
                ],
            )
            return await self._insert_events(db, chain_id, effects.events, now)

    async def get_block(self, chain_id: int, *, height: int | None = None, block_hash: bytes | None = None) -> Block:
        if height is not None:
            query, arg = "SELECT raw FROM blocks WHERE chain_id = ? AND height = ?", height
        elif block_hash is not None:
            query, arg = "SELECT raw FROM blocks WHERE chain_id = ? AND hash = ?", block_hash
        else:
            raise ValueError("give a height or a hash")
        row = await (await self._db.execute(query, (chain_id, arg))).fetchone()
        if row is None:
            raise BlockNotFoundError("no such block in this chain")
        return Block.deserialize(row[0])

    # --- transactions -----------------------------------------------------------

    async def get_transaction(self, chain_id: int, txid: bytes) -> StoredTransaction | None:
        row = await (
            await self._db.execute(
                "SELECT chain_id, txid, height, position, sender, recipient, amount, fee FROM transactions "
                "WHERE chain_id = ? AND txid = ?",
                (chain_id, txid),
            )
        ).fetchone()
        return StoredTransaction(*row) if row else None

    async def find_transactions_by_txid_prefix(
        self, chain_id: int, prefix: str, limit: int
    ) -> tuple[int, list[StoredTransaction]]:
        """Confirmed transactions whose id, as shown (``hash_to_display``), starts with the hex
        ``prefix``: how many there are, and up to ``limit`` of them, newest first (an index range)."""
        low, high = _display_prefix_range(prefix)
        where = "chain_id = ? AND display_txid >= ?" + (" AND display_txid < ?" if high is not None else "")
        args: tuple[Any, ...] = (chain_id, low) if high is None else (chain_id, low, high)
        row = await (await self._db.execute(f"SELECT COUNT(*) FROM transactions WHERE {where}", args)).fetchone()
        rows = await (
            await self._db.execute(
                "SELECT chain_id, txid, height, position, sender, recipient, amount, fee FROM transactions "
                f"WHERE {where} ORDER BY height DESC, position DESC LIMIT ?",
                (*args, limit),
            )
        ).fetchall()
        return int(row[0]), [StoredTransaction(*r) for r in rows]

    async def recent_transactions(self, chain_id: int, limit: int) -> list[StoredTransaction]:
        """The chain's newest confirmed transactions, newest first; coinbases that paid nothing (a
        proof-of-stake block's) are left out, as in ``history``."""
        rows = await (
            await self._db.execute(
                "SELECT chain_id, txid, height, position, sender, recipient, amount, fee FROM transactions "
                "WHERE chain_id = ? AND NOT (sender IS NULL AND amount = 0) "
                "ORDER BY height DESC, position DESC LIMIT ?",
                (chain_id, limit),
            )
        ).fetchall()
        return [StoredTransaction(*r) for r in rows]

    async def history(self, chain_id: int, pubkey: bytes, limit: int) -> list[StoredTransaction]:
        """A wallet's newest transactions; coinbases that paid nothing (a proposed block without
        fees) are left out, so they cannot push real payments out of the last ``limit``."""
        rows = await (
            await self._db.execute(
                "SELECT chain_id, txid, height, position, sender, recipient, amount, fee FROM transactions "
                "WHERE chain_id = ? AND (sender = ? OR recipient = ?) AND (sender IS NOT NULL OR amount > 0) "
                "ORDER BY height DESC, position DESC LIMIT ?",
                (chain_id, pubkey, pubkey, limit),
            )
        ).fetchall()
        return [StoredTransaction(*r) for r in rows]

    async def stake_history(self, chain_id: int, wallet: bytes, limit: int) -> list[StoredStakeEntry]:
        """What staking did to ``wallet``, newest first: deposits, stake paid back, slashing penalties."""
        rows = await (
            await self._db.execute(
                "SELECT height, seq, kind, payload FROM stake_history WHERE chain_id = ? AND wallet = ? "
                "ORDER BY height DESC, seq DESC LIMIT ?",
                (chain_id, wallet, limit),
            )
        ).fetchall()
        return [StoredStakeEntry(r[0], r[1], r[2], json.loads(r[3])) for r in rows]

    async def add_to_mempool(
        self, chain_id: int, admission: Admission, *, faucet_claim: tuple[str, int] | None = None
    ) -> None:
        """Pool a transfer; with ``faucet_claim`` (owner, time) it is that member's faucet payout,
        and the claim is recorded in the same transaction: never one without the other."""
        async with self._transaction() as db:
            if faucet_claim is not None:
                await db.execute(
                    "INSERT INTO faucet_claims (chain_id, owner, claimed_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (chain_id, owner) DO UPDATE SET claimed_at = excluded.claimed_at",
                    (chain_id, *faucet_claim),
                )
            gone = [e for e in (admission.replaced, *admission.evicted) if e is not None]
            await db.executemany(
                "DELETE FROM mempool WHERE chain_id = ? AND txid = ?", [(chain_id, e.txid) for e in gone]
            )
            entry = admission.entry
            await db.execute(
                "INSERT INTO mempool (chain_id, txid, arrival, raw) VALUES (?, ?, ?, ?)",
                (chain_id, entry.txid, entry.arrival, entry.tx.serialize()),
            )

    async def faucet_claimed_at(self, chain_id: int, owner: str) -> int | None:
        """When ``owner`` last claimed from this chain's faucet, or None."""
        row = await (
            await self._db.execute(
                "SELECT claimed_at FROM faucet_claims WHERE chain_id = ? AND owner = ?", (chain_id, owner)
            )
        ).fetchone()
        return None if row is None else int(row[0])

    async def remove_from_mempool(self, chain_id: int, txids: Iterable[bytes]) -> None:
        async with self._transaction() as db:
            await db.executemany("DELETE FROM mempool WHERE chain_id = ? AND txid = ?", [(chain_id, t) for t in txids])

    # --- master key check ------------------------------------------------------

    async def key_check(self) -> bytes | None:
        row = await (await self._db.execute("SELECT sealed FROM key_check WHERE id = 1")).fetchone()
        return row[0] if row else None

    async def record_key_check(self, sealed: bytes, now: int) -> bytes:
        """Store the key check unless one is stored already; return the one that is stored."""
        async with self._transaction() as db:
            await db.execute(
                "INSERT INTO key_check (id, sealed, created_at) VALUES (1, ?, ?) ON CONFLICT (id) DO NOTHING",
                (sealed, now),
            )
            row = await (await db.execute("SELECT sealed FROM key_check WHERE id = 1")).fetchone()
        return row[0]

    # --- wallets ----------------------------------------------------------------

    async def get_wallet(self, chain_id: int, owner: str) -> StoredWallet | None:
        row = await (
            await self._db.execute(
                "SELECT owner, pubkey, sealed_key FROM wallets WHERE chain_id = ? AND owner = ?", (chain_id, owner)
            )
        ).fetchone()
        return StoredWallet(*row) if row else None

    async def wallets(self, chain_id: int) -> list[StoredWallet]:
        rows = await (
            await self._db.execute(
                "SELECT owner, pubkey, sealed_key FROM wallets WHERE chain_id = ? ORDER BY created_at", (chain_id,)
            )
        ).fetchall()
        return [StoredWallet(*r) for r in rows]

    async def insert_wallet(self, chain_id: int, wallet: StoredWallet, now: int) -> StoredWallet:
        """Insert unless the owner already has one; return the wallet that is stored."""
        async with self._transaction() as db:
            await db.execute(
                "INSERT INTO wallets (chain_id, owner, pubkey, sealed_key, created_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (chain_id, owner) DO NOTHING",
                (chain_id, wallet.owner, wallet.pubkey, wallet.sealed_key, now),
            )
            row = await (
                await db.execute(
                    "SELECT owner, pubkey, sealed_key FROM wallets WHERE chain_id = ? AND owner = ?",
                    (chain_id, wallet.owner),
                )
            ).fetchone()
        return StoredWallet(*row)

    # --- outbox -----------------------------------------------------------------

    async def _insert_events(
        self, db: aiosqlite.Connection, chain_id: int, events: Iterable[ChainEvent], now: int
    ) -> list[int]:
        ids = []
        for event in events:
            cursor = await db.execute(
                "INSERT INTO outbox (chain_id, kind, payload, created_at) VALUES (?, ?, ?, ?)",
                (chain_id, event.kind, event.payload_json(), now),
            )
            ids.append(int(cursor.lastrowid))
        return ids

    async def pending_events(self, chain_id: int | None = None, limit: int = 100) -> list[OutboxEvent]:
        if chain_id is None:
            cursor = await self._db.execute(
                "SELECT id, chain_id, kind, payload, created_at FROM outbox WHERE delivered_at IS NULL "
                "ORDER BY id LIMIT ?",
                (limit,),
            )
        else:
            cursor = await self._db.execute(
                "SELECT id, chain_id, kind, payload, created_at FROM outbox WHERE delivered_at IS NULL "
                "AND chain_id = ? ORDER BY id LIMIT ?",
                (chain_id, limit),
            )
        rows = await cursor.fetchall()
        return [OutboxEvent(r[0], r[1], r[2], json.loads(r[3]), r[4]) for r in rows]

    async def mark_delivered(self, event_ids: Iterable[int], now: int) -> None:
        async with self._transaction() as db:
            await db.executemany(
                "UPDATE outbox SET delivered_at = ? WHERE id = ? AND delivered_at IS NULL",
                [(now, i) for i in event_ids],
            )

    async def prune_delivered_events(self, delivered_before: int, limit: int) -> int:
        """Delete up to ``limit`` events delivered before ``delivered_before``, oldest first; how
        many went.  Undelivered events are never deleted, however old."""
        async with self._transaction() as db:
            cursor = await db.execute(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE delivered_at IS NOT NULL "
                "AND delivered_at < ? ORDER BY delivered_at LIMIT ?)",
                # A negative LIMIT means none to SQLite: one pass must stay bounded.
                (delivered_before, max(1, limit)),
            )
            return cursor.rowcount

    async def all_events(self, chain_id: int) -> list[OutboxEvent]:
        rows = await (
            await self._db.execute(
                "SELECT id, chain_id, kind, payload, created_at FROM outbox WHERE chain_id = ? ORDER BY id",
                (chain_id,),
            )
        ).fetchall()
        return [OutboxEvent(r[0], r[1], r[2], json.loads(r[3]), r[4]) for r in rows]

    async def backlog(self) -> dict[int, int]:
        """Undelivered events per chain."""
        rows = await (
            await self._db.execute(
                "SELECT chain_id, COUNT(*) FROM outbox WHERE delivered_at IS NULL GROUP BY chain_id"
            )
        ).fetchall()
        return {r[0]: r[1] for r in rows}

    # --- webhooks ---------------------------------------------------------------

    async def set_webhook(self, webhook: StoredWebhook, now: int) -> None:
        async with self._transaction() as db:
            await db.execute(
                "INSERT INTO webhooks (chain_id, channel_id, webhook_id, sealed_url, disabled_reason, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (chain_id) DO UPDATE SET channel_id = excluded.channel_id, "
                "webhook_id = excluded.webhook_id, sealed_url = excluded.sealed_url, "
                "disabled_reason = excluded.disabled_reason, updated_at = excluded.updated_at",
                (
                    webhook.chain_id,
                    webhook.channel_id,
                    webhook.webhook_id,
                    webhook.sealed_url,
                    webhook.disabled_reason,
                    now,
                ),
            )

    async def disable_webhook(self, chain_id: int, webhook_id: int, reason: str, now: int) -> None:
        async with self._transaction() as db:
            await db.execute(
                "UPDATE webhooks SET disabled_reason = ?, updated_at = ? WHERE chain_id = ? AND webhook_id = ?",
                (reason, now, chain_id, webhook_id),
            )

    async def webhooks(self) -> list[StoredWebhook]:
        rows = await (
            await self._db.execute(
                "SELECT chain_id, channel_id, webhook_id, sealed_url, disabled_reason FROM webhooks ORDER BY chain_id"
            )
        ).fetchall()
        return [StoredWebhook(*r) for r in rows]

    async def get_webhook(self, chain_id: int) -> StoredWebhook | None:
        row = await (
            await self._db.execute(
                "SELECT chain_id, channel_id, webhook_id, sealed_url, disabled_reason FROM webhooks "
                "WHERE chain_id = ?",
                (chain_id,),
            )
        ).fetchone()
        return StoredWebhook(*row) if row else None

    # --- server settings --------------------------------------------------------

    async def get_server_settings(self, chain_id: int) -> dict[str, Any]:
        row = await (
            await self._db.execute("SELECT settings FROM server_settings WHERE chain_id = ?", (chain_id,))
        ).fetchone()
        return json.loads(row[0]) if row else {}

    async def set_server_settings(self, chain_id: int, settings: dict[str, Any]) -> None:
        async with self._transaction() as db:
            await db.execute(
                "INSERT INTO server_settings (chain_id, settings) VALUES (?, ?) "
                "ON CONFLICT (chain_id) DO UPDATE SET settings = excluded.settings",
                (chain_id, json.dumps(settings, sort_keys=True)),
            )

    async def get_chaos_mode(self, chain_id: int) -> bool:
        """Whether admins let members sign conflicting messages (``chaos`` in the server settings)."""
        return bool((await self.get_server_settings(chain_id)).get("chaos", False))

    async def set_chaos_mode(self, chain_id: int, enabled: bool) -> None:
        """Turn chaos mode on or off, keeping the other server settings (read and write: one transaction)."""
        async with self._transaction() as db:
            row = await (
                await db.execute("SELECT settings FROM server_settings WHERE chain_id = ?", (chain_id,))
            ).fetchone()
            settings = {**(json.loads(row[0]) if row else {}), "chaos": bool(enabled)}
            await db.execute(
                "INSERT INTO server_settings (chain_id, settings) VALUES (?, ?) "
                "ON CONFLICT (chain_id) DO UPDATE SET settings = excluded.settings",
                (chain_id, json.dumps(settings, sort_keys=True)),
            )

    # --- the epoch message --------------------------------------------------------

    async def get_epoch_message(self, chain_id: int) -> EpochMessage | None:
        """The message showing the chain's running epoch, as the slot driver last recorded it."""
        row = await (
            await self._db.execute(
                "SELECT channel_id, message_id, epoch FROM epoch_messages WHERE chain_id = ?", (chain_id,)
            )
        ).fetchone()
        return None if row is None else EpochMessage(chain_id, row[0], row[1], row[2])

    async def set_epoch_message(self, message: EpochMessage, now: int) -> None:
        """Record (replacing any other) the message that shows the chain's running epoch."""
        async with self._transaction() as db:
            await db.execute(
                "INSERT INTO epoch_messages (chain_id, channel_id, message_id, epoch, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (chain_id) DO UPDATE SET channel_id = excluded.channel_id, "
                "message_id = excluded.message_id, epoch = excluded.epoch, updated_at = excluded.updated_at",
                (message.chain_id, message.channel_id, message.message_id, message.epoch, now),
            )

    # --- consistent reads -------------------------------------------------------

    @contextmanager
    def read_snapshot(self, chain_id: int) -> Iterator[ChainSnapshot]:
        """The chain at one instant, read without the store's lock: blocks, so call it in a worker thread.

        A read-only connection of its own, opened, used and closed in the calling
        thread, inside one read transaction: WAL gives it a consistent snapshot
        while this store's writers (for this chain or any other) go on
        committing.  Long reads hold back WAL checkpoints, not writes.
        """
        if self._path is None:
            raise SnapshotUnavailableError("an in-memory database cannot be read from a second connection")
        db = sqlite3.connect(f"{self._path.as_uri()}?mode=ro", uri=True, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout=5000")
            db.execute("BEGIN")
            try:
                yield ChainSnapshot(db, chain_id)
            finally:
                db.execute("COMMIT")
        finally:
            db.close()

    # --- rule changes -----------------------------------------------------------

    async def set_proposed_params(self, chain_id: int, params: ChainParams | None) -> None:
        """Record (or with None, withdraw) the rules the next block will commit to."""
        async with self._transaction() as db:
            await db.execute("DELETE FROM param_changes WHERE chain_id = ? AND height IS NULL", (chain_id,))
            if params is not None:
                await db.execute(
                    "INSERT INTO param_changes (chain_id, height, params) VALUES (?, NULL, ?)",
                    (chain_id, params.to_json()),
                )

    async def set_proposed_consensus(self, chain_id: int, consensus: ConsensusConfig | None) -> None:
        """Record (or with None, withdraw) the Merge schedule the next block will commit to."""
        async with self._transaction() as db:
            await db.execute("DELETE FROM consensus_changes WHERE chain_id = ? AND height IS NULL", (chain_id,))
            if consensus is not None:
                await db.execute(
                    "INSERT INTO consensus_changes (chain_id, height, consensus) VALUES (?, NULL, ?)",
                    (chain_id, consensus.to_json()),
                )

    # --- operation pool ---------------------------------------------------------

    async def add_operation(
        self, chain_id: int, entry: PooledOperation, *, verify_ops: int = 0,
        validator_key: StoredValidatorKey | None = None, now: int = 0,
    ) -> None:
        """Persist one pooled operation in one transaction (a repeat is a no-op), counting the
        signature checks it took for the energy figures in the same commit.

        ``validator_key``: a member's first deposit brings the new validator key it is signed
        with, stored (created at ``now``) in the same commit, so a deposit refused on the way
        leaves no key behind, and a pooled deposit never lacks its key.  A plain INSERT: if the
        owner somehow has a key already, nothing is committed (the deposit was signed by another).
        """
        async with self._transaction() as db:
            if validator_key is not None:
                await db.execute(
                    "INSERT INTO validator_keys (chain_id, owner, pubkey, sealed_key, created_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (chain_id, validator_key.owner, validator_key.pubkey, validator_key.sealed_key, now),
                )
            await db.execute(
                "INSERT INTO op_pool (chain_id, op_id, kind, raw, arrival) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (chain_id, op_id) DO NOTHING",
                (chain_id, entry.op_id, entry.kind, entry.serialize(), entry.arrival),
            )
            if verify_ops:
                await self._add_energy(db, chain_id, 0, 0, verify_ops)

    async def remove_operations(self, chain_id: int, op_ids: Sequence[bytes]) -> None:
        async with self._transaction() as db:
            await db.executemany(
                "DELETE FROM op_pool WHERE chain_id = ? AND op_id = ?", [(chain_id, i) for i in op_ids]
            )

    # --- beacon snapshots -------------------------------------------------------

    async def _insert_beacon_snapshot(self, db: aiosqlite.Connection, chain_id: int, height: int, blob: bytes) -> None:
        if not isinstance(blob, bytes):
            raise TypeError(f"a beacon snapshot is bytes, got {type(blob).__name__}")
        await db.execute(
            "INSERT INTO beacon_snapshots (chain_id, height, blob) VALUES (?, ?, ?)", (chain_id, height, blob)
        )

    async def latest_beacon_snapshot(self, chain_id: int) -> tuple[int, bytes] | None:
        """The newest snapshot of the chain as ``(height, blob)``, or None if it has none."""
        row = await (
            await self._db.execute(
                "SELECT height, blob FROM beacon_snapshots WHERE chain_id = ? ORDER BY height DESC LIMIT 1",
                (chain_id,),
            )
        ).fetchone()
        return (int(row[0]), bytes(row[1])) if row else None

    async def get_beacon_snapshot(self, chain_id: int, height: int) -> bytes | None:
        row = await (
            await self._db.execute(
                "SELECT blob FROM beacon_snapshots WHERE chain_id = ? AND height = ?", (chain_id, height)
            )
        ).fetchone()
        return bytes(row[0]) if row else None

    async def prune_beacon_snapshots(self, chain_id: int, below_height: int) -> int:
        """Delete the chain's snapshots below a height (one per block adds up); returns how many."""
        async with self._transaction() as db:
            cursor = await db.execute(
                "DELETE FROM beacon_snapshots WHERE chain_id = ? AND height < ?", (chain_id, below_height)
            )
            return int(cursor.rowcount)

    # --- validator keys -----------------------------------------------------------

    async def get_validator_key(self, chain_id: int, owner: str) -> StoredValidatorKey | None:
        row = await (
            await self._db.execute(
                "SELECT owner, pubkey, sealed_key FROM validator_keys WHERE chain_id = ? AND owner = ?",
                (chain_id, owner),
            )
        ).fetchone()
        return StoredValidatorKey(*row) if row else None

    async def validator_keys(self, chain_id: int) -> list[StoredValidatorKey]:
        rows = await (
            await self._db.execute(
                "SELECT owner, pubkey, sealed_key FROM validator_keys WHERE chain_id = ? ORDER BY created_at, owner",
                (chain_id,),
            )
        ).fetchall()
        return [StoredValidatorKey(*r) for r in rows]

    async def insert_validator_key(self, chain_id: int, key: StoredValidatorKey, now: int) -> StoredValidatorKey:
        """Insert unless the owner already has one on this chain; return the key that is stored."""
        async with self._transaction() as db:
            await db.execute(
                "INSERT INTO validator_keys (chain_id, owner, pubkey, sealed_key, created_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (chain_id, owner) DO NOTHING",
                (chain_id, key.owner, key.pubkey, key.sealed_key, now),
            )
            row = await (
                await db.execute(
                    "SELECT owner, pubkey, sealed_key FROM validator_keys WHERE chain_id = ? AND owner = ?",
                    (chain_id, key.owner),
                )
            ).fetchone()
        return StoredValidatorKey(*row)

    # --- slashing protection --------------------------------------------------------

    async def get_protection_record(self, chain_id: int, pubkey: bytes) -> SlashingProtectionRecord | None:
        row = await (
            await self._db.execute(
                "SELECT record FROM slashing_protection WHERE chain_id = ? AND pubkey = ?", (chain_id, pubkey)
            )
        ).fetchone()
        if row is None:
            return None
        record = decode_protection_record(row[0])
        if record.pubkey != pubkey:
            raise EncodingError(
                f"stored slashing protection record under {pubkey.hex()[:16]}… is for {record.pubkey.hex()[:16]}…"
            )
        return record

    async def save_protection_record(
        self, chain_id: int, record: SlashingProtectionRecord, now: int, *, sign_ops: int = 0
    ) -> None:
        """Store a validator's record durably (and count ``sign_ops`` signatures): one transaction.

        When this returns the record is on disk (WAL, ``synchronous=FULL``), so a
        signer may release the signatures the record covers.
        """
        async with self._transaction() as db:
            await db.execute(
                "INSERT INTO slashing_protection (chain_id, pubkey, record, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (chain_id, pubkey) DO UPDATE SET record = excluded.record, "
                "updated_at = excluded.updated_at",
                (chain_id, record.pubkey, encode_protection_record(record), now),
            )
            if sign_ops:
                await self._add_energy(db, chain_id, 0, sign_ops, 0)

    async def update_protection_record(
        self,
        chain_id: int,
        pubkey: bytes,
        update: Callable[[SlashingProtectionRecord], SlashingProtectionRecord],
        now: int,
        *,
        sign_ops: int = 0,
    ) -> SlashingProtectionRecord:
        """Read a validator's record, apply ``update``, store the result: one write transaction.

        ``update`` gets the stored record (an empty one if none) and returns the
        new one, or raises to refuse; then nothing is written. The read happens
        under SQLite's write lock (``BEGIN IMMEDIATE``), so no other writer, in
        this process or another, can store a record between the check and the
        write. When this returns the result is durable.
        """
        async with self._transaction() as db:
            row = await (
                await db.execute(
                    "SELECT record FROM slashing_protection WHERE chain_id = ? AND pubkey = ?", (chain_id, pubkey)
                )
            ).fetchone()
            current = SlashingProtectionRecord(pubkey) if row is None else decode_protection_record(row[0])
            if current.pubkey != pubkey:
                raise EncodingError(
                    f"stored slashing protection record under {pubkey.hex()[:16]}… "
                    f"is for {current.pubkey.hex()[:16]}…"
                )
            updated = update(current)
            if updated.pubkey != pubkey:
                raise ValueError("an update must not change whose record it is")
            await db.execute(
                "INSERT INTO slashing_protection (chain_id, pubkey, record, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (chain_id, pubkey) DO UPDATE SET record = excluded.record, "
                "updated_at = excluded.updated_at",
                (chain_id, pubkey, encode_protection_record(updated), now),
            )
            if sign_ops:
                await self._add_energy(db, chain_id, 0, sign_ops, 0)
        return updated

    # --- validator settings -----------------------------------------------------------

    async def get_auto_attest(self, chain_id: int, owner: str) -> bool | None:
        """The validator's auto-attest toggle, or None if it never set one."""
        row = await (
            await self._db.execute(
                "SELECT auto_attest FROM validator_settings WHERE chain_id = ? AND owner = ?", (chain_id, owner)
            )
        ).fetchone()
        return None if row is None else bool(row[0])

    async def set_auto_attest(self, chain_id: int, owner: str, auto_attest: bool) -> None:
        async with self._transaction() as db:
            await db.execute(
                "INSERT INTO validator_settings (chain_id, owner, auto_attest) VALUES (?, ?, ?) "
                "ON CONFLICT (chain_id, owner) DO UPDATE SET auto_attest = excluded.auto_attest",
                (chain_id, owner, int(bool(auto_attest))),
            )

    async def auto_attesters(self, chain_id: int) -> list[str]:
        """Owners on this chain who turned auto-attest on."""
        rows = await (
            await self._db.execute(
                "SELECT owner FROM validator_settings WHERE chain_id = ? AND auto_attest = 1 ORDER BY owner",
                (chain_id,),
            )
        ).fetchall()
        return [r[0] for r in rows]

    # --- energy counters ----------------------------------------------------------------

    async def _add_energy(
        self, db: aiosqlite.Connection, chain_id: int, pow_cpu_ns: int, pos_sign_ops: int, pos_verify_ops: int
    ) -> None:
        counts = (("pow_cpu_ns", pow_cpu_ns), ("pos_sign_ops", pos_sign_ops), ("pos_verify_ops", pos_verify_ops))
        for name, value in counts:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise EnergyError(f"{name} must be a whole number of at least 0, got {value!r}")
        await db.execute(
            "INSERT INTO energy (chain_id, pow_cpu_ns, pos_sign_ops, pos_verify_ops) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (chain_id) DO UPDATE SET pow_cpu_ns = pow_cpu_ns + excluded.pow_cpu_ns, "
            "pos_sign_ops = pos_sign_ops + excluded.pos_sign_ops, "
            "pos_verify_ops = pos_verify_ops + excluded.pos_verify_ops",
            (chain_id, pow_cpu_ns, pos_sign_ops, pos_verify_ops),
        )

    async def add_energy(
        self, chain_id: int, *, pow_cpu_ns: int = 0, pos_sign_ops: int = 0, pos_verify_ops: int = 0
    ) -> None:
        """Add to the chain's counters in one transaction (they only grow until the chain is deleted)."""
        async with self._transaction() as db:
            await self._add_energy(db, chain_id, pow_cpu_ns, pos_sign_ops, pos_verify_ops)

    async def energy(self, chain_id: int) -> EnergyCounters:
        row = await (
            await self._db.execute(
                "SELECT pow_cpu_ns, pos_sign_ops, pos_verify_ops FROM energy WHERE chain_id = ?", (chain_id,)
            )
        ).fetchone()
        return EnergyCounters(*row) if row else EnergyCounters()
