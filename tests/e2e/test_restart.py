"""Restarts: in-process (bot.close, as on SIGTERM) and the real `python -m bot` process."""

import asyncio
import os
import signal
import sys
from pathlib import Path

from chain.adapters.storage import Store
from tests.e2e.conftest import make_settings, running_bot
from tests.e2e.text import reply_text, shown

ROOT = Path(__file__).resolve().parents[2]
IMPOSSIBLE_RATE = 10**12


async def test_restart_during_a_mining_session_keeps_everything_acknowledged(sb, tmp_path):
    from sandbox.demo import populate_demo

    w = populate_demo(sb)
    settings = make_settings(tmp_path / "restart.sqlite3")
    async with running_bot(sb, settings) as bot:
        found = await sb.invoke(w.genesis, w.general, w.alice, "mine start", {})
        await found.wait_for(lambda h: "found!" in reply_text(h), timeout=20)
        paid = await sb.invoke(w.genesis, w.general, w.alice, "wallet pay", {"member": w.bob, "amount": 7})
        await paid.wait_for(lambda h: "Payment sent" in reply_text(h), timeout=10)
        txid = bot.services.node.chain(w.genesis.id).mempool.entries()[0].txid
        tip = bot.services.node.chain(w.genesis.id).state.tip_hash

        bot.services.measured_hash_rate = IMPOSSIBLE_RATE  # the other server's chain cannot be mined in time
        mining = await sb.invoke(w.fork, w.fork_general, w.dave_in_fork, "mine start", {})
        await mining.wait_for(lambda h: len(h.edits) >= 1, timeout=10)
    # running_bot's exit is bot.close(): the same path SIGTERM takes.
    assert "the bot is restarting" in reply_text(mining)

    async with running_bot(sb, settings) as bot:
        node = bot.services.node
        assert node.chain(w.genesis.id).state.tip_hash == tip
        assert txid in node.chain(w.genesis.id).mempool
        assert node.chain(w.fork.id).state.height == 0
        for guild in (w.genesis, w.fork):
            report = await node.verify(guild.id)
            # Mined rewards plus the faucet's fund, allocated at genesis.
            assert report.supply == 50 * (report.blocks - 1) + settings.faucet_fund_points
        again = await sb.invoke(w.genesis, w.general, w.bob, "mine start", {})
        await again.wait_for(lambda h: "found!" in reply_text(h), timeout=20)
        bob = await node.address(w.genesis.id, str(w.bob.id))
        assert node.account(w.genesis.id, bob).balance == 57  # the payment survived and confirmed


async def test_python_m_bot_stops_cleanly_on_sigterm(sb, tmp_path):
    from sandbox.demo import populate_demo

    w = populate_demo(sb)
    db = tmp_path / "proc.sqlite3"
    env = {
        **os.environ,
        "DISCORD_TOKEN": sb.bot_token,
        "DISCORD_API_BASE": sb.api_base,
        "DISCORD_GATEWAY_URL": sb.gateway_url,
        "DATABASE_PATH": str(db),
        "MASTER_KEY": "cd" * 32,
        "HASHING_WORKERS": "1",
        "PROGRESS_INTERVAL_S": "0.3",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await sb.wait_until_ready(timeout=30)
        await sb.wait_commands_synced(names=["mine"], timeout=30)
        h = await sb.invoke(w.genesis, w.general, w.alice, "mine start", {})
        await h.wait_ack(5)
        await h.wait_for(lambda h: len(h.edits) >= 1, timeout=20)
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    output = (await proc.stdout.read()).decode()
    assert code == 0, output
    assert "shutting down" in output
    assert sb.bot_token not in output and "cd" * 32 not in output  # secrets never logged
    text = reply_text(h)
    assert "the bot is restarting" in text or "found!" in text

    store = await Store.open(db)
    assert await store.chains.chain_ids() == [w.genesis.id]
    await store.close()


async def test_python_m_bot_without_token_plays_in_the_sandbox(tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if k != "DISCORD_TOKEN"},
        "DATABASE_PATH": str(tmp_path / "sandboxed.sqlite3"),
        "MASTER_KEY_FILE": str(tmp_path / "master.key"),
        "SANDBOX_PORT": "0",
        "DASHBOARD_PORT": "0",  # tests run side by side: the default dashboard port may be taken
        "HASHING_WORKERS": "1",
        "LOG_LEVEL": "WARNING",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", cwd=ROOT, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        script = b":wait\nalice: /wallet balance\n:wait\nalice: /chain tip\n:wait\n:quit\n"
        stdout, stderr = await asyncio.wait_for(proc.communicate(script), 90)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    out = stdout.decode()
    assert proc.returncode == 0, (out, stderr.decode())
    assert "built-in Discord sandbox" in out
    assert "Your wallet" in out and "Tip: block 0" in out
    assert (tmp_path / "master.key").exists()
    assert "created a new one" in stderr.decode()


async def test_a_new_servers_chain_is_calibrated_to_the_hashing_core(sb, tmp_path):
    from chain.pow.compact import compute_block_work, decode_compact
    from sandbox.demo import populate_demo

    w = populate_demo(sb)
    async with running_bot(sb, make_settings(tmp_path / "calibrated.sqlite3"), hash_rate=None) as bot:
        h = await sb.invoke(w.genesis, w.general, w.alice, "chain tip", {})
        await h.wait_for(lambda h: "Tip: block 0" in reply_text(h), timeout=15)
        rate = bot.services.measured_hash_rate
        state = bot.services.node.chain(w.genesis.id).state
        # Measured inside a command (while commands hold the core), and still real.
        assert rate is not None and rate > 10_000
        expected = rate * state.params.target_spacing_s
        work = compute_block_work(decode_compact(state.tip.bits).value)
        assert expected <= work <= expected * 10001 // 10000


async def test_a_chain_that_cannot_load_is_offline_and_the_other_server_plays_on(sb, tmp_path):
    """One server's tip block is corrupt on disk: the bot starts anyway, that server's commands say
    what happened and how to start over, /playground reset does start over, the other server plays."""
    import sqlite3

    from sandbox.demo import populate_demo

    w = populate_demo(sb)
    settings = make_settings(tmp_path / "corrupt.sqlite3")
    async with running_bot(sb, settings) as bot:
        setup = await sb.invoke(w.genesis, w.general, w.alice, "playground setup", {"channel": w.blocks})
        await setup.wait_for(lambda h: "Announcements set up" in reply_text(h), timeout=10)
        for guild, channel, member in ((w.genesis, w.general, w.alice), (w.fork, w.fork_general, w.dave_in_fork)):
            found = await sb.invoke(guild, channel, member, "mine start", {})
            await found.wait_for(lambda h: "found!" in reply_text(h), timeout=20)
        fork_height = bot.services.node.chain(w.fork.id).state.height
    with sqlite3.connect(settings.database_path) as db:
        db.execute(
            "UPDATE blocks SET raw = ? WHERE chain_id = ? AND height = (SELECT MAX(height) FROM blocks WHERE "
            "chain_id = ?)",
            (b"\xff\x00" * 40, w.genesis.id, w.genesis.id),
        )

    async with running_bot(sb, settings) as bot:
        node = bot.services.node
        assert node.offline_chain_ids() == [w.genesis.id]
        # Its admins are told in the playground channel at once, not by a member's failed command.
        def alerts():
            return [m for m in sb.channel_messages(w.blocks) if "could not be loaded" in (m.content or "")]

        alert = await sb.wait_until(alerts, timeout=10, describe="the offline alert in #blocks")
        assert len(alert) == 1 and "/playground reset" in alert[0].content
        # The other server plays on.
        assert node.chain(w.fork.id).state.height == fork_height
        mined = await sb.invoke(w.fork, w.fork_general, w.dave_in_fork, "mine start", {})
        await mined.wait_for(lambda h: "found!" in reply_text(h), timeout=20)
        assert node.chain(w.fork.id).state.height == fork_height + 1

        # The corrupt one answers every member privately, with the reason and the way out.
        balance = await sb.invoke(w.genesis, w.general, w.bob, "wallet balance", {})
        await balance.wait_response(10)
        assert balance.ephemeral
        text = reply_text(balance)
        assert "This server's chain could not be loaded (EncodingError" in text
        assert "An admin can start over with `/playground reset`" in text
        status = await sb.invoke(w.genesis, w.general, w.alice, "playground status", {})
        await status.wait_response(10)
        assert status.ephemeral and "This server's chain is offline" in reply_text(status)
        assert "EncodingError" in reply_text(status)
        assert node.offline_chain_ids() == [w.genesis.id]  # asking changed nothing

        # /playground reset starts over.
        reset = await sb.invoke(w.genesis, w.general, w.alice, "playground reset", {})
        prompt = await reset.wait_response(10)
        assert "could not be loaded" in reply_text(reset)
        click = await sb.click(prompt, member=w.alice, label="Reset the chain")
        await click.wait_ack()
        await reset.wait_for(lambda h: "Chain reset" in shown(sb.message(prompt.id)), timeout=20)
        assert node.offline_chain_ids() == [] and node.chain(w.genesis.id).state.height == 0
        again = await sb.invoke(w.genesis, w.general, w.bob, "mine start", {})
        await again.wait_for(lambda h: "found!" in reply_text(h), timeout=20)
        assert node.chain(w.genesis.id).state.height == 1


async def test_the_first_command_in_a_new_server_does_not_wait_for_calibration(sb, tmp_path, monkeypatch):
    """Issue 9: the first command in a new server took 1.0-1.25 s, measuring the hashing core for a
    second before it could answer. The bot now measures while it logs in."""
    from sandbox.demo import populate_demo

    w = populate_demo(sb)
    async with running_bot(sb, make_settings(tmp_path / "early.sqlite3"), hash_rate=None) as bot:
        services = bot.services
        calls = []
        real = services.hashing_core.measure_rate

        async def spy(seconds: float = 1.0) -> int:
            calls.append(seconds)
            return await real(seconds)

        monkeypatch.setattr(services.hashing_core, "measure_rate", spy)
        rate = await services.hash_rate()  # the startup measurement, awaited, not started again
        h = await sb.invoke(w.genesis, w.general, w.alice, "chain tip", {})
        await h.wait_for(lambda h: "Tip: block 0" in reply_text(h), timeout=15)
        assert calls == [] and rate > 10_000
        assert services.measured_hash_rate == rate
