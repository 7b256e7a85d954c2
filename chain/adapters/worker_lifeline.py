"""Tie a worker process's life to its owner's: when the owner dies, however it dies, so does the worker.

With the ``forkserver`` start method a pool worker is the child of the
forkserver, not of the process that owns the pool.  The workers hold the
forkserver's "alive" pipe and the resource tracker's pipe open (each worker is
handed both), so when the owner is SIGKILLed nothing notices: workers, the
forkserver and the resource tracker all stay, forever.  Once the workers exit,
the last copies of those pipes close and the other two exit on their own.

So every worker:

* watches its owner through a pidfd (Linux 5.3+): a daemon thread waits until
  the owner's pidfd is readable, which the kernel makes it when the owner dies,
  then ends the worker at once; where pidfds are missing it checks every second
  that the owner still exists;
* asks the kernel for SIGKILL when its parent (the forkserver) dies
  (``PR_SET_PDEATHSIG``), which covers the forkserver being killed while the
  owner cannot react (stopped, or stuck).  Not when the parent is the owner
  itself (``fork``/``spawn``): that signal follows the parent *thread*, and the
  owner starts workers from short-lived threads; the pidfd watch covers it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import select
import signal
import sys
import threading
import time

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_FALLBACK_CHECK_S = 1.0


def bind_to_owner(owner_pid: int) -> None:
    """Call in the worker: end this process when ``owner_pid`` (or this process's parent) dies."""
    parent = os.getppid()
    if parent != owner_pid:
        # Only for a parent other than the owner (the forkserver, single-threaded): the signal
        # comes when the parent *thread* ends, and the owner's threads come and go.
        _kill_me_with_my_parent()
    if os.getppid() != parent or not _alive(owner_pid):
        # The parent or the owner died before the watch was in place: nobody will ever use us.
        os._exit(1)
    watcher = threading.Thread(target=_watch, args=(owner_pid,), name="owner-watch", daemon=True)
    watcher.start()


def _kill_me_with_my_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        log.warning("cannot ask to die with the parent process: %s", os.strerror(ctypes.get_errno()))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _watch(owner_pid: int) -> None:
    try:
        pidfd = os.pidfd_open(owner_pid)
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):  # no pidfds here (old kernel, not Linux): poll instead
        while _alive(owner_pid):
            time.sleep(_FALLBACK_CHECK_S)
        os._exit(1)
    # Readable exactly when the owner has exited; blocks (without using CPU) until then.
    select.select([pidfd], [], [])
    os._exit(1)
