"""Custodied signing keys, sealed under the master key: one ``KeyStore`` for wallet keys (the
``wallets`` table) and validator keys (``validator_keys``), which share one layout; and the
master key's check value (``key_check``)."""

from __future__ import annotations

from chain.adapters.storage.database import Database, Transaction
from chain.adapters.storage.records import StoredKey

# The tables a KeyStore may own: a closed set, so the table name in its SQL is never input.
KEY_TABLES = frozenset({"wallets", "validator_keys"})


class KeyStore:
    """Keys of one kind, one per owner per chain (``table``: ``wallets`` or ``validator_keys``)."""

    def __init__(self, db: Database, table: str) -> None:
        if table not in KEY_TABLES:
            raise ValueError(f"keys are stored in {sorted(KEY_TABLES)}, not {table!r}")
        self._db = db
        self.table = table

    async def get(self, chain_id: int, owner: str) -> StoredKey | None:
        row = await self._db.fetchone(
            f"SELECT owner, pubkey, sealed_key FROM {self.table} WHERE chain_id = ? AND owner = ?", (chain_id, owner)
        )
        return StoredKey(*row) if row else None

    async def all(self, chain_id: int) -> list[StoredKey]:
        """The chain's keys, oldest first."""
        rows = await self._db.fetchall(
            f"SELECT owner, pubkey, sealed_key FROM {self.table} WHERE chain_id = ? ORDER BY created_at, owner",
            (chain_id,),
        )
        return [StoredKey(*r) for r in rows]

    async def insert(self, chain_id: int, key: StoredKey, now: int) -> StoredKey:
        """Insert unless the owner already has one on this chain; return the key that is stored."""
        async with self._db.transaction(chain_id) as tx:
            await tx.execute(
                f"INSERT INTO {self.table} (chain_id, owner, pubkey, sealed_key, created_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (chain_id, owner) DO NOTHING",
                (chain_id, key.owner, key.pubkey, key.sealed_key, now),
            )
            row = await tx.fetchone(
                f"SELECT owner, pubkey, sealed_key FROM {self.table} WHERE chain_id = ? AND owner = ?",
                (chain_id, key.owner),
            )
        return StoredKey(*row)

    async def insert_new(self, tx: Transaction, chain_id: int, keys: list[StoredKey], now: int) -> None:
        """Insert keys that must be new: an owner who has one already fails the whole transaction."""
        await tx.executemany(
            f"INSERT INTO {self.table} (chain_id, owner, pubkey, sealed_key, created_at) VALUES (?, ?, ?, ?, ?)",
            [(chain_id, k.owner, k.pubkey, k.sealed_key, now) for k in keys],
        )

    async def delete_all(self, tx: Transaction, chain_id: int) -> None:
        await tx.execute(f"DELETE FROM {self.table} WHERE chain_id = ?", (chain_id,))


class KeyCheckRepository:
    """The value sealed under the master key that tells a wrong key apart at startup."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self) -> bytes | None:
        row = await self._db.fetchone("SELECT sealed FROM key_check WHERE id = 1")
        return row[0] if row else None

    async def record_key_check(self, sealed: bytes, now: int) -> bytes:
        """Store the key check unless one is stored already; return the one that is stored."""
        async with self._db.transaction() as tx:
            await tx.execute(
                "INSERT INTO key_check (id, sealed, created_at) VALUES (1, ?, ?) ON CONFLICT (id) DO NOTHING",
                (sealed, now),
            )
            row = await tx.fetchone("SELECT sealed FROM key_check WHERE id = 1")
        return bytes(row[0])
