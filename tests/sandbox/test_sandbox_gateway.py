"""Gateway lifecycle: RESUME after disconnects, replay of missed events, session invalidation."""

from __future__ import annotations

import asyncio

from sandbox import Sandbox
from sandbox.demo import DemoWorld
from sandbox_testbot import PlaygroundTestBot


async def test_disconnect_then_resume_and_interactions_still_work(sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot) -> None:
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


async def test_events_sent_while_disconnected_are_replayed_on_resume(sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot) -> None:
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


async def test_invalid_session_makes_the_bot_identify_again(sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot) -> None:
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
