"""One message per epoch, edited as its slots pass, end to end through the sandbox.

The slot driver used to post every slot's block as a new message (2,880 a day at 30 s slots);
now the playground channel gets one message per epoch that follows the slots, and a new one only
when the epoch changes, its message is gone, or something members must see happens.
"""

from __future__ import annotations

import time

import cogs.stake as staking_cog
import tests.e2e.conftest as e2e_conftest
from sandbox.demo import populate_demo
from tests.e2e.test_staking import (  # pos: the real bot on a fake slot clock
    FakeClock,
    bot_with_clock,
    pos,
    shown_slot,
    slot_message,
    slot_messages,
    text,
)

__all__ = ["pos"]

PER_EPOCH = 8  # epoch 0 is slots 1..7 (slot 0 is genesis), epoch 1 starts at slot 8


async def shows(pos, slot: int):
    channel = pos.w.blocks
    return await pos.sb.wait_until(
        lambda: slot_message(pos, channel, slot), timeout=5,
        describe=lambda: f"slot {slot} on the epoch message; titles: "
        f"{[m.embeds[0]['title'] for m in slot_messages(pos, channel)]}",
    )


async def test_one_message_per_epoch_edited_as_its_slots_pass(pos):
    w, sb = pos.w, pos.sb
    await pos.start(slots_per_epoch=PER_EPOCH)
    await pos.run(w.alice, "playground setup", {"channel": w.blocks})
    for slot in range(1, PER_EPOCH):
        await pos.step()
        await shows(pos, slot)

    # Seven slots of epoch 0: one message, posted once and edited for each slot after the first.
    [board] = slot_messages(pos, w.blocks)
    assert [shown_slot(r.embeds) for r in board.revisions] == list(range(1, PER_EPOCH))
    assert len(board.edits) == PER_EPOCH - 2
    assert "🧱 Epoch 0 · slot 7 — block 7" in text(board) and "Blocks this epoch\n7" in text(board)

    # A new epoch: a new message; the old one keeps its last slot and is edited no more.
    await pos.step()
    second = await shows(pos, PER_EPOCH)
    assert second.id != board.id and "🧱 Epoch 1 · slot 8" in text(second)
    await pos.step()
    await shows(pos, PER_EPOCH + 1)
    assert [m.id for m in slot_messages(pos, w.blocks)] == [board.id, second.id]
    assert len(sb.message(board.id).revisions) == PER_EPOCH - 1

    # Attest on the older epoch's message: its block is settled, so the vote goes to the newest head,
    # and the count shows on the running epoch's message.
    click = await sb.click(board, member=w.alice, label="Attest")
    reply = await click.wait_response()
    assert reply.ephemeral and "Vote signed" in text(reply) and f"voted at slot {PER_EPOCH + 1}" in text(reply)
    assert "your vote went to the newest block" in text(reply)
    await sb.wait_until(lambda: "(100% of it" in text(sb.message(second.id)), timeout=5, describe="the vote count")
    assert len(sb.message(board.id).revisions) == PER_EPOCH - 1
    assert pos.services.node.chain(w.genesis.id).state.beacon.registry  # the chain is untouched otherwise


async def test_a_restart_keeps_editing_the_same_message(sb, tmp_path, monkeypatch):
    monkeypatch.setattr(staking_cog, "SLOT_DRIVER_INTERVAL_S", 0.02)
    w = populate_demo(sb)
    settings = e2e_conftest.make_settings(tmp_path / "board.sqlite3")
    clock = FakeClock(int(time.time()))
    async with bot_with_clock(sb, w, settings, clock, monkeypatch) as pos:
        await pos.start(slots_per_epoch=PER_EPOCH)
        await pos.run(w.alice, "playground setup", {"channel": w.blocks})
        await pos.step(2)
        board = await shows(pos, 2)

    async with bot_with_clock(sb, w, settings, clock, monkeypatch) as pos:
        record = await pos.services.epoch_messages.get_epoch_message(w.genesis.id)
        assert (record.channel_id, record.message_id, record.epoch) == (w.blocks.id, board.id, 0)
        # The button works in the new process (whether or not its driver ran a slot yet).
        click = await sb.click(board, member=w.alice, label="Attest")
        reply = await click.wait_response()
        assert reply.ephemeral and "Vote signed" in text(reply)
        await sb.wait_until(lambda: "(100% of it" in text(sb.message(board.id)), timeout=5, describe="the vote count")
        for slot in (3, 4):
            await pos.step()
            await shows(pos, slot)
        assert [m.id for m in slot_messages(pos, w.blocks)] == [board.id]
        shown_slots = [shown_slot(r.embeds) for r in sb.message(board.id).revisions]
        assert shown_slots[:2] == [1, 2] and shown_slots[-2:] == [3, 4] and shown_slots == sorted(shown_slots)


async def test_a_deleted_epoch_message_is_posted_again(pos):
    w, sb = pos.w, pos.sb
    await pos.start(slots_per_epoch=PER_EPOCH)
    await pos.run(w.alice, "playground setup", {"channel": w.blocks})
    await pos.step()
    board = await shows(pos, 1)
    sb.delete_message(sb.message(board.id))  # a member (or a moderator) deleted it

    await pos.step()
    again = await shows(pos, 2)  # the edit met 404 Unknown Message: a new message, same epoch
    assert again.id != board.id and "🧱 Epoch 0 · slot 2" in text(again)
    await pos.step()
    await shows(pos, 3)
    assert [m.id for m in slot_messages(pos, w.blocks)] == [again.id]  # and that one is edited from then on
    assert (await pos.services.epoch_messages.get_epoch_message(w.genesis.id)).message_id == again.id
    click = await sb.click(again, member=w.alice, label="Attest")
    assert "Vote signed" in text(await click.wait_response())
