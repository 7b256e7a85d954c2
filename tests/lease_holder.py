"""Child process for the lease tests: holds a shard lease as a bot process does, until it is killed.

Run as ``python -m tests.lease_holder URL SHARD_COUNT SHARD_IDS PROCESS_INDEX``.  Prints ``held PID``
(the lease connection's backend pid) once it holds the lease; a lost lease ends it as it ends the bot
(``bot.preflight.exit_on_lease_loss``: exit 75).
"""

from __future__ import annotations

import asyncio
import sys

from bot.preflight import exit_on_lease_loss
from bot.shard_lease import ShardLease
from bot.shard_scope import ShardScope, parse_shard_ids


async def main(url: str, shard_count: int, shard_ids: str, process_index: int) -> None:
    scope = ShardScope(shard_count, parse_shard_ids(shard_ids, shard_count))
    lease = await ShardLease.acquire(url, scope, process_index=process_index, on_lost=exit_on_lease_loss)
    sys.stdout.write(f"held {await lease.connection.backend_pid()}\n")
    sys.stdout.flush()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])))
