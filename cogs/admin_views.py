"""The confirmation prompt of /playground reset and of a mode switch: Confirm or Cancel, for the
admin who asked only, edited to say so when nobody answers in time."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import discord

from chain.mode import Mode
from chain.playground import ChainState
from chain.pos.beacon import ConsensusConfig
from cogs.admin_text import KEPT_BY_A_RESET, MODE_NAMES, NO_FEED_YET, describe_rules, mode_switch_text
from cogs.embeds import GREEN, GREY, ORANGE, duration, short
from cogs.errors import describe_error, reply_ephemeral
from cogs.services import Services

log = logging.getLogger(__name__)


async def ask_to_confirm(interaction: discord.Interaction, embed: discord.Embed, view: ResetView) -> None:
    """Post a reset or mode-switch prompt (what is kept, then the buttons); the view edits it on time-out."""
    embed.add_field(name="Kept", value=KEPT_BY_A_RESET, inline=False)
    callback = await interaction.response.send_message(
        embed=embed, view=view, allowed_mentions=discord.AllowedMentions.none()
    )
    if isinstance(callback.resource, discord.InteractionMessage):
        view.message = callback.resource


class ResetView(discord.ui.View):
    """Confirm or cancel a reset; only the admin who asked may press the buttons."""

    def __init__(
        self,
        services: Services,
        guild_id: int,
        admin_id: int,
        timeout_s: float,
        mode: Mode | None = None,
        base: ConsensusConfig | None = None,
        defaults: bool = False,
    ) -> None:
        super().__init__(timeout=timeout_s)
        self.services = services
        self.guild_id = guild_id
        self.admin_id = admin_id
        # A mode switch (``/playground config mode``) starts the new chain in that mode; None: a plain reset.
        self.mode = mode
        # Staking settings for the new chain (``/playground staking``); None: the old chain's.
        self.base = base
        # ``/playground reset defaults:True``: the default rules and mode, not the server's own.
        self.defaults = defaults
        if mode is not None:
            self.confirm.label = f"Start a new {mode} chain"
        self.what = "reset" if mode is None else "mode switch"
        self.message: discord.InteractionMessage | None = None
        self.finished = False

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id != self.admin_id:
            await reply_ephemeral(
                interaction, f"Only <@{self.admin_id}>, who asked for this {self.what}, can confirm or cancel it."
            )
            return False
        if not interaction.permissions.manage_guild:
            await reply_ephemeral(interaction, "You need the Manage Server permission for this.")
            return False
        if self.finished:
            await reply_ephemeral(interaction, f"This {self.what} was already answered.")
            return False
        return True

    @discord.ui.button(label="Reset the chain", style=discord.ButtonStyle.danger)
    async def confirm(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.finished = True
        self.stop()
        await interaction.response.edit_message(
            embed=discord.Embed(title="🔄 Resetting the chain…", colour=ORANGE), view=None
        )
        state, mode = await self._start_over(interaction)
        playground = self.services.playground
        if mode is None:
            description = (
                f"{interaction.user.mention} started the chain over. Block 0 is a new genesis block "
                f"{short(state.tip.hash_hex(), 16)}; `/mine start` mines block 1."
            )
        else:
            config = playground.consensus(self.guild_id) if playground.can_stake else None
            description = (
                f"{interaction.user.mention} started a new **{mode}** chain ({MODE_NAMES[mode]}). "
                f"Block 0 is a new genesis block {short(state.tip.hash_hex(), 16)}. "
                + mode_switch_text(mode, interaction.user.mention, config)
            )
        embed = discord.Embed(
            title="🔄 Chain reset" if self.mode is None else f"🔄 New {self.mode} chain",
            description=description,
            colour=GREEN,
        )
        embed.add_field(name="Gone", value="every block, balance, pending transfer and rule change", inline=False)
        embed.add_field(name="Kept", value=KEPT_BY_A_RESET, inline=False)
        embed.add_field(name="Rules", value=describe_rules(state.params), inline=False)
        if (await self.services.notifier.status(self.guild_id)).channel_id is None:
            embed.add_field(name="Announcements", value=NO_FEED_YET, inline=False)
        await interaction.edit_original_response(embed=embed, view=None)

    async def _start_over(self, interaction: discord.Interaction) -> tuple[ChainState, Mode | None]:
        """Delete the chain and create a new one: in the asked mode, else in the mode it had."""
        playground = self.services.playground
        mode = self.mode
        if mode is None and not self.defaults and playground.can_stake and playground.has_chain(self.guild_id):
            current = playground.mode(self.guild_id)
            if current is not None and current != self.services.default_consensus.mode:
                mode = current  # a pos or hybrid chain starts over as one
        if playground.offline_reason(self.guild_id) is not None:
            # It could not be loaded: start over with the defaults, then in the asked mode if any.
            state = await playground.reset_chain(self.guild_id, defaults=True)
            if mode is None or not playground.can_stake:
                return state, None
        elif mode is None or not playground.can_stake:
            await playground.ensure_chain(self.guild_id)
            return await playground.reset_chain(self.guild_id, defaults=self.defaults), None
        state = await playground.switch_mode(self.guild_id, mode, str(interaction.user.id), base=self.base)
        log.info("server %d switched to %s mode by %d", self.guild_id, mode, interaction.user.id)
        return state, mode

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary)
    async def cancel(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.finished = True
        self.stop()
        await interaction.response.edit_message(
            embed=discord.Embed(
                title=f"{self.what.capitalize()} cancelled", description="Nothing was changed.", colour=GREY
            ),
            view=None,
        )

    async def on_timeout(self) -> None:
        # discord.py calls on_timeout only for a view that has a timeout.
        if self.finished or self.message is None or self.timeout is None:
            return
        self.finished = True
        with contextlib.suppress(discord.HTTPException):
            await self.message.edit(
                embed=discord.Embed(
                    title=f"{self.what.capitalize()} not confirmed",
                    description=f"Nobody confirmed within {duration(self.timeout)}; nothing was changed.",
                    colour=GREY,
                ),
                view=None,
            )

    async def on_error(self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item[Any]) -> None:
        text = describe_error(error)
        if text is None:
            log.exception("%s of server %d failed", self.what, self.guild_id, exc_info=error)
            text = "Something went wrong on our side; please try again."
        if self.finished and interaction.response.is_done():
            # The prompt already says "Resetting…": say it did not happen.
            with contextlib.suppress(discord.HTTPException):
                await interaction.edit_original_response(
                    embed=discord.Embed(
                        title=f"{self.what.capitalize()} failed", description=f"❌ {text}", colour=GREY
                    ),
                    view=None,
                )
        with contextlib.suppress(discord.HTTPException):
            await reply_ephemeral(interaction, text)
