"""Turning failures into clear, ephemeral replies.

Every cog inherits ``PlaygroundCog``; its ``cog_app_command_error`` is the one
place where engine errors (``chain.errors.ChainError``, worded by their code in
``cogs.refusals``) and check failures become messages.  A failed command has changed nothing, because the engine
checks every precondition before it writes.
"""

from __future__ import annotations

import logging
import re

import discord
from discord import app_commands
from discord.ext import commands

from chain.errors import ChainError
from chain.playground import Playground
from cogs.chart_spec import ChartError
from cogs.embeds import duration
from cogs.options import OptionRefused
from cogs.refusals import refusal

log = logging.getLogger(__name__)


# Discord's client shows some permissions under other names than the API's.
DISCORD_PERMISSION_NAMES = {"manage_guild": "Manage Server"}
# "TextChannel" -> "Text Channel": discord.py names the channel type a channel option wanted.
CAMEL_WORDS = re.compile(r"(?<=[a-z])(?=[A-Z])")


class UserFacingError(Exception):
    """A refusal decided in a cog (not the engine), shown to the member as is."""


def describe_error(error: app_commands.AppCommandError | Exception) -> str | None:
    """The message for a known failure, or None for a bug."""
    if isinstance(error, app_commands.CommandInvokeError):
        error = error.original
    if isinstance(error, ChainError):
        return refusal(error)
    if isinstance(error, UserFacingError | OptionRefused):
        return str(error)
    if isinstance(error, ChartError):
        # A render over its time limit or a spec over a cap: nothing on the chain is involved.
        return f"That chart could not be drawn ({error}). Nothing was changed; try another chart or again later."
    if isinstance(error, app_commands.TransformerError):
        return describe_transformer_error(error)
    if isinstance(error, app_commands.CommandSignatureMismatch):
        return ("This command changed since your Discord app loaded it: reload Discord (Ctrl+R) and try again. "
                "Nothing was changed.")
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"Slow down: you can do that again in {duration(error.retry_after)}."
    if isinstance(error, app_commands.MissingPermissions):
        missing = ", ".join(
            DISCORD_PERMISSION_NAMES.get(p, p.replace("_", " ").title()) for p in error.missing_permissions
        )
        return f"You need the {missing} permission for this."
    if isinstance(error, app_commands.NoPrivateMessage):
        return "This command only works inside a server."
    if isinstance(error, app_commands.CheckFailure):
        return str(error) or "You can't use this command here."
    return None


def describe_transformer_error(error: app_commands.TransformerError) -> str:
    """discord.py could not turn an option into what the command takes: a user who is not
    a member of the server, a channel of another type or elsewhere (a modified client, or
    someone who left between picking and sending)."""
    value_id = getattr(error.value, "id", None)
    if error.type is discord.AppCommandOptionType.user:
        who = f"<@{value_id}>" if value_id is not None else "That user"
        return f"{who} is not a member of this server. Nothing was changed."
    if error.type is discord.AppCommandOptionType.channel:
        where = f"<#{value_id}>" if value_id is not None else "That channel"
        wanted = CAMEL_WORDS.sub(" ", error.transformer._error_display_name).lower()
        return f"{where} is not a {wanted} of this server. Nothing was changed."
    return f"That {error.type.name} option's value is not one this command accepts. Nothing was changed."


async def reply_ephemeral(interaction: discord.Interaction, text: str) -> None:
    embed = discord.Embed(description=f"❌ {text}", colour=discord.Colour.red())
    if interaction.response.is_done():
        await interaction.followup.send(embed=embed, ephemeral=True)
    else:
        await interaction.response.send_message(embed=embed, ephemeral=True)


class PlaygroundCog(commands.Cog):
    """Base of every cog: errors become ephemeral replies; chain cogs check the server first.

    A cog that sets ``playground`` (``chain.playground.Playground``) runs on a server's chain:
    its ``interaction_check`` (discord.py calls it before any of the cog's commands) refuses DMs
    and loads or creates this server's chain, so the commands start from a chain that exists.
    A command that must check its input before a chain is created, or must run without one,
    says ``extras={"chain": False}``.
    """

    playground: Playground | None = None

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        if self.playground is None:
            return True
        guild_id = require_guild(interaction)
        command = interaction.command
        if command is not None and command.extras.get("chain") is False:
            return True
        try:
            await self.playground.ensure_chain(guild_id)
        except Exception as error:
            if command is None:
                raise
            # Raised from the check, an engine error would skip cog_app_command_error (the tree only
            # reports AppCommandError): wrapped, it is answered exactly as if the command body raised it.
            raise app_commands.CommandInvokeError(command, error) from error
        return True

    async def cog_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        text = describe_error(error)
        if text is None:
            log.exception("command %s failed", interaction.command and interaction.command.qualified_name,
                          exc_info=error)
            text = "Something went wrong on our side; nothing was changed. Please try again."
        try:
            await reply_ephemeral(interaction, text)
        except discord.HTTPException:
            log.warning("could not tell %s about a failed command", interaction.user.id)


def require_guild(interaction: discord.Interaction) -> int:
    """The server a command runs in; every playground command needs one."""
    if interaction.guild_id is None:
        raise app_commands.NoPrivateMessage()
    return interaction.guild_id
