"""/playground: server administration (Manage Server only)."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from chain.mode import Mode, parse_mode
from chain.params import ChainParams
from chain.playground import MIN_SLOT_DURATION_S, ChainState, Playground
from chain.pos.beacon import ConsensusConfig
from chain.pos.staking import ValidatorStatus
from cogs.admin_text import (
    CONSENSUS_OPTIONS,
    MODE_NAMES,
    SERVER_OPTIONS,
    describe_consensus,
    describe_merge_schedule,
    describe_rule_change,
    describe_rules,
    describe_setting_changes,
    describe_slot_budget,
    describe_validators,
    describe_webhook,
    missing_webhooks_text,
    mode_switch_text,
    when_rules_apply,
)
from cogs.admin_views import ResetView, ask_to_confirm
from cogs.embeds import BLUE, GOLD, GREEN, ORANGE, PURPLE, RED, counted, duration, points, seconds
from cogs.errors import PlaygroundCog, UserFacingError, require_guild
from cogs.options import Flag, OneOf, Range
from cogs.services import MAX_SESSION_S, WEBHOOK_NAME, Services

log = logging.getLogger(__name__)

RESET_TIMEOUT_S = 60.0
# A block may be dated at most max_future_block_time_s (600 s) ahead, so no longer spacing.
MAX_BLOCK_TIME_S = 600
MAX_REWARD_POINTS = 1_000_000
MAX_HALVING_BLOCKS = 1_000_000
MAX_RETARGET_BLOCKS = 1000
MAX_COOLDOWN_S = 3600
# A slashed validator's stake stays locked this many times as long as an honest exit's.
SLASHED_UNBONDING_FACTOR = 24
MAX_WEBHOOKS_ERROR = 30007  # Discord: "Maximum number of webhooks reached (15)"
# The Merge: a height up to a billion blocks, a total difficulty up to Discord's integer limit (2^53 - 1).
MAX_MERGE_HEIGHT = 1_000_000_000
MAX_DISCORD_INTEGER = 2**53 - 1
# /playground dashboard: a link's lifetime, in hours (a month at most).
DEFAULT_DASHBOARD_HOURS = 24
MAX_DASHBOARD_HOURS = 720

# The option publishes the plain strings; the command turns the choice into a Mode (tests check they match).
ModeChoice = OneOf["pow", "pos", "hybrid"]
# Validators that will propose and vote: already active, or deposited and waiting for their epoch.
LIVE_STATUSES = (ValidatorStatus.PENDING, ValidatorStatus.ACTIVE)


def require_staking(playground: Playground) -> Playground:
    if not playground.can_stake:
        raise UserFacingError("Proof of stake is not available on this bot. Nothing was changed.")
    return playground


@app_commands.default_permissions(manage_guild=True)
@app_commands.guild_only()
class Admin(
    PlaygroundCog, commands.GroupCog, group_name="playground", group_description="Run this server's playground"
):
    def __init__(self, services: Services) -> None:
        self.services = services
        self.playground: Playground = services.playground
        super().__init__()

    # Replaces PlaygroundCog's check: admin commands must work on an offline chain (status, reset)
    # or refuse bad input before a chain exists (merge), so each loads the chain itself.
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
                value=f"{counted(backlog, 'announcement')} kept while no webhook worked are being delivered now.",
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
        mode="pow, pos or hybrid: switching starts a new chain in that mode (asks for confirmation)",
    )
    async def config(
        self,
        interaction: discord.Interaction,
        block_time: Range[int, 10, MAX_BLOCK_TIME_S] | None = None,
        reward: Range[int, 1, MAX_REWARD_POINTS] | None = None,
        halving_interval: Range[int, 1, MAX_HALVING_BLOCKS] | None = None,
        retarget_window: Range[int, 2, MAX_RETARGET_BLOCKS] | None = None,
        session_length: Range[int, 10, MAX_SESSION_S] | None = None,
        cooldown: Range[int, 0, MAX_COOLDOWN_S] | None = None,
        mode: ModeChoice | None = None,
    ) -> None:
        """Show this server's chain rules and mining settings, or change them."""
        guild_id = require_guild(interaction)
        playground = self.playground
        state = await playground.ensure_chain(guild_id)
        if mode is not None:
            others = [block_time, reward, halving_interval, retarget_window, session_length, cooldown]
            if any(v is not None for v in others):
                raise UserFacingError(
                    "Change the mode on its own: it starts a new chain, so the other settings would be lost "
                    "with the old one. Nothing was changed."
                )
            await self._ask_mode_switch(interaction, guild_id, state, parse_mode(mode))
            return
        given = {
            "block_time": block_time, "reward": reward, "halving_interval": halving_interval,
            "retarget_window": retarget_window, "session_length": session_length, "cooldown": cooldown,
        }
        settings = await self.services.server_settings(guild_id)
        pending: ChainParams | None = playground.pending_params(guild_id)
        if all(v is None for v in given.values()):
            embed = self._settings_embed(state.params, pending, settings, state.height)
            if playground.mode(guild_id) is not None:
                embed.add_field(
                    name="Consensus",
                    value=describe_consensus(playground.consensus(guild_id), playground.is_merged(guild_id)),
                    inline=False,
                )
            else:
                embed.add_field(name="Consensus", value="Mode: **pow** (this chain predates proof of stake)",
                                inline=False)
            await interaction.response.send_message(embed=embed, ephemeral=True)
            return

        base = pending or state.params
        chosen = {option: value for option, value in given.items() if value is not None}
        rules = {
            field: chosen[option]
            for option, (field, _, _) in CONSENSUS_OPTIONS.items()
            if option in chosen and chosen[option] != getattr(base, field)
        }
        server = {
            key: chosen[option]
            for option, (key, _, _) in SERVER_OPTIONS.items()
            if option in chosen and chosen[option] != settings[key]
        }
        proposal: ChainParams | None = None
        if rules:
            spacing = rules.get("target_spacing_s", base.target_spacing_s)
            if spacing > base.max_future_block_time_s:
                raise UserFacingError(
                    f"This chain accepts block times up to {seconds(base.max_future_block_time_s)} "
                    f"(a block may not be dated further ahead than that). Nothing was changed."
                )
            proposal = base.evolve(**rules)
            await playground.propose_params(guild_id, proposal)
        if server:
            await self.services.update_server_settings(guild_id, server)

        embed = discord.Embed(title="⚙️ Settings changed" if rules or server else "⚙️ Nothing to change", colour=GOLD)
        embed.description = describe_setting_changes(base, rules, settings, server, chosen)
        if proposal is not None:
            embed.add_field(name="Chain rules take effect", value=when_rules_apply(state.height), inline=False)
            if "target_spacing_s" in rules and proposal.rescale_on_spacing_change:
                embed.add_field(
                    name="Difficulty",
                    value=f"Follows the new block time at once: the first block under it gets the target scaled by "
                    f"{rules['target_spacing_s']:,}/{base.target_spacing_s:,}, and the next retarget measures only "
                    "the blocks mined for it.",
                    inline=False,
                )
        if server:
            embed.add_field(
                name="Mining settings take effect",
                value="For mining sessions started from now on; sessions already running keep theirs.",
                inline=False,
            )
        await interaction.response.send_message(embed=embed, ephemeral=True)

    async def _ask_mode_switch(
        self,
        interaction: discord.Interaction,
        guild_id: int,
        state: ChainState,
        mode: Mode,
        base: ConsensusConfig | None = None,
    ) -> None:
        playground = require_staking(self.playground)
        current = playground.mode(guild_id) or Mode.POW
        holders = self.services.member_balances(guild_id)
        view = ResetView(self.services, guild_id, interaction.user.id, RESET_TIMEOUT_S, mode=mode, base=base)
        again = " again" if mode == current else ""
        embed = discord.Embed(
            title=f"⚠️ Start a new {mode} chain?",
            description=f"{interaction.user.mention} asked to run this server's chain on "
            f"**{MODE_NAMES[mode]}**{again} (now: **{current}**). A chain cannot change its mode: this starts "
            f"a new chain from a new genesis block. Only they can confirm, within {duration(RESET_TIMEOUT_S)}.",
            colour=ORANGE,
        )
        # The new chain keeps this one's slot, epoch and staking settings (switch_mode starts from them),
        # or takes the ones /playground staking asked for.
        config = base or (playground.consensus(guild_id) if playground.mode(guild_id) is not None else None)
        embed.add_field(
            name="The new chain", value=mode_switch_text(mode, interaction.user.mention, config), inline=False
        )
        if base is not None:
            settings_text = describe_consensus(base, False).split("\n", 1)[1]  # its mode is the one above
            embed.add_field(name="Its proof-of-stake settings", value=settings_text, inline=False)
        embed.add_field(
            name="Gone",
            value=f"all {counted(state.height, 'block')}, every balance ({points(sum(holders))} held by "
            f"{counted(len(holders), 'member')}) and stake, pending transfers and rule changes; "
            "running mining sessions end",
            inline=False,
        )
        await ask_to_confirm(interaction, embed, view)

    # --- /playground staking ------------------------------------------------------------

    @app_commands.command(name="staking")
    @app_commands.describe(
        slot_length="Seconds per slot (6 at least): one block a slot once the chain runs on proof of stake",
        epoch_slots="Slots per epoch: validators vote once an epoch, finality takes about two",
        min_deposit="Points a new validator must stake at least",
        unbonding_epochs="Epochs an exiting validator's stake stays locked (a slashed one: 24 times longer)",
        issuance_bp="Yearly issuance to stakers, in basis points (300 = 3% .. 1500 = 15%)",
        slashing_quotient="A slashing burns effective stake divided by this (32: Ethereum's Bellatrix rule)",
    )
    async def staking(
        self,
        interaction: discord.Interaction,
        slot_length: Range[int, MIN_SLOT_DURATION_S, 600] | None = None,
        epoch_slots: Range[int, 2, 64] | None = None,
        min_deposit: Range[int, 1, 1_000_000] | None = None,
        unbonding_epochs: Range[int, 1, 10_000] | None = None,
        issuance_bp: Range[int, 300, 1_500] | None = None,
        slashing_quotient: Range[int, 1, 1_024] | None = None,
    ) -> None:
        """Show or change the proof-of-stake settings; they are fixed at genesis, so a change starts a new chain."""
        guild_id = require_guild(interaction)
        state = await self.playground.ensure_chain(guild_id)
        playground = require_staking(self.playground)
        current = (
            playground.consensus(guild_id) if playground.mode(guild_id) is not None else self.services.default_consensus
        )
        given = {
            "slot_duration_s": slot_length, "slots_per_epoch": epoch_slots, "min_deposit_points": min_deposit,
            "unbonding_epochs": unbonding_epochs, "issuance_rate_bp": issuance_bp,
            "slashing_penalty_quotient": slashing_quotient,
        }
        changes = {k: v for k, v in given.items() if v is not None and v != getattr(current, k)}
        if not changes:
            embed = discord.Embed(title="⚙️ Proof-of-stake settings", colour=BLUE,
                                  description=describe_consensus(current, playground.is_merged(guild_id)))
            embed.add_field(
                name="Changing them",
                value="They are committed in the genesis block, so `/playground staking` with new values "
                "starts a new chain (after you confirm).",
                inline=False,
            )
            await interaction.response.send_message(embed=embed, ephemeral=True)
            return
        if "unbonding_epochs" in changes:
            # A slashed validator stays locked 24 times as long as an honest exit, the default's ratio
            # (15 and 360 epochs) and what the option's description promises, whatever the new length.
            changes["slashed_unbonding_epochs"] = changes["unbonding_epochs"] * SLASHED_UNBONDING_FACTOR
        # Refused here (ConsensusConfigError, an ephemeral reply) before anything is asked or changed.
        base = ConsensusConfig(**{
            **{f.name: getattr(current, f.name) for f in dataclasses.fields(current)},
            **changes, "merge_at_height": 0, "merge_at_total_difficulty": 0,
            "genesis_validators": (), "genesis_allocations": (), "mode": Mode.POW,
        })
        await self._ask_mode_switch(interaction, guild_id, state, current.mode, base=base)

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
                f"{label}: **{fmt(settings[key])}**" for key, label, fmt in SERVER_OPTIONS.values()
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
        offline = self.playground.offline_reason(guild_id)
        if offline is not None:
            embed = discord.Embed(
                title="🛠️ Playground status",
                description=f"⛔ **This server's chain is offline**: it could not be loaded when the bot started "
                f"({offline}). Nothing on it can be used until an admin starts over with `/playground reset` "
                "(its blocks and balances are lost). Other servers are not affected.",
                colour=RED,
            )
            await interaction.response.send_message(embed=embed, ephemeral=True)
            return
        state = await self.playground.ensure_chain(guild_id)
        webhook = await self.services.notifier.status(guild_id)
        core = self.services.hashing_core.stats()
        here = [s for s in core.per_session if s.chain_id == guild_id]
        pending = self.playground.pending_params(guild_id)

        embed = discord.Embed(title="🛠️ Playground status", colour=BLUE)
        embed.add_field(name="Height", value=f"{state.height:,}")
        if self.playground.tip_block(guild_id).seal is not None:
            embed.add_field(name="Difficulty", value="none: blocks are proof of stake")
        else:
            embed.add_field(
                name="Difficulty",
                value=f"{self.playground.difficulty(state.tip.bits, state.params):,} (bits `{state.tip.bits:#010x}`)",
            )
        embed.add_field(name="Pending transfers", value=f"{self.playground.status(guild_id).pending_transfers:,}")
        embed.add_field(name="Webhook", value=describe_webhook(webhook), inline=False)
        embed.add_field(name="Undelivered events", value=f"{webhook.backlog:,}")
        embed.add_field(name="Mining here", value=counted(len(here), "session"))
        rate = f"~{core.worker_rate * core.workers:,} H/s" if core.worker_rate else "rate measured when mining starts"
        budget = "" if core.cpu_percent >= 100 else f", at most {core.cpu_percent}% of the CPU"
        embed.add_field(
            name="Hashing core",
            value=f"{counted(core.workers, 'worker')}, {rate}, {counted(core.sessions, 'session')} in all; "
            f"{core.backend} hashing{budget}",
        )
        embed.add_field(
            name="Rule change",
            value=f"{describe_rule_change(state.params, pending)}: {when_rules_apply(state.height)}"
            if pending is not None else "none pending",
            inline=False,
        )
        await self._add_consensus_status(embed, guild_id, state)
        await interaction.response.send_message(embed=embed, ephemeral=True)

    async def _add_consensus_status(self, embed: discord.Embed, guild_id: int, state: ChainState) -> None:
        """Mode, the Merge, validators, finality and chaos mode."""
        playground = self.playground
        chaos = await playground.chaos_mode(guild_id)
        mode = playground.mode(guild_id)
        if mode is None:
            embed.add_field(name="Mode", value="pow (this chain predates proof of stake)")
        else:
            config = playground.consensus(guild_id)
            merged = playground.is_merged(guild_id)
            embed.add_field(name="Mode", value=f"{mode} ({MODE_NAMES[mode]})")
            embed.add_field(name="The Merge", value=describe_merge_schedule(config, merged))
            embed.add_field(name="Validators", value=describe_validators(playground.validators(guild_id)), inline=False)
            if merged or mode is Mode.POS:
                embed.add_field(name="Slot blocks", value=describe_slot_budget(*playground.slot_budget(guild_id)),
                                inline=False)
            if state.beacon is not None and state.beacon.ffg_enabled:
                finalized = state.beacon.finality.finalized_checkpoint.epoch
                progress = playground.vote_progress(guild_id)
                embed.add_field(
                    name="Finality",
                    value=f"finalized checkpoint: epoch {finalized:,}; epoch {progress.epoch:,} has votes from "
                    f"{progress.percent}% of the active stake (two thirds justify it)",
                    inline=False,
                )
        embed.add_field(
            name="Chaos mode",
            value="on: members may sign conflicting votes and blocks (`/playground chaos off`)"
            if chaos else "off: the bot refuses to sign anything slashable",
            inline=False,
        )

    # --- /playground chaos ---------------------------------------------------------------

    @app_commands.command(name="chaos")
    @app_commands.describe(
        state="on: members may sign conflicting votes and blocks, to watch slashing; off: the bot refuses"
    )
    async def chaos(
        self, interaction: discord.Interaction, state: OneOf["on", "off"]  # noqa: F821, UP037 - OneOf is Literal to type checkers: its strings are choices
    ) -> None:
        """Let members break proof of stake's rules on purpose, to watch slashing catch them."""
        guild_id = require_guild(interaction)
        await self.playground.ensure_chain(guild_id)
        on = state == "on"
        was = await self.playground.set_chaos_mode(guild_id, on)
        log.info("server %d: chaos mode %s by %d", guild_id, state, interaction.user.id)
        if on:
            embed = discord.Embed(
                title="🌪️ Chaos mode is on" if not was else "🌪️ Chaos mode was already on",
                description="Members may now deliberately sign conflicting messages with their validator: "
                "a second, different vote for an epoch (`double_vote`), or, as the slot's proposer, a second "
                "block for the same slot. Normally the bot's slashing protection (EIP-3076) refuses both. "
                "Anyone who shows the two signatures gets the offender **slashed**: part of its stake burned, "
                "a reward to the whistleblower, and the validator forced out.",
                colour=ORANGE,
            )
            embed.set_footer(text="Real stake of this server's chain is at risk. /playground chaos off ends it.")
        else:
            embed = discord.Embed(
                title="🛡️ Chaos mode is off" if was else "🛡️ Chaos mode was already off",
                description="The bot again refuses to sign anything slashable (EIP-3076 slashing protection). "
                "Evidence already signed can still be reported and slashed.",
                colour=GREEN,
            )
        await interaction.response.send_message(embed=embed, ephemeral=True)

    # --- /playground merge ---------------------------------------------------------------

    @app_commands.command(name="merge")
    @app_commands.describe(
        at_height="The first proof-of-stake block's height (give this or at_total_difficulty)",
        at_total_difficulty="The total work (sum of every block's difficulty) whose first block is the last mined",
    )
    async def merge(
        self,
        interaction: discord.Interaction,
        at_height: Range[int, 2, MAX_MERGE_HEIGHT] | None = None,
        at_total_difficulty: Range[int, 1, MAX_DISCORD_INTEGER] | None = None,
    ) -> None:
        """Schedule the Merge: from then on validators, not miners, make the blocks."""
        guild_id = require_guild(interaction)
        if (at_height is None) == (at_total_difficulty is None):
            raise UserFacingError(
                "Give exactly one of `at_height` (the first proof-of-stake block) or `at_total_difficulty` "
                "(like Ethereum's terminal total difficulty). Nothing was changed."
            )
        playground = require_staking(self.playground)
        state = await playground.ensure_chain(guild_id)
        mode = playground.mode(guild_id)
        if mode is None or mode is Mode.POS:
            why = ("has proof of stake from genesis" if mode is Mode.POS
                   else "was created before proof of stake existed, so it has no validators")
            raise UserFacingError(
                f"This chain {why}: there is no Merge to schedule. "
                "`/playground config mode:pow` starts a proof-of-work chain that can merge. Nothing was changed."
            )
        if playground.is_merged(guild_id):
            raise UserFacingError("This chain has already merged: its blocks are proof-of-stake blocks. "
                                  "Nothing was changed.")
        validators = playground.validators(guild_id)
        live = [v for v in validators if v.status in LIVE_STATUSES]
        config = playground.consensus(guild_id)
        if not live:
            raise UserFacingError(
                "Nobody has staked yet, so nobody could propose blocks after the Merge. A member stakes with "
                f"`/stake deposit` (at least {points(config.min_deposit_points)}); once a mined block includes "
                "the deposit, schedule the Merge. Nothing was changed."
            )
        self._check_merge_margin(guild_id, state, at_height, at_total_difficulty)
        config = await playground.schedule_merge(guild_id, at_height=at_height, at_total_difficulty=at_total_difficulty)
        log.info("server %d: Merge scheduled (height %s, total difficulty %s) by %d",
                 guild_id, at_height, at_total_difficulty, interaction.user.id)
        if at_height is not None:
            when = f"at block {at_height:,}: block {at_height - 1:,} is the last mined block"
        else:
            reached = state.beacon.total_difficulty if state.beacon is not None else 0
            when = (f"at total difficulty {at_total_difficulty:,} (now {reached:,}): the first block whose "
                    "total reaches it is the last mined block")
        embed = discord.Embed(
            title="🗓️ The Merge is scheduled",
            description=f"The Merge comes {when}. Block {state.height + 1:,}, the next one mined, commits to "
            "the schedule in its coinbase, like a rule change, so the chain stays verifiable.",
            colour=PURPLE,
        )
        embed.add_field(
            name="What happens",
            value=(
                "• Members whose deposits are in a block by then are the first validators (the Merge waits "
                "until at least one is active).\n"
                "• After the last proof-of-work block, mining stops: `/mine start` says why.\n"
                f"• Blocks then come every {seconds(config.slot_duration_s)}, one a slot, each from a validator "
                "drawn in proportion to its stake (`/chain proposer` shows the draw); "
                "the last mined block's epoch is final.\n"
                "• The proof-of-work history stays verifiable (`/chain verify`)."
            ),
            inline=False,
        )
        embed.add_field(name="Validators now", value=describe_validators(validators), inline=False)
        await interaction.response.send_message(embed=embed, ephemeral=True)

    def _check_merge_margin(
        self, guild_id: int, state: ChainState, at_height: int | None, at_total_difficulty: int | None
    ) -> None:
        """Refuse a schedule the block committing to it could not carry.

        The next block mined commits to the schedule, and the engine refuses a block that commits to a
        Merge at or before itself; a block a running session is already mining (without the commitment)
        may land first, so the commitment can come one block later.
        """
        running = any(s.chain_id == guild_id for s in self.services.hashing_core.stats().per_session)
        blocks_before_commit = 2 if running else 1
        if at_height is not None:
            earliest = state.height + blocks_before_commit + 2
            if at_height < earliest:
                raise UserFacingError(
                    f"The Merge at block {at_height:,} comes too soon: the chain is at block {state.height:,}, and the "
                    f"block that commits to the schedule must come before the last mined block. Pick block "
                    f"{earliest:,} or later. Nothing was changed."
                )
        if at_total_difficulty is not None and state.beacon is not None:
            per_block = self.playground.next_block_work(guild_id)
            earliest = state.beacon.total_difficulty + (blocks_before_commit + 1) * per_block
            if at_total_difficulty < earliest:
                raise UserFacingError(
                    f"Total difficulty {at_total_difficulty:,} comes too soon: the chain is at "
                    f"{state.beacon.total_difficulty:,}, each block adds about {per_block:,}, and the block that "
                    f"commits to the schedule must not reach it. Pick {earliest:,} or more. Nothing was changed."
                )

    # --- /playground reset ----------------------------------------------------------------

    @app_commands.command(name="reset")
    @app_commands.describe(
        defaults="Start with the default rules and mode instead of this server's own (block time, reward…)",
    )
    async def reset(self, interaction: discord.Interaction, defaults: Flag = False) -> None:
        """Start this server's chain over from a new genesis block (asks for confirmation)."""
        guild_id = require_guild(interaction)
        offline = self.playground.offline_reason(guild_id)
        if offline is not None:
            # The one way out for a chain that failed to load: it cannot be read, only replaced.
            embed = discord.Embed(
                title="⚠️ Reset this server's chain?",
                description=f"{interaction.user.mention} asked to start over. The stored chain could not be "
                f"loaded ({offline}); resetting deletes it and starts a new genesis block. Only they can "
                f"confirm, within {duration(RESET_TIMEOUT_S)}.",
                colour=ORANGE,
            )
            embed.add_field(name="Gone", value="the stored chain: every block, balance and pending transfer",
                            inline=False)
            embed.add_field(name="Rules", value="the defaults: the stored chain's own rules cannot be read",
                            inline=False)
            view = ResetView(self.services, guild_id, interaction.user.id, RESET_TIMEOUT_S)
            await ask_to_confirm(interaction, embed, view)
            return
        state = await self.playground.ensure_chain(guild_id)
        holders = self.services.member_balances(guild_id)
        pending_transfers = self.playground.status(guild_id).pending_transfers
        view = ResetView(self.services, guild_id, interaction.user.id, RESET_TIMEOUT_S, defaults=defaults)
        embed = discord.Embed(
            title="⚠️ Reset this server's chain?",
            description=f"{interaction.user.mention} asked to start the chain over from a new genesis block. "
            f"Only they can confirm, within {duration(RESET_TIMEOUT_S)}.",
            colour=ORANGE,
        )
        embed.add_field(
            name="Gone",
            value=f"all {counted(state.height, 'block')}, every balance ({points(sum(holders))} held by "
            f"{counted(len(holders), 'member')}), {counted(pending_transfers, 'pending transfer')} and any pending "
            "rule change; "
            "running mining sessions end",
            inline=False,
        )
        embed.add_field(name="Rules", value=self._rules_after_reset(guild_id, state, defaults), inline=False)
        await ask_to_confirm(interaction, embed, view)

    def _rules_after_reset(self, guild_id: int, state: ChainState, defaults: bool) -> str:
        """What the confirmation prompt says about the new chain's rules: the server's, or the defaults."""
        default_mode = self.services.default_consensus.mode
        mode = self.playground.mode(guild_id) or Mode.POW
        if defaults:
            return (
                f"back to the defaults (`defaults:True`), mode **{default_mode}**:\n"
                + describe_rules(self.services.default_params)
            )
        kept = self.playground.kept_params(state.params)
        return (
            f"kept: this server's rules in force now, mode **{mode}** (`/playground reset defaults:True` "
            f"goes back to the defaults):\n" + describe_rules(kept)
        )

    # --- /playground dashboard ------------------------------------------------------------

    @app_commands.command(name="dashboard")
    @app_commands.describe(
        hours=f"How long the link works, in hours (1–{MAX_DASHBOARD_HOURS}; {DEFAULT_DASHBOARD_HOURS} by default)",
        revoke="Revoke every dashboard link of this server made so far (open pages stop too)",
    )
    async def dashboard(
        self, interaction: discord.Interaction, hours: Range[int, 1, MAX_DASHBOARD_HOURS] | None = None,
        revoke: Flag = False,
    ) -> None:
        """A link to this server's live classroom dashboard (read-only web page), or revoke the links."""
        guild_id = require_guild(interaction)
        links = self.services.dashboard
        if links is None:
            raise UserFacingError(
                "The classroom dashboard is off on this bot: whoever runs the bot turns it on with "
                "`DASHBOARD_PORT` (see the README, \"Classroom dashboard\"). Nothing was changed."
            )
        if revoke:
            if hours is not None:
                raise UserFacingError(
                    "`revoke:True` revokes links, it makes none: run it without `hours`, then "
                    "`/playground dashboard` for a new link. Nothing was changed."
                )
            await links.revoke_links(guild_id)
            embed = discord.Embed(
                title="🔒 Dashboard links revoked",
                description="Every dashboard link of this server made so far now gets 403, and pages open on "
                "one stop updating. `/playground dashboard` gives a new link.",
                colour=ORANGE,
            )
            await interaction.response.send_message(embed=embed, ephemeral=True)
            return
        lifetime = hours if hours is not None else DEFAULT_DASHBOARD_HOURS
        url = await links.issue_link(guild_id, lifetime)
        embed = discord.Embed(
            title="📺 Classroom dashboard",
            description=f"{url}\n\nOpen it on the projector: it shows this server's chain live (blocks, the "
            "mining race, the mempool, validators and their votes). Anyone with the link can watch, nobody "
            f"can change anything through it. It works for {counted(lifetime, 'hour')}; "
            "`/playground dashboard revoke:True` stops every link at once.",
            colour=BLUE,
        )
        await interaction.response.send_message(embed=embed, ephemeral=True)


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Admin(bot.services))  # type: ignore[attr-defined]
