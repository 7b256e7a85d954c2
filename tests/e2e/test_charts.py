"""/chain chart end to end: the picture arrives as an attachment with alt text, members get a
cooldown, and a chart with nothing to show is refused ephemerally."""

from __future__ import annotations

import asyncio
import os
import struct
from pathlib import Path

from tests.e2e.test_explorer import error_text, guild_id, mine_blocks, state

ROOT = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def test_the_difficulty_chart_arrives_as_a_png_with_alt_text(playground):
    p, w = playground, playground.world
    await mine_blocks(p, 3)
    h = await p.run(w.bob, "chain chart", {"kind": "difficulty"})
    assert h.deferred
    message = await h.wait_response(30)
    (attachment,) = message.attachments
    assert attachment.filename == "difficulty.png"
    assert png_size(attachment.data) == (800, 450)
    # The alt text says in words what the picture shows, with the chain's own numbers.
    assert attachment.description.startswith("Line chart of difficulty over block height 0 to 3")
    tip_difficulty = p.bot.services.playground.difficulty(state(p).tip.bits, state(p).params)
    assert f"is {tip_difficulty:,} at the tip" in attachment.description
    (embed,) = message.embeds
    assert embed["image"]["url"].endswith("difficulty.png")
    assert embed["title"] == "📈 Difficulty by height"


async def test_a_member_gets_one_chart_per_cooldown_even_asking_twice_at_once(playground):
    p, w = playground, playground.world
    await mine_blocks(p, 2)
    first, second = await asyncio.gather(
        p.run(w.bob, "chain chart", {"kind": "intervals"}),
        p.run(w.bob, "chain chart", {"kind": "difficulty"}),
    )
    await asyncio.gather(first.wait_response(30), second.wait_response(30))
    refused = [h for h in (first, second) if h.ephemeral]
    drawn = [h for h in (first, second) if not h.ephemeral]
    assert len(refused) == 1 and len(drawn) == 1, [h.describe() for h in (first, second)]
    assert "One chart every 15 s per member" in error_text(refused[0])
    # Another member is not held up by bob's cooldown.
    other = await p.run(w.alice, "chain chart", {"kind": "difficulty"})
    message = await other.wait_response(30)
    assert message.attachments and not other.ephemeral


async def test_a_chart_with_nothing_to_show_is_refused_and_changes_nothing(playground):
    p, w = playground, playground.world
    tip = state(p).tip_hash if p.bot.services.playground.has_chain(guild_id(p)) else None
    h = await p.run(w.bob, "chain chart", {"kind": "hashpower"})
    await h.wait_response(30)
    text = error_text(h)
    assert "no blocks won" in text or "no hash power" in text, text
    if tip is not None:
        assert state(p).tip_hash == tip


async def test_the_interval_histogram_counts_every_interval(playground):
    p, w = playground, playground.world
    await mine_blocks(p, 4)
    h = await p.run(w.bob, "chain chart", {"kind": "intervals"})
    message = await h.wait_response(30)
    (attachment,) = message.attachments
    assert png_size(attachment.data) == (800, 450)
    assert attachment.description.startswith("Bar chart of the times between the last 5 blocks")


README_CHART = ROOT / "docs" / "images" / "chart-difficulty.png"


async def test_the_readme_chart_is_one_the_bot_drew(playground):
    """The README's chart is this test's output: 30 blocks mined through /mine in the sandbox, three
    retargets, then /chain chart. ``WRITE_README_IMAGES=1`` stores it for the README; every run checks
    the picture the bot sends, and that the stored one is a chart the renderer made."""
    p, w = playground, playground.world
    await mine_blocks(p, 30)
    h = await p.run(w.alice, "chain chart", {"kind": "difficulty"})
    message = await h.wait_response(30)
    (attachment,) = message.attachments
    assert png_size(attachment.data) == (800, 450)
    assert "It changed at 3 of the plotted heights" in attachment.description
    if os.environ.get("WRITE_README_IMAGES") == "1":
        README_CHART.parent.mkdir(parents=True, exist_ok=True)
        README_CHART.write_bytes(attachment.data)
    stored = README_CHART.read_bytes()
    assert png_size(stored) == (800, 450)
    # matplotlib writes the spec's alt text into the PNG (bot/charts.py): drawn by the bot, not by hand.
    assert b"Line chart of difficulty over block height 0 to 30" in stored
    assert "chart-difficulty.png" in (ROOT / "README.md").read_text()
