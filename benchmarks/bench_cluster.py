"""1,000 servers: two sharded bot processes on PostgreSQL beside one bot process on SQLite, same run.

Run: .venv/bin/python -m benchmarks.bench_cluster [--servers 1000] [--rounds 3] [--blocks 200]
                                                 [--postgres-url URL]

Two layouts, each the real bot as a subprocess (``python -m bot``) against a sandbox in this process
(127.0.0.1), through discord.py's gateway and REST code:

- **baseline**: one process, SQLite (the default), the sandbox with one shard;
- **cluster**: the launcher, ``python -m bot --shards 2`` (two processes, one shard each), PostgreSQL,
  the sandbox with two shards.

Both get ``HASHING_WORKERS=2`` (the launcher gives each process 1) and the same world: ``--servers``
servers, each with a channel and two members, their ids alternating between the two shards, and a
chain each already in the database (made before the bot starts, as an earlier run would have left
them; fresh chains: genesis only). Without ``--postgres-url`` a PostgreSQL server is started here
(tests/postgres_server.py) with fsync ON, and SQLite runs with ``synchronous=FULL``: both commits are
durable.

Measured, per layout:

- **startup**: from starting the command to every shard READY with all its servers, the commands
  synced, and one interaction per shard answered;
- **memory per server**: the proportional set size (PSS, so pages shared between forked processes
  are not counted twice) of the whole process tree (launcher, bot processes, hashing workers), once
  ready; the same layout started with no server and an empty database is subtracted, and the rest
  divided by the servers;
- **acknowledgement**: ``--rounds`` bursts of 200 interactions fired at once (after a warm-up burst),
  one each on 200 servers, 100 on each shard; the sandbox times each from dispatching
  INTERACTION_CREATE to the bot's first callback (p50, p99, max);
- **commit latency per block**: once the bots are stopped, on the same databases (holding the
  servers' chains): ``Store.append_block`` of one mined block at a time, ``--blocks`` blocks, by one
  writer process on SQLite and by two writer processes at the same moment on PostgreSQL (each on a
  chain of its own, as two bot processes commit their own servers' blocks).

Targets (each printed beside its figure): acknowledgement p99 under 250 ms in both layouts (as
bench_interactions), startup of the cluster under 60 s, memory under 256 KiB per server (1,000 servers in
a quarter of a gigabyte beyond the fixed cost), median commit under 10 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import re
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.bench_interactions import COMMANDS, P99_ACK_TARGET_S, percentile
from sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[1]
SERVERS = 1_000
BURST = 200
ROUNDS = 3
BLOCKS = 200
HISTORY = 8
SHARDS = 2
HASHING_WORKERS = 2
MASTER_KEY = "ab" * 32
# The easiest target there is: no chain made here needs mining to be measured.
EASY_BITS = 0x207FFFFF
COMMIT_CHAIN_ID = 1_187_654_321_098_765_432  # a Discord-sized id no sandbox server has
STARTUP_TARGET_S = 60.0
MEMORY_PER_SERVER_TARGET_KIB = 256
COMMIT_TARGET_MS = 10.0
SYNCED = ["mine", "wallet", "chain", "leaderboard"]
# Settings the launcher gives each process itself; inherited ones would override its plan.
NOT_INHERITED = (
    "DATABASE_URL", "DASHBOARD_PORT", "DASHBOARD_PUBLIC_URL", "SHARD_COUNT", "SHARD_IDS", "PROCESS_INDEX",
    "SYNC_COMMANDS", "HASHING_CPU_PERCENT",
)

# Node.load's line in a process that owns some of the stored chains.
LOADING = re.compile(r"loading (\d+) of (\d+) stored chains")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Layout:
    name: str
    shards: int  # 0: one unsharded process


@dataclass
class Figures:
    startup_s: float = 0.0
    pss_kib: int = 0
    empty_pss_kib: int = 0
    after_bursts_pss_kib: int = 0
    acks: list[float] = field(default_factory=list)
    commits: list[float] = field(default_factory=list)

    def per_server_kib(self, servers: int) -> float:
        """NaN when the fixed cost was not measured."""
        return (self.pss_kib - self.empty_pss_kib) / servers if self.empty_pss_kib else float("nan")


# --- the process tree's memory ------------------------------------------------------------------


def process_tree(root: int) -> list[int]:
    """``root`` and every process descended from it (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # ended while we looked
            continue
        # The command name is in parentheses and may hold spaces: the parent pid follows its ')'.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, queue = [], [root]
    while queue:
        pid = queue.pop()
        found.append(pid)
        queue.extend(children.get(pid, []))
    return found


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def tree_pss_kib(root: int) -> int:
    return sum(pss_kib(pid) for pid in process_tree(root))


# --- the world and its chains ---------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    guild: object
    channel: object
    members: tuple[object, object]
    shard: int


def populate(sb: Sandbox, count: int) -> list[Server]:
    servers = []
    for n in range(count):
        shard = n % SHARDS
        guild = sb.add_guild(f"Server {n}", shard=(shard, SHARDS))
        channel = sb.add_channel(guild, "general")
        members = (sb.add_member(guild, f"member{n}a"), sb.add_member(guild, f"member{n}b"))
        servers.append(Server(guild, channel, members, shard))
    return servers


class StepClock:
    """The time chains are made at: a day ago, moved on by hand a block spacing at a time."""

    def __init__(self) -> None:
        self.now = time.time() - 86_400

    def __call__(self) -> float:
        return self.now


async def make_chains(target: str, guild_ids: list[int], history: int) -> float:
    """Every server's chain, made ahead with ``history`` blocks (two members mining in turn, a
    payment between them pending at the end); the seconds it took."""
    from chain.adapters.hashcore import HashingCore
    from chain.adapters.node import Node
    from chain.adapters.storage import Store
    from chain.params import PLAYGROUND

    start = time.perf_counter()
    store = await Store.open(target)
    core = HashingCore(1)
    await core.start()
    clock = StepClock()
    try:
        node = Node(
            store, clock=clock, randomness=os.urandom, master_key=bytes.fromhex(MASTER_KEY), hashing_core=core
        )
        for guild_id in guild_ids:
            clock.now = time.time() - 86_400
            await node.create_chain(guild_id, PLAYGROUND, initial_bits=EASY_BITS)
            for height in range(history):
                clock.now += PLAYGROUND.target_spacing_s
                result = await node.mine(guild_id, ("alice", "bob")[height % 2])
                if not result.found:
                    raise RuntimeError(f"chain {guild_id}: block {height + 1} was not found: {result}")
            if history >= 2:
                await node.pay(guild_id, "alice", await node.address(guild_id, "bob"), 1)
    finally:
        await core.close()
        await store.close()
    return time.perf_counter() - start


# --- one bot layout --------------------------------------------------------------------------------


def bot_environment(sb: Sandbox, folder: Path, database: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
    env.update(
        DISCORD_TOKEN=sb.bot_token,
        DISCORD_API_BASE=sb.api_base,
        DISCORD_GATEWAY_URL=sb.gateway_url,
        DATABASE_PATH=str(folder / "playground.sqlite3"),
        MASTER_KEY=MASTER_KEY,
        HASHING_WORKERS=str(HASHING_WORKERS),
        LOG_LEVEL="INFO",
    )
    if database.startswith("postgresql://"):
        env["DATABASE_URL"] = database
    return env


class RunningBot:
    """The layout's command, started; its log in a file, shown if something goes wrong."""

    def __init__(self, proc: asyncio.subprocess.Process, log_path: Path) -> None:
        self.proc = proc
        self.log_path = log_path

    @classmethod
    async def start(cls, layout: Layout, env: dict[str, str], folder: Path) -> RunningBot:
        command = [sys.executable, "-m", "bot"]
        if layout.shards:
            command += ["--shards", str(layout.shards)]
        log_path = folder / "bot.log"
        with log_path.open("wb") as log_file:
            proc = await asyncio.create_subprocess_exec(
                *command, cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=log_file
            )
        return cls(proc, log_path)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 90)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()

    def tail(self, *, whole: bool = False) -> str:
        text = self.log_path.read_text(errors="replace")
        return text if whole else text[-4000:]


def check_split(log_text: str, count: int, shards: int) -> None:
    """Each process loaded only its own servers' chains, and together all of them: the figures below
    are the split's, not every process loading everything."""
    loaded = [(int(m[1]), int(m[2])) for m in LOADING.finditer(log_text)]
    if len(loaded) != shards or sum(own for own, _ in loaded) != count or any(of != count for _, of in loaded):
        raise RuntimeError(f"the processes did not split the {count} chains between them: {loaded}")
    print(f"  cluster: the processes loaded {' + '.join(str(own) for own, _ in loaded)} of {count} chains")


async def ready(sb: Sandbox, servers: list[Server], bot: RunningBot) -> None:
    """Every shard READY with its servers, the commands synced, one interaction per shard answered."""
    waits = asyncio.gather(
        sb.wait_until_ready(timeout=300),
        sb.wait_commands_synced(names=SYNCED, timeout=300),
    )
    exited = asyncio.ensure_future(bot.proc.wait())
    done, _ = await asyncio.wait({waits, exited}, return_when=asyncio.FIRST_COMPLETED)
    if exited in done:
        waits.cancel()
        raise RuntimeError(f"the bot exited with {bot.proc.returncode} before it was ready:\n{bot.tail()}")
    exited.cancel()
    waits.result()
    for shard in sorted({s.shard for s in servers}):
        first = next(s for s in servers if s.shard == shard)
        handle = await sb.invoke(first.guild, first.channel, first.members[0], "chain tip", {})
        await handle.wait_ack(30)


async def burst(sb: Sandbox, servers: list[Server]) -> list[float]:
    """One interaction on each of ``BURST`` servers (half on each shard; fewer with fewer servers), fired
    at once; the commands are bench_interactions' mix."""
    chosen = [s for s in servers if s.shard == 0][: BURST // 2] + [s for s in servers if s.shard == 1][: BURST // 2]
    calls = []
    for i, server in enumerate(chosen):
        name, options = COMMANDS[i % len(COMMANDS)]
        member = server.members[i % 2]
        if name == "wallet pay":
            options = {**options, "member": server.members[(i + 1) % 2]}
        calls.append(sb.invoke(server.guild, server.channel, member, name, options))
    handles = await asyncio.gather(*calls)
    # One waiter for the whole burst; the last dispatched is (nearly always) the last answered.
    await sb.wait_until(lambda: (handles[-1].acknowledged and all(h.acknowledged for h in handles)) or None, 30)
    await sb.wait_until(lambda: all(h.original is not None and not h.original.loading for h in handles) or None, 30)
    return [h.ack_latency for h in handles]


async def empty_memory(layout: Layout, database: str, folder: Path) -> int:
    """PSS of the layout started with no server and an empty database (its fixed cost)."""
    async with Sandbox("127.0.0.1", 0, ack_deadline=None, shard_count=max(layout.shards, 1)) as sb:
        bot = await RunningBot.start(layout, bot_environment(sb, folder, database), folder)
        try:
            await ready(sb, [], bot)
            await asyncio.sleep(1)  # startup's last allocations (calibration's first chunks) settle
            return tree_pss_kib(bot.proc.pid)
        finally:
            await bot.stop()


async def measure_layout(
    layout: Layout, database: str, folder: Path, count: int, rounds: int, history: int
) -> Figures:
    figures = Figures()
    async with Sandbox("127.0.0.1", 0, ack_deadline=None, shard_count=max(layout.shards, 1)) as sb:
        servers = populate(sb, count)
        made = await make_chains(database, [s.guild.id for s in servers], history)  # type: ignore[attr-defined]
        print(
            f"  {layout.name}: {count} chains of {history} blocks made in {made:.1f} s "
            "(before the bot starts, not timed below)"
        )
        start = time.perf_counter()
        bot = await RunningBot.start(layout, bot_environment(sb, folder, database), folder)
        try:
            await ready(sb, servers, bot)
            figures.startup_s = time.perf_counter() - start
            if layout.shards:
                check_split(bot.tail(whole=True), count, layout.shards)
            await asyncio.sleep(1)
            figures.pss_kib = tree_pss_kib(bot.proc.pid)
            await burst(sb, servers)  # warm-up: every command's first use
            for _ in range(rounds):
                figures.acks += await burst(sb, servers)
            figures.after_bursts_pss_kib = tree_pss_kib(bot.proc.pid)
        except BaseException:
            sys.stderr.write(bot.tail())
            raise
        finally:
            await bot.stop()
    return figures


# --- commit latency: writer processes --------------------------------------------------------------


async def append_blocks(target: str, chain_id: int, count: int) -> None:
    """A writer process: make ``count`` blocks in memory, say ready, wait for go, append them one at a
    time, and print the seconds each took as JSON."""
    from benchmarks.bench_store_backends import build_blocks
    from chain.adapters.storage import Store
    from chain.params import REGTEST
    from tests.chainkit import genesis_block

    blocks = build_blocks(count, chain_id=chain_id)
    store = await Store.open(target)
    try:
        await store.create_chain(chain_id, REGTEST, genesis_block(REGTEST, chain_id), 0)
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        seconds = []
        for block, effects in blocks:
            started = time.perf_counter()
            await store.append_block(chain_id, block, effects, [], 1)
            seconds.append(time.perf_counter() - started)
    finally:
        await store.close()
    sys.stdout.write(json.dumps(seconds) + "\n")


async def commit_latency(database: str, writers: int, count: int) -> list[float]:
    """``writers`` processes appending at the same moment, each to a chain of its own."""
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.bench_cluster", "--append", database,
            "--chain", str(COMMIT_CHAIN_ID + i), "--blocks", str(count), cwd=ROOT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        for i in range(writers)
    ]
    for proc in procs:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 300)
        if line.strip() != b"ready":
            raise RuntimeError(f"a writer did not get ready: {line!r}")
    for proc in procs:  # go, together
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
    seconds: list[float] = []
    for proc in procs:
        out, _ = await asyncio.wait_for(proc.communicate(), 600)
        if proc.returncode != 0:
            raise RuntimeError(f"a writer failed with {proc.returncode}")
        seconds += json.loads(out.decode().strip().splitlines()[-1])
    return seconds


# --- the run ---------------------------------------------------------------------------------------


def report(servers: int, blocks: int, base: Figures, cluster: Figures) -> bool:
    def ratio(a: float, b: float) -> str:
        return f"{a / b:5.2f}x" if b else "  n/a"

    per_base, per_cluster = base.per_server_kib(servers), cluster.per_server_kib(servers)
    ack99_base, ack99_cluster = percentile(base.acks, 0.99), percentile(cluster.acks, 0.99)
    commit_base, commit_cluster = statistics.median(base.commits), statistics.median(cluster.commits)
    print(f"\n{servers} servers; baseline: 1 process on SQLite; cluster: 2 processes (1 shard each) on PostgreSQL")
    print(f"{'':34}{'baseline':>14}{'cluster':>14}{'cluster/base':>14}   target")
    rows = [
        ("startup (ready, synced, answering)", f"{base.startup_s:.1f} s", f"{cluster.startup_s:.1f} s",
         ratio(cluster.startup_s, base.startup_s), f"cluster < {STARTUP_TARGET_S:.0f} s"),
        ("memory, whole tree (PSS)", f"{base.pss_kib / 1024:.0f} MiB", f"{cluster.pss_kib / 1024:.0f} MiB",
         ratio(cluster.pss_kib, base.pss_kib), ""),
        ("  after the bursts", f"{base.after_bursts_pss_kib / 1024:.0f} MiB",
         f"{cluster.after_bursts_pss_kib / 1024:.0f} MiB",
         ratio(cluster.after_bursts_pss_kib, base.after_bursts_pss_kib), ""),
        ("  started with no server", f"{base.empty_pss_kib / 1024:.0f} MiB",
         f"{cluster.empty_pss_kib / 1024:.0f} MiB", ratio(cluster.empty_pss_kib, base.empty_pss_kib), ""),
        ("memory per server", f"{per_base:.0f} KiB", f"{per_cluster:.0f} KiB", ratio(per_cluster, per_base),
         f"< {MEMORY_PER_SERVER_TARGET_KIB} KiB"),
        (f"ack p50 ({len(base.acks)} interactions)", f"{statistics.median(base.acks) * 1e3:.0f} ms",
         f"{statistics.median(cluster.acks) * 1e3:.0f} ms",
         ratio(statistics.median(cluster.acks), statistics.median(base.acks)), ""),
        ("ack p99", f"{ack99_base * 1e3:.0f} ms", f"{ack99_cluster * 1e3:.0f} ms", ratio(ack99_cluster, ack99_base),
         f"< {P99_ACK_TARGET_S * 1e3:.0f} ms"),
        ("ack max", f"{max(base.acks) * 1e3:.0f} ms", f"{max(cluster.acks) * 1e3:.0f} ms",
         ratio(max(cluster.acks), max(base.acks)), ""),
        (f"commit per block, median ({blocks}/writer)", f"{commit_base * 1e3:.2f} ms", f"{commit_cluster * 1e3:.2f} ms",
         ratio(commit_cluster, commit_base), f"< {COMMIT_TARGET_MS:.0f} ms"),
        ("commit per block, p90", f"{percentile(base.commits, 0.9) * 1e3:.2f} ms",
         f"{percentile(cluster.commits, 0.9) * 1e3:.2f} ms",
         ratio(percentile(cluster.commits, 0.9), percentile(base.commits, 0.9)), ""),
    ]
    for label, b, c, r, target in rows:
        print(f"{label:<34}{b:>14}{c:>14}{r:>14}   {target}")
    checks = {
        "cluster startup": cluster.startup_s < STARTUP_TARGET_S,
        "memory per server": all(
            math.isnan(kib) or kib < MEMORY_PER_SERVER_TARGET_KIB for kib in (per_base, per_cluster)
        ),
        "ack p99": max(ack99_base, ack99_cluster) < P99_ACK_TARGET_S,
        "commit median": max(commit_base, commit_cluster) * 1e3 < COMMIT_TARGET_MS,
    }
    failed = [name for name, ok in checks.items() if not ok]
    print("PASS" if not failed else "FAIL: " + ", ".join(failed))
    return not failed


async def run(
    servers: int, rounds: int, blocks: int, history: int, cluster_url: str, empty_url: str | None
) -> bool:
    """``empty_url``: an empty database for the cluster's fixed cost (None: not measured)."""
    with tempfile.TemporaryDirectory() as tmp:
        folders = {name: Path(tmp) / name for name in ("base-empty", "base", "cluster-empty", "cluster")}
        for folder in folders.values():
            folder.mkdir(mode=0o700)
        base_layout, cluster_layout = Layout("baseline", 0), Layout("cluster", SHARDS)
        print("baseline: one process, SQLite")
        sqlite_path = str(folders["base"] / "playground.sqlite3")
        base = await measure_layout(base_layout, sqlite_path, folders["base"], servers, rounds, history)
        base.empty_pss_kib = await empty_memory(
            base_layout, str(folders["base-empty"] / "playground.sqlite3"), folders["base-empty"]
        )
        print("cluster: python -m bot --shards 2, PostgreSQL")
        cluster = await measure_layout(cluster_layout, cluster_url, folders["cluster"], servers, rounds, history)
        if empty_url is not None:
            cluster.empty_pss_kib = await empty_memory(cluster_layout, empty_url, folders["cluster-empty"])
        else:
            print("  (no --empty-postgres-url: the cluster's fixed cost and memory per server are not measured)")
        print("commit latency per block: 1 writer on SQLite, 2 at once on PostgreSQL")
        base.commits = await commit_latency(sqlite_path, 1, blocks)
        cluster.commits = await commit_latency(cluster_url, SHARDS, blocks)
    return report(servers, blocks, base, cluster)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--servers", type=int, default=SERVERS)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--blocks", type=int, default=BLOCKS, help="blocks each commit-latency writer appends")
    parser.add_argument("--history", type=int, default=HISTORY, help="blocks each server's chain has at the start")
    parser.add_argument("--postgres-url", default=None, help="an empty database; default: start a local server")
    parser.add_argument(
        "--empty-postgres-url", default=None,
        help="with --postgres-url: another empty database, for the cluster's fixed cost (else not measured)",
    )
    parser.add_argument("--append", default=None, help=argparse.SUPPRESS)  # a commit-latency writer process
    parser.add_argument("--chain", type=int, default=COMMIT_CHAIN_ID, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.append is not None:
        asyncio.run(append_blocks(args.append, args.chain, args.blocks))
        return 0
    if args.servers < SHARDS:
        parser.error(f"--servers must be at least {SHARDS}: one on each shard")
    sizes = (args.servers, args.rounds, args.blocks, args.history)
    if args.postgres_url is not None:
        return 0 if asyncio.run(run(*sizes, args.postgres_url, args.empty_postgres_url)) else 1
    from tests.postgres_server import PostgresServer

    server = PostgresServer.start(durable=True)
    try:
        cluster_url, empty_url = server.create_database(), server.create_database()
        return 0 if asyncio.run(run(*sizes, cluster_url, empty_url)) else 1
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
