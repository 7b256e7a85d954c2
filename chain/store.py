"""The storage adapter: every SQL statement of the project lives here.

SQLite through aiosqlite, in WAL mode with ``synchronous=FULL`` so a commit
that returned survives a power cut.  Many chains (one per Discord server)
share one database, keyed by ``chain_id``.  Migrations are numbered and run
once each; statements use bound parameters only.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from chain.block import Block
from chain.errors import BlockNotFoundError, ChainExistsError, ChainNotFoundError, StaleBlockError
from chain.events import ChainEvent
from chain.ledger import Account
from chain.mempool import Admission, PendingTransfer
from chain.params import ChainParams
from chain.state import BlockEffects
from chain.transaction import deserialize_transfer

log = logging.getLogger(__name__)

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
)


_DURABILITY_PRAGMAS = {
    "journal_mode": "PRAGMA journal_mode",
    "synchronous": "PRAGMA synchronous",
    "foreign_keys": "PRAGMA foreign_keys",
}


@dataclass(frozen=True, slots=True)
class StoredChain:
    chain_id: int
    params: ChainParams
    blocks: list[Block]
    accounts: dict[bytes, Account]
    mempool: list[PendingTransfer]
    param_changes: list[tuple[int, ChainParams]]
    proposed_params: ChainParams | None


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


class Store:
    """One SQLite database; open with ``await Store.open(path)``."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        # aiosqlite serialises statements, not transactions: this lock keeps
        # each BEGIN..COMMIT whole.
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str | Path) -> Store:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(str(path), isolation_level=None)
        store = cls(db)
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=FULL")
            await db.execute("PRAGMA foreign_keys=ON")
            await db.execute("PRAGMA busy_timeout=5000")
            await store._migrate()
        except BaseException:
            await db.close()
            raise
        return store

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

    async def create_chain(self, chain_id: int, params: ChainParams, genesis: Block, now: int) -> None:
        async with self._transaction() as db:
            row = await (await db.execute("SELECT 1 FROM chains WHERE chain_id = ?", (chain_id,))).fetchone()
            if row is not None:
                raise ChainExistsError(f"chain {chain_id} already exists")
            await db.execute(
                "INSERT INTO chains (chain_id, params, genesis_hash, created_at) VALUES (?, ?, ?, ?)",
                (chain_id, params.to_json(), genesis.hash(), now),
            )
            await db.execute(
                "INSERT INTO blocks (chain_id, height, hash, miner, time, raw) VALUES (?, 0, ?, ?, ?, ?)",
                (chain_id, genesis.hash(), genesis.coinbase.miner, genesis.header.time, genesis.serialize()),
            )

    async def delete_chain(self, chain_id: int) -> None:
        """Remove a chain and everything of it except wallets and undelivered events."""
        async with self._transaction() as db:
            await db.execute("DELETE FROM chains WHERE chain_id = ?", (chain_id,))

    async def chain_ids(self) -> list[int]:
        rows = await (await self._db.execute("SELECT chain_id FROM chains ORDER BY chain_id")).fetchall()
        return [r[0] for r in rows]

    async def load_chain(self, chain_id: int) -> StoredChain:
        row = await (
            await self._db.execute("SELECT params FROM chains WHERE chain_id = ?", (chain_id,))
        ).fetchone()
        if row is None:
            raise ChainNotFoundError(f"there is no chain {chain_id}")
        params = ChainParams.from_json(row[0])
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
        return StoredChain(chain_id, params, blocks, accounts, mempool, changes, proposed)

    async def iter_blocks(self, chain_id: int, start: int = 0) -> AsyncIterator[Block]:
        cursor = await self._db.execute(
            "SELECT raw FROM blocks WHERE chain_id = ? AND height >= ? ORDER BY height", (chain_id, start)
        )
        async for row in cursor:
            yield Block.deserialize(row[0])

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
    ) -> list[int]:
        """Block, balances, index, mempool clean-up and events: one transaction.

        Returns the outbox ids of the events.  Refuses if the stored tip is not
        the block's parent, so two writers can never both extend one tip.
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
                "INSERT INTO blocks (chain_id, height, hash, miner, time, raw) VALUES (?, ?, ?, ?, ?, ?)",
                (chain_id, effects.height, effects.block_hash, block.coinbase.miner, block.header.time, block.serialize()),
            )
            await db.executemany(
                "INSERT INTO accounts (chain_id, pubkey, balance, nonce) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (chain_id, pubkey) DO UPDATE SET balance = excluded.balance, nonce = excluded.nonce",
                [(chain_id, key, acc.balance, acc.nonce) for key, acc in effects.accounts.items()],
            )
            txids = block.txids()
            rows = [(chain_id, txids[0], effects.height, 0, None, block.coinbase.miner, block.coinbase.amount, 0)]
            rows += [
                (chain_id, txids[i + 1], effects.height, i + 1, tx.sender, tx.recipient, tx.amount, tx.fee)
                for i, tx in enumerate(block.transfers)
            ]
            await db.executemany(
                "INSERT INTO transactions (chain_id, txid, height, position, sender, recipient, amount, fee) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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

    async def history(self, chain_id: int, pubkey: bytes, limit: int) -> list[StoredTransaction]:
        rows = await (
            await self._db.execute(
                "SELECT chain_id, txid, height, position, sender, recipient, amount, fee FROM transactions "
                "WHERE chain_id = ? AND (sender = ? OR recipient = ?) ORDER BY height DESC, position DESC LIMIT ?",
                (chain_id, pubkey, pubkey, limit),
            )
        ).fetchall()
        return [StoredTransaction(*r) for r in rows]

    async def add_to_mempool(self, chain_id: int, admission: Admission) -> None:
        async with self._transaction() as db:
            gone = [e for e in (admission.replaced, *admission.evicted) if e is not None]
            await db.executemany(
                "DELETE FROM mempool WHERE chain_id = ? AND txid = ?", [(chain_id, e.txid) for e in gone]
            )
            entry = admission.entry
            await db.execute(
                "INSERT INTO mempool (chain_id, txid, arrival, raw) VALUES (?, ?, ?, ?)",
                (chain_id, entry.txid, entry.arrival, entry.tx.serialize()),
            )

    async def remove_from_mempool(self, chain_id: int, txids: Iterable[bytes]) -> None:
        async with self._transaction() as db:
            await db.executemany("DELETE FROM mempool WHERE chain_id = ? AND txid = ?", [(chain_id, t) for t in txids])

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

    # --- consistent reads -------------------------------------------------------

    async def load_chain_snapshot(self, chain_id: int) -> StoredChain:
        """``load_chain`` as one read transaction: blocks and balances from the same instant.

        ``load_chain`` reads blocks and balances in separate statements, so a block
        appended in between makes the balances one block ahead of the blocks.
        Holding the lock keeps this store's writers out; the transaction keeps
        writers in other processes out of the snapshot.
        """
        async with self._lock:
            await self._db.execute("BEGIN")
            try:
                return await self.load_chain(chain_id)
            finally:
                await self._db.execute("COMMIT")

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
