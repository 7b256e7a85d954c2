"""What /chain block, /chain tip and /wallet history show on a proof-of-stake chain, end to end."""

from __future__ import annotations

from tests.e2e.test_staking import pos  # the fixture: the real bot on a fake slot clock

__all__ = ["pos"]


def fields(embed: dict) -> dict[str, str]:
    return {f["name"]: f["value"] for f in embed.get("fields", [])}


async def test_pos_genesis_and_blocks_show_slots_not_proof_of_work(pos):
    w = pos.w
    await pos.start(wallets=[w.bob])
    await pos.step(3)
    _h, reply = await pos.run(w.carol, "chain block", {"query": "0"})
    genesis = fields(reply.embeds[0])
    assert genesis["Slot"] == "0" and genesis["Epoch"] == "0"
    assert genesis["Proposer"].startswith("none") and genesis["Genesis validators"] == "1"
    for pow_field in ("Bits", "Difficulty", "Nonce", "Miner", "Reward"):
        assert pow_field not in genesis, pow_field

    _h, reply = await pos.run(w.carol, "chain tip")
    tip = fields(reply.embeds[0])
    assert reply.embeds[0]["title"].startswith("Tip: block ")
    assert "Slot" in tip and "Epoch" in tip and tip["Proposer"].endswith("(validator #0)")
    for pow_field in ("Bits", "Difficulty", "Nonce", "Miner"):
        assert pow_field not in tip, pow_field

    _h, reply = await pos.run(w.carol, "chain block", {"query": "1"})
    first = fields(reply.embeds[0])
    assert first["Slot"] == "1" and first["Epoch"] == "0" and "Bits" not in first


async def test_wallet_history_shows_fees_stake_penalty_and_payback_not_zero_rewards(pos):
    from tests.e2e.test_staking import SLOTS_PER_EPOCH, activate, text, until_next_proposer_is

    w = pos.w
    guild_id = w.genesis.id
    await pos.start(wallets=[w.bob], unbonding_epochs=1, slashed_unbonding_epochs=2)
    await pos.services.node.store.chaos_mode.set_chaos_mode(guild_id, True)
    await pos.run(w.bob, "wallet pay", {"member": w.alice, "amount": 5, "fee": 2})
    await pos.step(2)  # a block includes the payment; its fees go to alice, the only proposer
    await activate(pos, w.bob)  # many slots alice proposed without fees
    alice_index = (await pos.view(w.alice)).index
    await until_next_proposer_is(pos, alice_index)
    await pos.run(w.bob, "stake attest")
    await pos.run(w.bob, "stake attest", {"double_vote": True})
    await pos.step(2)
    assert (await pos.view(w.bob)).slashed

    async def paid_back():
        _h, reply = await pos.run(w.bob, "wallet history")
        return "stake returned" in text(reply) and text(reply)
    bob = await pos.step_until(paid_back, max_slots=6 * SLOTS_PER_EPOCH, what="bob's stake paid back")
    assert "−32 pts staked: new validator #1" in bob
    assert "⚔️ validator #1 slashed (double vote): −1 pts of its stake" in bob
    assert f"−5 pts to <@{w.alice.id}> (fee 2)" in bob
    assert "+0 pts" not in bob and "mining reward" not in bob

    _h, reply = await pos.run(w.alice, "wallet history")
    alice = text(reply)
    assert "+2 pts fees for proposing it" in alice and f"+5 pts from <@{w.bob.id}>" in alice
    assert "+0 pts" not in alice and "mining reward" not in alice
