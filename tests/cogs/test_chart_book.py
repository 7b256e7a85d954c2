"""cogs/chart_book.py: the cooldown, the cap on charts in flight, and the cache key."""

from __future__ import annotations

import asyncio

import pytest

from chain.errors import ChartEmptyInputError
from cogs.chart_book import ChartBook, ChartKind, spec_digest
from cogs.chart_spec import ChartError, ChartSpec, Series
from cogs.errors import UserFacingError
from cogs.options import named_choices

GUILD = 7


def line(y: int) -> ChartSpec:
    return ChartSpec("line", "t", "x", "y", "a line", (Series("s", ((0, 0), (1, y))),))


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class Renderer:
    def __init__(self) -> None:
        self.keys: list = []
        self.release = asyncio.Event()
        self.release.set()

    async def render(self, spec, key=None):
        self.keys.append(key)
        await self.release.wait()
        return b"png"


async def build_line(playground, guild_id, names):
    return line(guild_id)


async def build_nothing(playground, guild_id, names):
    raise ChartEmptyInputError("nothing yet")


async def build_too_big(playground, guild_id, names):
    return ChartSpec("line", "t", "x", "y", "big", (Series("s", tuple((i, i) for i in range(2_001))),))


KINDS = {
    k.name: k
    for k in (
        ChartKind("line", "A line", "explains", build_line),
        ChartKind("empty", "Nothing", "explains", build_nothing),
        ChartKind("big", "Too big", "explains", build_too_big),
    )
}


def book(**kwargs) -> tuple[ChartBook, Renderer, Clock]:
    renderer, clock = Renderer(), Clock()
    return ChartBook(None, renderer, KINDS, clock=clock, **kwargs), renderer, clock  # type: ignore[arg-type]


def test_a_member_gets_one_chart_per_cooldown():
    charts, _, clock = book(cooldown_s=15)
    charts.claim(GUILD, 1)
    with pytest.raises(UserFacingError, match="One chart every 15 s per member: try again in 15 s"):
        charts.claim(GUILD, 1)
    charts.claim(GUILD, 2)  # another member
    charts.claim(GUILD + 1, 1)  # the same member on another server
    clock.now += 15
    charts.claim(GUILD, 1)


async def test_claims_at_the_same_moment_let_exactly_one_through():
    charts, _, _ = book()

    async def claim() -> bool:
        await asyncio.sleep(0)
        try:
            charts.claim(GUILD, 1)
        except UserFacingError:
            return False
        return True

    assert sorted(await asyncio.gather(*(claim() for _ in range(10)))) == [False] * 9 + [True]


async def test_equal_specs_share_a_cache_key_and_a_change_makes_a_new_one():
    charts, renderer, _ = book()
    await charts.picture(GUILD, "line")
    await charts.picture(GUILD, "line")
    await charts.picture(GUILD + 1, "line")
    first, second, other = renderer.keys
    assert first == second
    assert other != first and other.tip == spec_digest(line(GUILD + 1))


async def test_charts_past_the_in_flight_cap_are_refused_at_once():
    charts, renderer, _ = book(max_in_flight=2)
    renderer.release.clear()
    waiting = [asyncio.ensure_future(charts.picture(GUILD, "line")) for _ in range(2)]
    await asyncio.sleep(0.01)
    with pytest.raises(UserFacingError, match="2 charts are being drawn right now"):
        await charts.picture(GUILD, "line")
    renderer.release.set()
    assert [p.png for p in await asyncio.gather(*waiting)] == [b"png", b"png"]
    await charts.picture(GUILD, "line")  # the slots came back


async def test_invalid_kind_nothing_to_show_and_over_the_caps():
    charts, renderer, _ = book()
    with pytest.raises(UserFacingError, match="There is no chart called 'pie'; there are: big, empty, line"):
        await charts.picture(GUILD, "pie")
    with pytest.raises(ChartEmptyInputError):
        await charts.spec(GUILD, "empty")
    with pytest.raises(ChartError, match="2001 points"):
        await charts.spec(GUILD, "big")
    assert renderer.keys == []


def test_a_picture_is_a_file_with_its_alt_text():
    from cogs.chart_book import ChartPicture

    picture = ChartPicture("line", line(3), b"\x89PNG")
    attached = picture.file()
    assert (attached.filename, attached.description) == ("line.png", "a line")
    import discord

    assert picture.show_in(discord.Embed()).image.url == "attachment://line.png"


def test_named_choices_show_names_not_values():
    choices = named_choices({"difficulty": "Difficulty and retargets", "intervals": "Block intervals"})
    assert [(c.name, c.value) for c in choices.choices] == [
        ("Difficulty and retargets", "difficulty"), ("Block intervals", "intervals")
    ]
