"""/playground: server administration (Manage Server only)."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from chain.params import ChainParams
from chain.state import compute_difficulty
from cogs.embeds import BLUE, GOLD, GREEN, GREY, points, short
from cogs.errors import (
    PlaygroundCog,
    UserFacingError,
    describe_error,
    reply_ephemeral,
    require_guild,
)
from cogs.services import MAX_SESSION_S, WEBHOOK_NAME, Services

log = logging.getLogger(__name__)

RESET_TIMEOUT_S = 60.0
# A block may be dated at most max_future_block_time_s (600 s) ahead, so no longer spacing.
MAX_BLOCK_TIME_S = 600
MAX_REWARD_POINTS = 1_000_000
MAX_HALVING_BLOCKS = 1_000_000
MAX_RETARGET_BLOCKS = 1000
MAX_COOLDOWN_S = 3600
ORANGE = discord.Colour.orange()
MAX_WEBHOOKS_ERROR = 30007  # Discord: "Maximum number of webhooks reached (15)"

# option -> (ChainParams field, label, format)
CONSENSUS_OPTIONS: dict[str, tuple[str, str, str]] = {
    "block_time": ("target_spacing_s", "Block time", "{:,} s"),
    "reward": ("initial_subsidy_points", "Reward", "{:,} pts"),
    "halving_interval": ("halving_interval_blocks", "Halving interval", "{:,} blocks"),
    "retarget_window": ("retarget_window_blocks", "Retarget window", "{:,} blocks"),
}
# option -> (server settings key, label, format)
SERVER_OPTIONS: dict[str, tuple[str, str, str]] = {
    "session_length": ("session_s", "Mining session length", "{:,} s"),
    "cooldown": ("cooldown_s", "Cooldown between sessions", "{:,} s"),
}


def describe_rules(params: ChainParams) -> str:
    return "\n".join(
        f"{label}: **{fmt.format(getattr(params, field))}**" for field, label, fmt in CONSENSUS_OPTIONS.values()
    )


def describe_rule_change(old: ChainParams, new: ChainParams) -> str:
    return ", ".join(
        f"{label.lower()} {fmt.format(getattr(old, field))} → {fmt.format(getattr(new, field))}"
        for field, label, fmt in CONSENSUS_OPTIONS.values()
        if getattr(old, field) != getattr(new, field)
    )


def when_rules_apply(height: int) -> str:
    return (
        f"Block {height + 1:,}, the next one mined, commits to the new rules in its coinbase; "
        f"they govern every block after it, from block {height + 2:,} on. "
        "(A session already mining finishes its block under the current rules; the change then waits a block.)"
    )


def bot_role_name(guild: discord.Guild) -> str:
    role = guild.self_role
    return role.name if role is not None else guild.me.display_name


def missing_webhooks_text(channel: discord.abc.GuildChannel, guild: discord.Guild, *, refused: bool = False) -> str:
    """Exactly what an admin has to grant so the bot can create a webhook in ``channel``.

    ``refused``: Discord said no although the bot's cache said yes, so where it is missing is unknown.
    """
    role = bot_role_name(guild)
    where = f"{channel.mention} → Edit Channel → Permissions → **{role}** → Manage Webhooks"
    if guild.me.guild_permissions.manage_webhooks and not refused:
        how = f"My role has it, but {channel.mention}'s permission overrides take it away: allow it in {where}."
    else:
        how = (
            f"Grant it in Server Settings → Roles → **{role}** → Manage Webhooks, "
            f"or for this channel only in {where}."
        )
    return (
        f"I need the **Manage Webhooks** permission in {channel.mention} to announce blocks there. {how} "
        "Then run `/playground setup` again. Nothing was changed."
    )


class ResetView(discord.ui.View):
    """Confirm or cancel a reset; only the admin who asked may press the buttons."""

    def __init__(self, services: Services, guild_id: int, admin_id: int, timeout_s: float) -> None:
        super().__init__(timeout=timeout_s)
        self.services = services
        self.guild_id = guild_id
        self.admin_id = admin_id
        self.message: discord.InteractionMessage | None = None
        self.finished = False

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id != self.admin_id:
            await reply_ephemeral(
                interaction, f"Only <@{self.admin_id}>, who asked for this reset, can confirm or cancel it."
            )
            return False
        if not interaction.permissions.manage_guild:
            await reply_ephemeral(interaction, "You need the Manage Server permission for this.")
            return False
        if self.finished:
            await reply_ephemeral(interaction, "This reset was already answered.")
            return False
        return True

    @discord.ui.button(label="Reset the chain", style=discord.ButtonStyle.danger)
    async def confirm(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.finished = True
        self.stop()
        await interaction.response.edit_message(
            embed=discord.Embed(title="🔄 Resetting the chain…", colour=ORANGE), view=None
        )
        await self.services.node.delete_chain(self.guild_id)
        state = await self.services.ensure_chain(self.guild_id)
        embed = discord.Embed(
            title="🔄 Chain reset",
            description=(
                f"{interaction.user.mention} started the chain over. Block 0 is a new genesis block "
                f"{short(state.tip.hash_hex(), 16)}; `/mine start` mines block 1."
            ),
            colour=GREEN,
        )
        embed.add_field(name="Gone", value="every block, balance, pending transfer and rule change", inline=False)
        embed.add_field(
            name="Kept",
            value="the webhook and its undelivered announcements, every member's wallet key and address, "
            "session length and cooldown",
            inline=False,
        )
        embed.add_field(name="Rules", value=describe_rules(state.params), inline=False)
        await interaction.edit_original_response(embed=embed, view=None)

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary)
    async def cancel(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.finished = True
        self.stop()
        await interaction.response.edit_message(
            embed=discord.Embed(title="Reset cancelled", description="Nothing was changed.", colour=GREY), view=None
        )

    async def on_timeout(self) -> None:
        if self.finished or self.message is None:
            return
        self.finished = True
        with contextlib.suppress(discord.HTTPException):
            await self.message.edit(
                embed=discord.Embed(
                    title="Reset not confirmed",
                    description=f"Nobody confirmed within {self.timeout:.0f}s; nothing was changed.",
                    colour=GREY,
                ),
                view=None,
            )

    async def on_error(self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item[Any]) -> None:
        text = describe_error(error)
        if text is None:
            log.exception("reset of server %d failed", self.guild_id, exc_info=error)
            text = "Something went wrong on our side; please try again."
        with contextlib.suppress(discord.HTTPException):
            await reply_ephemeral(interaction, text)


@app_commands.default_permissions(manage_guild=True)
@app_commands.guild_only()
class Admin(PlaygroundCog, commands.GroupCog, group_name="playground", group_description="Run this server's playground"):
    def __init__(self, services: Services) -> None:
        self.services = services
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        # default_permissions only hides the command; a server can override it, so check again.
        if not interaction.permissions.manage_guild:
            raise app_commands.MissingPermissions(["manage_guild"])
        return True

    # --- /playground setup ------------------------------------------------------------

    @app_commands.command(name="setup")
    @app_commands.describe(channel="The text channel where new blocks, rewards and difficulty changes are announced")
    async def setup(self, interaction: discord.Interaction, channel: discord.TextChannel) -> None:
        """Announce this server's blocks in a channel, through a webhook the bot creates there."""
        guild_id = require_guild(interaction)
        guild = channel.guild
        if not channel.permissions_for(guild.me).manage_webhooks:
            raise UserFacingError(missing_webhooks_text(channel, guild))
        await interaction.response.defer(ephemeral=True, thinking=True)
        notifier = self.services.notifier
        previous = await notifier.status(guild_id)
        try:
            webhook = await channel.create_webhook(name=WEBHOOK_NAME, reason=f"/playground setup by {interaction.user}")
        except discord.Forbidden:
            raise UserFacingError(missing_webhooks_text(channel, guild, refused=True)) from None
        except discord.HTTPException as exc:
            if exc.code != MAX_WEBHOOKS_ERROR:
                raise
            raise UserFacingError(
                f"{channel.mention} already has as many webhooks as Discord allows. Delete one in "
                f"{channel.mention} → Edit Channel → Integrations → Webhooks, or pick another channel. "
                "Nothing was changed."
            ) from None
        try:
            await webhook.send(
                f"🔔 From now on, new blocks, rewards and difficulty changes of this server's chain "
                f"are announced here (set up by {interaction.user.mention}).",
                username=WEBHOOK_NAME,
                wait=True,
                allowed_mentions=discord.AllowedMentions.none(),
            )
            await notifier.register(guild_id, channel.id, webhook.id, webhook.url)
        except BaseException:
            # A failed command changes nothing: take the new webhook away again.
            with contextlib.suppress(discord.HTTPException):
                await webhook.delete(reason="/playground setup failed")
            raise
        backlog = (await notifier.status(guild_id)).backlog
        embed = discord.Embed(
            title="🔔 Announcements set up",
            description=f"New blocks, rewards and difficulty changes now go to {channel.mention} "
            f"through the webhook **{WEBHOOK_NAME}**.",
            colour=GREEN,
        )
        if backlog:
            embed.add_field(
                name="Catching up",
                value=f"{backlog:,} announcement(s) kept while no webhook worked are being delivered now.",
                inline=False,
            )
        if previous.webhook_id is not None and previous.webhook_id != webhook.id:
            replaced = await self._remove_webhook(interaction.client, previous.webhook_id)
            if replaced:
                embed.add_field(name="Replaced", value=f"The previous webhook in <#{previous.channel_id}> was removed.",
                                inline=False)
        embed.set_footer(text="The webhook's URL is stored encrypted. If it is deleted, events are kept "
                         "until you run /playground setup again.")
        await interaction.followup.send(embed=embed, ephemeral=True)

    async def _remove_webhook(self, client: discord.Client, webhook_id: int) -> bool:
        """Best effort: the old webhook may be gone already or out of our reach."""
        try:
            old = await client.fetch_webhook(webhook_id)
            await old.delete(reason="replaced by /playground setup")
        except discord.HTTPException:
            return False
        return True

    # --- /playground config -------------------------------------------------------------

    @app_commands.command(name="config")
    @app_commands.describe(
        block_time="Seconds between blocks the difficulty aims for (a consensus rule)",
        reward="Points a block pays its miner before any halving (a consensus rule)",
        halving_interval="Blocks between halvings of the reward (a consensus rule)",
        retarget_window="Blocks between difficulty adjustments (a consensus rule)",
        session_length="Longest a /mine start session runs, in seconds",
        cooldown="Seconds a member waits after a mining session before starting another",
    )
    async def config(
        self,
        interaction: discord.Interaction,
        block_time: app_commands.Range[int, 10, MAX_BLOCK_TIME_S] | None = None,
        reward: app_commands.Range[int, 1, MAX_REWARD_POINTS] | None = None,
        halving_interval: app_commands.Range[int, 1, MAX_HALVING_BLOCKS] | None = None,
        retarget_window: app_commands.Range[int, 2, MAX_RETARGET_BLOCKS] | None = None,
        session_length: app_commands.Range[int, 10, MAX_SESSION_S] | None = None,
        cooldown: app_commands.Range[int, 0, MAX_COOLDOWN_S] | None = None,
    ) -> None:
        """Show this server's chain rules and mining settings, or change them."""
        guild_id = require_guild(interaction)
        state = await self.services.ensure_chain(guild_id)
        node = self.services.node
        given = {
            "block_time": block_time, "reward": reward, "halving_interval": halving_interval,
            "retarget_window": retarget_window, "session_length": session_length, "cooldown": cooldown,
        }
        settings = await self.services.server_settings(guild_id)
        pending: ChainParams | None = node.pending_params(guild_id)
        if all(v is None for v in given.values()):
            await interaction.response.send_message(
                embed=self._settings_embed(state.params, pending, settings, state.height), ephemeral=True
            )
            return

        base = pending or state.params
        rules = {
            field: given[option]
            for option, (field, _, _) in CONSENSUS_OPTIONS.items()
            if given[option] is not None and given[option] != getattr(base, field)
        }
        server = {
            key: given[option]
            for option, (key, _, _) in SERVER_OPTIONS.items()
            if given[option] is not None and given[option] != settings[key]
        }
        proposal: ChainParams | None = None
        if rules:
            spacing = rules.get("target_spacing_s", base.target_spacing_s)
            if spacing > base.max_future_block_time_s:
                raise UserFacingError(
                    f"This chain accepts block times up to {base.max_future_block_time_s:,} s "
                    f"(a block may not be dated further ahead than that). Nothing was changed."
                )
            proposal = base.evolve(**rules)
            await node.propose_params(guild_id, proposal)
        if server:
            stored = await node.store.get_server_settings(guild_id)
            await node.store.set_server_settings(guild_id, {**stored, **server})

        embed = discord.Embed(title="⚙️ Settings changed" if rules or server else "⚙️ Nothing to change", colour=GOLD)
        lines = []
        for option, (field, label, fmt) in CONSENSUS_OPTIONS.items():
            if field in rules:
                lines.append(f"{label}: {fmt.format(getattr(base, field))} → **{fmt.format(rules[field])}**")
            elif given[option] is not None:
                lines.append(f"{label}: already **{fmt.format(given[option])}**")
        for option, (key, label, fmt) in SERVER_OPTIONS.items():
            if key in server:
                lines.append(f"{label}: {fmt.format(settings[key])} → **{fmt.format(server[key])}**")
            elif given[option] is not None:
                lines.append(f"{label}: already **{fmt.format(given[option])}**")
        embed.description = "\n".join(lines)
        if proposal is not None:
            embed.add_field(name="Chain rules take effect", value=when_rules_apply(state.height), inline=False)
        if server:
            embed.add_field(
                name="Mining settings take effect",
                value="For mining sessions started from now on; sessions already running keep theirs.",
                inline=False,
            )
        await interaction.response.send_message(embed=embed, ephemeral=True)

    def _settings_embed(
        self, params: ChainParams, pending: ChainParams | None, settings: dict[str, Any], height: int
    ) -> discord.Embed:
        embed = discord.Embed(title="⚙️ Playground settings", colour=BLUE)
        embed.add_field(name="Chain rules", value=describe_rules(params), inline=False)
        if pending is not None:
            embed.add_field(
                name="Pending rule change",
                value=f"{describe_rule_change(params, pending)}. {when_rules_apply(height)}",
                inline=False,
            )
        embed.add_field(
            name="Mining",
            value="\n".join(
                f"{label}: **{fmt.format(settings[key])}**" for key, label, fmt in SERVER_OPTIONS.values()
            ),
            inline=False,
        )
        embed.set_footer(text="Change them with /playground config; chain rules change through the next block.")
        return embed

    # --- /playground status --------------------------------------------------------------

    @app_commands.command(name="status")
    async def status(self, interaction: discord.Interaction) -> None:
        """The chain, the webhook and the hashing core at a glance."""
        guild_id = require_guild(interaction)
        state = await self.services.ensure_chain(guild_id)
        node = self.services.node
        webhook = await self.services.notifier.status(guild_id)
        core = self.services.hashing_core.stats()
        here = [s for s in core.per_session if s.chain_id == guild_id]
        pending = node.pending_params(guild_id)

        embed = discord.Embed(title="🛠️ Playground status", colour=BLUE)
        embed.add_field(name="Height", value=f"{state.height:,}")
        embed.add_field(
            name="Difficulty", value=f"{compute_difficulty(state.tip.bits, state.params):,} (bits `{state.tip.bits:#010x}`)"
        )
        embed.add_field(name="Pending transfers", value=f"{len(node.chain(guild_id).mempool):,}")
        if webhook.channel_id is None:
            health = "not set up: `/playground setup` picks a channel"
        elif webhook.disabled_reason is not None:
            health = f"<#{webhook.channel_id}> — ⛔ disabled: {webhook.disabled_reason}. Run `/playground setup` again."
        elif webhook.retry_in_s > 0:
            health = f"<#{webhook.channel_id}> — ⏳ failing, next try in {webhook.retry_in_s:.0f}s"
        else:
            health = f"<#{webhook.channel_id}> — ✅ ok"
        embed.add_field(name="Webhook", value=health, inline=False)
        embed.add_field(name="Undelivered events", value=f"{webhook.backlog:,}")
        embed.add_field(name="Mining here", value=f"{len(here)} session(s)")
        rate = f"~{core.worker_rate * core.workers:,} H/s" if core.worker_rate else "rate measured when mining starts"
        embed.add_field(
            name="Hashing core", value=f"{core.workers} worker(s), {rate}, {core.sessions} session(s) in all"
        )
        embed.add_field(
            name="Rule change",
            value=f"{describe_rule_change(state.params, pending)}: {when_rules_apply(state.height)}"
            if pending is not None else "none pending",
            inline=False,
        )
        await interaction.response.send_message(embed=embed, ephemeral=True)

    # --- /playground reset ----------------------------------------------------------------

    @app_commands.command(name="reset")
    async def reset(self, interaction: discord.Interaction) -> None:
        """Start this server's chain over from a new genesis block (asks for confirmation)."""
        guild_id = require_guild(interaction)
        state = await self.services.ensure_chain(guild_id)
        holders = [acc.balance for acc in state.ledger.values() if acc.balance > 0]
        pending_transfers = len(self.services.node.chain(guild_id).mempool)
        view = ResetView(self.services, guild_id, interaction.user.id, RESET_TIMEOUT_S)
        embed = discord.Embed(
            title="⚠️ Reset this server's chain?",
            description=f"{interaction.user.mention} asked to start the chain over from a new genesis block. "
            f"Only they can confirm, within {RESET_TIMEOUT_S:.0f}s.",
            colour=ORANGE,
        )
        embed.add_field(
            name="Gone",
            value=f"all {state.height:,} block(s), every balance ({points(sum(holders))} held by "
            f"{len(holders)} member(s)), {pending_transfers} pending transfer(s) and any pending rule change; "
            "the rules go back to the defaults and running mining sessions end",
            inline=False,
        )
        embed.add_field(
            name="Kept",
            value="the webhook and its undelivered announcements, every member's wallet key and address, "
            "session length and cooldown",
            inline=False,
        )
        callback = await interaction.response.send_message(
            embed=embed, view=view, allowed_mentions=discord.AllowedMentions.none()
        )
        if isinstance(callback.resource, discord.InteractionMessage):
            view.message = callback.resource


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Admin(bot.services))  # type: ignore[attr-defined]
