"""Checks that run before the bot connects to Discord or writes anything.

In order: the data folder is private; this is the only bot on the database
(``InstanceLock``); the master key is there and is the database's own
(``chain.adapters.key_check``), never replaced by a new one next to sealed secrets.  Any
failure is a ``StartupRefusedError``: one line that says what is wrong and what
to do, never a key.  After the store is open, ``PlaygroundBot.setup_hook``
records the key check and tightens the files SQLite added.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from bot.instance_lock import InstanceLock, InstanceLockedError
from bot.private_files import database_files, make_private_files, make_private_folder
from bot.settings import Settings, SettingsError
from chain.adapters.key_check import judge_master_key
from chain.adapters.storage import Database
from chain.errors import MasterKeyMismatchError

log = logging.getLogger(__name__)


class StartupRefusedError(Exception):
    """Starting would be unsafe; the message is one line for the operator."""


@dataclass
class Preflight:
    """What the checks established: the verified master key, and the database's lock (held)."""

    master_key: bytes
    lock: InstanceLock

    def release(self) -> None:
        self.lock.release()

    def __enter__(self) -> Preflight:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


async def run_preflight(settings: Settings, randomness: Callable[[int], bytes] = os.urandom) -> Preflight:
    database = settings.database_path
    try:
        make_private_folder(database.parent)
        lock = InstanceLock.acquire(database)
    except InstanceLockedError as exc:
        raise StartupRefusedError(str(exc)) from None
    except OSError as exc:
        raise StartupRefusedError(f"cannot use the data folder {database.parent}: {exc.strerror}") from None
    try:
        # Read-only: a refusal below leaves the database exactly as it was.
        secrets = await Database.sealed_secrets(settings.database_target())
        master_key = settings.load_master_key(randomness, may_create=secrets is None or not secrets.present)
        judge_master_key(master_key, secrets, source=settings.master_key_source(), database=settings.database_name())
    except (SettingsError, MasterKeyMismatchError) as exc:
        lock.release()
        raise StartupRefusedError(str(exc)) from None
    except OSError as exc:  # an unreadable key file or database, or a PostgreSQL server not answering
        lock.release()
        raise StartupRefusedError(
            f"cannot read {exc.filename or settings.database_name()}: {exc.strerror or exc}"
        ) from None
    except asyncpg.PostgresError as exc:  # the server answered but refused (no such database, user, ...)
        lock.release()
        raise StartupRefusedError(f"cannot use the {settings.database_name()}: {exc}") from None
    except BaseException:
        lock.release()
        raise
    files = database_files(database)
    if settings.master_key is None:
        make_private_folder(settings.master_key_file.parent)
        files.append(settings.master_key_file)
    make_private_files(files)
    return Preflight(master_key, lock)
