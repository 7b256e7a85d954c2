"""What /chain block, /chain tip and /wallet history show on a proof-of-stake chain, end to end."""

from __future__ import annotations

from tests.e2e.test_staking import pos  # noqa: F401 - the fixture: the real bot on a fake slot clock

__all__ = ["pos"]


def fields(embed: dict) -> dict[str, str]:
    return {f["name"]: f["value"] for f in embed.get("fields", [])}


async def test_pos_genesis_and_blocks_show_slots_not_proof_of_work(pos):  # noqa: F811
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
