"""The supply and energy charts end to end: /chain chart kind:supply and kind:energy arrive as PNGs
with alt text stating the chain's own numbers, and /chain energy carries its comparison chart."""

from __future__ import annotations

import asyncio
import threading

from chain.consensus.supply_history import SupplyReplay
from chain.pos.rewards import UNITS_PER_POINT
from cogs.embeds import stake_points
from cogs.energy_chart import energy_text
from tests.e2e.test_admin import answer, mine_block, text_of
from tests.e2e.test_charts import png_size
from tests.e2e.test_explorer import error_text, guild_id, state


async def test_the_supply_chart_shows_a_deposit_move_points_from_wallets_to_stake(playground):
    p, w = playground, playground.world
    await answer(p, w.alice, "playground config", {"cooldown": 0})
    await mine_block(p, w.alice)
    await answer(p, w.alice, "stake deposit", {"amount": 32})
    assert await mine_block(p, w.alice) == 2  # includes the deposit
    h = await p.run(w.bob, "chain chart", {"kind": "supply"})
    message = await h.wait_response(30)
    (attachment,) = message.attachments
    assert attachment.filename == "supply.png" and png_size(attachment.data) == (800, 450)
    tip = state(p)
    circulating = tip.ledger.total_balance() * UNITS_PER_POINT
    staked = tip.beacon.registry.total_balance()
    assert staked == 32 * UNITS_PER_POINT
    alt = attachment.description
    assert alt.startswith("Line chart of the points supply over block height 0 to 2 (every block), four lines.")
    assert (
        f"{stake_points(circulating + staked)} minted, 0 pts burned, {stake_points(staked)} staked in validators "
        f"and {stake_points(circulating)} circulating in wallets" in alt
    )
    assert "Nothing has been burned." in alt
    (embed,) = message.embeds
    assert embed["image"]["url"].endswith("supply.png") and embed["title"] == "📈 Supply by height"


async def test_the_energy_chart_states_both_energies_and_chain_energy_carries_it(playground):
    p, w = playground, playground.world
    # Blocks of real hashing (the chain is created calibrated to it), so proof of work has energy.
    p.bot.services.measured_hash_rate = 2_000
    await answer(p, w.alice, "playground config", {"cooldown": 0})
    await mine_block(p, w.alice)
    await mine_block(p, w.alice)
    h = await p.run(w.bob, "chain chart", {"kind": "energy"})
    message = await h.wait_response(30)
    (attachment,) = message.attachments
    assert attachment.filename == "energy.png" and png_size(attachment.data) == (800, 450)
    report = await p.bot.services.playground.energy(guild_id(p))
    alt = attachment.description
    assert alt.startswith("Bar chart on a logarithmic scale of the CPU energy each consensus used on this chain "
                          "in total")
    assert f"proof of work used {energy_text(report.pow_millijoules)} in all" in alt
    assert "this chain has no blocks of proof of stake to divide by" in alt

    # /chain energy: the same embed text as before, the comparison chart attached (carol: no cooldown).
    _h, reply = await answer(p, w.carol, "chain energy")
    (attachment,) = reply.attachments
    assert attachment.filename == "energy.png" and attachment.description.startswith("Bar chart on a logarithmic")
    (embed,) = reply.embeds
    assert embed["image"]["url"] == "attachment://energy.png"
    assert embed["title"] == "⚡ Energy: proof of work vs proof of stake"
    assert "Ethereum's Merge (September 2022)" in text_of(reply)


async def test_chain_energy_answers_without_its_chart_when_the_member_is_on_chart_cooldown(playground):
    p, w = playground, playground.world
    # Blocks of real hashing (the chain is created calibrated to it), so proof of work has energy.
    p.bot.services.measured_hash_rate = 2_000
    await answer(p, w.alice, "playground config", {"cooldown": 0})
    await mine_block(p, w.alice)
    first, second = await asyncio.gather(
        answer(p, w.bob, "chain energy"), answer(p, w.bob, "chain energy")
    )
    replies = [reply for _h, reply in (first, second)]
    # Both answered with the energy embed; only one carries a chart: the member's chart cooldown holds.
    assert all(reply.embeds[0]["title"] == "⚡ Energy: proof of work vs proof of stake" for reply in replies)
    assert sorted(len(reply.attachments) for reply in replies) == [0, 1]


async def test_a_chain_of_only_its_genesis_has_no_supply_to_chart(playground):
    p, w = playground, playground.world
    await answer(p, w.alice, "playground config", {"cooldown": 0})  # creates the chain, mines nothing
    h = await p.run(w.bob, "chain chart", {"kind": "supply"})
    await h.wait_response(30)
    assert "only its genesis block" in error_text(h)


async def test_a_long_first_replay_is_refused_ephemerally_goes_on_and_costs_no_cooldown(playground, monkeypatch):
    p, w = playground, playground.world
    await answer(p, w.alice, "playground config", {"cooldown": 0})
    await mine_block(p, w.alice)
    await mine_block(p, w.alice)
    supply = p.bot.services.node.reads.supply
    release = threading.Event()
    original = SupplyReplay.extend

    def slow_extend(self, block, now, *args):
        release.wait(30)  # the test lets the replay go once the member was answered
        original(self, block, now, *args)

    monkeypatch.setattr(SupplyReplay, "extend", slow_extend)
    supply.wait_s = 0
    h = await p.run(w.bob, "chain chart", {"kind": "supply"})
    await h.wait_response(30)
    assert not h.deferred
    assert "being replayed from the stored chain (block 0 of 2 so far); ask again in a few seconds" in error_text(h)
    running = supply._running[guild_id(p)]
    release.set()
    await running
    # The same member at once: the kept replay answers, and the refusal spent no cooldown.
    supply.wait_s = 30
    again = await p.run(w.bob, "chain chart", {"kind": "supply"})
    message = await again.wait_response(30)
    (attachment,) = message.attachments
    assert attachment.description.startswith("Line chart of the points supply over block height 0 to 2")
