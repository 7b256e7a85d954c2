"""cogs/game_charts.py and cogs/tree_charts.py: a game's picture is best effort and bounded, and the
tree chart's alt text says where the forks are, which branch won, and what was left out."""

from __future__ import annotations

import asyncio
import hashlib
import logging

import pytest

from chain.consensus.tree import BlockTree
from chain.consensus.tree_layout import TreeWindow, compute_tree_layout
from chain.errors import TreeHasNoForksError
from cogs import game_charts
from cogs.chart_book import ChartBook
from cogs.chart_spec import MAX_ALT_TEXT, ChartSpec, Series, check_spec
from cogs.game_charts import game_picture, with_picture
from cogs.tree_charts import FORKS_LISTED, tree_alt_text, tree_spec

GUILD = 7


def line() -> ChartSpec:
    return ChartSpec("line", "t", "x", "y", "a line", (Series("s", ((0, 0), (1, 1))),))


class Renderer:
    def __init__(self, *, hang: bool = False, fail: bool = False) -> None:
        self.hang, self.fail, self.calls = hang, fail, 0

    async def render(self, spec, key=None):
        self.calls += 1
        if self.fail:
            raise RuntimeError("the worker broke")
        if self.hang:
            await asyncio.Event().wait()
        return b"png"


def book(renderer: Renderer) -> ChartBook:
    return ChartBook(None, renderer, {}, clock=lambda: 0.0)  # type: ignore[arg-type]


async def test_a_game_picture_is_rendered_in_the_chart_worker():
    renderer = Renderer()
    picture = await game_picture(book(renderer), GUILD, "split", line)
    assert picture is not None and picture.png == b"png" and picture.filename == "split.png"
    sent = with_picture(game_charts.discord.Embed(title="summary"), picture)
    assert sent["embed"].image.url == "attachment://split.png" and sent["file"].description == "a line"
    assert with_picture(game_charts.discord.Embed(title="summary"), None).keys() == {"embed"}


async def test_a_game_with_nothing_to_draw_renders_nothing(caplog):
    renderer = Renderer()

    def no_fork() -> ChartSpec:
        raise TreeHasNoForksError("no forks from height 4 on")

    with caplog.at_level(logging.INFO, logger="cogs.game_charts"):
        assert await game_picture(book(renderer), GUILD, "split", no_fork) is None
    assert renderer.calls == 0 and "without a picture: no forks from height 4 on" in caplog.text
    assert await game_picture(None, GUILD, "split", line) is None  # no chart worker on this bot


@pytest.mark.parametrize(("renderer", "logged"), [
    (Renderer(fail=True), "the split picture failed"),
    (Renderer(hang=True), "the split picture took over 0.0 s"),
])
async def test_a_failing_or_slow_render_gives_no_picture_and_is_logged(renderer, logged, monkeypatch, caplog):
    monkeypatch.setattr(game_charts, "GAME_PICTURE_WAIT_S", 0.01)
    with caplog.at_level(logging.INFO, logger="cogs.game_charts"):
        assert await game_picture(book(renderer), GUILD, "split", line) is None
    assert logged in caplog.text


def h(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()


def tree_with_forks(forks: int) -> BlockTree:
    tree = BlockTree(h("g"), 1)
    parent = "g"
    for i in range(1, 3 * forks + 3):
        tree.add_block(h(f"m{i}"), h(parent), i, 1)
        parent = f"m{i}"
    for f in range(forks):
        tree.add_block(h(f"s{f}"), h(f"m{3 * f + 1}"), 3 * f + 2, 1)
    return tree


def window(tree: BlockTree, **kwargs) -> TreeWindow:
    layout = compute_tree_layout(list(tree), tree.best.block_hash, max_lanes=kwargs.pop("max_lanes", 6))
    return TreeWindow(layout, kwargs.get("finalized"), kwargs.get("justified"), kwargs.get("by_votes", False))


def test_the_tree_alt_text_names_each_fork_and_the_winner():
    tree = tree_with_forks(2)
    text = tree_alt_text(window(tree, finalized=3, justified=6))
    assert text.startswith("Block tree of heights 0 to 8: 9 main-chain blocks as blue circles")
    assert "and 2 orphaned blocks as orange squares on 2 side branches above it" in text
    assert ("Forks: at block 1 a 1-block branch (block 2) lost to the main chain; at block 4 a 1-block branch "
            "(block 5) lost to the main chain.") in text
    assert "The main chain follows the most work: it won every fork shown." in text
    assert "Dotted lines mark the finalized checkpoint at block 3 and the justified checkpoint at block 6." in text
    assert "the validators' votes" in tree_alt_text(window(tree, by_votes=True))
    spec = tree_spec(window(tree, finalized=3), "Block tree")
    check_spec(spec)
    assert [m.label for m in spec.markers] == ["finalized 3"]
    assert {n.style for n in spec.nodes} == {"main", "side"} and len(spec.links) == len(spec.nodes) - 1
    assert spec.y_ticks == ((0, "main"), (1, "side 1"))


def test_many_forks_are_counted_past_the_listed_and_the_alt_text_fits_discord():
    tree = tree_with_forks(FORKS_LISTED + 5)
    text = tree_alt_text(window(tree))
    assert len(text) <= MAX_ALT_TEXT
    assert text.count("lost to the main chain") == FORKS_LISTED
    assert text.endswith("; and 5 more. The main chain follows the most work: it won every fork shown.")


def test_branches_with_no_lane_are_said_to_be_left_out():
    tree = BlockTree(h("g"), 1)
    tree.add_block(h("m1"), h("g"), 1, 1)
    tree.add_block(h("m2"), h("m1"), 2, 1)
    tree.add_block(h("a2"), h("m1"), 2, 1)
    tree.add_block(h("b2"), h("m1"), 2, 1)
    text = tree_alt_text(window(tree, max_lanes=1))
    assert "Not drawn, for lack of room: 1 side branch (1 block)." in text
