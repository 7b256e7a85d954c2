"""A tiny discord.py bot that exercises every interaction path the sandbox must support."""

from __future__ import annotations

import asyncio
import io
import logging

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

_log = logging.getLogger(__name__)

FRUITS = ["apple", "apricot", "banana", "blueberry", "cherry", "grape", "mango"]


class CounterView(discord.ui.View):
    def __init__(self, bot: PlaygroundTestBot) -> None:
        super().__init__(timeout=60)
        self.bot = bot
        self.count = 0

    @discord.ui.button(label="Bump", style=discord.ButtonStyle.primary, custom_id="bump")
    async def bump(self, interaction: discord.Interaction, button: discord.ui.Button[CounterView]) -> None:
        self.count += 1
        self.bot.clicks.append((interaction.user.name, interaction.message.id if interaction.message else None))
        await interaction.response.edit_message(
            content=f"Bumped {self.count} time(s) by {interaction.user.name}", view=self
        )

    @discord.ui.button(label="Later", style=discord.ButtonStyle.secondary, custom_id="later")
    async def later(self, interaction: discord.Interaction, button: discord.ui.Button[CounterView]) -> None:
        await interaction.response.defer()  # DEFERRED_UPDATE_MESSAGE for a component
        await interaction.edit_original_response(content=f"Deferred update by {interaction.user.name}")

    @discord.ui.button(label="Shout", style=discord.ButtonStyle.secondary, custom_id="shout")
    async def shout(self, interaction: discord.Interaction, button: discord.ui.Button[CounterView]) -> None:
        await interaction.response.send_message(f"{interaction.user.name} shouted!", ephemeral=True)


class ChooseView(discord.ui.View):
    @discord.ui.select(
        custom_id="fruit",
        placeholder="Fruit",
        min_values=1,
        max_values=2,
        options=[discord.SelectOption(label=f.title(), value=f) for f in FRUITS[:4]],
    )
    async def fruit(self, interaction: discord.Interaction, select: discord.ui.Select[ChooseView]) -> None:
        await interaction.response.send_message(f"fruit: {', '.join(select.values)}")

    @discord.ui.select(cls=discord.ui.UserSelect, custom_id="who", placeholder="Someone")
    async def who(self, interaction: discord.Interaction, select: discord.ui.UserSelect[ChooseView]) -> None:
        await interaction.response.send_message(f"user: {select.values[0].name} ({type(select.values[0]).__name__})")


class NameModal(discord.ui.Modal, title="Name your block"):
    name: discord.ui.TextInput[NameModal] = discord.ui.TextInput(label="Block name", custom_id="block_name")

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"Named block: {self.name.value}")


class Play(commands.GroupCog, group_name="play", group_description="Sandbox exercise commands"):
    admin = app_commands.Group(name="admin", description="Admin-only tools")

    def __init__(self, bot: PlaygroundTestBot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(name="echo", description="Echo typed options back")
    @app_commands.describe(number="An integer", word="A word", who="Somebody")
    async def echo(
        self, interaction: discord.Interaction, number: int, word: str, who: discord.Member | None = None
    ) -> None:
        who_text = f"{who.name} ({type(who).__name__}, admin={who.guild_permissions.manage_guild})" if who else "nobody"
        await interaction.response.send_message(
            f"number={number + 1} word={word.upper()} who={who_text} guild={interaction.guild_id} "
            f"caller_manage_guild={interaction.permissions.manage_guild} "
            f"app_webhooks={interaction.app_permissions.manage_webhooks}"
        )

    @app_commands.command(name="secret", description="Ephemeral reply")
    async def secret(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message("only you can see this", ephemeral=True)

    @app_commands.command(name="progress", description="Defer then edit several times")
    async def progress(self, interaction: discord.Interaction, steps: app_commands.Range[int, 1, 10] = 3) -> None:
        await interaction.response.defer(thinking=True)
        for i in range(1, steps + 1):
            await interaction.edit_original_response(content=f"Mining... {i}/{steps}")
        await interaction.edit_original_response(
            content="Mined!",
            embed=discord.Embed(title="Block 1", description="nonce found").add_field(name="Hash", value="000abc"),
        )

    @app_commands.command(name="buttons", description="Reply, then a followup with a view")
    async def buttons(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message("Here comes a counter")
        msg = await interaction.followup.send("Counter: 0", view=CounterView(self.bot), wait=True)
        self.bot.view_messages.append(msg.id)

    @app_commands.command(name="pick", description="Autocomplete a fruit")
    async def pick(self, interaction: discord.Interaction, fruit: str, count: int = 1) -> None:
        await interaction.response.send_message(f"picked {count} {fruit}")

    @pick.autocomplete("fruit")
    async def pick_fruit(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        count = interaction.namespace.count or 1
        return [app_commands.Choice(name=f"{f} x{count}", value=f) for f in FRUITS if f.startswith(current.lower())][
            :25
        ]

    @app_commands.command(name="hook", description="Create a webhook and post embeds through it")
    async def hook(self, interaction: discord.Interaction, reuse: bool = False, blocks: int = 3) -> None:
        await interaction.response.defer(thinking=True)
        try:
            if self.bot.webhook_url is None or not reuse:
                assert isinstance(interaction.channel, discord.TextChannel)
                created = await interaction.channel.create_webhook(name="Chain Feed")
                self.bot.webhook_url = created.url
            webhook = discord.Webhook.from_url(self.bot.webhook_url, session=self.bot.web)
            embeds = [
                discord.Embed(title=f"Block {i}", description=f"height {i}", colour=0x2ECC71).add_field(
                    name="txs", value=str(i * 2)
                )
                for i in range(1, blocks + 1)
            ]
            sent = await webhook.send(wait=True, embeds=embeds, username="Chain Feed")
            await interaction.followup.send(f"posted {sent.id} with {len(sent.embeds)} embeds")
        except (discord.NotFound, discord.Forbidden) as exc:
            self.bot.errors.append(exc)
            await interaction.followup.send(f"webhook failed: {type(exc).__name__} {exc.code}")

    @app_commands.command(name="upload", description="Reply with an attached file")
    async def upload(self, interaction: discord.Interaction) -> None:
        data = io.BytesIO(b"height,hash\n1,000abc\n")
        await interaction.response.send_message("chain export", file=discord.File(data, filename="chain.csv"))

    @app_commands.command(name="choose", description="Select menus")
    async def choose(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message("choose:", view=ChooseView())

    @app_commands.command(name="inspect", description="Read an attached file")
    async def inspect(self, interaction: discord.Interaction, file: discord.Attachment) -> None:
        data = await file.read()
        first = data.decode().splitlines()[0] if data else ""
        await interaction.response.send_message(
            f"{file.filename}: {len(data)} bytes, first line {first!r} ({file.content_type})"
        )

    @app_commands.command(name="form", description="Open a modal")
    async def form(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(NameModal())

    @app_commands.command(name="slow", description="Answer after a delay")
    async def slow(self, interaction: discord.Interaction, seconds: float = 0.0) -> None:
        await asyncio.sleep(seconds)
        await interaction.response.send_message("finally")

    @admin.command(name="reset", description="Reset a member's wallet")
    async def reset(self, interaction: discord.Interaction, member: discord.Member, hard: bool = False) -> None:
        await interaction.response.send_message(f"reset {member.name} hard={hard}", ephemeral=True)


class PlaygroundTestBot(commands.Bot):
    def __init__(self, *, guild_id: int) -> None:
        # A short guild_ready_timeout: discord.py otherwise waits 2s after the last GUILD_CREATE.
        super().__init__(command_prefix="!", intents=discord.Intents.default(), guild_ready_timeout=0.05)
        self.guild_id = guild_id
        self.webhook_url: str | None = None
        self.web: aiohttp.ClientSession
        self.errors: list[BaseException] = []
        self.clicks: list[tuple[str, int | None]] = []
        self.view_messages: list[int] = []
        self.resumed = asyncio.Event()

        @self.tree.command(
            name="guildping", description="Only registered in the test guild", guild=discord.Object(guild_id)
        )
        async def guildping(interaction: discord.Interaction) -> None:
            await interaction.response.send_message(f"pong from guild {interaction.guild_id}")

        # Discord honours default_member_permissions on top-level commands only.
        @self.tree.command(name="sudo", description="Needs Manage Server")
        @app_commands.default_permissions(manage_guild=True)
        async def sudo(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("sudo ok", ephemeral=True)

        @self.tree.error
        async def on_tree_error(interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
            self.errors.append(error)
            _log.error("command error: %r", error)

    async def setup_hook(self) -> None:
        self.web = aiohttp.ClientSession()
        await self.add_cog(Play(self))
        await self.tree.sync()
        await self.tree.sync(guild=discord.Object(self.guild_id))

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        # discord.py sleeps 5s before every non-initial IDENTIFY (Discord's identify rate limit);
        # the sandbox does not enforce it, so tests skip the wait.
        return None

    async def on_resumed(self) -> None:
        self.resumed.set()

    async def close(self) -> None:
        await super().close()
        if hasattr(self, "web"):
            await self.web.close()
