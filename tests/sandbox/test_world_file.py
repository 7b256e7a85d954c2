"""The sandbox world saved to a file and found again by the next sandbox (issue 9, item 15)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import aiohttp
import pytest

from sandbox import Sandbox
from sandbox.demo import populate_demo
from sandbox.models import KIND_BOT, KIND_WEBHOOK
from sandbox.records import UploadedFile
from sandbox.world_file import MESSAGES_KEPT_PER_CHANNEL, WorldFileError, read_world, snapshot, write_world

BUTTONS = [{"type": 1, "components": [{"type": 2, "style": 1, "label": "Again", "custom_id": "pg:again"}]}]


async def build_world(path: Path) -> dict:
    """A world with one of everything that must survive, saved to ``path``; returns its ids."""
    async with Sandbox(world_path=path) as sb:
        w = populate_demo(sb)
        sb.set_channel_overwrite(w.blocks, w.bob, deny={"send_messages": True})
        msg = sb.create_message(
            w.general, sb.bot_user, KIND_BOT, {"content": "pick one", "components": BUTTONS},
            [UploadedFile("files[0]", "chain.json", None, b'{"height": 1}')], source="bot",
        )
        hook = sb.create_webhook(w.blocks, "Playground announcements")
        posted = sb.create_message(w.blocks, hook.author_for("Announcer"), KIND_WEBHOOK, {"content": "block 1"}, [],
                                   source="webhook", webhook_id=hook.id)
        sb.commands.bulk_overwrite(None, [{"name": "mine", "description": "Mine", "type": 1}])
        last_id = sb.new_id()
        return {
            "guilds": {g.name: g.id for g in sb.guilds.values()},
            "alice": w.alice.id, "bob": w.bob.id, "bot": sb.bot_user.id, "application": sb.application_id,
            "message": msg.id, "webhook": (hook.id, hook.token), "posted": posted.id,
            "command": sb.commands.global_commands[0]["id"], "last_id": last_id,
            "alice_roles": list(w.alice.role_ids), "blocks": w.blocks.id,
        }


async def test_a_saved_world_comes_back_whole_in_a_new_sandbox(tmp_path):
    path = tmp_path / "world.json"
    before = await build_world(path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"  # it holds webhook tokens

    async with Sandbox(world_path=path) as sb:
        assert sb.world_restored
        assert {g.name: g.id for g in sb.guilds.values()} == before["guilds"]
        assert sb.bot_user.id == sb.application_id == before["bot"] == before["application"]
        genesis = sb.guild("Genesis Guild")
        alice = sb.member(genesis, "alice")
        assert alice.id == before["alice"] and alice.role_ids == before["alice_roles"]
        assert sb.member("Fork Town", "bob").user is sb.member(genesis, "bob").user  # one user in two servers
        assert alice.base_permissions() & (1 << 5)  # MANAGE_GUILD, from her role
        blocks = sb.channel(genesis, "blocks")
        assert blocks.id == before["blocks"] and blocks.overwrites[before["bob"]].deny
        assert sb.bot_member(genesis).roles[0].managed

        msg = sb.message(before["message"])
        assert msg.content == "pick one" and msg.find_component(custom_id="pg:again")["label"] == "Again"
        [attachment] = msg.attachments
        assert attachment.data == b'{"height": 1}' and attachment.url.startswith(sb.base_url)
        async with aiohttp.ClientSession() as http, http.get(attachment.url) as resp:
            assert await resp.read() == b'{"height": 1}'

        hook_id, token = before["webhook"]
        hook = sb.webhooks[hook_id]
        assert hook.token == token and hook.channel is blocks and hook.creator is sb.bot_user
        assert [m.id for m in sb.webhook_feed(blocks)] == [before["posted"]]
        assert sb.commands.global_commands[0]["id"] == before["command"]
        assert sb.commands.global_syncs == 0  # the bot's own sync is still awaited after a restart

        # New ids come after every old one, even with the clock turned back.
        assert sb.new_id() > before["last_id"]


async def test_ids_continue_after_the_saved_position_even_if_the_clock_went_back(tmp_path, monkeypatch):
    path = tmp_path / "world.json"
    before = await build_world(path)
    import types

    import sandbox.ids

    # 2017: before any saved id.
    monkeypatch.setattr(sandbox.ids, "time", types.SimpleNamespace(time=lambda: 1_500_000_000.0))
    sb = Sandbox(world_path=path)
    assert sb.new_id() > before["last_id"]


async def test_without_a_path_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    async with Sandbox() as sb:
        populate_demo(sb)
        await asyncio.sleep(0)
        assert not sb.world_restored
    assert list(tmp_path.iterdir()) == []


async def test_changes_are_saved_soon_without_waiting_for_close(tmp_path):
    path = tmp_path / "world.json"
    async with Sandbox(world_path=path) as sb:
        w = populate_demo(sb)
        await sb.send_message(w.genesis, w.general, w.alice, "hello")
        saved = await sb.wait_until(lambda: path.exists() and "hello" in path.read_text(), timeout=5,
                                    describe="the world file to hold the new message")
        assert saved


async def test_only_the_newest_messages_of_a_channel_are_kept(tmp_path):
    path = tmp_path / "world.json"
    async with Sandbox(world_path=path) as sb:
        w = populate_demo(sb)
        for i in range(MESSAGES_KEPT_PER_CHANNEL + 5):
            await sb.send_message(w.genesis, w.general, w.alice, f"message {i}")
        gone = await sb.send_message(w.genesis, w.general, w.alice, "deleted")
        sb.delete_message(gone)
    async with Sandbox(world_path=path) as sb:
        kept = [m.content for m in sb.channel_messages(sb.channel("Genesis Guild", "general"))]
    assert len(kept) == MESSAGES_KEPT_PER_CHANNEL
    assert kept[0] == "message 5" and kept[-1] == f"message {MESSAGES_KEPT_PER_CHANNEL + 4}"


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ('{"format": "consensus-playground-sandbox-world", "versi', "is not valid JSON (line 1, column"),
        ("", "is not valid JSON"),
        ('{"hello": 1}', "is not a sandbox world file"),
        ('{"format": "consensus-playground-sandbox-world", "version": 99}', "has format version 99"),
        ('{"format": "consensus-playground-sandbox-world", "version": 1, "ids": {}}', "is incomplete or damaged"),
        (b"\xff\xfe not text", "cannot be read"),
    ],
)
def test_a_damaged_or_foreign_file_is_refused_in_one_line(tmp_path, content, says):
    path = tmp_path / "world.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(WorldFileError) as caught:
        Sandbox(world_path=path)
    message = str(caught.value)
    assert says in message and str(path) in message and "Move or delete it" in message
    assert "\n" not in message
    # Nothing chained for a traceback to show.
    assert caught.value.__cause__ is None and (caught.value.__context__ is None or caught.value.__suppress_context__)


async def test_a_save_that_fails_midway_leaves_the_previous_world_whole(tmp_path, monkeypatch):
    path = tmp_path / "world.json"
    before = await build_world(path)
    good = path.read_text()
    async with Sandbox() as other:
        other.add_guild("Newer Town")
        text = snapshot(other)

    def killed(src, dst):  # the process dies after writing the new file, before the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        write_world(path, text)
    assert path.read_text() == good
    assert [p.name for p in tmp_path.iterdir()] == ["world.json"]  # no temporary file left behind
    # A kill -9 mid-write leaves its temporary file: the next start clears it away.
    (tmp_path / ".world.json.k1ll3d.tmp").write_text('{"format": "consensus-pl')
    Sandbox(world_path=path)
    assert [p.name for p in tmp_path.iterdir()] == ["world.json"]
    assert read_world(path)["guilds"][0]["id"] == before["guilds"]["Genesis Guild"]
    json.loads(good)


async def test_entering_a_started_sandbox_keeps_its_one_server():
    """bot/__main__ starts the sandbox (to report a taken port in one line), then enters it with
    ``async with``: that must not bind a second server (on a fixed port it failed to start)."""
    sb = Sandbox(port=0)
    await sb.start()
    try:
        port = sb.port
        async with sb as entered:
            assert entered is sb and sb.port == port
    finally:
        await sb.close()


async def test_a_slow_older_save_never_lands_after_the_final_one(tmp_path):
    """A periodic save still encoding on a worker thread when close() saves the final world:
    whichever write reaches the disk last, the file ends with the newest world."""
    from sandbox.world_file import WorldWriter

    path = tmp_path / "world.json"
    async with Sandbox() as sb:
        w = populate_demo(sb)
        writer = WorldWriter(path)
        older = writer.take(sb)  # the periodic save's snapshot, taken first...
        await sb.send_message(w.genesis, w.general, w.alice, "the last word")
        newer = writer.take(sb)
        assert writer.write(*newer)  # ...but the final save gets to the disk first
        assert not writer.write(*older)
    assert "the last word" in path.read_text()


async def test_a_message_edited_after_a_save_is_saved_edited(tmp_path):
    """Saves reuse each unchanged message's JSON: an edit (a new revision) must be encoded again."""
    path = tmp_path / "world.json"
    async with Sandbox(world_path=path) as sb:
        w = populate_demo(sb)
        msg = sb.create_message(w.general, sb.bot_user, KIND_BOT, {"content": "Mining block 1", "components": BUTTONS},
                                [], source="bot")
        sb.save_world()
        sb.edit_message(msg, {"content": "Block 1 found!", "components": []}, [], source="bot")
        sb.save_world()
        gone = await sb.send_message(w.genesis, w.general, w.bob, "oops")
        sb.save_world()
        sb.delete_message(gone)
    async with Sandbox(world_path=path) as sb:
        restored = sb.message(msg.id)
        assert restored.content == "Block 1 found!" and restored.components == [] and restored.edited_at
        assert gone.id not in sb.messages
