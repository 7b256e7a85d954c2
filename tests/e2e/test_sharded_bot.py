"""One process of a sharded bot, in process against the sandbox: an AutoShardedBot on its own shard, serving
only that shard's servers, holding the shard's lease while it runs, syncing commands only when told to."""

from __future__ import annotations

import os

import pytest
from discord.ext import commands

from bot.app import ShardedPlaygroundBot
from bot.shard_lease import ShardLease, ShardLeaseHeldError
from bot.shard_scope import ShardScope, shard_of
from chain.adapters.node import Node
from chain.adapters.storage import Store
from chain.params import REGTEST
from tests.e2e.conftest import make_settings, running_bot
from tests.e2e.text import reply_text

# Real Discord server ids, one on each shard of 2 (tests/bot/test_shard_scope.py).
ON_SHARD = {0: 81384788765712384, 1: 336642139381301249}


def never_lost(reason: str) -> None:
    raise AssertionError(reason)


async def test_a_sharded_process_serves_only_its_shard_and_holds_its_lease(sb, tmp_path, postgres_url):
    from sandbox.demo import populate_demo

    w = populate_demo(sb)
    mine = shard_of(w.genesis.id, 2)
    elsewhere = ON_SHARD[1 - mine]
    # A chain another process serves, already in the shared database.
    store = await Store.open(postgres_url)
    node = Node(store, clock=lambda: 1_800_000_000.0, randomness=os.urandom, master_key=bytes(32))
    await node.create_chain(elsewhere, REGTEST, initial_bits=0x207FFFFF)
    await store.close()

    settings = make_settings(tmp_path / "unused.sqlite3", database_url=postgres_url, discord_token=sb.bot_token,
                             shard_count=2, shard_ids=str(mine))
    async with running_bot(sb, settings) as bot:
        assert isinstance(bot, ShardedPlaygroundBot) and isinstance(bot, commands.AutoShardedBot)
        assert (bot.shard_count, bot.shard_ids) == (2, [mine])
        found = await sb.invoke(w.genesis, w.general, w.alice, "mine start", {})
        await found.wait_for(lambda h: "found!" in reply_text(h), timeout=20)
        node = bot.services.node
        assert node.chain_ids() == [w.genesis.id] and not node.has_chain(elsewhere)
        held_by = f"shard {mine} of 2 is already served by playground p0 pid {os.getpid()}"
        with pytest.raises(ShardLeaseHeldError, match=held_by):
            await ShardLease.acquire(postgres_url, ShardScope(2, (mine,)), process_index=1, on_lost=never_lost,
                                     wait_s=0)
    lease = await ShardLease.acquire(postgres_url, ShardScope(2, (mine,)), process_index=1, on_lost=never_lost)
    await lease.release()  # the bot's close gave its lease back


async def test_a_process_told_not_to_sync_commands_does_not(sb, tmp_path, postgres_url):
    from sandbox.demo import populate_demo

    w = populate_demo(sb)
    settings = make_settings(tmp_path / "unused.sqlite3", database_url=postgres_url, discord_token=sb.bot_token,
                             shard_count=2, shard_ids=str(shard_of(w.genesis.id, 2)), sync_commands=False)
    async with running_bot(sb, settings):
        assert sb.commands.global_syncs == 0
        assert not sb.find_requests("PUT /applications/{application_id}/commands")
