"""Messages a day in the playground channel at 30 s slots: one per slot before, one per epoch now.

Run: .venv/bin/python -m benchmarks.bench_epoch_messages [--slot-s 30] [--slots-per-epoch 8] [--slashings 3]

Drives the real ``cogs.epoch_board.EpochBoard`` (and the staking cog's ``finality_news``, which
decides what deserves a new message) through one day of slots, each with a block, two Attest presses
arriving together, a few slashings and one inactivity leak starting, against a fake channel that
counts posts and edits.  Baseline, counted in the same run: the slot driver before, one new message
per slot's block.

Target: at most 1/6 of the baseline's messages (one per 8-slot epoch is 1/8, plus the news).
Prints both counts, the ratio and the target; exits non-zero when the target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass

import discord

from chain.adapters.beacon_status import FinalityView, VoteProgress
from cogs.epoch_board import EpochBoard
from cogs.stake import finality_news

TARGET_RATIO = 1 / 6
DAY_S = 86_400
GUILD = 1


@dataclass
class Sent:
    id: int
    channel: CountingChannel


class CountingChannel:
    def __init__(self) -> None:
        self.id = 10
        self.posts = 0
        self.edits = 0

    def get_partial_message(self, message_id: int) -> CountingChannel:
        return self

    async def edit(self, **kwargs) -> None:
        await asyncio.sleep(0)  # an answer takes a turn of the loop: presses meanwhile coalesce
        self.edits += 1

    async def send(self, **kwargs) -> Sent:
        await asyncio.sleep(0)
        self.posts += 1
        return Sent(self.posts, self)


class MemoryStore:
    def __init__(self) -> None:
        self.record = None

    async def get_epoch_message(self, chain_id):
        return self.record

    async def set_epoch_message(self, message, now):
        self.record = message


async def run(slot_s: int, slots_per_epoch: int, slashings: int) -> tuple[int, int, int, int]:
    channel = CountingChannel()

    async def channel_of(guild_id):
        return channel

    def render(state):
        return discord.Embed(title=f"epoch {state.epoch} slot {state.slot}"), object()

    board = EpochBoard(store=MemoryStore(), channel_of=channel_of, render=render, clock=lambda: 0)
    slots = DAY_S // slot_s
    slash_at = {slots * (i + 1) // (slashings + 1) + 3 for i in range(slashings)}  # mid-epoch
    leak_at = slots // 2 + 5
    before = FinalityView(0, 0, False, 0)
    for slot in range(1, slots + 1):
        epoch = slot // slots_per_epoch
        after = FinalityView(epoch, max(0, epoch - 1), slot >= leak_at, before.slashed_count + (slot in slash_at))
        news, fresh = finality_news(before, after, slot)
        before = after
        board.show_slot(GUILD, epoch, slot, VoteProgress(epoch, 0, 64), news=news, fresh=fresh)
        # Two members press Attest at the same moment, while the slot's edit is on its way.
        board.show_votes(GUILD, VoteProgress(epoch, 32, 64), None)
        board.show_votes(GUILD, VoteProgress(epoch, 64, 64), None)
        while board.tasks:
            await asyncio.gather(*board.tasks)
    return slots, channel.posts, channel.edits, board.coalesced


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slot-s", type=int, default=30)
    parser.add_argument("--slots-per-epoch", type=int, default=8)
    parser.add_argument("--slashings", type=int, default=3)
    args = parser.parse_args()
    slots, posts, edits, coalesced = asyncio.run(run(args.slot_s, args.slots_per_epoch, args.slashings))
    ratio = posts / slots
    print(f"one day of {args.slot_s} s slots ({slots:,} slots, {args.slots_per_epoch} per epoch, "
          f"{args.slashings} slashings, 1 leak start, 2 presses per slot)")
    print(f"before: {slots:,} messages (one per slot)")
    print(f"after:  {posts:,} messages, {edits:,} edits, {coalesced:,} states coalesced (never sent)")
    print(f"ratio of messages: {ratio:.3f} (target <= {TARGET_RATIO:.3f})")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
