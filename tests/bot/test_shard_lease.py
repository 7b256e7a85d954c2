"""Shard leases on a real PostgreSQL server: one process per shard, one shard count per database,
released when the holder dies, and a process that loses its lease stops."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import asyncpg
import pytest

import bot.shard_lease
from bot.shard_lease import EXIT_LEASE_LOST, ShardLayoutError, ShardLease, ShardLeaseHeldError
from bot.shard_scope import ShardScope
from chain.adapters.storage import Store
from chain.adapters.storage.lease import LeaseConnection

ROOT = Path(__file__).resolve().parents[2]


def never_lost(reason: str) -> None:
    raise AssertionError(f"the lease was lost: {reason}")


async def take(
    url: str, count: int, ids: tuple[int, ...], index: int = 0, on_lost=never_lost, wait_s: float = 0.0
) -> ShardLease:
    """The lease, or at once the refusal (``wait_s``: how long a held lease is waited for)."""
    return await ShardLease.acquire(url, ShardScope(count, ids), process_index=index, on_lost=on_lost, wait_s=wait_s)


async def start_holder(url: str, count: int, ids: str, index: int) -> tuple[asyncio.subprocess.Process, int]:
    """A separate process holding a lease (tests/lease_holder.py); its lease connection's backend pid."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.lease_holder", url, str(count), ids, str(index), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line.startswith(b"held "), (line, await proc.stderr.read())
    return proc, int(line.split()[1])


async def test_a_second_process_for_a_shard_is_refused_and_told_who_holds_it(postgres_url):
    first = await take(postgres_url, 2, (0,), index=0)
    try:
        with pytest.raises(ShardLeaseHeldError) as refused:
            await take(postgres_url, 2, (0,), index=7)
        text = str(refused.value)
        assert f"shard 0 of 2 is already served by playground p0 pid {os.getpid()} on {socket.gethostname()}" in text
        assert "PostgreSQL backend pid" in text and "\n" not in text
        second = await take(postgres_url, 2, (1,), index=1)  # the other shard is free
        await second.release()
    finally:
        await first.release()
    again = await take(postgres_url, 2, (0,), index=7)  # released on the server: free at once
    await again.release()


async def test_a_start_waits_for_a_lease_its_holder_gives_up_meanwhile(postgres_url):
    """A launcher restarted at once finds its old children's leases still held for a moment: it waits."""
    holder = await take(postgres_url, 2, (0,))
    waiting = asyncio.create_task(take(postgres_url, 2, (0,), index=1, wait_s=60))
    while not any(name.startswith("playground p1 ") for name in await connected_names(postgres_url)):
        await asyncio.sleep(0.01)  # the second process is connected and trying
    assert not waiting.done()
    await holder.release()
    lease = await asyncio.wait_for(waiting, 60)
    await lease.release()


async def connected_names(url: str) -> list[str]:
    """The application_name of every lease connection, holding or still trying."""
    admin = await asyncpg.connect(url)
    try:
        rows = await admin.fetch(
            "SELECT application_name FROM pg_stat_activity WHERE application_name LIKE 'playground %'"
        )
    finally:
        await admin.close()
    return [r[0] for r in rows]


async def test_a_refused_process_takes_none_of_its_shards(postgres_url):
    holder = await take(postgres_url, 4, (1,))
    try:
        with pytest.raises(ShardLeaseHeldError, match="shard 1 of 4"):
            await take(postgres_url, 4, (0, 1, 2))
        others = await take(postgres_url, 4, (0, 2, 3))  # 0 and 2 were given back
        await others.release()
    finally:
        await holder.release()


async def test_the_unsharded_bot_on_postgres_is_one_per_database(postgres_url):
    first = await take(postgres_url, 1, (0,))
    try:
        with pytest.raises(ShardLeaseHeldError, match="another bot is already running on this database"):
            await take(postgres_url, 1, (0,))
        with pytest.raises(ShardLayoutError, match="SHARD_COUNT=1"):
            await take(postgres_url, 2, (1,))
    finally:
        await first.release()


async def test_processes_with_another_shard_count_are_refused(postgres_url):
    first = await take(postgres_url, 2, (0,))
    try:
        for count, ids in ((3, (2,)), (1, (0,)), (4, (3,))):
            with pytest.raises(ShardLayoutError) as refused:
                await take(postgres_url, count, ids)
            assert "SHARD_COUNT=2" in str(refused.value) and f"SHARD_COUNT={count}" in str(refused.value)
    finally:
        await first.release()
    other = await take(postgres_url, 3, (2,))  # once every process of the old layout stopped
    await other.release()


async def test_processes_starting_at_the_same_moment_never_share_a_shard_or_mix_shard_counts(postgres_url):
    layouts = [(2, (0,)), (3, (0,)), (2, (0,)), (3, (1,)), (2, (1,)), (4, (0,)), (3, (0,)), (2, (1,))]
    results = await asyncio.gather(*(take(postgres_url, c, ids) for c, ids in layouts), return_exceptions=True)
    won = [(c, ids) for (c, ids), r in zip(layouts, results, strict=True) if isinstance(r, ShardLease)]
    try:
        assert all(isinstance(r, (ShardLease, ShardLayoutError, ShardLeaseHeldError)) for r in results), results
        assert len({c for c, _ in won}) == 1  # one shard count
        shards = [s for _, ids in won for s in ids]
        assert len(shards) == len(set(shards)) >= 1  # each shard once
    finally:
        for r in results:
            if isinstance(r, ShardLease):
                await r.release()


async def test_leases_and_chain_write_locks_never_collide(postgres_url):
    """A chain whose id has the lease namespace in its high bits still writes while a lease is held."""
    lease = await take(postgres_url, 2, (0,))
    store = await Store.open(postgres_url)
    try:
        chain_id = (0x73686172 << 32) | ((2 << 16) | 0)
        async with store.db.transaction(chain_id) as tx:
            await tx.fetchone("SELECT 1")
        async with store.db.transaction() as tx:  # the global write lock
            await tx.fetchone("SELECT 1")
        assert await lease.holds_all()
    finally:
        await store.close()
        await lease.release()


async def test_a_killed_holders_lease_is_released_by_postgres(postgres_url):
    proc, _ = await start_holder(postgres_url, 2, "0", 3)
    try:
        with pytest.raises(ShardLeaseHeldError, match=f"playground p3 pid {proc.pid} on "):
            await take(postgres_url, 2, (0,))
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        # The server notices the closed socket a moment later: wait for that, then take it.
        connection = await LeaseConnection.open(postgres_url, "test watcher")
        try:
            while await connection.holders():
                await asyncio.sleep(0.05)
        finally:
            await connection.close()
        lease = await take(postgres_url, 2, (0,))
        await lease.release()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def terminate_backend(url: str, backend_pid: int) -> None:
    admin = await asyncpg.connect(url)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", backend_pid)
    finally:
        await admin.close()


async def test_a_lost_lease_is_reported_at_once(postgres_url, monkeypatch):
    monkeypatch.setattr(bot.shard_lease, "LEASE_CHECK_S", 0.05)
    lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    lease = await take(postgres_url, 2, (1,), on_lost=lambda reason: lost.done() or lost.set_result(reason))
    try:
        await terminate_backend(postgres_url, await lease.connection.backend_pid())
        reason = await asyncio.wait_for(lost, 10)
        assert "lease connection" in reason and lease.lost
    finally:
        await lease.release()


async def test_a_process_that_loses_its_lease_stops_with_exit_75(postgres_url):
    proc, backend_pid = await start_holder(postgres_url, 2, "1", 0)
    try:
        await terminate_backend(postgres_url, backend_pid)
        code = await asyncio.wait_for(proc.wait(), 30)
        assert code == EXIT_LEASE_LOST
        assert b"lost the shard lease" in await proc.stderr.read()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_the_server_drops_a_silent_lease_connection_soon_but_after_its_process_stops(postgres_url):
    """A lease connection whose client went silent (network cut, host gone, a half-open TCP connection)
    must not hold its shards for PostgreSQL's default two hours (the launcher gives a restarted child
    about half a minute before it stops every process), yet must outlive the process's own watch: the
    process stops (one check, then its timeout) before the server lets another process take its shards."""
    lease = await take(postgres_url, 2, (0,))
    try:
        assert postgres_url.split("@")[-1].startswith("127.0.0.1:")  # TCP: the keepalive settings apply
        show = lease.connection._connection.fetchval
        idle, interval, count = [int(await show(f"SHOW tcp_keepalives_{n}")) for n in ("idle", "interval", "count")]
        user_timeout_s = int(await show("SHOW tcp_user_timeout")) / 1000
        dropped_after_s = max(idle + interval * count, user_timeout_s)
        assert user_timeout_s > 0 and dropped_after_s <= 30
        own_watch_s = bot.shard_lease.LEASE_CHECK_S + bot.shard_lease.LEASE_CHECK_TIMEOUT_S
        assert own_watch_s < min(idle + interval * count, user_timeout_s)
    finally:
        await lease.release()
