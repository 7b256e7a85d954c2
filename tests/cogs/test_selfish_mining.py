"""/selfish's embeds (cogs/selfish_mining.py): the figures they show, from game snapshots."""

from __future__ import annotations

from fractions import Fraction
from types import SimpleNamespace

import pytest
from discord import app_commands

from chain.adapters.selfish_mining import SelfishSnapshot, SelfishTally, SideTally
from chain.games.selfish_mining import PoolState
from cogs.errors import describe_error
from cogs.selfish_mining import SelfishMining, percent, start_embed, status_embed, summary_embed


def snapshot(alpha=Fraction(2, 5), gamma=Fraction(0), pool=(9, 1, 400), honest=(6, 4, 600), **changes):
    values = dict(
        chain_id=1, alpha=alpha, gamma=gamma, state=PoolState(),
        tally=SelfishTally(SideTally(*pool), SideTally(*honest), 0),
        started_at=1_000.0, ends_at=1_120.0, at=1_120.0, start_height=10, tip_height=25, steps=20, races=3,
        races_on_pool=1, late=0, stale_finds=0, reason="deadline",
    )
    values.update(changes)
    return SelfishSnapshot(**values)


def text(embed) -> str:
    return "\n".join([embed.title or "", embed.description or ""] + [f"{f.name}\n{f.value}" for f in embed.fields]
                     + [embed.footer.text or ""])


def test_percentages_are_rounded_exactly_to_a_tenth():
    assert percent(Fraction(1, 3)) == "33.3%"
    assert percent(Fraction(2, 3)) == "66.7%"
    assert percent(Fraction(104, 215)) == "48.4%"
    assert percent(Fraction(1)) == "100.0%" and percent(Fraction(0)) == "0.0%"
    assert percent(None) == "–"


def test_the_summary_sets_each_sides_share_of_the_main_chain_against_its_hash_power_and_the_paper():
    shown = text(summary_embed(snapshot()))
    # Pool 9 of 15 main-chain blocks (60.0%), honest 6 (40.0%); hashes 400 of 1,000 measured.
    assert "On the main chain: **9** (60.0%)" in shown and "On the main chain: **6** (40.0%)" in shown
    assert "Orphaned: **1**" in shown and "Orphaned: **4**" in shown
    assert "set 40.0%, measured 40.0%" in shown and "set 60.0%, measured 60.0%" in shown
    # The paper for α = 2/5, γ = 0: R = 104/215 ≈ 48.4%, threshold 1/3.
    assert "R(α, γ): **48.4%**" in shown and "(1−γ)/(3−2γ) = **33.3%** (one third for γ = 0)" in shown
    assert "more than its 40.0%" in shown and "above the threshold" in shown
    assert "ended at its deadline after 2 min." in shown
    assert "3 races" in shown and "1 with the bot's honest miner" in shown


def test_the_summary_below_the_threshold_and_with_nothing_on_the_main_chain():
    shown = text(summary_embed(snapshot(alpha=Fraction(1, 10), pool=(0, 0, 0), honest=(0, 0, 0), reason="stopped")))
    assert "No block joined the main chain" in shown and "below the threshold" in shown
    assert "earns less than its share" in shown and "stopped by an admin" in shown
    assert "measured –" in shown


def test_the_summary_says_when_the_network_outran_the_pool_or_blocks_stayed_unpublished():
    shown = text(summary_embed(snapshot(late=2, tally=SelfishTally(SideTally(1, 0, 1), SideTally(1, 0, 1), 3))))
    assert "2 times the network outran the pool" in shown and "3 pool blocks never published" in shown


def test_start_and_status_embeds():
    started = text(start_embed(snapshot(gamma=Fraction(1, 2), reason=None)))
    assert "α = 40.0%" in started and "γ = 50.0%" in started and "<t:1120:R>" in started
    assert "`/mine start`" in started and "(1−γ)/(3−2γ) = **25.0%**" in started
    status = text(status_embed(snapshot(state=PoolState(3, 1, 1), reason=None)))
    assert "state **2**" in status and "3 blocks on its branch, 2 withheld" in status


def test_the_summary_of_a_game_whose_chain_was_started_over():
    shown = text(summary_embed(snapshot(reason="reset", chain_replaced=True, pool=(0, 0, 0), honest=(0, 0, 0))))
    assert "chain was started over" in shown and "nothing could be counted" in shown


async def test_a_member_without_manage_server_is_refused_even_from_a_modified_client():
    """``default_permissions`` only hides /selfish; a server can override it, so the cog checks again."""
    cog = SelfishMining.__new__(SelfishMining)  # the check reads nothing of the cog's services
    member = SimpleNamespace(permissions=SimpleNamespace(manage_guild=False), guild_id=1, command=None)
    with pytest.raises(app_commands.MissingPermissions) as refused:
        await cog.interaction_check(member)
    assert describe_error(refused.value) == "You need the Manage Server permission for this."
