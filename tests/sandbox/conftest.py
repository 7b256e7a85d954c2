"""Fixtures: a fresh sandbox per test, the demo world, and the tiny test bot connected to it."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

# The repo root must be importable however pytest is launched (plain `pytest` does not add cwd).
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from sandbox import Sandbox, point_discord_py_at  # noqa: E402
from sandbox.demo import DemoWorld, populate_demo  # noqa: E402
from sandbox_testbot import PlaygroundTestBot  # noqa: E402


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with Sandbox(host="127.0.0.1", port=0) as sandbox:
        yield sandbox


@pytest.fixture
def world(sb: Sandbox) -> DemoWorld:
    return populate_demo(sb)


@pytest.fixture
async def bot(sb: Sandbox, world: DemoWorld) -> AsyncIterator[PlaygroundTestBot]:
    target = point_discord_py_at(sb.api_base, sb.gateway_url)
    client = PlaygroundTestBot(guild_id=world.genesis.id)
    task = asyncio.create_task(client.start(sb.bot_token), name="sandbox-test-bot")
    try:
        ready = asyncio.create_task(client.wait_until_ready())
        done, _ = await asyncio.wait({task, ready}, timeout=15, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()  # surfaces the login/connect error
            raise AssertionError("bot.start() returned before the bot became ready")
        if ready not in done:
            ready.cancel()
            raise AssertionError("bot did not become ready within 15s")
        await sb.wait_until_ready()
        await sb.wait_commands_synced(names=["play"])
        await sb.wait_commands_synced(world.genesis, names=["guildping"])
        yield client
    finally:
        await client.close()
        if not task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=10)
        elif not task.cancelled():
            task.exception()  # already reported above; mark it retrieved
        target.restore()
