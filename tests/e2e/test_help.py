"""/help and the welcome a server gets when it adds the bot (issue 9, item 11)."""

from __future__ import annotations

from tests.e2e.text import reply_text, shown


async def test_help_gives_an_overview_and_a_page_per_topic(playground):
    p, w = playground, playground.world
    h = await p.run(w.bob, "help")
    assert h.ephemeral
    text = reply_text(h)
    assert "Get started" in text and "/mine start" in text and "/playground setup" in text
    labels = [c.get("label") for c in h.response.iter_components() if c.get("type") == 2]
    assert labels == ["Mining", "Wallet", "Explorer", "Staking", "Lessons", "Games", "Admin"]
    assert "/learn list" in text

    click = await p.sb.click(h.response, member=w.bob, label="Staking")
    await click.wait_ack()
    page = shown(p.sb.message(h.response.id))
    # Listed from the command tree itself: every /stake subcommand, with its description.
    for command in ("/stake deposit", "/stake withdraw", "/stake attest", "/validators", "/report evidence"):
        assert command in page, command
    assert "Lock points as stake" in page

    click = await p.sb.click(h.response, member=w.bob, label="Lessons")
    await click.wait_ack()
    page = shown(p.sb.message(h.response.id))
    for command in ("/learn list", "/learn start", "/learn check", "/learn progress"):
        assert command in page, command

    click = await p.sb.click(h.response, member=w.bob, label="Games")
    await click.wait_ack()
    page = shown(p.sb.message(h.response.id))
    for command in ("/doublespend start", "/doublespend publish", "/selfish start", "/selfish stop",
                    "/split start", "/split heal"):
        assert command in page, command


async def test_a_server_that_adds_the_bot_is_greeted_with_three_steps(playground):
    p, w = playground, playground.world
    before = len(p.sb.channel_messages(w.general))
    p.sb.remove_bot(w.fork)
    p.sb.add_bot(w.fork)

    def greeting():
        return [m for m in p.sb.channel_messages(w.fork_general) if "Consensus Playground is here" in shown(m)]

    [message] = await p.sb.wait_until(greeting, timeout=10, describe="the welcome in the system channel")
    assert "/playground setup" in shown(message) and "/help" in shown(message)
    assert len(p.sb.channel_messages(w.general)) == before  # only the server that added the bot
