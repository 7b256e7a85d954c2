"""Gateway lifecycle: RESUME after disconnects, replay of missed events, session invalidation."""

from __future__ import annotations

import asyncio

import discord
import pytest

from sandbox import Sandbox
from sandbox.demo import DemoWorld
from sandbox.errors import SandboxError
from sandbox_testbot import PlaygroundTestBot


async def test_disconnect_then_resume_and_interactions_still_work(
    sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot
) -> None:
    session_id = sb.gateway.current.session_id if sb.gateway.current else None
    last_seq = sb.gateway.current.seq if sb.gateway.current else 0
    await sb.disconnect_gateway(code=4000)
    await sb.wait_resumed(timeout=10)
    await asyncio.wait_for(bot.resumed.wait(), 5)

    assert sb.gateway.identify_count == 1 and sb.gateway.resume_count == 1
    resume = next(e for e in sb.gateway.log if e.direction == "recv" and e.op == 6)
    assert resume.d["session_id"] == session_id and resume.d["seq"] == last_seq
    assert resume.d["token"] == sb.bot_token
    assert sb.gateway.connect_count == 2

    handle = await sb.invoke(world.genesis, world.general, world.alice, "play echo", {"number": 1, "word": "again"})
    assert "word=AGAIN" in (await handle.wait_response()).content


async def test_events_sent_while_disconnected_are_replayed_on_resume(
    sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot
) -> None:
    await sb.disconnect_gateway()
    # Dispatched while the bot is offline: buffered and replayed after RESUME, like Discord.
    handle = await sb.invoke(world.genesis, world.general, world.bob, "play echo", {"number": 41, "word": "late"})
    await sb.wait_resumed()
    response = await handle.wait_response()
    assert response.content.startswith("number=42 word=LATE")
    # The ack clock starts when the event actually went out, not while it sat in the buffer.
    assert handle.dispatched_at is not None and handle.ack_latency is not None and handle.ack_latency < 3.0
    frames = [e for e in sb.gateway.log if e.direction == "send" and e.op == 0]
    resumed_at = next(i for i, e in enumerate(frames) if e.t == "RESUMED")
    assert frames[resumed_at - 1].t == "INTERACTION_CREATE"  # replay precedes RESUMED


async def test_invalid_session_makes_the_bot_identify_again(
    sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot
) -> None:
    first = sb.gateway.current
    await sb.invalidate_session(resumable=False)
    await sb.wait_until(lambda: sb.gateway.identify_count == 2 and sb.ready, 10, "a second IDENTIFY")
    assert sb.gateway.current is not first
    handle = await sb.invoke(world.genesis, world.general, world.alice, "guildping")
    assert (await handle.wait_response()).content.startswith("pong")


async def test_reconnect_request_resumes(sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot) -> None:
    before = sb.gateway.resume_count
    await sb.request_reconnect()
    await sb.wait_until(lambda: sb.gateway.resume_count == before + 1 and sb.gateway.connected, 10, "RESUME after op 7")
    assert sb.gateway.identify_count == 1


async def test_world_changes_after_ready_reach_the_bot(sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot) -> None:
    channel = sb.add_channel(world.genesis, "mempool")
    await sb.wait_until(lambda: bot.get_channel(channel.id) is not None, 3, "CHANNEL_CREATE")
    guild = sb.add_guild("Third Place")
    sb.add_channel(guild, "lobby")
    await sb.wait_until(lambda: bot.get_guild(guild.id) is not None, 3, "GUILD_CREATE")
    assert bot.get_guild(guild.id).me is not None  # type: ignore[union-attr]


async def test_removing_the_bot_sends_guild_delete_and_adding_it_back_guild_create(
    sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot
) -> None:
    removed: list[int] = []
    joined: list[int] = []
    seen = asyncio.Event()

    async def on_guild_remove(guild: discord.Guild) -> None:
        removed.append(guild.id)
        seen.set()

    async def on_guild_join(guild: discord.Guild) -> None:
        joined.append(guild.id)
        seen.set()

    bot.add_listener(on_guild_remove)
    bot.add_listener(on_guild_join)
    old_role = sb.bot_role(world.fork)
    ours = await bot.get_channel(world.fork_general.id).create_webhook(name="feed")  # type: ignore[union-attr]
    theirs = sb.create_webhook(world.fork_general, "someone else's", creator=world.bob_in_fork.user)

    sb.remove_bot(world.fork)
    await asyncio.wait_for(seen.wait(), 3)
    assert removed == [world.fork.id] and joined == []
    [frame] = [e for e in sb.gateway.log if e.direction == "send" and e.t == "GUILD_DELETE"]
    assert frame.d == {"id": str(world.fork.id)}  # no "unavailable": a removal, not an outage
    assert bot.get_guild(world.fork.id) is None and bot.get_guild(world.genesis.id) is not None
    assert not sb.has_bot(world.fork) and old_role.id not in world.fork.roles
    # Discord deletes the webhooks an app made along with it; others stay.
    assert sb.webhooks_in(world.fork_general) == [theirs] and sb.webhooks[ours.id].deleted
    # The guild's channels are out of the bot's reach; the world itself is kept.
    with pytest.raises(discord.Forbidden) as refused:
        await bot.http.send_message(world.fork_general.id, params=discord.http.handle_message_parameters("hi"))
    assert refused.value.code == 50001
    with pytest.raises(SandboxError):
        await sb.invoke(world.fork, world.fork_general, world.bob_in_fork, "play echo", {"number": 1, "word": "x"})

    seen.clear()
    sb.add_bot(world.fork)
    await asyncio.wait_for(seen.wait(), 3)
    assert joined == [world.fork.id] and removed == [world.fork.id]
    create = [e for e in sb.gateway.log if e.direction == "send" and e.t == "GUILD_CREATE"][-1]
    assert create.d["id"] == str(world.fork.id) and "unavailable" not in create.d  # a join, not a comeback
    guild = bot.get_guild(world.fork.id)
    assert guild is not None and guild.me is not None and guild.get_channel(world.fork_general.id) is not None
    assert sb.bot_role(world.fork).id != old_role.id  # a new managed role, as Discord makes one
    message = await bot.get_channel(world.fork_general.id).send("back")  # type: ignore[union-attr]
    assert sb.message(message.id).content == "back"


async def test_ready_leaves_out_guilds_the_bot_was_removed_from(
    sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot
) -> None:
    sb.remove_bot(world.fork)
    await sb.wait_until(lambda: bot.get_guild(world.fork.id) is None, 3, "GUILD_DELETE")
    await sb.invalidate_session(resumable=False)
    await sb.wait_until(lambda: sb.gateway.identify_count == 2 and sb.ready, 10, "a second IDENTIFY")
    ready = [e for e in sb.gateway.log if e.direction == "send" and e.t == "READY"][-1]
    assert [g["id"] for g in ready.d["guilds"]] == [str(world.genesis.id)]
    assert bot.get_guild(world.fork.id) is None


async def test_heartbeat_ack_arrives_after_discord_py_recorded_the_send(monkeypatch: pytest.MonkeyPatch) -> None:
    # discord.py's keep-alive thread sets ``_last_send`` only after the loop has sent the
    # heartbeat; an ACK processed before that is measured against the previous heartbeat, a whole
    # interval ago ("Can't keep up, websocket is 41.3s behind"). Discord's ACK needs a network
    # round trip, so it never wins that race; the sandbox's must not either.
    from discord.gateway import KeepAliveHandler

    from sandbox import point_discord_py_at
    from sandbox.demo import populate_demo

    acks: list[tuple[float, float]] = []  # (the send it is measured against, the previous ACK)
    real_ack = KeepAliveHandler.ack

    def ack(self: KeepAliveHandler) -> None:
        acks.append((self._last_send, self._last_ack))
        real_ack(self)

    monkeypatch.setattr(KeepAliveHandler, "ack", ack)
    beats = 10
    async with Sandbox(host="127.0.0.1", port=0, heartbeat_interval_ms=500) as sandbox:
        world = populate_demo(sandbox)
        target = point_discord_py_at(sandbox.api_base, sandbox.gateway_url)
        client = PlaygroundTestBot(guild_id=world.genesis.id)
        task = asyncio.create_task(client.start(sandbox.bot_token))
        try:
            await sandbox.wait_until(lambda: len(acks) >= beats, 30, f"{beats} heartbeat ACKs")
        finally:
            await client.close()
            await asyncio.wait_for(task, timeout=10)
            target.restore()
    late = [i for i, (sent, previous_ack) in enumerate(acks) if sent < previous_ack]
    assert not late, f"ACKs {late} of {len(acks)} were measured against the previous heartbeat"
