"""End-to-end: a real discord.py bot against the sandbox, asserted through the sandbox API."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import discord
import discord.http
import pytest

from sandbox import Sandbox, SandboxError, Upload
from sandbox.demo import DemoWorld
from sandbox_testbot import FRUITS, PlaygroundTestBot

WEBHOOK_URL = re.compile(r"^https://discord\.com/api/webhooks/(\d{17,20})/([A-Za-z0-9._-]{60,})$")


async def test_login_ready_and_commands_synced(sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot) -> None:
    me = sb.find_requests("GET /users/@me")
    assert len(me) == 1 and me[0].status == 200
    assert me[0].headers["Authorization"] == f"Bot {sb.bot_token}"
    assert sb.find_requests("GET /oauth2/applications/@me")[0].status == 200
    assert bot.user is not None and bot.user.id == sb.bot_user.id and bot.user.bot
    assert bot.application_id == sb.application_id

    # Global commands: one "play" group with subcommands and a nested subcommand group.
    play = next(c for c in sb.commands.global_commands if c["name"] == "play")
    subs = {o["name"]: o["type"] for o in play["options"]}
    assert subs["echo"] == 1 and subs["admin"] == 2
    assert int(play["application_id"]) == sb.application_id and int(play["id"]) > 0
    # Guild command only in the guild it was synced to.
    assert [c["name"] for c in sb.commands.guild_commands[world.genesis.id]] == ["guildping"]
    assert world.fork.id not in sb.commands.guild_commands
    put_global = sb.find_requests("PUT /applications/{application_id}/commands")
    put_guild = sb.find_requests("PUT /applications/{application_id}/guilds/{guild_id}/commands")
    assert len(put_global) == 1 and len(put_guild) == 1

    # Gateway: one IDENTIFY, READY points discord.py back at the sandbox for resumes.
    assert sb.gateway.identify_count == 1
    ready = next(e for e in sb.gateway.log if e.t == "READY")
    assert ready.d["resume_gateway_url"] == sb.gateway_url
    assert int(ready.d["application"]["id"]) == sb.application_id
    assert {g.name for g in bot.guilds} == {"Genesis Guild", "Fork Town"}
    genesis = bot.get_guild(world.genesis.id)
    assert genesis is not None and {c.name for c in genesis.text_channels} == {"general", "blocks"}
    assert genesis.me.guild_permissions.manage_webhooks

    # GET /gateway/bot (used by AutoShardedClient) also points at the sandbox.
    _, url, _ = await bot.http.get_bot_gateway()
    assert url == sb.gateway_url

    # Re-syncing keeps command ids stable, as Discord does.
    before = {c["name"]: c["id"] for c in sb.commands.global_commands}
    await bot.tree.sync()
    assert {c["name"]: c["id"] for c in sb.commands.global_commands} == before
    assert sb.commands.global_syncs == 2


async def test_slash_command_with_typed_options_and_member_resolution(
    sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot
) -> None:
    handle = await sb.invoke(
        world.genesis, world.general, world.alice, "play echo", {"number": "4", "word": "hi", "who": "@bob"}
    )
    latency = await handle.wait_ack()
    assert 0 <= latency < 3.0
    response = await handle.wait_response()
    assert handle.ack_type == 4
    assert response.content == (
        f"number=5 word=HI who=bob (Member, admin=False) guild={world.genesis.id} "
        "caller_manage_guild=True app_webhooks=True"
    )
    assert not handle.ephemeral and response.author.id == sb.bot_user.id
    assert response in sb.channel_messages(world.general)

    data = handle.payload["data"]
    assert data["name"] == "play" and "guild_id" not in data  # global command
    (sub,) = data["options"]
    assert sub == {
        "type": 1,
        "name": "echo",
        "options": [
            {"type": 4, "name": "number", "value": 4},
            {"type": 3, "name": "word", "value": "hi"},
            {"type": 6, "name": "who", "value": str(world.bob.id)},
        ],
    }
    assert data["resolved"]["users"][str(world.bob.id)]["username"] == "bob"
    assert "permissions" in data["resolved"]["members"][str(world.bob.id)]
    # The invoking member carries computed permissions, and the bot its app permissions.
    perms = discord.Permissions(int(handle.payload["member"]["permissions"]))
    assert perms.manage_guild and not perms.administrator
    assert discord.Permissions(int(handle.payload["app_permissions"])).manage_webhooks


async def test_guild_command_and_two_guilds_isolated(sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot) -> None:
    ping = await sb.invoke(world.genesis, world.general, world.bob, "guildping")
    assert (await ping.wait_response()).content == f"pong from guild {world.genesis.id}"
    assert ping.payload["data"]["guild_id"] == str(world.genesis.id)

    with pytest.raises(SandboxError, match="not registered in Fork Town"):
        await sb.invoke(world.fork, world.fork_general, world.bob_in_fork, "guildping")

    before_genesis = len(sb.channel_messages(world.general))
    echo = await sb.invoke("guild2", "general", "bob", "play echo", {"number": 1, "word": "fork"})
    reply = await echo.wait_response()
    assert reply.channel is world.fork_general and reply.guild is world.fork
    assert f"guild={world.fork.id}" in reply.content and "caller_manage_guild=True" in reply.content
    assert len(sb.channel_messages(world.general)) == before_genesis
    # bob is one Discord user in both guilds, with different roles in each.
    assert world.bob.id == world.bob_in_fork.id


async def test_subcommand_group_permissions_and_ephemeral(
    sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot
) -> None:
    handle = await sb.invoke(
        world.genesis, world.general, world.alice, "play admin reset", {"member": world.carol, "hard": "yes"}
    )
    response = await handle.wait_response()
    assert response.content == "reset carol hard=True"
    assert handle.ephemeral and response.flags & 64 and response.visible_to == world.alice.id
    assert response not in sb.channel_messages(world.general, include_ephemeral=False)
    group = handle.payload["data"]["options"][0]
    assert group["type"] == 2 and group["name"] == "admin"
    assert group["options"][0]["type"] == 1 and group["options"][0]["name"] == "reset"
    assert group["options"][0]["options"][1] == {"type": 5, "name": "hard", "value": True}

    # Discord hides commands whose default_member_permissions the member lacks.
    sudo = next(c for c in sb.commands.global_commands if c["name"] == "sudo")
    assert sudo["default_member_permissions"] == str(discord.Permissions(manage_guild=True).value)
    with pytest.raises(SandboxError, match="cannot use /sudo"):
        await sb.invoke(world.genesis, world.general, world.bob, "sudo")
    allowed = await sb.invoke(world.genesis, world.general, world.alice, "sudo")
    assert (await allowed.wait_response()).content == "sudo ok"
    with pytest.raises(SandboxError, match="missing required option 'member'"):
        await sb.invoke(world.genesis, world.general, world.alice, "play admin reset", {})
    with pytest.raises(SandboxError, match="must be <= 10"):
        await sb.invoke(world.genesis, world.general, world.alice, "play progress", {"steps": 11})

    secret = await sb.invoke(world.genesis, world.general, world.bob, "play secret")
    assert (await secret.wait_response()).content == "only you can see this"
    assert secret.ephemeral


async def test_validate_false_sends_raw_values_as_a_modified_client_would(
    sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot
) -> None:
    # The official client refuses these; the API forwards them, and discord.py passes them on unchecked.
    handle = await sb.invoke(world.genesis, world.general, world.alice, "play progress", {"steps": 11}, validate=False)
    assert handle.payload["data"]["options"][0]["options"] == [{"type": 4, "name": "steps", "value": 11}]
    await handle.wait_for(lambda h: h.response is not None and h.response.content == "Mined!", what="11 steps")
    assert handle.edits[-2].content == "Mining... 11/11"
    # Values go out as given, wrong JSON type included, and a required option may be missing.
    raw = await sb.invoke(world.genesis, world.general, world.alice, "play progress", {"steps": "many"}, validate=False)
    assert raw.payload["data"]["options"][0]["options"][0]["value"] == "many"
    missing = await sb.invoke(world.genesis, world.general, world.alice, "play admin reset", {}, validate=False)
    assert missing.payload["data"]["options"][0]["options"][0]["options"] == []


async def test_defer_then_edit_original_several_times(sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot) -> None:
    handle = await sb.invoke(world.genesis, world.general, world.alice, "play progress", {"steps": 3})
    await handle.wait_ack()
    assert handle.ack_type == 5 and handle.deferred
    await handle.wait_for(lambda h: h.response is not None and h.response.content == "Mined!")
    assert handle.response is not None
    assert handle.response.revisions[0].loading  # the "thinking" placeholder
    assert [e.content for e in handle.edits] == ["Mining... 1/3", "Mining... 2/3", "Mining... 3/3", "Mined!"]
    assert handle.edits[-1].embeds[0]["title"] == "Block 1"
    assert handle.edits[-1].embeds[0]["fields"] == [{"inline": True, "name": "Hash", "value": "000abc"}]
    assert not handle.response.loading
    patches = sb.find_requests("PATCH /webhooks/{webhook_id}/{webhook_token}/messages/@original")
    assert len(patches) == 4 and all(p.status == 200 for p in patches)
    callback = sb.find_requests("POST /interactions/{interaction_id}/{interaction_token}/callback")[-1]
    assert callback.query.get("with_response") == "1"  # discord.py >= 2.5 asks for the callback resource


async def test_followup_with_view_and_button_click(sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot) -> None:
    handle = await sb.invoke(world.genesis, world.general, world.alice, "play buttons")
    assert (await handle.wait_response()).content == "Here comes a counter"
    (followup,) = await handle.wait_followups(1)
    assert followup.content == "Counter: 0"
    labels = [c["label"] for c in followup.iter_components()]
    assert labels == ["Bump", "Later", "Shout"]
    assert bot.view_messages == [followup.id]

    click = await sb.click(followup, "bump", world.bob)
    await click.wait_ack()
    assert click.ack_type == 7  # UPDATE_MESSAGE edits the message the button is on
    assert followup.content == "Bumped 1 time(s) by bob"
    assert bot.clicks == [("bob", followup.id)]
    assert click.payload["message"]["id"] == str(followup.id)
    assert click.payload["data"] == {"custom_id": "bump", "component_type": 2}
    assert [r.content for r in click.edits] == ["Bumped 1 time(s) by bob"]

    again = await sb.click(followup, member=world.carol, label="Bump")
    await again.wait_ack()
    assert followup.content == "Bumped 2 time(s) by carol"

    later = await sb.click(followup, "later", world.alice)
    await later.wait_for(lambda h: h.response is not None and h.response.content.startswith("Deferred"))
    assert later.ack_type == 6 and later.response is followup and len(later.edits) == 1
    assert followup.content == "Deferred update by alice"

    shout = await sb.click(followup, "shout", world.carol)
    reply = await shout.wait_response()
    assert reply.content == "carol shouted!" and reply.ephemeral and reply.visible_to == world.carol.id

    with pytest.raises(SandboxError, match="no button"):
        await sb.click(followup, "nope", world.bob)


async def test_autocomplete_returns_bot_choices(sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot) -> None:
    handle = await sb.autocomplete(
        world.genesis, world.general, world.alice, "play pick", {"fruit": "ap", "count": 2}, focused="fruit"
    )
    assert handle.type == 4 and handle.ack_type == 8
    assert handle.choices == [{"name": "apple x2", "value": "apple"}, {"name": "apricot x2", "value": "apricot"}]
    options = handle.payload["data"]["options"][0]["options"]
    assert {"type": 3, "name": "fruit", "value": "ap", "focused": True} in options
    assert "resolved" not in handle.payload["data"]

    everything = await sb.autocomplete(world.genesis, world.general, world.bob, "play pick", {}, focused="fruit")
    assert [c["value"] for c in everything.choices or []] == FRUITS

    with pytest.raises(SandboxError, match="does not have autocomplete"):
        await sb.autocomplete(world.genesis, world.general, world.bob, "play pick", {}, focused="count")

    picked = await sb.invoke(world.genesis, world.general, world.alice, "play pick", {"fruit": "apple", "count": 2})
    assert (await picked.wait_response()).content == "picked 2 apple"


async def test_attachment_bytes_are_kept_and_served(sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot) -> None:
    handle = await sb.invoke(world.genesis, world.general, world.alice, "play upload")
    response = await handle.wait_response()
    (attachment,) = response.attachments
    assert attachment.filename == "chain.csv"
    assert attachment.data == b"height,hash\n1,000abc\n"
    assert attachment.content_type == "text/csv"
    callback = sb.find_requests("POST /interactions/*")[-1]
    assert callback.files and callback.files[0].field_name == "files[0]"
    async with aiohttp.ClientSession() as http, http.get(attachment.url) as resp:
        assert resp.status == 200 and await resp.read() == attachment.data


async def test_modal_open_and_submit(sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot) -> None:
    handle = await sb.invoke(world.genesis, world.general, world.alice, "play form")
    modal = await handle.wait_modal()
    assert modal["title"] == "Name your block"
    with pytest.raises(SandboxError, match="no field"):
        await sb.submit_modal(handle, {"block_name": "x", "nope": "x"})
    with pytest.raises(SandboxError, match="is required"):
        await sb.submit_modal(handle, {})
    submitted = await sb.submit_modal(handle, {"Block name": "Genesis"})  # by label works too
    assert submitted.type == 5 and submitted.parent is handle
    assert (await submitted.wait_response()).content == "Named block: Genesis"
    assert submitted.payload["data"]["components"] == [
        {"type": 1, "components": [{"type": 4, "custom_id": "block_name", "value": "Genesis"}]}
    ]
    with pytest.raises(SandboxError, match="already submitted"):
        await sb.submit_modal(handle, {"block_name": "again"})


async def test_late_ack_gets_unknown_interaction(sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot) -> None:
    sb.ack_deadline = 0.2
    handle = await sb.invoke(world.genesis, world.general, world.alice, "play slow", {"seconds": 0.4})
    await handle.wait_for(lambda h: bool(h.callbacks), timeout=3)
    assert not handle.acknowledged
    assert handle.callbacks[0].error_code == 10062 and handle.callbacks[0].latency > 0.2
    assert handle.rejected and handle.rejected[0].status == 404
    await sb.wait_until(
        lambda: any(isinstance(getattr(e, "original", e), discord.NotFound) for e in bot.errors), 3, "bot error"
    )


async def test_bot_channel_messages_and_upload_limits(sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot) -> None:
    channel = bot.get_channel(world.blocks.id)
    assert isinstance(channel, discord.TextChannel)
    sent = await channel.send("block 1", embed=discord.Embed(title="Block 1"))
    await sent.edit(content="block 1 (confirmed)")
    fetched = await channel.fetch_message(sent.id)
    assert fetched.content == "block 1 (confirmed)" and fetched.embeds[0].title == "Block 1"
    state = sb.message(sent.id)
    assert [r.content for r in state.revisions] == ["block 1", "block 1 (confirmed)"]
    history = [m.content async for m in channel.history(limit=10)]
    assert history == ["block 1 (confirmed)"]
    with pytest.raises(discord.HTTPException) as too_long:
        await channel.send("x" * 2001)
    assert too_long.value.code == 50035 and "content" in str(too_long.value)
    await sent.delete()
    assert sb.message(sent.id).deleted
    # A user-authored message reaches the bot over the gateway (MESSAGE_CREATE).
    got: asyncio.Future[discord.Message] = asyncio.get_running_loop().create_future()

    async def on_message(message: discord.Message) -> None:
        if not got.done():
            got.set_result(message)

    bot.add_listener(on_message, "on_message")
    await sb.send_message(world.genesis, world.blocks, world.carol, "gm")
    message = await asyncio.wait_for(got, 3)
    assert message.author.id == world.carol.id
    assert message.content == ""  # no MESSAGE_CONTENT intent: Discord blanks other users' content


async def test_attachment_option_is_resolved_and_downloadable(
    sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot
) -> None:
    handle = await sb.invoke(
        world.genesis, world.general, world.bob, "play inspect", {"file": Upload("blocks.txt", b"block 1\nblock 2\n")}
    )
    assert (await handle.wait_response()).content == "blocks.txt: 16 bytes, first line 'block 1' (text/plain)"
    resolved = handle.payload["data"]["resolved"]["attachments"]
    assert list(resolved.values())[0]["filename"] == "blocks.txt"
    with pytest.raises(SandboxError, match="unknown option"):
        await sb.invoke(
            world.genesis,
            world.general,
            world.alice,
            "play echo",
            {"number": 1, "word": "a", "file": Upload("a.txt", b"x")},
        )


async def test_select_menus(sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot) -> None:
    handle = await sb.invoke(world.genesis, world.general, world.alice, "play choose")
    menu = await handle.wait_response()
    fruit = await sb.select(menu, "fruit", ["Apple", "banana"], world.bob)  # by label or value
    assert (await fruit.wait_response()).content == "fruit: apple, banana"
    assert fruit.payload["data"] == {"custom_id": "fruit", "component_type": 3, "values": ["apple", "banana"]}
    who = await sb.select(menu, "who", ["@carol"], world.bob)
    assert (await who.wait_response()).content == "user: carol (Member)"
    assert who.payload["data"]["values"] == [str(world.carol.id)]
    with pytest.raises(SandboxError, match="between 1 and 2"):
        await sb.select(menu, "fruit", ["apple", "apricot", "banana"], world.bob)
    with pytest.raises(SandboxError, match="no option"):
        await sb.select(menu, "fruit", ["durian"], world.bob)
