"""Two processes on one PostgreSQL database: each notifier delivers only its own servers' outbox."""

from __future__ import annotations

from bot.notifier import WebhookNotifier
from bot.shard_scope import ShardScope
from bot.storage import OutboxRepository
from chain.adapters.storage import Store
from chain.consensus.transition import process_block
from chain.params import REGTEST
from sandbox import Sandbox, point_discord_py_at
from tests.chainkit import genesis_block, key, mine, new_chain

MASTER = b"\x01" * 32
# Real Discord server ids on shard 0 and shard 1 of 2 (tests/bot/test_shard_scope.py).
ON_SHARD_0, ON_SHARD_1 = 81384788765712384, 336642139381301249


async def announce_blocks(store: Store, chain_id: int, blocks: int) -> None:
    await store.create_chain(chain_id, REGTEST, genesis_block(REGTEST, chain_id), 0)
    state = new_chain(REGTEST, chain_id=chain_id)
    for _ in range(blocks):
        block = mine(state, key("miner").public_key, apply=False)
        effects = process_block(state, block, block.header.time)
        await store.append_block(chain_id, block, effects, [], 0)
        state.apply(block, effects)


def notifier_for(store: Store, scope: ShardScope) -> WebhookNotifier:
    async def names(_chain_id):
        return {}

    async def alert(*_args):
        return None

    return WebhookNotifier(store, MASTER, names=names, alert=alert, clock=lambda: 1_800_000_000.0,
                           randomness=lambda n: b"\x02" * n, owns=scope.owns)


async def test_each_process_delivers_only_the_outbox_of_the_servers_it_owns(postgres_url):
    async with Sandbox(host="127.0.0.1", port=0) as sb:
        target = point_discord_py_at(sb.api_base, sb.gateway_url)
        guild = sb.add_guild("Shards")
        channels = {ON_SHARD_0: sb.add_channel(guild, "zero"), ON_SHARD_1: sb.add_channel(guild, "one")}
        first, second = await Store.open(postgres_url), await Store.open(postgres_url)  # two processes' pools
        try:
            for chain_id, channel in channels.items():
                await announce_blocks(first, chain_id, 2)
                webhook = sb.create_webhook(channel, "Consensus Playground")
                await notifier_for(first, ShardScope.everything()).register(chain_id, channel.id, webhook.id,
                                                                            webhook.url)
            outbox = OutboxRepository(first.db)
            backlog = await outbox.backlog()
            assert backlog[ON_SHARD_0] > 0 and backlog[ON_SHARD_1] > 0

            zero = notifier_for(first, ShardScope(2, (0,)))
            await zero.start()
            try:
                assert await zero.flush(10)
            finally:
                await zero.close()
            assert sb.webhook_feed(channels[ON_SHARD_0]) and not sb.webhook_feed(channels[ON_SHARD_1])
            assert set(await outbox.backlog()) == {ON_SHARD_1}  # the other shard's events are still waiting

            one = notifier_for(second, ShardScope(2, (1,)))
            await one.start()
            try:
                assert await one.flush(10)
            finally:
                await one.close()
            assert await outbox.backlog() == {}
            posted = {c: len([e for m in sb.webhook_feed(ch) for e in m.embeds]) for c, ch in channels.items()}
            assert posted == backlog  # every event once, by its own server's process
        finally:
            await first.close()
            await second.close()
            target.restore()
