"""/chain: explore this server's chain."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from chain.state import compute_difficulty
from cogs.embeds import block_embed
from cogs.errors import PlaygroundCog, require_guild
from cogs.services import Services


class Explorer(PlaygroundCog, commands.GroupCog, group_name="chain", group_description="Explore this server's chain"):
    def __init__(self, services: Services) -> None:
        self.services = services
        super().__init__()

    @app_commands.command(name="tip")
    @app_commands.guild_only()
    async def tip(self, interaction: discord.Interaction) -> None:
        """The newest block of this server's chain."""
        guild_id = require_guild(interaction)
        state = await self.services.ensure_chain(guild_id)
        block = await self.services.node.store.get_block(guild_id, height=state.height)
        names = await self.services.owner_names(guild_id)
        embed = block_embed(block, names, title=f"Tip: block {state.height}")
        embed.add_field(name="Difficulty", value=f"{compute_difficulty(state.tip.bits, state.params):,}")
        await interaction.response.send_message(embed=embed, allowed_mentions=discord.AllowedMentions.none())


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Explorer(bot.services))  # type: ignore[attr-defined]
