"""/wallet faucet end to end: a member with no genesis wallet gets points, then pays or stakes."""

from __future__ import annotations

from chain.adapters.node import FAUCET_OWNER
from tests.e2e.test_staking import (
    pos,  # noqa: F401 - the proof-of-stake bot fixture
    text,
)
from tests.e2e.test_wallet import mine_one, no_cooldown
from tests.e2e.text import reply_text


async def test_carol_claims_on_a_pos_chain_then_stakes_it(pos):  # noqa: F811 - the fixture
    w, node = pos.w, pos.services.node
    await pos.start(wallets=[w.bob])  # carol had no wallet at genesis: no allocation
    guild_id = w.genesis.id
    carol = await node.address(guild_id, str(w.carol.id))
    assert node.account(guild_id, carol).balance == 0

    h, reply = await pos.run(w.carol, "wallet faucet")
    shown_text = text(reply)
    assert h.ephemeral and "Faucet claim" in shown_text and "+32 pts" in shown_text
    assert "next slot's block" in shown_text and "<t:" in shown_text
    h, reply = await pos.run(w.carol, "wallet history")
    assert "⏳ pending: +32 pts faucet claim" in text(reply)

    async def funded():
        return node.account(guild_id, carol).balance == 32
    await pos.step_until(funded, max_slots=4, what="carol's faucet points")
    h, reply = await pos.run(w.carol, "wallet history")
    assert "+32 pts faucet claim" in text(reply) and "pending" not in text(reply)

    # A second claim within the hour: refused, ephemeral, with Discord's relative time, nothing changed.
    pool = len(node.chain(guild_id).mempool)
    h, reply = await pos.run(w.carol, "wallet faucet")
    assert h.ephemeral and "next claim opens <t:" in text(reply) and ":R>" in text(reply)
    assert "Nothing was changed" in text(reply) and len(node.chain(guild_id).mempool) == pool

    _h, reply = await pos.run(w.carol, "stake deposit", {"amount": 32})
    assert "Stake deposited" in text(reply)
    verified = await node.verify(guild_id)
    assert verified.blocks >= 2


async def test_carol_claims_on_a_pow_chain_then_pays(playground):
    p, w = playground, playground.world
    await no_cooldown(p, w.genesis)
    node = p.bot.services.node
    await mine_one(p, w.alice)  # the chain exists; carol has never touched it
    guild_id = w.genesis.id

    claimed = await p.run(w.carol, "wallet faucet")
    assert claimed.ephemeral and "+32 pts" in reply_text(claimed) and "/mine start" in reply_text(claimed)
    await mine_one(p, w.alice)
    carol = await node.address(guild_id, str(w.carol.id))
    assert node.account(guild_id, carol).balance == 32

    paid = await p.run(w.carol, "wallet pay", {"member": w.bob, "amount": 30, "fee": 1})
    assert "Payment sent" in reply_text(paid)
    await mine_one(p, w.alice)
    assert node.account(guild_id, await node.address(guild_id, str(w.bob.id))).balance == 30

    history = await p.run(w.carol, "wallet history")
    assert "+32 pts faucet claim" in reply_text(history) and f"−30 pts to <@{w.bob.id}>" in reply_text(history)
    # The faucet is nobody's: not on the leaderboard, and named as itself where blocks show it.
    board = await p.run(w.alice, "leaderboard")
    assert "faucet" not in reply_text(board) and "100,000" not in reply_text(board)
    block = await p.run(w.alice, "chain block", {"query": "2"})
    assert "🚰 the faucet" in reply_text(block) and f"<@{FAUCET_OWNER}>" not in reply_text(block)
    assert (await node.verify(guild_id)).blocks == 4


async def test_a_chain_without_a_faucet_says_a_reset_makes_one(sb, tmp_path):
    from sandbox.demo import populate_demo
    from tests.e2e.conftest import Playground, make_settings, running_bot

    w = populate_demo(sb)
    settings = make_settings(tmp_path / "nofaucet.sqlite3", faucet_fund_points=0)  # as a chain from before
    async with running_bot(sb, settings) as bot:
        p = Playground(sb, w, bot, settings)
        refused = await p.run(w.carol, "wallet faucet")
        assert refused.ephemeral and "/playground reset" in reply_text(refused)
        assert len(bot.services.node.chain(w.genesis.id).mempool) == 0
