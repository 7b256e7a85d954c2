"""Charts of a server's chain: the kinds there are, who may ask how often, and the picture.

A ``ChartKind`` names a chart and the coroutine that builds its ``ChartSpec`` from the façade's
data (``cogs/chart_kinds.py`` lists them).  ``ChartBook`` is what commands, announcements and the
dashboard call: it builds the spec, has the bot's chart worker render it (``ChartRendering``,
``bot/charts.py``), and keeps members from tying that one worker up:

* a member gets one chart per ``cooldown_s`` on a server (``claim``: checked and started in one
  step, so two requests at the same moment cannot both pass); a chart with nothing to show yet is
  refused by ``spec`` before the claim, so it costs no cooldown;
* at most ``max_in_flight`` charts are built or rendered at once across all servers; past that a
  request is refused at once rather than queued behind minutes of other servers' charts;
* a picture is keyed by a digest of its spec: the same data is rendered once, until the chain
  changes what the chart shows (the renderer's LRU cache).
"""

from __future__ import annotations

import hashlib
import io
import math
import pickle
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import discord

from chain.playground import Playground
from cogs.chart_spec import ChartKey, ChartSpec, check_spec
from cogs.errors import UserFacingError

DEFAULT_COOLDOWN_S = 15
DEFAULT_MAX_IN_FLIGHT = 8
# Past this many members on cooldown, the expired entries are dropped (the map stays small).
COOLDOWN_SWEEP_AT = 1_000

# An owner as the engine keeps it (a member id, or a bot wallet's name) -> the name to print on a
# picture (mentions do not render inside an image).
OwnerNames = Callable[[str], Awaitable[str]]
ChartBuilder = Callable[[Playground, int, OwnerNames], Awaitable[ChartSpec]]


def short_owner(owner: str) -> str:
    """An owner whose name cannot be looked up: a member id's tail (still tells members apart)."""
    return owner if len(owner) <= 12 else f"…{owner[-6:]}"


async def owner_ids(owner: str) -> str:
    """Names for where no member names can be looked up (tests, the dashboard without a guild cache)."""
    return short_owner(owner)


class ChartRendering(Protocol):
    """What the bot's chart worker does (``bot.charts.ChartRenderer``)."""

    async def render(self, spec: ChartSpec, key: ChartKey | None = None) -> bytes: ...


@dataclass(frozen=True, slots=True)
class ChartKind:
    name: str
    """The command's choice value and the file's name."""
    label: str
    """Shown in the command's choices."""
    explains: str
    """One sentence: what the picture shows and what to look for (README, ``/help``)."""
    build: ChartBuilder


@dataclass(frozen=True, slots=True)
class ChartPicture:
    kind: str
    spec: ChartSpec
    png: bytes

    @property
    def filename(self) -> str:
        return f"{self.kind}.png"

    def file(self) -> discord.File:
        """The PNG as an attachment whose description (Discord's alt text) says what it shows."""
        return discord.File(io.BytesIO(self.png), filename=self.filename, description=self.spec.alt_text)

    def show_in(self, embed: discord.Embed) -> discord.Embed:
        """Put the picture in ``embed`` (send it with ``file()``)."""
        return embed.set_image(url=f"attachment://{self.filename}")


def spec_digest(spec: ChartSpec) -> bytes:
    """Equal specs, equal digests: the cache key changes exactly when the picture would."""
    return hashlib.blake2b(pickle.dumps(spec, protocol=5), digest_size=16).digest()


class ChartBook:
    def __init__(
        self,
        playground: Playground,
        renderer: ChartRendering,
        kinds: Mapping[str, ChartKind],
        *,
        clock: Callable[[], float],
        cooldown_s: int = DEFAULT_COOLDOWN_S,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        self.playground = playground
        self.renderer = renderer
        self.kinds = dict(kinds)
        self.clock = clock
        self.cooldown_s = cooldown_s
        self.max_in_flight = max_in_flight
        self._in_flight = 0
        # (server, member) -> when their last chart was asked for (clock seconds).
        self._asked: dict[tuple[int, int], float] = {}

    def claim(self, guild_id: int, member_id: int) -> None:
        """Start a member's cooldown, or refuse if it is running. No await between check and act."""
        now = self.clock()
        key = (guild_id, member_id)
        last = self._asked.get(key)
        if last is not None and now - last < self.cooldown_s:
            wait = math.ceil(self.cooldown_s - (now - last))
            raise UserFacingError(f"One chart every {self.cooldown_s} s per member: try again in {wait} s.")
        if len(self._asked) >= COOLDOWN_SWEEP_AT:
            self._asked = {k: t for k, t in self._asked.items() if now - t < self.cooldown_s}
        self._asked[key] = now

    def kind(self, name: str) -> ChartKind:
        try:
            return self.kinds[name]
        except KeyError:
            known = ", ".join(sorted(self.kinds))
            raise UserFacingError(f"There is no chart called {name!r}; there are: {known}.") from None

    async def spec(self, guild_id: int, name: str, names: OwnerNames = owner_ids) -> ChartSpec:
        """What the chart of ``guild_id``'s chain would show: reads the chain, draws nothing.  A chart
        with nothing to show raises here (a ``ChartDataError``), before anyone waits for a picture."""
        kind = self.kind(name)
        spec = await kind.build(self.playground, guild_id, names)
        check_spec(spec)
        return spec

    async def render(self, guild_id: int, name: str, spec: ChartSpec) -> ChartPicture:
        """Draw ``spec`` in the chart worker (refused when too many are in flight)."""
        if self._in_flight >= self.max_in_flight:
            raise UserFacingError(
                f"{self._in_flight} charts are being drawn right now, the most at once: try again in a few seconds."
            )
        self._in_flight += 1
        try:
            png = await self.renderer.render(spec, ChartKey(guild_id, name, spec_digest(spec)))
        finally:
            self._in_flight -= 1
        return ChartPicture(name, spec, png)

    async def picture(self, guild_id: int, name: str, names: OwnerNames = owner_ids) -> ChartPicture:
        """``spec`` then ``render``: for announcements and the dashboard, where nobody waits on a reply."""
        return await self.render(guild_id, name, await self.spec(guild_id, name, names))
