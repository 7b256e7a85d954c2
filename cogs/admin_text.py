"""What /playground says about a server's chain: its rules, consensus settings, the Merge, validators,
a mode switch, and the permission the bot lacks for announcements.

Pure text from values the façade returns; the Admin cog (cogs/admin.py) and its confirmation view
(cogs/admin_views.py) put it in embeds. Quantities read through cogs/embeds.py's formatters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import discord

from chain.mode import Mode
from chain.params import ChainParams
from chain.playground import GENESIS_ALLOCATION_POINTS, IDLE_AFTER_S, ValidatorView
from chain.pos.beacon import ConsensusConfig
from chain.pos.staking import ValidatorStatus
from cogs.embeds import counted, duration, percent_from_bp, points, seconds, stake_points

MODE_NAMES = {
    Mode.POW: "proof of work",
    Mode.POS: "proof of stake",
    Mode.HYBRID: "hybrid: proof of work with proof-of-stake finality",
}

# option -> (ChainParams field, label, how a value reads)
CONSENSUS_OPTIONS: dict[str, tuple[str, str, Callable[[int], str]]] = {
    "block_time": ("target_spacing_s", "Block time", seconds),
    "reward": ("initial_subsidy_points", "Reward", points),
    "halving_interval": ("halving_interval_blocks", "Halving interval", lambda v: counted(v, "block")),
    "retarget_window": ("retarget_window_blocks", "Retarget window", lambda v: counted(v, "block")),
}
# option -> (server settings key, label, how a value reads)
SERVER_OPTIONS: dict[str, tuple[str, str, Callable[[int], str]]] = {
    "session_length": ("session_s", "Mining session length", seconds),
    "cooldown": ("cooldown_s", "Cooldown between sessions", seconds),
}


def describe_rules(params: ChainParams) -> str:
    return "\n".join(
        f"{label}: **{fmt(getattr(params, field))}**" for field, label, fmt in CONSENSUS_OPTIONS.values()
    )


def describe_rule_change(old: ChainParams, new: ChainParams) -> str:
    return ", ".join(
        f"{label.lower()} {fmt(getattr(old, field))} → {fmt(getattr(new, field))}"
        for field, label, fmt in CONSENSUS_OPTIONS.values()
        if getattr(old, field) != getattr(new, field)
    )


def when_rules_apply(height: int) -> str:
    return (
        f"Block {height + 1:,}, the next one mined, commits to the new rules in its coinbase; "
        f"they govern every block after it, from block {height + 2:,} on. "
        "(A session already mining finishes its block under the current rules; the change then waits a block.)"
    )


def describe_merge_schedule(config: ConsensusConfig, merged: bool) -> str:
    if config.mode is Mode.POS:
        return "none: proof of stake from genesis"
    if merged:
        return "done: blocks are proof-of-stake blocks"
    if config.merge_at_height:
        return f"scheduled at block {config.merge_at_height:,}"
    if config.merge_at_total_difficulty:
        return f"scheduled at total difficulty {config.merge_at_total_difficulty:,}"
    return "not scheduled (`/playground merge`)"


def describe_consensus(config: ConsensusConfig, merged: bool) -> str:
    """The proof-of-stake settings a server's chain committed to in its genesis block."""
    epoch = f"**{config.slots_per_epoch} slots** ({seconds(config.slots_per_epoch * config.slot_duration_s)})"
    if config.mode is not Mode.POS and not merged:
        epoch += f"; before the Merge, {counted(config.checkpoint_interval_blocks, 'block')}"
    return "\n".join(
        [
            f"Mode: **{config.mode}** ({MODE_NAMES[config.mode]})",
            f"Slot length: **{seconds(config.slot_duration_s)}**",
            f"Epoch length: {epoch}",
            f"Minimum deposit: **{points(config.min_deposit_points)}**",
            f"Issuance rate: **{percent_from_bp(config.issuance_rate_bp)} a year** of the staked points",
            f"Unbonding: **{counted(config.unbonding_epochs, 'epoch')}** "
            f"({config.slashed_unbonding_epochs:,} after a slashing)",
            f"Slashing penalty: **1/{config.slashing_penalty_quotient}** of the effective stake burned",
            f"The Merge: {describe_merge_schedule(config, merged)}",
        ]
    )


def describe_setting_changes(
    base: ChainParams, rules: dict[str, int], settings: dict[str, Any], server: dict[str, int], chosen: dict[str, int]
) -> str:
    """What ``/playground config`` changed: each chosen option, old → new, or "already" its value.

    ``rules``: the ChainParams fields proposed (from ``base``); ``server``: the server settings changed
    (from ``settings``); ``chosen``: every option given, by option name.
    """
    lines = []
    for option, (field, label, fmt) in CONSENSUS_OPTIONS.items():
        if field in rules:
            lines.append(f"{label}: {fmt(getattr(base, field))} → **{fmt(rules[field])}**")
        elif option in chosen:
            lines.append(f"{label}: already **{fmt(chosen[option])}**")
    for option, (key, label, fmt) in SERVER_OPTIONS.items():
        if key in server:
            lines.append(f"{label}: {fmt(settings[key])} → **{fmt(server[key])}**")
        elif option in chosen:
            lines.append(f"{label}: already **{fmt(chosen[option])}**")
    return "\n".join(lines)


def describe_webhook(webhook: Any) -> str:
    """The announcement webhook's health in one line (``services.notifier.status``), for /playground status."""
    if webhook.channel_id is None:
        health = "not set up: `/playground setup` picks a channel"
    elif webhook.disabled_reason is not None:
        health = f"<#{webhook.channel_id}> — ⛔ disabled: {webhook.disabled_reason}. Run `/playground setup` again."
    elif webhook.retry_in_s > 0:
        health = f"<#{webhook.channel_id}> — ⏳ failing, next try in {duration(webhook.retry_in_s)}"
    elif webhook.rate_limited_for_s > 0:
        health = (
            f"<#{webhook.channel_id}> — ⏳ rate-limited by Discord: the next post goes out in "
            f"{duration(webhook.rate_limited_for_s)} (waiting for {duration(webhook.posting_for_s)} so far)"
        )
    elif webhook.stalled:
        health = (
            f"<#{webhook.channel_id}> — ⏳ slow: a post has waited {duration(webhook.posting_for_s)} for Discord"
        )
    else:
        health = f"<#{webhook.channel_id}> — ✅ ok"
    return health


def describe_slot_budget(left: int, per_hour: int, idle: bool) -> str:
    """The slot driver's budget and idle state (chain/adapters/budget.py), for admins."""
    text = f"{left:,} of {per_hour:,} left this hour"
    if idle:
        text += (f"; idle (nobody acted for {IDLE_AFTER_S // 60} minutes): empty slots are skipped, "
                 "one block an epoch at least")
    elif left < 1:
        text += "; over budget: empty slots are skipped, blocks with members' actions still come"
    return text


def describe_validators(validators: list[ValidatorView]) -> str:
    active = [v for v in validators if v.status is ValidatorStatus.ACTIVE]
    pending = [v for v in validators if v.status is ValidatorStatus.PENDING]
    stake = sum(v.effective_balance_units for v in active)
    text = f"{len(active):,} active ({stake_points(stake)} effective stake)"
    if pending:
        text += f", {len(pending):,} waiting for their epoch"
    others = len(validators) - len(active) - len(pending)
    if others:
        text += f", {others:,} exited or slashed"
    return text


def mode_switch_text(mode: Mode, admin_mention: str, config: ConsensusConfig | None) -> str:
    """What a new chain in ``mode`` is like, in a sentence or two."""
    if mode is Mode.POS:
        slot = f"every {seconds(config.slot_duration_s)}" if config is not None else "every slot"
        return (
            f"{admin_mention} is the genesis validator (voting automatically: `/stake auto state:off` stops it), "
            f"and every member with a wallet gets {points(GENESIS_ALLOCATION_POINTS)} at genesis. There is no "
            f"mining: a block comes {slot} from a validator drawn in proportion to its stake. `/stake deposit` "
            "makes you one."
        )
    if mode is Mode.HYBRID:
        every = config.checkpoint_interval_blocks if config is not None else 8
        return (
            f"Blocks are mined as before (`/mine start`), and every {every} blocks is a checkpoint that "
            "validators vote on: once final, no miner can undo it. `/stake deposit` makes you a validator."
        )
    return "Proof of work: `/mine start` mines block 1. `/playground merge` can schedule the Merge later."


def bot_role_name(guild: discord.Guild) -> str:
    role = guild.self_role
    return role.name if role is not None else guild.me.display_name


def missing_webhooks_text(channel: discord.abc.GuildChannel, guild: discord.Guild, *, refused: bool = False) -> str:
    """Exactly what an admin has to grant so the bot can create a webhook in ``channel``.

    ``refused``: Discord said no although the bot's cache said yes, so where it is missing is unknown.
    """
    role = bot_role_name(guild)
    where = f"{channel.mention} → Edit Channel → Permissions → **{role}** → Manage Webhooks"
    if guild.me.guild_permissions.manage_webhooks and not refused:
        how = f"My role has it, but {channel.mention}'s permission overrides take it away: allow it in {where}."
    else:
        how = (
            f"Grant it in Server Settings → Roles → **{role}** → Manage Webhooks, "
            f"or for this channel only in {where}."
        )
    return (
        f"I need the **Manage Webhooks** permission in {channel.mention} to announce blocks there. {how} "
        "Then run `/playground setup` again. Nothing was changed."
    )


KEPT_BY_A_RESET = (
    "the webhook (announcements of the old chain not delivered yet are dropped: they tell of blocks that "
    "no longer exist), every member's wallet key and address, session length and cooldown"
)
NO_FEED_YET = (
    "No channel yet: nobody sees this chain's blocks until an admin runs `/playground setup channel:#…` "
    "(proof-of-stake blocks are posted there with their Attest button)."
)
