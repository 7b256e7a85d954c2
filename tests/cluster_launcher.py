"""The launcher as its own process, with ``tests/cluster_child.py`` for children (the launcher tests
send it real signals).  Run as ``python -m tests.cluster_launcher SHARDS PROCESSES``."""

from __future__ import annotations

import asyncio
import logging
import sys

from bot.cluster import Launcher, plan_processes, serve
from bot.settings import Settings


async def main(shards: int, processes: int) -> int:
    logging.basicConfig(level=logging.INFO)
    plans = plan_processes(shards, processes, Settings(_env_file=None, hashing_workers=processes))
    return await serve(Launcher(plans, command=(sys.executable, "-m", "tests.cluster_child")))


if __name__ == "__main__":
    sys.exit(asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]))))
