"""The sharded bot for real: the launcher (``python -m bot --shards 2``) and its two processes as
subprocesses, against the sandbox speaking two shards and a real PostgreSQL.

Genesis Guild is on shard 0 and Fork Town on shard 1 (``sandbox.demo.DEMO_SHARDS``): each is served by
its own process only; a third process for shard 0 is refused naming the holder; one process is
SIGKILLed while members mine and pay in both servers, the launcher starts it again, and everything
that was acknowledged (every block announced found, every payment answered) is in the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from pathlib import Path

import asyncpg

from bot.storage import ServerSettingsRepository
from chain.adapters.node import Node
from chain.adapters.storage import Store
from chain.adapters.storage.lease import LeaseConnection
from chain.hashing import hash_to_display
from sandbox import Sandbox
from sandbox.demo import populate_demo
from tests.e2e.conftest import E2E_PARAMS
from tests.e2e.text import reply_text, shown

ROOT = Path(__file__).resolve().parents[2]
MASTER_KEY = "cd" * 32
# The easiest target there is: a block in a few hashes, so a subprocess mines one at once.
EASY_BITS = 0x207FFFFF
FOUND = re.compile(r"Block (\d+) found!")
HASH = re.compile(r"`([0-9a-f]{64})`")
TXID = re.compile(r"Transaction\s*`?([0-9a-f]{64})`?")


async def make_chains(url: str, guild_ids: list[int]) -> None:
    """Both servers' chains, made ahead (easy to mine, no cooldown), as an earlier run would have left them."""
    store = await Store.open(url)
    try:
        node = Node(store, clock=time.time, randomness=os.urandom, master_key=bytes.fromhex(MASTER_KEY))
        for guild_id in guild_ids:
            await node.create_chain(guild_id, E2E_PARAMS, initial_bits=EASY_BITS)
            await ServerSettingsRepository(store.db).replace(guild_id, {"session_s": 120, "cooldown_s": 0})
    finally:
        await store.close()


async def leases(url: str) -> dict[int, tuple[int, str]]:
    """Shard -> (pid named in the lease, the lease's application_name), for every lease held (pg_locks)."""
    connection = await LeaseConnection.open(url, "test watcher")
    try:
        held = await connection.holders()
    finally:
        await connection.close()
    found = {}
    for holder in held:
        match = re.search(r"pid (\d+) on ", holder.application_name)
        assert holder.layout == 2 and match, holder
        found[holder.part] = (int(match[1]), holder.application_name)
    return found


async def wait_for_leases(url: str, wanted: int, *, not_pid: int | None = None, timeout: float = 90) -> dict:
    async def poll() -> dict:
        while True:
            held = await leases(url)
            if len(held) == wanted and all(pid != not_pid for pid, _ in held.values()):
                return held
            await asyncio.sleep(0.1)

    return await asyncio.wait_for(poll(), timeout)


async def mine_one(sb, guild, channel, member) -> str:
    """``/mine start`` until its block is found; the acknowledged block's hash."""
    handle = await sb.invoke(guild, channel, member, "mine start", {})
    await handle.wait_for(lambda h: "found!" in reply_text(h), timeout=60)
    text = shown(handle.response)
    assert FOUND.search(text), text
    return HASH.search(text)[1]


async def pay(sb, guild, channel, member, to, amount: int) -> str:
    handle = await sb.invoke(guild, channel, member, "wallet pay", {"member": to, "amount": amount})
    await handle.wait_for(lambda h: "Payment sent" in reply_text(h), timeout=30)
    return TXID.search(shown(handle.response))[1]


async def stored(url: str, chain_id: int) -> tuple[set[str], set[str]]:
    """The block hashes and the txids (confirmed or pending) the database holds for a chain, as shown."""
    connection = await asyncpg.connect(url)
    try:
        blocks = {hash_to_display(bytes(r[0])) for r in await connection.fetch(
            "SELECT hash FROM blocks WHERE chain_id = $1", chain_id)}
        txids = {hash_to_display(bytes(r[0])) for r in await connection.fetch(
            "SELECT txid FROM transactions WHERE chain_id = $1 UNION SELECT txid FROM mempool WHERE chain_id = $1",
            chain_id)}
    finally:
        await connection.close()
    return blocks, txids


async def new_session(sb: Sandbox, shard: int, old: object) -> None:
    """Wait until a restarted process's gateway session for ``shard`` replaced ``old`` and is ready."""
    await sb.wait_until(
        lambda: (s := sb.gateway.session_for_shard(shard, 2)) is not None and s is not old and s.ready,
        90, f"the restarted process's gateway session for shard {shard}",
    )


def bot_environment(sb: Sandbox, tmp_path: Path, url: str) -> dict[str, str]:
    unset = ("DASHBOARD_PORT", "DASHBOARD_PUBLIC_URL", "SHARD_COUNT", "SHARD_IDS", "PROCESS_INDEX", "SYNC_COMMANDS")
    return {
        **{k: v for k, v in os.environ.items() if k not in unset},
        "DISCORD_TOKEN": sb.bot_token,
        "DISCORD_API_BASE": sb.api_base,
        "DISCORD_GATEWAY_URL": sb.gateway_url,
        "DATABASE_URL": url,
        "DATABASE_PATH": str(tmp_path / "data" / "playground.sqlite3"),
        "MASTER_KEY": MASTER_KEY,
        "HASHING_WORKERS": "2",
        "PROGRESS_INTERVAL_S": "0.3",
        "LOG_LEVEL": "INFO",
    }


async def test_two_processes_each_serve_their_shard_and_a_killed_one_comes_back_with_nothing_lost(
    tmp_path, postgres_url
):
    async with Sandbox(host="127.0.0.1", port=0, shard_count=2) as sb:
        w = populate_demo(sb)
        assert (sb.shard_of(w.genesis, 2), sb.shard_of(w.fork, 2)) == (0, 1)
        await make_chains(postgres_url, [w.genesis.id, w.fork.id])
        env = bot_environment(sb, tmp_path, postgres_url)
        log_path = tmp_path / "launcher.log"
        with log_path.open("wb") as log_file:
            launcher = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "--shards", "2", cwd=ROOT, env=env,
                stdout=asyncio.subprocess.DEVNULL, stderr=log_file,
            )
        try:
            await check_the_cluster(sb, w, postgres_url, env, launcher, log_path)
        except BaseException:
            sys.stderr.write(log_path.read_text()[-6000:])
            raise
        finally:
            if launcher.returncode is None:
                launcher.send_signal(signal.SIGKILL)
                await launcher.wait()
            # A killed launcher leaves its children: end them by the pids their leases name.
            for pid, _ in (await leases(postgres_url)).values():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


async def check_the_cluster(sb, w, url, env, launcher, log_path) -> None:
    held = await wait_for_leases(url, 2)
    assert "playground p0" in held[0][1] and "playground p1" in held[1][1]
    await sb.wait_until_ready(timeout=90)
    await sb.wait_commands_synced(names=["mine", "wallet"], timeout=90)

    # A third process for shard 0 is refused, naming the process that holds it.
    third = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", cwd=ROOT,
        env={**env, "SHARD_COUNT": "2", "SHARD_IDS": "0", "PROCESS_INDEX": "2", "SYNC_COMMANDS": "false"},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(third.communicate(), 60)
    assert third.returncode == 78
    [line] = err.decode().splitlines()
    assert f"shard 0 of 2 is already served by playground p0 pid {held[0][0]} on " in line, line

    # Each server is served by its own process: mining and paying in both.
    found = {w.genesis.id: [], w.fork.id: []}
    paid = {w.genesis.id: [], w.fork.id: []}
    found[w.genesis.id].append(await mine_one(sb, w.genesis, w.general, w.alice))
    found[w.fork.id].append(await mine_one(sb, w.fork, w.fork_general, w.dave_in_fork))
    paid[w.genesis.id].append(await pay(sb, w.genesis, w.general, w.alice, w.bob, 3))
    paid[w.fork.id].append(await pay(sb, w.fork, w.fork_general, w.dave_in_fork, w.bob_in_fork, 3))
    log = log_path.read_text()
    assert re.search(rf" p0 .*loaded chain {w.genesis.id} ", log)
    assert re.search(rf" p1 .*loaded chain {w.fork.id} ", log)
    assert not re.search(rf" p0 .*loaded chain {w.fork.id} ", log)
    assert not re.search(rf" p1 .*loaded chain {w.genesis.id} ", log)
    assert "process 0: shard 0 of 2, 1 hashing worker" in log and "process 1: shard 1 of 2, 1 hashing worker" in log

    # SIGKILL the process of Fork Town while its members mine and pay, and Genesis plays on meanwhile.
    old_session = sb.gateway.session_for_shard(1, 2)
    mining = await sb.invoke(w.fork, w.fork_general, w.dave_in_fork, "mine start", {"auto_continue": True})
    await mining.wait_ack(10)
    paid[w.fork.id].append(await pay(sb, w.fork, w.fork_general, w.dave_in_fork, w.bob_in_fork, 2))
    os.kill(held[1][0], signal.SIGKILL)  # mid-session: that session's blocks were never acknowledged one by one
    found[w.genesis.id].append(await mine_one(sb, w.genesis, w.general, w.alice))
    paid[w.genesis.id].append(await pay(sb, w.genesis, w.general, w.alice, w.bob, 2))

    # The launcher starts it again: a new lease for shard 1, a new gateway session, and it carries on.
    again = await wait_for_leases(url, 2, not_pid=held[1][0])
    assert again[0] == held[0]  # the other process was never touched
    await new_session(sb, 1, old_session)
    found[w.fork.id].append(await mine_one(sb, w.fork, w.fork_general, w.dave_in_fork))
    paid[w.fork.id].append(await pay(sb, w.fork, w.fork_general, w.dave_in_fork, w.bob_in_fork, 1))
    assert "process 1 (1) ended: killed by SIGKILL" in log_path.read_text()

    for chain_id in (w.genesis.id, w.fork.id):
        blocks, txids = await stored(url, chain_id)
        assert set(found[chain_id]) <= blocks, (chain_id, found[chain_id])
        assert set(paid[chain_id]) <= txids, (chain_id, paid[chain_id])

    # A process whose lease connection is cut stops at once (exit 75), and the launcher starts it again.
    old_session = sb.gateway.session_for_shard(0, 2)
    connection = await asyncpg.connect(url)
    try:
        assert await connection.fetchval(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", again[0][1]
        )
    finally:
        await connection.close()
    back = await wait_for_leases(url, 2, not_pid=again[0][0])
    assert back[1] == again[1]
    assert "process 0 (0) ended: it lost its shard lease (exit 75)" in log_path.read_text()
    await new_session(sb, 0, old_session)
    found[w.genesis.id].append(await mine_one(sb, w.genesis, w.general, w.alice))  # served again

    launcher.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(launcher.wait(), 90) == 0
    assert await leases(url) == {}
    blocks, _ = await stored(url, w.genesis.id)
    assert set(found[w.genesis.id]) <= blocks
