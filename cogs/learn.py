"""/learn: guided lessons that check the real chain (issue 11, item 7).

The lessons and their checks are the engine's (``chain.games.lessons``, through the façade);
this cog adds what a member types for each (the steps), records who started and completed what
(``services.lessons``, the bot's table), and pays the first completion's reward from the chain's
faucet in the same database transaction that records it (``Playground.complete_lesson``).
"""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from chain.hashing import hash_to_display
from chain.playground import LESSONS, PAYMENT_CONFIRMATIONS, Lesson, Playground, StoreTransaction, get_lesson
from cogs.embeds import BLUE, GREEN, points
from cogs.errors import PlaygroundCog, UserFacingError, require_guild
from cogs.options import OneOf, Range
from cogs.services import LessonProgress, LessonStore, Services

log = logging.getLogger(__name__)

# Members per page of /learn progress: a class of 40 is two pages, each well inside an embed.
PROGRESS_PAGE_SIZE = 20
MAX_PROGRESS_PAGE = 1_000

# What a member types for each lesson, in order (the engine's lessons name no command).
STEPS: dict[str, str] = {
    "mine": (
        "1. `/mine start`: the bot's hashing core tries nonces for you until a hash is below the target.\n"
        "2. When it says **found!**, the block is yours (it may take a minute, or lose a race).\n"
        "3. `/learn check lesson:mine`.\n"
        "(A proof-of-stake chain mines nothing: there, validators propose the blocks. Try it on a "
        "proof-of-work or hybrid chain.)"
    ),
    "retarget": (
        "1. `/learn start lesson:retarget` (done: the watch starts now), then `/chain difficulty`: "
        "the current target, and the block where it is next recomputed.\n"
        "2. Mine (`/mine start`) or wait until the chain passes that block.\n"
        "3. `/learn check lesson:retarget`, and `/chain difficulty` again: did it get harder or easier, and why?"
    ),
    "confirm": (
        "1. No points? `/wallet faucet` (or mine a block).\n"
        "2. `/wallet pay member:@someone amount:1`.\n"
        f"3. Wait until the block with your payment has {PAYMENT_CONFIRMATIONS - 1} more on top "
        f"({PAYMENT_CONFIRMATIONS} confirmations); `/mine start` adds them.\n"
        "4. `/learn check lesson:confirm`."
    ),
    "stake": (
        "Needs a proof-of-stake or hybrid chain (an admin: `/playground config mode:pos`).\n"
        "1. `/stake deposit amount:32` (points from `/wallet faucet` or mining).\n"
        "2. When your validator is active, `/stake attest` (or press **Attest** on a new block).\n"
        "3. Once a block has counted your vote: `/learn check lesson:stake`."
    ),
    "reorg": (
        "1. `/learn start lesson:reorg` (done: reorgs count from now). `/chain tip` shows the tip's height, say 20.\n"
        "2. `/mine start on_block:19`: your block builds on the block below the tip, so it is kept on a side "
        "branch (🌿: the reply shows its hash).\n"
        "3. `/mine start on_block:<that hash>`: your branch is now longer than the main chain, so the chain "
        "switches to it (🔀 Reorg). With `auto_continue:True` one session keeps growing your branch until it wins.\n"
        "4. `/learn check lesson:reorg`. A classmate whose block yours took off passes too: it was orphaned."
    ),
    "finality": (
        "Needs a hybrid chain, proof of work with finality checkpoints (an admin: `/playground config "
        "mode:hybrid`), where validators stake and vote (the `stake` lesson) until a checkpoint is finalized.\n"
        "1. `/learn check lesson:finality` (it starts the lesson): it names the newest finalized block, say 24.\n"
        "2. `/mine start on_block:23 auto_continue:True`: a branch from below the finalized block; let it grow "
        "longer than the main chain.\n"
        "3. The chain refuses to switch, however heavy your branch: it would take a finalized block off "
        "(the channel announces it).\n"
        "4. `/learn check lesson:finality`."
    ),
}


def lesson_line(lesson: Lesson, progress: LessonProgress | None) -> str:
    if not lesson.available:
        mark = "🔒"
    elif progress is not None and progress.completed_at is not None:
        mark = "✅"
    elif progress is not None:
        mark = "⏳"
    else:
        mark = "⬜"
    reward = f" · {points(lesson.reward_points)}" if lesson.available else " · not available yet"
    return f"{mark} **{lesson.title}** (`{lesson.id}`){reward}"


def progress_line(member: str, rows: list[LessonProgress]) -> str:
    done = {r.lesson for r in rows if r.completed_at is not None}
    started = {r.lesson for r in rows} - done
    marks = " ".join(
        f"{'✅' if lesson.id in done else '⏳' if lesson.id in started else '⬜'}{lesson.id}"
        for lesson in LESSONS if lesson.available
    )
    return f"<@{member}> — {len(done)} done · {marks}"


# The lesson ids as the option offers them (chain/games/lessons.py's LESSONS, in order; a test checks
# they match): OneOf is a Literal to type checkers, so its strings are written out here once.
LessonChoice = OneOf["mine", "retarget", "confirm", "stake", "reorg", "finality"]

# On the group: Discord ignores guild_only on subcommands, so only this keeps it out of DMs.
@app_commands.guild_only()
class Learn(
    PlaygroundCog, commands.GroupCog, group_name="learn", group_description="Short lessons that check the real chain"
):
    def __init__(self, services: Services) -> None:
        self.services = services
        self.playground: Playground = services.playground
        super().__init__()

    def _store(self) -> LessonStore:
        if self.services.lessons is None:
            raise UserFacingError("Lessons are not set up on this bot. Nothing was changed.")
        return self.services.lessons

    @app_commands.command(name="list")
    async def list_lessons(self, interaction: discord.Interaction) -> None:
        """Every lesson, with ✅ for those you completed (only you see it)."""
        guild_id = require_guild(interaction)
        progress = await self._store().member_progress(guild_id, str(interaction.user.id))
        lines = [lesson_line(lesson, progress.get(lesson.id)) for lesson in LESSONS]
        embed = discord.Embed(title="🎓 Lessons", description="\n".join(lines), colour=BLUE)
        embed.set_footer(
            text="/learn start shows a lesson's steps; /learn check checks the chain and pays the reward once."
        )
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @app_commands.command(name="start")
    @app_commands.describe(lesson="Which lesson")
    async def start(
        self, interaction: discord.Interaction,
        lesson: LessonChoice,
    ) -> None:
        """A lesson's steps and why it matters (only you see it)."""
        guild_id = require_guild(interaction)
        chosen = get_lesson(lesson)
        embed = discord.Embed(title=f"🎓 {chosen.title}", description=chosen.why, colour=BLUE)
        if not chosen.available:
            embed.add_field(name="Not available yet", value=f"{chosen.unavailable_reason}.", inline=False)
            await interaction.response.send_message(embed=embed, ephemeral=True)
            return
        store = self._store()
        height = self.playground.state(guild_id).height
        started = await store.start(
            guild_id, str(interaction.user.id), chosen.id, self.playground.now(), height,
            await self.playground.reorg_log_seq(guild_id),
        )
        embed.add_field(name="Steps", value=STEPS[chosen.id], inline=False)
        if started.completed_at is not None:
            embed.add_field(name="Done", value=f"✅ you completed it <t:{started.completed_at}:R>.", inline=False)
        else:
            embed.add_field(name="Reward", value=f"{points(chosen.reward_points)} the first time, from the faucet")
            embed.set_footer(text=f"Started at block {started.start_height}.")
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @app_commands.command(name="check")
    @app_commands.describe(lesson="Which lesson")
    async def check(
        self, interaction: discord.Interaction,
        lesson: LessonChoice,
    ) -> None:
        """Check the chain for a lesson; the first completion pays its reward (only you see it)."""
        guild_id = require_guild(interaction)
        member = str(interaction.user.id)
        chosen = get_lesson(lesson)
        if not chosen.available:
            raise UserFacingError(f"**{chosen.title}** is not available yet: {chosen.unavailable_reason}.")
        store = self._store()
        progress = (await store.member_progress(guild_id, member)).get(chosen.id)
        if progress is not None and progress.completed_at is not None:
            raise UserFacingError(
                f"You already completed **{chosen.title}** <t:{progress.completed_at}:R>; its reward is paid once. "
                "Nothing was changed."
            )
        if progress is None:  # checking starts the lesson: a retarget (or a reorg) counts from now
            progress = await store.start(
                guild_id, member, chosen.id, self.playground.now(), self.playground.state(guild_id).height,
                await self.playground.reorg_log_seq(guild_id),
            )
        now, start_height = self.playground.now(), progress.start_height

        async def record(tx: StoreTransaction, txid: bytes | None, paid: int) -> None:
            await store.complete(tx, guild_id, member, chosen.id, now, start_height, txid, paid)

        # One call: the check, the completion and its reward under the chain's lock, in one transaction.
        result, reward = await self.playground.complete_lesson(
            guild_id, member, chosen.id, start_height=start_height, record=record,
            start_reorg_seq=progress.start_reorg_seq,
        )
        if reward is None:
            embed = discord.Embed(title=f"⏳ {chosen.title}: not yet", description=f"The chain says: {result.detail}.",
                                  colour=BLUE)
            embed.add_field(name="Steps", value=STEPS[chosen.id], inline=False)
            await interaction.response.send_message(embed=embed, ephemeral=True)
            return
        embed = discord.Embed(title=f"✅ {chosen.title}: done", description=f"The chain says: {result.detail}.",
                              colour=GREEN)
        if reward.admission is not None:
            embed.add_field(name="Reward", value=f"**+{points(reward.amount)}** from the faucet, in the next block")
            embed.add_field(name="Transaction", value=f"`{hash_to_display(reward.admission.entry.txid)}`",
                            inline=False)
        elif reward.reason == "faucet_empty":
            embed.add_field(name="Reward", value="The faucet is empty, so no points this time; the lesson counts.")
        else:
            embed.add_field(name="Reward", value="This chain has no faucet (it predates it), so no points; "
                            "the lesson counts. An admin's `/playground reset` makes one.")
        embed.set_footer(text="/learn list shows what is left.")
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @app_commands.command(name="progress")
    @app_commands.describe(page="Which page of members (20 a page)")
    async def progress(self, interaction: discord.Interaction, page: Range[int, 1, MAX_PROGRESS_PAGE] = 1) -> None:
        """Teachers (Manage Server): who completed which lesson (only you see it)."""
        guild_id = require_guild(interaction)
        # Mirrors /playground: the Manage Server permission, checked when the command runs.
        if not interaction.permissions.manage_guild:
            raise app_commands.MissingPermissions(["manage_guild"])
        total, rows = await self._store().class_progress(guild_id, PROGRESS_PAGE_SIZE, (page - 1) * PROGRESS_PAGE_SIZE)
        pages = max(1, -(-total // PROGRESS_PAGE_SIZE))
        if page > pages:
            raise UserFacingError(f"There {'is' if pages == 1 else 'are'} only {pages} page(s). Nothing was changed.")
        by_member: dict[str, list[LessonProgress]] = {}
        for row in rows:
            by_member.setdefault(row.member, []).append(row)
        lines = [progress_line(member, member_rows) for member, member_rows in by_member.items()]
        embed = discord.Embed(
            title="🎓 Lesson progress",
            description="\n".join(lines) or "Nobody has started a lesson on this chain yet.",
            colour=BLUE,
        )
        embed.set_footer(text=f"page {page} of {pages} · {total} member(s) · ✅ done ⏳ started ⬜ not started")
        await interaction.response.send_message(
            embed=embed, ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
        )


async def setup(bot: commands.Bot) -> None:
    services: Services = bot.services  # type: ignore[attr-defined]
    await bot.add_cog(Learn(services))
