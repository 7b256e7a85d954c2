"""/doublespend: an attacker pays a merchant, mines a private branch and publishes it (issue 11, item 4).

The round is the engine's (``chain.adapters.double_spend``, through the façade); this cog converts
the options, tells the engine who is on the attacking team (a member, or every member with a role,
looked up when they first ``/mine``), and formats the plan, the status and the summary with the
Bitcoin paper's figure P(q, k) before and after.
"""

from __future__ import annotations

import logging
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

import discord
from discord import app_commands
from discord.ext import commands

from chain.hashing import hash_to_display
from chain.playground import (
    MAX_DEADLINE_MINUTES,
    MAX_GAME_CONFIRMATIONS,
    MAX_LENT_PERCENT,
    MIN_GAME_CONFIRMATIONS,
    DoubleSpendPlan,
    DoubleSpendStatus,
    DoubleSpendSummary,
    EndReason,
    Playground,
    Verdict,
)
from cogs.chart_book import ChartPicture
from cogs.embeds import BLUE, GREEN, ORANGE, RED, counted, points, short
from cogs.errors import PlaygroundCog, UserFacingError, require_guild
from cogs.game_charts import double_spend_tree, game_picture, with_picture
from cogs.options import Range
from cogs.services import Services

log = logging.getLogger(__name__)

# Points a round can put at stake: any wallet's balance fits (the engine checks the balance itself).
MAX_AMOUNT = 10**12
PAPER = "Nakamoto 2008, §11"
NO_ROUND = ("No double spend is running on this server; an admin starts one with `/doublespend start`. "
            "Nothing was changed.")


def share_text(q: Fraction | None) -> str:
    """q as a decimal with 3 places (exact: no binary float on the way)."""
    if q is None:
        return "not known yet"
    value = (Decimal(q.numerator) / Decimal(q.denominator)).quantize(Decimal("0.001"), ROUND_HALF_EVEN)
    return f"{value:f}"


def figure_text(p: Decimal | None) -> str:
    return "—" if p is None else f"{p:f}"


def team_text(plan: DoubleSpendPlan, team_role_id: int | None) -> str:
    who = f"<@{plan.payer}>"
    return who if team_role_id is None else f"{who} and <@&{team_role_id}>"


def lent_text(plan: DoubleSpendPlan) -> str:
    return f"attackers {plan.attack_percent} % · honest side {plan.honest_percent} %"


def start_embed(status: DoubleSpendStatus, team_role_id: int | None) -> discord.Embed:
    plan = status.plan
    embed = discord.Embed(
        title="🕵️ Double spend: the attack begins",
        description=(
            f"{team_text(plan, team_role_id)} pay <@{plan.merchant}> **{points(plan.amount)}** "
            f"(payment {short(hash_to_display(status.payment_txid), 16)}, in the mempool now). The merchant ships "
            f"after **{counted(plan.confirmations, 'confirmation')}**.\n"
            f"Meanwhile the attackers mine a **private branch** from block #{status.fork_height}, where the same "
            "points go to the attackers' own wallet instead. If it ends up with more work than the public chain, "
            "publishing it reverses the payment."
        ),
        colour=ORANGE,
    )
    embed.add_field(name="Hashing core lent by the bot", value=lent_text(plan), inline=False)
    embed.add_field(name="q (attackers' share, as set)", value=share_text(plan.planned_share))
    embed.add_field(name="k", value=str(plan.confirmations))
    embed.add_field(name=f"P(q, k) before ({PAPER})", value=figure_text(status.p_before))
    embed.add_field(
        name="Ends",
        value=(
            f"<t:{int(status.deadline_at)}:R> at the latest. Published automatically once the payment has "
            f"{plan.confirmations} confirmation(s) and the private branch has more work."
        ),
        inline=False,
    )
    embed.set_footer(text="Attackers: /mine mines on the private branch · /doublespend status · /doublespend publish")
    return embed


def race_lines(status: DoubleSpendStatus) -> str:
    race = status.race
    leader = "the private branch is heavier" if race.private_is_heavier else "the public chain is heavier (or level)"
    return (
        f"Public chain since #{status.fork_height}: **{counted(race.public_blocks, 'block')}**, "
        f"work {race.public_work:,}\n"
        f"Private branch: **{counted(race.private_blocks, 'block')}**, work {race.private_work:,}\n"
        f"→ {leader}"
    )


def status_embed(status: DoubleSpendStatus) -> discord.Embed:
    plan, race = status.plan, status.race
    embed = discord.Embed(title="🕵️ Double spend: status", description=race_lines(status), colour=BLUE)
    embed.add_field(name="Payment confirmations", value=f"{race.confirmations} of {plan.confirmations}")
    embed.add_field(name="q as set", value=share_text(plan.planned_share))
    embed.add_field(name="P(q, k) before", value=figure_text(status.p_before))
    embed.add_field(name="Ends", value=f"<t:{int(status.deadline_at)}:R> at the latest", inline=False)
    return embed


TITLES = {
    Verdict.DOUBLE_SPENT: ("💸 Double spent: the payment was reversed after the merchant shipped", RED),
    Verdict.REVERSED_TOO_EARLY: ("⚠️ Reversed, but before the merchant shipped: the attack gained nothing", ORANGE),
    Verdict.PUBLIC_CHAIN_WON: ("🛡️ The public chain won: the payment stands", GREEN),
}
REASONS = {
    EndReason.PUBLISHED: "published on request",
    EndReason.AUTOMATIC: "published automatically (k confirmations and a heavier private branch)",
    EndReason.DEADLINE: "the deadline: the private blocks were published as they were",
}


def summary_embed(summary: DoubleSpendSummary) -> discord.Embed:
    plan, race = summary.plan, summary.race
    title, colour = TITLES[summary.verdict]
    embed = discord.Embed(title=title, colour=colour)
    txid = short(hash_to_display(summary.payment_txid), 16)  # in backticks already
    if summary.verdict is Verdict.PUBLIC_CHAIN_WON:
        outcome = (f"Payment {txid} of {points(plan.amount)} to <@{plan.merchant}> stands; the private blocks "
                   "stay in the block tree as orphans.")
    else:
        outcome = (f"Payment {txid} of {points(plan.amount)} to <@{plan.merchant}> **reversed** (nonce replay): "
                   "the same points went to the attackers' wallet.")
    embed.description = (
        f"{outcome}\nReorg depth: **{summary.reorg_depth}** · the merchant had seen "
        f"{race.confirmations} of {plan.confirmations} confirmation(s) · ended: {REASONS[summary.reason]}."
    )
    member_honest = max(0, race.public_blocks - summary.honest_bot_blocks)
    embed.add_field(
        name="Blocks since the fork",
        value=(
            f"attackers {race.private_blocks} (bot {summary.attacker_bot_blocks}, members "
            f"{summary.attacker_member_blocks}), work {race.private_work:,}\n"
            f"honest {race.public_blocks} (bot {summary.honest_bot_blocks}, members {member_honest}), "
            f"work {race.public_work:,}"
        ),
        inline=False,
    )
    embed.add_field(
        name="Attackers' share q",
        value=f"as set {share_text(plan.planned_share)} · measured {share_text(summary.q_measured)}",
        inline=False,
    )
    embed.add_field(
        name=f"P(q, k = {plan.confirmations}), {PAPER}",
        value=(f"before (q as set): {figure_text(summary.p_before)} · "
               f"after (q measured): {figure_text(summary.p_after)}"),
        inline=False,
    )
    if summary.publish_error is not None:
        embed.add_field(name="A private block was refused", value=summary.publish_error[:1000], inline=False)
    return embed


# On the group: Discord ignores guild_only on subcommands, so only this keeps it out of DMs.
@app_commands.guild_only()
class DoubleSpend(
    PlaygroundCog, commands.GroupCog, group_name="doublespend",
    group_description="A double-spend attack on this server's chain",
):
    def __init__(self, services: Services) -> None:
        self.services = services
        self.playground: Playground = services.playground
        super().__init__()

    @app_commands.command(name="start")
    @app_commands.describe(
        attacker="The member who pays the merchant (the attacker's wallet)",
        merchant="The member who is paid and ships after k confirmations",
        amount="Points paid to the merchant",
        confirmations="k: confirmations the merchant waits for",
        attack_share="Percent of the bot's hashing core mining for the attackers",
        honest_share="Percent of the bot's hashing core mining honestly",
        team="A role whose members mine with the attacker (optional)",
        minutes="The round ends after this many minutes at the latest",
    )
    async def start(
        self,
        interaction: discord.Interaction,
        attacker: discord.Member,
        merchant: discord.Member,
        amount: Range[int, 1, MAX_AMOUNT],
        confirmations: Range[int, MIN_GAME_CONFIRMATIONS, MAX_GAME_CONFIRMATIONS] = 2,
        attack_share: Range[int, 0, MAX_LENT_PERCENT] = 0,
        honest_share: Range[int, 0, MAX_LENT_PERCENT] = 0,
        team: discord.Role | None = None,
        minutes: Range[int, 1, MAX_DEADLINE_MINUTES] = 10,
    ) -> None:
        """Admins: start a double-spend round (the payment, the private branch, the bot's lent hash power)."""
        guild_id = require_guild(interaction)
        # Mirrors /playground: the Manage Server permission, checked when the command runs.
        if not interaction.permissions.manage_guild:
            raise app_commands.MissingPermissions(["manage_guild"])
        payer = str(attacker.id)
        attackers = {payer}
        if team is not None and any(role.id == team.id for role in merchant.roles):
            attackers.add(str(merchant.id))
        guild = interaction.guild
        team_id = None if team is None else team.id

        async def is_attacker(owner: str) -> bool:
            if owner == payer:
                return True
            if team_id is None or guild is None or not owner.isdigit():
                return False
            member = guild.get_member(int(owner))
            if member is None:
                try:
                    member = await guild.fetch_member(int(owner))
                except discord.HTTPException:
                    return False  # not a member (any more): mines honestly
            return any(role.id == team_id for role in member.roles)

        channel = interaction.channel

        async def on_end(summary: DoubleSpendSummary) -> None:
            # A publish command answers with the summary itself; the others are announced here.
            if summary.reason is not EndReason.PUBLISHED and isinstance(channel, discord.abc.Messageable):
                picture = await self._picture(guild_id, summary)
                await channel.send(**with_picture(summary_embed(summary), picture),
                                   allowed_mentions=discord.AllowedMentions.none())

        status = await self.playground.start_double_spend(
            guild_id, payer=payer, merchant=str(merchant.id), attackers=frozenset(attackers), amount=amount,
            confirmations=confirmations, attack_percent=attack_share, honest_percent=honest_share,
            deadline_minutes=minutes, is_attacker=is_attacker, on_end=on_end,
        )
        await interaction.response.send_message(
            embed=start_embed(status, team_id), allowed_mentions=discord.AllowedMentions.none()
        )

    @app_commands.command(name="status")
    async def status(self, interaction: discord.Interaction) -> None:
        """The running round: the payment's confirmations and both branches since the fork (only you see it)."""
        guild_id = self._running(interaction)
        status = await self.playground.double_spend_status(guild_id)
        await interaction.response.send_message(embed=status_embed(status), ephemeral=True)

    @app_commands.command(name="publish")
    async def publish(self, interaction: discord.Interaction) -> None:
        """Attackers or admins: publish the private branch now, and see the summary."""
        guild_id = self._running(interaction)
        # Publishing is one block check per private block, milliseconds each on a class's chain: a
        # refusal is still answered ephemerally. Deferred after it: the picture may take seconds.
        summary = await self.playground.publish_double_spend(
            guild_id, str(interaction.user.id), admin=interaction.permissions.manage_guild
        )
        await interaction.response.defer(thinking=True)
        picture = await self._picture(guild_id, summary)
        await interaction.followup.send(
            **with_picture(summary_embed(summary), picture), allowed_mentions=discord.AllowedMentions.none()
        )

    async def _picture(self, guild_id: int, summary: DoubleSpendSummary) -> ChartPicture | None:
        """The block tree from the fork: the attackers' branch and the honest one, and which won."""
        return await game_picture(self.services.charts, guild_id, "doublespend",
                                  lambda: double_spend_tree(self.playground, guild_id, summary.fork_height))

    def _running(self, interaction: discord.Interaction) -> int:
        guild_id = require_guild(interaction)
        if not self.playground.has_double_spend(guild_id):
            raise UserFacingError(NO_ROUND)
        return guild_id

    async def stop_all_sessions(self, reason: str) -> None:
        """Shutdown (bot/app.py calls it on every cog): running rounds stop without publishing."""
        log.info("stopping double-spend rounds: %s", reason)
        await self.playground.stop_double_spends()

    async def cog_unload(self) -> None:
        await self.stop_all_sessions("the double-spend module was unloaded")


async def setup(bot: commands.Bot) -> None:
    services: Services = bot.services  # type: ignore[attr-defined]
    await bot.add_cog(DoubleSpend(services))
