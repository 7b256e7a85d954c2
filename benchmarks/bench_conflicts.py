"""Conflicting commands fired at the same moment, counted for lost and duplicated effects.

Run: .venv/bin/python -m benchmarks.bench_conflicts [ROUNDS]

The real bot (discord.py's gateway and REST code) plays against the local
sandbox on 127.0.0.1, in this process.  Each round fires, with ``asyncio.gather``
semantics (every interaction dispatched before any is answered):

- payments: one member sends 200 ``/wallet pay`` at once; then a block.  Lost: a
  payment acknowledged ("Payment sent") that is not in the block.  Duplicated:
  two acknowledgements for one transfer.  Broken: supply that does not add up.
- stake: one member fires ``/stake deposit``, ``/wallet pay`` and a second
  ``/stake deposit`` at once; then two blocks.  Lost: an acknowledged deposit or
  payment not in a block.  Frozen: the member's next payment refused because a
  deposit is "waiting for the next block".
- double start: two ``/mine start`` at once, then ``/mine stop``.  Duplicated: two
  sessions for one member on the hashing core.  Lost (orphaned): a session left on
  the core after ``/mine stop`` answered and the session ended.
- mode switch: an admin confirms ``/playground config mode:pos`` while members
  fire commands.  Lost: the switch reports a failure or the chain is not pos after.

Target: zero of each, in every round.  These are correctness counts, not timings,
so a loaded machine changes nothing but the run time.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import tempfile
import time
from pathlib import Path

from bot.app import PlaygroundBot
from bot.settings import Settings
from sandbox import Sandbox, point_discord_py_at
from sandbox.demo import DemoWorld, populate_demo

PAYMENTS = 200
TARGET = 0
# About 60 hashes per block: every /mine start finds at once.
EASY_HASH_RATE = 1
IMPOSSIBLE_HASH_RATE = 10**12
TXID = re.compile(r"`([0-9a-f]{64})`")


def text(handle) -> str:
    message = handle.response
    if message is None:
        return ""
    parts = [message.content or ""]
    for embed in message.embeds:
        parts += [embed.get("title", ""), embed.get("description", "")]
        parts += [f"{f['name']}: {f['value']}" for f in embed.get("fields", [])]
    return "\n".join(p for p in parts if p)


class Bench:
    def __init__(self, sb: Sandbox, bot: PlaygroundBot, world: DemoWorld) -> None:
        self.sb = sb
        self.bot = bot
        self.world = world
        self.counts: dict[str, dict[str, int]] = {}

    def count(self, scenario: str, what: str, n: int) -> None:
        self.counts.setdefault(scenario, {}).setdefault(what, 0)
        self.counts[scenario][what] += n

    async def run(self, member, command, options=None, guild=None):
        w = self.world
        guild = guild or w.genesis
        handle = await self.sb.invoke(guild, w.general, member, command, options or {})
        await handle.wait_ack(10)
        return handle

    async def mine(self, member) -> None:
        services = self.bot.services
        services.measured_hash_rate = EASY_HASH_RATE
        handle = await self.run(member, "mine start")
        await handle.wait_for(lambda h: any(k in text(h) for k in ("found!", "Stale", "Time up")), timeout=30)

    async def fresh_chain(self) -> None:
        services = self.bot.services
        services.measured_hash_rate = EASY_HASH_RATE
        await services.ensure_chain(self.world.genesis.id)
        await services.reset_chain(self.world.genesis.id)
        await services.server_settings_store.replace(self.world.genesis.id, {"cooldown_s": 0})

    async def payments(self) -> None:
        w, node = self.world, self.bot.services.node
        await self.fresh_chain()
        await self.mine(w.alice)
        handles = [
            await self.sb.invoke(w.genesis, w.general, w.alice, "wallet pay",
                                 {"member": (w.bob, w.carol)[i % 2], "amount": 1, "fee": i % 3})
            for i in range(PAYMENTS)
        ]
        await asyncio.gather(*(h.wait_ack(10) for h in handles))
        sent = [TXID.search(text(h)).group(1) for h in handles if not h.ephemeral]
        self.count("payments", "acknowledged", len(sent))
        self.count("payments", "duplicated", len(sent) - len(set(sent)))
        await self.mine(w.carol)
        lost = 0
        for txid in set(sent):
            if await node.store.blocks.get_transaction(w.genesis.id, bytes.fromhex(txid)[::-1]) is None:
                lost += 1
        self.count("payments", "lost", lost)
        state = node.chain(w.genesis.id).state
        self.count("payments", "supply broken", int(state.total_supply_units() != state.issued_supply_units()))

    async def stake(self) -> None:
        w, node = self.world, self.bot.services.node
        await self.fresh_chain()
        await self.mine(w.alice)
        handles = [
            await self.sb.invoke(w.genesis, w.general, w.alice, "stake deposit", {"amount": 32}),
            await self.sb.invoke(w.genesis, w.general, w.alice, "wallet pay", {"member": w.bob, "amount": 5}),
            await self.sb.invoke(w.genesis, w.general, w.alice, "stake deposit", {"amount": 33}),
        ]
        await asyncio.gather(*(h.wait_ack(10) for h in handles))
        acknowledged = [h for h in handles if not h.ephemeral]
        self.count("stake", "acknowledged", len(acknowledged))
        await self.mine(w.carol)
        await self.mine(w.carol)
        chain = w.genesis.id
        alice = await node.address(chain, str(w.alice.id))
        bob = node.account(chain, await node.address(chain, str(w.bob.id))).balance
        validator = await self.bot.services.beacon.validator(chain, str(w.alice.id))
        lost = 0
        for handle in acknowledged:
            if "Payment sent" in text(handle):
                lost += int(bob != 5)
            else:
                staked = int(re.search(r"\*\*(\d+) pts\*\*", text(handle)).group(1))
                lost += int(validator is None or validator.deposited_units // 10**9 != staked)
        self.count("stake", "lost", lost)
        after = await self.run(w.alice, "wallet pay", {"member": w.bob, "amount": 1})
        self.count("stake", "frozen", int("waiting for the next block" in text(after) and after.ephemeral))
        self.count("stake", "nonce reused", int(node.account(chain, alice).nonce > 3))

    async def double_start(self) -> None:
        w, services = self.world, self.bot.services
        await self.fresh_chain()
        services.measured_hash_rate = IMPOSSIBLE_HASH_RATE
        await services.reset_chain(w.genesis.id)
        first = await self.sb.invoke(w.genesis, w.general, w.bob, "mine start", {})
        second = await self.sb.invoke(w.genesis, w.general, w.bob, "mine start", {})
        await asyncio.gather(first.wait_ack(10), second.wait_ack(10))
        core = services.hashing_core
        key = (w.genesis.id, str(w.bob.id))
        for _ in range(100):  # until a session is on the core
            if core.session(key) is not None:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # time for a second one to start, if the cog let it
        mine = [s for s in core.stats().per_session if s.key == key]
        self.count("double start", "duplicated", max(0, len(mine) - 1))
        await self.run(w.bob, "mine stop")
        for _ in range(100):  # the stopped session ends within a chunk or two
            if core.session(key) is None:
                break
            await asyncio.sleep(0.05)
        orphan = core.session(key)
        self.count("double start", "lost (orphaned sessions)", int(orphan is not None))
        if orphan is not None:
            orphan.cancel()  # what nobody could do from Discord

    async def mode_switch(self) -> None:
        w, services = self.world, self.bot.services
        await self.fresh_chain()
        prompt_handle = await self.run(w.alice, "playground config", {"mode": "pos"})
        prompt = prompt_handle.response
        click = await self.sb.click(prompt, member=w.alice, label="Start a new pos chain")

        def finished() -> bool:
            shown = text_of_message(self.sb.message(prompt.id))
            return "New pos chain" in shown or "failed" in shown

        # Members keep typing commands, wave after wave, until the switch has answered.
        for _ in range(200):
            if finished():
                break
            noise = [
                await self.sb.invoke(w.genesis, w.general, member, command, {})
                for member in (w.bob, w.carol)
                for command in ("wallet balance", "mine stats", "chain tip")
            ]
            await asyncio.gather(*(h.wait_ack(10) for h in noise))
        await click.wait_ack(10)
        await prompt_handle.wait_for(lambda h: finished(), timeout=20)
        failed = "failed" in text_of_message(self.sb.message(prompt.id))
        self.count("mode switch", "lost", int(failed or services.beacon.mode(w.genesis.id) != "pos"))
        await services.server_settings_store.replace(w.genesis.id, {"cooldown_s": 0})


def text_of_message(message) -> str:
    parts = [message.content or ""]
    for embed in message.embeds:
        parts += [embed.get("title", ""), embed.get("description", "")]
    return "\n".join(parts)


async def main(rounds: int) -> int:
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        async with Sandbox(host="127.0.0.1", port=0) as sb:
            world = populate_demo(sb)
            target = point_discord_py_at(sb.api_base, sb.gateway_url)
            settings = Settings(database_path=Path(tmp) / "bench.sqlite3", master_key="cd" * 32, hashing_workers=1,
                                progress_interval_s=0.5, _env_file=None)
            bot = PlaygroundBot(settings, guild_ready_timeout=0.1)
            runner = asyncio.create_task(bot.start(sb.bot_token))
            try:
                await asyncio.wait_for(bot.wait_until_ready(), 60)
                await sb.wait_until_ready()
                await sb.wait_commands_synced()
                bench = Bench(sb, bot, world)
                started = time.perf_counter()
                for _ in range(rounds):
                    for scenario in (bench.payments, bench.stake, bench.double_start, bench.mode_switch):
                        await scenario()
                elapsed = time.perf_counter() - started
            finally:
                await bot.close()
                await asyncio.wait({runner}, timeout=15)
                target.restore()
    print(f"{rounds} round(s) of conflicting commands in {elapsed:.1f}s (target for every count but "
          f"'acknowledged': {TARGET})")
    failures = 0
    for scenario, counts in bench.counts.items():
        for what, n in counts.items():
            held = what == "acknowledged" or n == TARGET
            failures += not held
            print(f"  {scenario:<13} {what:<26} {n:>6}  {'ok' if held else 'MISSED (target 0)'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)))
