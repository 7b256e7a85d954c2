"""/learn's stake-and-attest lesson on a proof-of-stake chain, end to end (the slot driver on a fake clock)."""

from __future__ import annotations

import re

from tests.e2e.test_staking import (
    pos,  # noqa: F401 - the proof-of-stake bot fixture
    text,
)


async def test_a_validator_whose_vote_counts_completes_the_staking_lesson(pos):  # noqa: F811 - the fixture
    w, node = pos.w, pos.services.node
    await pos.start(auto_attest=True)  # alice is the genesis validator and votes every slot
    guild_id = w.genesis.id
    _h, early = await pos.run(w.bob, "learn check", {"lesson": "stake"})
    assert "not yet" in text(early) and "no validator" in text(early)

    async def counted():
        view = await pos.view(w.alice)
        return view.voted_current_epoch or view.voted_previous_epoch
    await pos.step_until(counted, max_slots=8, what="alice's counted vote")

    h, done = await pos.run(w.alice, "learn check", {"lesson": "stake"})
    assert h.ephemeral and "vote is counted" in text(done) and "+15 pts" in text(done), text(done)
    txid = bytes.fromhex(re.search(r"`([0-9a-f]{64})`", text(done)).group(1))[::-1]
    alice = await node.address(guild_id, str(w.alice.id))

    async def confirmed():
        return await node.store.blocks.get_transaction(guild_id, txid)
    stored = await pos.step_until(confirmed, max_slots=4, what="the reward in a slot's block")
    assert (stored.recipient, stored.amount) == (alice, 15)
