"""The epoch board (cogs/epoch_board.py): newest state only, one write at a time, 404 -> new message."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import discord
import pytest

from chain.adapters.beacon_status import FinalityView, VoteProgress
from chain.errors import ChartEmptyInputError
from cogs.chart_book import ChartPicture
from cogs.chart_spec import ChartSpec, Series
from cogs.epoch_board import EpochBoard
from cogs.services import EpochMessage
from cogs.stake import finality_news

GUILD = 7
VIEW = object()  # the board only hands the view on


@dataclass
class FakeResponse:
    status: int
    reason: str = "Not Found"


@dataclass
class FakeStore:
    records: dict[int, EpochMessage] = field(default_factory=dict)

    async def get_epoch_message(self, chain_id):
        return self.records.get(chain_id)

    async def set_epoch_message(self, message, now):
        self.records[message.chain_id] = message


@dataclass
class FakeMessage:
    id: int
    channel: FakeChannel


class FakePartial:
    def __init__(self, channel: FakeChannel, message_id: int) -> None:
        self.channel, self.id = channel, message_id

    async def edit(self, **kwargs):
        self.channel.in_flight += 1
        self.channel.most_in_flight = max(self.channel.most_in_flight, self.channel.in_flight)
        try:
            await self.channel.gate.wait()
            if self.id in self.channel.deleted:
                raise discord.NotFound(FakeResponse(404), {"code": 10008, "message": "Unknown Message"})
            self.channel.writes.append(("edit", self.id, kwargs["embed"].title))
            self.channel.record_files("edit", self.id, kwargs)
        finally:
            self.channel.in_flight -= 1


class FakeChannel:
    def __init__(self) -> None:
        self.id = 99
        self.writes: list[tuple[str, int, str]] = []
        self.deleted: set[int] = set()
        self.gate = asyncio.Event()
        self.gate.set()
        self.in_flight = 0
        self.most_in_flight = 0
        self.files: list[tuple[str, int, str, str]] = []
        self.images: list[str | None] = []
        self._next_id = 1000

    def get_partial_message(self, message_id):
        return FakePartial(self, message_id)

    async def send(self, *, embed, view, allowed_mentions, **kwargs):
        await self.gate.wait()
        self._next_id += 1
        self.writes.append(("send", self._next_id, embed.title))
        self.record_files("send", self._next_id, {"embed": embed, **kwargs})
        return FakeMessage(self._next_id, self)

    def record_files(self, kind: str, message_id: int, kwargs) -> None:
        """Which write attached which file, and the image its embed showed."""
        files = list(kwargs.get("attachments", [])) + ([kwargs["file"]] if "file" in kwargs else [])
        self.files.extend((kind, message_id, f.filename, f.description) for f in files)
        self.images.append(kwargs["embed"].image.url)


def board_for(channel: FakeChannel, store: FakeStore | None = None, **picture) -> EpochBoard:
    async def channel_of(guild_id):
        return channel

    def render(state):
        votes = "" if state.progress is None else f" votes {state.progress.attesting_units}"
        return discord.Embed(title=f"epoch {state.epoch} slot {state.slot}{votes}"), VIEW

    return EpochBoard(store=store or FakeStore(), channel_of=channel_of, render=render, clock=lambda: 0, **picture)


async def settle(board: EpochBoard) -> None:
    while board.tasks or board.drawing:
        await asyncio.gather(*board.tasks, *board.drawing)


def votes(epoch: int, units: int) -> VoteProgress:
    return VoteProgress(epoch, units, 100)


async def test_a_busy_channel_gets_only_the_newest_state_one_write_at_a_time():
    channel = FakeChannel()
    board = board_for(channel)
    board.show_slot(GUILD, 0, 1, votes(0, 0))
    await settle(board)
    channel.gate.clear()  # Discord is slow (or rate-limits): the next edit hangs
    board.show_slot(GUILD, 0, 2, votes(0, 0))
    await asyncio.sleep(0)  # the edit for slot 2 is in flight
    # Slots and presses at the same moment, while that edit waits: only the newest matters.
    board.show_slot(GUILD, 0, 3, votes(0, 10))
    board.show_votes(GUILD, votes(0, 20), None)
    board.show_slot(GUILD, 0, 4, votes(0, 20))
    board.show_votes(GUILD, votes(0, 40), None)
    assert len(board.tasks) == 1
    channel.gate.set()
    await settle(board)
    first = channel.writes[0][1]
    assert channel.writes == [
        ("send", first, "epoch 0 slot 1 votes 0"),
        ("edit", first, "epoch 0 slot 2 votes 0"),
        ("edit", first, "epoch 0 slot 4 votes 40"),
    ]
    assert board.coalesced == 3 and channel.most_in_flight == 1


async def test_a_new_epoch_or_must_see_news_gets_a_new_message_and_the_record_follows():
    channel, store = FakeChannel(), FakeStore()
    board = board_for(channel, store)
    for epoch, slot, fresh in ((0, 1, False), (0, 2, False), (1, 4, False), (1, 5, True), (1, 6, False)):
        board.show_slot(GUILD, epoch, slot, None, fresh=fresh)
        await settle(board)
    kinds = [(kind, title) for kind, _id, title in channel.writes]
    assert kinds == [
        ("send", "epoch 0 slot 1"), ("edit", "epoch 0 slot 2"), ("send", "epoch 1 slot 4"),
        ("send", "epoch 1 slot 5"), ("edit", "epoch 1 slot 6"),
    ]
    assert store.records[GUILD] == EpochMessage(GUILD, channel.id, channel.writes[3][1], 1)


async def test_a_restarted_board_edits_the_recorded_message_and_a_deleted_one_is_posted_again():
    channel, store = FakeChannel(), FakeStore({GUILD: EpochMessage(GUILD, 99, 555, 3)})
    board = board_for(channel, store)  # a new process: nothing in memory, the record on disk
    board.show_slot(GUILD, 3, 30, None)
    await settle(board)
    assert channel.writes == [("edit", 555, "epoch 3 slot 30")]

    channel.deleted.add(555)  # a member deleted it: the edit answers 404 Unknown Message
    board.show_slot(GUILD, 3, 31, None)
    await settle(board)
    new_id = channel.writes[-1][1]
    assert channel.writes[-1] == ("send", new_id, "epoch 3 slot 31")
    assert store.records[GUILD].message_id == new_id
    board.show_slot(GUILD, 3, 32, None)
    await settle(board)
    assert channel.writes[-1] == ("edit", new_id, "epoch 3 slot 32")


def finality(justified=0, finalized=0, leak=False, slashed=0) -> FinalityView:
    return FinalityView(justified, finalized, leak, slashed)


def test_only_slashings_and_a_leak_starting_deserve_a_new_message():
    assert finality_news(None, finality(slashed=2), 5) == ((), False)  # nothing to compare with yet
    assert finality_news(finality(), finality(justified=1, finalized=1), 9) == ((), False)  # routine
    news, fresh = finality_news(finality(slashed=1), finality(slashed=2), 12)
    assert fresh and news == ("⚔️ 1 validator slashed at slot 12 (see the announcement)",)
    news, fresh = finality_news(finality(), finality(leak=True), 40)
    assert fresh and "Inactivity leak from slot 40" in news[0]
    news, fresh = finality_news(finality(leak=True), finality(leak=False, finalized=6), 50)
    assert not fresh and news == ("💧 The inactivity leak ended at slot 50",)


async def test_news_from_a_slot_without_our_block_is_posted_beside_the_last_block_or_waits_for_one():
    channel = FakeChannel()
    board = board_for(channel)
    board.show_news(GUILD, ("⚔️ slashed",), fresh=True)  # nothing shown yet: it waits for a block
    await settle(board)
    assert channel.writes == []
    board.show_slot(GUILD, 0, 1, None)
    await settle(board)
    board.show_news(GUILD, ("🩸 leak",), fresh=True)  # the slot's proposer was slashed: no block
    await settle(board)
    assert [kind for kind, _id, _title in channel.writes] == ["send", "send"]
    assert board._states[GUILD].news == ["⚔️ slashed", "🩸 leak"]
    # News not shown yet when the epoch changes goes onto the new epoch's message.
    channel.gate.clear()
    board.show_slot(GUILD, 0, 2, None)
    await asyncio.sleep(0)
    board.show_news(GUILD, ("⚔️ again",), fresh=True)
    board.show_slot(GUILD, 1, 4, None)
    channel.gate.set()
    await settle(board)
    assert board._states[GUILD].news == ["⚔️ slashed", "🩸 leak", "⚔️ again"]
    assert channel.writes[-1][0] == "send" and channel.writes[-1][2] == "epoch 1 slot 4"


async def test_a_slot_of_the_next_epoch_arriving_mid_write_does_not_change_that_write():
    channel, store = FakeChannel(), FakeStore()
    looked_up = asyncio.Event()
    looked_up.set()

    async def channel_of(guild_id):
        await looked_up.wait()
        return channel

    board = board_for(channel, store)
    board._channel_of = channel_of
    board.show_slot(GUILD, 0, 6, None)
    await settle(board)
    looked_up.clear()  # the next write waits for the channel lookup...
    board.show_slot(GUILD, 0, 7, None)
    await asyncio.sleep(0)
    board.show_slot(GUILD, 1, 8, None)  # ...while the next epoch's first slot comes
    looked_up.set()
    await settle(board)
    first = channel.writes[0][1]
    assert channel.writes[1] == ("edit", first, "epoch 0 slot 7")  # epoch 0's last slot, on epoch 0's message
    assert channel.writes[2][0] == "send" and channel.writes[2][2] == "epoch 1 slot 8"
    assert store.records[GUILD].epoch == 1 and store.records[GUILD].message_id == channel.writes[2][1]


# --- the end-of-epoch report's picture -----------------------------------------------------------------


def picture_of(epoch: int) -> ChartPicture:
    spec = ChartSpec(kind="line", title="votes", x_label="epoch", y_label="%", alt_text=f"votes up to epoch {epoch}",
                     series=(Series("voted", ((epoch, 100.0),)),))
    return ChartPicture("participation", spec, b"png of epoch %d" % epoch)


class HeldPictures:
    """A chart worker the test holds back: each picture waits until the test releases its epoch."""

    def __init__(self) -> None:
        self.asked: list[tuple[int, int]] = []
        self.release: dict[int, asyncio.Event] = {}

    async def __call__(self, guild_id: int, epoch: int) -> ChartPicture:
        self.asked.append((guild_id, epoch))
        await self.release.setdefault(epoch, asyncio.Event()).wait()
        return picture_of(epoch)

    def let_go(self, epoch: int) -> None:
        self.release.setdefault(epoch, asyncio.Event()).set()


async def writes_settle(board: EpochBoard) -> None:
    """Wait for the writes only (a held picture keeps its own task waiting)."""
    while writers := [t for t in board._writers.values() if not t.done()]:
        await asyncio.gather(*writers)


async def test_a_new_epochs_message_goes_out_at_once_and_its_picture_follows_by_an_edit():
    channel, pictures = FakeChannel(), HeldPictures()
    board = board_for(channel, picture=pictures)
    board.show_slot(GUILD, 0, 1, None)
    await writes_settle(board)
    assert pictures.asked == []  # epoch 0's message: no epoch has ended yet

    board.show_slot(GUILD, 1, 4, None)  # epoch 0 ended: the report is epoch 1's first message
    await writes_settle(board)
    first, report = channel.writes[0][1], channel.writes[1][1]
    assert channel.writes == [("send", first, "epoch 0 slot 1"), ("send", report, "epoch 1 slot 4")]
    assert pictures.asked == [(GUILD, 0)] and channel.files == []  # posted while the picture is still drawn

    pictures.let_go(0)
    await settle(board)
    assert channel.writes[-1] == ("edit", report, "epoch 1 slot 4")
    assert channel.files == [("edit", report, "participation.png", "votes up to epoch 0")]
    assert channel.images[-1] == "attachment://participation.png"

    # Later slots edit the embed and keep showing the picture, without uploading it again.
    board.show_slot(GUILD, 1, 5, None)
    await settle(board)
    assert channel.writes[-1] == ("edit", report, "epoch 1 slot 5") and len(channel.files) == 1
    assert channel.images[-1] == "attachment://participation.png"

    # The message deleted: the one posted in its place carries the picture again.
    channel.deleted.add(report)
    board.show_slot(GUILD, 1, 6, None)
    await settle(board)
    again = channel.writes[-1][1]
    assert channel.writes[-1] == ("send", again, "epoch 1 slot 6")
    assert channel.files[-1] == ("send", again, "participation.png", "votes up to epoch 0")


async def test_a_picture_ready_before_the_post_goes_out_with_it():
    channel, pictures = FakeChannel(), HeldPictures()
    board = board_for(channel, picture=pictures)
    pictures.let_go(1)
    pictures.let_go(2)
    board.show_slot(GUILD, 2, 11, None)
    await settle(board)
    channel.gate.clear()  # Discord is slow: an edit hangs...
    board.show_slot(GUILD, 2, 12, None)
    await asyncio.sleep(0)
    board.show_slot(GUILD, 3, 13, None)  # ...while epoch 2 ends and its picture is drawn
    while pictures.asked[-1] != (GUILD, 2) or board._states[GUILD].picture is None:
        await asyncio.sleep(0)
    channel.gate.set()
    await settle(board)
    sent = channel.writes[-1][1]
    assert channel.writes[-2:] == [("edit", channel.writes[0][1], "epoch 2 slot 12"), ("send", sent, "epoch 3 slot 13")]
    assert channel.files[-1] == ("send", sent, "participation.png", "votes up to epoch 2")
    assert [f for f in channel.files if f[1] == sent] == [channel.files[-1]]  # one upload, with the post


async def test_a_picture_of_an_epoch_gone_by_is_not_attached_to_the_next_ones_message():
    channel, pictures = FakeChannel(), HeldPictures()
    board = board_for(channel, picture=pictures)
    board.show_slot(GUILD, 1, 4, None)
    await writes_settle(board)
    board.show_slot(GUILD, 2, 8, None)  # epoch 1 ended before epoch 0's picture was drawn
    await writes_settle(board)
    pictures.let_go(0)
    pictures.let_go(1)
    await settle(board)
    epoch_2 = channel.writes[1][1]
    assert channel.files == [("edit", epoch_2, "participation.png", "votes up to epoch 1")]


@pytest.mark.parametrize("how", ["fails", "times out", "has nothing to show"])
async def test_a_failing_or_slow_picture_leaves_the_report_without_it(how, caplog):
    channel = FakeChannel()

    async def picture(guild_id, epoch):
        if how == "fails":
            raise RuntimeError("the chart worker crashed")
        if how == "has nothing to show":
            raise ChartEmptyInputError("no epoch has ended with active validators yet")
        await asyncio.Event().wait()  # never answers

    board = board_for(channel, picture=picture, picture_timeout_s=0.01)
    with caplog.at_level(logging.INFO, logger="cogs.epoch_board"):
        board.show_slot(GUILD, 1, 4, None)
        await settle(board)
        board.show_slot(GUILD, 1, 5, None)
        await settle(board)
    report = channel.writes[0][1]
    assert channel.writes == [("send", report, "epoch 1 slot 4"), ("edit", report, "epoch 1 slot 5")]
    assert channel.files == [] and channel.images == [None, None]
    (record,) = [r for r in caplog.records if "picture of epoch 0" in r.getMessage()]
    assert record.levelno == (logging.INFO if how == "has nothing to show" else logging.WARNING)
