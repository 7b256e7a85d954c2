"""The Merge, end to end through the sandbox: a proof-of-work chain is mined, a member stakes, the
admin schedules the Merge, the last blocks are mined, proof-of-stake blocks follow, and the whole
history still verifies.  Also: switching mode, chaos mode, and the Merge's refusals."""

from __future__ import annotations

import asyncio
import time

import pytest

from chain.pos.beacon import ConsensusConfig
from sandbox.errors import SandboxError
from tests.e2e.test_admin import answer, event_titles, field, mine_block, text_of
from tests.e2e.text import reply_text

# Short slots and epochs so the Merge and the first proof-of-stake blocks fit in seconds: the pre-Merge
# epoch is 2 blocks, so a deposit included in block 2 activates at block 4's epoch.
FAST_POS = ConsensusConfig(mode="pow", slot_duration_s=1, slots_per_epoch=4, checkpoint_interval_blocks=2)


def use_fast_consensus(p, **changes) -> None:
    """New chains of this bot get FAST_POS (no chain exists yet when a test starts)."""
    p.bot.services.default_consensus = FAST_POS.evolve(**changes)


def error_of(message) -> str:
    text = text_of(message)
    assert text.startswith("❌"), text
    return text


async def wait_for_height(p, guild_id: int, height: int, timeout: float = 10.0) -> None:
    node = p.bot.services.node
    await p.sb.wait_until(lambda: node.chain(guild_id).state.height >= height, timeout=timeout)


async def test_a_pow_chain_merges_and_proof_of_stake_blocks_follow(playground):
    started = time.monotonic()
    p, w, sb = playground, playground.world, playground.sb
    use_fast_consensus(p)
    # Blocks of ~100,000 hashes (a fraction of a second on one worker), so proof of work has real energy
    # to compare with.
    p.bot.services.measured_hash_rate = 2_000
    gid = w.genesis.id
    services = p.bot.services
    node, beacon = services.node, services.beacon
    await answer(p, w.alice, "playground setup", {"channel": w.blocks})
    await answer(p, w.alice, "playground config", {"cooldown": 0})
    assert await mine_block(p, w.alice) == 1

    # Nobody has staked: the Merge would have nobody to propose.
    _h, reply = await answer(p, w.alice, "playground merge", {"at_height": 5})
    assert "Nobody has staked yet" in error_of(reply)
    _h, reply = await answer(p, w.alice, "playground merge", {"at_height": 5, "at_total_difficulty": 99})
    assert "Give exactly one of `at_height`" in error_of(reply)

    # alice stakes 32 of her 50 points; block 2 includes the deposit.
    _h, reply = await answer(p, w.alice, "stake deposit", {"amount": 32})
    assert not text_of(reply).startswith("❌"), text_of(reply)
    assert await mine_block(p, w.alice) == 2
    assert len(beacon.validators(gid)) == 1
    assert (await beacon.validator(gid, str(w.alice.id))).status.value == "pending"

    # The block committing to the schedule must come before the Merge, with room for a block in flight.
    _h, reply = await answer(p, w.alice, "playground merge", {"at_height": 4})
    assert "comes too soon" in error_of(reply) and "Pick block 5 or later" in error_of(reply)
    total = node.chain(gid).state.beacon.total_difficulty
    _h, reply = await answer(p, w.alice, "playground merge", {"at_total_difficulty": total + 1})
    assert "comes too soon" in error_of(reply)
    assert node.chain(gid).proposed_consensus is None

    _h, reply = await answer(p, w.alice, "playground merge", {"at_height": 5})
    text = text_of(reply)
    assert "The Merge comes at block 5: block 4 is the last mined block" in text
    assert "Block 3, the next one mined, commits to the schedule in its coinbase" in text
    assert "mining stops" in text and "every 1 s" in text

    assert await mine_block(p, w.alice) == 3  # commits to the schedule
    assert beacon.config(gid).merge_at_height == 5
    _h, reply = await answer(p, w.alice, "playground config")
    assert "The Merge: scheduled at block 5" in text_of(reply)
    assert "Slot length: **1 s**" in text_of(reply) and "Minimum deposit: **32 pts**" in text_of(reply)
    assert await mine_block(p, w.alice) == 4  # the terminal proof-of-work block

    # Mining is over.
    _h, reply = await answer(p, w.bob, "mine start")
    assert "This chain has merged: proof of work is over" in error_of(reply)
    assert "every 1 s; stake with `/stake deposit`" in error_of(reply)
    _h, reply = await answer(p, w.bob, "mine stats")
    assert "This chain has merged" in text_of(reply)

    # Proof-of-stake blocks follow, from alice's validator, one a slot.
    await wait_for_height(p, gid, 6, timeout=10)
    assert beacon.is_merged(gid)
    tip = node.chain(gid).tip_block
    assert tip.seal is not None
    await sb.wait_until(lambda: "🐼 The Merge" in event_titles(sb, w.blocks), timeout=10)
    titles = event_titles(sb, w.blocks)
    assert "🗓️ The Merge is scheduled" in titles and "🔒 Stake deposited" in titles
    # Proof-of-stake blocks themselves are posted by the slot driver (with an Attest button), not the webhook.
    assert not any(t.startswith("🧱") for t in titles)

    _h, reply = await answer(p, w.carol, "chain tip")
    text = text_of(reply)
    assert "Slot:" in text and f"Proposer: <@{w.alice.id}> (validator #0)" in text and "Nonce" not in text

    _h, reply = await answer(p, w.carol, "chain block", {"query": "2"})
    assert "Operations: Deposits 1" in text_of(reply) and "Nonce:" in text_of(reply)

    _h, reply = await answer(p, w.carol, "chain proposer")  # the current slot
    text = text_of(reply)
    assert "Proposer of slot" in text and "Mix: checkpoint block" in text and "Slot seed" in text
    assert f"Winner: validator #0, <@{w.alice.id}>" in text and "✅ accepted" in text
    assert "Candidates: 1 active validator" in text
    assert "Anyone can redo this draw from the chain alone" in text
    _h, reply = await answer(p, w.carol, "chain proposer", {"slot": 1})
    assert "whose validators and checkpoints it no longer keeps" in error_of(reply)

    _h, reply = await answer(p, w.carol, "chain verify")
    text = text_of(reply)
    assert "✅ Chain verified" in text and "Proofs of work: 4" in text and "The Merge: at block 5" in text
    assert int(field(reply, "Proof-of-stake blocks")) >= 2

    _h, reply = await answer(p, w.carol, "chain energy")
    text = text_of(reply)
    assert "less** energy than proof of work" in text and "99.992% less energy" in text

    _h, reply = await answer(p, w.alice, "playground status")
    assert (
        field(reply, "Mode").startswith("pow") and field(reply, "The Merge") == "done: blocks are proof-of-stake blocks"
    )
    assert field(reply, "Validators").startswith("1 active (32 pts effective stake)")
    assert field(reply, "Difficulty") == "none: blocks are proof of stake"

    _h, reply = await answer(p, w.alice, "playground merge", {"at_height": 50})
    assert "already merged" in error_of(reply)
    assert time.monotonic() - started < 30


async def test_a_session_mining_when_the_merge_comes_ends_with_the_merge(playground, monkeypatch):
    p, w = playground, playground.world
    use_fast_consensus(p)
    gid = w.genesis.id
    node, beacon = p.bot.services.node, p.bot.services.beacon
    await answer(p, w.alice, "playground config", {"cooldown": 0})
    await mine_block(p, w.alice)
    await answer(p, w.alice, "stake deposit", {"amount": 32})
    await mine_block(p, w.alice)
    await answer(p, w.alice, "playground merge", {"at_height": 5})
    assert await mine_block(p, w.alice) == 3  # commits to the schedule

    # bob's session is under way (deferred, registered) but reaches the hashing core only after the
    # terminal block: as a session that was still hashing when another member mined it.
    gate = asyncio.Event()
    real_mine = node.mine

    async def slow_mine(chain_id, owner, **kwargs):
        if owner == str(w.bob.id):
            await gate.wait()
        return await real_mine(chain_id, owner, **kwargs)

    monkeypatch.setattr(node, "mine", slow_mine)
    bob = await p.run(w.bob, "mine start")
    sessions = p.bot.get_cog("Mining").sessions
    await p.sb.wait_until(lambda: (gid, w.bob.id) in sessions, timeout=5)
    assert await mine_block(p, w.alice) == 4  # the terminal proof-of-work block
    assert node.chain(gid).state.beacon.terminal is not None
    gate.set()
    await bob.wait_for(lambda h: "mining is over" in reply_text(h), timeout=10, what="the Merge message")
    assert "This chain has merged: proof of work is over" in reply_text(bob)
    await wait_for_height(p, gid, 5)
    assert beacon.is_merged(gid)


async def test_switching_to_proof_of_stake_starts_a_new_chain_after_confirmation(playground):
    p, w, sb = playground, playground.world, playground.sb
    use_fast_consensus(p)
    gid = w.genesis.id
    services = p.bot.services
    await answer(p, w.alice, "playground config", {"cooldown": 0})
    await mine_block(p, w.alice)
    await services.node.address(gid, str(w.bob.id))  # bob has a wallet: he gets a genesis allocation

    _h, reply = await answer(p, w.alice, "playground config", {"mode": "pos", "cooldown": 5})
    assert "Change the mode on its own" in error_of(reply)

    h, prompt = await answer(p, w.alice, "playground config", {"mode": "pos"})
    text = text_of(prompt)
    assert "Start a new pos chain?" in text and "starts a new chain" in text
    assert f"<@{w.alice.id}> is the genesis validator" in text
    click = await sb.click(prompt, member=w.alice, label="Start a new pos chain")
    await click.wait_ack()
    await h.wait_for(lambda h: "New pos chain" in text_of(sb.message(prompt.id)), what="the switch", timeout=10)
    assert services.beacon.mode(gid) == "pos"
    assert services.node.chain(gid).state.height == 0
    # Issue 9: nothing said that nobody would see the blocks, and the genesis validator did not vote.
    assert "No channel yet" in text_of(sb.message(prompt.id)) and "/playground setup" in text_of(sb.message(prompt.id))
    assert [v.auto_attest for v in services.beacon.validators(gid)] == [True]
    assert len(services.beacon.validators(gid)) == 1
    validator = await services.beacon.validator(gid, str(w.alice.id))
    assert validator is not None and validator.index == 0 and validator.status.value == "active"
    bob = await services.node.address(gid, str(w.bob.id))
    assert services.node.account(gid, bob).balance == 100

    _h, reply = await answer(p, w.bob, "mine start")
    assert "proof of stake from genesis: there is nothing to mine" in error_of(reply)
    _h, reply = await answer(p, w.alice, "playground merge", {"at_height": 9})
    assert "has proof of stake from genesis" in error_of(reply)
    _h, reply = await answer(p, w.alice, "playground config")
    assert "Mode: **pos**" in text_of(reply) and "The Merge: none: proof of stake from genesis" in text_of(reply)
    await wait_for_height(p, gid, 1)
    _h, reply = await answer(p, w.alice, "playground status")
    assert field(reply, "Mode").startswith("pos")


async def test_switching_to_hybrid_keeps_mining_and_a_reset_keeps_the_mode(playground):
    p, w, sb = playground, playground.world, playground.sb
    use_fast_consensus(p)
    gid = w.genesis.id
    services = p.bot.services
    await answer(p, w.alice, "playground config", {"cooldown": 0})
    await mine_block(p, w.alice)

    # Cancelled: nothing changes.
    h, prompt = await answer(p, w.alice, "playground config", {"mode": "hybrid"})
    assert "Start a new hybrid chain?" in text_of(prompt) and "every 2 blocks is a checkpoint" in text_of(prompt)
    click = await sb.click(prompt, member=w.alice, label="Cancel")
    await click.wait_ack()
    await h.wait_for(lambda h: "Mode switch cancelled" in text_of(sb.message(prompt.id)), what="the cancel")
    assert services.beacon.mode(gid) == "pow" and services.node.chain(gid).state.height == 1

    h, prompt = await answer(p, w.alice, "playground config", {"mode": "hybrid"})
    click = await sb.click(prompt, member=w.bob, label="Start a new hybrid chain")
    assert "who asked for this mode switch" in text_of(await click.wait_response())
    click = await sb.click(prompt, member=w.alice, label="Start a new hybrid chain")
    await click.wait_ack()
    await h.wait_for(lambda h: "New hybrid chain" in text_of(sb.message(prompt.id)), what="the switch", timeout=10)
    assert services.beacon.mode(gid) == "hybrid" and services.node.chain(gid).state.height == 0
    assert services.beacon.config(gid).slot_duration_s == 1  # the server's other settings carry over
    assert await mine_block(p, w.alice) == 1  # hybrid chains are mined
    _h, reply = await answer(p, w.alice, "playground status")
    assert field(reply, "Mode").startswith("hybrid")

    # A plain reset starts over in the mode the chain had.
    h, prompt = await answer(p, w.alice, "playground reset")
    click = await sb.click(prompt, member=w.alice, label="Reset the chain")
    await click.wait_ack()
    await h.wait_for(lambda h: "New hybrid chain" in text_of(sb.message(prompt.id)) or "Chain reset" in text_of(
        sb.message(prompt.id)), what="the reset", timeout=10)
    assert services.beacon.mode(gid) == "hybrid" and services.node.chain(gid).state.height == 0


async def test_chaos_mode_on_and_off_shows_in_status(playground):
    p, w = playground, playground.world
    gid = w.genesis.id
    store = p.bot.services.node.store
    _h, reply = await answer(p, w.alice, "playground status")
    assert field(reply, "Chaos mode").startswith("off")
    h, reply = await answer(p, w.alice, "playground chaos", {"state": "on"})
    assert h.ephemeral
    assert "Chaos mode is on" in text_of(reply) and "slashed" in text_of(reply)
    assert await store.chaos_mode.get_chaos_mode(gid)
    _h, reply = await answer(p, w.alice, "playground status")
    assert field(reply, "Chaos mode").startswith("on")
    _h, reply = await answer(p, w.alice, "playground chaos", {"state": "off"})
    assert "Chaos mode is off" in text_of(reply)
    assert not await store.chaos_mode.get_chaos_mode(gid)
    _h, reply = await answer(p, w.bob, "playground chaos", {"state": "on"}, check_permissions=False)
    assert error_of(reply) == "❌ You need the Manage Server permission for this."
    assert not await store.chaos_mode.get_chaos_mode(gid)


async def test_staking_settings_show_and_a_change_starts_a_new_chain(playground):
    p, w, sb = playground, playground.world, playground.sb
    services, gid = p.bot.services, w.genesis.id
    _h, reply = await answer(p, w.alice, "playground staking")
    shown = text_of(reply)
    assert "Proof-of-stake settings" in shown and "Minimum deposit: **32 pts**" in shown
    assert "Slashing penalty: **1/32**" in shown

    # Out of the allowed range: Discord's own limits (the Range types) refuse it before the bot sees it.
    with pytest.raises(SandboxError):
        await sb.invoke(w.genesis, w.general, w.alice, "playground staking", {"issuance_bp": 2_000})

    h, prompt = await answer(p, w.alice, "playground staking", {"slot_length": 12, "min_deposit": 16,
                                                                "issuance_bp": 800, "slashing_quotient": 64,
                                                                "unbonding_epochs": 5})
    assert "Start a new pow chain?" in text_of(prompt) and "Minimum deposit: **16 pts**" in text_of(prompt)
    click = await sb.click(prompt, member=w.alice, label="Start a new pow chain")
    await click.wait_ack()
    await h.wait_for(lambda h: "New pow chain" in text_of(sb.message(prompt.id)), what="the new chain", timeout=10)
    config = services.beacon.config(gid)
    assert (config.slot_duration_s, config.min_deposit_points, config.issuance_rate_bp,
            config.slashing_penalty_quotient) == (12, 16, 800, 64)
    # Issue 9: the description promises a slashed validator 24 times the unbonding; it kept 360 epochs.
    assert (config.unbonding_epochs, config.slashed_unbonding_epochs) == (5, 120)
    assert services.node.chain(gid).state.height == 0

    with pytest.raises(SandboxError, match="cannot use /playground"):  # admins only
        await sb.invoke(w.genesis, w.general, w.bob, "playground staking", {"slot_length": 5})
