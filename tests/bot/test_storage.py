"""The bot's own tables and keys (bot/storage.py): the non-consensus server settings, which share
their row with the engine's chaos mode, and the epoch message."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest

from bot.storage import EpochMessageRepository, ServerSettingsRepository
from chain.adapters.storage import Store
from chain.params import REGTEST
from cogs.services import EpochMessage
from tests.chain.adapters.test_store import undo_migrations
from tests.chainkit import genesis_block


@pytest.fixture
async def store(database_target):
    s = await Store.open(database_target)
    await s.create_chain(1, REGTEST, genesis_block(REGTEST, 1), 0)
    yield s
    await s.close()


def stored_row(path, chain_id: int = 1) -> dict:
    with sqlite3.connect(path) as db:
        (settings,) = db.execute("SELECT settings FROM server_settings WHERE chain_id = ?", (chain_id,)).fetchone()
    return json.loads(settings)


async def test_a_database_written_before_the_move_keeps_its_chaos_mode_settings_and_epoch_message(tmp_path):
    """Before this code, one repository of chain/ wrote the whole server_settings JSON (chaos mode
    among the bot's keys) and the epoch message; the same rows must read the same through the new owners."""
    path = tmp_path / "old.sqlite3"
    store = await Store.open(path)
    await store.create_chain(1, REGTEST, genesis_block(REGTEST, 1), 0)
    await store.close()
    with sqlite3.connect(path) as db:  # as migration 11 left it, with a row of the old layout
        undo_migrations(db, 12)
        db.execute(
            "INSERT INTO server_settings (chain_id, settings) VALUES (?, ?)",
            (1, json.dumps({"chaos": True, "cooldown_s": 3, "session_s": 300}, sort_keys=True)),
        )
    store = await Store.open(path)  # the existing migrations bring it up to date
    with sqlite3.connect(path) as db:  # the epoch message, as the old repository wrote it
        db.execute(
            "INSERT INTO epoch_messages (chain_id, channel_id, message_id, epoch, updated_at) VALUES (1, 10, 100, 3, 5)"
        )
    settings, messages = ServerSettingsRepository(store.db), EpochMessageRepository(store.db)
    try:
        assert await store.chaos_mode.get_chaos_mode(1) is True
        assert await settings.get(1) == {"cooldown_s": 3, "session_s": 300}
        assert await messages.get_epoch_message(1) == EpochMessage(1, 10, 100, 3)
        # Each owner's write keeps the other's keys.
        assert await settings.update(1, {"cooldown_s": 0}) == {"cooldown_s": 0, "session_s": 300}
        assert await store.chaos_mode.set_chaos_mode(1, False) is True
        assert stored_row(path) == {"chaos": False, "cooldown_s": 0, "session_s": 300}
    finally:
        await store.close()


async def test_conflicting_settings_changes_and_chaos_toggles_at_once_keep_every_key(store):
    """Each write is one read-modify-write in Database.transaction(chain_id): fired at the same moment,
    none loses another's key (with the read outside the transaction, the last write would win)."""
    settings = ServerSettingsRepository(store.db)
    await asyncio.gather(
        settings.update(1, {"cooldown_s": 3}),
        store.chaos_mode.set_chaos_mode(1, True),
        settings.update(1, {"session_s": 60}),
        store.chaos_mode.set_chaos_mode(1, True),
        settings.update(1, {"cooldown_s": 3}),
    )
    assert await settings.get(1) == {"cooldown_s": 3, "session_s": 60}
    assert await store.chaos_mode.get_chaos_mode(1) is True
    row = await store.db.fetchone("SELECT settings FROM server_settings WHERE chain_id = ?", (1,))
    assert json.loads(row[0]) == {"chaos": True, "cooldown_s": 3, "session_s": 60}


async def test_the_bot_never_writes_the_engines_chaos_key(store):
    settings = ServerSettingsRepository(store.db)
    await store.chaos_mode.set_chaos_mode(1, True)
    with pytest.raises(ValueError, match="chaos mode"):
        await settings.update(1, {"chaos": False, "cooldown_s": 1})
    assert await settings.get(1) == {}  # refused whole: the cooldown was not stored either
    await settings.replace(1, {"session_s": 30})  # replace keeps chaos mode, as stored
    await settings.replace(1, {"cooldown_s": 0})
    assert await settings.get(1) == {"cooldown_s": 0}
    assert await store.chaos_mode.get_chaos_mode(1) is True
    assert await settings.get(2) == {}  # a server with no row: no settings, chaos off
    assert await store.chaos_mode.get_chaos_mode(2) is False


async def test_the_epoch_message_is_durable_replaced_and_gone_with_its_chain(tmp_path):
    path = tmp_path / "epoch-message.sqlite3"
    store = await Store.open(path)
    await store.create_chain(1, REGTEST, genesis_block(REGTEST, 1), 0)
    messages = EpochMessageRepository(store.db)
    assert await messages.get_epoch_message(1) is None
    await messages.set_epoch_message(EpochMessage(1, 10, 100, 3), now=5)
    await store.close()

    store = await Store.open(path)  # a restart finds the message to keep editing
    messages = EpochMessageRepository(store.db)
    assert await messages.get_epoch_message(1) == EpochMessage(1, 10, 100, 3)
    await messages.set_epoch_message(EpochMessage(1, 11, 101, 4), now=6)  # one message per chain: replaced
    assert await messages.get_epoch_message(1) == EpochMessage(1, 11, 101, 4)
    await store.delete_chain(1)  # a reset: the new chain posts its own message
    assert await messages.get_epoch_message(1) is None
    await store.close()


async def test_lesson_progress_completes_once_rolls_back_with_its_transaction_and_goes_with_the_chain(store):
    from bot.storage import LessonProgressRepository
    from chain.errors import LessonAlreadyCompletedError

    lessons = LessonProgressRepository(store.db)
    first = await lessons.start(1, "42", "retarget", now=10, height=3)
    assert (first.start_height, first.completed_at) == (3, None)
    assert (await lessons.start(1, "42", "retarget", now=20, height=9)).start_height == 3  # the first start stays

    # A completion whose transaction fails afterwards (the reward could not be pooled) is not kept.
    with pytest.raises(RuntimeError):
        async with store.db.transaction(1) as tx:
            await lessons.complete(tx, 1, "42", "retarget", 30, 3, b"\x01" * 32, 10)
            raise RuntimeError("the reward's insert failed")
    assert (await lessons.member_progress(1, "42"))["retarget"].completed_at is None

    async with store.db.transaction(1) as tx:
        await lessons.complete(tx, 1, "42", "retarget", 40, 3, b"\x02" * 32, 10)
    with pytest.raises(LessonAlreadyCompletedError) as again:
        async with store.db.transaction(1) as tx:
            await lessons.complete(tx, 1, "42", "retarget", 50, 3, b"\x03" * 32, 10)
    assert again.value.completed_at == 40
    done = (await lessons.member_progress(1, "42"))["retarget"]
    assert (done.completed_at, done.reward_txid, done.reward_points) == (40, b"\x02" * 32, 10)

    for member in range(45):  # a class: bounded pages, by member id
        await lessons.start(1, f"m{member:02d}", "mine", now=1, height=0)
    total, rows = await lessons.class_progress(1, limit=20, offset=40)
    assert total == 46 and sorted({r.member for r in rows}) == [f"m{i}" for i in range(39, 45)]  # "42" sorts first

    await store.delete_chain(1)  # a reset: lessons start over on the new chain
    assert await lessons.member_progress(1, "42") == {}
