"""/playground: setup, config, status and reset, end to end through the sandbox."""

from __future__ import annotations

import sys

import pytest

from sandbox import SandboxError


def text_of(message) -> str:
    """Everything a member reads in a message: content, titles, descriptions, fields, footers."""
    parts = [message.content or ""]
    for embed in message.embeds:
        parts += [embed.get("title", ""), embed.get("description", "")]
        parts += [f"{f['name']}: {f['value']}" for f in embed.get("fields", [])]
        parts.append(embed.get("footer", {}).get("text", ""))
    return "\n".join(p for p in parts if p)


def field(message, name: str) -> str:
    return next(f["value"] for e in message.embeds for f in e.get("fields", []) if f["name"] == name)


async def answer(p, member, command, options=None, *, guild=None, channel=None, **kw):
    """Run a command and return its visible answer (after any 'thinking…' placeholder)."""
    guild = guild or p.world.genesis
    channel = channel or (p.world.general if guild is p.world.genesis else p.world.fork_general)
    h = await p.sb.invoke(guild, channel, member, command, options or {}, **kw)
    await h.wait_ack(5)
    return h, await h.wait_response(10)


async def mine_block(p, member, *, guild=None) -> int:
    """``member`` runs /mine start and waits for the block (mining is instant in tests); the new height."""
    guild = guild or p.world.genesis
    h = await p.run(member, "mine start", guild=guild)
    await h.wait_for(
        lambda h: h.response is not None and h.response.embeds and "found" in h.response.embeds[0].get("title", ""),
        timeout=20,
        what="a block",
    )
    # The session ends just after its final edit; wait, so the next /mine start is not "already mining".
    mining = p.bot.get_cog("Mining")
    await p.sb.wait_until(lambda: (guild.id, member.id) not in mining.sessions, timeout=5)
    return p.bot.services.node.chain(guild.id).state.height


def event_titles(sb, channel) -> list[str]:
    return [e.get("title", "") for m in sb.webhook_feed(channel) for e in m.embeds]


async def test_a_plain_member_is_refused_by_discord_and_by_the_bot(playground):
    p, w, sb = playground, playground.world, playground.sb
    with pytest.raises(SandboxError, match="cannot use /playground"):
        await sb.invoke(w.genesis, w.general, w.bob, "playground status")

    for command, options in (("playground status", {}), ("playground setup", {"channel": w.blocks}),
                             ("playground reset", {})):
        h, reply = await answer(p, w.bob, command, options, check_permissions=False)
        assert h.ephemeral
        assert text_of(reply) == "❌ You need the Manage Server permission for this."
    assert sb.webhooks_in(w.blocks) == []
    assert not sb.find_requests("POST /channels/*/webhooks")
    assert (await p.bot.notifier.status(w.genesis.id)).channel_id is None


async def test_setup_creates_a_webhook_and_blocks_are_announced_through_it(playground):
    p, w, sb = playground, playground.world, playground.sb
    h, reply = await answer(p, w.alice, "playground setup", {"channel": w.blocks})
    assert h.ephemeral
    assert f"now go to <#{w.blocks.id}>" in text_of(reply)
    [webhook] = sb.webhooks_in(w.blocks)
    assert webhook.name == "Consensus Playground"
    # The confirmation went through the new webhook itself.
    [hello] = sb.webhook_feed(w.blocks)
    assert "announced here" in hello.content and hello.webhook_id == webhook.id

    height = await mine_block(p, w.alice)
    assert height == 1
    await sb.wait_until(lambda: "💰 Reward for block 1" in event_titles(sb, w.blocks), timeout=10)
    titles = event_titles(sb, w.blocks)
    assert titles.count("⛏️ Block 1 mined") == 1 and titles.count("💰 Reward for block 1") == 1
    assert all(m.webhook_id == webhook.id for m in sb.webhook_feed(w.blocks))


async def test_setup_in_another_channel_replaces_the_webhook(playground):
    p, w, sb = playground, playground.world, playground.sb
    await answer(p, w.alice, "playground setup", {"channel": w.blocks})
    _h, reply = await answer(p, w.alice, "playground setup", {"channel": w.general})
    assert f"The previous webhook in <#{w.blocks.id}> was removed." in text_of(reply)
    assert sb.webhooks_in(w.blocks) == [] and len(sb.webhooks_in(w.general)) == 1
    await mine_block(p, w.alice)
    await sb.wait_until(lambda: "⛏️ Block 1 mined" in event_titles(sb, w.general), timeout=10)
    assert event_titles(sb, w.blocks) == []


@pytest.mark.parametrize("how", ["role", "channel override", "refused by Discord"])
async def test_setup_without_manage_webhooks_explains_what_to_grant(playground, how):
    p, w, sb = playground, playground.world, playground.sb
    role = sb.bot_role(w.genesis)
    if how == "role":
        sb.set_bot_permissions(w.genesis, manage_webhooks=False)
        expected = (
            f"❌ I need the **Manage Webhooks** permission in <#{w.blocks.id}> to announce blocks there. "
            f"Grant it in Server Settings → Roles → **{role.name}** → Manage Webhooks, or for this channel only in "
            f"<#{w.blocks.id}> → Edit Channel → Permissions → **{role.name}** → Manage Webhooks. "
            "Then run `/playground setup` again. Nothing was changed."
        )
    elif how == "channel override":
        sb.set_channel_overwrite(w.blocks, role, deny={"manage_webhooks": True})
        expected = (
            f"❌ I need the **Manage Webhooks** permission in <#{w.blocks.id}> to announce blocks there. "
            f"My role has it, but <#{w.blocks.id}>'s permission overrides take it away: allow it in "
            f"<#{w.blocks.id}> → Edit Channel → Permissions → **{role.name}** → Manage Webhooks. "
            "Then run `/playground setup` again. Nothing was changed."
        )
    else:
        # The bot's cache says yes, Discord says no (e.g. a change the bot has not seen yet).
        sb.faults.forbidden("POST /channels/*/webhooks")
        expected = None
    h, reply = await answer(p, w.alice, "playground setup", {"channel": w.blocks})
    assert h.ephemeral
    if expected is not None:
        assert text_of(reply) == expected
        assert not sb.find_requests("POST /channels/*/webhooks")  # refused before asking Discord
    else:
        assert text_of(reply) == (
            f"❌ I need the **Manage Webhooks** permission in <#{w.blocks.id}> to announce blocks there. "
            f"Grant it in Server Settings → Roles → **{role.name}** → Manage Webhooks, or for this channel only in "
            f"<#{w.blocks.id}> → Edit Channel → Permissions → **{role.name}** → Manage Webhooks. "
            "Then run `/playground setup` again. Nothing was changed."
        )
    assert sb.webhooks_in(w.blocks, include_deleted=True) == []
    status = await p.bot.notifier.status(w.genesis.id)
    assert status.channel_id is None


async def test_setup_in_a_channel_full_of_webhooks_says_so(playground):
    p, w, sb = playground, playground.world, playground.sb
    sb.faults.error("POST /channels/*/webhooks", 400, code=30007, message="Maximum number of webhooks reached (15)")
    _h, reply = await answer(p, w.alice, "playground setup", {"channel": w.blocks})
    assert text_of(reply) == (
        f"❌ <#{w.blocks.id}> already has as many webhooks as Discord allows. Delete one in <#{w.blocks.id}> → "
        "Edit Channel → Integrations → Webhooks, or pick another channel. Nothing was changed."
    )
    assert (await p.bot.notifier.status(w.genesis.id)).channel_id is None


async def test_setup_whose_first_post_fails_takes_its_webhook_away(playground):
    p, w, sb = playground, playground.world, playground.sb
    await answer(p, w.alice, "playground setup", {"channel": w.general})
    [kept] = sb.webhooks_in(w.general)
    # The new webhook's first message (the confirmation) is refused.
    sb.faults.error(
        lambda r: r.method == "POST" and r.path.startswith("/webhooks/")
        and r.path.split("/")[2] not in (str(sb.application_id), str(kept.id)),
        400, message="Invalid Form Body",
    )
    _h, reply = await answer(p, w.alice, "playground setup", {"channel": w.blocks})
    assert text_of(reply) == "❌ Something went wrong on our side; nothing was changed. Please try again."
    assert sb.webhooks_in(w.blocks) == [] and len(sb.webhooks_in(w.blocks, include_deleted=True)) == 1
    status = await p.bot.notifier.status(w.genesis.id)
    assert status.channel_id == w.general.id and status.webhook_id == kept.id
    assert sb.webhooks_in(w.general) == [kept]


async def test_config_without_options_shows_the_settings(playground):
    p, w = playground, playground.world
    h, reply = await answer(p, w.alice, "playground config")
    assert h.ephemeral
    text = text_of(reply)
    for expected in ("Block time: **60 s**", "Reward: **50 pts**", "Halving interval: **2,100 blocks**",
                     "Retarget window: **10 blocks**", "Mining session length: **120 s**",
                     "Cooldown between sessions: **10 s**"):
        assert expected in text


async def test_config_changes_the_session_length_and_cooldown(playground):
    p, w = playground, playground.world
    h, reply = await answer(p, w.alice, "playground config", {"session_length": 300, "cooldown": 0})
    text = text_of(reply)
    assert "Mining session length: 120 s → **300 s**" in text
    assert "Cooldown between sessions: 10 s → **0 s**" in text
    assert "sessions started from now on" in text
    settings = await p.bot.services.server_settings(w.genesis.id)
    assert settings["session_s"] == 300 and settings["cooldown_s"] == 0
    # A mining session now gets 300 s, and the cooldown is gone: alice mines twice in a row.
    await mine_block(p, w.alice)
    h = await p.run(w.alice, "mine start")
    await h.wait_for(lambda h: h.response is not None and "found" in text_of(h.response), timeout=20, what="block 2")

    # Limits are Discord's (the client refuses), and the bot holds to them too.
    with pytest.raises(SandboxError):
        await p.run(w.alice, "playground config", {"session_length": 841})


async def test_a_refused_config_changes_nothing(playground):
    p, w = playground, playground.world
    # A block may be dated at most 600 s ahead, so longer block times are outside the option's range.
    with pytest.raises(SandboxError, match="block_time' must be <= 600"):
        await p.run(w.alice, "playground config", {"block_time": 900, "session_length": 300})
    assert (await p.bot.services.server_settings(w.genesis.id))["session_s"] == 120
    node = p.bot.services.node
    assert not node.has_chain(w.genesis.id) or node.pending_params(w.genesis.id) is None


async def test_config_proposes_consensus_rules_for_the_next_block(playground):
    p, w = playground, playground.world
    node = p.bot.services.node
    await answer(p, w.alice, "playground config", {"cooldown": 0})
    await mine_block(p, w.alice)
    _h, reply = await answer(p, w.alice, "playground config", {"block_time": 30, "reward": 100})
    text = text_of(reply)
    assert "Block time: 60 s → **30 s**" in text and "Reward: 50 pts → **100 pts**" in text
    assert "Block 2, the next one mined, commits to the new rules in its coinbase" in text
    pending = node.pending_params(w.genesis.id)
    assert pending is not None and pending.target_spacing_s == 30 and pending.initial_subsidy_points == 100
    assert node.chain(w.genesis.id).state.params.target_spacing_s == 60  # not yet in force

    _h, reply = await answer(p, w.alice, "playground status")
    assert "block time 60 s → 30 s, reward 50 pts → 100 pts" in field(reply, "Rule change")

    await mine_block(p, w.alice)  # block 2 commits to the change
    state = node.chain(w.genesis.id).state
    assert state.params.target_spacing_s == 30 and state.params.initial_subsidy_points == 100
    assert node.pending_params(w.genesis.id) is None
    await mine_block(p, w.alice)  # block 3 is the first under the new rules: 100 points
    address = await node.address(w.genesis.id, str(w.alice.id))
    assert node.account(w.genesis.id, address).balance == 50 + 50 + 100


async def test_status_shows_chain_webhook_and_core(playground):
    p, w = playground, playground.world
    h, reply = await answer(p, w.alice, "playground status")
    assert h.ephemeral
    assert field(reply, "Height") == "0"
    assert field(reply, "Webhook") == "not set up: `/playground setup` picks a channel"

    await answer(p, w.alice, "playground setup", {"channel": w.blocks})
    await mine_block(p, w.alice)
    await p.sb.wait_until(lambda: "💰 Reward for block 1" in event_titles(p.sb, w.blocks), timeout=10)
    h, reply = await answer(p, w.alice, "playground status")
    assert field(reply, "Height") == "1"
    assert "(bits `0x" in field(reply, "Difficulty")
    assert field(reply, "Pending transfers") == "0"
    assert field(reply, "Webhook") == f"<#{w.blocks.id}> — ✅ ok"
    assert field(reply, "Undelivered events") == "0"
    assert field(reply, "Mining here") == "0 sessions"
    assert field(reply, "Hashing core").startswith("1 worker, ~")
    assert field(reply, "Hashing core").endswith(f"; {p.bot.services.hashing_core.backend_label} hashing")
    assert field(reply, "Rule change") == "none pending"


async def test_reset_asks_and_only_the_admin_can_confirm(playground):
    p, w, sb = playground, playground.world, playground.sb
    node = p.bot.services.node
    await answer(p, w.alice, "playground setup", {"channel": w.blocks})
    await answer(p, w.alice, "playground config", {"cooldown": 0})
    await mine_block(p, w.alice)
    address = await node.address(w.genesis.id, str(w.alice.id))
    assert node.account(w.genesis.id, address).balance == 50

    await answer(p, w.alice, "playground config", {"reward": 70})  # a pending rule change

    # Cancel: nothing changes.
    h, prompt = await answer(p, w.alice, "playground reset")
    assert not h.ephemeral
    assert "all 1 block, every balance (50 pts held by 1 member)" in text_of(prompt)
    click = await sb.click(prompt, member=w.alice, label="Cancel")
    await click.wait_ack()
    await h.wait_for(lambda h: "Reset cancelled" in text_of(sb.message(prompt.id)), what="the cancel")
    assert sb.message(prompt.id).components == []
    assert node.chain(w.genesis.id).state.height == 1
    assert node.pending_params(w.genesis.id).initial_subsidy_points == 70

    # Someone else presses Confirm: refused, privately, and nothing changes.
    h, prompt = await answer(p, w.alice, "playground reset")
    click = await sb.click(prompt, member=w.bob, label="Reset the chain")
    reply = await click.wait_response()
    assert reply.ephemeral and reply.visible_to == w.bob.id
    assert text_of(reply) == f"❌ Only <@{w.alice.id}>, who asked for this reset, can confirm or cancel it."
    assert node.chain(w.genesis.id).state.height == 1

    # The admin confirms: back to block 0; the webhook and the wallet keys are kept.
    click = await sb.click(prompt, member=w.alice, label="Reset the chain")
    await click.wait_ack()
    await h.wait_for(lambda h: "Chain reset" in text_of(sb.message(prompt.id)), what="the reset")
    done = sb.message(prompt.id)
    assert "Block 0 is a new genesis block" in text_of(done) and done.components == []
    assert node.chain(w.genesis.id).state.height == 0
    assert await node.address(w.genesis.id, str(w.alice.id)) == address
    assert node.account(w.genesis.id, address).balance == 0
    assert node.pending_params(w.genesis.id) is None
    assert node.chain(w.genesis.id).state.params == p.bot.services.default_params
    status = await p.bot.notifier.status(w.genesis.id)
    assert status.channel_id == w.blocks.id and status.disabled_reason is None
    # The new chain works and still announces through the same webhook.
    assert await mine_block(p, w.alice) == 1
    await sb.wait_until(lambda: event_titles(sb, w.blocks).count("⛏️ Block 1 mined") == 2, timeout=10)


async def test_an_unanswered_reset_times_out(playground, monkeypatch):
    p, w, sb = playground, playground.world, playground.sb
    # load_extension imported cogs.admin afresh: patch the module the bot runs.
    admin_module = sys.modules[type(p.bot.get_cog("Admin")).__module__]
    monkeypatch.setattr(admin_module, "RESET_TIMEOUT_S", 0.5)
    await mine_block(p, w.alice)
    _h, prompt = await answer(p, w.alice, "playground reset")
    await sb.wait_until(lambda: "Reset not confirmed" in text_of(sb.message(prompt.id)), timeout=5)
    assert sb.message(prompt.id).components == []
    assert p.bot.services.node.chain(w.genesis.id).state.height == 1
