"""/chain chart kind:tree end to end: refused while the chain has no fork, then the block tree with
its orphaned branch as a PNG whose alt text states where the fork is and which branch won."""

from __future__ import annotations

from tests.e2e.test_charts import png_size
from tests.e2e.test_explorer import error_text, mine_blocks, state
from tests.e2e.test_explorer_tree import submit_competing_block


async def test_the_tree_chart_waits_for_a_fork_then_draws_it(playground):
    p, w = playground, playground.world
    await mine_blocks(p, 3)
    tip = state(p).tip_hash
    refused = await p.run(w.bob, "chain chart", {"kind": "tree"})
    await refused.wait_response(30)
    assert refused.ephemeral and not refused.deferred
    assert "no forks yet: all 4 blocks the tree keeps (heights 0 to 3) are on the main chain" in error_text(refused)
    assert state(p).tip_hash == tip

    await submit_competing_block(p, 2)
    # The refusal cost bob no cooldown: he asks again at once.
    h = await p.run(w.bob, "chain chart", {"kind": "tree"})
    assert h.deferred
    message = await h.wait_response(30)
    (attachment,) = message.attachments
    assert attachment.filename == "tree.png"
    assert png_size(attachment.data) == (800, 450)
    assert attachment.description.startswith(
        "Block tree of heights 0 to 3: 4 main-chain blocks as blue circles on a straight line at the bottom, "
        "and 1 orphaned block as orange squares on 1 side branch above it"
    ), attachment.description
    assert "Forks: at block 1 a 1-block branch (block 2) lost to the main chain." in attachment.description
    assert "follows the most work: it won every fork shown" in attachment.description
    (embed,) = message.embeds
    assert embed["image"]["url"].endswith("tree.png")
    assert embed["title"] == "📈 Block tree, heights 0–3"
