"""The preflight of a sharded process: the lease replaces the lock file on PostgreSQL (processes share a
data folder), sharding is refused on SQLite, and the SQLite lock file is what it was."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

import bot.shard_lease
from bot.instance_lock import lock_path_for
from bot.preflight import StartupRefusedError, StartupUnavailableError, run_preflight
from bot.settings import Settings
from tests.e2e.test_startup_errors import one_line_refusal
from tests.e2e.test_startup_safety import RIGHT_KEY, bot_env, run_to_end


def never_lost(reason: str) -> None:
    raise AssertionError(reason)


def settings(tmp_path, **values) -> Settings:
    base = {"database_path": tmp_path / "data" / "playground.sqlite3", "master_key": "ab" * 32, "_env_file": None}
    return Settings(**{**base, **values})


async def test_processes_of_a_sharded_bot_share_a_data_folder_and_each_holds_its_shards(
    tmp_path, postgres_url, monkeypatch
):
    monkeypatch.setattr(bot.shard_lease, "LEASE_WAIT_S", 0.0)  # refuse at once, not after waiting for the holder
    sharded = {"database_url": postgres_url, "discord_token": "t", "shard_count": 2}
    first = await run_preflight(settings(tmp_path, **sharded, shard_ids="0"), on_lease_lost=never_lost)
    second = await run_preflight(settings(tmp_path, **sharded, shard_ids="1", process_index=1),
                                 on_lease_lost=never_lost)
    try:
        assert first.lock is None and first.lease is not None and second.lease is not None
        with pytest.raises(StartupRefusedError, match="shard 0 of 2 is already served by playground p0 pid"):
            await run_preflight(settings(tmp_path, **sharded, shard_ids="0", process_index=2))
        with pytest.raises(StartupRefusedError, match="SHARD_COUNT=2"):
            await run_preflight(settings(tmp_path, database_url=postgres_url))  # the one-process bot
        assert not lock_path_for(tmp_path / "data" / "playground.sqlite3").exists()
    finally:
        await first.close()
        await second.close()
    alone = await run_preflight(settings(tmp_path, database_url=postgres_url), on_lease_lost=never_lost)
    await alone.close()


async def test_sharding_on_sqlite_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(StartupRefusedError) as refused:
        await run_preflight(settings(tmp_path, discord_token="t", shard_count=2))
    assert "needs PostgreSQL" in str(refused.value) and "\n" not in str(refused.value)
    assert not (tmp_path / "data").exists()


async def test_the_one_process_bot_on_sqlite_still_holds_the_lock_file(tmp_path):
    preflight = await run_preflight(settings(tmp_path))
    try:
        assert preflight.lease is None and preflight.lock is not None
        with pytest.raises(StartupRefusedError, match="another bot"):
            await run_preflight(settings(tmp_path))
    finally:
        await preflight.close()


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_database_that_cannot_be_reached_is_a_temporary_refusal_exit_69(tmp_path):
    """PostgreSQL down (restarting, a failover, the network): exit 69 like an unreachable Discord, so the
    launcher and systemd start the process again; 78 would make the launcher stop every process for good."""
    env = bot_env(tmp_path, DISCORD_TOKEN="t", MASTER_KEY=RIGHT_KEY,
                  DATABASE_URL=f"postgresql://bot@127.0.0.1:{closed_port()}/playground")
    code, _, stderr = await run_to_end(env, stdin=b"")
    line = one_line_refusal(stderr)
    assert code == 69
    assert "cannot reach the PostgreSQL database" in line


async def answer_starting_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """What PostgreSQL answers every connection while it recovers after a restart (SQLSTATE 57P03)."""
    length = struct.unpack("!I", await reader.readexactly(4))[0]
    body = await reader.readexactly(length - 4)
    if struct.unpack("!I", body[:4])[0] == 80877103:  # an SSLRequest: no SSL here, then the startup message
        writer.write(b"N")
        length = struct.unpack("!I", await reader.readexactly(4))[0]
        await reader.readexactly(length - 4)
    fields = b"SFATAL\0VFATAL\0C57P03\0Mthe database system is starting up\0\0"
    writer.write(b"E" + struct.pack("!I", len(fields) + 4) + fields)
    await writer.drain()
    writer.close()


async def test_a_database_still_starting_up_is_temporary_and_a_missing_one_is_not(tmp_path, postgres_url):
    server = await asyncio.start_server(answer_starting_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(StartupUnavailableError, match="starting up"):
            await run_preflight(settings(tmp_path, database_url=f"postgresql://bot@127.0.0.1:{port}/playground",
                                         discord_token="t"), on_lease_lost=never_lost)
    finally:
        server.close()
        await server.wait_closed()
    missing = postgres_url.rsplit("/", 1)[0] + "/no_such_database"
    with pytest.raises(StartupRefusedError) as refused:
        await run_preflight(settings(tmp_path, database_url=missing, discord_token="t"), on_lease_lost=never_lost)
    assert not isinstance(refused.value, StartupUnavailableError) and "no_such_database" in str(refused.value)
