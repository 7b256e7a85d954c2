"""The real bot on PostgreSQL (DATABASE_URL): it plays, restarts, and keeps everything in the database."""

import asyncpg

from tests.e2e.conftest import make_settings, running_bot
from tests.e2e.text import reply_text


async def test_the_bot_plays_and_restarts_on_postgres(sb, tmp_path, postgres_url):
    from sandbox.demo import populate_demo

    w = populate_demo(sb)
    settings = make_settings(tmp_path / "unused.sqlite3", database_url=postgres_url)
    async with running_bot(sb, settings) as bot:
        found = await sb.invoke(w.genesis, w.general, w.alice, "mine start", {})
        await found.wait_for(lambda h: "found!" in reply_text(h), timeout=20)
        paid = await sb.invoke(w.genesis, w.general, w.alice, "wallet pay", {"member": w.bob, "amount": 7})
        await paid.wait_for(lambda h: "Payment sent" in reply_text(h), timeout=10)
        node = bot.services.node
        txid = node.chain(w.genesis.id).mempool.entries()[0].txid
        tip, height = node.chain(w.genesis.id).state.tip_hash, node.chain(w.genesis.id).state.height

    connection = await asyncpg.connect(postgres_url)
    try:
        stored = await connection.fetchval("SELECT MAX(height) FROM blocks WHERE chain_id = $1", w.genesis.id)
        pooled = await connection.fetchval("SELECT COUNT(*) FROM mempool WHERE chain_id = $1", w.genesis.id)
    finally:
        await connection.close()
    assert stored == height >= 1 and pooled == 1
    assert not (tmp_path / "unused.sqlite3").exists()  # nothing went to the SQLite file

    async with running_bot(sb, settings) as bot:
        node = bot.services.node
        assert node.chain(w.genesis.id).state.tip_hash == tip
        assert txid in node.chain(w.genesis.id).mempool
        mined = await sb.invoke(w.genesis, w.general, w.bob, "mine start", {})  # and it carries on
        await mined.wait_for(lambda h: "found!" in reply_text(h), timeout=20)
