"""An orphaned block, end to end through the sandbox: /chain block finds and labels it, the main
block at its height counts it, /chain forks lists its branch, and verify and export cover it
(issue 11, item 3)."""

from __future__ import annotations

import json
from dataclasses import replace

from chain.consensus.export import import_chain, import_consensus, import_orphans
from chain.consensus.templates import build_template
from chain.consensus.transition import replay_chain
from chain.consensus.verify import verify_chain
from chain.hashing import hash_to_display
from tests.chainkit import solve
from tests.e2e.test_explorer import answer, field, guild_id, mine_blocks, state


async def submit_competing_block(p, height: int):
    """A real block competing with main-chain block ``height`` (bob's, on the same parent), handed to
    the node as a block that lost the race: it keeps it off the main chain (equal work, seen later)."""
    gid = guild_id(p)
    node = p.bot.services.node
    live = state(p)
    blocks = [b async for b in node.store.blocks.iter_blocks(gid, 0, height)]
    fork = replay_chain(live.genesis_params, gid, blocks, live.consensus, live.param_changes, live.consensus_changes)
    bob = await p.bot.services.playground.address(gid, str(p.world.bob.id))
    block = solve(build_template(fork, bob, [], max(node.now(), fork.tip.time + 1)), fork.params)
    await node.accept_block(gid, block)
    assert state(p).hashes[height] != block.hash()  # kept off the main chain
    return block


async def test_an_orphan_in_chain_block_forks_verify_and_export(playground):
    p, w = playground, playground.world
    await mine_blocks(p, 3)
    orphan = await submit_competing_block(p, 2)
    orphan_hash = hash_to_display(orphan.hash())
    main_hash = hash_to_display(state(p).hashes[2])

    shown = await answer(p, w.carol, "chain block", {"query": orphan_hash[:10]})
    embed = shown.embeds[0]
    assert not shown.ephemeral
    assert embed["title"] == "Orphaned block at height 2"
    assert "Orphaned: not on the main chain" in embed["description"]
    assert f"Block 2 of the main chain is `{main_hash[:16]}…` instead" in embed["description"]
    assert field(embed, "Hash") == f"`{orphan_hash}`"
    assert field(embed, "Miner") == w.bob.mention
    assert field(embed, "Main chain at this height") == f"`{main_hash}`"
    assert field(embed, "Chain work at this height").startswith("this branch ")

    main = await answer(p, w.carol, "chain block", {"query": "2"})
    assert main.embeds[0]["title"] == "Block 2"
    assert field(main.embeds[0], "Competing blocks").startswith("1 orphaned block at this height")
    assert field((await answer(p, w.carol, "chain block", {"query": "3"})).embeds[0], "Competing blocks") == "none"

    g, ch = w.genesis, w.general
    choices = await p.sb.autocomplete(g, ch, w.bob, "chain block", {"query": orphan_hash[:8]}, focused="query")
    assert {"name": f"orphan at #2 {orphan_hash[:16]}…", "value": orphan_hash} in choices.choices

    forks = await answer(p, w.carol, "chain forks")
    description = forks.embeds[0]["description"]
    assert description.startswith("1 side branch off the main chain")
    assert "**1 block** forking at block 1" in description and orphan_hash[:16] in description

    verified = await answer(p, w.carol, "chain verify", timeout=30)
    assert field(verified.embeds[0], "Orphaned blocks").startswith("1, each fully checked on its own branch")

    exported = await (await p.run(w.bob, "chain export")).wait_response(30)
    (attachment,) = exported.attachments
    assert "Blocks 0 to 3 and 1 orphaned block" in exported.embeds[0]["description"]
    document = json.loads(attachment.data)
    assert document["orphans"] == [
        {"height": 2, "parent": hash_to_display(orphan.header.prev_hash), "block": orphan.serialize().hex()}
    ]
    params, chain_id, blocks = import_chain(document)
    _, report = verify_chain(params, chain_id, blocks, p.bot.services.node.now(),
                             consensus=import_consensus(document), orphans=import_orphans(document))
    assert report.orphans == 1


async def test_verify_names_an_orphan_edited_behind_the_engines_back(playground):
    p, w = playground, playground.world
    await mine_blocks(p, 3)
    orphan = await submit_competing_block(p, 2)
    # Someone edits the stored orphan: its reward grows by one point (its header, so its hash, unchanged).
    forged = replace(orphan, coinbase=replace(orphan.coinbase, amount=orphan.coinbase.amount + 1))
    async with p.bot.store.db.transaction(guild_id(p)) as tx:
        await tx.execute(
            "UPDATE block_tree SET raw = ? WHERE chain_id = ? AND hash = ?",
            (forged.serialize(), guild_id(p), orphan.hash()),
        )
    h = await p.run(w.bob, "chain verify")
    await h.wait_response(15)
    text = h.embeds[0]["description"]
    assert text.startswith("❌ orphaned block ") and "at height 2 (off the main chain)" in text, text
    assert orphan.header.hash_hex()[:16] in text and "merkle root" in text, text
