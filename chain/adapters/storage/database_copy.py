"""Moving a SQLite database to PostgreSQL (issue 13's migration path): copy every table, then check
both sides hold the same chains, state roots, balances and pending outbox.

``copy_database`` copies into a PostgreSQL database that has no rows (it may have no tables at all:
it is migrated first), in ONE transaction on the target: the tables are locked, checked empty,
filled (rows streamed in batches through PostgreSQL's COPY protocol, ids kept as they are), the
identity sequences moved above the copied ids, and then the copy is summarized from inside the
same transaction and compared with the source.  Only if everything is equal does it commit; any
error or difference rolls the whole copy back, so the target is left as empty as it was.  After the
commit the target is summarized again from a fresh connection and compared once more.

What is compared (``DatabaseSummary``): every table's row count and content (an order-independent
digest of its rows); per chain, the tip (height and hash), the state root of a replay of its stored
blocks (``verify_chain``, what ``/chain verify`` runs: every rule, and the stored balances against
the replayed ledger), its balances, and its pending (undelivered) outbox rows.

The source must be at this code's schema version: an older file is refused, not migrated here, so
the file being copied is never written.  Nothing may write to it during the copy: the bot's own
instance lock is the caller's to hold (``bot/copy_database.py``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiosqlite
import asyncpg

from chain.adapters.storage.database import Params, SqliteDatabase
from chain.adapters.storage.migrations import MIGRATIONS
from chain.adapters.storage.postgres import BlockingConnection, PostgresDatabase, to_postgres_placeholders
from chain.adapters.storage.read_snapshot import READ_BATCH_ROWS, ChainSnapshot
from chain.consensus.state import ChainState
from chain.consensus.verify import verify_chain
from chain.errors import (
    ChainError,
    CopyMismatchError,
    CopySourceError,
    CopyTargetNotEmptyError,
)
from chain.hashing import hash_to_display
from chain.pos.snapshot import encode_beacon_state

log = logging.getLogger(__name__)

LATEST_SCHEMA_VERSION = MIGRATIONS[-1][0]
# Rows sent to PostgreSQL per COPY: a batch of blocks is a few hundred KB; a table never is in memory whole.
COPY_BATCH_ROWS = 1000
# Each side has its own version rows (written by its own migrations): compared as a number, not copied.
NOT_COPIED = frozenset({"schema_version"})
_DIGEST_MODULUS = 1 << 256


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _canonical(value: Any) -> Any:
    """One value as both drivers agree on it (asyncpg and sqlite3 both give bytes, int, str, None)."""
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    return value


class RowDigest:
    """An order-independent digest of a set of rows: the sum of their SHA-256s, modulo 2^256.

    Order-independent so the two sides need not sort alike (PostgreSQL sorts text by its collation,
    SQLite by bytes); a multiset sum, so a row twice never cancels out."""

    def __init__(self) -> None:
        self.rows = 0
        self._sum = 0

    def add(self, row: tuple[Any, ...]) -> None:
        encoded = repr(tuple(_canonical(v) for v in row)).encode()
        self._sum = (self._sum + int.from_bytes(hashlib.sha256(encoded).digest(), "big")) % _DIGEST_MODULUS
        self.rows += 1

    def hexdigest(self) -> str:
        return self._sum.to_bytes(32, "big").hex()


def compute_state_root(state: ChainState) -> str:
    """A digest of a replayed chain's state: its tip, every account, and the beacon state if any.

    Our blocks commit to no state root (chain/pos/attestation.py); this one is computed from the
    replay alone, so two backends that replay to the same state give the same root."""
    digest = hashlib.sha256()
    digest.update(state.height.to_bytes(8, "big") + state.tip_hash)
    ledger = state.ledger
    for pubkey in sorted(ledger):
        account = ledger[pubkey]
        digest.update(pubkey + account.balance.to_bytes(16, "big") + account.nonce.to_bytes(8, "big"))
    if state.beacon is not None:
        digest.update(encode_beacon_state(state.beacon))
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class ChainSummary:
    """One chain as a replay of its stored blocks sees it."""

    chain_id: int
    tip_height: int
    tip_hash: str
    # Of the replay (``compute_state_root``); None when the replay refused the chain (``replay_error``).
    state_root: str | None
    replay_error: str | None = None


@dataclass(frozen=True, slots=True)
class GroupSummary:
    """Some rows of one chain (its accounts, its pending outbox): how many, a total, a digest."""

    rows: int
    total: int
    digest: str


@dataclass(slots=True)
class DatabaseSummary:
    """What the copy must keep: compared field by field by ``compare_summaries``."""

    schema_version: int
    row_counts: dict[str, int] = field(default_factory=dict)
    table_digests: dict[str, str] = field(default_factory=dict)
    chains: dict[int, ChainSummary] = field(default_factory=dict)
    # Per chain id: accounts (total: the balances' sum) and undelivered outbox rows (total: the highest id).
    balances: dict[int, GroupSummary] = field(default_factory=dict)
    pending_outbox: dict[int, GroupSummary] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """The summary as a member of staff reads it (the command prints it for each side)."""
        out = [f"schema version {self.schema_version}"]
        for chain_id, chain in sorted(self.chains.items()):
            balances = self.balances.get(chain_id, GroupSummary(0, 0, ""))
            pending = self.pending_outbox.get(chain_id, GroupSummary(0, 0, ""))
            root = chain.state_root[:16] if chain.state_root is not None else f"REPLAY FAILED: {chain.replay_error}"
            out.append(
                f"chain {chain_id}: tip {chain.tip_height} {chain.tip_hash[:16]}, state root {root}, "
                f"{balances.rows} accounts holding {balances.total}, {pending.rows} undelivered announcements"
            )
        orphan_outbox = sorted(set(self.pending_outbox) - set(self.chains))
        for chain_id in orphan_outbox:
            out.append(f"server {chain_id} (no chain): {self.pending_outbox[chain_id].rows} undelivered announcements")
        out.append("rows: " + ", ".join(f"{t} {n}" for t, n in sorted(self.row_counts.items())))
        return out


def compare_summaries(source: DatabaseSummary, target: DatabaseSummary) -> list[str]:
    """Every difference between the two sides, each named in a sentence; empty when they agree."""
    differences: list[str] = []
    if source.schema_version != target.schema_version:
        differences.append(f"schema version: source {source.schema_version}, target {target.schema_version}")
    for table in sorted(source.row_counts.keys() | target.row_counts.keys()):
        a, b = source.row_counts.get(table), target.row_counts.get(table)
        if a != b:
            differences.append(f"table {table}: {a} rows in the source, {b} in the target")
        elif source.table_digests.get(table) != target.table_digests.get(table):
            differences.append(f"table {table}: same row count ({a}) but different contents")
    for chain_id in sorted(source.chains.keys() | target.chains.keys()):
        one, two = source.chains.get(chain_id), target.chains.get(chain_id)
        if one is None or two is None:
            side = "target" if two is None else "source"
            differences.append(f"chain {chain_id}: missing from the {side}")
            continue
        if (one.tip_height, one.tip_hash) != (two.tip_height, two.tip_hash):
            differences.append(
                f"chain {chain_id}: tip {one.tip_height} {one.tip_hash[:16]} in the source, "
                f"{two.tip_height} {two.tip_hash[:16]} in the target"
            )
        for side, chain in (("source", one), ("target", two)):
            if chain.replay_error is not None:
                differences.append(f"chain {chain_id}: the replay of the {side} fails: {chain.replay_error}")
        if one.state_root is not None and two.state_root is not None and one.state_root != two.state_root:
            differences.append(
                f"chain {chain_id}: state root {one.state_root[:16]} in the source, {two.state_root[:16]} in the target"
            )
    for what, a_groups, b_groups in (
        ("balances", source.balances, target.balances),
        ("pending outbox", source.pending_outbox, target.pending_outbox),
    ):
        for chain_id in sorted(a_groups.keys() | b_groups.keys()):
            a_group, b_group = a_groups.get(chain_id), b_groups.get(chain_id)
            if a_group != b_group:
                differences.append(f"chain {chain_id}: {what} differ ({_group(what, a_group)} in the source, "
                                   f"{_group(what, b_group)} in the target)")
    return differences


def _group(what: str, group: GroupSummary | None) -> str:
    if group is None:
        return "none"
    if what == "balances":
        return f"{group.rows} accounts holding {group.total}, digest {group.digest[:12]}"
    return f"{group.rows} rows up to id {group.total}, digest {group.digest[:12]}"


# --- reading either side -----------------------------------------------------------------


class RowReader(Protocol):
    """Rows of a query, streamed (either backend; ``?`` placeholders)."""

    def rows(self, sql: str, args: Params = ()) -> AsyncIterator[tuple[Any, ...]]: ...


# Opens a blocking snapshot of one chain (used in a worker thread).
SnapshotOpener = Callable[[int], AbstractContextManager[ChainSnapshot]]


class SqliteRows:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def rows(self, sql: str, args: Params = ()) -> AsyncIterator[tuple[Any, ...]]:
        async for row in self._db.rows(sql, args):
            yield tuple(row)


class PostgresRows:
    """Rows through a server-side cursor on one connection, inside the transaction it is in."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    async def rows(self, sql: str, args: Params = ()) -> AsyncIterator[tuple[Any, ...]]:
        async for row in self._connection.cursor(to_postgres_placeholders(sql), *args, prefetch=READ_BATCH_ROWS):
            yield tuple(row)


def bridged_snapshots(connection: asyncpg.Connection) -> SnapshotOpener:
    """Snapshots over the copy's own connection, read by a replay in a worker thread while the event
    loop runs it.

    The replay is synchronous (``ChainSnapshot``); the connection is the event loop's, inside the
    copy's uncommitted transaction, so the replay sees exactly what is about to be committed.  The
    loop does nothing else with the connection meanwhile: the copy awaits the replay."""
    loop = asyncio.get_running_loop()

    def wait(coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result()

    def opener(chain_id: int) -> AbstractContextManager[ChainSnapshot]:
        return _SnapshotOver(BlockingConnection(wait, connection), chain_id)

    return opener


class _SnapshotOver:
    """A snapshot over a connection already inside a transaction (nothing to begin or end); its cursors
    are closed when it ends (between replays, the copy has no other cursor open on the connection:
    ``summarize`` reads its tables to the end, which closes their cursors, before it replays)."""

    def __init__(self, connection: BlockingConnection, chain_id: int) -> None:
        self._connection = connection
        self._chain_id = chain_id

    def __enter__(self) -> ChainSnapshot:
        return ChainSnapshot(self._connection, self._chain_id)

    def __exit__(self, *exc_info: object) -> None:
        self._connection.close_cursors()


def _replay(snapshots: SnapshotOpener, chain_id: int, now: int) -> ChainSummary:
    """Replay one chain from a snapshot (``verify_chain``: every rule, stored balances included).

    A chain that cannot be replayed is a difference to report, not a crash: a refused block, or rows
    that cannot even be read as a chain (no blocks, undecodable bytes)."""
    height, tip_hash = -1, ""
    try:
        with snapshots(chain_id) as snapshot:
            height = snapshot.height
            tip_hash = hash_to_display(bytes(snapshot.block_hash(height) or b""))
            state, _ = verify_chain(
                snapshot.params, chain_id, snapshot.blocks(), now, snapshot.accounts(), snapshot.param_changes,
                snapshot.consensus, snapshot.consensus_changes, snapshot.orphans(),
            )
    except (ChainError, TypeError, ValueError) as exc:
        return ChainSummary(chain_id, height, tip_hash, None, str(exc) or type(exc).__name__)
    return ChainSummary(chain_id, height, tip_hash, compute_state_root(state))


async def summarize(
    reader: RowReader, snapshots: SnapshotOpener, tables: dict[str, list[str]], now: int
) -> DatabaseSummary:
    """Everything ``compare_summaries`` compares, read from one side."""
    version_rows = [row async for row in reader.rows("SELECT MAX(version) FROM schema_version")]
    summary = DatabaseSummary(int(version_rows[0][0] or 0))
    for table, columns in tables.items():
        digest = RowDigest()
        async for row in reader.rows(f"SELECT {', '.join(map(_quote, columns))} FROM {_quote(table)}"):
            digest.add(row)
        summary.row_counts[table] = digest.rows
        summary.table_digests[table] = digest.hexdigest()
    summary.balances = await _grouped(
        reader, "SELECT chain_id, pubkey, balance, nonce FROM accounts", total_column=2, summed=True
    )
    summary.pending_outbox = await _grouped(
        reader, "SELECT chain_id, id, kind, payload, created_at FROM outbox WHERE delivered_at IS NULL",
        total_column=1, summed=False,
    )
    chain_ids = [int(row[0]) async for row in reader.rows("SELECT chain_id FROM chains ORDER BY chain_id")]
    for chain_id in chain_ids:
        # In a worker thread: the replay is CPU-bound and reads synchronously (``ChainSnapshot``).
        summary.chains[chain_id] = await asyncio.to_thread(_replay, snapshots, chain_id, now)
    return summary


async def _grouped(reader: RowReader, sql: str, *, total_column: int, summed: bool) -> dict[int, GroupSummary]:
    digests: dict[int, RowDigest] = {}
    totals: dict[int, int] = {}
    async for row in reader.rows(sql):
        chain_id = int(row[0])
        digests.setdefault(chain_id, RowDigest()).add(row)
        value = int(row[total_column])
        totals[chain_id] = totals.get(chain_id, 0) + value if summed else max(totals.get(chain_id, 0), value)
    return {c: GroupSummary(d.rows, totals[c], d.hexdigest()) for c, d in digests.items()}


# --- the source ------------------------------------------------------------------------------


def read_source_schema(path: Path) -> tuple[int, dict[str, list[str]], dict[str, set[str]], dict[str, int]]:
    """The source's version, tables (columns in order), foreign-key parents, and AUTOINCREMENT counters.

    Read-only (``mode=ro``): a file that is refused is left exactly as it was."""
    if not path.is_file():
        raise CopySourceError(f"there is no SQLite database at {path}")
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        names = [r[0] for r in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )]
        if "schema_version" not in names:
            raise CopySourceError(f"{path} is not a playground database (it has no schema_version table)")
        version = int(connection.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0)
        if version != LATEST_SCHEMA_VERSION:
            raise CopySourceError(
                f"{path} is at schema version {version}, this code's is {LATEST_SCHEMA_VERSION}: start this "
                f"version of the bot on it once (it migrates at startup), stop it, then copy"
            )
        tables = {
            name: [r[1] for r in connection.execute(f"PRAGMA table_info({_quote(name)})")]
            for name in names if name not in NOT_COPIED
        }
        parents = {
            name: {r[2] for r in connection.execute(f"PRAGMA foreign_key_list({_quote(name)})")} - {name}
            for name in tables
        }
        counters: dict[str, int] = {}
        if connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").fetchone():
            counters = {str(n): int(s) for n, s in connection.execute("SELECT name, seq FROM sqlite_sequence")}
    except sqlite3.DatabaseError as exc:
        raise CopySourceError(f"{path} cannot be read as a SQLite database: {exc}") from exc
    finally:
        connection.close()
    return version, tables, parents, counters


async def open_source(path: Path) -> SqliteDatabase:
    """The source through a read-only connection: no migration, no checkpoint, nothing written to it
    (``SqliteDatabase.open`` would run the migrations in a write transaction)."""
    connection = await aiosqlite.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    await connection.execute("PRAGMA busy_timeout=5000")
    return SqliteDatabase(connection, path.resolve())


def parents_first(tables: dict[str, list[str]], parents: dict[str, set[str]]) -> list[str]:
    """The tables ordered so a table's foreign-key parents are filled before it."""
    ordered: list[str] = []
    placed: set[str] = set()

    def place(name: str) -> None:
        if name in placed:
            return
        placed.add(name)
        for parent in sorted(parents.get(name, set())):
            if parent in tables:
                place(parent)
        ordered.append(name)

    for name in sorted(tables):
        place(name)
    return ordered


def _replay_time(path: Path) -> int:
    """The clock a replay checks block times against: now, or the newest block's time if later
    (a chain made with a test clock; a stored block is never "from the future" for the copy)."""
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        newest = connection.execute("SELECT MAX(time) FROM blocks").fetchone()[0]
    finally:
        connection.close()
    return max(int(time.time()), int(newest or 0))


# --- the copy ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CopyReport:
    source: DatabaseSummary
    target: DatabaseSummary
    rows: int
    seconds: float
    # Seconds per phase, in order: the source's check, the copy, the check before and after the commit.
    phases: dict[str, float] = field(default_factory=dict)


async def _target_tables(connection: asyncpg.Connection) -> set[str]:
    rows = await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    return {str(r[0]) for r in rows}


async def _create_schema_if_none(url: str) -> None:
    """The schema on a database with no tables at all (migrations, as the bot's first start would).

    A database with tables is left as it is, even one at an older version: migrating it would
    change a database the copy may then refuse (any row in it), so it is refused unmigrated."""
    connection = await asyncpg.connect(url)
    try:
        tables = await _target_tables(connection)
    finally:
        await connection.close()
    if not tables:
        await (await PostgresDatabase.open(url)).close()


async def _refuse_unless_empty(connection: asyncpg.Connection, tables: list[str]) -> None:
    holding = []
    for table in tables:
        if await connection.fetchval(f"SELECT EXISTS (SELECT 1 FROM {_quote(table)})"):
            holding.append(table)
    if holding:
        chains = int(await connection.fetchval("SELECT COUNT(*) FROM chains"))
        raise CopyTargetNotEmptyError(
            f"the target database is not empty ({chains} chains; rows in {', '.join(holding)}): "
            f"copy only into an empty database, nothing was written",
            tables=holding,
        )


async def _copy_table(source: SqliteDatabase, connection: asyncpg.Connection, table: str, columns: list[str]) -> int:
    """Stream one table into the target, ``COPY_BATCH_ROWS`` rows at a time; the rows copied."""
    copied = 0
    batch: list[tuple[Any, ...]] = []
    async for row in source.rows(f"SELECT {', '.join(map(_quote, columns))} FROM {_quote(table)}"):
        batch.append(tuple(row))
        if len(batch) >= COPY_BATCH_ROWS:
            await connection.copy_records_to_table(table, records=batch, columns=columns)
            copied += len(batch)
            batch = []
    if batch:
        await connection.copy_records_to_table(table, records=batch, columns=columns)
        copied += len(batch)
    return copied


async def _move_identity_sequences(connection: asyncpg.Connection, counters: dict[str, int]) -> None:
    """Each identity sequence above every id the source ever issued: its rows' and, for an
    AUTOINCREMENT table, SQLite's counter (ids of pruned outbox rows are never reused)."""
    rows = await connection.fetch(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND is_identity = 'YES'"
    )
    for table, column in rows:
        highest = await connection.fetchval(f"SELECT MAX({_quote(column)}) FROM {_quote(table)}")
        issued = max(int(highest or 0), counters.get(table, 0))
        if issued > 0:
            await connection.execute(
                "SELECT setval(pg_get_serial_sequence($1, $2), $3)", _quote(table), column, issued
            )


async def copy_database(source_path: Path, target_url: str) -> CopyReport:
    """Copy the SQLite database at ``source_path`` into the empty PostgreSQL database at ``target_url``.

    Raises ``CopySourceError`` (no database, or not at the latest schema version: nothing read
    further), ``CopyTargetNotEmptyError`` (the target has rows: nothing written) or
    ``CopyMismatchError`` (the copy differs from the source; if found before the commit, nothing
    stays written).  The caller keeps every writer off the source meanwhile.
    """
    started = time.perf_counter()
    phases: dict[str, float] = {}
    _, tables, parents, counters = read_source_schema(source_path)
    now = _replay_time(source_path)
    await _create_schema_if_none(target_url)
    source = await open_source(source_path)
    try:
        source_summary = await summarize(SqliteRows(source), source.read_snapshot, tables, now)
        phases["check the source"] = time.perf_counter() - started
        connection = await asyncpg.connect(target_url)
        try:
            async with connection.transaction(isolation="read_committed"):
                target_tables = await _target_tables(connection)
                if target_tables - NOT_COPIED != set(tables):
                    raise CopySourceError(
                        f"the target's tables differ from the source's: only in the source "
                        f"{sorted(set(tables) - target_tables) or 'none'}, only in the target "
                        f"{sorted(target_tables - NOT_COPIED - set(tables)) or 'none'}"
                    )
                version = int(await connection.fetchval("SELECT MAX(version) FROM schema_version") or 0)
                if version != LATEST_SCHEMA_VERSION:
                    raise CopySourceError(
                        f"the target is at schema version {version}, this code's is {LATEST_SCHEMA_VERSION}: "
                        f"copy into a database with no tables, or one this version created"
                    )
                # Writers wait until the copy commits or rolls back; readers do not. Taken before the
                # emptiness check, so no row can arrive between the check and the copy.
                await connection.execute(
                    f"LOCK TABLE {', '.join(map(_quote, sorted(tables)))} IN EXCLUSIVE MODE"
                )
                await _refuse_unless_empty(connection, sorted(tables))
                mark = time.perf_counter()
                rows = 0
                for table in parents_first(tables, parents):
                    copied = await _copy_table(source, connection, table, tables[table])
                    log.info("copied %s: %d rows", table, copied)
                    rows += copied
                await _move_identity_sequences(connection, counters)
                phases["copy"] = time.perf_counter() - mark
                mark = time.perf_counter()
                # Checked inside the transaction: a difference rolls the whole copy back.
                target_summary = await summarize(
                    PostgresRows(connection), bridged_snapshots(connection), tables, now
                )
                differences = compare_summaries(source_summary, target_summary)
                if differences:
                    raise CopyMismatchError(
                        differences, committed=False, source=source_summary.lines(), target=target_summary.lines()
                    )
            phases["check the copy, commit"] = time.perf_counter() - mark
        finally:
            await connection.close()
        # And once more as any later reader sees it: committed, through a connection of its own.
        mark = time.perf_counter()
        after = await summarize_postgres(target_url, tables, now)
        phases["check again after the commit"] = time.perf_counter() - mark
        differences = compare_summaries(source_summary, after)
        if differences:
            raise CopyMismatchError(differences, committed=True, source=source_summary.lines(), target=after.lines())
    finally:
        await source.close()
    return CopyReport(source_summary, after, rows, time.perf_counter() - started, phases)


async def summarize_postgres(url: str, tables: dict[str, list[str]], now: int) -> DatabaseSummary:
    """The target as committed, from a fresh connection in one REPEATABLE READ read-only snapshot."""
    connection = await asyncpg.connect(url)
    try:
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            return await summarize(PostgresRows(connection), bridged_snapshots(connection), tables, now)
    finally:
        await connection.close()


async def compare_databases(source_path: Path, target_url: str) -> tuple[DatabaseSummary, DatabaseSummary]:
    """Summarize a source and an existing copy (nothing written to either); ``CopyMismatchError`` if
    they differ.  For checking a copy again later, before switching a bot to it."""
    _, tables, _, _ = read_source_schema(source_path)
    now = _replay_time(source_path)
    source = await open_source(source_path)
    try:
        source_summary = await summarize(SqliteRows(source), source.read_snapshot, tables, now)
    finally:
        await source.close()
    target_summary = await summarize_postgres(target_url, tables, now)
    differences = compare_summaries(source_summary, target_summary)
    if differences:
        raise CopyMismatchError(
            differences, committed=True, source=source_summary.lines(), target=target_summary.lines()
        )
    return source_summary, target_summary


def iter_report_lines(report: CopyReport) -> Iterator[str]:
    yield "source (SQLite):"
    yield from (f"  {line}" for line in report.source.lines())
    yield "target (PostgreSQL, read back after the commit):"
    yield from (f"  {line}" for line in report.target.lines())
