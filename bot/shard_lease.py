"""Each bot process on PostgreSQL holds a lease on its shards (``chain/adapters/storage/lease.py``).

Several processes share one PostgreSQL database, each serving the servers of its own shards
(``bot/shard_scope.py``).  Two processes serving one shard would both mine, drive slots and announce
for its servers, so each process takes, before it connects to Discord, one session advisory lock
per shard (layout: the shard count; part: the shard) on a connection of its own.  PostgreSQL
releases them when that connection ends, however it ends: a crashed or killed process never leaves
a stale lease, and its successor can take the shard as soon as the server has noticed.

- **One shard count at a time.** Processes with different shard counts would own overlapping sets
  of servers: a lease of another shard count held on the database refuses the start.  Changing the
  shard count means stopping every process first (nothing else is stored per shard: ownership is
  computed from the server id).
- **Who holds it.** The lease connection's ``application_name`` names its process (index, pid,
  host, shards); a refusal reads it back and names the holder.
- **Losing it.** A watch checks every ``LEASE_CHECK_S`` that the connection still holds its leases,
  and the connection's close is watched too; a lost lease (server restart, network,
  ``pg_terminate_backend``) calls ``on_lost``, which in the bot ends the process at once
  (``EXIT_LEASE_LOST``): another process may already hold the shard, and whatever this one
  acknowledged is committed.

The unsharded bot on PostgreSQL holds the lease of shard 0 of 1: a second bot on the same database,
from any host, is refused like a second process for one shard.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable

from bot.shard_scope import ShardScope, format_shard_ids
from chain.adapters.storage.lease import CONNECTION_ERRORS, LeaseAttempt, LeaseConnection

log = logging.getLogger(__name__)

# How often the lease connection is checked, and how long a check may take before the lease counts as lost.
LEASE_CHECK_S = 2.0
LEASE_CHECK_TIMEOUT_S = 10.0
# A start finding its shard held (or another shard count running) tries again for this long before it
# refuses: the holder may be a process that just died, whose connection PostgreSQL is still closing
# (a launcher restarted by its supervisor starts its children at once).
LEASE_WAIT_S = 5.0
LEASE_RETRY_S = 0.2
# sysexits' EX_TEMPFAIL: the process lost its lease while running; its launcher starts it again.
EXIT_LEASE_LOST = 75

LeaseLost = Callable[[str], None]
LEASE_CHECK_ERRORS: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, TimeoutError)


def lease_name(scope: ShardScope, process_index: int, pid: int, host: str) -> str:
    """The lease connection's ``application_name``: who holds the lease, for the next process's refusal."""
    return f"playground p{process_index} pid {pid} on {host} {scope.describe()}"


class ShardLeaseError(Exception):
    """The process cannot have its lease; one line for the operator."""


class ShardLeaseHeldError(ShardLeaseError):
    """Another process holds one of this process's shards."""


class ShardLayoutError(ShardLeaseError):
    """Processes with another shard count run on this database."""


class ShardLease:
    """The leases of one process's shards, on a connection of its own; see the module."""

    def __init__(self, connection: LeaseConnection, scope: ShardScope, name: str, on_lost: LeaseLost) -> None:
        self.connection = connection
        self.scope = scope
        self.name = name
        self._on_lost = on_lost
        self._released = False
        self._lost = False
        self._watch: asyncio.Task[None] | None = None

    @classmethod
    async def acquire(
        cls, url: str, scope: ShardScope, *, process_index: int, on_lost: LeaseLost,
        pid: int | None = None, host: str | None = None, wait_s: float | None = None,
    ) -> ShardLease:
        """Take the lease of every shard of ``scope``, or raise ``ShardLeaseError`` naming who is in the way.

        ``wait_s`` (default ``LEASE_WAIT_S``): how long a lease held by another process is waited for."""
        name = lease_name(scope, process_index, os.getpid() if pid is None else pid, host or socket.gethostname())
        connection = await LeaseConnection.open(url, name)
        deadline = time.monotonic() + (LEASE_WAIT_S if wait_s is None else wait_s)
        try:
            while not (attempt := await connection.take(scope.shard_count, scope.shard_ids)).taken:
                if time.monotonic() >= deadline:
                    break
                await asyncio.sleep(LEASE_RETRY_S)
            _refuse_unless_taken(scope, attempt)
        except BaseException:
            await connection.close()
            raise
        lease = cls(connection, scope, name, on_lost)
        connection.on_closed(lease._closed)
        lease._watch = asyncio.create_task(lease._keep_watch(), name="shard-lease-watch")
        log.info("holding the lease of %s as %r", scope.describe(), name)
        return lease

    @property
    def lost(self) -> bool:
        return self._lost

    async def holds_all(self) -> bool:
        """Whether the connection still holds every one of its shards' leases (asks the server)."""
        return await self.connection.held_count() == len(self.scope.shard_ids)

    async def _keep_watch(self) -> None:
        while not self._released and not self._lost:
            await asyncio.sleep(LEASE_CHECK_S)
            if self._released:
                return
            try:
                held = await asyncio.wait_for(self.holds_all(), LEASE_CHECK_TIMEOUT_S)
            except LEASE_CHECK_ERRORS as exc:
                self._lose(f"the lease connection failed ({type(exc).__name__}: {exc})")
                return
            if not held:
                self._lose("the lease connection no longer holds every shard's lease")
                return

    def _closed(self) -> None:
        self._lose("the lease connection was closed")

    def _lose(self, reason: str) -> None:
        if self._released or self._lost:
            return
        self._lost = True
        log.critical("lost the lease of %s: %s", self.scope.describe(), reason)
        self._on_lost(reason)

    async def release(self) -> None:
        """Give the shards up now (a clean stop): unlocked on the server before this returns."""
        if self._released:
            return
        self._released = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        await self.connection.close()

    def abandon(self) -> None:
        """Give the shards up without waiting (no event loop to wait in): the connection is dropped and
        the server releases the leases once it notices, a moment later."""
        if self._released:
            return
        self._released = True
        if self._watch is not None:
            self._watch.cancel()
        self.connection.terminate()


def _refuse_unless_taken(scope: ShardScope, attempt: LeaseAttempt) -> None:
    if attempt.other_layout:
        first = attempt.other_layout[0]
        counts = sorted({h.layout for h in attempt.other_layout})
        raise ShardLayoutError(
            f"this database is served by processes with SHARD_COUNT={counts[0]} (shard {first.part} is held by "
            f"{first.describe()}), and this one has SHARD_COUNT={scope.shard_count}: their servers would overlap. "
            "Start it with the same shard count, or stop every process first to change it."
        )
    if attempt.refused_part is None:
        return
    shard = attempt.refused_part
    holder = attempt.holder_of(scope.shard_count, shard)
    who = holder.describe() if holder is not None else "a process that took it a moment ago"
    if scope.shard_count == 1:
        raise ShardLeaseHeldError(
            f"another bot is already running on this database: {who} holds its lease. Stop it first, or give this "
            "one a DATABASE_URL of its own."
        )
    raise ShardLeaseHeldError(
        f"shard {shard} of {scope.shard_count} is already served by {who}. Stop that process first, or give this "
        f"one other SHARD_IDS (it asked for {format_shard_ids(scope.shard_ids)})."
    )
