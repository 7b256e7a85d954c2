"""Issue 9 item 12, end to end: a new block time rescales the target from the block after the one
that commits it, and a reset keeps the server's rules unless the admin asks for the defaults."""

from __future__ import annotations

from chain.pow.difficulty import compute_calibrated_bits, compute_rescaled_bits
from tests.e2e.test_admin import answer, mine_block, text_of


async def _reset(p, member, options=None) -> str:
    """Run /playground reset with ``options``, confirm it; the prompt's text."""
    sb = p.sb
    h, prompt = await answer(p, member, "playground reset", options)
    text = text_of(prompt)
    click = await sb.click(prompt, member=member, label="Reset the chain")
    await click.wait_ack()
    await h.wait_for(lambda h: "Chain reset" in text_of(sb.message(prompt.id)), what="the reset")
    return text


async def test_a_new_block_time_rescales_the_next_but_one_block_and_survives_a_reset(playground):
    p, w = playground, playground.world
    node, services = p.bot.services.node, p.bot.services
    await answer(p, w.alice, "playground config", {"cooldown": 0})
    _h, reply = await answer(p, w.alice, "playground config", {"block_time": 30})
    assert "Block time: 60 s → **30 s**" in text_of(reply)
    assert "the first block under it gets the target scaled by 30/60" in text_of(reply)

    assert await mine_block(p, w.alice) == 1  # block 1 commits to the new block time
    state = node.chain(w.genesis.id).state
    assert state.params.target_spacing_s == 30
    assert state.headers[1].bits == state.headers[0].bits  # the committing block: old rules
    assert await mine_block(p, w.alice) == 2  # the first block of the new block time
    state = node.chain(w.genesis.id).state
    assert state.headers[2].bits == compute_rescaled_bits(state.headers[1].bits, 60, 30, state.params)
    assert state.headers[2].bits != state.headers[1].bits

    # A plain reset keeps the server's block time, and says so before it happens.
    text = await _reset(p, w.alice)
    assert "kept: this server's rules in force now, mode **pow**" in text and "Block time: **30 s**" in text
    state = node.chain(w.genesis.id).state
    assert state.height == 0 and state.params.target_spacing_s == 30
    calibrated = compute_calibrated_bits(services.measured_hash_rate, services.default_params)
    assert state.tip.bits == compute_rescaled_bits(calibrated, 60, 30, state.params)
    _h, reply = await answer(p, w.alice, "playground config")
    assert "Block time: **30 s**" in text_of(reply)

    # defaults:True goes back to the defaults.
    text = await _reset(p, w.alice, {"defaults": True})
    assert "back to the defaults" in text and "Block time: **60 s**" in text
    state = node.chain(w.genesis.id).state
    assert state.params == services.default_params
    assert state.tip.bits == calibrated
    assert await mine_block(p, w.alice) == 1

