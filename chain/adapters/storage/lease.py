"""Leases in PostgreSQL: session advisory locks on a connection of their own (``bot/shard_lease.py`` uses them).

A lease is one session-level advisory lock per part (a shard) of a layout (a shard count), held
by one dedicated connection: PostgreSQL releases it when that connection ends, however it ends.
Not a pooled connection: a pool hands connections around and closes idle ones, and a session lock
belongs to its connection.  The connection asks the server to drop it soon once its client goes
silent (``SILENCE_SETTINGS``), so a vanished holder's leases come free in about 25 s, not hours.

- **Keys.** Two 32-bit keys, ``(LEASE_NAMESPACE, layout << PART_BITS | part)``.  PostgreSQL keeps
  two-key advisory locks apart from single 64-bit keys, so no per-chain write lock
  (``pg_advisory_xact_lock(chain_id)``) can collide with a lease; ``LEASE_NAMESPACE`` differs from
  the global write lock's first key (``postgres.GLOBAL_LOCK_KEYS``).  The layout is in the key, so
  the leases held say which layout their holders use.
- **One layout at a time.** ``take`` checks the leases held (``pg_locks``) and takes its own in one
  transaction holding the transaction lock ``(LEASE_NAMESPACE, LAYOUT_KEY)``: no two connections
  check at once, so none slips a lease of another layout in between.  A lease of another layout
  held anywhere on the database means nothing is taken.
- **Who holds it.** The connection's ``application_name`` names its holder; ``holders`` reads the
  names back from ``pg_stat_activity``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

log = logging.getLogger(__name__)

LEASE_NAMESPACE = 0x73686172  # "shar"
# The transaction lock held while leases are checked and taken.
LAYOUT_KEY = -1
# Bits of the second key that hold the part; the layout sits above them.
PART_BITS = 16
MAX_LAYOUT = 1 << (31 - PART_BITS - 1)  # keeps the second key a positive signed 32-bit int
# PostgreSQL keeps the first 63 bytes of an application_name.
APPLICATION_NAME_BYTES = 63

# How soon the server drops a lease connection whose client went silent (a network cut, a host gone, a
# half-open TCP connection), releasing its leases: keepalive probes after 10 s idle, 5 s apart, 3
# unanswered; data unacknowledged for 25 s (tcp_user_timeout). Without them PostgreSQL keeps such a
# connection, and the shards, for the system's default of over two hours. Longer than the holder's
# own watch (``bot.shard_lease``: a check every 2 s, 10 s to answer): the holder stops first.
KEEPALIVE_IDLE_S = 10
KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_COUNT = 3
USER_TIMEOUT_MS = 25_000
SILENCE_SETTINGS = {
    "tcp_keepalives_idle": str(KEEPALIVE_IDLE_S),
    "tcp_keepalives_interval": str(KEEPALIVE_INTERVAL_S),
    "tcp_keepalives_count": str(KEEPALIVE_COUNT),
    "tcp_user_timeout": str(USER_TIMEOUT_MS),
}

# Errors a lost connection raises (the server restarted or terminated it, the network failed).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


def lease_key(layout: int, part: int) -> int:
    if not (1 <= layout <= MAX_LAYOUT and 0 <= part < layout):
        raise ValueError(f"no lease key for part {part} of layout {layout}")
    return (layout << PART_BITS) | part


def application_name(text: str) -> str:
    """``text`` cut to what PostgreSQL keeps of an application_name (whole characters)."""
    return text.encode()[:APPLICATION_NAME_BYTES].decode("utf-8", "ignore")


@dataclass(frozen=True, slots=True)
class LeaseHolder:
    """A lease some connection holds, as ``pg_locks`` and ``pg_stat_activity`` show it."""

    layout: int
    part: int
    backend_pid: int
    application_name: str
    client: str

    def describe(self) -> str:
        name = self.application_name or "a connection without an application_name"
        return f"{name} (PostgreSQL backend pid {self.backend_pid}, from {self.client or 'a local socket'})"


@dataclass(frozen=True, slots=True)
class LeaseAttempt:
    """What ``take`` found: every lease held before it (others'), and why it took none, if it did not."""

    holders: tuple[LeaseHolder, ...]
    # Leases of another layout: nothing was taken.
    other_layout: tuple[LeaseHolder, ...] = ()
    # The first part another connection held: nothing was taken.
    refused_part: int | None = None

    @property
    def taken(self) -> bool:
        return not self.other_layout and self.refused_part is None

    def holder_of(self, layout: int, part: int) -> LeaseHolder | None:
        return next((h for h in self.holders if (h.layout, h.part) == (layout, part)), None)


class LeaseConnection:
    """One dedicated connection holding leases; open with ``await LeaseConnection.open(url, name)``."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    @classmethod
    async def open(cls, url: str, name: str) -> LeaseConnection:
        connection = await asyncpg.connect(
            url, server_settings={"application_name": application_name(name), **SILENCE_SETTINGS}
        )
        return cls(connection)

    async def take(self, layout: int, parts: tuple[int, ...]) -> LeaseAttempt:
        """Every part's lease, all or none, unless another layout holds leases here (see the module)."""
        connection = self._connection
        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock($1, $2)", LEASE_NAMESPACE, LAYOUT_KEY)
            holders = tuple(await self.holders())
            other = tuple(h for h in holders if h.layout != layout)
            if other:
                return LeaseAttempt(holders, other_layout=other)
            for part in parts:
                taken = await connection.fetchval(
                    "SELECT pg_try_advisory_lock($1, $2)", LEASE_NAMESPACE, lease_key(layout, part)
                )
                if not taken:
                    # All or none: session locks outlive the transaction, so give back the ones taken.
                    await self._unlock_all()
                    return LeaseAttempt(holders, refused_part=part)
        return LeaseAttempt(holders)

    async def holders(self) -> list[LeaseHolder]:
        """Every lease held on this database, by any connection (this one included)."""
        rows = await self._connection.fetch(
            "SELECT l.objid::bigint, l.pid, COALESCE(a.application_name, ''), COALESCE(host(a.client_addr), '') "
            "FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.granted AND l.classid::bigint = $1 "
            "AND l.objid::bigint <> $2 "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY l.objid",
            LEASE_NAMESPACE, LAYOUT_KEY & 0xFFFFFFFF,
        )
        part_mask = (1 << PART_BITS) - 1
        return [LeaseHolder(key >> PART_BITS, key & part_mask, pid, name, client) for key, pid, name, client in rows]

    async def held_count(self) -> int:
        """How many leases this connection holds now (asks the server: proof the connection is alive)."""
        count = await self._connection.fetchval(
            "SELECT COUNT(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory' "
            "AND objsubid = 2 AND granted AND classid::bigint = $1",
            LEASE_NAMESPACE,
        )
        return int(count)

    async def backend_pid(self) -> int:
        return int(await self._connection.fetchval("SELECT pg_backend_pid()"))

    def on_closed(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the connection closes, however (our own ``close`` included)."""
        self._connection.add_termination_listener(lambda _connection: callback())

    async def _unlock_all(self) -> None:
        await self._connection.execute("SELECT pg_advisory_unlock_all()")

    async def close(self) -> None:
        """Unlock every lease on the server, then close: another connection can take them at once."""
        try:
            if not self._connection.is_closed():
                await self._unlock_all()
        except CONNECTION_ERRORS:
            log.debug("the lease connection was gone before its leases were released", exc_info=True)
        finally:
            with contextlib.suppress(*CONNECTION_ERRORS):
                await self._connection.close()

    def terminate(self) -> None:
        """Drop the connection without waiting: the server releases the leases once it notices."""
        self._connection.terminate()
