"""The database every repository shares: the interface, and its SQLite implementation.

``Database`` is what repositories and ``bot/storage.py`` are written against; ``Database.open``
picks the backend from its target: a file path opens SQLite (the default, ``SqliteDatabase``
below), a ``postgresql://`` URL opens PostgreSQL (``chain/adapters/storage/postgres.py``).  Both
run the same SQL text: the repositories write SQLite's dialect with ``?`` placeholders, and the
PostgreSQL connection adapter translates what differs (placeholders, the schema's DDL).

SQLite through aiosqlite, in WAL mode with ``synchronous=FULL`` so a commit that
returned survives a power cut.  Many chains (one per Discord server) share one
database, keyed by ``chain_id``.

Transactions are explicit: a write happens on a ``Transaction`` handle obtained from
``async with db.transaction(chain_id) as tx``, and a repository's write method takes
that handle (``tx=``) so that several repositories' writes commit together.  A write
method called without one opens its own transaction: one statement group, one commit.
Reads that need no consistency with other reads go straight to the database.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, AbstractContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.request import pathname2url

import aiosqlite

from chain.adapters.storage.migrations import (
    ADD_WORK,
    HEADER_WORK,
    MIGRATIONS,
    REVERSE_BYTES,
    add_work,
    header_work,
    reverse_bytes,
)
from chain.adapters.storage.read_snapshot import ChainSnapshot
from chain.adapters.storage.records import SealedSample, SealedSecrets
from chain.errors import SnapshotUnavailableError

log = logging.getLogger(__name__)

_DURABILITY_PRAGMAS = {
    "journal_mode": "PRAGMA journal_mode",
    "synchronous": "PRAGMA synchronous",
    "foreign_keys": "PRAGMA foreign_keys",
}

Params = Iterable[Any]
# Where a database lives: a SQLite file's path, or a PostgreSQL server's URL.
Target = str | Path
POSTGRES_URL_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(target: Target) -> bool:
    return isinstance(target, str) and target.startswith(POSTGRES_URL_SCHEMES)


@dataclass(frozen=True)
class Executed:
    """What a statement did: how many rows it changed."""

    rowcount: int


class Reader(Protocol):
    """What a repository reads through: the database itself, or a transaction (to read its own writes)."""

    async def fetchone(self, sql: str, args: Params = ()) -> Any: ...

    async def fetchall(self, sql: str, args: Params = ()) -> list[Any]: ...


@dataclass(frozen=True, slots=True)
class WriteHorizon:
    """Where the database's write transactions stood at the instant a transaction reads: what a reader
    needs to know whether a row it does not see yet may still appear below rows it does see.

    Write transactions are numbered in the order they start (PostgreSQL's transaction ids).
    ``oldest_running`` is the lowest number still running; ``next_to_start`` a number above every writer
    that had begun by then, running or not (equal to ``oldest_running`` when none is running). A row
    invisible to a read whose horizon had ``next_to_start`` N can only still appear if a writer numbered
    below N commits it; a later read whose ``oldest_running`` is at least N knows every such writer has
    ended, and sees what each committed. SQLite reads under its one writer's lock: no writer is ever
    running (0, 0).
    """

    oldest_running: int
    next_to_start: int

    @property
    def writers_running(self) -> bool:
        return self.oldest_running < self.next_to_start

    def all_ended_before(self, mark: int) -> bool:
        """Every write transaction numbered below ``mark`` has committed or rolled back."""
        return self.oldest_running >= mark


class Transaction(ABC):
    """One open transaction: the handle a repository's writes (and its own reads) go through.

    Only the coroutine that opened it uses it; it is valid until its ``async with``
    block ends (commit) or raises (rollback).
    """

    # Which chain the transaction is for (None: not one chain's, e.g. the outbox's delivery
    # marks).  SQLite has one writer anyway; PostgreSQL locks per chain (postgres.py).
    chain_id: int | None

    def __init__(self, chain_id: int | None) -> None:
        self.chain_id = chain_id
        self._after_commit: list[Callable[[], None]] = []

    def call_after_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once this transaction has committed; never if it rolls back.  A transaction
        joined with ``within=`` is the caller's: the callback runs when the caller's commits.  Whoever
        acts on what a transaction wrote (wakes a reader of it) must act only once others can see it."""
        self._after_commit.append(callback)

    def run_after_commit(self) -> None:
        """Run the callbacks (the backends call this once COMMIT returned).  The commit stands whatever
        a callback does: one that fails is logged, and the others still run."""
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # the data is committed: the caller must not see its commit as failed
                log.exception("a callback after a commit failed")

    @abstractmethod
    async def write_horizon(self) -> WriteHorizon:
        """The write transactions running at the instant this transaction reads (``WriteHorizon``):
        called first in a read transaction, the same instant every later read through it sees."""

    @abstractmethod
    async def execute(self, sql: str, args: Params = ()) -> Executed: ...

    @abstractmethod
    async def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None: ...

    @abstractmethod
    async def fetchone(self, sql: str, args: Params = ()) -> Any: ...

    @abstractmethod
    async def fetchall(self, sql: str, args: Params = ()) -> list[Any]: ...


# One step of a migration: an SQL statement, or (PostgreSQL only, where SQLite calls a Python
# function from SQL) a coroutine doing the same work through the transaction.
MigrationStep = str | Callable[[Transaction], Awaitable[None]]
Migrations = tuple[tuple[int, tuple[MigrationStep, ...]], ...]


class Database(ABC):
    """One database of either backend; open with ``await Database.open(target)``."""

    @classmethod
    async def open(cls, target: Target) -> Database:
        """SQLite at a file path (or ``:memory:``), PostgreSQL at a ``postgresql://`` URL."""
        if is_postgres_url(target):
            # Imported here: the PostgreSQL module imports this one (its base classes).
            from chain.adapters.storage.postgres import PostgresDatabase

            return await PostgresDatabase.open(str(target))
        return await SqliteDatabase.open(target)

    @staticmethod
    async def sealed_secrets(target: Target) -> SealedSecrets | None:
        """The key check and one sealed secret of the database at ``target``; None if there is none.

        Read-only: no migration, nothing written. Used before the master key is trusted, so a
        wrong key is refused with the database untouched.
        """
        if is_postgres_url(target):
            from chain.adapters.storage.postgres import PostgresDatabase

            return await PostgresDatabase.sealed_secrets(str(target))
        return await SqliteDatabase.sealed_secrets(target)

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    def transaction(
        self, chain_id: int | None = None, *, within: Transaction | None = None
    ) -> AbstractAsyncContextManager[Transaction]:
        """A write transaction for one chain (or none): commits when the block ends, rolls back if it
        raises.  Writers to one chain never overlap.  ``within``: a transaction the caller already
        holds; then this joins it (no new BEGIN, no commit here), so a repository method is one commit
        alone and part of the caller's commit when given one."""

    @abstractmethod
    def read_transaction(self, chain_id: int | None = None) -> AbstractAsyncContextManager[Transaction]:
        """A read transaction: every read through it sees one instant of the database."""

    @abstractmethod
    async def fetchone(self, sql: str, args: Params = ()) -> Any: ...

    @abstractmethod
    async def fetchall(self, sql: str, args: Params = ()) -> list[Any]: ...

    @abstractmethod
    def rows(self, sql: str, args: Params = ()) -> AsyncIterator[Any]:
        """Rows one at a time, for a result too long to hold at once."""

    @abstractmethod
    def read_snapshot(self, chain_id: int) -> AbstractContextManager[ChainSnapshot]:
        """The chain at one instant, read without blocking writers: blocks, so call it in a worker thread."""

    @abstractmethod
    async def durability_settings(self) -> dict[str, Any]:
        """The server settings durability depends on, as the database reports them."""

    async def schema_version(self) -> int:
        row = await self.fetchone("SELECT MAX(version) FROM schema_version")
        return int(row[0] or 0)

    async def _migrate(self, migrations: Migrations) -> None:
        """Run every migration newer than the database's version, all in one transaction."""
        async with self.transaction() as tx:
            await tx.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = await tx.fetchone("SELECT MAX(version) FROM schema_version")
            current = row[0] or 0
            for version, steps in migrations:
                if version <= current:
                    continue
                for step in steps:
                    if isinstance(step, str):
                        await tx.execute(step)
                    else:
                        await step(tx)
                await tx.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
                log.info("database migrated to schema version %d", version)


async def read_sealed_secrets(
    tables: set[str], fetchone: Callable[[str], Awaitable[Any]]
) -> SealedSecrets:
    """The key check and the oldest sealed secret, read with ``fetchone`` from a database holding ``tables``."""
    key_check = None
    if "key_check" in tables:
        row = await fetchone("SELECT sealed FROM key_check WHERE id = 1")
        key_check = bytes(row[0]) if row else None
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
            row = await fetchone(query)
            if row is not None:
                return SealedSecrets(key_check, SealedSample(kind, row[0], row[1], bytes(row[2])))
    return SealedSecrets(key_check, None)


class SqliteTransaction(Transaction):
    """One open SQLite transaction (``BEGIN IMMEDIATE`` .. ``COMMIT``) on the shared connection."""

    def __init__(self, connection: aiosqlite.Connection, chain_id: int | None) -> None:
        super().__init__(chain_id)
        self._connection = connection

    async def write_horizon(self) -> WriteHorizon:
        # Every transaction (read ones too) holds the database's one writer lock: none other runs.
        return WriteHorizon(0, 0)

    async def execute(self, sql: str, args: Params = ()) -> Executed:
        cursor = await self._connection.execute(sql, tuple(args))
        return Executed(cursor.rowcount)

    async def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        await self._connection.executemany(sql, rows)

    async def fetchone(self, sql: str, args: Params = ()) -> Any:
        return await (await self._connection.execute(sql, tuple(args))).fetchone()

    async def fetchall(self, sql: str, args: Params = ()) -> list[Any]:
        return list(await (await self._connection.execute(sql, tuple(args))).fetchall())


class SqliteDatabase(Database):
    """One SQLite database file: one connection, one writer at a time (the lock and ``BEGIN IMMEDIATE``)."""

    def __init__(self, connection: aiosqlite.Connection, path: Path | None = None) -> None:
        self._connection = connection
        # aiosqlite serialises statements, not transactions: this lock keeps each BEGIN..COMMIT whole.
        self._lock = asyncio.Lock()
        # The database file, for read-only snapshot connections (None: in memory, none possible).
        self.path = path

    @classmethod
    async def open(cls, target: Target) -> SqliteDatabase:
        path = target
        in_memory = str(path) == ":memory:"
        if not in_memory:
            # Only the owner may read the database; SQLite gives its -wal and -shm
            # files the database file's mode, so creating it 0600 covers them too.
            Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        connection = await aiosqlite.connect(str(path), isolation_level=None)
        db = cls(connection, None if in_memory else Path(path).resolve())
        try:
            await connection.execute("PRAGMA journal_mode=WAL")
            await connection.execute("PRAGMA synchronous=FULL")
            await connection.execute("PRAGMA foreign_keys=ON")
            await connection.execute("PRAGMA busy_timeout=5000")
            await connection.create_function(REVERSE_BYTES, 1, reverse_bytes, deterministic=True)
            await connection.create_function(HEADER_WORK, 1, header_work, deterministic=True)
            await connection.create_function(ADD_WORK, 2, add_work, deterministic=True)
            await db._migrate(MIGRATIONS)
        except BaseException:
            await connection.close()
            raise
        return db

    async def close(self) -> None:
        async with self._lock:
            await self._connection.close()

    @property
    def lock(self) -> asyncio.Lock:
        """Held for the whole of every transaction (tests check reads never wait on it)."""
        return self._lock

    @asynccontextmanager
    async def transaction(
        self, chain_id: int | None = None, *, within: Transaction | None = None
    ) -> AsyncIterator[Transaction]:
        """A write transaction: commits when the block ends, rolls back if it raises.

        ``within``: a transaction the caller already holds; then this joins it (no new
        BEGIN, no commit here), so a repository method is one commit alone and part of
        the caller's commit when given one.
        """
        if within is not None:
            yield within
            return
        async with self._lock:
            await self._connection.execute("BEGIN IMMEDIATE")
            tx = SqliteTransaction(self._connection, chain_id)
            try:
                yield tx
            except BaseException:
                await self._connection.execute("ROLLBACK")
                raise
            await self._connection.execute("COMMIT")
        tx.run_after_commit()

    @asynccontextmanager
    async def read_transaction(self, chain_id: int | None = None) -> AsyncIterator[Transaction]:
        """A read transaction (``BEGIN`` deferred): every read through it sees one instant of the database."""
        async with self._lock:
            await self._connection.execute("BEGIN")
            try:
                yield SqliteTransaction(self._connection, chain_id)
            finally:
                await self._connection.execute("COMMIT")

    async def fetchone(self, sql: str, args: Params = ()) -> Any:
        return await (await self._connection.execute(sql, tuple(args))).fetchone()

    async def fetchall(self, sql: str, args: Params = ()) -> list[Any]:
        return list(await (await self._connection.execute(sql, tuple(args))).fetchall())

    async def rows(self, sql: str, args: Params = ()) -> AsyncIterator[Any]:
        """Rows one at a time, for a result too long to hold at once."""
        cursor = await self._connection.execute(sql, tuple(args))
        async for row in cursor:
            yield row


    async def durability_settings(self) -> dict[str, Any]:
        """The pragmas durability depends on, as SQLite reports them."""
        settings = {}
        for name, query in _DURABILITY_PRAGMAS.items():
            row = await self.fetchone(query)
            settings[name] = row[0]
        return settings

    @contextmanager
    def read_snapshot(self, chain_id: int) -> Iterator[ChainSnapshot]:
        """The chain at one instant, read without the write lock: blocks, so call it in a worker thread.

        A read-only connection of its own, opened, used and closed in the calling
        thread, inside one read transaction: WAL gives it a consistent snapshot
        while this database's writers (for this chain or any other) go on
        committing.  Long reads hold back WAL checkpoints, not writes.
        """
        if self.path is None:
            raise SnapshotUnavailableError("an in-memory database cannot be read from a second connection")
        connection = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True, isolation_level=None)
        try:
            connection.execute("PRAGMA busy_timeout=5000")
            connection.execute("BEGIN")
            try:
                yield ChainSnapshot(connection, chain_id)
            finally:
                connection.execute("COMMIT")
        finally:
            connection.close()

    @staticmethod
    async def sealed_secrets(target: Target) -> SealedSecrets | None:
        path = Path(target)
        if not path.exists():
            return None
        uri = f"file:{pathname2url(str(path.resolve()))}?mode=ro"
        async with aiosqlite.connect(uri, uri=True) as db:
            rows = await (await db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")).fetchall()

            async def fetchone(sql: str) -> Any:
                return await (await db.execute(sql)).fetchone()

            return await read_sealed_secrets({name for (name,) in rows}, fetchone)
