"""The bot comes up through the sandbox and answers its commands."""

from chain.events import BLOCK_MINED


async def test_mine_pay_and_balance(playground):
    p, w = playground, playground.world
    h = await p.run(w.alice, "mine start")
    await h.wait_for(lambda h: h.response is not None and h.response.embeds and "found" in h.response.embeds[0].get("title", ""), timeout=20)
    print(h.response.embeds)
