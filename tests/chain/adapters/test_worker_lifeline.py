"""A process bound to its owner ends when the owner is SIGKILLed (the hashing workers' guarantee)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
BOUND = (
    "import sys, threading; from chain.adapters.worker_lifeline import bind_to_owner\n"
    "bind_to_owner(int(sys.argv[1]))\n"
    "print('bound', flush=True)\n"
    "threading.Event().wait()\n"
)


def test_a_bound_process_ends_with_its_owner():
    owner = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    bound = subprocess.Popen([sys.executable, "-c", BOUND, str(owner.pid)], cwd=ROOT, stdout=subprocess.PIPE)
    try:
        assert bound.stdout.readline() == b"bound\n"
        assert bound.poll() is None
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait()
        # Bounds a failure only: without the watch it would wait forever.
        assert bound.wait(timeout=30) == 1
    finally:
        for proc in (owner, bound):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_binding_to_an_owner_that_is_already_gone_ends_at_once():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    bound = subprocess.run([sys.executable, "-c", BOUND, str(gone.pid)], cwd=ROOT, capture_output=True, timeout=30)
    assert bound.returncode == 1 and b"bound" not in bound.stdout


CORE = (
    "import asyncio, os\n"
    "from chain.adapters.hashcore import HashingCore\n"
    "async def main():\n"
    "    core = HashingCore(2)\n"
    "    await core.start()\n"
    "    print('started', flush=True)\n"
    "    await asyncio.Event().wait()\n"
    "asyncio.run(main())\n"
)


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                text = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = text[text.rindex(")") + 2 :].split()
            if fields[0] != "Z" and int(fields[1]) == pid:
                found.append(int(entry))
    return found


def command_line(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def thread_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def test_hashing_workers_end_when_their_forkserver_is_killed_while_the_bot_is_stuck():
    owner = subprocess.Popen([sys.executable, "-c", CORE], cwd=ROOT, stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert owner.stdout.readline() == b"started\n"
        (forkserver,) = [p for p in children_of(owner.pid) if b"forkserver" in command_line(p)]
        workers = children_of(forkserver)
        assert len(workers) == 2
        # A worker may still be starting (the warm-up chunks can both go to one worker): wait until
        # each has run its initializer, whose owner watch is the worker's second thread.
        for _ in range(3000):
            if all(thread_count(p) >= 2 for p in workers):
                break
            time.sleep(0.01)
        assert all(thread_count(p) >= 2 for p in workers)
        # Stopped, the owner cannot notice the broken pool and end the workers itself.
        os.kill(owner.pid, signal.SIGSTOP)
        os.kill(forkserver, signal.SIGKILL)
        # Bounds a failure only: without PR_SET_PDEATHSIG the workers would stay.
        for _ in range(600):
            if not any(command_line(p) for p in workers):
                break
            time.sleep(0.05)
        assert not [p for p in workers if command_line(p)]
    finally:
        os.killpg(owner.pid, signal.SIGKILL)
        owner.wait()
