"""The launcher (python -m bot --shards): the split, restarts, refusals and signals, with stand-in children."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import pytest

import bot.cluster
from bot.cluster import Launcher, LaunchRefusedError, plan_processes
from bot.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CHILD = (sys.executable, "-m", "tests.cluster_child")


def settings(**values) -> Settings:
    return Settings(_env_file=None, **values)


def test_shards_workers_ports_and_the_command_sync_are_split_between_processes():
    plans = plan_processes(4, 2, settings(hashing_workers=2, dashboard_port=9000))
    assert [p.shard_ids for p in plans] == [(0, 1), (2, 3)]
    assert [p.hashing_workers for p in plans] == [1, 1]
    assert [p.dashboard_port for p in plans] == [9000, 9001]
    env = [p.environment({"DATABASE_URL": "postgresql://x", "SHARD_IDS": "stale"}) for p in plans]
    assert [(e["SHARD_COUNT"], e["SHARD_IDS"], e["PROCESS_INDEX"], e["SYNC_COMMANDS"]) for e in env] == [
        ("4", "0-1", "0", "true"), ("4", "2-3", "1", "false"),
    ]
    assert all(e["DATABASE_URL"] == "postgresql://x" for e in env)
    assert plans[1].describe() == "process 1: shards 2-3 of 4, 1 hashing worker, dashboard on port 9001"
    # Default: one process per shard; fewer workers than processes still gives each one.
    assert [p.hashing_workers for p in plan_processes(3, None, settings(hashing_workers=1))] == [1, 1, 1]
    assert [p.dashboard_port for p in plan_processes(2, None, settings(dashboard_port=0))] == [0, 0]
    assert [p.dashboard_port for p in plan_processes(2, None, settings())] == [None, None]


def test_dashboard_links_of_several_processes_need_a_url_per_process():
    with pytest.raises(LaunchRefusedError, match=r"\{process\}"):
        plan_processes(2, 2, settings(dashboard_port=9000, dashboard_public_url="https://example.org/pg"))
    plans = plan_processes(2, 2, settings(dashboard_port=9000, dashboard_public_url="https://example.org/p{process}"))
    assert [p.dashboard_public_url for p in plans] == ["https://example.org/p0", "https://example.org/p1"]
    with pytest.raises(LaunchRefusedError, match="processes must be 1..2"):
        plan_processes(2, 3, settings())


async def test_sharding_is_refused_on_sqlite_before_anything_starts(tmp_path):
    with pytest.raises(LaunchRefusedError, match="needs PostgreSQL"):
        await bot.cluster.prepare(settings(database_path=tmp_path / "x.sqlite3", discord_token="t"), 2)
    env = {**os.environ, "DATABASE_PATH": str(tmp_path / "x.sqlite3"), "DISCORD_TOKEN": "t", "DATABASE_URL": "",
           "MASTER_KEY": "ab" * 32}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "--shards", "2", cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 78
    [line] = err.decode().splitlines()
    assert line.startswith("consensus-playground: cannot start: sharding") and "DATABASE_URL" in line
    assert not (tmp_path / "x.sqlite3").exists()


async def started(folder: Path, count: int) -> list[Path]:
    while len(found := sorted(folder.glob("*.start"))) < count:
        await asyncio.sleep(0.02)
    return found


def pid_of(path: Path) -> int:
    return int(path.stem.split("-")[1])


async def test_a_killed_child_is_started_again_and_sigterm_reaches_every_child(tmp_path, monkeypatch):
    monkeypatch.setattr(bot.cluster, "RESTART_FIRST_S", 0.01)
    plans = plan_processes(2, 2, settings(hashing_workers=2))
    launcher = Launcher(plans, command=CHILD, base_environment={**os.environ, "CLUSTER_TEST_DIR": str(tmp_path)})
    run = asyncio.create_task(launcher.run())
    try:
        first = await asyncio.wait_for(started(tmp_path, 2), 30)
        assert [p.read_text().split() for p in sorted(first, key=lambda p: p.name)] == [
            ["SHARD_COUNT=2", "SHARD_IDS=0", "PROCESS_INDEX=0", "HASHING_WORKERS=1", "SYNC_COMMANDS=true",
             "DASHBOARD_PORT="],
            ["SHARD_COUNT=2", "SHARD_IDS=1", "PROCESS_INDEX=1", "HASHING_WORKERS=1", "SYNC_COMMANDS=false",
             "DASHBOARD_PORT="],
        ]
        killed = next(p for p in first if p.name.startswith("p1-"))
        os.kill(pid_of(killed), signal.SIGKILL)
        third = await asyncio.wait_for(started(tmp_path, 3), 30)
        [restarted] = [p for p in third if p not in first]
        assert restarted.name.startswith("p1-") and restarted.read_text() == killed.read_text()
        assert launcher.restarts == 1
        launcher.stop(signal.SIGTERM)
        assert await asyncio.wait_for(run, 30) == 0
    finally:
        launcher.stop(signal.SIGKILL)
    stopped = sorted(p.name for p in tmp_path.glob("*.sigterm"))
    alive = [p for p in third if p != killed]
    assert stopped == sorted(p.with_suffix(".sigterm").name for p in alive)


async def test_a_child_refusing_its_first_start_stops_the_launcher(tmp_path):
    plans = plan_processes(2, 2, settings(hashing_workers=2))
    env = {**os.environ, "CLUSTER_TEST_DIR": str(tmp_path), "CLUSTER_TEST_REFUSE": "1"}
    launcher = Launcher(plans, command=CHILD, base_environment=env)
    assert await asyncio.wait_for(launcher.run(), 30) == 78
    assert launcher.restarts == 0
    # The other child was stopped with SIGTERM, not left running.
    assert launcher.pids() == [None, None]
    assert all(p.with_suffix(".sigterm").exists() for p in tmp_path.glob("*.start"))


async def test_a_restarted_child_refused_is_retried_a_few_times_then_the_launcher_stops(tmp_path, monkeypatch):
    monkeypatch.setattr(bot.cluster, "RESTART_FIRST_S", 0.01)
    plans = plan_processes(1, 1, settings(hashing_workers=1))
    env = {**os.environ, "CLUSTER_TEST_DIR": str(tmp_path)}
    launcher = Launcher(plans, command=CHILD, base_environment=env)
    run = asyncio.create_task(launcher.run())
    [first] = await asyncio.wait_for(started(tmp_path, 1), 30)
    env["CLUSTER_TEST_REFUSE"] = "0"  # from now on every start is refused (the shard's lease stays held)
    os.kill(pid_of(first), signal.SIGKILL)
    assert await asyncio.wait_for(run, 30) == 78
    assert launcher.restarts == 1 + bot.cluster.REFUSAL_RETRIES


async def test_the_launcher_process_passes_sigterm_to_its_children(tmp_path):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.cluster_launcher", "3", "2", cwd=ROOT,
        env={**os.environ, "CLUSTER_TEST_DIR": str(tmp_path)}, stderr=asyncio.subprocess.PIPE,
    )
    try:
        children = await asyncio.wait_for(started(tmp_path, 2), 30)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
    stopped = sorted(p.name for p in tmp_path.glob("*.sigterm"))
    assert stopped == sorted(p.with_suffix(".sigterm").name for p in children)
    log = (await proc.stderr.read()).decode()
    assert "process 0: shards 0-1 of 3, 1 hashing worker" in log and "process 1: shard 2 of 3" in log


async def test_the_launcher_makes_a_missing_master_key_once_before_its_processes_start(tmp_path, postgres_url):
    key_file = tmp_path / "data" / "master.key"
    values = {"database_url": postgres_url, "discord_token": "t", "master_key_file": key_file}
    await bot.cluster.prepare(settings(**values), 2)
    key = key_file.read_text()
    await bot.cluster.prepare(settings(**values), 2)  # the children, and a later start, read that one
    assert key_file.read_text() == key and oct(key_file.stat().st_mode & 0o777) == "0o600"
    with pytest.raises(LaunchRefusedError, match="needs DISCORD_TOKEN"):
        await bot.cluster.prepare(settings(database_url=postgres_url), 2)


def test_processes_without_shards_is_a_usage_error():
    from bot.__main__ import parse_arguments

    assert parse_arguments(["--shards", "4", "--processes", "2"]).processes == 2
    assert parse_arguments([]).shards is None
    with pytest.raises(SystemExit):
        parse_arguments(["--processes", "2"])


async def test_a_child_that_ignores_sigterm_is_killed_after_the_stop_timeout(tmp_path, monkeypatch):
    """The launcher's promise: kills any child still running STOP_TIMEOUT_S after SIGTERM, and exits 0."""
    monkeypatch.setattr(bot.cluster, "STOP_TIMEOUT_S", 0.5)
    plans = plan_processes(2, 2, settings(hashing_workers=2))
    env = {**os.environ, "CLUSTER_TEST_DIR": str(tmp_path), "CLUSTER_TEST_HANG": "1"}
    launcher = Launcher(plans, command=CHILD, base_environment=env)
    run = asyncio.create_task(launcher.run())
    children = await asyncio.wait_for(started(tmp_path, 2), 30)
    launcher.stop(signal.SIGTERM)
    try:
        assert await asyncio.wait_for(asyncio.shield(run), 30) == 0
    finally:
        launcher.stop(signal.SIGKILL)
        await asyncio.gather(run, return_exceptions=True)
    assert launcher.pids() == [None, None]
    assert all(p.with_suffix(".sigterm").exists() for p in children)  # SIGTERM came first


async def test_a_stop_arriving_while_a_child_is_being_started_stops_that_child_too(tmp_path, monkeypatch):
    """SIGTERM landing while the launcher spawns a child (a restart, or the first start) must reach it."""
    plans = plan_processes(1, 1, settings(hashing_workers=1))
    launcher = Launcher(plans, command=CHILD, base_environment={**os.environ, "CLUSTER_TEST_DIR": str(tmp_path)})
    spawn = asyncio.create_subprocess_exec

    async def spawn_as_the_signal_lands(*args, **kwargs):
        launcher.stop(signal.SIGTERM)
        return await spawn(*args, **kwargs)

    monkeypatch.setattr(bot.cluster.asyncio, "create_subprocess_exec", spawn_as_the_signal_lands)
    run = asyncio.create_task(launcher.run())
    try:
        assert await asyncio.wait_for(asyncio.shield(run), 30) == 0
    finally:
        launcher.stop(signal.SIGKILL)
        await asyncio.gather(run, return_exceptions=True)
    assert launcher.pids() == [None]


async def test_a_child_killed_by_a_signal_python_has_no_name_for_is_started_again(tmp_path, monkeypatch):
    """Real-time signals (35..63 here) terminate by default; their exit must not crash the launcher."""
    monkeypatch.setattr(bot.cluster, "RESTART_FIRST_S", 0.01)
    assert bot.cluster.describe_exit(-40) == "killed by signal 40"
    plans = plan_processes(1, 1, settings(hashing_workers=1))
    launcher = Launcher(plans, command=CHILD, base_environment={**os.environ, "CLUSTER_TEST_DIR": str(tmp_path)})
    run = asyncio.create_task(launcher.run())
    try:
        [first] = await asyncio.wait_for(started(tmp_path, 1), 30)
        os.kill(pid_of(first), 40)
        await asyncio.wait_for(started(tmp_path, 2), 30)
        assert launcher.restarts == 1 and not run.done()
        launcher.stop(signal.SIGTERM)
        assert await asyncio.wait_for(asyncio.shield(run), 30) == 0
    finally:
        launcher.stop(signal.SIGKILL)
        await asyncio.gather(run, return_exceptions=True)


async def test_a_database_down_while_the_launcher_prepares_is_temporary(tmp_path):
    """systemd's RestartPreventExitStatus=78 must not keep a launcher that met PostgreSQL still starting down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    values = {"database_url": f"postgresql://bot@127.0.0.1:{port}/x", "discord_token": "t",
              "master_key_file": tmp_path / "master.key"}
    with pytest.raises(bot.cluster.LaunchRefusedError) as refused:
        await bot.cluster.prepare(settings(**values), 2)
    assert refused.value.status == 69 and "cannot reach the PostgreSQL database" in str(refused.value)
    assert bot.cluster.describe_exit(69) == "it could not reach the database or Discord (exit 69)"
