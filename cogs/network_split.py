"""/split: a network split game (issue 11, games item 6).

An admin splits the server's miners in two by a role (``/split start``): group A has the role, group B
is everyone else. Each group's ``/mine`` mines its own branch and sees only its own blocks
(``/split status``); ``/wallet pay`` reaches both sides, ``/split pay`` only the payer's. The split heals
at its deadline or on ``/split heal``: the heavier branch wins (on proof of stake: the branch the votes
choose), and the summary says what was
orphaned, returned to the mempool or reversed. The game itself is the engine's
(``chain.adapters.network_split`` through the façade); this cog converts input and formats embeds.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import discord
from discord import app_commands
from discord.ext import commands

from chain.errors import GameAlreadyRunningError, NoGameRunningError, SplitUnavailableError
from chain.hashing import hash_to_display
from chain.playground import (
    LENT_OWNERS,
    MAX_SPLIT_MINUTES,
    MIN_SPLIT_MINUTES,
    InGroupA,
    Playground,
    SideFinality,
    SideView,
    SplitSummary,
    stake_percent,
)
from cogs.chart_book import ChartPicture
from cogs.embeds import BLUE, GOLD, GREY, ORANGE, counted, name_of, points, relative_time
from cogs.errors import PlaygroundCog, UserFacingError, require_guild
from cogs.game_charts import game_picture, split_tree, with_picture
from cogs.options import Flag, Range
from cogs.services import Services
from cogs.wallet import MAX_FEE_POINTS, MAX_PAYMENT_POINTS

log = logging.getLogger(__name__)

# Payments the summary lists one by one; the rest are counted.
LISTED_PAYMENTS = 5
EVERYONE_ELSE = "everyone else"
NO_SPLIT = "No network split is running on this server (an admin starts one with `/split start`)."
HEALED_HOW = {
    "deadline": "at its deadline",
    "admin": "by an admin (`/split heal`)",
    "shutdown": "as the bot restarted",
}


def require_manager(interaction: discord.Interaction) -> None:
    """Starting and healing a split are the admins' (Manage Server), as in ``/playground``."""
    if not interaction.permissions.manage_guild:
        raise app_commands.MissingPermissions(["manage_guild"])


def role_checker(guild: discord.Guild, role_id: int) -> InGroupA:
    """Whether a member (by owner id) has the split's role: read from Discord once per member (the
    bot has no member list; the game keeps the answer for the split)."""

    async def in_group_a(owner: str) -> bool:
        member = guild.get_member(int(owner))
        if member is None:
            try:
                member = await guild.fetch_member(int(owner))
            except discord.NotFound:
                return False
        return any(role.id == role_id for role in member.roles)

    return in_group_a


def finality_text(finality: SideFinality) -> str:
    """A hybrid side's votes: its share of the stake, whether that is the two thirds, its checkpoints."""
    share = stake_percent(finality.stake, finality.total)
    enough = finality.stake * 3 >= finality.total * 2 and finality.total > 0
    can = "two thirds or more: can justify" if enough else "under two thirds: cannot justify"
    return (
        f"votes: {share}% of the stake ({can})"
        f" · justified epoch {finality.justified_epoch:,} · finalized epoch {finality.finalized_epoch:,}"
    )


def side_text(view: SideView, names: Mapping[bytes, str]) -> str:
    work = "" if view.proof_of_stake else f" · work {view.work:,}"
    found = "proposer" if view.proof_of_stake else "miner"
    lines = [
        f"**{counted(view.blocks, 'block')}** since the split · tip block {view.height:,}{work}",
        f"{counted(view.miners, found)} on this side · {counted(view.side_payments, 'side-only payment')} waiting",
    ]
    if view.finality is not None:
        lines.append(finality_text(view.finality))
    for block in reversed(view.latest):
        lines.append(
            f"block {block.height:,} `{hash_to_display(block.block_hash)[:16]}…` by {name_of(names, block.miner)}"
            f" · {counted(len(block.transfers), 'payment')}"
        )
    return "\n".join(lines)


def status_embed(view: SideView, ends_at: int, names: Mapping[bytes, str]) -> discord.Embed:
    embed = discord.Embed(
        title=f"🔀 Your side of the split: group {view.side} ({view.group})",
        description=(
            f"You see only your own group's blocks: the network is split until {relative_time(ends_at)}. "
            + ("Your group's validators propose this branch's blocks when drawn; "
               if view.proof_of_stake else "`/mine start` extends this branch; ")
            + "`/wallet pay` reaches both sides, `/split pay` only yours."
        ),
        colour=BLUE,
    )
    embed.add_field(name="This side's branch", value=side_text(view, names), inline=False)
    return embed


POS_HOW_TO_PLAY = (
    "Nobody mines here: each slot, the validator drawn on each side's branch proposes that side's block if it "
    "belongs to that group (validators are split by the role too), and the main chain waits.\n"
    "`/split status` shows your side's branch (only yours).\n"
    "`/wallet pay` reaches both sides; `/split pay` reaches only yours.\n"
    "When the split heals, both branches are published and the votes choose: the branch with more attesting "
    "stake becomes the main chain (LMD-GHOST). A side justifies a checkpoint only with two thirds of the stake, "
    "and a checkpoint finalized on a branch is never reverted."
)


def start_embed(
    group_a: str, minutes: int, ends_at: int, base_height: int, *, bot_miners: bool = False, hybrid: bool = False,
    proof_of_stake: bool = False,
) -> discord.Embed:
    embed = discord.Embed(
        title="🔀 The network is split",
        description=(
            f"For {counted(minutes, 'minute')} (heals {relative_time(ends_at)}), this server's miners are two "
            f"networks that cannot hear each other. Both branches start at block {base_height:,}."
        ),
        colour=ORANGE,
    )
    embed.add_field(name="Group A", value=f"members with {group_a}", inline=True)
    embed.add_field(name="Group B", value=EVERYONE_ELSE, inline=True)
    if bot_miners:
        embed.add_field(name="The bot", value="mines on each side too, with one member's share of the hash power",
                        inline=True)
    if proof_of_stake:
        embed.add_field(name="How to play (proof of stake)", value=POS_HOW_TO_PLAY, inline=False)
        return embed
    embed.add_field(
        name="How to play",
        value=(
            "`/mine start` mines on your group's side: its blocks are kept on that side until the heal.\n"
            "`/split status` shows your side's branch (only yours).\n"
            "`/wallet pay` reaches both sides (it can confirm on each); `/split pay` reaches only yours: "
            "pay two people with the same points, one per side, and see which payment survives.\n"
            "When the split heals, the branch with the most work wins; the other's blocks are orphaned."
        ),
        inline=False,
    )
    if hybrid:
        embed.add_field(
            name="Votes (hybrid chain)",
            value=(
                "Validators are split too: the bot votes for those with auto-attest on, only on their own "
                "group's blocks. A side justifies a checkpoint only with two thirds of the stake; a checkpoint "
                "finalized on one side is kept at the heal even against the other side's heavier branch."
            ),
            inline=False,
        )
    return embed


def summary_embed(summary: SplitSummary, names: Mapping[bytes, str]) -> discord.Embed:
    a, b = summary.sides
    if summary.winner is None:
        found = "proposed" if summary.proof_of_stake else "found"
        verdict = f"Neither side {found} a block: nothing changed."
    else:
        won = a if summary.winner == a.side else b
        lost = b if won is a else a
        if won.work == lost.work:
            why = f"both sides added the same work ({won.work:,}); the branch seen first stays"
        else:
            why = f"it has more work ({won.work:,} against {lost.work:,})"
        verdict = f"Group {won.side} ({won.group})'s branch is the main chain: {why}."
        if summary.proof_of_stake and won.finality is not None and lost.finality is not None:
            verdict = (
                f"The votes chose group {won.side} ({won.group})'s branch (LMD-GHOST): its validators hold "
                f"{stake_percent(won.finality.stake, won.finality.total)}% of the stake, against "
                f"{stake_percent(lost.finality.stake, lost.finality.total)}% for group {lost.side} ({lost.group})."
            )
        refused = summary.refused_by_finality
        if refused is not None:
            verdict = (
                f"Group {lost.side} ({lost.group})'s branch has more work ({lost.work:,} against {won.work:,}), but "
                f"it conflicts with block {refused.finalized_height or 0:,}, finalized during the split: the node "
                f"refused it (a finalized checkpoint never reverts), and group {won.side} ({won.group})'s branch "
                "stays the main chain."
            )
    embed = discord.Embed(
        title="🔀 The split healed",
        description=f"Healed {HEALED_HOW.get(summary.reason, summary.reason)}. {verdict}",
        colour=GOLD if summary.winner is not None else GREY,
    )
    for side in (a, b):
        mark = " 🏆" if side.side == summary.winner else ""
        embed.add_field(
            name=f"Group {side.side} ({side.group}){mark}",
            value=(f"{counted(side.blocks, 'block')} · "
                   + ("" if summary.proof_of_stake else f"work {side.work:,} · ")
                   + f"tip block {side.tip_height:,} · "
                   + counted(side.miners, "proposer" if summary.proof_of_stake else "miner")
                   + ("" if side.finality is None else "\n" + finality_text(side.finality))),
            inline=True,
        )
    if summary.finalized_before is not None:
        embed.add_field(
            name="Finality",
            value=(f"finalized epoch {summary.finalized_before:,} before the split, "
                   f"{summary.finalized_after or 0:,} after the heal: a checkpoint finalized before the split "
                   "is on both branches, so it never reverts"),
            inline=False,
        )
    embed.add_field(
        name="Orphaned",
        value=("no block" if not summary.orphaned else
               f"{counted(summary.orphaned, 'block')} (a reorg {summary.reorg_depth} deep)" if summary.reorg_depth
               else f"{counted(summary.orphaned, 'block')} (no reorg: they never became the main chain)"),
        inline=False,
    )
    lines = [f"confirmed on both sides: {summary.confirmed_on_both}",
             f"double spends across the split: {summary.double_spends}"]
    for event in summary.returned[:LISTED_PAYMENTS]:
        lines.append(
            f"↩️ returned to the mempool: {name_of(names, event.sender)} → {name_of(names, event.recipient)} "
            f"{points(event.amount)} (was in orphaned block {event.height:,})"
        )
    for reversal in summary.reversed[:LISTED_PAYMENTS]:
        lines.append(
            f"❌ reversed: {name_of(names, reversal.sender)} → {name_of(names, reversal.recipient)} "
            f"{points(reversal.amount)} (was in orphaned block {reversal.height:,}; {reversal.reason})"
        )
    hidden = max(0, len(summary.returned) - LISTED_PAYMENTS) + max(0, len(summary.reversed) - LISTED_PAYMENTS)
    if hidden:
        lines.append(f"…and {counted(hidden, 'more payment')}")
    embed.add_field(
        name=f"Payments: {len(summary.returned)} returned, {len(summary.reversed)} reversed",
        value="\n".join(lines), inline=False,
    )
    notes = []
    if summary.stale_in_side:
        notes.append(f"{counted(summary.stale_in_side, 'block')} lost a race inside its own side")
    if summary.unpublished:
        notes.append(f"{counted(summary.unpublished, 'block')} could not be published (see the logs)")
    if notes:
        embed.set_footer(text="; ".join(notes))
    return embed


# On the group: Discord ignores guild_only on subcommands, so only this keeps it out of DMs.
@app_commands.guild_only()
class NetworkSplitCog(
    PlaygroundCog, commands.GroupCog, group_name="split",
    group_description="A network split: two groups mine two branches; the heavier wins when it heals",
):
    def __init__(self, services: Services) -> None:
        self.services = services
        self.playground: Playground = services.playground
        super().__init__()

    async def _names(self, guild_id: int) -> dict[bytes, str]:
        """Mentions for members' wallets, and the bot's lent miners named as such."""
        names = await self.services.owner_names(guild_id)
        for address, owner in (await self.playground.owners(guild_id)).items():
            if owner in LENT_OWNERS.values():
                names[address] = "🤖 the bot"
        return names

    @app_commands.command(name="start")
    @app_commands.describe(
        role="Group A: members with this role; group B: everyone else",
        minutes="How long the split lasts before it heals by itself",
        bot_miners="The bot mines on each side too (one member's share each), so a small class finds blocks",
    )
    async def start(
        self, interaction: discord.Interaction, role: discord.Role,
        minutes: Range[int, MIN_SPLIT_MINUTES, MAX_SPLIT_MINUTES], bot_miners: Flag = False,
    ) -> None:
        """(Admins) Split the miners in two by a role for a few minutes; each group mines its own branch."""
        guild_id = require_guild(interaction)
        require_manager(interaction)
        guild = interaction.guild
        if guild is None:
            raise app_commands.NoPrivateMessage()
        if role.is_default():
            raise UserFacingError("Pick a role some members have and others do not: with @everyone, "
                                  "group B would be empty. Nothing was changed.")
        group_a = f"@{role.name}"

        async def announce(summary: SplitSummary) -> None:
            if summary.reason == "admin":
                return  # /split heal answers with the summary itself
            embed = summary_embed(summary, await self._names(guild_id))
            picture = await self._picture(guild_id, summary)
            await interaction.followup.send(**with_picture(embed, picture),
                                            allowed_mentions=discord.AllowedMentions.none())

        try:
            split = await self.playground.start_split(
                guild_id, groups=(group_a, EVERYONE_ELSE), in_group_a=role_checker(guild, role.id),
                minutes=minutes, on_healed=announce, lent_weight=1 if bot_miners else 0,
            )
        except SplitUnavailableError as refused:
            raise UserFacingError(
                f"A network split cannot start on this server's chain now (**{refused.mode}**): its terminal "
                "proof-of-work block is mined and the Merge is not done yet, so its next block is neither mined "
                "nor proposed. Try again once it has merged. Nothing was changed."
            ) from None
        except GameAlreadyRunningError as running:
            raise UserFacingError(
                f"A {running.kind.replace('_', ' ')} game is already running on this server: one game at a time. "
                "Nothing was changed."
            ) from None
        embed = start_embed(group_a, minutes, split.ends_at, split.base_height,
                            bot_miners=bot_miners and not split.proof_of_stake, hybrid=split.hybrid,
                            proof_of_stake=split.proof_of_stake)
        await interaction.response.send_message(embed=embed, allowed_mentions=discord.AllowedMentions.none())

    @app_commands.command(name="heal")
    async def heal(self, interaction: discord.Interaction) -> None:
        """(Admins) Heal the split now: both branches are published and the heavier one wins."""
        guild_id = require_guild(interaction)
        require_manager(interaction)
        try:
            self.playground.split(guild_id)  # the usual refusal stays ephemeral: checked before deferring
        except NoGameRunningError:
            raise UserFacingError(NO_SPLIT) from None
        await interaction.response.defer(thinking=True)
        try:
            # Two heals at once (or the deadline first): exactly one heals, the other is told here.
            summary = await self.playground.heal_split(guild_id, "admin")
        except NoGameRunningError:
            raise UserFacingError(f"{NO_SPLIT} It may just have healed: its summary is in this channel.") from None
        names = await self._names(guild_id)
        picture = await self._picture(guild_id, summary)
        embed = summary_embed(summary, names)
        if picture is None:
            await interaction.edit_original_response(embed=embed)
        else:
            await interaction.edit_original_response(embed=picture.show_in(embed), attachments=[picture.file()])

    async def _picture(self, guild_id: int, summary: SplitSummary) -> ChartPicture | None:
        """The block tree from the split's base: both sides' branches, and which one the heal kept."""
        base = summary.base_height
        if base is None:
            return None
        return await game_picture(self.services.charts, guild_id, "split",
                                  lambda: split_tree(self.playground, guild_id, base))

    @app_commands.command(name="status")
    async def status(self, interaction: discord.Interaction) -> None:
        """Your group's side of the split: its branch's blocks and work (you cannot see the other side)."""
        guild_id = require_guild(interaction)
        try:
            split = self.playground.split(guild_id)
        except NoGameRunningError:
            raise UserFacingError(NO_SPLIT) from None
        side = await split.side_of(str(interaction.user.id))
        embed = status_embed(split.view(side), split.ends_at, await self._names(guild_id))
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @app_commands.command(name="pay")
    @app_commands.describe(
        member="Who receives the points",
        amount="How many points to send",
        fee="Points for the miner who confirms it",
    )
    async def pay(
        self,
        interaction: discord.Interaction,
        member: discord.Member,
        amount: Range[int, 1, MAX_PAYMENT_POINTS],
        fee: Range[int, 0, MAX_FEE_POINTS] = 0,
    ) -> None:
        """Pay on your side of the split only: the other side never hears of this payment."""
        guild_id = require_guild(interaction)
        if member.bot:
            raise UserFacingError("Bots can't hold points: pay a member instead.")
        if member.id == interaction.user.id:
            raise UserFacingError("You can't pay yourself.")
        try:
            side, tx = await self.playground.split_pay(
                guild_id, str(interaction.user.id), str(member.id), amount, fee
            )
        except NoGameRunningError:
            raise UserFacingError(f"{NO_SPLIT} `/wallet pay` pays on the whole network. Nothing was changed.") from None
        embed = discord.Embed(
            title=f"💸 Paid on group {side}'s side only",
            description=(f"{interaction.user.mention} → {member.mention}: **{points(amount)}** (fee {points(fee)}), "
                         f"nonce {tx.nonce}. Only group {side}'s miners hear of it; it confirms in their next block."),
            colour=BLUE,
        )
        embed.add_field(name="Transaction", value=f"`{hash_to_display(tx.txid())}`", inline=False)
        await interaction.response.send_message(embed=embed, allowed_mentions=discord.AllowedMentions.none())

    async def stop_all_sessions(self, reason: str) -> None:
        """Bot shutdown: heal every running split so that its blocks are published, not lost."""
        await self.playground.close_splits()


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(NetworkSplitCog(bot.services))  # type: ignore[attr-defined]
