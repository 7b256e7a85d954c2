"""Webhooks under failure: rate limits, server errors, deleted webhooks, missing permissions."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import discord
import pytest

from sandbox import InteractionHandle, Sandbox, Webhook
from sandbox.demo import DemoWorld
from sandbox_testbot import PlaygroundTestBot

WEBHOOK_URL = re.compile(r"^https://discord\.com/api/webhooks/(\d{17,20})/([A-Za-z0-9._-]{60,})$")


async def run_hook(sb: Sandbox, world: DemoWorld, **options: object) -> InteractionHandle:
    handle = await sb.invoke(world.genesis, world.general, world.alice, "play hook", dict(options))
    await handle.wait_response(timeout=10)
    return handle


async def first_webhook(sb: Sandbox, world: DemoWorld) -> Webhook:
    handle = await run_hook(sb, world)
    assert handle.response is not None and handle.response.content.startswith("posted ")
    (webhook,) = sb.webhooks_in(world.general)
    return webhook


async def test_webhook_created_and_executed_with_embeds(sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot) -> None:
    handle = await run_hook(sb, world, blocks=10)
    (webhook,) = sb.webhooks_in(world.general)
    assert webhook.name == "Chain Feed" and webhook.creator is sb.bot_user
    assert bot.webhook_url == webhook.url and WEBHOOK_URL.match(webhook.url)
    (posted,) = sb.webhook_feed(world.general)
    assert posted.webhook_id == webhook.id and posted.author.username == "Chain Feed"
    assert [e["title"] for e in posted.embeds] == [f"Block {i}" for i in range(1, 11)]
    assert posted.embeds[0]["fields"] == [{"inline": True, "name": "txs", "value": "2"}]
    assert handle.response is not None and handle.response.content == f"posted {posted.id} with 10 embeds"
    # The first followup after a thinking-defer replaces the placeholder instead of adding a message.
    assert handle.followups == [] and not handle.response.loading

    (execute,) = sb.find_requests(f"POST /webhooks/{webhook.id}/*")
    assert execute.query["wait"] == "1" and execute.status == 200
    assert "Authorization" not in execute.headers  # webhook calls are token-authenticated only
    (create,) = sb.find_requests("POST /channels/{channel_id}/webhooks")
    assert create.json == {"name": "Chain Feed"}


async def test_429_on_webhook_is_retried_and_recorded_once(
    sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot
) -> None:
    webhook = await first_webhook(sb, world)
    fault = sb.faults.rate_limit(f"POST /webhooks/{webhook.id}/*", times=1, retry_after=0.3)

    handle = await run_hook(sb, world, reuse=True)
    assert handle.response is not None and handle.response.content.startswith("posted ")
    assert fault.hit_count == 1 and not fault.active
    attempts = sb.find_requests(f"POST /webhooks/{webhook.id}/*")
    assert [r.status for r in attempts] == [200, 429, 200]
    assert attempts[1].fault == "rate_limit"
    assert attempts[1].response == {"message": "You are being rate limited.", "retry_after": 0.3, "global": False}
    assert attempts[2].at - attempts[1].at >= 0.29  # discord.py honoured retry_after
    assert len(sb.webhook_feed(world.general)) == 2  # one per /play hook, the 429 created nothing
    assert len(sb.webhooks_in(world.general)) == 1


async def test_500_is_retried(sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot) -> None:
    webhook = await first_webhook(sb, world)
    fault = sb.faults.server_error(f"POST /webhooks/{webhook.id}/*", times=1, status=500)
    handle = await run_hook(sb, world, reuse=True)
    assert handle.response is not None and handle.response.content.startswith("posted ")
    assert fault.hit_count == 1
    assert [r.status for r in sb.find_requests(f"POST /webhooks/{webhook.id}/*")] == [200, 500, 200]
    assert len(sb.webhook_feed(world.general)) == 2


async def test_deleted_webhook_raises_not_found_in_bot(sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot) -> None:
    webhook = await first_webhook(sb, world)
    sb.delete_webhook(webhook)
    handle = await run_hook(sb, world, reuse=True)
    assert handle.response is not None and handle.response.content == "webhook failed: NotFound 10015"
    assert isinstance(bot.errors[-1], discord.NotFound) and bot.errors[-1].code == 10015
    assert len(sb.webhook_feed(world.general)) == 1

    # The same Discord answer can be injected without deleting anything.
    sb.faults.unknown_webhook(f"POST /webhooks/{webhook.id}/*")
    webhook.deleted = False
    handle = await run_hook(sb, world, reuse=True)
    assert handle.response is not None and handle.response.content == "webhook failed: NotFound 10015"


async def test_missing_manage_webhooks_is_forbidden(sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot) -> None:
    sb.set_bot_permissions(world.genesis, manage_webhooks=False)
    guild = bot.get_guild(world.genesis.id)
    assert guild is not None
    # GUILD_ROLE_UPDATE reaches the bot, so its permission cache agrees with the sandbox.
    await sb.wait_until(lambda: not guild.me.guild_permissions.manage_webhooks, 3, "role update in bot cache")

    handle = await run_hook(sb, world)
    assert handle.response is not None and handle.response.content == "webhook failed: Forbidden 50013"
    assert isinstance(bot.errors[-1], discord.Forbidden) and bot.errors[-1].code == 50013
    assert not discord.Permissions(int(handle.payload["app_permissions"])).manage_webhooks
    (denied,) = sb.find_requests("POST /channels/{channel_id}/webhooks")
    assert denied.status == 403 and denied.response == {"message": "Missing Permissions", "code": 50013}
    assert sb.webhooks_in(world.general) == []

    # A channel overwrite can grant it back in one channel only.
    sb.set_channel_overwrite(world.general, sb.bot_role(world.genesis), allow={"manage_webhooks": True})
    handle = await run_hook(sb, world)
    assert handle.response is not None and handle.response.content.startswith("posted ")


async def test_rate_limit_on_bot_route_and_real_bucket(sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot) -> None:
    channel = bot.get_channel(world.blocks.id)
    assert isinstance(channel, discord.TextChannel)
    fault = sb.faults.rate_limit("POST /channels/{channel_id}/messages", times=1, retry_after=0.2)
    await channel.send("after a 429")
    assert fault.hit_count == 1
    assert [r.status for r in sb.find_requests("POST /channels/*/messages")] == [429, 200]

    # A real bucket: discord.py reads X-RateLimit-Remaining and waits instead of hitting 429s.
    bucket = sb.faults.enforce_bucket("POST /channels/*/messages", limit=2, per=0.5)
    for i in range(4):
        await channel.send(f"msg {i}")
    assert bucket.rejected == []
    assert [m.content for m in sb.channel_messages(world.blocks)][-4:] == [f"msg {i}" for i in range(4)]


async def test_unauthorized_fault(sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot) -> None:
    sb.faults.unauthorized("GET /channels/{channel_id}", times=1)
    with pytest.raises(discord.HTTPException) as err:
        await bot.fetch_channel(world.general.id)
    assert err.value.status == 401
    fetched = await bot.fetch_channel(world.general.id)
    assert fetched.id == world.general.id


async def test_a_slow_answer_still_posts_the_message_a_timed_out_client_gave_up_on(
    sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot
) -> None:
    webhook = await first_webhook(sb, world)
    slow = sb.faults.slow_answer(f"POST /webhooks/{webhook.id}/*", 1.0, times=1)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.2)) as session:
        impatient = discord.Webhook.from_url(webhook.url, session=session)
        with pytest.raises(TimeoutError):
            await impatient.send("late", wait=True)
        # Posted when the request came in, although its sender never heard back.
        assert [m.content for m in sb.webhook_feed(world.general)][-1] == "late"
        request = posts_to_hook(sb, webhook)[-1]
        await sb.wait_until(lambda: request.status == 200, timeout=5, describe="the late answer")
        assert slow.hit_count == 1 and not slow.active
        message = await impatient.send("on time", wait=True)  # the fault is used up: answered at once
        assert sb.message(message.id).content == "on time"


def posts_to_hook(sb: Sandbox, webhook: Webhook) -> list:
    return [r for r in sb.find_requests("POST /webhooks/{webhook_id}/{webhook_token}") if f"/{webhook.id}/" in r.path]


async def test_a_429_does_not_use_up_a_slow_answer_and_release_answers_at_once(
    sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot
) -> None:
    webhook = await first_webhook(sb, world)
    route = f"POST /webhooks/{webhook.id}/*"
    sb.faults.rate_limit(route, times=1, retry_after=0.05)
    held = sb.faults.slow_answer(route, 30.0, times=1)
    async with aiohttp.ClientSession() as session:
        sending = asyncio.create_task(discord.Webhook.from_url(webhook.url, session=session).send("held", wait=True))
        await sb.wait_until(lambda: held.hit_count == 1, timeout=5, describe="the retry to be held")
        assert [r.status for r in posts_to_hook(sb, webhook)][-2:] == [429, None]  # the retry: no answer yet
        assert [m.content for m in sb.webhook_feed(world.general)][-1] == "held"
        held.release()
        message = await asyncio.wait_for(sending, 5)
    assert sb.message(message.id).content == "held"
