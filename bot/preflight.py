"""Checks that run before the bot connects to Discord or writes anything.

In order: the data folder is private; this is the only bot on the database (on
SQLite ``InstanceLock``, a lock file beside it; on PostgreSQL ``ShardLease``, a lease on the
process's shards held in the database itself, so a second process is refused from any host);
the master key is there and is the database's own
(``chain.adapters.key_check``), never replaced by a new one next to sealed secrets.  Any
failure is a ``StartupRefusedError``: one line that says what is wrong and what
to do, never a key.  After the store is open, ``PlaygroundBot.setup_hook``
records the key check and tightens the files SQLite added.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from bot.instance_lock import InstanceLock, InstanceLockedError
from bot.private_files import database_files, make_private_files, make_private_folder
from bot.settings import Settings, SettingsError
from bot.shard_lease import EXIT_LEASE_LOST, LeaseLost, ShardLease, ShardLeaseError
from chain.adapters.key_check import judge_master_key
from chain.adapters.storage import Database
from chain.errors import MasterKeyMismatchError

log = logging.getLogger(__name__)


class StartupRefusedError(Exception):
    """Starting would be unsafe; the message is one line for the operator."""


class StartupUnavailableError(StartupRefusedError):
    """The database cannot be used now (PostgreSQL down, restarting, out of connections, the network):
    starting again later can work, so ``python -m bot`` exits 69, not 78, and is started again."""


# PostgreSQL's answers that pass: it is starting up or shutting down (57P0x), out of connections or
# space (53xxx), or the connection failed (08xxx). Others (no such database or user, a wrong password)
# are the settings' fault.
TEMPORARY_POSTGRES_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.OperatorInterventionError, asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.PostgresConnectionError,
)


def _postgres_refusal(message: str, exc: asyncpg.PostgresError) -> StartupRefusedError:
    if isinstance(exc, TEMPORARY_POSTGRES_ERRORS):
        return StartupUnavailableError(message)
    return StartupRefusedError(message)


def exit_on_lease_loss(reason: str) -> None:
    """The bot's answer to a lost lease: end the process at once, without a clean shutdown.

    Another process may already hold the shard, so this one must not announce, mine or write one more
    thing; everything it acknowledged is committed, exactly as after a crash.  Its launcher (or
    supervisor) starts it again, and the new process waits for the lease like any other."""
    with contextlib.suppress(OSError):
        sys.stderr.write(f"consensus-playground: stopping: lost the shard lease ({reason})\n")
        sys.stderr.flush()
    os._exit(EXIT_LEASE_LOST)


@dataclass
class Preflight:
    """What the checks established: the verified master key, and the database's guard (held): the lock
    file on SQLite, the shard lease on PostgreSQL."""

    master_key: bytes
    lock: InstanceLock | None
    lease: ShardLease | None = None

    def release(self) -> None:
        """Let go without waiting: the lock file at once; a lease once the server notices its connection
        closed (``close`` waits for the server)."""
        if self.lock is not None:
            self.lock.release()
        if self.lease is not None:
            self.lease.abandon()

    async def close(self) -> None:
        """Let go of everything held, the lease released on the server before this returns."""
        if self.lock is not None:
            self.lock.release()
        if self.lease is not None:
            await self.lease.release()

    def __enter__(self) -> Preflight:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


async def run_preflight(
    settings: Settings, randomness: Callable[[int], bytes] = os.urandom, *, on_lease_lost: LeaseLost | None = None
) -> Preflight:
    """``on_lease_lost``: what a lost shard lease does (PostgreSQL only); default ``exit_on_lease_loss``."""
    problem = settings.sharding_problem()
    if problem is not None:
        raise StartupRefusedError(problem)
    database = settings.database_path
    try:
        make_private_folder(database.parent)
    except OSError as exc:
        raise StartupRefusedError(f"cannot use the data folder {database.parent}: {exc.strerror}") from None
    guard = await _take_guard(settings, on_lease_lost or exit_on_lease_loss)
    try:
        # Read-only: a refusal below leaves the database exactly as it was.
        secrets = await Database.sealed_secrets(settings.database_target())
        master_key = settings.load_master_key(randomness, may_create=secrets is None or not secrets.present)
        judge_master_key(master_key, secrets, source=settings.master_key_source(), database=settings.database_name())
    except (SettingsError, MasterKeyMismatchError) as exc:
        await guard.close()
        raise StartupRefusedError(str(exc)) from None
    except OSError as exc:  # an unreadable key file or database, or a PostgreSQL server not answering
        await guard.close()
        if exc.filename is None and settings.database_url is not None:
            raise StartupUnavailableError(
                f"cannot reach the {settings.database_name()}: {exc.strerror or exc}"
            ) from None
        raise StartupRefusedError(
            f"cannot read {exc.filename or settings.database_name()}: {exc.strerror or exc}"
        ) from None
    except asyncpg.PostgresError as exc:  # the server answered but refused (no such database, user, ...)
        await guard.close()
        raise _postgres_refusal(f"cannot use the {settings.database_name()}: {exc}", exc) from None
    except BaseException:
        await guard.close()
        raise
    files = database_files(database)
    if settings.master_key is None:
        make_private_folder(settings.master_key_file.parent)
        files.append(settings.master_key_file)
    make_private_files(files)
    guard.master_key = master_key
    return guard


async def _take_guard(settings: Settings, on_lease_lost: LeaseLost) -> Preflight:
    """The database's guard, before anything reads it: the lock file (SQLite) or the shard lease
    (PostgreSQL; processes of one bot may then share a data folder on one host).  The master key is
    filled in once judged."""
    if settings.database_url is None:
        database = settings.database_path
        try:
            return Preflight(b"", InstanceLock.acquire(database))
        except InstanceLockedError as exc:
            raise StartupRefusedError(str(exc)) from None
        except OSError as exc:
            raise StartupRefusedError(f"cannot use the data folder {database.parent}: {exc.strerror}") from None
    try:
        lease = await ShardLease.acquire(
            settings.database_url.get_secret_value(), settings.shard_scope(),
            process_index=settings.process_index, on_lost=on_lease_lost,
        )
    except ShardLeaseError as exc:
        raise StartupRefusedError(str(exc)) from None
    except OSError as exc:  # the PostgreSQL server not answering
        raise StartupUnavailableError(
            f"cannot reach the {settings.database_name()}: {exc.strerror or exc}"
        ) from None
    except asyncpg.PostgresError as exc:  # the server answered but refused (no such database, user, ...)
        raise _postgres_refusal(f"cannot use the {settings.database_name()}: {exc}", exc) from None
    return Preflight(b"", None, lease)
