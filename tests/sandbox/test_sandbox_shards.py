"""Sharding: IDENTIFY's shard field, routing by Discord's formula, GET /gateway/bot's count.

Real discord.py AutoShardedBots connect to the sandbox: one bot running both shards of two, and
two bots with one shard each (as two processes would)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
import discord
import pytest
from discord.ext import commands

import sandbox.server
from sandbox import Sandbox, point_discord_py_at
from sandbox.demo import populate_demo
from sandbox.gateway import IDENTIFY, INVALID_SHARD, SHARDING_REQUIRED, parse_shard, shard_for
from sandbox.ids import SnowflakeGenerator


class ShardBot(commands.AutoShardedBot):
    """A sharded bot whose one command says which client answered, and which records messages."""

    def __init__(self, name: str, *, shard_count: int | None = None, shard_ids: list[int] | None = None) -> None:
        super().__init__(
            command_prefix="!",
            intents=discord.Intents.default(),
            guild_ready_timeout=0.05,
            shard_count=shard_count,
            shard_ids=shard_ids,
        )
        self.name = name
        self.messages: list[discord.Message] = []

        @self.tree.command(name="where", description="Which client and shard answered")
        async def where(interaction: discord.Interaction) -> None:
            guild = interaction.guild
            await interaction.response.send_message(f"{self.name} shard={guild.shard_id if guild else None}")

    async def setup_hook(self) -> None:
        await self.tree.sync()

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        # discord.py sleeps 5 s before every non-initial IDENTIFY; the sandbox does not enforce it.
        return None

    async def on_message(self, message: discord.Message) -> None:
        self.messages.append(message)


@contextlib.asynccontextmanager
async def running(sb: Sandbox, *bots: ShardBot) -> AsyncIterator[None]:
    target = point_discord_py_at(sb.api_base, sb.gateway_url)
    tasks = [asyncio.create_task(bot.start(sb.bot_token), name=f"shard-bot-{bot.name}") for bot in bots]
    try:
        ready = asyncio.gather(*(bot.wait_until_ready() for bot in bots))
        done, _ = await asyncio.wait({*tasks, ready}, timeout=20, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task in done:
                task.result()
                raise AssertionError("bot.start() returned before the bot became ready")
        if ready not in done:
            ready.cancel()
            raise AssertionError("the sharded bots did not become ready within 20s")
        await sb.wait_until_ready()
        await sb.wait_commands_synced(names=["where"])
        yield
    finally:
        for bot in bots:
            await bot.close()
        for task in tasks:
            if not task.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(task, timeout=10)
            elif not task.cancelled():
                task.exception()
        target.restore()


def sent(sb: Sandbox, t: str) -> list[Any]:
    return [e for e in sb.gateway.log if e.direction == "send" and e.t == t]


@pytest.fixture
async def sb2() -> AsyncIterator[Sandbox]:
    async with Sandbox(host="127.0.0.1", port=0, shard_count=2) as sandbox:
        yield sandbox


async def test_demo_guilds_fall_on_different_shards_of_two() -> None:
    sb = Sandbox()
    world = populate_demo(sb)
    assert shard_for(world.genesis.id, 2) == 0 and shard_for(world.fork.id, 2) == 1
    assert sb.shard_of(world.genesis, 2) == 0 and sb.shard_of(world.fork, 2) == 1
    # Ids still sort in creation order, and later ids come after them.
    assert world.genesis.id < world.general.id < world.fork.id < world.fork_general.id < sb.new_id()


def test_next_on_shard_mints_increasing_ids_on_the_asked_shard() -> None:
    ids = SnowflakeGenerator()
    minted = [ids.next()]
    for shard_id, num_shards in [(1, 2), (1, 2), (0, 2), (3, 4), (0, 1), (2, 3)]:
        minted.append(ids.next_on_shard(shard_id, num_shards))
        assert shard_for(minted[-1], num_shards) == shard_id
        minted.append(ids.next())
    assert minted == sorted(set(minted))
    with pytest.raises(ValueError):
        ids.next_on_shard(2, 2)


def test_parse_shard_accepts_only_what_discord_accepts() -> None:
    assert parse_shard([0, 1]) == (0, 1) and parse_shard([3, 4]) == (3, 4)
    for bad in ([2, 2], [0, 0], [-1, 2], [0], [0, 1, 2], "0,1", [True, 2], [0.0, 2], None):
        assert parse_shard(bad) is None, bad


async def test_an_auto_sharded_bot_without_a_count_runs_the_count_gateway_bot_answers(
    sb2: Sandbox,
) -> None:
    """One discord.py client, shard_count=None: both shards, each sent only its own guilds."""
    world = populate_demo(sb2)
    bot = ShardBot("solo")
    async with running(sb2, bot):
        assert bot.shard_count == 2 and sorted(bot.shards) == [0, 1]
        assert sb2.find_requests("GET /gateway/bot")
        assert sb2.ready and len(sb2.gateway.live_sessions()) == 2
        first, second = sb2.gateway.session_for_shard(0), sb2.gateway.session_for_shard(1)
        assert first is not None and second is not None
        assert first.guild_ids == [world.genesis.id] and second.guild_ids == [world.fork.id]
        readies = {tuple(e.d["shard"]): [g["id"] for g in e.d["guilds"]] for e in sent(sb2, "READY")}
        assert readies == {(0, 2): [str(world.genesis.id)], (1, 2): [str(world.fork.id)]}
        creates = {e.d["id"]: e.shard for e in sent(sb2, "GUILD_CREATE")}
        assert creates == {str(world.genesis.id): (0, 2), str(world.fork.id): (1, 2)}
        assert {g.id for g in bot.guilds} == {world.genesis.id, world.fork.id}

        for guild, channel, member, shard in [
            (world.genesis, world.general, world.alice, 0),
            (world.fork, world.fork_general, world.bob_in_fork, 1),
        ]:
            handle = await sb2.invoke(guild, channel, member, "where")
            assert (await handle.wait_response()).content == f"solo shard={shard}"
            [frame] = [e for e in sent(sb2, "INTERACTION_CREATE") if e.d["id"] == str(handle.id)]
            assert frame.shard == (shard, 2)
            assert sb2.shard_of(guild) == shard

        # Guild events after READY follow the same rule, counted per session.
        sb2.add_channel(world.fork, "late")
        await sb2.wait_until(lambda: second.event_counts["CHANNEL_CREATE"] == 1, 3, "CHANNEL_CREATE on shard 1")
        assert first.event_counts["CHANNEL_CREATE"] == 0
        assert first.guild_event_counts.keys() == {world.genesis.id}
        assert second.guild_event_counts.keys() == {world.fork.id}

        # A RESUME keeps the session's shard: events queued meanwhile come back on shard 1 only.
        await sb2.disconnect_gateway(shard_id=1)
        handle = await sb2.invoke(world.fork, world.fork_general, world.dave_in_fork, "where")
        await sb2.wait_resumed()
        assert (await handle.wait_response()).content == "solo shard=1"
        assert sb2.gateway.session_for_shard(1) is second and sb2.gateway.identify_count == 2
        assert [e.shard for e in sent(sb2, "RESUMED")] == [(1, 2)]


async def test_two_clients_with_one_shard_each_serve_only_their_own_guilds(sb2: Sandbox) -> None:
    """As two processes would: AutoShardedBot(shard_count=2, shard_ids=[n]) each."""
    world = populate_demo(sb2)
    zero = ShardBot("zero", shard_count=2, shard_ids=[0])
    one = ShardBot("one", shard_count=2, shard_ids=[1])
    async with running(sb2, zero, one):
        assert [g.id for g in zero.guilds] == [world.genesis.id]
        assert [g.id for g in one.guilds] == [world.fork.id]
        genesis = await sb2.invoke(world.genesis, world.general, world.alice, "where")
        fork = await sb2.invoke(world.fork, world.fork_general, world.bob_in_fork, "where")
        assert (await genesis.wait_response()).content == "zero shard=0"
        assert (await fork.wait_response()).content == "one shard=1"

        # A guild the bot joins later reaches only the client of its shard.
        third = sb2.add_guild("Third Place", shard=(1, 2))
        await sb2.wait_until(lambda: one.get_guild(third.id) is not None, 3, "GUILD_CREATE on shard 1")
        assert zero.get_guild(third.id) is None

        # Messages too: bob's message in Genesis reaches client zero only.
        msg = await sb2.send_message(world.genesis, world.general, world.bob, "hello shard 0")
        await sb2.wait_until(lambda: any(m.id == msg.id for m in zero.messages), 3, "MESSAGE_CREATE on shard 0")
        assert not any(m.id == msg.id for m in one.messages)


async def test_a_new_identify_for_a_shard_replaces_only_that_shards_session(sb2: Sandbox) -> None:
    world = populate_demo(sb2)
    async with raw_identify(sb2, [0, 2]) as (ws0, _), raw_identify(sb2, [1, 2]) as (ws1, _):
        old_one = sb2.gateway.session_for_shard(1)
        async with raw_identify(sb2, [1, 2]) as (ws1_again, frames):
            assert frames[0]["t"] == "READY" and frames[0]["d"]["shard"] == [1, 2]
            closed = await ws1.receive()
            assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == 4000
            assert sb2.gateway.session_for_shard(1) is not old_one
            assert not ws0.closed and sb2.gateway.session_for_shard(0) is not None
            assert sb2.gateway.sessions_for(world.fork.id) == [sb2.gateway.session_for_shard(1)]


async def test_an_unsharded_session_gets_every_guild_even_when_shards_are_recommended(sb2: Sandbox) -> None:
    world = populate_demo(sb2)
    async with raw_identify(sb2, None) as (_, frames):
        ready = frames[0]["d"]
        assert "shard" not in ready
        assert [g["id"] for g in ready["guilds"]] == [str(world.genesis.id), str(world.fork.id)]
        [session] = sb2.gateway.live_sessions()
        assert session.key == (0, 1) and sb2.gateway.current is session
        await sb2.wait_until(lambda: sb2.ready, 3, "READY and both GUILD_CREATEs sent")
        assert sb2.shard_of(world.fork) == 0


async def test_an_invalid_shard_is_closed_with_4010(sb: Sandbox) -> None:
    populate_demo(sb)
    for bad in ([2, 2], [0, 0], [-1, 2], [1], "0"):
        async with aiohttp.ClientSession() as http, http.ws_connect(sb.gateway_url + "?v=10&encoding=json") as ws:
            await ws.receive_json()  # HELLO
            await ws.send_json({"op": IDENTIFY, "d": identify_payload(sb, bad)})
            closed = await ws.receive()
            assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == INVALID_SHARD, bad
    assert sb.gateway.identify_count == 0 and not sb.gateway.live_sessions()


async def test_a_session_over_the_guild_limit_is_closed_with_4011() -> None:
    async with Sandbox(max_guilds_per_session=1) as sb:
        populate_demo(sb)
        async with aiohttp.ClientSession() as http, http.ws_connect(sb.gateway_url + "?v=10&encoding=json") as ws:
            await ws.receive_json()
            await ws.send_json({"op": IDENTIFY, "d": identify_payload(sb, None)})
            closed = await ws.receive()
            assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == SHARDING_REQUIRED
        # Two shards hold one demo guild each: within the limit.
        async with raw_identify(sb, [0, 2]) as (_, frames):
            assert [g["id"] for g in frames[0]["d"]["guilds"]] == [str(sb.guild("Genesis Guild").id)]


async def test_gateway_bot_answers_the_configured_shard_count(monkeypatch: pytest.MonkeyPatch) -> None:
    async with Sandbox(shard_count=3, max_concurrency=2) as sb:
        populate_demo(sb)
        body = await get_gateway_bot(sb)
        assert body["url"] == sb.gateway_url and body["shards"] == 3
        limit = body["session_start_limit"]
        assert limit["max_concurrency"] == 2 and limit["total"] == 1000 and limit["remaining"] == 1000
        # Discord recommends about one shard per 1,000 guilds; more guilds, more shards.
        monkeypatch.setattr(sandbox.server, "GUILDS_PER_RECOMMENDED_SHARD", 1)
        sb.add_guild("Third Place")
        sb.add_guild("Fourth Place")
        assert (await get_gateway_bot(sb))["shards"] == 4
    async with Sandbox() as sb:
        assert (await get_gateway_bot(sb))["shards"] == 1


async def test_direct_messages_go_to_shard_0(sb2: Sandbox) -> None:
    world = populate_demo(sb2)
    bot = ShardBot("solo")
    async with running(sb2, bot):
        dm = await sb2.send_dm(world.carol, "a direct message")
        await sb2.wait_until(lambda: any(m.content == "a direct message" for m in bot.messages), 3, "the DM")
        [frame] = [e for e in sent(sb2, "MESSAGE_CREATE") if e.d["id"] == dm["id"]]
        assert frame.shard == (0, 2)
        [message] = [m for m in bot.messages if m.content == "a direct message"]
        assert message.guild is None and isinstance(message.channel, discord.DMChannel)
        assert message.author.id == world.carol.user.id
        assert sb2.gateway.session_for_shard(1).event_counts["MESSAGE_CREATE"] == 0  # type: ignore[union-attr]
        # DM channels are not modelled: a reply is refused, as the README says.
        with pytest.raises(discord.NotFound):
            await message.channel.send("hi back")


# --- raw gateway clients ----------------------------------------------------


def identify_payload(sb: Sandbox, shard: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"token": sb.bot_token, "intents": 1, "properties": {}}
    if shard is not None:
        d["shard"] = shard
    return d


@contextlib.asynccontextmanager
async def raw_identify(
    sb: Sandbox, shard: Sequence[int] | None
) -> AsyncIterator[tuple[aiohttp.ClientWebSocketResponse, list[dict[str, Any]]]]:
    """A bare websocket that identified; yields it and the frames up to READY's last GUILD_CREATE."""
    async with aiohttp.ClientSession() as http, http.ws_connect(sb.gateway_url + "?v=10&encoding=json") as ws:
        await ws.receive_json()  # HELLO
        await ws.send_json({"op": IDENTIFY, "d": identify_payload(sb, None if shard is None else list(shard))})
        ready = await ws.receive_json()
        assert ready["t"] == "READY", ready
        frames = [ready]
        for _ in ready["d"]["guilds"]:
            frames.append(await ws.receive_json())
        yield ws, frames


async def get_gateway_bot(sb: Sandbox) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(sb.api_base + "/gateway/bot", headers={"Authorization": f"Bot {sb.bot_token}"}) as response,
    ):
        assert response.status == 200
        body: dict[str, Any] = json.loads(await response.text())
        return body
