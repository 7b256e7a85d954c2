"""A process bound to its owner ends when the owner is SIGKILLed (the hashing workers' guarantee)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOUND = (
    "import sys, threading; from chain.worker_lifeline import bind_to_owner\n"
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
