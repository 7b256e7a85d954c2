"""Defence in depth: what a modified client sends is checked again by the bot.

Discord's client keeps options inside their min/max, lengths and choices, but the API
forwards whatever a modified client sends and discord.py passes it on unchecked.  The
sandbox's ``invoke(..., validate=False)`` sends such raw values.
"""

from __future__ import annotations

from tests.e2e.text import reply_text

SOMETHING_WENT_WRONG = "Something went wrong on our side"


async def raw(p, member, command, options, *, guild=None):
    """A modified client's command: its (refusing) answer."""
    guild = guild or p.world.genesis
    channel = p.world.general if guild is p.world.genesis else p.world.fork_general
    h = await p.sb.invoke(guild, channel, member, command, options, validate=False)
    await h.wait_ack(5)
    await h.wait_response(5)
    return h


def assert_refused(h, *needles: str) -> str:
    text = reply_text(h)
    assert h.ephemeral, text
    assert text.startswith("❌"), text
    assert SOMETHING_WENT_WRONG not in text, text
    for needle in needles:
        assert needle in text, text
    return text


async def test_config_out_of_range_is_refused_and_nothing_is_stored(playground):
    p, w = playground, playground.world
    settings = p.bot.services.server_settings_store
    await p.bot.services.ensure_chain(w.genesis.id)
    params_before = p.bot.services.node.chain(w.genesis.id).state.params

    h = await raw(p, w.alice, "playground config", {"cooldown": -100})
    assert_refused(h, "cooldown", "0", "3,600", "-100")
    h = await raw(p, w.alice, "playground config", {"session_length": 10**9})
    assert_refused(h, "session_length", "840", "1,000,000,000")
    h = await raw(p, w.alice, "playground config", {"block_time": 10**9, "cooldown": 5})
    assert_refused(h, "block_time")
    # A value of the wrong JSON type is refused too, not compared or stored.
    h = await raw(p, w.alice, "playground config", {"cooldown": "5"})
    assert_refused(h, "cooldown", "whole number")

    assert await settings.get(w.genesis.id) == {}
    assert p.bot.services.node.pending_params(w.genesis.id) is None
    assert p.bot.services.node.chain(w.genesis.id).state.params == params_before


async def test_a_mode_that_is_not_a_choice_is_refused(playground):
    p, w = playground, playground.world
    await p.bot.services.ensure_chain(w.genesis.id)
    mode = p.bot.services.beacon.mode(w.genesis.id)
    h = await raw(p, w.alice, "playground config", {"mode": "evil"})
    assert_refused(h, "mode", "pow, pos, hybrid")
    assert p.bot.services.beacon.mode(w.genesis.id) == mode
    h = await raw(p, w.bob, "leaderboard", {"by": "evil"})
    assert_refused(h, "by", "balance, blocks")


async def test_a_5000_digit_block_query_is_refused(playground):
    p, w = playground, playground.world
    h = await raw(p, w.bob, "chain block", {"query": "9" * 5000})
    assert_refused(h, "query", "66 characters", "5,000")


async def test_paying_someone_who_is_not_a_member_is_refused_clearly(playground):
    p, w = playground, playground.world
    await p.bot.services.ensure_chain(w.genesis.id)
    # dave is only in the other server: Discord resolves him as a user, not a member.
    h = await p.sb.invoke(w.genesis, w.general, w.alice, "wallet pay", {"member": w.dave_in_fork, "amount": 5})
    await h.wait_ack(5)
    await h.wait_response(5)
    assert_refused(h, "is not a member of this server")
    assert len(p.bot.services.node.chain(w.genesis.id).mempool) == 0


async def test_setup_with_a_channel_that_is_not_a_text_channel_is_refused(playground):
    p, w, sb = playground, playground.world, playground.sb
    category = sb.add_channel(w.genesis, "archive", type=4)
    h = await raw(p, w.alice, "playground setup", {"channel": category})
    assert_refused(h, "not a text channel")
    assert sb.webhooks_in(w.blocks) == []


async def test_a_missing_required_option_is_refused_clearly(playground):
    p, w = playground, playground.world
    await p.bot.services.ensure_chain(w.genesis.id)
    h = await raw(p, w.alice, "wallet pay", {"member": w.bob})
    assert_refused(h, "reload Discord")
    assert len(p.bot.services.node.chain(w.genesis.id).mempool) == 0
