"""/doublespend end to end (issue 11, item 4): a round played through to its summary in the sandbox."""

from __future__ import annotations

from chain.adapters.double_spend import ATTACKERS_OWNER
from tests.e2e.test_wallet import mine_one, no_cooldown
from tests.e2e.text import reply_text, shown


def summary_in(p, channel, words):
    return next((m for m in p.sb.channel_messages(channel, kind="bot") if words in shown(m)), None)


async def test_a_double_spend_with_the_bot_lending_90_percent_to_the_attackers(playground):
    p, w = playground, playground.world
    await p.sb.wait_commands_synced(names=["doublespend"])
    await no_cooldown(p, w.genesis)
    node, guild_id = p.bot.services.node, w.genesis.id
    await mine_one(p, w.bob)  # the attacker's 50 points

    refused = await p.run(w.bob, "doublespend start", {"attacker": w.bob, "merchant": w.carol, "amount": 10})
    assert refused.ephemeral and "Manage Server" in reply_text(refused)
    same = await p.run(w.alice, "doublespend start", {"attacker": w.bob, "merchant": w.bob, "amount": 10})
    assert same.ephemeral and "merchant must not be the attacker" in reply_text(same)
    rich = await p.run(w.alice, "doublespend start", {"attacker": w.bob, "merchant": w.carol, "amount": 500})
    assert rich.ephemeral and "has 50 points to spend, not the 500" in reply_text(rich)
    none = await p.run(w.carol, "doublespend status")
    assert none.ephemeral and "No double spend is running" in reply_text(none)

    start = await p.run(w.alice, "doublespend start", {
        "attacker": w.bob, "merchant": w.carol, "amount": 10, "confirmations": 1, "attack_share": 90,
        "honest_share": 0,
    })
    plan = reply_text(start)
    assert not start.ephemeral and "the attack begins" in plan, plan
    assert "attackers 90 % · honest side 0 %" in plan and "P(q, k) before (Nakamoto 2008, §11)\n1.0000000" in plan
    again = await p.run(w.alice, "doublespend start", {"attacker": w.bob, "merchant": w.carol, "amount": 1})
    assert again.ephemeral and "already running" in reply_text(again)
    status = await p.run(w.carol, "doublespend status")
    assert status.ephemeral and "Payment confirmations\n0 of 1" in reply_text(status), reply_text(status)
    outsider = await p.run(w.carol, "doublespend publish")
    assert outsider.ephemeral and "only the attacking side" in reply_text(outsider)

    # The honest side is carol, mining in public: her block confirms the payment to her; meanwhile the
    # bot mines the attackers' private branch, and publishes it once it is heavier.
    await mine_one(p, w.carol)
    message = await p.sb.wait_until(lambda: summary_in(p, w.general, "Double spent"), timeout=60)
    text = shown(message)
    assert "**reversed** (nonce replay)" in text and "Reorg depth: **1**" in text, text
    # The summary carries the block tree from the fork: carol's public block orphaned at height 2.
    (picture,) = message.attachments
    assert picture.filename == "doublespend.png" and picture.data.startswith(b"\x89PNG")
    assert "Forks: at block 1 a 1-block branch (block 2) lost to the main chain" in picture.description
    assert message.embeds[0]["image"]["url"].endswith("doublespend.png")
    assert "published automatically" in text and "after (q measured): 1.0000000" in text
    assert "before (q as set): 1.0000000" in text

    carol = await node.address(guild_id, str(w.carol.id))
    bob = await node.address(guild_id, str(w.bob.id))
    stash = await node.address(guild_id, ATTACKERS_OWNER)
    assert node.account(guild_id, bob).balance == 40  # paid 10 once: to the attackers' wallet, not carol
    assert node.account(guild_id, stash).balance >= 10 + 50
    assert node.account(guild_id, carol).balance == 0  # her payment and her block's reward were on the orphaned branch
    assert (await node.verify(guild_id)).blocks == node.chain(guild_id).state.height + 1
    over = await p.run(w.bob, "doublespend publish")
    assert over.ephemeral and "No double spend is running" in reply_text(over)


async def test_the_attacker_mines_privately_and_two_publishes_at_the_same_moment_publish_once(playground):
    p, w = playground, playground.world
    await p.sb.wait_commands_synced(names=["doublespend"])
    await no_cooldown(p, w.genesis)
    node, guild_id = p.bot.services.node, w.genesis.id
    await mine_one(p, w.bob)
    start = await p.run(w.alice, "doublespend start", {
        "attacker": w.bob, "merchant": w.carol, "amount": 10, "confirmations": 1,
    })
    assert "q (attackers' share, as set)\nnot known yet" in reply_text(start), reply_text(start)

    # No hash power lent: the members play. Bob's /mine goes to the private branch, twice.
    for _ in range(2):
        kept = await p.run(w.bob, "mine start")
        await kept.wait_for(lambda h: "kept private" in reply_text(h), timeout=20)
    assert node.chain(guild_id).state.height == 1  # nothing published yet
    await mine_one(p, w.carol)  # the payment's block, on the public chain: 1 confirmation
    status = await p.run(w.bob, "doublespend status")
    assert "Private branch: **2 blocks**" in reply_text(status) and "0 of 1" not in reply_text(status)

    handles = [await p.sb.invoke(w.genesis, w.general, who, "doublespend publish", {}) for who in (w.bob, w.alice)]
    for handle in handles:
        await handle.wait_response(30)  # a published summary comes after a "thinking" state: its picture
    texts = [reply_text(h) for h in handles]
    assert sum("Double spent" in t for t in texts) == 1, texts
    [refused] = [h for h in handles if "Double spent" not in reply_text(h)]
    refusal = reply_text(refused)
    assert refused.ephemeral and ("already published" in refusal or "No double spend" in refusal), refusal
    summary = next(t for t in texts if "Double spent" in t)
    assert "Reorg depth: **1**" in summary and "attackers 2 (bot 0, members 2)" in summary, summary
    [published] = [h for h in handles if "Double spent" in reply_text(h)]
    (picture,) = published.response.attachments
    assert picture.description.startswith(
        "Block tree of heights 1 to 3: 3 main-chain blocks as blue circles on a straight line at the bottom, "
        "and 1 orphaned block as orange squares on 1 side branch above it"
    ), picture.description
    assert "as set not known yet · measured 0.667" in summary and "before (q as set): —" in summary
    carol = await node.address(guild_id, str(w.carol.id))
    assert node.account(guild_id, carol).balance == 0
    assert node.chain(guild_id).state.height == 3


async def test_a_team_role_mines_with_the_attacker_and_the_merchant_cannot_be_in_it(playground):
    p, w = playground, playground.world
    await p.sb.wait_commands_synced(names=["doublespend"])
    await no_cooldown(p, w.genesis)
    node, guild_id = p.bot.services.node, w.genesis.id
    red = p.sb.add_role(w.genesis, "red team")
    dave = p.sb.add_member(w.genesis, "dave", roles=[red])
    await mine_one(p, w.bob)

    p.sb.set_member_roles(w.carol, [red])
    inside = await p.run(w.alice, "doublespend start", {
        "attacker": w.bob, "merchant": w.carol, "amount": 10, "team": red,
    })
    assert inside.ephemeral and "one of the attacking team" in reply_text(inside), reply_text(inside)
    assert not p.bot.services.playground.has_double_spend(guild_id)
    p.sb.set_member_roles(w.carol, [])

    start = await p.run(w.alice, "doublespend start", {
        "attacker": w.bob, "merchant": w.carol, "amount": 10, "team": red, "confirmations": 1,
    })
    assert f"<@{w.bob.id}> and <@&{red.id}> pay" in reply_text(start), reply_text(start)
    # dave holds the role: his /mine goes to the private branch; carol's to the public chain.
    for _ in range(2):
        kept = await p.run(dave, "mine start")
        await kept.wait_for(lambda h: "kept private" in reply_text(h), timeout=20)
    await mine_one(p, w.carol)
    published = await p.run(dave, "doublespend publish")
    await published.wait_response(30)
    text = reply_text(published)
    assert "Double spent" in text and "attackers 2 (bot 0, members 2)" in text, text
    assert node.account(guild_id, await node.address(guild_id, str(dave.id))).balance == 100
