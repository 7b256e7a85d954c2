"""/stake, /validators, /report and the slot driver: proof of stake for members.

The engine is reached through ``chain.playground.Playground`` (``services.playground``); this cog
only turns commands into its calls and its answers into embeds.  The slot
driver is one background task: about every ``SLOT_DRIVER_INTERVAL_S`` it asks the
beacon node to advance every proof-of-stake chain to the current slot, and shows
each new block on the server's epoch message in the playground channel
(``cogs.epoch_board``: one message per epoch, edited as slots pass) with an
**Attest** button (a ``DynamicItem``, so it keeps working after a restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands, tasks

from chain.consensus.block import Block
from chain.errors import StaleBlockError
from chain.hashing import hash_to_display
from chain.mode import Mode
from chain.playground import FinalityView, Playground, SlotOutcome, ValidatorView, VoteProgress, VoteReceipt
from chain.pos.attestation import (
    AttesterSlashing,
    ProposerSlashing,
    check_attester_slashing,
    check_proposer_slashing,
)
from chain.pos.rewards import UNITS_PER_POINT
from chain.pos.staking import FAR_FUTURE_EPOCH, WHISTLEBLOWER_REWARD_QUOTIENT, ValidatorStatus
from cogs.chart_book import ChartPicture
from cogs.embeds import BLUE, GOLD, GREEN, counted, duration, points, progress_bar, stake_points
from cogs.epoch_board import BoardState, EpochBoard
from cogs.errors import PlaygroundCog, UserFacingError, describe_error, reply_ephemeral, require_guild
from cogs.options import Flag, OneOf, Range
from cogs.services import Services

log = logging.getLogger(__name__)

# How often the slot driver wakes; slots last seconds, so half a second keeps blocks on time.
SLOT_DRIVER_INTERVAL_S = 0.5
VALIDATORS_PER_PAGE = 25
MAX_DEPOSIT_POINTS = 1_000_000_000
# Discord's limit for a string option; serialized evidence is well under it.
MAX_EVIDENCE_CHARS = 6000
ATTEST_CUSTOM_ID = "pg:attest:{slot}:{root}"
ATTEST_TEMPLATE = r"pg:attest:(?P<slot>[0-9]+):(?P<root>[0-9a-f]{64})"
VOTES_FIELD = "Votes toward 2/3"
# The chart each new epoch's message carries: how the epochs before it voted (cogs/chart_kinds.py).
EPOCH_PICTURE = "participation"
RED = discord.Colour.red()
NO_MENTIONS = discord.AllowedMentions.none()
_HEX = re.compile(r"[0-9a-fA-F]*")

STATUS_LABELS = {
    ValidatorStatus.PENDING: "⏳ pending",
    ValidatorStatus.ACTIVE: "✅ active",
    ValidatorStatus.EXITING: "🚪 exiting",
    ValidatorStatus.WITHDRAWABLE: "💸 withdrawable",
    ValidatorStatus.SLASHED: "🔪 slashed",
}


# --- formatting (pure) ---------------------------------------------------------------


def vote_progress_text(progress: VoteProgress) -> str:
    """A bar toward the 2/3 of active stake that justifies the epoch's checkpoint."""
    bar = progress_bar(progress.attesting_units * 3, progress.total_active_units * 2)
    share = f" ({progress.percent}% of it; 2/3 is needed)" if progress.total_active_units else ""
    text = (
        f"`{bar}`\n{stake_points(progress.attesting_units)} of {stake_points(progress.total_active_units)} "
        f"active stake voted for epoch {progress.epoch}{share}"
    )
    if progress.justifies:
        text += " — ✅ 2/3 reached: the checkpoint justifies at the epoch's end"
    return text


def over_cap_text(balance_units: int, amount_points: int, cap_points: int) -> str | None:
    """A warning when a deposit takes the validator's balance past the stake cap: only the cap counts
    as stake, and the sweep pays the rest back (Capella's partial withdrawals)."""
    excess = balance_units + amount_points * UNITS_PER_POINT - cap_points * UNITS_PER_POINT
    if excess <= 0:
        return None
    return (
        f"⚠️ Only {points(cap_points)} of a validator's balance count as stake (the cap). The "
        f"{stake_points(excess)} above it earn nothing: the withdrawal sweep pays them back to your "
        "wallet in the coming blocks."
    )


def status_label(view: ValidatorView) -> str:
    return STATUS_LABELS.get(view.status, view.status.value)


def owner_mention(view: ValidatorView) -> str:
    return f"<@{view.owner}>" if view.owner else f"`{view.pubkey.hex()[:16]}…`"


def known_epoch(epoch: int | None) -> int | None:
    return None if epoch is None or epoch >= FAR_FUTURE_EPOCH else epoch


def normalize_evidence(text: str) -> str:
    """The evidence as lower-case hex without a ``0x`` prefix or spaces, or a clear refusal."""
    cleaned = "".join(text.split()).lower()
    cleaned = cleaned.removeprefix("0x")
    if not cleaned or not _HEX.fullmatch(cleaned) or len(cleaned) % 2:
        raise UserFacingError(
            "Evidence is the hex of a serialized AttesterSlashing or ProposerSlashing "
            "(an even number of hex digits, optionally starting with 0x)."
        )
    return cleaned


@dataclass(frozen=True, slots=True)
class SlotShown:
    """A slot as the epoch message shows it: the driver's outcome, its block, who proposed it."""

    outcome: SlotOutcome
    block: Block
    proposer: str
    finality: FinalityView


def finality_news(before: FinalityView | None, after: FinalityView, slot: int) -> tuple[tuple[str, ...], bool]:
    """What changed that members must see, and whether it deserves a new message.

    Justification and finalization happen nearly every epoch: the message's Finality field shows
    them (and the webhook announces them). A slashing or the start of an inactivity leak is rare and
    costs members stake: it gets a new message, so the news and the Attest button are at the bottom."""
    if before is None:  # the first slot this process saw: nothing to compare with
        return (), False
    news: list[str] = []
    fresh = False
    slashed = after.slashed_count - before.slashed_count
    if slashed > 0:
        news.append(f"⚔️ {counted(slashed, 'validator')} slashed at slot {slot:,} (see the announcement)")
        fresh = True
    if after.in_leak and not before.in_leak:
        news.append(
            f"🩸 Inactivity leak from slot {slot:,}: nothing finalized since epoch {after.finalized_epoch:,}, so "
            "validators that do not vote lose stake until ⅔ vote again"
        )
        fresh = True
    elif before.in_leak and not after.in_leak:
        news.append(f"💧 The inactivity leak ended at slot {slot:,}")
    return tuple(news), fresh


def finality_text(finality: FinalityView) -> str:
    text = f"justified epoch {finality.justified_epoch:,} · finalized epoch {finality.finalized_epoch:,}"
    if finality.in_leak:
        text += " · 🩸 inactivity leak"
    return text


def epoch_embed(state: BoardState) -> discord.Embed:
    """The epoch message: the newest slot's block, the epoch's news, the votes toward 2/3."""
    shown: SlotShown = state.slot
    outcome, block = shown.outcome, shown.block
    embed = discord.Embed(
        title=f"🧱 Epoch {outcome.epoch:,} · slot {outcome.slot:,} — block {block.height:,}",
        colour=RED if shown.finality.in_leak else BLUE,
    )
    embed.add_field(name="Proposer", value=shown.proposer)
    embed.add_field(name="Transfers", value=str(len(block.transfers)))
    embed.add_field(name="Blocks this epoch", value=f"{state.blocks:,}")
    embed.add_field(name="Finality", value=finality_text(shown.finality), inline=False)
    embed.add_field(name="Hash", value=f"`{block.header.hash_hex()}`", inline=False)
    progress = state.progress
    embed.add_field(
        name=VOTES_FIELD, value=vote_progress_text(progress) if progress is not None else "no active stake yet",
        inline=False,
    )
    notes = []
    if outcome.auto_votes:
        notes.append(counted(outcome.auto_votes, "auto-attest vote"))
    if outcome.orphaned:
        notes.append(f"the votes moved the head: {counted(len(outcome.orphaned), 'block')} orphaned")
    lines = [" · ".join(notes)] if notes else []
    lines.extend(state.news)
    if lines:
        embed.description = "\n".join(lines)
    embed.set_footer(
        text=f"This message follows epoch {outcome.epoch:,}, slot by slot. Attest votes for the newest block "
        "with your validator (never anything slashable)."
    )
    return embed


def render_board(state: BoardState) -> tuple[discord.Embed, discord.ui.View | None] | None:
    """The epoch message for ``state``; after a restart, the pressed message with the newer count."""
    if state.slot is None:
        if state.restored is None or state.progress is None or not state.restored.embeds:
            return None
        return set_votes_field(state.restored.embeds[0].copy(), state.progress), None
    view = discord.ui.View(timeout=None)
    view.add_item(AttestButton(state.slot.outcome.slot, state.slot.block.hash()))
    return epoch_embed(state), view


def set_votes_field(embed: discord.Embed, progress: VoteProgress) -> discord.Embed:
    for index, embed_field in enumerate(embed.fields):
        if embed_field.name == VOTES_FIELD:
            embed.set_field_at(index, name=VOTES_FIELD, value=vote_progress_text(progress), inline=False)
            return embed
    embed.add_field(name=VOTES_FIELD, value=vote_progress_text(progress), inline=False)
    return embed


def vote_embed(receipt: VoteReceipt, *, double_vote: bool = False) -> discord.Embed:
    data = receipt.attestation.data
    title = "😈 Conflicting vote signed" if double_vote else "🗳️ Vote signed"
    embed = discord.Embed(title=title, colour=RED if double_vote else GREEN)
    embed.description = (
        f"Validator #{receipt.validator_index} voted at slot {data.slot:,} for head "
        f"`{hash_to_display(data.beacon_block_root)[:16]}…`, "
        f"link epoch {data.source.epoch} → {data.target.epoch}."
    )
    embed.add_field(name=VOTES_FIELD, value=vote_progress_text(receipt.progress), inline=False)
    if receipt.evidence is not None:
        embed.add_field(
            name="⚠️ Caught",
            value="This vote conflicts with one you already signed for the same epoch. The bot's slashing "
            "detector has the two votes: a coming block includes the evidence and slashes your validator.",
            inline=False,
        )
    return embed


def validator_embed(view: ValidatorView, chain_epoch: int) -> discord.Embed:
    embed = discord.Embed(title=f"🪪 Your validator #{view.index}", colour=RED if view.slashed else BLUE)
    embed.add_field(name="State", value=status_label(view))
    embed.add_field(name="Effective stake", value=stake_points(view.effective_balance_units))
    embed.add_field(name="Balance", value=stake_points(view.balance_units))
    embed.add_field(name="Net rewards/penalties", value=stake_points(view.net_rewards_units, signed=True))
    embed.add_field(
        name="Participation",
        value=f"this epoch {'✅' if view.voted_current_epoch else '❌'} · "
        f"previous epoch {'✅' if view.voted_previous_epoch else '❌'}",
    )
    embed.add_field(name="Auto-attest", value="on" if view.auto_attest else "off")
    activation = known_epoch(view.activation_epoch)
    if view.status is ValidatorStatus.PENDING:
        embed.add_field(
            name="Activation",
            value=f"epoch {activation:,}" if activation is not None else "once a block includes the deposit",
        )
    if view.unlock_in_s is None:
        unlock = "not exiting: `/stake withdraw` starts the exit"
    elif view.unlock_in_s == 0:
        unlock = "unlocked: the stake is paid back to your wallet in the coming blocks"
    else:
        unlock = f"in {duration(view.unlock_in_s)}"
        withdrawable = known_epoch(view.withdrawable_epoch)
        if withdrawable is not None:
            unlock += f" (epoch {withdrawable:,})"
    embed.add_field(name="Unlock", value=unlock)
    embed.set_footer(text=f"pubkey {view.pubkey.hex()[:32]}… · chain epoch {chain_epoch:,}")
    return embed


# --- the Attest button ---------------------------------------------------------------


class AttestButton(discord.ui.DynamicItem[discord.ui.Button], template=ATTEST_TEMPLATE):
    """Attest for one slot's block; the slot and block root live in the custom id."""

    def __init__(self, slot: int, root: bytes) -> None:
        super().__init__(
            discord.ui.Button(
                label="Attest",
                emoji="🗳️",
                style=discord.ButtonStyle.success,
                custom_id=ATTEST_CUSTOM_ID.format(slot=slot, root=root.hex()),
            )
        )
        self.slot = slot
        self.root = root

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> AttestButton:
        return cls(int(match["slot"]), bytes.fromhex(match["root"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        cog = interaction.client.get_cog(Staking.__cog_name__)  # type: ignore[attr-defined]
        if not isinstance(cog, Staking):
            await reply_ephemeral(interaction, "Staking is not available right now; try again in a moment.")
            return
        await cog.attest_from_button(interaction, self.slot, self.root, interaction.message)


# --- /stake ------------------------------------------------------------------------


# On the group: Discord ignores guild_only on subcommands, so only this keeps it out of DMs.
@app_commands.guild_only()
class Staking(
    PlaygroundCog,
    commands.GroupCog,
    group_name="stake",
    group_description="Stake points and validate this server's chain",
):
    def __init__(self, bot: commands.Bot, services: Services) -> None:
        self.bot = bot
        self.services = services
        self.playground: Playground = services.playground
        self.driver: asyncio.Task[None] | None = None
        # One message per server and epoch, edited as slots pass and votes come (cogs/epoch_board.py).
        self.board = EpochBoard(
            store=services.epoch_messages, channel_of=self._playground_channel, render=render_board,
            clock=services.playground.clock, picture=self._epoch_picture,
        )
        # Per server: the finality seen at the last slot, to tell what changed since.
        self._finality: dict[int, FinalityView] = {}
        self._stopping = asyncio.Event()
        super().__init__()

    # --- lifecycle ----------------------------------------------------------------

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(AttestButton)
        self._stopping.clear()
        # Read at each start, so the cadence can be tuned (tests shorten it) without editing the loop.
        self.slot_driver.change_interval(seconds=SLOT_DRIVER_INTERVAL_S)
        self.driver = self.slot_driver.start()

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(AttestButton)
        await self.stop_slot_driver()

    async def stop_all_sessions(self, reason: str, timeout_s: float = 5.0) -> None:
        """Shutdown hook (``PlaygroundBot.close`` calls it on every cog before the store closes):
        no slot may run against a closing store."""
        log.info("stopping the slot driver: %s", reason)
        await self.stop_slot_driver(timeout_s)

    async def stop_slot_driver(self, timeout_s: float = 5.0) -> None:
        """Let the slot in progress finish (it writes blocks: never cut it halfway), then stop."""
        self._stopping.set()
        driver, self.driver = self.driver, None
        if driver is not None:
            # stop() lets the pass in progress finish; a pass that starts after it sees _stopping and does nothing.
            self.slot_driver.stop()
            try:
                await asyncio.wait_for(asyncio.shield(driver), timeout_s)
            except TimeoutError:
                log.warning("the slot driver did not stop within %.0fs; cancelling it", timeout_s)
                self.slot_driver.cancel()
            except Exception:  # stopping must not fail the shutdown
                log.exception("the slot driver failed while stopping")
        await self.board.stop()

    @property
    def posts(self) -> set[asyncio.Task[None]]:
        """The epoch-message writes in flight: at most one per server."""
        return self.board.tasks

    # --- helpers ------------------------------------------------------------------

    def _now(self) -> int:
        return int(self.playground.clock())

    def _next_block_text(self, guild_id: int) -> str:
        playground = self.playground
        if playground.mode(guild_id) is Mode.POS or playground.is_merged(guild_id):
            now = self._now()
            next_slot = playground.current_slot(guild_id, now) + 1
            wait = max(0, playground.slot_time(guild_id, next_slot) - now)
            return f"It waits for the next block: slot {next_slot:,} starts in {duration(wait)}."
        return "It waits for the next block mined (`/mine start`)."

    def _activation_text(self, guild_id: int) -> str:
        """When a deposit made now activates: the epoch after the block that includes it."""
        playground = self.playground
        rule = "the epoch after the block that includes the deposit"
        if playground.mode(guild_id) is not Mode.POS:
            return f"at the start of {rule}"
        # A pos chain's slot clock starts at genesis: epoch e starts at slot e * slots_per_epoch.
        per_epoch = playground.consensus(guild_id).slots_per_epoch
        now = self._now()
        next_slot = playground.current_slot(guild_id, now) + 1
        epoch = next_slot // per_epoch + 1
        wait = max(0, playground.slot_time(guild_id, epoch * per_epoch) - now)
        return f"epoch {epoch:,}, in about {duration(wait)}: {rule}"

    # --- commands -----------------------------------------------------------------

    @app_commands.command(name="deposit")
    @app_commands.describe(amount="Points to lock as stake (at least the server's minimum deposit, 32 by default)")
    async def deposit(
        self, interaction: discord.Interaction, amount: Range[int, 1, MAX_DEPOSIT_POINTS]
    ) -> None:
        """Lock points as stake: your validator activates the epoch after a block includes the deposit."""
        guild_id = require_guild(interaction)
        playground = self.playground
        view = await playground.deposit(guild_id, str(interaction.user.id), amount)
        embed = discord.Embed(title="🪙 Stake deposited", colour=GREEN)
        warning = over_cap_text(
            0 if view is None else view.balance_units,
            amount,
            playground.consensus(guild_id).max_effective_balance_points,
        )
        if view is None:
            embed.description = (
                f"{interaction.user.mention} locks **{points(amount)}** in a new validator, **pending** until a block "
                f"includes the deposit.\n{self._next_block_text(guild_id)}"
            )
            embed.add_field(name="Activates", value=self._activation_text(guild_id), inline=False)
        else:
            embed.description = (
                f"{interaction.user.mention} adds **{points(amount)}** to validator #{view.index} "
                f"({status_label(view)}).\n{self._next_block_text(guild_id)}"
            )
            embed.add_field(
                name="Effective stake",
                value=f"{stake_points(view.effective_balance_units)} now; it follows the balance at an epoch's end "
                f"(capped at {points(playground.consensus(guild_id).max_effective_balance_points)})",
                inline=False,
            )
        if warning is not None:
            embed.add_field(name="Above the cap", value=warning, inline=False)
        embed.set_footer(text="/stake status shows your validator; /stake withdraw starts an exit.")
        await interaction.response.send_message(embed=embed, allowed_mentions=NO_MENTIONS)

    @app_commands.command(name="withdraw")
    async def withdraw(self, interaction: discord.Interaction) -> None:
        """Start your validator's exit: the stake unbonds, then returns to your wallet."""
        guild_id = require_guild(interaction)
        playground = self.playground
        view = await playground.withdraw(guild_id, str(interaction.user.id))
        config = playground.consensus(guild_id)
        epoch_s = config.slots_per_epoch * config.slot_duration_s
        embed = discord.Embed(title="🚪 Exit started", colour=GOLD)
        embed.description = (
            f"{interaction.user.mention}'s validator #{view.index} stops validating once a block includes the exit. "
            f"{self._next_block_text(guild_id)}"
        )
        exit_epoch = known_epoch(view.exit_epoch)
        if exit_epoch is not None:
            embed.add_field(name="Exit epoch", value=f"{exit_epoch:,}")
        withdrawable = known_epoch(view.withdrawable_epoch)
        lock = f"{counted(config.unbonding_epochs, 'epoch')} of unbonding"
        if withdrawable is not None:
            lock += f", withdrawable from epoch {withdrawable:,}"
        embed.add_field(name="Unbonding lock", value=lock)
        left = view.unlock_in_s if view.unlock_in_s is not None else (config.unbonding_epochs + 1) * epoch_s
        embed.add_field(name="Time left", value=f"about {duration(left)}")
        embed.add_field(name="Stake", value=stake_points(view.balance_units))
        embed.set_footer(text="The balance then returns to your wallet in the following blocks.")
        await interaction.response.send_message(embed=embed, allowed_mentions=NO_MENTIONS)

    @app_commands.command(name="status")
    async def status(self, interaction: discord.Interaction) -> None:
        """Your validator: state, stake, balance, rewards, votes and unlock time (only you see it)."""
        guild_id = require_guild(interaction)
        playground = self.playground
        view = await playground.validator(guild_id, str(interaction.user.id))
        if view is None:
            waiting = await playground.pending_deposit_points(guild_id, str(interaction.user.id))
            if waiting:
                await interaction.response.send_message(
                    f"⏳ Your deposit of **{points(waiting)}** waits for the next block. Your validator appears, "
                    f"pending, with that block. {self._next_block_text(guild_id)}",
                    ephemeral=True,
                )
                return
            minimum = playground.consensus(guild_id).min_deposit_points
            raise UserFacingError(
                f"You have no validator on this server. `/stake deposit amount:{minimum}` stakes the minimum."
            )
        await interaction.response.send_message(
            embed=validator_embed(view, playground.current_epoch(guild_id)), ephemeral=True
        )

    @app_commands.command(name="attest")
    @app_commands.describe(
        double_vote="Chaos mode only: also sign a conflicting vote for this epoch, to get slashed on purpose"
    )
    async def attest(self, interaction: discord.Interaction, double_vote: Flag = False) -> None:
        """Vote now for the current head and checkpoint with your validator."""
        guild_id = require_guild(interaction)
        playground = self.playground
        receipt = await playground.attest(guild_id, str(interaction.user.id), double_vote=double_vote)
        if receipt.evidence is not None:
            log.info("guild %d: %s signed a conflicting vote; evidence queued", guild_id, interaction.user.id)
        await interaction.response.send_message(embed=vote_embed(receipt, double_vote=double_vote))

    @app_commands.command(name="auto")
    @app_commands.describe(
        state="on: the bot votes for you once an epoch; off: you vote yourself (Attest button, /stake attest)"
    )
    async def auto(
        self,
        interaction: discord.Interaction,
        state: OneOf["on", "off"],  # noqa: F821, UP037 - OneOf is Literal to type checkers: its strings are choices
    ) -> None:
        """Turn auto-attest on or off: the bot votes for you once an epoch, never anything slashable."""
        guild_id = require_guild(interaction)
        playground = self.playground
        on = state == "on"
        # Refused (NoValidatorError, nothing stored) if "on" comes from someone who never deposited.
        await playground.set_auto_attest(guild_id, str(interaction.user.id), on)
        if on:
            view = await playground.validator(guild_id, str(interaction.user.id))
            when = "once an epoch" if view is not None and view.status is ValidatorStatus.ACTIVE else (
                "once an epoch from the moment your validator is active"
            )
            text = (
                f"✅ Auto-attest is **on**: your validator votes {when}, for the newest block. It never signs anything "
                "slashable: slashing protection (EIP-3076) refuses double and surround votes, even in chaos mode."
            )
        else:
            text = "Auto-attest is **off**: vote with `/stake attest` or the Attest button on the epoch message."
        await interaction.response.send_message(text, ephemeral=True)

    @app_commands.command(name="protection")
    async def protection(self, interaction: discord.Interaction) -> None:
        """Your slashing protection history as an EIP-3076 interchange file (only you see it)."""
        guild_id = require_guild(interaction)
        playground = self.playground
        document = await playground.protection(guild_id, str(interaction.user.id))
        data = json.dumps(document, indent=2).encode()
        filename = f"slashing-protection-{guild_id}-{interaction.user.id}.json"
        entries = document.get("data", []) if isinstance(document, dict) else []
        text = (
            f"🛡️ Your slashing protection record ({counted(len(entries), 'validator')}), in the EIP-3076 interchange "
            "format that other validator clients import: the highest block slot and vote your key signed."
        )
        await interaction.response.send_message(
            text, file=discord.File(io.BytesIO(data), filename=filename), ephemeral=True
        )

    @app_commands.command(name="equivocate")
    async def equivocate(self, interaction: discord.Interaction) -> None:
        """Chaos mode only: as this slot's proposer, sign a second block for the slot (a slashable offence)."""
        guild_id = require_guild(interaction)
        playground = self.playground
        block = await playground.equivocate(guild_id, str(interaction.user.id))
        slot = block.seal.slot if block.seal is not None else playground.current_slot(guild_id, self._now())
        embed = discord.Embed(title="😈 Second block signed", colour=RED)
        embed.description = (
            f"{interaction.user.mention} signed another block for slot {slot:,}: `{block.header.hash_hex()}`. "
            "Two signed headers for one slot by one proposer are a proposer slashing: the bot's detector "
            "queues the evidence, and a coming block slashes the proposer."
        )
        await interaction.response.send_message(embed=embed, allowed_mentions=NO_MENTIONS)

    # --- the Attest button ----------------------------------------------------------

    async def attest_from_button(
        self, interaction: discord.Interaction, slot: int, root: bytes, message: discord.Message | None
    ) -> None:
        """Vote for the block the pressed message shows; if that block is no longer up for a vote
        (the message is an older epoch's, or its edit is behind the chain), for the newest head."""
        moved_on = False
        try:
            guild_id = require_guild(interaction)
            owner = str(interaction.user.id)
            try:
                receipt = await self.playground.attest(guild_id, owner, head_root=root)
            except StaleBlockError:
                # Checked before anything is signed: no vote exists yet, so this is the only one.
                receipt = await self.playground.attest(guild_id, owner)
                moved_on = True
        except Exception as exc:  # a refusal is a reply; a bug is logged and answered
            text = describe_error(exc)
            if text is None:
                log.exception("attest button (slot %d) failed", slot)
                text = "Something went wrong on our side; nothing was changed. Please try again."
            with contextlib.suppress(discord.HTTPException):
                await reply_ephemeral(interaction, text)
            return
        embed = vote_embed(receipt)
        if moved_on:
            embed.description = (embed.description or "") + (
                f"\nThe block on that message (slot {slot:,}) is no longer up for a vote, so your vote went "
                "to the newest block."
            )
        await interaction.response.send_message(embed=embed, ephemeral=True)
        # The count shows on the epoch message; presses while an edit is in flight share the next one.
        self.board.show_votes(guild_id, receipt.progress, message)

    # --- slot driver ----------------------------------------------------------------

    @tasks.loop(seconds=SLOT_DRIVER_INTERVAL_S)
    async def slot_driver(self) -> None:
        """Every ``SLOT_DRIVER_INTERVAL_S``: one pass of ``tick`` (a pass that runs long delays the
        next one, never overlaps it)."""
        if self._stopping.is_set():
            return
        try:
            await self.tick()
        except Exception:  # the driver must outlive any one failure
            log.exception("slot driver pass failed")

    async def tick(self) -> None:
        """One pass: advance every proof-of-stake chain to the current slot; post new blocks."""
        async for report in self.playground.run_slots(self._now(), stopping=self._stopping.is_set):
            guild_id, outcome, finality = report.guild_id, report.outcome, report.finality
            if outcome.evidence:
                log.info(
                    "guild %d: slot %d: %d slashing evidence(s) found: %s", guild_id, outcome.slot,
                    len(outcome.evidence), ", ".join(type(e).__name__ for e in outcome.evidence),
                )
            news, fresh = finality_news(self._finality.get(guild_id), finality, outcome.slot)
            self._finality[guild_id] = finality
            if outcome.block is not None:
                self._show_slot(guild_id, outcome, finality, news, fresh)
            elif news:
                self.board.show_news(guild_id, news, fresh=fresh)

    def _show_slot(
        self, guild_id: int, outcome: SlotOutcome, finality: FinalityView, news: tuple[str, ...], fresh: bool
    ) -> None:
        """Put the slot's block on the server's epoch message (the board writes only the newest
        state, one request at a time: a rate-limited channel never piles up stale edits)."""
        assert outcome.block is not None
        if outcome.proposer_owner is not None:
            proposer = f"<@{outcome.proposer_owner}>"
        elif outcome.proposer_index is not None:
            proposer = f"validator #{outcome.proposer_index}"
        else:
            proposer = "unknown"
        shown = SlotShown(outcome, outcome.block, proposer, finality)
        self.board.show_slot(guild_id, outcome.epoch, shown, outcome.progress, news=news, fresh=fresh)

    async def _epoch_picture(self, guild_id: int, ended_epoch: int) -> ChartPicture | None:
        """The end-of-epoch report's picture: participation up to the epoch that just ended (its
        record was written with the block that ended it, which the board is showing)."""
        charts = self.services.charts
        # No channel to show it in: the chart worker's time is not spent on it.
        if charts is None or await self._playground_channel(guild_id) is None:
            return None
        return await charts.picture(guild_id, EPOCH_PICTURE)

    async def _playground_channel(self, guild_id: int) -> discord.abc.Messageable | None:
        status = await self.services.notifier.status(guild_id)
        channel_id = getattr(status, "channel_id", None)
        if channel_id is None:
            return None
        channel = self.bot.get_channel(channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            log.debug("guild %d: playground channel %d not visible; the epoch message waits", guild_id, channel_id)
            return None
        return channel


# --- /validators ---------------------------------------------------------------------


class Validators(PlaygroundCog):
    def __init__(self, services: Services) -> None:
        self.services = services
        self.playground: Playground = services.playground

    @app_commands.command(name="validators")
    @app_commands.guild_only()
    @app_commands.describe(page=f"Which page of {VALIDATORS_PER_PAGE} validators to show")
    async def validators(
        self, interaction: discord.Interaction, page: Range[int, 1, 10_000] = 1
    ) -> None:
        """This server's validators: owner, state and effective stake."""
        guild_id = require_guild(interaction)
        views = self.playground.validators(guild_id)
        pages = max(1, -(-len(views) // VALIDATORS_PER_PAGE))
        if page > pages:
            raise UserFacingError(
                f"There {'is' if pages == 1 else 'are'} only {counted(pages, 'page')} of validators."
            )
        shown = views[(page - 1) * VALIDATORS_PER_PAGE : page * VALIDATORS_PER_PAGE]
        lines = [
            f"`#{v.index}` {owner_mention(v)} — {status_label(v)} · {stake_points(v.effective_balance_units)}"
            for v in shown
        ]
        active = [v for v in views if v.status is ValidatorStatus.ACTIVE]
        embed = discord.Embed(
            title="🪪 Validators",
            description="\n".join(lines) or "No validators yet: `/stake deposit` makes you the first.",
            colour=BLUE,
        )
        if views:
            embed.set_footer(
                text=f"{counted(len(views), 'validator')} in total, {len(active)} active with "
                f"{stake_points(sum(v.effective_balance_units for v in active))} effective stake · "
                f"page {page} of {pages}"
            )
        await interaction.response.send_message(embed=embed, allowed_mentions=NO_MENTIONS)


# --- /report -------------------------------------------------------------------------


# On the group: Discord ignores guild_only on subcommands, so only this keeps it out of DMs.
@app_commands.guild_only()
class Report(PlaygroundCog, commands.GroupCog, group_name="report", group_description="Report misbehaving validators"):
    def __init__(self, services: Services) -> None:
        self.services = services
        self.playground: Playground = services.playground
        super().__init__()

    @app_commands.command(name="evidence")
    @app_commands.describe(
        evidence="Hex of a serialized AttesterSlashing (two conflicting votes) or ProposerSlashing (two blocks)"
    )
    async def evidence(
        self, interaction: discord.Interaction, evidence: Range[str, 2, MAX_EVIDENCE_CHARS]
    ) -> None:
        """Report slashing evidence; a coming block includes it and slashes the offender."""
        guild_id = require_guild(interaction)
        playground = self.playground
        queued = await playground.report(guild_id, normalize_evidence(evidence))
        if isinstance(queued, AttesterSlashing):
            verdict = check_attester_slashing(queued, guild_id)
        elif isinstance(queued, ProposerSlashing):
            verdict = check_proposer_slashing(queued, guild_id)
        else:  # pragma: no cover - the contract returns one of the two
            raise UserFacingError("The evidence was queued.")
        offender = next((v for v in playground.validators(guild_id) if v.pubkey == verdict.validator), None)
        who = f"{owner_mention(offender)} (validator #{offender.index})" if offender else (
            f"validator `{verdict.validator.hex()[:16]}…`"
        )
        embed = discord.Embed(title="🚨 Slashing evidence queued", colour=RED)
        embed.description = (
            f"{who} will be slashed for a **{verdict.offence.value}**: {verdict.description}.\n"
            "A coming block includes the evidence."
        )
        if offender is not None:
            config = playground.consensus(guild_id)
            effective = offender.effective_balance_units
            embed.add_field(name="Penalty", value=stake_points(effective // config.slashing_penalty_quotient))
            embed.add_field(
                name="Whistleblower reward",
                value=f"{stake_points(effective // WHISTLEBLOWER_REWARD_QUOTIENT)} to the block's proposer",
            )
            embed.add_field(name="Stake locked", value=counted(config.slashed_unbonding_epochs, "epoch"))
        embed.set_footer(text=f"reported by {interaction.user.display_name}")
        await interaction.response.send_message(embed=embed, allowed_mentions=NO_MENTIONS)


async def setup(bot: commands.Bot) -> None:
    services: Services = bot.services  # type: ignore[attr-defined]
    await bot.add_cog(Staking(bot, services))
    await bot.add_cog(Validators(services))
    await bot.add_cog(Report(services))
