"""/chain chart's proof-of-stake kinds end to end, on the real bot with a fake slot clock: each
picture arrives as a PNG whose alt text states the chain's own numbers, and a chart with nothing
to show yet is refused ephemerally without costing the member's cooldown."""

from __future__ import annotations

import logging
import os

from chain.consensus.block import Block
from tests.e2e.test_charts import ROOT, png_size
from tests.e2e.test_explorer import error_text
from tests.e2e.test_staking import SLOTS_PER_EPOCH, activate, pos, slot_messages

__all__ = ["pos"]


async def chart(pos, member, kind: str):
    """The chart's handle and its final answer."""
    h = await pos.p.run(member, "chain chart", {"kind": kind})
    return h, await h.wait_response(30)


async def proposers(pos) -> list[int]:
    """Who proposed each block of the chain after genesis, read from the stored blocks."""
    guild_id = pos.w.genesis.id
    node = pos.services.node
    height = node.chain(guild_id).state.height
    blocks: list[Block] = [await node.store.blocks.block_at(guild_id, h) for h in range(1, height + 1)]
    return [b.seal.proposer_index for b in blocks if b.seal is not None]


async def test_the_stake_chart_compares_each_validators_stake_with_its_proposals(pos):
    w = pos.w
    await pos.start(wallets=[w.bob], auto_attest=True)
    await activate(pos, w.bob)  # two validators of 32 points each: half the stake each
    await pos.step(2 * SLOTS_PER_EPOCH)

    h, message = await chart(pos, w.bob, "stake")
    assert not h.ephemeral, h.describe()
    (attachment,) = message.attachments
    assert attachment.filename == "stake.png" and png_size(attachment.data) == (800, 450)
    alt = attachment.description
    drawn = await proposers(pos)
    assert alt.startswith("Grouped bar chart, per validator: share of the active stake now")
    assert f"share of the last {len(drawn)} proof-of-stake blocks it proposed" in alt
    # Each validator by index (and its owner's name, where the bot knows it: bob asked), with its share of
    # the stake and its count of proposals.
    for index in (0, 1):
        count = drawn.count(index)
        assert f" #{index}: 50% of the stake, {100 * count / len(drawn):.0f}% of the blocks ({count})" in alt, alt
    assert f"{w.bob.display_name} #1: " in alt
    assert message.embeds[0]["image"]["url"].endswith("stake.png")


async def test_the_participation_chart_shows_each_epochs_votes_and_checkpoints(pos):
    w = pos.w
    await pos.start(auto_attest=True)  # alice, the only validator, votes every epoch
    await pos.step(4 * SLOTS_PER_EPOCH + 1)

    guild_id = w.genesis.id
    records = await pos.services.node.store.blocks.epoch_records(guild_id, 100)
    assert [r.epoch for r in records] == [0, 1, 2, 3]
    _h, message = await chart(pos, w.alice, "participation")
    (attachment,) = message.attachments
    assert attachment.filename == "participation.png" and png_size(attachment.data) == (800, 450)
    alt = attachment.description
    assert alt.startswith("Line chart of the share of the active stake that voted for each epoch's checkpoint, "
                          "epochs 0 to 3 (4 epochs recorded)"), alt
    assert "The latest, epoch 3: 100.0% (32 pts of 32 pts). 4 of the 4 epochs reached two thirds." in alt
    justified = sorted({r.justified_epoch for r in records if r.justified_epoch is not None})
    finalized = sorted({r.finalized_epoch for r in records if r.finalized_epoch is not None})
    assert justified and finalized  # a single honest validator justifies and finalizes
    assert f"{len(justified)} checkpoints justified (latest: epoch {justified[-1]})" in alt
    assert f"latest: epoch {finalized[-1]})" in alt and "vertical lines mark the last" in alt


async def test_charts_with_nothing_to_show_are_refused_and_cost_no_cooldown(pos):
    w = pos.w
    await pos.start()
    # Epoch 0 has not ended: no participation recorded; no block proposed yet either.
    h, _ = await chart(pos, w.bob, "participation")
    assert "no epoch has ended with active validators yet" in error_text(h)
    h, _ = await chart(pos, w.bob, "stake")
    assert "no proof-of-stake block was proposed yet" in error_text(h)
    # The refusals cost no cooldown: once a block is in, bob gets his chart at once.
    await pos.step()
    h, message = await chart(pos, w.bob, "stake")
    assert not h.ephemeral and message.attachments, h.describe()


# --- the end-of-epoch report ----------------------------------------------------------------------


async def epoch_message(pos, epoch: int):
    """The epoch message of ``epoch`` in the playground channel, once posted."""
    return await pos.sb.wait_until(
        lambda: next((m for m in slot_messages(pos, pos.w.blocks)
                      if m.embeds[0]["title"].startswith(f"🧱 Epoch {epoch} ")), None),
        timeout=5, describe=f"epoch {epoch}'s message",
    )


async def test_the_new_epochs_message_reports_the_ended_epochs_votes_in_a_chart(pos):
    w, sb = pos.w, pos.sb
    await pos.start(auto_attest=True)
    await pos.run(w.alice, "playground setup", {"channel": w.blocks})
    await pos.step(SLOTS_PER_EPOCH)  # slot 4: epoch 0 ends with the block that starts epoch 1
    report = await epoch_message(pos, 1)

    def carried():
        message = sb.message(report.id)
        return message if message.attachments else None

    message = await sb.wait_until(carried, timeout=30, describe="the participation chart on epoch 1's message")
    (attachment,) = message.attachments
    assert attachment.filename == "participation.png" and png_size(attachment.data) == (800, 450)
    assert attachment.description.startswith(
        "Line chart of the share of the active stake that voted for each epoch's checkpoint, epochs 0 to 0"
    )
    assert "The latest, epoch 0: 100.0% (32 pts of 32 pts)" in attachment.description
    assert message.embeds[0]["image"]["url"].endswith("participation.png")
    # The next slot edits the message; the picture stays, uploaded once.
    await pos.step()
    await sb.wait_until(lambda: "slot 5" in sb.message(report.id).embeds[0]["title"], timeout=5, describe="slot 5")
    again = sb.message(report.id)
    assert [a.filename for a in again.attachments] == ["participation.png"]
    assert again.embeds[0]["image"]["url"].endswith("participation.png")
    assert sum(1 for r in again.revisions if r.attachments) >= 2 and len(slot_messages(pos, w.blocks)) == 2


async def test_a_failing_chart_never_holds_up_or_breaks_the_epoch_report(pos, monkeypatch, caplog):
    w, sb = pos.w, pos.sb
    renderer = pos.services.charts.renderer

    async def broken(spec, key=None):
        raise RuntimeError("the chart worker is gone")

    monkeypatch.setattr(renderer, "render", broken)
    await pos.start(auto_attest=True)
    await pos.run(w.alice, "playground setup", {"channel": w.blocks})
    with caplog.at_level(logging.WARNING, logger="cogs.epoch_board"):
        await pos.step(SLOTS_PER_EPOCH)
        report = await epoch_message(pos, 1)
        await sb.wait_until(
            lambda: any("picture of epoch 0 failed" in r.getMessage() for r in caplog.records), timeout=10,
            describe="the warning",
        )
    await pos.step()
    await sb.wait_until(lambda: "slot 5" in sb.message(report.id).embeds[0]["title"], timeout=5, describe="slot 5")
    message = sb.message(report.id)
    assert message.attachments == [] and "image" not in message.embeds[0]
    assert "🧱 Epoch 1 · slot 5" in message.embeds[0]["title"]


async def test_a_proof_of_work_chain_has_no_stake_chart_to_draw(playground):
    p, w = playground, playground.world
    await p.bot.services.ensure_chain(w.genesis.id)
    refusals = {
        "stake": "no active validator holds stake yet",
        "participation": "no epoch has ended with active validators yet",
    }
    for kind, refusal in refusals.items():
        h = await p.run(w.bob, "chain chart", {"kind": kind})
        await h.wait_response(30)
        assert refusal in error_text(h)


README_PARTICIPATION = ROOT / "docs" / "images" / "chart-participation.png"


async def test_the_readme_participation_chart_is_one_the_bot_drew(pos):
    """The README's participation chart is this test's output: alice votes every epoch, bob's equal
    validator does not (half the stake: nothing justifies), then bob turns auto-attest on and the
    checkpoints justify and finalize again.  ``WRITE_README_IMAGES=1`` stores it for the README."""
    w = pos.w
    await pos.start(wallets=[w.bob], auto_attest=True)
    await activate(pos, w.bob)
    await pos.step(4 * SLOTS_PER_EPOCH)
    _h, reply = await pos.run(w.bob, "stake auto", {"state": "on"})
    assert "Auto-attest is **on**" in reply.content
    await pos.step(4 * SLOTS_PER_EPOCH)
    records = await pos.services.node.store.blocks.epoch_records(w.genesis.id, 100)
    halves = [r.epoch for r in records if r.attesting_units * 2 == r.active_units]
    assert len(halves) >= 3 and not any(r.justified_epoch in halves for r in records)

    _h, message = await chart(pos, w.alice, "participation")
    (attachment,) = message.attachments
    assert png_size(attachment.data) == (800, 450)
    reached = sum(1 for r in records if r.attesting_units * 3 >= r.active_units * 2)
    assert f"{reached} of the {len(records)} epochs reached two thirds" in attachment.description
    if os.environ.get("WRITE_README_IMAGES") == "1":
        README_PARTICIPATION.write_bytes(attachment.data)
    stored = README_PARTICIPATION.read_bytes()
    assert png_size(stored) == (800, 450)
    # matplotlib writes the spec's alt text into the PNG (bot/charts.py): drawn by the bot, not by hand.
    assert b"Line chart of the share of the active stake that voted for each epoch" in stored
    assert "chart-participation.png" in (ROOT / "README.md").read_text()
