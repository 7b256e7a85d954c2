"""/learn end to end (issue 11, item 7): lessons checked on the real chain, the reward paid once."""

from __future__ import annotations

import asyncio
import re

from chain.adapters.node import FAUCET_OWNER
from tests.e2e.test_wallet import mine_one, no_cooldown
from tests.e2e.text import reply_text


async def faucet_rewards_to(p, guild_id, member) -> list:
    """Pooled faucet transfers to ``member`` (lesson rewards; nobody claimed from the faucet here)."""
    node = p.bot.services.node
    faucet = await node.address(guild_id, FAUCET_OWNER)
    to = await node.address(guild_id, str(member.id))
    return [e for e in node.chain(guild_id).mempool.pending_for(faucet) if e.tx.recipient == to]


async def test_mining_a_block_completes_the_lesson_and_pays_once(playground):
    p, w = playground, playground.world
    await no_cooldown(p, w.genesis)
    node, guild_id = p.bot.services.node, w.genesis.id

    steps = await p.run(w.bob, "learn start", {"lesson": "mine"})
    assert steps.ephemeral and "/mine start" in reply_text(steps) and "10 pts" in reply_text(steps)
    early = await p.run(w.bob, "learn check", {"lesson": "mine"})
    assert early.ephemeral and "not yet" in reply_text(early) and "no block" in reply_text(early)
    assert await faucet_rewards_to(p, guild_id, w.bob) == []

    await mine_one(p, w.bob)
    done = await p.run(w.bob, "learn check", {"lesson": "mine"})
    assert done.ephemeral and "done" in reply_text(done) and "+10 pts" in reply_text(done), reply_text(done)
    [reward] = await faucet_rewards_to(p, guild_id, w.bob)
    assert reward.tx.amount == 10

    again = await p.run(w.bob, "learn check", {"lesson": "mine"})
    assert again.ephemeral and "already completed" in reply_text(again) and "Nothing was changed" in reply_text(again)
    assert len(await faucet_rewards_to(p, guild_id, w.bob)) == 1

    # A real signed transfer: the next block confirms it, and the replay checks it again.
    bob = await node.address(guild_id, str(w.bob.id))
    before = node.account(guild_id, bob).balance
    await mine_one(p, w.alice)
    assert node.account(guild_id, bob).balance == before + 10
    assert (await node.verify(guild_id)).blocks == node.chain(guild_id).state.height + 1

    listed = await p.run(w.bob, "learn list")
    assert listed.ephemeral and "✅ **Mine a block**" in reply_text(listed)
    assert "⬜ **See a reorg**" in reply_text(listed) and "🔒" not in reply_text(listed)


async def test_two_checks_at_the_same_moment_pay_once(playground):
    p, w = playground, playground.world
    guild_id = w.genesis.id
    await mine_one(p, w.bob)
    handles = [
        await p.sb.invoke(w.genesis, w.general, w.bob, "learn check", {"lesson": "mine"}) for _ in range(4)
    ]
    await asyncio.gather(*(h.wait_ack(10) for h in handles))
    texts = [reply_text(h) for h in handles]
    assert all(h.ephemeral for h in handles)
    assert sum("+10 pts" in t for t in texts) == 1, texts
    assert sum("already completed" in t for t in texts) == 3, texts
    assert len(await faucet_rewards_to(p, guild_id, w.bob)) == 1
    [row] = [r for r in (await p.bot.services.lessons.member_progress(guild_id, str(w.bob.id))).values()]
    assert row.completed_at is not None and row.reward_points == 10 and row.reward_txid is not None


async def test_pay_and_wait_for_confirmations(playground):
    p, w = playground, playground.world
    await no_cooldown(p, w.genesis)
    await mine_one(p, w.bob)
    await p.run(w.bob, "wallet pay", {"member": w.carol, "amount": 5})
    await mine_one(p, w.alice)  # the payment's block: 1 confirmation
    short = await p.run(w.bob, "learn check", {"lesson": "confirm"})
    assert "1 of 3 confirmations" in reply_text(short), reply_text(short)
    await mine_one(p, w.alice)
    await mine_one(p, w.alice)
    done = await p.run(w.bob, "learn check", {"lesson": "confirm"})
    assert "3 confirmations" in reply_text(done) and "+10 pts" in reply_text(done), reply_text(done)


async def test_reorg_lessons_say_what_to_do_and_unknown_lessons_are_refused(playground):
    p, w = playground, playground.world
    guild_id = w.genesis.id
    reorg = await p.run(w.bob, "learn check", {"lesson": "reorg"})
    text = reply_text(reorg)
    assert reorg.ephemeral and "not yet" in text and "no reorg since you started" in text, text
    assert "/mine start on_block:" in text
    shown = await p.run(w.bob, "learn start", {"lesson": "finality"})
    assert shown.ephemeral and "hybrid" in reply_text(shown) and "20 pts" in reply_text(shown)
    finality = await p.run(w.bob, "learn check", {"lesson": "finality"})
    assert "not yet" in reply_text(finality) and "nothing is ever finalized" in reply_text(finality)

    modified = await p.sb.invoke(w.genesis, w.general, w.bob, "learn check", {"lesson": "nope"}, validate=False)
    await modified.wait_ack(5)
    assert modified.ephemeral and "❌" in reply_text(modified) and "Nothing was changed" in reply_text(modified)
    progress = await p.bot.services.lessons.member_progress(guild_id, str(w.bob.id))
    assert set(progress) == {"reorg", "finality"} and all(r.completed_at is None for r in progress.values())
    assert await faucet_rewards_to(p, guild_id, w.bob) == []


async def session_over(p, member) -> None:
    """The member's /mine session is gone from the cog (its last edit can land a moment before)."""
    mining = p.bot.get_cog("Mining")
    await p.sb.wait_until(lambda: (p.world.genesis.id, member.id) not in mining.sessions, timeout=5)


async def test_see_a_reorg_by_mining_a_competing_branch(playground):
    """Bob really causes a reorg with /mine start on_block: a block on the block below the tip is kept
    on a side branch, a second one on it makes his branch the main chain. Alice, whose block was taken
    off, passes too; Carol, who started but had no block in it, does not."""
    p, w = playground, playground.world
    await no_cooldown(p, w.genesis)
    node, guild_id = p.bot.services.node, w.genesis.id
    for _ in range(2):
        await mine_one(p, w.alice)
        await session_over(p, w.alice)
    for member in (w.alice, w.bob, w.carol):
        steps = await p.run(member, "learn start", {"lesson": "reorg"})
        assert steps.ephemeral and "on_block" in reply_text(steps) and "15 pts" in reply_text(steps)
    tip = node.chain(guild_id).state.height
    orphan_to_be = node.chain(guild_id).state.tip_hash

    side = await p.run(w.bob, "mine start", {"on_block": str(tip - 1)})
    await side.wait_for(lambda h: "Orphaned" in reply_text(h), timeout=20)
    await session_over(p, w.bob)
    [side_hash] = re.findall(r"/chain block ([0-9a-f]{16})", reply_text(side))
    assert node.chain(guild_id).state.height == tip and node.chain(guild_id).state.tip_hash == orphan_to_be
    early = await p.run(w.bob, "learn check", {"lesson": "reorg"})
    assert "not yet" in reply_text(early), reply_text(early)

    won = await p.run(w.bob, "mine start", {"on_block": side_hash})
    await won.wait_for(lambda h: "found!" in reply_text(h), timeout=20)
    await session_over(p, w.bob)
    assert "Reorg" in reply_text(won), reply_text(won)
    state = node.chain(guild_id).state
    assert state.height == tip + 1 and (await node.store.blocks.block_at(guild_id, tip)).hash() != orphan_to_be
    assert (await node.verify(guild_id)).blocks == state.height + 1

    done = await p.run(w.bob, "learn check", {"lesson": "reorg"})
    text = reply_text(done)
    assert done.ephemeral and "done" in text and "+15 pts" in text and "on the branch that took over" in text, text
    orphaned = await p.run(w.alice, "learn check", {"lesson": "reorg"})
    assert "+15 pts" in reply_text(orphaned) and "orphaned" in reply_text(orphaned), reply_text(orphaned)
    bystander = await p.run(w.carol, "learn check", {"lesson": "reorg"})
    assert "not yet" in reply_text(bystander) and "no block of yours" in reply_text(bystander)
    assert [r.tx.amount for r in await faucet_rewards_to(p, guild_id, w.bob)] == [15]
    again = await p.run(w.bob, "learn check", {"lesson": "reorg"})
    assert "already completed" in reply_text(again)


async def test_invalid_on_block_is_refused_privately_and_starts_nothing(playground):
    p, w = playground, playground.world
    await no_cooldown(p, w.genesis)
    node, guild_id = p.bot.services.node, w.genesis.id
    await mine_one(p, w.alice)
    await session_over(p, w.alice)
    mining = p.bot.get_cog("Mining")
    cases = {
        "zz-top": "neither a block height nor a hex hash",
        "99": "There is no block 99 yet",
        "abcdef12": "No block this chain keeps",
    }
    for value, words in cases.items():
        refused = await p.run(w.bob, "mine start", {"on_block": value})
        assert refused.ephemeral and words in reply_text(refused), reply_text(refused)
        assert (guild_id, w.bob.id) not in mining.sessions and (guild_id, w.bob.id) not in mining.cooldown_until
    # A main-chain block stored before undo records were kept: no branch can fork below it.
    tip_hash = node.chain(guild_id).state.tip_hash
    async with node.store.db.transaction(guild_id) as tx:
        await tx.execute("UPDATE block_tree SET undo = NULL WHERE chain_id = ? AND hash = ?", (guild_id, tip_hash))
    too_old = await p.run(w.bob, "mine start", {"on_block": "0"})
    text = reply_text(too_old)
    assert too_old.ephemeral and "can't mine on block 0" in text and "undo records" in text, text
    assert "Nothing was changed" in text and (guild_id, w.bob.id) not in mining.sessions
    assert node.chain(guild_id).state.height == 1


async def test_teachers_see_who_completed_what_and_members_are_refused(playground):
    p, w = playground, playground.world
    await mine_one(p, w.bob)
    await p.run(w.bob, "learn check", {"lesson": "mine"})
    await p.run(w.carol, "learn start", {"lesson": "retarget"})

    refused = await p.run(w.bob, "learn progress")
    assert refused.ephemeral and reply_text(refused) == "❌ You need the Manage Server permission for this."

    board = await p.run(w.alice, "learn progress")
    text = reply_text(board)
    assert board.ephemeral and f"<@{w.bob.id}> — 1 done · ✅mine" in text, text
    assert f"<@{w.carol.id}> — 0 done · ⬜mine ⏳retarget" in text and "page 1 of 1 · 2 member(s)" in text
    beyond = await p.run(w.alice, "learn progress", {"page": 2})
    assert beyond.ephemeral and "only 1 page" in reply_text(beyond)


async def test_watch_a_retarget_counts_from_the_start(playground):
    from tests.e2e.conftest import E2E_PARAMS

    p, w = playground, playground.world
    await no_cooldown(p, w.genesis)
    node, guild_id = p.bot.services.node, w.genesis.id
    await mine_one(p, w.bob)
    window = E2E_PARAMS.retarget_window_blocks
    await p.run(w.carol, "learn start", {"lesson": "retarget"})
    start = node.chain(guild_id).state.height
    while node.chain(guild_id).state.height < (start // window + 1) * window - 1:
        await mine_one(p, w.bob)
    waiting = await p.run(w.carol, "learn check", {"lesson": "retarget"})
    assert "not yet" in reply_text(waiting) and f"block {(start // window + 1) * window}" in reply_text(waiting)
    await mine_one(p, w.bob)  # the retarget block
    done = await p.run(w.carol, "learn check", {"lesson": "retarget"})
    assert "recomputed at block" in reply_text(done) and "+10 pts" in reply_text(done), reply_text(done)


async def test_a_chain_without_a_faucet_records_the_lesson_without_points(sb, tmp_path):
    from sandbox.demo import populate_demo
    from tests.e2e.conftest import Playground, make_settings, running_bot

    w = populate_demo(sb)
    settings = make_settings(tmp_path / "nofaucet.sqlite3", faucet_fund_points=0)  # as a chain from before
    async with running_bot(sb, settings) as bot:
        p = Playground(sb, w, bot, settings)
        await mine_one(p, w.bob)
        done = await p.run(w.bob, "learn check", {"lesson": "mine"})
        shown = reply_text(done)
        assert "done" in shown and "no faucet" in shown and "/playground reset" in shown, shown
        assert len(bot.services.node.chain(w.genesis.id).mempool) == 0
        row = (await bot.services.lessons.member_progress(w.genesis.id, str(w.bob.id)))["mine"]
        assert row.completed_at is not None and (row.reward_txid, row.reward_points) == (None, 0)
        again = await p.run(w.bob, "learn check", {"lesson": "mine"})
        assert "already completed" in reply_text(again)


async def test_an_auto_continue_session_on_a_block_grows_its_own_branch_until_it_wins(playground):
    """auto_continue with on_block: each block builds on the session's previous one (a side block
    included), so the branch overtakes the main chain without a second command."""
    p, w = playground, playground.world
    await no_cooldown(p, w.genesis)
    node, guild_id = p.bot.services.node, w.genesis.id
    for _ in range(2):
        await mine_one(p, w.alice)
        await session_over(p, w.alice)
    await p.run(w.bob, "learn start", {"lesson": "reorg"})
    tip = node.chain(guild_id).state.height
    bob = await node.address(guild_id, str(w.bob.id))
    await p.run(w.bob, "mine start", {"on_block": str(tip - 1), "auto_continue": True})
    # Bob's side block and the one on it are on the main chain once his branch took over.
    await p.sb.wait_until(lambda: node.chain(guild_id).blocks_mined[bob] >= 2, timeout=20)
    await p.run(w.bob, "mine stop")
    await session_over(p, w.bob)
    assert await node.store.reorg_log.last_seq(guild_id) >= 1
    done = await p.run(w.bob, "learn check", {"lesson": "reorg"})
    assert "+15 pts" in reply_text(done) and "on the branch that took over" in reply_text(done), reply_text(done)
