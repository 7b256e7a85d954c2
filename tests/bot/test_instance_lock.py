"""One bot process per database: the second is refused with the holder's pid; a kill frees the lock."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bot.instance_lock import InstanceLock, InstanceLockedError, lock_path_for

ROOT = Path(__file__).resolve().parents[2]
HOLDER = (
    "import sys; from pathlib import Path; from bot.instance_lock import InstanceLock\n"
    "lock = InstanceLock.acquire(Path(sys.argv[1]))\n"
    "print('locked', flush=True)\n"
    "sys.stdin.read()\n"
)


def start_holder(database: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(database)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert proc.stdout.readline() == b"locked\n"
    return proc


def test_a_second_process_is_refused_with_the_holders_pid(tmp_path):
    database = tmp_path / "playground.sqlite3"
    holder = start_holder(database)
    try:
        with pytest.raises(InstanceLockedError) as caught:
            InstanceLock.acquire(database)
        assert caught.value.holder_pid == holder.pid
        assert f"pid {holder.pid}" in str(caught.value) and str(database) in str(caught.value)
        assert stat.S_IMODE(lock_path_for(database).stat().st_mode) == 0o600
    finally:
        holder.kill()
        holder.wait()


def test_sigkill_frees_the_lock(tmp_path):
    database = tmp_path / "playground.sqlite3"
    holder = start_holder(database)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with InstanceLock.acquire(database):
        assert lock_path_for(database).read_text() == f"{os.getpid()}\n"


def test_the_lock_is_exclusive_within_one_process_too_and_release_frees_it(tmp_path):
    database = tmp_path / "playground.sqlite3"
    first = InstanceLock.acquire(database)
    with pytest.raises(InstanceLockedError):
        InstanceLock.acquire(database)
    first.release()
    first.release()  # twice is harmless
    InstanceLock.acquire(database).release()
