"""Sandbox play remembers its world across a restart (issue 9, item 15): the same servers and
members (so the same chains and wallets), old messages whose buttons still work, and the
webhook the bot announces through."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from sandbox import Sandbox
from sandbox.demo import populate_demo
from tests.e2e.conftest import make_settings, running_bot
from tests.e2e.text import reply_text, shown

ROOT = Path(__file__).resolve().parents[2]


def announced(sb: Sandbox, channel) -> list[str]:
    return [e.get("title", "") for m in sb.webhook_feed(channel) for e in m.embeds]


async def test_a_restarted_sandbox_and_bot_find_chain_wallets_buttons_and_webhook_again(tmp_path):
    world_path = tmp_path / "sandbox-world.json"
    settings = make_settings(tmp_path / "playground.sqlite3")

    async with Sandbox(world_path=world_path) as sb:
        w = populate_demo(sb)
        async with running_bot(sb, settings) as bot:
            setup = await sb.invoke(w.genesis, w.general, w.alice, "playground setup", {"channel": w.blocks})
            await setup.wait_for(lambda h: "Announcements set up" in reply_text(h), timeout=10)
            found = await sb.invoke(w.genesis, w.general, w.alice, "mine start", {})
            await found.wait_for(lambda h: "found!" in reply_text(h), timeout=20)
            paid = await sb.invoke(w.genesis, w.general, w.alice, "wallet pay", {"member": w.bob, "amount": 7})
            await paid.wait_for(lambda h: "Payment sent" in reply_text(h), timeout=10)
            await sb.wait_until(lambda: "⛏️ Block 1 mined" in announced(sb, w.blocks), timeout=10,
                                describe="block 1's announcement")
            help_ = await sb.invoke(w.genesis, w.general, w.bob, "help", {})
            help_message = await help_.wait_response()
            node = bot.services.node
            alice_address = await node.address(w.genesis.id, str(w.alice.id))
            alice_balance = node.account(w.genesis.id, alice_address).balance
            txid = node.chain(w.genesis.id).mempool.entries()[0].txid
            ids = {"genesis": w.genesis.id, "fork": w.fork.id, "alice": w.alice.id, "bob": w.bob.id}

    async with Sandbox(world_path=world_path) as sb:
        assert sb.world_restored
        genesis, fork = sb.guild("Genesis Guild"), sb.guild("Fork Town")
        general, blocks = sb.channel(genesis, "general"), sb.channel(genesis, "blocks")
        alice, bob = sb.member(genesis, "alice"), sb.member(genesis, "bob")
        assert {"genesis": genesis.id, "fork": fork.id, "alice": alice.id, "bob": bob.id} == ids

        async with running_bot(sb, settings) as bot:
            node = bot.services.node
            assert node.chain(genesis.id).state.height == 1
            assert await node.address(genesis.id, str(alice.id)) == alice_address
            assert node.account(genesis.id, alice_address).balance == alice_balance == 50
            assert txid in node.chain(genesis.id).mempool

            # bob's /help from before the restart: its topic buttons still answer.
            old = sb.message(help_message.id)
            click = await sb.click(old, member=bob, label="Staking")
            await click.wait_ack()
            assert "/stake deposit" in shown(sb.message(old.id))

            # The webhook made before the restart still carries the announcements.
            again = await sb.invoke(genesis, general, bob, "mine start", {})
            await again.wait_for(lambda h: "found!" in reply_text(h), timeout=20)
            await sb.wait_until(lambda: "⛏️ Block 2 mined" in announced(sb, blocks), timeout=10,
                                describe="block 2's announcement, through the old webhook")
            assert not sb.find_requests("* /webhooks/*", status=404)
            bob_address = await node.address(genesis.id, str(bob.id))
            assert node.account(genesis.id, bob_address).balance == 57  # the payment survived and confirmed


async def test_python_m_bot_in_the_sandbox_comes_back_to_the_same_world(tmp_path):
    """`bash scripts/run.sh` twice, as the README's walk-through does: the second start says it is
    back, and :history shows the first run's reply."""
    env = {
        **{k: v for k, v in os.environ.items() if k != "DISCORD_TOKEN"},
        "DATABASE_PATH": str(tmp_path / "data" / "playground.sqlite3"),
        "MASTER_KEY_FILE": str(tmp_path / "data" / "master.key"),
        "SANDBOX_PORT": "0",
        "DASHBOARD_PORT": "0",  # tests run side by side: the default dashboard port may be taken
        "HASHING_WORKERS": "1",
        "LOG_LEVEL": "WARNING",
    }

    async def play(script: bytes) -> str:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", cwd=ROOT, env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        try:
            stdout, stderr = await asyncio.wait_for(proc.communicate(script), 90)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0, (stdout.decode(), stderr.decode())
        return stdout.decode()

    first = await play(b":wait\nalice: /wallet balance\n:wait\n:quit\n")
    assert "A new sandbox world, kept in" in first and "Your wallet" in first
    world_file = tmp_path / "data" / "sandbox-world.json"
    assert world_file.exists()

    second = await play(b":wait\n:history\n:quit\n")
    assert f"Back in the sandbox world saved in {world_file}" in second
    assert "↳ alice used /wallet balance (only alice can see this)" in second and "Your wallet" in second

    world_file.write_text('{"format": "consensus-playground-sandbox-world", "vers')
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", cwd=ROOT, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(b":quit\n"), 60)
    assert proc.returncode == 78
    assert stderr.decode() == (
        f"consensus-playground: cannot start: the sandbox world file {world_file} is not valid JSON "
        "(line 1, column 50); it may be damaged. Move or delete it to start a new sandbox world "
        "(the chains in the database belong to the old one's servers)\n"
    )
