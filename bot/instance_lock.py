"""One bot process per database: an exclusive lock on ``<database>.lock``.

Two bots on one database would both connect to Discord with one token and
take turns kicking each other off the gateway, while writing the same chains.
The lock is an ``flock`` on a file next to the database: the kernel releases it
when the process ends, however it ends (SIGKILL included), so a crash never
leaves a stale lock behind.  The file records the holder's pid, for the message
the next process prints.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


class InstanceLockedError(Exception):
    """Another process holds the database's lock."""

    def __init__(self, database: Path, lock_path: Path, holder_pid: int | None) -> None:
        holder = f"pid {holder_pid}" if holder_pid is not None else "a process whose pid is not recorded"
        super().__init__(
            f"another bot ({holder}) is already running on {database} (it holds {lock_path}). "
            "Stop it first, or give this one a DATABASE_PATH of its own."
        )
        self.holder_pid = holder_pid


def lock_path_for(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


class InstanceLock:
    """Held from ``acquire`` until ``release`` (or until the process ends)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, database: Path) -> InstanceLock:
        """Take the lock of ``database`` or raise ``InstanceLockedError`` naming the holder."""
        path = lock_path_for(database)
        # O_CLOEXEC: a child process must never inherit (and so keep holding) the lock.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _recorded_pid(fd)
            os.close(fd)
            raise InstanceLockedError(database, path, holder) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        log.debug("holding %s", path)
        return cls(path, fd)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        # Not unlinked: a process waiting on the old file would then lock a file nobody else sees.
        os.ftruncate(fd, 0)
        os.close(fd)

    def __enter__(self) -> InstanceLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _recorded_pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None
