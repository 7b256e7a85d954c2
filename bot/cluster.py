"""The launcher of a sharded bot: ``python -m bot --shards N [--processes K]``.

It starts K child processes, each ``python -m bot`` with its own settings in the environment
(``SHARD_COUNT``, ``SHARD_IDS``, ``PROCESS_INDEX``, ``HASHING_WORKERS``, ``SYNC_COMMANDS``, and with a
dashboard ``DASHBOARD_PORT`` + index), and keeps them running:

- **Split.** Shards 0..N-1 in K contiguous runs (the first ones one longer), ``HASHING_WORKERS``
  (default: the CPU cores) over the K processes, at least one each.  Only process 0 syncs the
  slash commands (they are global: one sync serves every shard).
- **Restarts.** A child that ends while the launcher is not stopping (a crash, a signal, a lost
  lease: exit 75, PostgreSQL or Discord unreachable: exit 69) is started again after a back-off
  (1 s, doubling up to 30 s; back to 1 s once a child ran a minute).  A child that refuses to start
  (exit 78: a bad setting, a wrong key, a shard held by another process, after the child waited
  ``bot.shard_lease.LEASE_WAIT_S`` for it) on
  its *first* start stops the whole launcher (exit 78): starting it again would not help.  After a
  restart, a refusal is retried ``REFUSAL_RETRIES`` times more; if it goes on being refused, someone
  else holds the shard and the launcher stops.
- **Signals.** SIGTERM and SIGINT are passed to every child; the launcher waits for them (each
  flushes its outbox and closes cleanly), kills any still running after ``STOP_TIMEOUT_S``, and
  exits 0.

Children share the launcher's stdout and stderr (so a supervisor's journal has every line); each
logs which shards it serves, and the launcher logs the plan and every exit and restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import asyncpg

from bot.log_output import configure_logging
from bot.preflight import TEMPORARY_POSTGRES_ERRORS
from bot.settings import Settings, SettingsError
from bot.shard_lease import EXIT_LEASE_LOST
from bot.shard_scope import MAX_SHARD_COUNT, ShardSpecError, format_shard_ids, split_shards, split_workers
from chain.adapters.cpu_quota import compute_available_cores
from chain.adapters.storage import Database

log = logging.getLogger(__name__)

# sysexits' EX_CONFIG, as ``python -m bot`` exits when it refuses to start.
EXIT_REFUSED = 78
# sysexits' EX_UNAVAILABLE: PostgreSQL or Discord could not be reached; a child exiting so is restarted.
EXIT_UNAVAILABLE = 69
RESTART_FIRST_S = 1.0
RESTART_MAX_S = 30.0
# A child that ran this long before it ended starts again after the first back-off, not a longer one.
RESTART_RESET_AFTER_S = 60.0
# Refusals in a row tolerated from a restarted child (its predecessor's lease may still be held).
REFUSAL_RETRIES = 3
STOP_TIMEOUT_S = 60.0
# The placeholder DASHBOARD_PUBLIC_URL needs when several processes serve dashboards.
PROCESS_PLACEHOLDER = "{process}"


@dataclass(frozen=True, slots=True)
class ChildPlan:
    """One child process: its index, its shards, and the settings it gets on top of the launcher's."""

    index: int
    shard_count: int
    shard_ids: tuple[int, ...]
    hashing_workers: int
    dashboard_port: int | None = None
    dashboard_public_url: str | None = None

    def environment(self, base: Mapping[str, str]) -> dict[str, str]:
        env = dict(base)
        env.update({
            "SHARD_COUNT": str(self.shard_count),
            "SHARD_IDS": format_shard_ids(self.shard_ids),
            "PROCESS_INDEX": str(self.index),
            "HASHING_WORKERS": str(self.hashing_workers),
            "SYNC_COMMANDS": "true" if self.index == 0 else "false",
        })
        if self.dashboard_port is not None:
            env["DASHBOARD_PORT"] = str(self.dashboard_port)
        if self.dashboard_public_url is not None:
            env["DASHBOARD_PUBLIC_URL"] = self.dashboard_public_url
        return env

    def describe(self) -> str:
        shards = format_shard_ids(self.shard_ids)
        workers = f"{self.hashing_workers} hashing worker{'s' if self.hashing_workers > 1 else ''}"
        dashboard = "" if self.dashboard_port is None else f", dashboard on port {self.dashboard_port}"
        plural = "s" if len(self.shard_ids) > 1 else ""
        return f"process {self.index}: shard{plural} {shards} of {self.shard_count}, {workers}{dashboard}"


class LaunchRefusedError(Exception):
    """The launcher cannot start with these settings; one line for the operator, and the exit status
    (78; 69 when the database cannot be reached now, so a supervisor starts the launcher again)."""

    def __init__(self, message: str, status: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.status = status


def plan_processes(
    shard_count: int, processes: int | None, settings: Settings, cpu_count: int | None = None
) -> list[ChildPlan]:
    """Each child's share: contiguous shards, hashing workers, dashboard port and URL."""
    count = shard_count if processes is None else processes
    try:
        runs = split_shards(shard_count, count)
    except ShardSpecError as exc:
        raise LaunchRefusedError(f"--processes {exc}") from None
    workers = split_workers(settings.hashing_workers or cpu_count or compute_available_cores(), count)
    public_url = settings.dashboard_public_url
    if public_url is not None and count > 1 and PROCESS_PLACEHOLDER not in public_url:
        raise LaunchRefusedError(
            f"DASHBOARD_PUBLIC_URL must contain {PROCESS_PLACEHOLDER} when several processes serve dashboards "
            "(each on DASHBOARD_PORT + its index; route https://host/p{process} to each one). Nothing was started."
        )
    plans = []
    for index, shard_ids in enumerate(runs):
        port = settings.dashboard_port
        if port:
            port += index
        url = None if public_url is None else public_url.replace(PROCESS_PLACEHOLDER, str(index))
        plans.append(ChildPlan(index, shard_count, shard_ids, workers[index], port, url))
    if plans[-1].dashboard_port is not None and plans[-1].dashboard_port > 65_535:
        raise LaunchRefusedError(f"DASHBOARD_PORT + {count - 1} is above 65535: choose a lower DASHBOARD_PORT")
    return plans


@dataclass
class _Child:
    plan: ChildPlan
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    starts: int = 0
    refusals_in_a_row: int = 0
    backoff_s: float = field(default_factory=lambda: RESTART_FIRST_S)


@dataclass
class Launcher:
    """Starts, watches and restarts the children of ``plans``; see the module."""

    plans: Sequence[ChildPlan]
    command: Sequence[str] = (sys.executable, "-m", "bot")
    base_environment: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    clock: Callable[[], float] = time.monotonic
    restarts: int = 0
    _children: list[_Child] = field(default_factory=list)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _refused: bool = False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop every child (passing it ``sig``) and end ``run``."""
        if not self._stopping.is_set():
            log.info("stopping: passing %s to every process", signal.Signals(sig).name)
        self._stopping.set()
        for child in self._children:
            if child.process is not None and child.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.process.send_signal(sig)

    def pids(self) -> list[int | None]:
        """Each child's pid now (None while it waits to be started again)."""
        return [
            c.process.pid if c.process is not None and c.process.returncode is None else None for c in self._children
        ]

    async def run(self) -> int:
        """Run until ``stop`` (0) or a refusal that restarting cannot cure (78)."""
        self._children = [_Child(plan) for plan in self.plans]
        for plan in self.plans:
            log.info("%s", plan.describe())
        keepers = [asyncio.create_task(self._keep(child), name=f"child-{child.plan.index}") for child in self._children]
        stopping = asyncio.create_task(self._stopping.wait(), name="launcher-stopping")
        try:
            # Keepers run until the launcher stops; one ends earlier only if it failed (raised below).
            await asyncio.wait([stopping, *keepers], return_when=asyncio.FIRST_COMPLETED)
        finally:
            # The keepers go first, and the children are stopped here, not by the keepers: a keeper waits
            # for its child without a time limit (a child stuck in its shutdown would hold the launcher
            # forever), and one cancelled while spawning a child kills it (asyncio does) instead of
            # leaving a child that the stop's signal missed.
            stopping.cancel()
            for keeper in keepers:
                keeper.cancel()
            await asyncio.gather(*keepers, return_exceptions=True)
            await self._stop_all()
        failures = [k.exception() for k in keepers if not k.cancelled()]
        for failure in failures:
            if failure is not None:
                raise failure
        return EXIT_REFUSED if self._refused else 0

    async def _keep(self, child: _Child) -> None:
        while not self._stopping.is_set():
            await self._start(child)
            assert child.process is not None
            code = await child.process.wait()
            if self._stopping.is_set():
                return
            ran_s = self.clock() - child.started_at
            if code == EXIT_REFUSED:
                child.refusals_in_a_row += 1
                if child.starts == 1 or child.refusals_in_a_row > REFUSAL_RETRIES:
                    log.error(
                        "process %d refused to start (exit 78, its line above says why)%s: stopping every process",
                        child.plan.index, "" if child.starts == 1 else f" {child.refusals_in_a_row} times in a row",
                    )
                    self._refused = True
                    self.stop(signal.SIGTERM)
                    return
            else:
                child.refusals_in_a_row = 0
            if ran_s >= RESTART_RESET_AFTER_S:
                child.backoff_s = RESTART_FIRST_S
            log.warning("process %d (%s) ended: %s; starting it again in %.0f s", child.plan.index,
                        format_shard_ids(child.plan.shard_ids), describe_exit(code), child.backoff_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), child.backoff_s)
            child.backoff_s = min(RESTART_MAX_S, child.backoff_s * 2)
            self.restarts += 1

    async def _start(self, child: _Child) -> None:
        child.process = await asyncio.create_subprocess_exec(
            *self.command, env=child.plan.environment(self.base_environment),
        )
        child.started_at = self.clock()
        child.starts += 1
        log.info("process %d started (pid %d): shards %s", child.plan.index, child.process.pid,
                 format_shard_ids(child.plan.shard_ids))

    async def _stop_all(self) -> None:
        self.stop(signal.SIGTERM)
        running = [c for c in self._children if c.process is not None and c.process.returncode is None]
        if not running:
            return
        waits = [asyncio.create_task(c.process.wait()) for c in running if c.process is not None]
        _, pending = await asyncio.wait(waits, timeout=STOP_TIMEOUT_S)
        if pending:
            log.warning("%d process(es) still running %.0f s after SIGTERM: killing them", len(pending), STOP_TIMEOUT_S)
            for child in running:
                if child.process is not None and child.process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        child.process.kill()
            await asyncio.wait(waits)
        for child in running:
            if child.process is not None:
                log.info("process %d stopped (%s)", child.plan.index, describe_exit(child.process.returncode or 0))


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:  # a real-time signal: Python names only SIGRTMIN and SIGRTMAX
            return f"killed by signal {-code}"
    if code == EXIT_LEASE_LOST:
        return "it lost its shard lease (exit 75)"
    if code == EXIT_REFUSED:
        return "it refused to start (exit 78)"
    if code == EXIT_UNAVAILABLE:
        return "it could not reach the database or Discord (exit 69)"
    return f"exit {code}"


async def prepare(settings: Settings, shard_count: int) -> None:
    """What the children must not race for: the master key file, made once here if it is to be made
    (when ``MASTER_KEY`` is unset and no key file exists yet, only for a database with no sealed secret)."""
    problem = settings.model_copy(update={"shard_count": shard_count}).sharding_problem()
    if problem is not None:
        raise LaunchRefusedError(problem)
    if settings.master_key is not None or settings.master_key_file.exists():
        return
    try:
        secrets = await Database.sealed_secrets(settings.database_target())
    except OSError as exc:
        raise LaunchRefusedError(
            f"cannot reach the {settings.database_name()}: {exc.strerror or exc}", EXIT_UNAVAILABLE
        ) from None
    except asyncpg.PostgresError as exc:
        status = EXIT_UNAVAILABLE if isinstance(exc, TEMPORARY_POSTGRES_ERRORS) else EXIT_REFUSED
        raise LaunchRefusedError(f"cannot use the {settings.database_name()}: {exc}", status) from None
    try:
        settings.load_master_key(may_create=secrets is None or not secrets.present)
    except SettingsError as exc:
        raise LaunchRefusedError(str(exc)) from None


async def launch(shard_count: int, processes: int | None) -> int:
    try:
        settings = Settings()
    except SettingsError as exc:
        return refuse(f"invalid setting: {exc}. Fix it in the environment or in .env (see .env.example).")
    configure_logging(settings.log_level, process="launcher")
    try:
        if not 1 <= shard_count <= MAX_SHARD_COUNT:
            raise LaunchRefusedError(f"--shards must be 1..{MAX_SHARD_COUNT}, got {shard_count}")
        await prepare(settings, shard_count)
        plans = plan_processes(shard_count, processes, settings)
    except LaunchRefusedError as exc:
        return refuse(str(exc), exc.status)
    log.info("launching %d process(es) for %d shard(s)", len(plans), shard_count)
    return await serve(Launcher(plans))


async def serve(launcher: Launcher) -> int:
    """Run the launcher with SIGTERM and SIGINT passed on to its children."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, launcher.stop, sig)
    return await launcher.run()


def refuse(reason: str, status: int = EXIT_REFUSED) -> int:
    sys.stderr.write(f"consensus-playground: cannot start: {reason}\n")
    return status


def run_cluster(shard_count: int, processes: int | None) -> int:
    return asyncio.run(launch(shard_count, processes))
