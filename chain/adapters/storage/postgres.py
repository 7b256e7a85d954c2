"""The PostgreSQL backend: the same ``Database`` interface over an asyncpg connection pool.

Chosen by ``Database.open("postgresql://...")``.  The repositories' SQL is SQLite's text with ``?``
placeholders; the connection adapter here rewrites them to PostgreSQL's ``$1, $2, ...`` (once per
distinct statement) and hands rows back as tuples, as aiosqlite does.  The schema is the same
versioned migrations list, translated (``postgres_schema.py``).

Writers: SQLite has one writer at a time for the whole file.  Here each write transaction first
takes ``pg_advisory_xact_lock(chain_id)``: writers to one chain wait for each other, so every
check-then-act the engine does in a transaction (extend the tip it read, the EIP-3076
read-modify-write, create a chain, a wallet or a validator key) sees no other writer of that chain
between its check and its act, in this process or any other on the same database.  Writers to
different chains do not wait for each other.  A transaction for no one chain (``chain_id`` None:
migrations, the outbox's delivery marks, the key check) takes one global key instead.  The lock is
taken before the transaction's first read, and transactions run at READ COMMITTED, where every
statement reads the newest committed rows: so a writer always sees what the previous holder of its
chain's lock committed (at REPEATABLE READ its snapshot could predate that commit).

Because writers of different chains run at once, rows need not commit in the order of their identity
ids: a transaction holding a lower id can commit after one holding a higher id. A reader that follows a
table by id (the dashboard's outbox feed) asks ``write_horizon`` which transactions were running when it
read (``pg_current_snapshot()``'s xmin, and a transaction id the read takes for itself as a bound above
every writer begun before it: ``PostgresTransaction.write_horizon``). For that to cover every id a
transaction takes, each write transaction gets its transaction id with its lock, before its first write
(PostgreSQL otherwise assigns one at the first row written, after that row's identity default was
drawn).

Reads outside a transaction use any pooled connection and see committed rows only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import lru_cache
from typing import Any

import asyncpg

from chain.adapters.storage.database import (
    Database,
    Executed,
    Params,
    Target,
    Transaction,
    WriteHorizon,
    read_sealed_secrets,
)
from chain.adapters.storage.postgres_schema import postgres_migrations
from chain.adapters.storage.read_snapshot import READ_BATCH_ROWS, ChainSnapshot
from chain.adapters.storage.records import SealedSecrets

log = logging.getLogger(__name__)

# The advisory key of transactions that are for no one chain: a pair of 32-bit keys, a key space
# PostgreSQL keeps apart from single 64-bit keys, so no chain id can ever collide with it.
GLOBAL_LOCK_KEYS = (0x706C6179, 0)  # "play", 0
# Connections the pool opens at most; each open transaction holds one until it ends.
POOL_MAX_SIZE = 20


@lru_cache(maxsize=2048)
def to_postgres_placeholders(sql: str) -> str:
    """``?`` placeholders as ``$1, $2, ...``, leaving any ``?`` inside a quoted literal alone."""
    out: list[str] = []
    number = 0
    quote: str | None = None
    for char in sql:
        if quote is not None:
            if char == quote:
                quote = None
        elif char in ("'", '"'):
            quote = char
        elif char == "?":
            number += 1
            out.append(f"${number}")
            continue
        out.append(char)
    return "".join(out)


def _rowcount(status: str) -> int:
    """Rows a statement changed, from its command tag (``UPDATE 3``, ``INSERT 0 1``)."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class PostgresTransaction(Transaction):
    """One open transaction on a connection the pool lent to it."""

    def __init__(self, connection: asyncpg.Connection, chain_id: int | None) -> None:
        super().__init__(chain_id)
        self._connection = connection

    async def write_horizon(self) -> WriteHorizon:
        # The first statement of a REPEATABLE READ read transaction: its snapshot is the one all its reads see.
        # ``next_to_start`` is not the snapshot's xmax: that is one past the newest transaction that ENDED,
        # and a writer numbered above it (it began after the one that ended, but drew a lower outbox id
        # first) is running yet neither listed nor below xmax.  The read takes a transaction id of its own
        # instead (after its snapshot was taken, in the same statement): numbered above every writer that
        # began before the snapshot, running or not; it costs a transaction id, no row.  The snapshot's
        # xmin stays the right ``oldest_running``: a writer below a LATER read's xmin has ended.
        row = await self._connection.fetchrow(
            "SELECT pg_snapshot_xmin(s)::text, pg_current_xact_id()::text FROM pg_current_snapshot() AS s"
        )
        return WriteHorizon(int(row[0]), int(row[1]))

    async def execute(self, sql: str, args: Params = ()) -> Executed:
        status = await self._connection.execute(to_postgres_placeholders(sql), *args)
        return Executed(_rowcount(str(status)))

    async def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        batch = [tuple(row) for row in rows]
        if batch:
            await self._connection.executemany(to_postgres_placeholders(sql), batch)

    async def fetchone(self, sql: str, args: Params = ()) -> Any:
        row = await self._connection.fetchrow(to_postgres_placeholders(sql), *args)
        return None if row is None else tuple(row)

    async def fetchall(self, sql: str, args: Params = ()) -> list[Any]:
        return [tuple(row) for row in await self._connection.fetch(to_postgres_placeholders(sql), *args)]


class PostgresDatabase(Database):
    """One PostgreSQL database; open with ``await Database.open("postgresql://...")``."""

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        self._pool = pool
        # For a snapshot's connection of its own (read_snapshot); holds any password: never logged.
        self._url = url

    @classmethod
    async def open(cls, target: Target) -> PostgresDatabase:
        url = str(target)
        pool = await asyncpg.create_pool(url, min_size=1, max_size=POOL_MAX_SIZE)
        db = cls(pool, url)
        try:
            await db._migrate(postgres_migrations())
        except BaseException:
            await pool.close()
            raise
        return db

    async def close(self) -> None:
        await self._pool.close()

    @asynccontextmanager
    async def transaction(
        self, chain_id: int | None = None, *, within: Transaction | None = None
    ) -> AsyncIterator[Transaction]:
        if within is not None:
            yield within
            return
        # READ COMMITTED named, not left to the server's default_transaction_isolation: see the docstring.
        async with self._pool.acquire() as connection, connection.transaction(isolation="read_committed"):
            # The transaction id with the lock, in the same round trip: see the module docstring.
            if chain_id is None:
                await connection.execute(
                    "SELECT pg_advisory_xact_lock($1, $2), pg_current_xact_id()::text", *GLOBAL_LOCK_KEYS
                )
            else:
                await connection.execute("SELECT pg_advisory_xact_lock($1), pg_current_xact_id()::text", chain_id)
            tx = PostgresTransaction(connection, chain_id)
            yield tx
        tx.run_after_commit()

    @asynccontextmanager
    async def read_transaction(self, chain_id: int | None = None) -> AsyncIterator[Transaction]:
        """A REPEATABLE READ, read-only transaction: one snapshot for all its reads, no lock taken."""
        async with self._pool.acquire() as connection, connection.transaction(
            isolation="repeatable_read", readonly=True
        ):
            yield PostgresTransaction(connection, chain_id)

    async def fetchone(self, sql: str, args: Params = ()) -> Any:
        row = await self._pool.fetchrow(to_postgres_placeholders(sql), *args)
        return None if row is None else tuple(row)

    async def fetchall(self, sql: str, args: Params = ()) -> list[Any]:
        return [tuple(row) for row in await self._pool.fetch(to_postgres_placeholders(sql), *args)]

    async def rows(self, sql: str, args: Params = ()) -> AsyncIterator[Any]:
        """Rows through a server-side cursor, a batch at a time (a cursor lives in a transaction)."""
        async with self._pool.acquire() as connection, connection.transaction(
            isolation="repeatable_read", readonly=True
        ):
            async for row in connection.cursor(to_postgres_placeholders(sql), *args, prefetch=READ_BATCH_ROWS):
                yield tuple(row)

    async def durability_settings(self) -> dict[str, Any]:
        """What a commit's durability depends on, as the server reports it (its administrator's to set)."""
        settings = {}
        for name in ("fsync", "synchronous_commit", "full_page_writes"):
            settings[name] = await self._pool.fetchval(f"SHOW {name}")
        return settings

    @contextmanager
    def read_snapshot(self, chain_id: int) -> Iterator[ChainSnapshot]:
        """The chain at one instant: a connection of its own, in a REPEATABLE READ read-only transaction.

        Blocks (it runs an event loop of its own in the calling thread): call it in a worker
        thread.  Writers go on committing meanwhile; the snapshot does not see them.
        """
        loop = asyncio.new_event_loop()
        try:
            connection = loop.run_until_complete(asyncpg.connect(self._url))
            try:
                loop.run_until_complete(connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"))
                try:
                    yield ChainSnapshot(BlockingConnection(loop.run_until_complete, connection), chain_id)
                finally:
                    loop.run_until_complete(connection.execute("COMMIT"))
            finally:
                loop.run_until_complete(connection.close())
        finally:
            loop.close()

    @staticmethod
    async def sealed_secrets(target: Target) -> SealedSecrets | None:
        """Read-only, like SQLite's: None when the database has no tables yet."""
        connection = await asyncpg.connect(str(target))
        try:
            rows = await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            tables = {row[0] for row in rows}
            if not tables:
                return None

            async def fetchone(sql: str) -> Any:
                return await connection.fetchrow(sql)

            return await read_sealed_secrets(tables, fetchone)
        finally:
            await connection.close()


# Runs a coroutine to its end from synchronous code and returns its result: a private event loop's
# ``run_until_complete`` (``read_snapshot``), or a hand-off to another thread's running loop (the copy).
Waiter = Callable[[Coroutine[Any, Any, Any]], Any]


class BlockingCursor:
    """A server-side cursor read synchronously (``SnapshotCursor``), a batch of rows per round trip."""

    def __init__(self, wait: Waiter, cursor: Any) -> None:
        self._wait = wait
        self._cursor = cursor

    def fetchone(self) -> Any:
        row = self._wait(self._cursor.fetchrow())
        return None if row is None else tuple(row)

    def fetchmany(self, size: int, /) -> list[Any]:
        return [tuple(row) for row in self._wait(self._cursor.fetch(size))]

    def fetchall(self) -> list[Any]:
        rows: list[Any] = []
        while batch := self.fetchmany(READ_BATCH_ROWS):
            rows.extend(batch)
        return rows


class BlockingConnection:
    """A connection inside a transaction, read synchronously (``SnapshotConnection``); ``wait`` runs
    each of its coroutines (see ``Waiter``)."""

    def __init__(self, wait: Waiter, connection: asyncpg.Connection) -> None:
        self._wait = wait
        self._connection = connection

    def execute(self, sql: str, parameters: Any = (), /) -> BlockingCursor:
        return BlockingCursor(self._wait, self._wait(self._open_cursor(to_postgres_placeholders(sql), parameters)))

    async def _open_cursor(self, sql: str, parameters: Any) -> Any:
        # asyncpg's cursor() is an awaitable, not a coroutine: a cross-thread waiter needs a coroutine.
        return await self._connection.cursor(sql, *parameters)

    def close_cursors(self) -> None:
        """Close every cursor open on the connection.  An asyncpg cursor's portal (and its executor's
        memory on the server, tens of KB) otherwise lives until the transaction ends: a transaction that
        replays many chains would hold memory in proportion to them."""
        self._wait(self._connection.execute("CLOSE ALL"))
