"""/split's embeds and checks (cogs/network_split.py), without Discord."""

from types import SimpleNamespace

import discord
import pytest
from discord import app_commands

from chain.adapters.network_split import SideSummary, SideView, SplitSummary
from chain.adapters.split_votes import SideFinality
from chain.events import PaymentReturnedToMempool, PaymentReversed, ReorgRefusedByFinality
from chain.games.network_split import SideBlock
from cogs.network_split import require_manager, role_checker, start_embed, status_embed, summary_embed

ALICE, BOB, CAROL = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
NAMES = {ALICE: "<@1>", BOB: "<@2>", CAROL: "<@3>"}


def embed_text(embed: discord.Embed) -> str:
    parts = [embed.title or "", embed.description or ""]
    parts += [f"{f.name}\n{f.value}" for f in embed.fields]
    parts.append(embed.footer.text or "")
    return "\n".join(parts)


def summary(**changes) -> SplitSummary:
    values = dict(
        reason="deadline",
        sides=(SideSummary("A", "@north", 1, 100, 6, 1), SideSummary("B", "everyone else", 2, 200, 7, 2)),
        published_first="A",
        winner="B",
        orphaned=1,
        reorg_depth=1,
        returned=(PaymentReturnedToMempool(txid=b"\x09" * 32, sender=ALICE, recipient=BOB, amount=5, fee=0, nonce=0,
                                           height=6),),
        reversed=(PaymentReversed(txid=b"\x08" * 32, sender=CAROL, recipient=ALICE, amount=30, fee=0, nonce=0,
                                  height=6, code="nonce", reason="its nonce was used by another payment"),),
        confirmed_on_both=1,
        double_spends=1,
        unpublished=0,
        stale_in_side=0,
    )
    values.update(changes)
    return SplitSummary(**values)


def test_the_summary_names_the_winner_each_side_and_what_the_reorg_undid():
    text = embed_text(summary_embed(summary(), NAMES))
    assert "Healed at its deadline" in text
    assert "Group B (everyone else)'s branch is the main chain: it has more work (200 against 100)" in text
    assert "Group A (@north)\n1 block · work 100 · tip block 6 · 1 miner" in text
    assert "Group B (everyone else) 🏆\n2 blocks · work 200 · tip block 7 · 2 miners" in text
    assert "1 block (a reorg 1 deep)" in text
    assert "Payments: 1 returned, 1 reversed" in text
    assert "↩️ returned to the mempool: <@1> → <@2> 5 pts (was in orphaned block 6)" in text
    assert "❌ reversed: <@3> → <@1> 30 pts (was in orphaned block 6; its nonce was used by another payment)" in text
    assert "confirmed on both sides: 1" in text and "double spends across the split: 1" in text


def test_a_tie_says_the_first_seen_branch_stays_and_no_blocks_says_nothing_changed():
    sides = (SideSummary("A", "@north", 1, 100, 6, 1), SideSummary("B", "everyone else", 1, 100, 6, 1))
    tie = embed_text(summary_embed(summary(sides=sides, winner="A", reason="admin"), NAMES))
    assert "by an admin (`/split heal`)" in tie
    assert "both sides added the same work (100); the branch seen first stays" in tie
    empty = (SideSummary("A", "@north", 0, 0, 5, 0), SideSummary("B", "everyone else", 0, 0, 5, 0))
    quiet = embed_text(summary_embed(summary(sides=empty, winner=None, orphaned=0, reorg_depth=0, returned=(),
                                             reversed=(), confirmed_on_both=0, double_spends=0), NAMES))
    assert "Neither side found a block: nothing changed." in quiet and "Orphaned\nno block" in quiet


def test_the_summary_footer_tells_of_blocks_lost_inside_a_side_or_not_published():
    text = embed_text(summary_embed(summary(stale_in_side=2, unpublished=1), NAMES))
    assert "2 blocks lost a race inside its own side; 1 block could not be published" in text


def test_status_shows_only_the_members_own_side_newest_block_first():
    blocks = tuple(
        SideBlock(bytes([n]) * 32, bytes([n - 1]) * 32, 5 + n, 10, ALICE, 50, (), n) for n in (1, 2)
    )
    view = SideView("A", "@north", 7, 20, 2, blocks, 1, 1)
    text = embed_text(status_embed(view, 1_900_000_000, NAMES))
    assert "Your side of the split: group A (@north)" in text and "<t:1900000000:R>" in text
    assert "**2 blocks** since the split · tip block 7 · work 20" in text
    assert text.index("block 7 ") < text.index("block 6 ") and "by <@1>" in text
    assert "1 side-only payment waiting" in text


def test_a_hybrid_summary_shows_each_sides_stake_and_checkpoints_and_a_refusal_by_finality():
    sides = (
        SideSummary("A", "@north", 20, 40, 48, 1, SideFinality(96, 128, 11, 10)),
        SideSummary("B", "everyone else", 22, 44, 50, 1, SideFinality(32, 128, 6, 5)),
    )
    refused = ReorgRefusedByFinality(tip_hash=b"\x05" * 32, fork_hash=b"\x06" * 32, finalized_hash=b"\x07" * 32,
                                     depth=20, branch_weight=100, canonical_weight=98, tip_height=49,
                                     finalized_height=40)
    text = embed_text(summary_embed(summary(sides=sides, winner="A", finalized_before=5, finalized_after=10,
                                            refused_by_finality=refused), NAMES))
    assert ("Group B (everyone else)'s branch has more work (44 against 40), but it conflicts with block 40, "
            "finalized during the split: the node refused it") in text
    assert "votes: 75% of the stake (two thirds or more: can justify) · justified epoch 11 · finalized epoch 10" in text
    assert "votes: 25% of the stake (under two thirds: cannot justify) · justified epoch 6 · finalized epoch 5" in text
    assert "finalized epoch 5 before the split, 10 after the heal" in text
    assert "1 block (no reorg: they never became the main chain)" in embed_text(summary_embed(
        summary(reorg_depth=0), NAMES))


def test_a_hybrid_status_shows_the_sides_votes():
    view = SideView("B", "everyone else", 7, 20, 2, (), 0, 1, SideFinality(64, 128, 3, 2))
    text = embed_text(status_embed(view, 1_900_000_000, NAMES))
    assert "votes: 50% of the stake (under two thirds: cannot justify) · justified epoch 3 · finalized epoch 2" in text


def test_the_start_embed_says_who_is_in_which_group_and_how_to_play():
    text = embed_text(start_embed("@north", 3, 1_900_000_000, 12))
    assert "For 3 minutes" in text and "Both branches start at block 12" in text
    assert "Group A\nmembers with @north" in text and "Group B\neveryone else" in text
    assert "`/split pay` reaches only yours" in text


def test_invalid_start_by_a_member_without_manage_server_is_refused():
    member = SimpleNamespace(permissions=discord.Permissions.none())
    with pytest.raises(app_commands.MissingPermissions):
        require_manager(member)  # type: ignore[arg-type]
    require_manager(SimpleNamespace(permissions=discord.Permissions(manage_guild=True)))  # type: ignore[arg-type]


async def test_the_role_is_read_from_the_cache_or_fetched_once_missing():
    north = SimpleNamespace(id=77)
    cached = SimpleNamespace(roles=[north])
    fetched = SimpleNamespace(roles=[])
    asked = []

    async def fetch_member(user_id: int):
        asked.append(user_id)
        if user_id == 3:
            raise discord.NotFound(SimpleNamespace(status=404, reason="gone"), "Unknown Member")
        return fetched

    guild = SimpleNamespace(get_member=lambda user_id: cached if user_id == 1 else None, fetch_member=fetch_member)
    in_group_a = role_checker(guild, 77)  # type: ignore[arg-type]
    assert await in_group_a("1") is True
    assert await in_group_a("2") is False
    assert await in_group_a("3") is False  # left the server: group B
    assert asked == [2, 3]


def test_the_start_embed_on_a_hybrid_chain_says_the_validators_are_split_too():
    assert "Votes (hybrid chain)" not in embed_text(start_embed("@north", 3, 1_900_000_000, 12))
    text = embed_text(start_embed("@north", 3, 1_900_000_000, 12, hybrid=True))
    assert "A side justifies a checkpoint only with two thirds of the stake" in text


def test_a_proof_of_stake_summary_says_the_votes_chose_the_branch_not_work():
    sides = (
        SideSummary("A", "@north", 12, 0, 40, 3, SideFinality(96, 128, 11, 10)),
        SideSummary("B", "everyone else", 4, 0, 33, 1, SideFinality(32, 128, 7, 6)),
    )
    text = embed_text(summary_embed(summary(sides=sides, winner="A", finalized_before=6, finalized_after=10,
                                            proof_of_stake=True), NAMES))
    assert ("The votes chose group A (@north)'s branch (LMD-GHOST): its validators hold 75% of the stake, "
            "against 25% for group B (everyone else).") in text
    assert "Group A (@north) 🏆\n12 blocks · tip block 40 · 3 proposers" in text and "work" not in text
    assert "votes: 25% of the stake (under two thirds: cannot justify) · justified epoch 7 · finalized epoch 6" in text
    assert "finalized epoch 6 before the split, 10 after the heal" in text


def test_the_start_embed_on_a_proof_of_stake_chain_says_the_proposers_are_split():
    text = embed_text(start_embed("@north", 3, 1_900_000_000, 12, hybrid=True, proof_of_stake=True))
    assert "How to play (proof of stake)" in text and "`/mine start`" not in text
    assert "the validator drawn on each side's branch proposes that side's block" in text
    assert "the branch with more attesting stake becomes the main chain" in text


def test_a_proof_of_stake_status_says_who_proposes_and_shows_no_work():
    view = SideView("A", "@north", 40, 0, 12, (), 0, 3, SideFinality(96, 128, 11, 10), proof_of_stake=True)
    text = embed_text(status_embed(view, 1_900_000_000, NAMES))
    assert "**12 blocks** since the split · tip block 40\n3 proposers on this side" in text
    assert "Your group's validators propose this branch's blocks when drawn" in text
    assert "· work" not in text and "/mine" not in text
