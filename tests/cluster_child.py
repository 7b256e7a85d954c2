"""A stand-in for ``python -m bot`` in the launcher tests: records what it was given, waits for SIGTERM.

Writes ``<CLUSTER_TEST_DIR>/p<PROCESS_INDEX>-<pid>.start`` with its shard settings, and on SIGTERM
``...-<pid>.sigterm`` before it exits 0.  With ``CLUSTER_TEST_REFUSE`` set to its index it exits 78 at
once, as the bot does when it refuses to start.  With ``CLUSTER_TEST_HANG`` set it ignores SIGTERM (a
child stuck in its shutdown), writing ``...-<pid>.sigterm`` all the same.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path


def main() -> int:
    folder = Path(os.environ["CLUSTER_TEST_DIR"])
    index = os.environ["PROCESS_INDEX"]
    if os.environ.get("CLUSTER_TEST_REFUSE") == index:
        sys.stderr.write("consensus-playground: cannot start: (the test's refusal)\n")
        return 78
    stem = folder / f"p{index}-{os.getpid()}"
    names = ("SHARD_COUNT", "SHARD_IDS", "PROCESS_INDEX", "HASHING_WORKERS", "SYNC_COMMANDS", "DASHBOARD_PORT")
    settings = " ".join(f"{name}={os.environ.get(name, '')}" for name in names)

    def publish(suffix: str, text: str) -> None:
        # Written aside, then renamed: the test polls for the name and must never read a half-written file.
        aside = stem.with_suffix(suffix + ".part")
        aside.write_text(text)
        os.replace(aside, stem.with_suffix(suffix))

    def stop(_sig: int, _frame: object) -> None:
        publish(".sigterm", "stopped\n")
        if not os.environ.get("CLUSTER_TEST_HANG"):
            sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    publish(".start", settings + "\n")
    while True:
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
