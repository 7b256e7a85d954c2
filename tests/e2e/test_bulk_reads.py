"""/chain verify and /chain export never hurt other servers: snapshot reads, off the loop, bounded.

Each test pauses or watches the read at a block it deserialises (``Block.deserialize``
is patched), so what happens meanwhile is decided by events, never by timing.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading

import discord

from chain.consensus.block import Block
from tests.e2e.test_explorer import answer, error_text, mine_blocks, state

# How long a paused read may wait for the test to let it go: a guard against a hang, never a measure.
GUARD_S = 20


def patch_deserialize(monkeypatch, hook) -> None:
    original = Block.deserialize.__func__

    def deserialize(cls, data: bytes) -> Block:
        hook()
        return original(cls, data)

    monkeypatch.setattr(Block, "deserialize", classmethod(deserialize))


# --- /chain verify ------------------------------------------------------------


async def test_verify_reads_a_snapshot_while_other_writes_go_on(playground, monkeypatch):
    p, w = playground, playground.world
    await mine_blocks(p, 4)
    services = p.bot.services
    store = services.node.store
    await services.ensure_chain(w.fork.id)
    loop = asyncio.get_running_loop()
    loop_thread = threading.get_ident()
    height_before = state(p).height
    seen: list[str] = []
    reads = 0

    async def writes_meanwhile() -> None:
        # Another server's write, then a block on the very chain being verified.
        await services.server_settings_store.replace(w.fork.id, {"cooldown_s": 3})
        await mine_blocks(p, 1)

    def hook() -> None:
        nonlocal reads
        reads += 1
        if reads != 2 or seen:
            return
        if threading.get_ident() == loop_thread:
            # Reading on the event loop: a write could not even start until the read ends.
            seen.append(f"read on the event loop, store lock held: {store.db.lock.locked()}")
            return
        # The verify's read waits here until the writes are committed: were they queued
        # behind it (the store's lock), this would never return.
        asyncio.run_coroutine_threadsafe(writes_meanwhile(), loop).result(GUARD_S)
        seen.append("written while the verify was reading")

    patch_deserialize(monkeypatch, hook)
    h = await answer(p, w.carol, "chain verify", timeout=GUARD_S)
    assert seen == ["written while the verify was reading"]
    embed = h.embeds[0]
    assert embed["title"] == "✅ Chain verified", embed
    # The replay saw the chain as it was when its read began: blocks and balances of one instant.
    assert {f["name"]: f["value"] for f in embed["fields"]}["Blocks"] == str(height_before + 1)
    assert state(p).height == height_before + 1
    assert (await services.server_settings_store.get(w.fork.id)) == {"cooldown_s": 3}


# --- /chain export ------------------------------------------------------------


async def test_export_is_built_off_the_event_loop(playground, monkeypatch):
    p, w = playground, playground.world
    await mine_blocks(p, 3)
    loop_thread = threading.get_ident()
    threads: list[int] = []
    patch_deserialize(monkeypatch, lambda: threads.append(threading.get_ident()))

    h = await answer(p, w.bob, "chain export", timeout=GUARD_S)
    (attachment,) = h.original.attachments
    assert json.loads(attachment.data)["height"] == 3
    assert threads and loop_thread not in threads


async def test_export_cooldown_per_member(playground):
    p, w = playground, playground.world
    await mine_blocks(p, 1)
    # The same member, twice at the same moment: exactly one export is built.
    first, second = await asyncio.gather(
        p.sb.invoke(w.genesis, w.general, w.bob, "chain export"),
        p.sb.invoke(w.genesis, w.general, w.bob, "chain export"),
    )
    await asyncio.gather(first.wait_response(GUARD_S), second.wait_response(GUARD_S))
    files = [h for h in (first, second) if h.original.attachments]
    refused = [h for h in (first, second) if not h.original.attachments]
    assert len(files) == 1 and len(refused) == 1, [h.describe() for h in (first, second)]
    text = error_text(refused[0])
    assert re.search(r"export this chain again in (\d+ s|1 min)\b", text), text
    # Another member is not held back by bob's cooldown.
    other = await answer(p, w.carol, "chain export", timeout=GUARD_S)
    assert other.original.attachments


async def test_a_second_export_of_a_server_shares_the_one_being_built(playground, monkeypatch):
    p, w = playground, playground.world
    await mine_blocks(p, 2)
    loop_thread = threading.get_ident()
    started, release = threading.Event(), threading.Event()
    builds = 0

    def hook() -> None:
        nonlocal builds
        if threading.get_ident() == loop_thread:
            return
        builds += 1
        started.set()
        release.wait(GUARD_S)

    patch_deserialize(monkeypatch, hook)
    try:
        first = await p.run(w.bob, "chain export")
        assert await asyncio.to_thread(started.wait, GUARD_S), "the export was not built in a worker thread"
        # bob's export is being built (and held there): carol asks for the same chain.
        second = await p.run(w.carol, "chain export")
        assert second.deferred
    finally:
        release.set()
    one, two = await first.wait_response(GUARD_S), await second.wait_response(GUARD_S)
    assert builds == 1
    assert json.loads(one.attachments[0].data)["height"] == 2
    # Pointed at the file already posted, not sent a second upload of it.
    assert not two.attachments
    description = two.embeds[0]["description"]
    assert "already being built" in description and f"/{one.id}" in description, description


async def test_an_export_over_the_upload_limit_is_refused(playground, monkeypatch):
    p, w = playground, playground.world
    await mine_blocks(p, 2)
    monkeypatch.setattr(discord.Guild, "filesize_limit", property(lambda guild: 1_000))
    h = await answer(p, w.bob, "chain export", timeout=GUARD_S)
    # After the public "thinking…", the refusal takes its place (as /chain verify's failures do).
    assert not h.original.attachments
    text = h.embeds[0]["description"]
    assert (
        text.startswith("❌")
        and "over this server's upload limit of 1.0 KB" in text
        and "python -m chain export" in text
    ), text


async def test_the_command_turn_is_free_while_an_export_is_built(playground, monkeypatch):
    p, w = playground, playground.world
    await mine_blocks(p, 1)
    p.bot.tree._slots = asyncio.Semaphore(1)  # one turn: whoever holds it through the build blocks everyone
    loop_thread = threading.get_ident()
    started, release = threading.Event(), threading.Event()

    def hook() -> None:
        if threading.get_ident() != loop_thread:
            started.set()
            release.wait(GUARD_S)

    patch_deserialize(monkeypatch, hook)
    try:
        export = await p.run(w.bob, "chain export")
        assert await asyncio.to_thread(started.wait, GUARD_S)
        # Another server's command, answered while the export is still being built.
        tip = await p.run(w.dave_in_fork, "chain tip", guild=w.fork)
        await tip.wait_response(GUARD_S)
        assert tip.embeds[0]["title"].startswith("Tip: block")
        assert export.original.loading
    finally:
        release.set()
    await export.wait_response(GUARD_S)
    assert export.original.attachments
