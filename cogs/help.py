"""/help: what the playground is, how to start, and a page per topic; the welcome on joining.

The topic pages list the commands as the command tree has them (name and description), so
help never drifts from what the bot really offers.
"""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from cogs.embeds import BLUE, GREEN
from cogs.errors import PlaygroundCog

log = logging.getLogger(__name__)

# Discord's limit on an embed field's value.
MAX_FIELD_CHARS = 1024

# Topic -> (button label, emoji, top-level commands it covers, what it is about).
TOPICS: dict[str, tuple[str, str, tuple[str, ...], str]] = {
    "mining": ("Mining", "⛏️", ("mine",),
               "Proof of work: the bot's hashing core searches nonces for you; the first valid hash wins the "
               "block and its reward. Difficulty follows the hash power so a block takes about a minute."),
    "wallet": ("Wallet", "👛", ("wallet", "leaderboard"),
               "Your points on this server's chain: payments are signed with your key (the bot keeps it "
               "sealed) and confirm in the next block; higher fees confirm first."),
    "explorer": ("Explorer", "🔎", ("chain",),
                 "Look inside the chain: blocks (orphaned ones and their side branches too), transactions, "
                 "difficulty, proposer draws, energy, charts (`/chain chart`), and a full replay that checks every "
                 "rule again."),
    "staking": ("Staking", "🪙", ("stake", "validators", "report"),
                "Proof of stake: lock points to become a validator, vote (Attest) once an epoch, and watch "
                "two thirds of the stake justify and finalize checkpoints. Vote twice and you get slashed."),
    "learn": ("Lessons", "🎓", ("learn",),
              "Short guided lessons that check the real chain: mine a block, watch a retarget, pay and wait "
              "for confirmations, stake and attest, see a reorg, see finality stop one. The first completion "
              "of each pays a few points from the faucet."),
    "games": ("Games", "🎲", ("doublespend", "selfish", "split"),
              "Attacks played on this server's real chain, started by an admin, each ending with a summary "
              "checked against its paper: a 51% double spend, a selfish-mining pool, a network split that "
              "heals. The bot can lend its hashing core to a side so a small class can play."),
    "admin": ("Admin", "🛠️", ("playground",),
              "For members with Manage Server: the announcement channel, the rules, the mode (proof of "
              "work, proof of stake, hybrid), the Merge, chaos mode and resets."),
}
GETTING_STARTED = (
    "1. `/mine start`: the bot mines a block for you (a minute on average); the reward is yours.\n"
    "2. `/wallet pay member:@someone amount:5`: a signed transfer, in the next block.\n"
    "3. `/stake deposit amount:32`: become a validator, then press **Attest** on new blocks.\n"
    "No points yet (say, a proof-of-stake server, where nothing is mined)? `/wallet faucet` gives you a start.\n"
    "New to all this? `/learn list`: short lessons, checked on the chain, with a small reward.\n"
    "Admins: `/playground setup channel:#blocks` announces every block there."
)
WELCOME_STEPS = (
    "1. An admin picks the announcement channel: `/playground setup channel:#blocks`.\n"
    "2. Everyone mines: `/mine start` (proof of work), or an admin switches to proof of stake with "
    "`/playground config mode:pos`.\n"
    "3. `/help` explains every command, topic by topic."
)


def overview_embed() -> discord.Embed:
    embed = discord.Embed(
        title="🧱 Consensus Playground",
        description="This server has its own blockchain. Mine blocks, pay each other, stake to validate, and "
        "see what proof of work and proof of stake really do, by playing. Every rule is real: Bitcoin's "
        "difficulty, Ethereum's finality and slashing.",
        colour=BLUE,
    )
    embed.add_field(name="Get started", value=GETTING_STARTED, inline=False)
    embed.set_footer(text="Pick a topic below for its commands.")
    return embed


def describe_command(command: app_commands.Command | app_commands.Group) -> list[str]:
    """``/name sub``: description, for a command and every subcommand of a group."""
    if isinstance(command, app_commands.Group):
        lines = []
        for sub in command.commands:
            lines += describe_command(sub)
        return lines
    return [f"`/{command.qualified_name}`: {command.description}"]


def topic_embed(topic: str, tree: app_commands.CommandTree) -> discord.Embed:
    label, emoji, names, about = TOPICS[topic]
    embed = discord.Embed(title=f"{emoji} {label}", description=about, colour=BLUE)
    # A field per top-level command: Discord refuses a field value over 1,024 characters, which one
    # field listing a topic's every subcommand passed once a topic had three command groups.
    for name in names:
        command = tree.get_command(name)
        if command is not None:
            value = "\n".join(describe_command(command))
            if len(value) > MAX_FIELD_CHARS:
                value = value[: MAX_FIELD_CHARS - 1] + "…"
            embed.add_field(name=f"/{name}", value=value, inline=False)
    if not embed.fields:
        embed.add_field(name="Commands", value="none loaded", inline=False)
    return embed


class HelpView(discord.ui.View):
    """A button per topic; each shows that topic's page in place (the message is the member's own).

    One copy without a timeout is registered at startup (``setup``): it answers the buttons of
    any /help message, also those posted before a restart or whose own view timed out.
    """

    def __init__(self, timeout_s: float | None = 600.0) -> None:
        super().__init__(timeout=timeout_s)
        for topic, (label, emoji, _, _) in TOPICS.items():
            button: discord.ui.Button[HelpView] = discord.ui.Button(
                label=label, emoji=emoji, style=discord.ButtonStyle.secondary, custom_id=f"pg:help:{topic}"
            )
            # discord.py's documented way to give one Button its own callback; mypy sees a method.
            button.callback = self._show(topic)  # type: ignore[method-assign]
            self.add_item(button)

    def _show(self, topic: str):
        async def callback(interaction: discord.Interaction[commands.Bot]) -> None:
            # The startup copy hands the message a timed view of its own: one bound to a message
            # without a timeout would stay in discord.py's view store until the message is deleted.
            view = self if self.timeout is not None else HelpView()
            await interaction.response.edit_message(embed=topic_embed(topic, interaction.client.tree), view=view)
        return callback


def welcome_embed() -> discord.Embed:
    embed = discord.Embed(
        title="👋 Consensus Playground is here",
        description="This server now has its own blockchain, created on first use. Three steps to get going:",
        colour=GREEN,
    )
    embed.add_field(name="Start", value=WELCOME_STEPS, inline=False)
    return embed


class Help(PlaygroundCog):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot

    @app_commands.command(name="help")
    @app_commands.guild_only()
    async def help(self, interaction: discord.Interaction) -> None:
        """What the playground is, how to start, and every command by topic (only you see it)."""
        await interaction.response.send_message(embed=overview_embed(), view=HelpView(), ephemeral=True)

    @commands.Cog.listener()
    async def on_guild_join(self, guild: discord.Guild) -> None:
        """Greet a server that added the bot, in its system channel when the bot may post there."""
        channel = guild.system_channel
        if channel is None or not channel.permissions_for(guild.me).send_messages:
            log.info("joined %s: no system channel to greet in", guild.name)
            return
        try:
            await channel.send(embed=welcome_embed(), allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException as exc:
            log.warning("could not greet %s: %s", guild.name, exc)


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Help(bot))
    bot.add_view(HelpView(timeout_s=None))
