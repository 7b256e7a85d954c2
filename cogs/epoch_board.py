"""The epoch board: one message per server and epoch, edited as its slots pass.

One message per slot flooded the playground channel (2,880 a day at 30 s slots) and ran into
Discord's rate limits.  The board posts one message when an epoch starts and edits it for each
slot after that (the block, its proposer, the votes toward 2/3, and an Attest button that votes for
the newest head), and posts a fresh one only when the epoch changes, when its message is gone
(deleted by a member, or the playground channel changed), or when something members must see
happens (a validator slashed, an inactivity leak starting): the caller flags those as ``fresh``.

What the board shows is kept per server as one state; every slot or vote only replaces that state.
One task per server writes it to Discord, one request at a time, and always renders the newest
state when its request goes out: a busy or rate-limited channel gets fewer edits, never a queue of
stale ones (``coalesced`` counts the states that were never shown because a newer one came first).

When an epoch ends, the new epoch's message is the end-of-epoch report: it also carries a picture
of the epoch that just ended (the participation chart: ``picture``, drawn in the bot's chart worker).
The message never waits for it: it is posted at once, and the picture is attached by an edit when
it is ready (or by the post, if it was ready first).  A picture that fails or takes longer than
``picture_timeout_s`` is logged and left out; the report goes on without it.

The message id is stored (an ``EpochMessage``, through ``Services.epoch_messages``) right after
the post, so a restart keeps editing the same message.  What can still go wrong: a crash between
Discord's answer to the post and that write leaves the message unrecorded, and the restarted bot
posts the epoch's message again (once); an edit that fails for any reason other than the message
being gone is logged and dropped (the next slot's edit shows the newer state anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import discord

from chain.errors import ChainError
from cogs.chart_book import ChartPicture
from cogs.services import EpochMessage, EpochMessageStore

log = logging.getLogger(__name__)

# Discord's JSON error code for a message that does not exist (any more).
UNKNOWN_MESSAGE = 10008
# The renderer has its own time limit; this bounds the whole picture (reading the chain, waiting for
# the worker) so a stuck one is given up on, and said so, instead of attached minutes late.
DEFAULT_PICTURE_TIMEOUT_S = 30.0


@dataclass
class BoardState:
    """What a server's board shows: the newest slot, the newest vote count, the epoch's news.

    ``slot`` is whatever the renderer needs for the slot (the cog passes its own record);
    ``restored`` the message a member pressed after a restart, before any slot ran here
    (only its vote count can be updated then)."""

    epoch: int | None = None
    slot: Any = None
    progress: Any = None
    news: list[str] = field(default_factory=list)
    blocks: int = 0
    restored: discord.Message | None = None
    # A fresh message is wanted for the next write (epoch change, must-see news, message gone).
    fresh: bool = False
    # News came that no write has shown yet (kept when the epoch changes first).
    unshown_news: bool = False
    # A state not written to Discord yet waits.
    dirty: bool = False
    # The picture of the epoch before ``epoch`` that its message carries once drawn, and the message
    # it is attached to (a message posted again, or a new epoch's, needs it attached again).
    picture: ChartPicture | None = None
    picture_on: int | None = None


# Renders a state into (embed, view); the view is None when the message's components stay as they are.
Renderer = Callable[[BoardState], tuple[discord.Embed, discord.ui.View | None] | None]
ChannelOf = Callable[[int], Awaitable[discord.abc.Messageable | None]]
# (server, the epoch that just ended) -> its picture, or None when there is none to draw.
Picture = Callable[[int, int], Awaitable[ChartPicture | None]]


class EpochBoard:
    def __init__(
        self, *, store: EpochMessageStore, channel_of: ChannelOf, render: Renderer, clock: Callable[[], float],
        picture: Picture | None = None, picture_timeout_s: float = DEFAULT_PICTURE_TIMEOUT_S,
    ) -> None:
        self._store = store
        self._channel_of = channel_of
        self._render = render
        self._clock = clock
        self._picture = picture
        self._picture_timeout_s = picture_timeout_s
        self._states: dict[int, BoardState] = {}
        # The recorded message per server, read from the store once (then kept in step with it).
        self._messages: dict[int, EpochMessage | None] = {}
        self._writers: dict[int, asyncio.Task[None]] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        # Pictures being drawn (apart from the writes: they never hold one up).
        self.drawing: set[asyncio.Task[None]] = set()
        # States never written because a newer one replaced them first (the channel was behind).
        self.coalesced = 0

    # --- what to show -------------------------------------------------------------

    def show_slot(self, guild_id: int, epoch: int, slot: Any, progress: Any, *, news: tuple[str, ...] = (),
                  fresh: bool = False) -> None:
        """Show this slot's block on the server's board (a new message if its epoch is new)."""
        state = self._states.setdefault(guild_id, BoardState())
        if state.epoch != epoch:
            if state.epoch is not None:
                state.fresh = True  # a new epoch: a new message
            state.epoch, state.blocks = epoch, 0
            if not state.unshown_news:
                state.news = []
            state.picture = state.picture_on = None
            # Also on the first slot this process shows: a restarted bot's message gets its picture again.
            if self._picture is not None and epoch > 0:
                self._start(self.drawing, self._draw(guild_id, epoch), f"epoch-picture-{guild_id}-{epoch}")
        state.slot = slot
        state.blocks += 1
        if progress is not None:
            state.progress = progress
        state.restored = None
        self._add_news(state, news, fresh)
        self._changed(guild_id, state)

    def show_news(self, guild_id: int, news: tuple[str, ...], *, fresh: bool) -> None:
        """News from a slot without a block of ours (say, its proposer was just slashed): shown
        beside the last block shown, or with the next block if none is shown yet."""
        state = self._states.setdefault(guild_id, BoardState())
        self._add_news(state, news, fresh)
        if state.slot is not None and news:
            self._changed(guild_id, state)

    @staticmethod
    def _add_news(state: BoardState, news: tuple[str, ...], fresh: bool) -> None:
        if news:
            state.news.extend(news)
            state.unshown_news = True
        state.fresh = state.fresh or fresh

    def show_votes(self, guild_id: int, progress: Any, pressed: discord.Message | None) -> None:
        """Show a newer vote count.  Before any slot ran in this process (a restart), only the
        recorded message itself can be updated, from its own embed."""
        state = self._states.setdefault(guild_id, BoardState())
        if state.progress is not None and progress.epoch < state.progress.epoch:
            return  # a vote that was signed before the newer epoch's first slot: nothing newer to show
        state.progress = progress
        if state.slot is None:
            if pressed is None or not pressed.embeds:
                return
            state.restored = pressed
        self._changed(guild_id, state)

    def _changed(self, guild_id: int, state: BoardState) -> None:
        if state.dirty:
            self.coalesced += 1
        state.dirty = True
        writer = self._writers.get(guild_id)
        if writer is None or writer.done():
            self._writers[guild_id] = self._start(self.tasks, self._write_newest(guild_id), f"epoch-board-{guild_id}")

    @staticmethod
    def _start(tasks: set[asyncio.Task[None]], work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(work, name=name)
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return task

    async def _draw(self, guild_id: int, epoch: int) -> None:
        """Draw the picture of the epoch before ``epoch`` and show it on ``epoch``'s message.  Runs
        beside the writes: the message goes out without waiting for it."""
        assert self._picture is not None
        try:
            picture = await asyncio.wait_for(self._picture(guild_id, epoch - 1), self._picture_timeout_s)
        except TimeoutError:
            log.warning("guild %d: the picture of epoch %d took over %.0f s; the epoch message goes without it",
                        guild_id, epoch - 1, self._picture_timeout_s)
            return
        except ChainError as exc:  # nothing to draw yet (say, nobody was active): not a fault
            log.info("guild %d: no picture of epoch %d: %s", guild_id, epoch - 1, exc)
            return
        except Exception:  # a picture is a bonus: its failure must never touch the epoch message
            log.warning("guild %d: the picture of epoch %d failed; the epoch message goes without it",
                        guild_id, epoch - 1, exc_info=True)
            return
        state = self._states.get(guild_id)
        if picture is None or state is None or state.epoch != epoch:
            return  # the epoch moved on while it was drawn: that picture is stale
        state.picture = picture
        self._changed(guild_id, state)

    async def stop(self) -> None:
        tasks = list(self.tasks | self.drawing)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.tasks.clear()
        self.drawing.clear()
        self._writers.clear()

    # --- writing it to Discord ----------------------------------------------------------

    async def _write_newest(self, guild_id: int) -> None:
        # No await between the last check of ``dirty`` and the end: a change made later finds this task done.
        while (state := self._states.get(guild_id)) is not None and state.dirty:
            state.dirty = False
            try:
                await self._write(guild_id, state)
            except asyncio.CancelledError:
                raise
            except Exception:  # one failed write must not stop the board
                log.exception("guild %d: could not update the epoch message", guild_id)

    async def _write(self, guild_id: int, state: BoardState) -> None:
        # Everything this write shows and decides is taken now, before any await: a slot or press
        # arriving meanwhile only marks the state dirty for the next write.
        rendered = self._render(state)
        if rendered is None:
            return
        embed, view = rendered
        epoch = state.epoch
        fresh, state.fresh = state.fresh, False
        unshown_news, state.unshown_news = state.unshown_news, False
        target = state.restored.id if state.restored is not None else None
        picture = state.picture
        if picture is not None:
            picture.show_in(embed)  # every write: an edit's embed replaces the one showing it
        try:
            carrying = await self._edit_or_post(
                guild_id, embed, view, epoch, fresh, target, picture, state.picture_on
            )
            if picture is not None and state.picture is picture and carrying is not None:
                state.picture_on = carrying
        except BaseException:
            # Not shown: the next write asks for the new message and the news again.
            state.fresh = state.fresh or fresh
            state.unshown_news = state.unshown_news or unshown_news
            raise

    async def _edit_or_post(
        self, guild_id: int, embed: discord.Embed, view: discord.ui.View | None, epoch: int | None, fresh: bool,
        target: int | None, picture: ChartPicture | None = None, picture_on: int | None = None,
    ) -> int | None:
        """Edit the recorded message or post a new one; the id of the message that now carries
        ``picture`` (attached here unless ``picture_on`` says it already is), if any."""
        channel = await self._channel_of(guild_id)
        if channel is None:
            return None
        if guild_id not in self._messages:
            self._messages[guild_id] = await self._store.get_epoch_message(guild_id)
        recorded = self._messages[guild_id]
        same = (
            recorded is not None and recorded.channel_id == getattr(channel, "id", None)
            and (recorded.epoch == epoch or target == recorded.message_id)
        )
        if same and not fresh and recorded is not None:  # `same` already implies a record
            kwargs: dict[str, Any] = {"embed": embed}
            if view is not None:
                kwargs["view"] = view
            if picture is not None and picture_on != recorded.message_id:
                kwargs["attachments"] = [picture.file()]
            try:
                await channel.get_partial_message(recorded.message_id).edit(**kwargs)  # type: ignore[attr-defined]
                return recorded.message_id if picture is not None else None
            except discord.NotFound as exc:
                if exc.code != UNKNOWN_MESSAGE:
                    raise
                log.info("guild %d: the epoch message %d is gone; posting a new one", guild_id, recorded.message_id)
            except discord.HTTPException as exc:
                log.warning("guild %d: could not edit the epoch message: %s", guild_id, exc)
                return None
        if epoch is None or view is None:
            return None  # only a vote count of a restored message: nothing to post a whole message from
        extra: dict[str, Any] = {"file": picture.file()} if picture is not None else {}
        message = await channel.send(embed=embed, view=view, allowed_mentions=discord.AllowedMentions.none(), **extra)
        record = EpochMessage(guild_id, message.channel.id, message.id, epoch)
        self._messages[guild_id] = record
        await self._store.set_epoch_message(record, int(self._clock()))
        return message.id if picture is not None else None
