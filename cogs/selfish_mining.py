"""/selfish: a selfish-mining pool against the members' honest mining (issue 11, item 5).

Admins (Manage Server) start, follow and stop the game; members play by mining honestly with
``/mine start``. The game itself is the engine's (``chain/adapters/selfish_mining.py``, through the
façade); this cog converts the options (percentages) and words the embeds, the summary above all:
each side's share of the main chain against its share of the hash power, beside the paper's figures.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from fractions import Fraction

import discord
from discord import app_commands
from discord.ext import commands

from chain.errors import NoGameRunningError
from chain.playground import SELFISH_MAX_DURATION_S, Playground, SelfishSnapshot
from cogs.chart_book import ChartPicture
from cogs.embeds import GOLD, GREY, ORANGE, counted, duration
from cogs.errors import PlaygroundCog, UserFacingError, require_guild
from cogs.game_charts import game_picture, selfish_shares, with_picture
from cogs.options import Range
from cogs.services import Services

log = logging.getLogger(__name__)

MAX_MINUTES = SELFISH_MAX_DURATION_S // 60
REASONS = {
    "deadline": "ended at its deadline",
    "stopped": "stopped by an admin",
    "shutdown": "ended because the bot is restarting",
    "reset": "ended because the chain was started over (a reset or a mode switch)",
}


@contextlib.contextmanager
def no_game_is_an_answer() -> Iterator[None]:
    """No game running (or another stop, or the deadline, ended it first): say so in the bot's words."""
    try:
        yield
    except NoGameRunningError:
        raise UserFacingError(
            "No selfish-mining game is running on this server (it may have just ended: its summary is "
            "posted where it was started). `/selfish start` starts one."
        ) from None


def percent(share: Fraction | None) -> str:
    """A share as a percentage with one decimal, rounded exactly (no binary float): ``38.9%``."""
    if share is None:
        return "–"
    tenths = round(share * 1000)
    return f"{tenths // 10}.{tenths % 10}%"


def share_of(part: int, whole: int) -> Fraction | None:
    return Fraction(part, whole) if whole else None


def verdict(snapshot: SelfishSnapshot) -> str:
    """Did selfish mining pay in this game, and what the paper predicts for these α and γ."""
    alpha, earned = snapshot.alpha, snapshot.tally.pool_share
    if snapshot.chain_replaced:
        return "The chain the game was played on is gone, and its blocks with it: nothing could be counted."
    predicted = "more" if snapshot.revenue > alpha else "less" if snapshot.revenue < alpha else "exactly"
    above = "above" if alpha > snapshot.threshold else "below" if alpha < snapshot.threshold else "at"
    paper = (f"With α = {percent(alpha)} {above} the threshold, the paper predicts the pool earns {predicted} "
             f"than its share in the long run.")
    if earned is None:
        return f"No block joined the main chain during the game. {paper}"
    outcome = "more than" if earned > alpha else "less than" if earned < alpha else "exactly"
    return f"Here the pool got {percent(earned)} of the main chain: {outcome} its {percent(alpha)}. {paper}"


def side_text(main: int, orphaned: int, total_main: int, set_share: Fraction, measured: Fraction | None) -> str:
    return (
        f"On the main chain: **{main}** ({percent(share_of(main, total_main))})\n"
        f"Orphaned: **{orphaned}**\n"
        f"Hash power: set {percent(set_share)}, measured {percent(measured)}"
    )


def paper_text(snapshot: SelfishSnapshot) -> str:
    return (
        f"Pool's expected share of the main chain R(α, γ): **{percent(snapshot.revenue)}**\n"
        f"Profitable above α > (1−γ)/(3−2γ) = **{percent(snapshot.threshold)}**"
        + (" (one third for γ = 0)" if snapshot.gamma == 0 else "")
    )


def play_text(snapshot: SelfishSnapshot) -> str:
    tally = snapshot.tally
    parts = [
        f"{counted(snapshot.steps, 'step')} of Algorithm 1",
        f"{counted(snapshot.races, 'race')} (0′), {snapshot.races_on_pool} with the bot's honest miner "
        "on the pool's block",
    ]
    if snapshot.late:
        parts.append(f"{counted(snapshot.late, 'time')} the network outran the pool")
    if tally.withheld:
        parts.append(f"{counted(tally.withheld, 'pool block')} never published")
    return " · ".join(parts)


def measured_shares(snapshot: SelfishSnapshot) -> tuple[Fraction | None, Fraction | None]:
    pool = snapshot.tally.measured_alpha
    return pool, None if pool is None else 1 - pool


def summary_embed(snapshot: SelfishSnapshot) -> discord.Embed:
    """The game's end: each side's blocks and share of the main chain against its hash power and the paper."""
    reason = REASONS.get(snapshot.reason or "", snapshot.reason or "ended")
    embed = discord.Embed(
        title="🕵️ Selfish mining: the summary",
        description=(
            f"A pool with α = {percent(snapshot.alpha)} of the hash power and γ = {percent(snapshot.gamma)} mined "
            f"selfishly (Eyal and Sirer, *Majority is not Enough*, 2014) from block {snapshot.start_height} to "
            f"block {snapshot.tip_height}; the game {reason} after "
            f"{duration(max(0.0, snapshot.at - snapshot.started_at))}.\n"
            f"{verdict(snapshot)}"
        ),
        colour=GOLD,
    )
    add_side_fields(embed, snapshot)
    embed.add_field(name="🎲 The game", value=play_text(snapshot), inline=False)
    embed.set_footer(text="A few minutes are a small sample: the paper's figures are long-run averages.")
    return embed


def add_side_fields(embed: discord.Embed, snapshot: SelfishSnapshot) -> None:
    """Each side's blocks against its hash power, and the paper's figures: the summary's and the status's."""
    tally = snapshot.tally
    pool_measured, honest_measured = measured_shares(snapshot)
    total = tally.main_chain
    embed.add_field(name="🕵️ Selfish pool", value=side_text(
        tally.pool.main, tally.pool.orphaned, total, snapshot.alpha, pool_measured))
    embed.add_field(name="⛏️ Honest miners", value=side_text(
        tally.honest.main, tally.honest.orphaned, total, 1 - snapshot.alpha, honest_measured))
    embed.add_field(name="📄 The paper", value=paper_text(snapshot), inline=False)


def start_embed(snapshot: SelfishSnapshot) -> discord.Embed:
    embed = discord.Embed(
        title="🕵️ Selfish mining has started",
        description=(
            f"The bot runs a **selfish pool** with α = {percent(snapshot.alpha)} of this chain's hash power. It keeps "
            "the blocks it finds private and publishes them only to orphan honest blocks (Algorithm 1 of "
            "Eyal and Sirer, 2014). In a tie, γ = "
            f"{percent(snapshot.gamma)} of the bot's honest mining builds on the pool's block.\n"
            f"Everyone else: mine honestly with `/mine start`. The game ends <t:{int(snapshot.ends_at)}:R> "
            "(or `/selfish stop`) with each side's share of the main chain against its hash power."
        ),
        colour=ORANGE,
    )
    embed.add_field(name="📄 The paper", value=paper_text(snapshot), inline=False)
    return embed


def status_embed(snapshot: SelfishSnapshot) -> discord.Embed:
    state = snapshot.state
    embed = discord.Embed(
        title="🕵️ Selfish mining: so far",
        description=(
            f"α = {percent(snapshot.alpha)}, γ = {percent(snapshot.gamma)}; ends <t:{int(snapshot.ends_at)}:R>.\n"
            f"The pool is in state **{state.name}**: {counted(state.private, 'block')} on its branch, "
            f"{state.withheld} withheld, against {counted(state.public, 'honest block')} since the fork."
        ),
        colour=GREY,
    )
    add_side_fields(embed, snapshot)
    return embed


@app_commands.default_permissions(manage_guild=True)
@app_commands.guild_only()
class SelfishMining(
    PlaygroundCog, commands.GroupCog, group_name="selfish",
    group_description="A selfish-mining pool against honest miners (admins)",
):
    def __init__(self, services: Services) -> None:
        self.services = services
        self.playground: Playground = services.playground
        # Where each server's game was started: its summary is posted there when the deadline ends it.
        self.channels: dict[int, discord.abc.Messageable] = {}
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        # default_permissions only hides the commands; a server can override it, so check again.
        if not interaction.permissions.manage_guild:
            raise app_commands.MissingPermissions(["manage_guild"])
        return await super().interaction_check(interaction)

    @app_commands.command(name="start")
    @app_commands.describe(
        alpha="The pool's share of the hash power, in percent (1 to 49)",
        gamma="In a tie, the share of the bot's honest mining that builds on the pool's block, in percent",
        minutes="How long the game lasts",
    )
    async def start(
        self,
        interaction: discord.Interaction,
        alpha: Range[int, 1, 49],
        gamma: Range[int, 0, 100] = 0,
        minutes: Range[int, 1, MAX_MINUTES] = 5,
    ) -> None:
        """Start a selfish pool that withholds its blocks (Eyal and Sirer's Algorithm 1) against honest miners."""
        guild_id = require_guild(interaction)
        channel = interaction.channel

        async def post_summary(snapshot: SelfishSnapshot) -> None:
            await self._post(guild_id, snapshot)

        snapshot = await self.playground.start_selfish_mining(
            guild_id, alpha=Fraction(alpha, 100), gamma=Fraction(gamma, 100), duration_s=minutes * 60,
            on_end=post_summary,
        )
        if isinstance(channel, discord.abc.Messageable):
            self.channels[guild_id] = channel
        await interaction.response.send_message(embed=start_embed(snapshot))

    @app_commands.command(name="status")
    async def status(self, interaction: discord.Interaction) -> None:
        """The running game: the pool's state, each side's blocks so far, and the paper's figures."""
        guild_id = require_guild(interaction)
        with no_game_is_an_answer():
            snapshot = self.playground.selfish_mining_status(guild_id)
        await interaction.response.send_message(embed=status_embed(snapshot), ephemeral=True)

    @app_commands.command(name="stop")
    async def stop(self, interaction: discord.Interaction) -> None:
        """End the game now: the pool publishes what it withholds, and the summary is posted."""
        guild_id = require_guild(interaction)
        # No game: an ephemeral refusal, before the public "thinking" answer. (A deadline ending the
        # game right after this look is settled under the game sessions' lock: the refusal is a followup.)
        with no_game_is_an_answer():
            self.playground.selfish_mining_status(guild_id)
        await interaction.response.defer(thinking=True)
        with no_game_is_an_answer():
            snapshot = await self.playground.stop_selfish_mining(guild_id)
        self.channels.pop(guild_id, None)
        picture = await self._picture(guild_id, snapshot)
        await interaction.followup.send(**with_picture(summary_embed(snapshot), picture))

    async def _picture(self, guild_id: int, snapshot: SelfishSnapshot) -> ChartPicture | None:
        return await game_picture(self.services.charts, guild_id, "selfish", lambda: selfish_shares(snapshot))

    async def _post(self, guild_id: int, snapshot: SelfishSnapshot) -> None:
        channel = self.channels.pop(guild_id, None)
        if channel is None:
            log.info("chain %d: selfish mining summary with nowhere to post it: %s", guild_id, snapshot.tally)
            return
        picture = await self._picture(guild_id, snapshot)
        try:
            await channel.send(**with_picture(summary_embed(snapshot), picture))
        except discord.HTTPException as exc:
            log.warning("chain %d: could not post the selfish mining summary: %s", guild_id, exc)

    async def stop_all_sessions(self, reason: str) -> None:
        """The bot is shutting down: end every game (the pool publishes what it withholds) and post its summary."""
        for guild_id in self.playground.selfish_mining_games():
            try:
                snapshot = await self.playground.stop_selfish_mining(guild_id, reason="shutdown")
            except NoGameRunningError:
                continue  # its deadline ended it meanwhile, and posted its summary
            except Exception:
                log.exception("chain %d: the selfish mining game did not end cleanly (%s)", guild_id, reason)
                continue
            await self._post(guild_id, snapshot)


async def setup(bot: commands.Bot) -> None:
    services: Services = bot.services  # type: ignore[attr-defined]
    await bot.add_cog(SelfishMining(services))
