"""/chain export of 10,000-block chains, and what another server feels meanwhile.

Run: .venv/bin/python -m benchmarks.bench_export [--blocks 10000] [--big-servers 2] [--exports 10]
     [--loaded-s 10] [--wave-interval-s 1]

The bot runs as its own process (``python -m bot``) against the local sandbox
(127.0.0.1), through discord.py's real gateway and REST code.  Before it starts,
``--big-servers`` chains of ``--blocks`` blocks each are written to its database
(built in /dev/shm when there is one, then copied next to the bot).

Meanwhile a quiet server's members type ``/chain tip`` and ``/wallet balance``
every ``PROBE_INTERVAL_S``; the sandbox times each from dispatch to the bot's
reply.  The bot's event-loop lag comes from its 10 ms ticker (bot/health.py),
read with SIGUSR1 before and after each phase.

Baseline, same run and same bot process: the quiet server's commands with no
export running.  Loaded: the same while waves of ``--exports`` exports each
(new members every wave, spread over the big servers) are fired at once,
a wave every ``--wave-interval-s`` (or, if a wave takes longer, when it has
delivered every reply) for ``--loaded-s``.  A server builds one export at
a time and uploads it once (a second request is pointed at that file), so
each wave builds and uploads ``--big-servers`` exports.

Then, for information, the same while ``/chain verify`` runs in every big
server, round after round, for ``--loaded-s``.

Targets (export phase): the quiet server's replies all under 3 s, the bot's
event-loop lag p99 under 10 ms (as bench_interactions holds).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_interactions import BotProcess, percentile
from chain.adapters.node import Node
from chain.adapters.storage import Store
from chain.keys import SigningKey
from chain.params import REGTEST
from chain.pow.difficulty import is_valid_proof_of_work
from sandbox import Sandbox

PROBE_INTERVAL_S = 0.1
PROBE_COMMANDS = [("chain tip", {}), ("wallet balance", {})]
MAX_REPLY_TARGET_S = 3.0
LAG_P99_TARGET_MS = 10.0
MASTER_KEY_HEX = "ef" * 32
ROOT = Path(__file__).resolve().parents[1]


def solve(template):
    for nonce in range(1 << 20):
        header = template.header.with_nonce(nonce)
        if is_valid_proof_of_work(header.hash(), header.bits, REGTEST):
            return template.solve(template.coinbase.extra_nonce, nonce)
    raise RuntimeError("no nonce")


async def build_chain(path: Path, chain_id: int, blocks: int) -> None:
    """A proof-of-work chain of ``blocks`` blocks after genesis, spaced as the rules want, ending now."""
    clock_s = [int(time.time()) - (blocks + 10) * REGTEST.target_spacing_s]
    store = await Store.open(path)
    node = Node(store, clock=lambda: float(clock_s[0]), randomness=os.urandom, master_key=bytes.fromhex(MASTER_KEY_HEX))
    await node.create_chain(chain_id, REGTEST, initial_bits=0x207FFFFF)
    miners = [SigningKey(os.urandom(32)).public_key for _ in range(8)]
    for height in range(1, blocks + 1):
        clock_s[0] += REGTEST.target_spacing_s
        block = solve(node.template(chain_id, miners[height % len(miners)], f"block {height}".encode()))
        await node.submit_block(chain_id, block)
    node.close()
    await store.close()


async def probe(sb: Sandbox, world: tuple, stop: asyncio.Event) -> list[float]:
    """The quiet server's commands, one every PROBE_INTERVAL_S; seconds from dispatch to each reply."""
    guild, channel, members = world
    handles: list = []
    n = 0
    while not stop.is_set():
        name, options = PROBE_COMMANDS[n % len(PROBE_COMMANDS)]
        handles.append(await sb.invoke(guild, channel, members[n % len(members)], name, options))
        n += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PROBE_INTERVAL_S)
    await sb.wait_until(
        lambda: all(h.original is not None and not h.original.loading for h in handles) or None, timeout=60
    )
    # Both commands answer at once (no "thinking…"), so the acknowledgement is the reply.
    return [h.ack_latency for h in handles]


async def reply_latencies(sb: Sandbox, world: tuple, seconds: float | None, work=None) -> list[float]:
    stop = asyncio.Event()
    task = asyncio.create_task(probe(sb, world, stop))
    if work is not None:
        await work
    else:
        await asyncio.sleep(seconds)
    stop.set()
    return await task


async def export_waves(
    sb: Sandbox, big: list[tuple], exports: int, seconds: float, tag: str, interval_s: float = 0.0
) -> tuple[list[float], int]:
    """Fire a wave of ``exports`` every ``interval_s`` (or as soon as the last one delivered) until
    ``seconds`` have passed; returns each wave's time to its last file, and bytes of the biggest file.

    Every request comes from a new member (one who exported already would be refused by the cooldown).
    """
    took, biggest, wave = [], 0, 0
    deadline = time.perf_counter() + seconds
    while not took or time.perf_counter() < deadline:
        if took:
            await asyncio.sleep(max(0.0, interval_s - took[-1]))
        calls = []
        for i in range(exports):
            guild, channel, _ = big[i % len(big)]
            member = sb.add_member(guild, f"{tag}{wave}x{i}")
            calls.append(sb.invoke(guild, channel, member, "chain export", {}))
        started = time.perf_counter()
        handles = await asyncio.gather(*calls)
        await sb.wait_until(
            lambda handles=handles: all(h.original is not None and not h.original.loading for h in handles) or None,
            timeout=300,
        )
        took.append(time.perf_counter() - started)
        for h in handles:
            if h.original.attachments:
                biggest = max(biggest, len(h.original.attachments[0].data))
            elif "already being built" not in str(h.embeds):  # else: pointed at the file another got
                raise RuntimeError(f"an export was refused: {h.describe()}")
        wave += 1
    return took, biggest


async def verify_rounds(sb: Sandbox, big: list[tuple], seconds: float) -> list[float]:
    """``/chain verify`` in every big server at once, round after round, for ``seconds``; each round's time."""
    took: list[float] = []
    deadline = time.perf_counter() + seconds
    while not took or time.perf_counter() < deadline:
        started = time.perf_counter()
        handles = await asyncio.gather(*(sb.invoke(g, ch, members[0], "chain verify", {}) for g, ch, members in big))
        await sb.wait_until(
            lambda handles=handles: all(h.original is not None and not h.original.loading for h in handles) or None,
            timeout=300,
        )
        for h in handles:
            if "Chain verified" not in str(h.embeds):
                raise RuntimeError(f"a verification failed: {h.describe()}")
        took.append(time.perf_counter() - started)
    return took


async def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING)
    async with Sandbox("127.0.0.1", 0, ack_deadline=None) as sb:
        big = []
        for n in range(args.big_servers):
            guild = sb.add_guild(f"Big {n}")
            channel = sb.add_channel(guild, "general")
            big.append((guild, channel, [sb.add_member(guild, f"big{n}")]))
        quiet_guild = sb.add_guild("Quiet")
        quiet_channel = sb.add_channel(quiet_guild, "general")
        quiet = (quiet_guild, quiet_channel, [sb.add_member(quiet_guild, f"quiet{i}") for i in range(4)])

        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "bench.sqlite3"
            scratch = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tmp)
            with tempfile.TemporaryDirectory(dir=scratch) as build_dir:
                built = Path(build_dir) / "bench.sqlite3"
                started = time.perf_counter()
                for guild, _, _ in big:
                    await build_chain(built, guild.id, args.blocks)
                print(
                    f"built {args.big_servers} chains of {args.blocks:,} blocks in {time.perf_counter() - started:.0f}s"
                )
                shutil.copy(built, db)
            env = {
                **os.environ,
                "DISCORD_TOKEN": sb.bot_token,
                "DISCORD_API_BASE": sb.api_base,
                "DISCORD_GATEWAY_URL": sb.gateway_url,
                "DATABASE_PATH": str(db),
                "MASTER_KEY": MASTER_KEY_HEX,
                "LOG_LEVEL": "INFO",
            }
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", cwd=ROOT, env=env, stderr=asyncio.subprocess.PIPE
            )
            bot = BotProcess(proc)
            try:
                await sb.wait_until_ready(timeout=120)
                await sb.wait_commands_synced(names=["chain", "wallet"], timeout=60)
                await reply_latencies(sb, quiet, 1.0)  # warm-up: creates the quiet server's chain

                export_s, _ = await export_waves(sb, big, 1, 0, "alone")  # one export alone, for scale
                await bot.lag()
                baseline = await reply_latencies(sb, quiet, args.baseline_s)
                baseline_lag = await bot.lag()
                waves: list[float] = []
                sizes: list[int] = []

                async def run_waves() -> None:
                    took, size = await export_waves(sb, big, args.exports, args.loaded_s, "spam", args.wave_interval_s)
                    waves.extend(took)
                    sizes.append(size)

                loaded = await reply_latencies(sb, quiet, None, run_waves())
                loaded_lag = await bot.lag()
                rounds: list[float] = []

                async def run_verifies() -> None:
                    rounds.extend(await verify_rounds(sb, big, args.loaded_s))

                verifying = await reply_latencies(sb, quiet, None, run_verifies())
                verifying_lag = await bot.lag()
            finally:
                proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(proc.wait(), 60)
                bot.reader.cancel()

    def row(label: str, replies: list[float], lag: tuple[float, float, float]) -> str:
        return (
            f"  {label:<34} {len(replies):4d} replies: median {statistics.median(replies) * 1e3:6.1f} ms"
            f"  p99 {percentile(replies, 0.99) * 1e3:6.1f} ms  max {max(replies) * 1e3:7.1f} ms"
            f"   bot loop lag p50 {lag[0]:5.2f} ms  p99 {lag[1]:5.2f} ms  max {lag[2]:6.2f} ms"
        )

    print(f"one export of a {args.blocks:,}-block chain alone: {export_s[0]:.2f}s to the file")
    print(f"another server's /chain tip and /wallet balance, one every {PROBE_INTERVAL_S * 1e3:.0f} ms:")
    print(row("no export (baseline)", baseline, baseline_lag))
    print(row(f"{len(waves)} waves of {args.exports} exports", loaded, loaded_lag))
    print(f"  (a wave every {args.wave_interval_s:.1f}s at most, from {args.exports} members who had not exported yet)")
    print(
        f"  a wave took {statistics.median(waves):.2f}s (median; max {max(waves):.2f}s) to deliver its "
        f"{args.exports} replies ({sizes[0] / 1e6:.1f} MB files; one build and upload per server, the others "
        "pointed at that file)"
    )
    print(row(f"{len(rounds)} rounds of {args.big_servers} verifies", verifying, verifying_lag))
    print(
        f"  a round (every big server's chain replayed, one at a time) took {statistics.median(rounds):.2f}s (median)"
    )
    worst, lag99 = max(loaded), loaded_lag[1]
    print(
        f"  ratio loaded/baseline reply p99 {percentile(loaded, 0.99) / percentile(baseline, 0.99):.2f}\n"
        f"  targets: replies < {MAX_REPLY_TARGET_S:.0f} s ({worst:.2f}), loop lag p99 < {LAG_P99_TARGET_MS:.0f} ms "
        f"({lag99:.2f})"
    )
    ok = worst < MAX_REPLY_TARGET_S and lag99 < LAG_P99_TARGET_MS
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=10_000)
    parser.add_argument("--big-servers", type=int, default=2)
    parser.add_argument("--exports", type=int, default=10, help="exports fired at once, per wave")
    parser.add_argument("--loaded-s", type=float, default=10.0, help="fire waves for this long")
    parser.add_argument(
        "--wave-interval-s", type=float, default=1.0, help="a wave this often (0: each as soon as the last is done)"
    )
    parser.add_argument("--baseline-s", type=float, default=10.0)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
