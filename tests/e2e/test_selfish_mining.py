"""/selfish end to end (issue 11, item 5): a selfish pool against a member mining honestly, played on
the real chain through to its summary."""

from __future__ import annotations

import asyncio
import logging
import re

from chain.adapters.selfish_mining import HONEST_OWNER, KIND, POOL_OWNER
from cogs import game_charts
from tests.e2e.conftest import E2E_PARAMS
from tests.e2e.test_wallet import no_cooldown
from tests.e2e.text import reply_text, shown

log = logging.getLogger(__name__)

# About 300,000 hashes a block (60 s of 5,000 hashes per second): a few of the hashing core's chunks,
# so the weights that set each side's hash power decide who finds the next block (a chain where every
# chunk finds one would share the blocks by chunks, not by weight). No retargets: every block has the
# same work, and ties go to the block seen first.
GAME_HASH_RATE = 5_000
GAME_PARAMS = E2E_PARAMS.evolve(no_retargeting=True)
BLOCKS = 24


def game_chain(p) -> None:
    p.bot.services.measured_hash_rate = GAME_HASH_RATE
    p.bot.services.default_params = GAME_PARAMS


async def test_a_selfish_pool_against_a_member_mining_honestly_through_to_the_summary(playground):
    p, w = playground, playground.world
    game_chain(p)
    await no_cooldown(p, w.genesis)
    playground_, guild_id = p.bot.services.playground, w.genesis.id

    started = await p.run(w.alice, "selfish start", {"alpha": 33, "gamma": 50, "minutes": 10})
    text = reply_text(started)
    assert not started.ephemeral and "Selfish mining has started" in text, text
    assert "α = 33.0%" in text and "γ = 50.0%" in text and "`/mine start`" in text
    again = await p.run(w.alice, "selfish start", {"alpha": 20})
    assert again.ephemeral and "already running" in reply_text(again), reply_text(again)

    start_height = playground_.selfish_mining_status(guild_id).start_height
    mining = await p.run(w.bob, "mine start", {"auto_continue": True})  # bob mines honestly
    node = p.bot.services.node
    await p.sb.wait_until(lambda: node.tree(guild_id).best.height >= start_height + BLOCKS, timeout=120,
                          describe=f"{BLOCKS} blocks on the main chain since the game started")

    status = await p.run(w.alice, "selfish status")
    assert status.ephemeral and "Selfish mining: so far" in reply_text(status)
    assert re.search(r"state \*\*(0|0'|\d+)\*\*", reply_text(status)), reply_text(status)

    # Two stops at the same moment (two admins, or a double click): one summary, one refusal.
    stops = [await p.sb.invoke(w.genesis, w.general, w.alice, "selfish stop", {}) for _ in range(2)]
    await asyncio.gather(*(h.wait_ack(10) for h in stops))
    await p.sb.wait_until(lambda: all(reply_text(h) for h in stops), timeout=30, describe="both stops answered")
    [stop] = [h for h in stops if "the summary" in reply_text(h)]
    [other] = [h for h in stops if h is not stop]
    assert "No selfish-mining game is running" in reply_text(other), reply_text(other)
    text = reply_text(stop)
    log.info("selfish mining summary:\n%s", text)
    assert "Selfish mining: the summary" in text and "stopped by an admin" in text, text
    assert "R(α, γ): **" in text and "(1−γ)/(3−2γ) = **25.0%**" in text
    assert "Hash power: set 33.0%, measured" in text and "Hash power: set 67.0%, measured" in text
    # Its picture: each side's hash power against its share of the main chain and the paper's.
    (picture,) = stop.response.attachments
    assert picture.filename == "selfish.png"
    assert picture.description.startswith(
        "Grouped bar chart, selfish pool against honest miners, in percent: hash power as set (pool 33.0%, "
        "honest 67.0%"
    ), picture.description
    # The counts are the chain's: the main-chain blocks of both sides are the blocks from the start to
    # the height the summary ends at. bob still mines honestly while the summary's picture is drawn, so
    # the tip may be past that height by now (never below it).
    mains = [int(n) for n in re.findall(r"On the main chain: \*\*(\d+)\*\*", text)]
    end_height = int(re.search(r"from block \d+ to block (\d+)", text).group(1))
    assert sum(mains) == end_height - start_height, text
    assert end_height <= node.tree(guild_id).best.height
    assert playground_.games.current(guild_id) is None
    # The bot's two miners are named in announcements and the explorer, never mentioned as if members.
    names = await p.bot.services.owner_names(guild_id)
    assert names[await node.address(guild_id, POOL_OWNER)] == "🕵️ the selfish pool"
    assert names[await node.address(guild_id, HONEST_OWNER)] == "⛏️ the bot's honest miner"
    # The chain replays from genesis to the same state, reorgs and all.
    assert (await node.verify(guild_id)).blocks == node.chain(guild_id).state.height + 1
    await p.run(w.bob, "mine stop")
    await mining.wait_for(lambda h: "Mining stopped" in reply_text(h), timeout=20)


async def test_the_deadline_posts_the_summary_where_the_game_started(playground):
    p, w = playground, playground.world
    game_chain(p)
    playground_, guild_id = p.bot.services.playground, w.genesis.id
    await p.run(w.alice, "selfish start", {"alpha": 40, "minutes": 1})
    game = playground_.games.get(guild_id, KIND)
    node = p.bot.services.node
    start_height = playground_.selfish_mining_status(guild_id).start_height
    await p.sb.wait_until(lambda: node.tree(guild_id).best.height >= start_height + 3, timeout=60,
                          describe="3 blocks since the game started")

    def summary_posted():
        return [m for m in w.general.messages if "Selfish mining: the summary" in shown(m)]

    await game.expire()  # the deadline, now (a minute is long for a test)
    [posted] = await p.sb.wait_until(summary_posted, timeout=30, describe="the summary in #general")
    assert "ended at its deadline" in shown(posted) and "one third for γ = 0" in shown(posted)
    (picture,) = posted.attachments
    assert picture.filename == "selfish.png" and "R(α, γ) = " in picture.description
    assert playground_.games.current(guild_id) is None
    stop = await p.run(w.alice, "selfish stop")
    assert stop.ephemeral and "No selfish-mining game is running" in reply_text(stop), reply_text(stop)

    # A shutdown ends a running game too (bot.close asks every cog to stop its sessions), and says so.
    await p.run(w.alice, "selfish start", {"alpha": 25})
    await p.bot.get_cog("SelfishMining").stop_all_sessions("the bot is restarting")
    [_, shutdown] = await p.sb.wait_until(lambda: len(summary_posted()) == 2 and summary_posted(), timeout=30,
                                          describe="a second summary in #general")
    assert "ended because the bot is restarting" in shown(shutdown)
    assert playground_.games.current(guild_id) is None


class BrokenRenderer:
    async def render(self, spec, key=None):
        raise RuntimeError("the chart worker broke")


class StuckRenderer:
    """A worker that never answers (the real one would time out after 10 s; the summary waits less)."""

    async def render(self, spec, key=None):
        await asyncio.Event().wait()


async def test_a_failing_or_slow_picture_leaves_the_summary_without_it(playground, monkeypatch, caplog):
    p, w = playground, playground.world
    game_chain(p)
    playground_, guild_id, node = p.bot.services.playground, w.genesis.id, p.bot.services.node
    charts = p.bot.services.charts
    monkeypatch.setattr(game_charts, "GAME_PICTURE_WAIT_S", 0.05)

    def summaries():
        return [m for m in w.general.messages if "Selfish mining: the summary" in shown(m)]

    async def play_with(renderer, logged: str) -> None:
        monkeypatch.setattr(charts, "renderer", renderer)
        posted = len(summaries())
        await p.run(w.alice, "selfish start", {"alpha": 40, "minutes": 1})
        game = playground_.games.get(guild_id, KIND)
        start_height = playground_.selfish_mining_status(guild_id).start_height
        # A block on the main chain since the start: there is a picture to draw (and it fails).
        await p.sb.wait_until(lambda: node.tree(guild_id).best.height >= start_height + 1, timeout=60,
                              describe="a block since the game started")
        with caplog.at_level(logging.INFO, logger="cogs.game_charts"):
            await game.expire()
            summary = (await p.sb.wait_until(lambda: len(summaries()) > posted and summaries(), timeout=30,
                                             describe="the summary in #general"))[-1]
        assert "ended at its deadline" in shown(summary)
        assert summary.attachments == [] and "image" not in summary.embeds[0]
        assert logged in caplog.text, caplog.text
        assert playground_.games.current(guild_id) is None

    await play_with(BrokenRenderer(), "the selfish picture failed")
    await play_with(StuckRenderer(), "the selfish picture took over 0.1 s")
