"""The preflight of a sharded process: the lease replaces the lock file on PostgreSQL (processes share a
data folder), sharding is refused on SQLite, and the SQLite lock file is what it was."""

from __future__ import annotations

import pytest

import bot.shard_lease
from bot.instance_lock import lock_path_for
from bot.preflight import StartupRefusedError, run_preflight
from bot.settings import Settings


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
