"""/mine: mining sessions on the bot's hashing core, with live progress."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import discord
from discord import app_commands
from discord.ext import commands

from chain.errors import BranchStateUnavailableError, BranchTooDeepError, MergeError, UndoRecordMissingError
from chain.hashing import hash_to_display
from chain.mode import Mode
from chain.playground import BlockEntry, MiningResult, MiningSession, OutcomeKind, Playground, Progress
from cogs.embeds import BLUE, GOLD, GREY, PURPLE, counted, duration, points, progress_bar, relative_time, seconds
from cogs.errors import PlaygroundCog, UserFacingError, require_guild
from cogs.explorer import AMBIGUOUS_HEIGHTS_SHOWN, MAX_QUERY_CHARS, parse_block_query
from cogs.options import Flag, Range
from cogs.services import MAX_SESSION_S, Services

log = logging.getLogger(__name__)

SessionKey = tuple[int, int]  # (guild id, member id)


@dataclass
class LiveSession:
    interaction: discord.Interaction
    guild_id: int
    member_id: int
    # Mine the next block after each one, until stopped or ``deadline_s`` is used up.
    auto_continue: Flag = False
    # Known once the chain is read; the session is reserved (in ``Mining.sessions``) before that.
    height: int = 0
    expected_hashes: int = 0
    deadline_s: int = 0
    genesis_hash: bytes = b""
    progress: Progress | None = None
    # The share (percent, sessions) as the core stood when ``progress`` was reported: an edit built
    # later, after the core has already ended the session, must not read the core's sessions then.
    share: tuple[int, int] = (0, 0)
    task: asyncio.Task[None] | None = None
    stop_reason: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    # Auto-continue bookkeeping, over the whole session (every block it mined on).
    started_at: float = 0.0
    """When the first block's mining began (the event loop's monotonic clock): the time budget's start."""
    start_tip_height: int = 0
    found: int = 0
    seen: int = 0
    """Blocks the chain got while the session ran, by anyone (``found`` of them by this member)."""
    hashes: int = 0
    last_found: MiningResult | None = None
    # /mine start on_block: the block the next block builds on (a competing branch), until the branch
    # takes over; None mines on the main tip (or where a running game sends the member).
    on_block: BlockEntry | None = None

    @property
    def owner(self) -> str:
        return str(self.member_id)


def beyond_average(tried: int, expected: int) -> str:
    """Past the average, in words: the bar stops at 100%, the lottery does not."""
    if expected <= 0 or tried <= expected:
        return ""
    tenths = tried * 10 // expected
    return f" (already {tenths // 10}.{tenths % 10}× the average: each hash is a new lottery ticket)"


def session_summary(live: LiveSession) -> str:
    """An auto-continue session's tally so far."""
    return f"blocks found by you: {live.found:,} · blocks mined since you started: {live.seen:,}"


def compute_share(services: Services, guild_id: int, member_id: int) -> tuple[int, int]:
    """This member's share of the server's hash power, in percent, and the server's session count."""
    sessions = [s for s in services.hashing_core.stats().per_session if s.chain_id == guild_id]
    total = sum(s.weight for s in sessions)
    mine = sum(s.weight for s in sessions if s.key == (guild_id, str(member_id)))
    return (int(mine * 100 // total) if total else 0), len(sessions)


def mining_is_over(services: Services, guild_id: int) -> bool:
    """Whether this server's chain takes no more proof-of-work blocks: merged, past its terminal block, or pos."""
    return services.playground.mining_is_over(guild_id)


def merged_text(services: Services, guild_id: int) -> str:
    """Why there is nothing to mine, and what to do instead."""
    playground = services.playground
    slot_s = playground.consensus(guild_id).slot_duration_s
    if playground.mode(guild_id) is Mode.POS:
        return (
            "This chain runs on proof of stake from genesis: there is nothing to mine. Blocks now come from "
            f"validators every {seconds(slot_s)}; stake with `/stake deposit` to become one."
        )
    return (
        "This chain has merged: proof of work is over, so there is nothing left to mine. Blocks now come from "
        f"validators every {seconds(slot_s)}; stake with `/stake deposit` to become one."
    )


def merged_embed(services: Services, guild_id: int) -> discord.Embed:
    return discord.Embed(title="🐼 The Merge: mining is over", description=merged_text(services, guild_id),
                         colour=PURPLE)


# On the group: Discord ignores guild_only on subcommands, so only this keeps it out of DMs.
@app_commands.guild_only()
class Mining(
    PlaygroundCog, commands.GroupCog, group_name="mine", group_description="Mine blocks on this server's chain"
):
    def __init__(self, services: Services) -> None:
        self.services = services
        self.playground: Playground = services.playground
        self.sessions: dict[SessionKey, LiveSession] = {}
        self.cooldown_until: dict[SessionKey, float] = {}
        super().__init__()

    # --- commands ---------------------------------------------------------------

    # Checks cooldown and the Merge first, and defers before the chain is created (a first chain
    # measures the core's rate).
    @app_commands.command(name="start", extras={"chain": False})
    @app_commands.describe(
        auto_continue="Mine block after block (yours or not) until /mine stop or the session's time is up",
        on_block="Mine on this block instead of the tip (a height, or a hash: 6+ hex digits), to build a "
        "competing branch",
    )
    async def start(
        self, interaction: discord.Interaction, auto_continue: Flag = False,
        on_block: Range[str, 1, MAX_QUERY_CHARS] | None = None,
    ) -> None:
        """Start mining: the bot's hashing core searches nonces for you until a block is found."""
        guild_id = require_guild(interaction)
        key = (guild_id, interaction.user.id)
        if key in self.sessions:
            raise UserFacingError("You are already mining. `/mine stats` shows it, `/mine stop` ends it.")
        now = self.playground.clock()
        ready_at = self.cooldown_until.get(key, 0.0)
        if now < ready_at:
            raise UserFacingError(
                f"Let the others have a go: you can mine again {relative_time(ready_at)}."
            )
        if mining_is_over(self.services, guild_id):
            raise UserFacingError(merged_text(self.services, guild_id))
        # Reserved before the first await: a double click finds it and is refused, and `/mine stop`
        # finds it even before the hashing core has the session.
        live = LiveSession(
            interaction=interaction, guild_id=guild_id, member_id=interaction.user.id, auto_continue=auto_continue
        )
        self.sessions[key] = live
        try:
            if on_block is not None:  # refused before the reply, so only the member sees why
                live.on_block = await self._mining_base(guild_id, on_block)
            await interaction.response.defer(thinking=True)
            state = await self.playground.ensure_chain(guild_id)
            if mining_is_over(self.services, guild_id):  # a new chain in pos mode
                self.sessions.pop(key, None)
                await interaction.edit_original_response(embed=merged_embed(self.services, guild_id))
                return
            settings = await self.services.server_settings(guild_id)
        except BaseException:
            self.sessions.pop(key, None)
            raise
        live.height = (state.height if live.on_block is None else live.on_block.height) + 1
        live.start_tip_height = state.height
        live.expected_hashes = self.playground.work_for_bits(state.tip.bits, state.params.pow_limit)
        live.deadline_s = int(settings["session_s"])
        if auto_continue:
            # The whole session edits one interaction reply, whose token lives 15 minutes: the budget
            # never outlasts it (the admin setting is capped the same way; this holds for stored values).
            live.deadline_s = min(live.deadline_s, MAX_SESSION_S)
        live.genesis_hash = state.genesis_hash
        live.task = asyncio.create_task(self._run(key, live, int(settings["cooldown_s"])), name=f"mine-{key}")

    # Ends a session: never creates a chain.
    @app_commands.command(name="stop", extras={"chain": False})
    async def stop(self, interaction: discord.Interaction) -> None:
        """Stop your mining session."""
        key = (require_guild(interaction), interaction.user.id)
        live = self.sessions.get(key)
        if live is None:
            raise UserFacingError("You have no mining session running. `/mine start` starts one.")
        self._cancel(live, "stopped by you")
        await interaction.response.send_message("Stopping your mining session.", ephemeral=True)

    @app_commands.command(name="stats")
    async def stats(self, interaction: discord.Interaction) -> None:
        """Your mining session, and this server's mining so far."""
        guild_id = require_guild(interaction)
        state = self.playground.state(guild_id)
        key = (guild_id, interaction.user.id)
        _, sessions = compute_share(self.services, guild_id, interaction.user.id)
        embed = discord.Embed(title="⛏️ Mining stats", colour=BLUE)
        if mining_is_over(self.services, guild_id):
            embed.description = f"🐼 {merged_text(self.services, guild_id)}"
        live = self.sessions.get(key)
        if live is not None and live.progress is not None:
            p = live.progress
            embed.add_field(name="Your session", value=(
                f"block {live.height}: {p.hashes_tried:,} hashes at {p.rate:,} H/s\n"
                f"best hash `{p.best_hash[:16]}…`\nyour share of the server's hash power: {live.share[0]}%"
                + (f"\nauto-continue: {session_summary(live)}" if live.auto_continue else "")
            ), inline=False)
        elif live is not None:
            tally = f"\nauto-continue: {session_summary(live)}" if live.auto_continue else ""
            embed.add_field(name="Your session", value=f"starting…{tally}", inline=False)
        else:
            embed.add_field(name="Your session", value="not mining (`/mine start`)", inline=False)
        me = await self.playground.address(guild_id, str(interaction.user.id))
        mined = dict(self.playground.blocks_mined(guild_id))
        core = self.services.hashing_core.stats()
        embed.add_field(name="Blocks you mined", value=str(mined.get(me, 0)))
        embed.add_field(name="Chain height", value=str(state.height))
        embed.add_field(name="Miners now", value=f"{sessions} here, {core.sessions} on the core")
        budget = "" if core.cpu_percent >= 100 else f", at most {core.cpu_percent}% of the CPU"
        embed.add_field(
            name="Core",
            value=f"{counted(core.workers, 'worker')}, ~{core.worker_rate * core.workers:,} H/s, "
            f"{core.backend} hashing{budget}",
        )
        await interaction.response.send_message(embed=embed, ephemeral=True)

    async def _mining_base(self, guild_id: int, query: str) -> BlockEntry:
        """The block ``on_block`` names (a main-chain height, or a hash prefix of any kept block, side
        blocks included), checked to be one a branch can grow from; a clear refusal otherwise."""
        if not self.playground.has_chain(guild_id):
            raise UserFacingError("This server has no chain yet: `/mine start` without `on_block` mines its block 1.")
        tip_height = self.playground.state(guild_id).height
        parsed = parse_block_query(query, tip_height)
        if isinstance(parsed, int):
            entry = self.playground.main_block_at(guild_id, parsed)
        else:
            count, found = self.playground.find_tree_blocks(guild_id, parsed, AMBIGUOUS_HEIGHTS_SHOWN)
            if count == 0:
                raise UserFacingError(f"No block this chain keeps (main or side) has a hash starting with `{parsed}`.")
            if count > 1:
                shown = ", ".join(f"`{hash_to_display(e.block_hash)[:16]}` (block {e.height})" for e in found)
                raise UserFacingError(f"`{parsed}` starts the hashes of {count} blocks ({shown}): type more of it.")
            entry = found[0]
        try:
            await self.playground.check_mining_base(guild_id, entry.block_hash)
        except (BranchStateUnavailableError, UndoRecordMissingError, BranchTooDeepError) as refused:
            raise UserFacingError(
                f"You can't mine on block {entry.height} (`{hash_to_display(entry.block_hash)[:16]}`): {refused}. "
                "Pick a more recent block. Nothing was changed."
            ) from refused
        return entry

    # --- sessions ---------------------------------------------------------------

    def _cancel(self, live: LiveSession, reason: str) -> None:
        """End the session: the core's search now if it has one; else one still being set up is
        ended as soon as the core has it (``_on_start``), and no next block is started (``_mine``)."""
        live.stop_reason = reason
        session = self.services.hashing_core.session((live.guild_id, live.owner))
        if session is not None:
            session.cancel()

    def _on_start(self, live: LiveSession, session: MiningSession) -> None:
        # Called by the node right after the core took the session, before any chunk returns: the
        # job was built from this very state, so its height is the tip's next one.
        base = self.playground.state(live.guild_id).height if live.on_block is None else live.on_block.height
        live.height = base + 1
        live.expected_hashes = self.playground.work_for_target(session.target)
        live.progress = None
        if live.stop_reason is not None:  # stopped while the node set the session up
            session.cancel()

    def _on_progress(self, live: LiveSession, progress: Progress) -> None:
        # The core reports progress only for a session it still runs, so this is the moment
        # the share is true; it is kept with the progress it belongs to.
        live.share = compute_share(self.services, live.guild_id, live.member_id)
        live.progress = progress

    async def stop_all_sessions(self, reason: str, timeout_s: float = 5.0) -> None:
        """Shutdown: end every session and give each a moment to post its last word."""
        lives = list(self.sessions.values())
        for live in lives:
            self._cancel(live, reason)
        if lives:
            await asyncio.wait([asyncio.ensure_future(live.done.wait()) for live in lives], timeout=timeout_s)

    async def cog_unload(self) -> None:
        await self.stop_all_sessions("the mining module was unloaded")

    async def _run(self, key: SessionKey, live: LiveSession, cooldown_s: int) -> None:
        mining_over = asyncio.Event()
        updater = asyncio.create_task(self._update_progress(live, mining_over))
        try:
            embed = await self._mine(live)
            # Let an edit in flight land first, so no late progress edit can overwrite the result.
            mining_over.set()
            await updater
            await self._edit(live, embed)
        except MergeError:
            # The terminal proof-of-work block came first: this session's block can no longer join.
            mining_over.set()
            await updater
            with contextlib.suppress(discord.HTTPException):
                await self._edit(live, self._with_summary(live, merged_embed(self.services, live.guild_id)))
        except Exception:
            log.exception("mining session %s failed", key)
            kept = f" The {counted(live.found, 'block')} you found stay on the chain." if live.found else ""
            with contextlib.suppress(discord.HTTPException):
                await self._edit(live, self._with_summary(live, discord.Embed(
                    title="Mining stopped",
                    description=f"Something went wrong; nothing {'else ' if kept else ''}was changed.{kept}",
                    colour=GREY)))
        finally:
            updater.cancel()
            self.sessions.pop(key, None)
            self.cooldown_until[key] = self.playground.clock() + cooldown_s
            live.done.set()

    async def _mine(self, live: LiveSession) -> discord.Embed:
        """Mine one block, or with auto-continue block after block; returns the session's last word."""
        live.started_at = asyncio.get_running_loop().time()
        while True:
            result = await self.playground.mine(
                live.guild_id,
                live.owner,
                on_progress=lambda p: self._on_progress(live, p),
                on_start=lambda s: self._on_start(live, s),
                # One budget for the whole session: each block gets what is left of it.
                deadline_s=self._time_left(live) if live.auto_continue else live.deadline_s,
                parent_hash=None if live.on_block is None else live.on_block.block_hash,
            )
            if live.on_block is not None and result.acceptance is not None:
                # The next block grows the member's own branch, until it is the main chain (then the tip).
                live.on_block = None if result.acceptance.on_main else result.acceptance.entry
            if not live.auto_continue:
                return self._final_embed(live, result)
            live.hashes += result.outcome.hashes_tried
            if result.found:
                live.found += 1
                live.last_found = result
            if self._same_chain(live):
                live.seen = max(live.seen, live.found, result.tip_height - live.start_tip_height)
            ending = self._auto_ending(live, result)
            if ending is not None:
                return ending
            # A stop from here on lands before the core has the next session (``node.mine`` awaits
            # first): ``_on_start`` cancels it before any chunk, so no block is mined after it.

    def _time_left(self, live: LiveSession) -> float:
        return live.deadline_s - (asyncio.get_running_loop().time() - live.started_at)

    def _auto_ending(self, live: LiveSession, result: MiningResult) -> discord.Embed | None:
        """Why an auto-continue session ends after this block, as its last word; None mines the next."""
        if not self._same_chain(live):
            return self._with_summary(
                live,
                discord.Embed(
                    title="Chain reset",
                    description="An admin reset this server's chain while you were mining. "
                    "`/mine start` mines its block 1.",
                    colour=GREY,
                ),
            )
        if mining_is_over(self.services, live.guild_id):
            return self._with_summary(live, merged_embed(self.services, live.guild_id))
        if result.outcome.kind is OutcomeKind.CANCELLED or live.stop_reason is not None:
            return self._with_summary(live, discord.Embed(
                title="Mining stopped", description=f"Session ended ({live.stop_reason or 'cancelled'}).", colour=GREY))
        if result.outcome.kind is OutcomeKind.TIMEOUT or self._time_left(live) <= 0:
            return self._with_summary(live, discord.Embed(
                title="⌛ Time up",
                description=f"Your {duration(live.deadline_s)} of auto-continue mining are used up.",
                colour=GOLD if live.found else GREY,
            ))
        return None

    def _with_summary(self, live: LiveSession, embed: discord.Embed) -> discord.Embed:
        """An auto-continue session's tally under its last word (a one-block session's is the block)."""
        if not live.auto_continue:
            return embed
        embed.description = (
            f"{embed.description}\n{session_summary(live)}\n{live.hashes:,} hashes in "
            f"{duration(asyncio.get_running_loop().time() - live.started_at)}"
        )
        last = live.last_found
        if last is not None and last.block is not None and last.effects is not None:
            embed.add_field(name=f"Your last block: {last.effects.height}",
                            value=f"`{last.block.header.hash_hex()}`", inline=False)
        return embed

    async def _update_progress(self, live: LiveSession, mining_over: asyncio.Event) -> None:
        while True:
            try:
                await asyncio.wait_for(mining_over.wait(), self.services.progress_interval_s)
                return
            except TimeoutError:
                pass
            # An auto-continue session has news without progress: a block found in the first chunk.
            if live.progress is None and not live.auto_continue:
                continue
            try:
                await self._edit(live, self._progress_embed(live, live.progress))
            except discord.HTTPException as exc:
                log.warning("progress edit failed: %s", exc)

    async def _edit(self, live: LiveSession, embed: discord.Embed) -> None:
        await live.interaction.edit_original_response(content=None, embed=embed)

    def _progress_embed(self, live: LiveSession, p: Progress | None) -> discord.Embed:
        embed = discord.Embed(title=f"⛏️ Mining block {live.height}", colour=BLUE)
        if p is None:  # an auto-continue session between blocks, or on a block's first chunk
            embed.description = "Starting on the chain's newest tip…"
        else:
            share, sessions = live.share
            expected_s = live.expected_hashes / p.rate if p.rate else 0
            used = (f"{duration(p.elapsed)} on this block" if live.auto_continue
                    else f"{duration(p.elapsed)} of {duration(live.deadline_s)} used")
            embed.description = (
                f"`{progress_bar(p.hashes_tried, live.expected_hashes)}` of the hashes a block takes on average"
                f"{beyond_average(p.hashes_tried, live.expected_hashes)}\n"
                f"expected time ~{duration(expected_s)} · {used}"
            )
            embed.add_field(name="Hashes tried", value=f"{p.hashes_tried:,}")
            embed.add_field(name="Rate", value=f"{p.rate:,} H/s")
            embed.add_field(name="Your share", value=f"{share}% of this server's hash power ({sessions} mining)")
            embed.add_field(name="Best hash so far", value=f"`{p.best_hash[:24]}…`", inline=False)
        if live.auto_continue:
            left = max(0.0, self._time_left(live))
            embed.add_field(name="Auto-continue", value=(
                f"{session_summary(live)} · time left: {duration(left)} of {duration(live.deadline_s)} · "
                "`/mine stop` ends it"
            ), inline=False)
        return embed

    def _same_chain(self, live: LiveSession) -> bool:
        return self.playground.genesis_hash(live.guild_id) == live.genesis_hash

    def _final_embed(self, live: LiveSession, result: MiningResult) -> discord.Embed:
        outcome = result.outcome
        if result.block is not None and result.effects is None:  # kept off the main chain by a running game
            where = self.playground.split_side_label(live.guild_id, live.owner)
            if where is None and self.playground.has_double_spend(live.guild_id):
                return discord.Embed(
                    title=f"🕵️ Block {result.block.height} found, kept private",
                    description=f"The running game keeps your block `{result.block.header.hash_hex()[:16]}…` off "
                    "the public chain (`/doublespend status` shows the private branch). `/mine start` for the next "
                    "one.",
                    colour=PURPLE,
                )
            return discord.Embed(
                title=f"✅ Block {result.block.height} found!",
                description=(
                    f"Mined on {where}: it stays there, unseen by the others, until the game publishes it."
                    if where is not None
                    else "Mined on a branch a game kept off the main chain; the game has just ended, so the "
                    "block was published where it fits."
                ),
                colour=GOLD,
            )
        if result.block is not None and result.effects is not None:
            embed = discord.Embed(title=f"✅ Block {result.effects.height} found!", colour=GOLD)
            embed.add_field(name="Hash", value=f"`{result.block.header.hash_hex()}`", inline=False)
            embed.add_field(name="Nonce", value=f"{outcome.nonce:,} (extra nonce {outcome.extra_nonce})")
            embed.add_field(name="Reward", value=points(result.block.coinbase.amount))
            embed.add_field(name="Hashes", value=f"{outcome.hashes_tried:,} in {outcome.elapsed:.1f}s")
            reorg = result.acceptance.reorg if result.acceptance is not None else None
            if reorg is not None:
                embed.add_field(
                    name="🔀 Reorg",
                    value=f"Your block gave its branch the most work: {counted(reorg.depth, 'block')} of the old "
                    f"branch were taken off (from block {reorg.fork_point.height + 1}).",
                    inline=False,
                )
            return embed
        if (
            outcome.kind is OutcomeKind.STALE
            and self._same_chain(live)
            and mining_is_over(self.services, live.guild_id)
        ):
            embed = merged_embed(self.services, live.guild_id)
            embed.description = (
                f"The Merge happened while you were mining ({outcome.hashes_tried:,} hashes tried). "
                + merged_text(self.services, live.guild_id)
            )
            return embed
        if outcome.kind is OutcomeKind.STALE and not self._same_chain(live):
            return discord.Embed(
                title="Chain reset",
                description="An admin reset this server's chain while you were mining. "
                "`/mine start` mines its block 1.",
                colour=GREY,
            )
        if outcome.kind is OutcomeKind.STALE and result.acceptance is not None and live.on_block is not None:
            mine = result.acceptance.entry  # mined on a block of the member's choosing: their own branch
            short = hash_to_display(mine.block_hash)[:16]
            return discord.Embed(
                title=f"🌿 Block {mine.height:,} found, on your branch",
                description=f"It is kept on a side branch (`/chain block {short}`): the main chain still has at "
                f"least as much work. `/mine start on_block:{short}` grows your branch; the block that gives it "
                f"more work than the main chain makes it the main chain (a reorg, announced to everyone).",
                colour=GREY,
            )
        if outcome.kind is OutcomeKind.STALE and result.acceptance is not None:
            orphan = result.acceptance.entry
            return discord.Embed(
                title="🌿 Orphaned",
                description=f"You found block {orphan.height:,}, a moment too late: another block {orphan.height:,} "
                f"came first, and a tie goes to the block seen first. Yours is kept on a side branch "
                f"(`/chain block {hash_to_display(orphan.block_hash)[:16]}`): if a block is found on top of it "
                f"before the main chain grows, its branch takes over. `/mine start` to race for the next one.",
                colour=GREY,
            )
        if outcome.kind is OutcomeKind.STALE:
            return discord.Embed(
                title="Stale",
                description=f"Stale: someone else found block {result.tip_height} first. "
                f"You tried {outcome.hashes_tried:,} hashes. `/mine start` to race for the next one.",
                colour=GREY,
            )
        if outcome.kind is OutcomeKind.TIMEOUT:
            return discord.Embed(
                title="⌛ Time up",
                description=f"No block in {duration(live.deadline_s)} after {outcome.hashes_tried:,} hashes. "
                "Proof of work is a lottery: try again!",
                colour=GREY,
            )
        return discord.Embed(
            title="Mining stopped",
            description=f"Session ended ({live.stop_reason or 'cancelled'}) after {outcome.hashes_tried:,} hashes.",
            colour=GREY,
        )


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Mining(bot.services))  # type: ignore[attr-defined]
