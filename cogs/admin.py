"""/playground: server administration (Manage Server only)."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from cogs.embeds import BLUE
from cogs.errors import PlaygroundCog, require_guild
from cogs.services import Services


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

    @app_commands.command(name="status")
    async def status(self, interaction: discord.Interaction) -> None:
        """The chain, the webhook and the hashing core at a glance."""
        guild_id = require_guild(interaction)
        state = await self.services.ensure_chain(guild_id)
        embed = discord.Embed(title="🛠️ Playground status", colour=BLUE)
        embed.add_field(name="Height", value=str(state.height))
        embed.add_field(name="Pending transfers", value=str(len(self.services.node.chain(guild_id).mempool)))
        await interaction.response.send_message(embed=embed, ephemeral=True)


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Admin(bot.services))  # type: ignore[attr-defined]
