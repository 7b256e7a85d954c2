"""End-to-end fixtures: the real bot, through discord.py's own network code, against the sandbox."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.app import PlaygroundBot, ShardedPlaygroundBot
from bot.settings import Settings
from chain.params import PLAYGROUND
from sandbox import Sandbox, point_discord_py_at
from sandbox.demo import DemoWorld, populate_demo

# About 60 hashes per block with the playground's 60 s spacing: blocks in milliseconds.
EASY_HASH_RATE = 1
# Blocks milliseconds apart are thousands of times faster than the minute they aim for: the early
# retarget (chain/pow/difficulty.py) would make each of the first ten 4x harder, and the tests' blocks slow.
# tests/chain/consensus/test_block_time_rules.py checks it on simulated chains.
E2E_PARAMS = PLAYGROUND.evolve(early_retarget=False)
COMMANDS = ["mine", "wallet", "leaderboard", "chain", "playground", "learn"]


@dataclass
class Playground:
    sb: Sandbox
    world: DemoWorld
    bot: PlaygroundBot
    settings: Settings

    async def run(self, member, command: str, options: dict | None = None, *, guild=None, channel=None):
        """Invoke a slash command and wait for its first visible answer."""
        guild = guild or self.world.genesis
        channel = channel or (self.world.general if guild is self.world.genesis else self.world.fork_general)
        handle = await self.sb.invoke(guild, channel, member, command, options or {})
        await handle.wait_ack(5)
        return handle


def make_settings(db: Path, **overrides) -> Settings:
    values = dict(
        database_path=db,
        master_key="ab" * 32,
        hashing_workers=1,
        progress_interval_s=0.2,
        log_level="INFO",
        _env_file=None,
    )
    values.update(overrides)
    return Settings(**values)


@contextlib.asynccontextmanager
async def running_bot(
    sb: Sandbox, settings: Settings, *, hash_rate: int = EASY_HASH_RATE
) -> AsyncIterator[PlaygroundBot]:
    target = point_discord_py_at(sb.api_base, sb.gateway_url)
    # Looked up here, not bound at import: tests patch ``PlaygroundBot`` (a fake clock, say).
    bot_class = ShardedPlaygroundBot if settings.sharded else PlaygroundBot
    bot = bot_class(settings, guild_ready_timeout=0.1)
    task = asyncio.create_task(bot.start(sb.bot_token), name="playground-bot")
    try:
        ready = asyncio.create_task(bot.wait_until_ready())
        done, _ = await asyncio.wait({task, ready}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()
            raise AssertionError("bot.start() returned before the bot became ready")
        if ready not in done:
            ready.cancel()
            raise AssertionError("bot did not become ready within 30s")
        assert not bot.failed_extensions, bot.failed_extensions
        if bot.services is not None and hash_rate is not None:
            bot.services.stop_calibration()  # the test chooses the rate: no need to measure it
            bot.services.measured_hash_rate = hash_rate
        if bot.services is not None:
            bot.services.default_params = E2E_PARAMS
        if settings.sharded:
            await sb.wait_until_ready(shard_ids=bot.shard_ids)  # this process's shards, not the bot's others
        else:
            await sb.wait_until_ready()
        if settings.sync_commands:
            await sb.wait_commands_synced(names=COMMANDS)
        yield bot
    finally:
        await bot.close()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, timeout=15)
        target.restore()


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with Sandbox(host="127.0.0.1", port=0) as sandbox:
        yield sandbox


@pytest.fixture
async def playground(sb: Sandbox, tmp_path: Path) -> AsyncIterator[Playground]:
    world = populate_demo(sb)
    settings = make_settings(tmp_path / "playground.sqlite3")
    async with running_bot(sb, settings) as bot:
        yield Playground(sb, world, bot, settings)


@pytest.fixture
async def dashboard_playground(sb: Sandbox, tmp_path: Path) -> AsyncIterator[Playground]:
    """The real bot with its classroom dashboard on (any free port on 127.0.0.1)."""
    world = populate_demo(sb)
    settings = make_settings(tmp_path / "playground.sqlite3", dashboard_port=0)
    async with running_bot(sb, settings) as bot:
        yield Playground(sb, world, bot, settings)
