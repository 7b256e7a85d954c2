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

``attachment`` is for messages that go out anyway (``/chain energy``, the retarget announcement):
the picture if it can be had within a time limit, else None (logged), never an error.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import math
import pickle
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import discord

from chain.errors import ChainError
from chain.playground import Playground
from cogs.chart_spec import ChartError, ChartKey, ChartSpec, check_spec
from cogs.errors import UserFacingError

log = logging.getLogger(__name__)

DEFAULT_COOLDOWN_S = 15
DEFAULT_MAX_IN_FLIGHT = 8
# How long a message that goes out anyway waits for its picture (a render is ~150 ms when the worker
# is free); past it the message goes without.
DEFAULT_ATTACHMENT_TIMEOUT_S = 5.0
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

    async def attachment(
        self, guild_id: int, name: str, *, member_id: int | None = None,
        timeout_s: float = DEFAULT_ATTACHMENT_TIMEOUT_S,
    ) -> ChartPicture | None:
        """The picture for a message that is sent with or without it: None when there is nothing to
        show, ``member_id`` is on cooldown (it is claimed, like ``/chain chart``), too many charts are
        in flight, or the render fails or takes over ``timeout_s`` (each logged, none raised)."""
        try:
            async with asyncio.timeout(timeout_s):
                spec = await self.spec(guild_id, name)
                if member_id is not None:
                    self.claim(guild_id, member_id)
                return await self.render(guild_id, name, spec)
        except (ChainError, UserFacingError, ChartError, TimeoutError) as exc:
            log.info("chart %r of server %d left out: %s", name, guild_id, exc or type(exc).__name__)
        except Exception:  # the message goes out without its picture whatever went wrong
            log.exception("chart %r of server %d failed; the message goes without it", name, guild_id)
        return None
