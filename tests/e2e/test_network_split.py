"""/split end to end: a network split played through to its summary in the sandbox.

alice (admin, role @north) is group A; bob and carol are group B. Each group mines its own branch;
alice pays bob on her side only, carol double-spends (bob on her side, alice through the mempool).
Group B finds more blocks: at the heal its branch wins, alice's block is orphaned, her side-only
payment returns to the mempool and carol's mempool payment, confirmed only on side A, is reversed.
"""

from __future__ import annotations

import asyncio
import logging

from bot.storage import OutboxRepository
from chain.events import ChainReorganized, PaymentReturnedToMempool, PaymentReversed
from tests.e2e.test_wallet import mine_one, no_cooldown
from tests.e2e.text import reply_text, shown

log = logging.getLogger(__name__)


async def mine_on_side(p, member) -> str:
    h = await p.run(member, "mine start")
    await h.wait_for(lambda h: "found!" in reply_text(h), timeout=20)
    return reply_text(h)


async def test_a_split_plays_through_to_its_summary(playground):
    p, w = playground, playground.world
    guild_id = w.genesis.id
    node = p.bot.services.node
    await no_cooldown(p, w.genesis)
    north = p.sb.add_role(w.genesis, "north")
    p.sb.set_member_roles(w.alice, [*w.alice.role_ids, north.id])
    await mine_one(p, w.alice)
    await mine_one(p, w.carol)
    base = node.chain(guild_id).state.height

    refused = await p.run(w.bob, "split start", {"role": north, "minutes": 5})
    assert refused.ephemeral and "Manage Server" in reply_text(refused)
    started = await p.run(w.alice, "split start", {"role": north, "minutes": 5})
    assert "The network is split" in reply_text(started) and f"start at block {base}" in reply_text(started)
    again = await p.run(w.alice, "split start", {"role": north, "minutes": 5})
    assert again.ephemeral and "already running" in reply_text(again)

    paid = await p.run(w.alice, "split pay", {"member": w.bob, "amount": 5})
    assert "Paid on group A's side only" in reply_text(paid)
    paid = await p.run(w.carol, "split pay", {"member": w.bob, "amount": 30})
    assert "Paid on group B's side only" in reply_text(paid)
    spent_twice = await p.run(w.carol, "wallet pay", {"member": w.alice, "amount": 30})
    assert "Payment sent" in reply_text(spent_twice)

    shown = await mine_on_side(p, w.alice)
    assert "group A (@north)'s side of the split" in shown
    shown = await mine_on_side(p, w.bob)
    assert "group B (everyone else)'s side of the split" in shown
    await mine_on_side(p, w.carol)
    assert node.chain(guild_id).state.height == base  # withheld: the main chain waits for the heal

    status = await p.run(w.bob, "split status")
    assert status.ephemeral and "group B (everyone else)" in reply_text(status)
    assert "**2 blocks** since the split" in reply_text(status) and "@north" not in reply_text(status)
    status = await p.run(w.alice, "split status")
    assert "**1 block** since the split" in reply_text(status)

    healed = await p.run(w.alice, "split heal")
    await healed.wait_for(lambda h: "The split healed" in reply_text(h), timeout=20)
    summary = reply_text(healed)
    log.info("the split's summary:\n%s", summary)
    assert "Group B (everyone else)'s branch is the main chain: it has more work" in summary
    assert "1 block (a reorg 1 deep)" in summary
    assert f"↩️ returned to the mempool: <@{w.alice.id}> → <@{w.bob.id}> 5 pts" in summary
    assert f"❌ reversed: <@{w.carol.id}> → <@{w.alice.id}> 30 pts" in summary
    assert "double spends across the split: 1" in summary
    # The summary's picture: the tree from the split's base, alice's side orphaned.
    (picture,) = healed.response.attachments
    assert picture.filename == "split.png"
    assert picture.description.startswith(
        f"Block tree of heights {base} to {base + 2}: 3 main-chain blocks as blue circles on a straight line at "
        "the bottom, and 1 orphaned block as orange squares on 1 side branch above it"
    ), picture.description
    assert f"Forks: at block {base} a 1-block branch (block {base + 1}) lost to the main chain" in picture.description

    state = node.chain(guild_id).state
    assert state.height == base + 2
    events = [row.event for row in await OutboxRepository(p.bot.store.db).all_events(guild_id)]
    assert [e.depth for e in events if isinstance(e, ChainReorganized)] == [1]
    assert len([e for e in events if isinstance(e, PaymentReturnedToMempool)]) == 1
    assert len([e for e in events if isinstance(e, PaymentReversed)]) == 1
    # The returned payment confirms in the next block on the (healed) main chain.
    await mine_one(p, w.bob)
    bob = await node.address(guild_id, str(w.bob.id))
    assert node.account(guild_id, bob).balance == 30 + 5 + 2 * 50
    assert (await node.verify(guild_id)).blocks == base + 4

    none = await p.run(w.alice, "split heal")
    assert none.ephemeral and "No network split is running" in reply_text(none)


async def test_invalid_split_commands_are_refused_and_each_member_sees_their_own_side(playground):
    p, w = playground, playground.world
    north = p.sb.add_role(w.genesis, "north")
    p.sb.set_member_roles(w.alice, [*w.alice.role_ids, north.id])

    status = await p.run(w.bob, "split status")
    assert status.ephemeral and "No network split is running" in reply_text(status)
    heal = await p.run(w.alice, "split heal")
    assert heal.ephemeral and "No network split is running" in reply_text(heal)
    everyone = await p.run(w.alice, "split start", {"role": w.genesis.everyone_role, "minutes": 2})
    assert everyone.ephemeral and "group B would be empty" in reply_text(everyone)
    refused = await p.run(w.bob, "split pay", {"member": w.carol, "amount": 1})
    assert refused.ephemeral and "No network split is running" in reply_text(refused)

    started = await p.run(w.alice, "split start", {"role": north, "minutes": 2})
    assert "The network is split" in reply_text(started)
    mine = await p.run(w.alice, "split status")
    assert mine.ephemeral and "group A (@north)" in reply_text(mine) and "**0 blocks**" in reply_text(mine)
    theirs = await p.run(w.carol, "split status")
    assert "group B (everyone else)" in reply_text(theirs)
    broke = await p.run(w.carol, "split pay", {"member": w.bob, "amount": 1})
    assert broke.ephemeral and "on side B of the split you have 0 points" in reply_text(broke)

    # Two admins heal at the same moment: one summary, and the other is told the split is over.
    first, second = await asyncio.gather(p.run(w.alice, "split heal"), p.run(w.alice, "split heal"))
    for handle in (first, second):
        await handle.wait_for(lambda h: bool(shown(h.response) or h.followups), timeout=20)
    texts = sorted(shown(h.response) + "".join(shown(m) for m in h.followups) for h in (first, second))
    assert sum("The split healed" in t for t in texts) == 1
    assert sum("No network split is running" in t for t in texts) == 1
    assert "Neither side found a block: nothing changed." in "".join(texts)


async def test_a_restart_heals_the_split_and_keeps_its_blocks(sb, tmp_path):
    from sandbox.demo import populate_demo
    from tests.e2e.conftest import Playground, make_settings, running_bot

    w = populate_demo(sb)
    settings = make_settings(tmp_path / "split_restart.sqlite3")
    async with running_bot(sb, settings) as bot:
        p = Playground(sb, w, bot, settings)
        await no_cooldown(p, w.genesis)
        north = sb.add_role(w.genesis, "north")
        await mine_one(p, w.alice)
        base = bot.services.node.chain(w.genesis.id).state.height
        started = await p.run(w.alice, "split start", {"role": north, "minutes": 5})
        shown_text = await mine_on_side(p, w.bob)
        assert "group B (everyone else)'s side of the split" in shown_text
        assert bot.services.node.chain(w.genesis.id).state.height == base
    # running_bot's exit is bot.close(): the same path SIGTERM takes. The split heals on the way out.
    await started.wait_for(lambda h: any("as the bot restarted" in shown(m) for m in h.followups), timeout=10)

    async with running_bot(sb, settings) as bot:
        node = bot.services.node
        assert node.chain(w.genesis.id).state.height == base + 1
        assert (await node.verify(w.genesis.id)).blocks == base + 2
