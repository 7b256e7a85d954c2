"""/split on a hybrid chain end to end: the validators are split with the miners.

alice (admin, role @north, group A) is the server's only validator, with auto-attest on: her side
holds all the stake and bob's none. Each side's status shows its share of the stake and its
branch's checkpoints; the summary shows both and the finalized epoch before and after.
"""

from __future__ import annotations

import logging

from chain.mode import Mode
from tests.e2e.test_merge import use_fast_consensus
from tests.e2e.test_network_split import mine_on_side
from tests.e2e.test_wallet import mine_one, no_cooldown
from tests.e2e.text import reply_text

log = logging.getLogger(__name__)


async def test_a_split_on_a_hybrid_chain_shows_each_sides_stake_and_checkpoints(playground):
    p, w = playground, playground.world
    gid = w.genesis.id
    use_fast_consensus(p)
    facade = p.bot.services.playground
    await no_cooldown(p, w.genesis)
    await mine_one(p, w.alice)  # the chain exists; now start it over as a hybrid chain
    await facade.switch_mode(gid, Mode.HYBRID, str(w.alice.id))
    await mine_one(p, w.alice)
    await facade.deposit(gid, str(w.alice.id), 32)
    for _ in range(4):  # the deposit's block, then two checkpoints: alice is active
        await mine_one(p, w.bob)
    await facade.set_auto_attest(gid, str(w.alice.id), True)
    north = p.sb.add_role(w.genesis, "north")
    p.sb.set_member_roles(w.alice, [*w.alice.role_ids, north.id])

    started = await p.run(w.alice, "split start", {"role": north, "minutes": 5})
    assert "The network is split" in reply_text(started) and "Votes (hybrid chain)" in reply_text(started)
    for _ in range(3):
        await mine_on_side(p, w.alice)
    await mine_on_side(p, w.bob)

    mine = await p.run(w.alice, "split status")
    assert "votes: 100% of the stake (two thirds or more: can justify)" in reply_text(mine)
    theirs = await p.run(w.bob, "split status")
    assert "votes: 0% of the stake (under two thirds: cannot justify)" in reply_text(theirs)

    healed = await p.run(w.alice, "split heal")
    await healed.wait_for(lambda h: "The split healed" in reply_text(h), timeout=20)
    summary = reply_text(healed)
    log.info("the hybrid split's summary:\n%s", summary)
    assert "Group A (@north)'s branch is the main chain: it has more work" in summary
    assert "votes: 100% of the stake" in summary and "votes: 0% of the stake" in summary
    assert "before the split" in summary and "after the heal" in summary


async def test_a_split_on_a_proof_of_stake_chain_starts_and_heals_by_the_votes(playground):
    """Before: ``/split start`` on a proof-of-stake chain was refused ("its slot driver proposes every
    slot's block")."""
    p, w = playground, playground.world
    use_fast_consensus(p)
    await mine_one(p, w.alice)
    await p.bot.services.playground.switch_mode(w.genesis.id, Mode.POS, str(w.alice.id))
    north = p.sb.add_role(w.genesis, "north")
    started = await p.run(w.alice, "split start", {"role": north, "minutes": 5})
    assert not started.ephemeral and "How to play (proof of stake)" in reply_text(started)
    mine = await p.run(w.alice, "split status")
    assert "votes:" in reply_text(mine)
    healed = await p.run(w.alice, "split heal")
    await healed.wait_for(lambda h: "The split healed" in reply_text(h), timeout=20)
    log.info("the proof-of-stake split's summary:\n%s", reply_text(healed))
    assert "before the split" in reply_text(healed)
