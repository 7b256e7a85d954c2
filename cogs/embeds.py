"""How chain objects look in Discord: embeds and short text, pure functions."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import discord

from chain.consensus.block import Block
from chain.events import (
    BLOCK_MINED,
    CHECKPOINT_FINALIZED,
    CHECKPOINT_JUSTIFIED,
    DIFFICULTY_CHANGED,
    EPOCH_REWARDS,
    INACTIVITY_LEAK_ENDED,
    INACTIVITY_LEAK_STARTED,
    MERGE_DELAYED,
    MERGE_SCHEDULED,
    MILESTONE_REACHED,
    PARAMS_CHANGED,
    REWARD_PAID,
    STAKE_DEPOSITED,
    STAKE_WITHDRAWN,
    THE_MERGE,
    VALIDATOR_ACTIVATED,
    VALIDATOR_EXITED,
    VALIDATOR_SLASHED,
    VALIDATOR_WITHDRAWABLE,
)
from chain.hashing import hash_to_display
from chain.mode import Mode
from chain.pos.beacon import BeaconState, get_epoch_at_slot
from chain.pos.rewards import UNITS_PER_POINT

BAR_WIDTH = 20
GOLD = discord.Colour.gold()
BLUE = discord.Colour.blurple()
GREEN = discord.Colour.green()
GREY = discord.Colour.light_grey()
RED = discord.Colour.red()
PURPLE = discord.Colour.purple()
ORANGE = discord.Colour.orange()
# Digits after the point when stake (nanopoints) is shown in points.
STAKE_DECIMALS = 9
# An unknown event's payload is shown as "key: value" lines, this many at most.
FALLBACK_FIELDS_SHOWN = 8


PARAM_LABELS = {
    "target_spacing_s": "Block time (s)",
    "initial_subsidy_points": "Reward (pts)",
    "halving_interval_blocks": "Halving interval (blocks)",
    "retarget_window_blocks": "Retarget window (blocks)",
}
# Operation lists of a version-2 block, with their labels.
OPERATION_LABELS = (
    ("deposits", "Deposits"),
    ("voluntary_exits", "Exits"),
    ("withdrawals", "Withdrawals"),
    ("attestations", "Attestations"),
    ("attester_slashings", "Vote slashings"),
    ("proposer_slashings", "Proposal slashings"),
)


def counted(n: int, singular: str, plural: str | None = None) -> str:
    """``n`` things in real English: "1 block", "2 blocks" ("entry"/"entries" take ``plural``)."""
    return f"{n:,} {singular if n == 1 else plural or singular + 's'}"


def duration(seconds: float) -> str:
    """A span of time as people say it: "45 s", "2 min 54 s", "12 min", "1 h 5 min", "3 days 4 h"
    (a member reads "2 min 54 s", not "~174s")."""
    total = max(0, round(seconds))
    if total < 60:
        return f"{total} s"
    if total < 600:
        minutes, secs = divmod(total, 60)
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    minutes = round(total / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return counted(days, "day") + (f" {hours} h" if hours else "")


def seconds(n: int) -> str:
    """A configured length, exactly as set: ``90 s``, ``1,800 s`` (``duration`` is for spans people read)."""
    return f"{n:,} s"


def relative_time(unix_s: float) -> str:
    """An instant as Discord's relative timestamp: each reader's client shows "in 3 minutes" or
    "5 minutes ago", kept up to date as time passes, in their own language."""
    return f"<t:{int(unix_s)}:R>"


def points(n: int) -> str:
    return f"{n:,} pts"


def stake_points(units: int, *, signed: bool = False) -> str:
    """Nanopoints as points, exactly: ``32 pts``, ``0.000012345 pts`` (no float rounding); ``signed``
    puts ``+`` before a gain.  The one formatter of nanopoints: balances, stakes, rewards, penalties."""
    sign = "-" if units < 0 else ("+" if signed and units > 0 else "")
    whole, frac = divmod(abs(units), UNITS_PER_POINT)
    if frac == 0:
        return f"{sign}{whole:,} pts"
    decimals = f"{frac:0{STAKE_DECIMALS}d}".rstrip("0")
    return f"{sign}{whole:,}.{decimals} pts"


def percent_from_bp(bp: int, *, fixed: bool = False) -> str:
    """Basis points as a percentage, exactly (no float): 500 -> ``5%``, 350 -> ``3.5%``; ``fixed`` keeps
    both decimals, for measured shares: 9_987 -> ``99.87%``, 500 -> ``5.00%``.  The one formatter of
    basis points."""
    sign = "-" if bp < 0 else ""
    whole, rest = divmod(abs(bp), 100)
    if fixed:
        return f"{sign}{whole}.{rest:02d}%"
    return f"{sign}{whole}%" if rest == 0 else f"{sign}{whole}.{rest:02d}".rstrip("0") + "%"


def short(hex_text: str, n: int = 12) -> str:
    return f"`{hex_text[:n]}…`"


def progress_bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    """A text bar toward ``total``, full at 100% and never past it (the caller says in words how
    far beyond the goal it went, where that means something)."""
    if total <= 0:
        return "░" * width
    filled = min(width, done * width // total)
    percent = min(100, done * 100 // total)
    return "█" * filled + "░" * (width - filled) + f" {percent}%"


def name_of(names: Mapping[bytes, str], pubkey: bytes) -> str:
    return names.get(pubkey, short(pubkey.hex()))


def validator_name(names: Mapping[bytes, str], index: int | None, pubkey_hex: str | None = None) -> str:
    """``@bob (validator #3)`` when the names know the validator key, else ``validator #3``."""
    label = f"validator #{index}" if index is not None else "a validator"
    if pubkey_hex:
        try:
            owner = names.get(bytes.fromhex(pubkey_hex))
        except ValueError:
            owner = None
        if owner is not None:
            return f"{owner} ({label})"
    return label


def operation_counts(block: Block) -> str | None:
    """``Deposits 1 · Attestations 3`` for a version-2 block (None for a version-1 block)."""
    ops = block.operations
    if ops is None:
        return None
    parts = [f"{label} {len(getattr(ops, name))}" for name, label in OPERATION_LABELS if getattr(ops, name)]
    return " · ".join(parts) if parts else "none"


def is_proof_of_work_block(block: Block, beacon: BeaconState | None) -> bool:
    """Whether ``block`` carries proof-of-work fields worth showing: not a proposed block, and not the
    genesis of a proof-of-stake chain (its bits and nonce are zeros, its miner a placeholder)."""
    if block.seal is not None:
        return False
    return not (block.height == 0 and beacon is not None and beacon.config.mode is Mode.POS)


def block_embed(
    block: Block,
    names: Mapping[bytes, str],
    title: str | None = None,
    proposer: str | None = None,
    beacon: BeaconState | None = None,
) -> discord.Embed:
    """A block as what it is: a mined block shows miner, nonce and bits; a proposed block its slot,
    epoch and proposer; a proof-of-stake chain's genesis its slot 0 and genesis validators.

    ``proposer``: how to name the sealing validator (e.g. ``@bob (validator #0)``); by default its index.
    ``beacon``: the chain's beacon state (None for a chain without one), for epochs and the genesis.
    """
    header = block.header
    embed = discord.Embed(title=title or f"Block {block.height}", colour=BLUE)
    embed.add_field(name="Hash", value=f"`{header.hash_hex()}`", inline=False)
    embed.add_field(name="Previous", value=f"`{hash_to_display(header.prev_hash)}`", inline=False)
    seal = block.seal
    pow_block = is_proof_of_work_block(block, beacon)
    if seal is not None:
        embed.add_field(name="Slot", value=f"{seal.slot:,}")
        if beacon is not None:
            embed.add_field(name="Epoch", value=f"{get_epoch_at_slot(beacon, seal.slot):,}")
        embed.add_field(name="Proposer", value=proposer or f"validator #{seal.proposer_index}")
        embed.add_field(name="Fees to", value=name_of(names, block.coinbase.miner))
        embed.add_field(name="Fees", value=points(block.coinbase.amount))
    elif not pow_block and beacon is not None:
        embed.add_field(name="Slot", value="0")
        embed.add_field(name="Epoch", value="0")
        embed.add_field(name="Proposer", value="none: the genesis block is fixed by the chain's rules")
        embed.add_field(name="Genesis validators", value=f"{len(beacon.config.genesis_validators):,}")
    else:
        embed.add_field(name="Miner", value=name_of(names, block.coinbase.miner))
        embed.add_field(name="Reward", value=points(block.coinbase.amount))
    embed.add_field(name="Transfers", value=str(len(block.transfers)))
    if pow_block:
        embed.add_field(name="Nonce", value=f"{header.nonce:,} (extra {block.coinbase.extra_nonce})")
        embed.add_field(name="Bits", value=f"`{header.bits:#010x}`")
    embed.add_field(name="Time", value=f"<t:{header.time}:T>")
    counts = operation_counts(block)
    if counts is not None:
        embed.add_field(name="Operations", value=counts, inline=False)
    return embed


# --- announcements ---------------------------------------------------------------

Payload = Mapping[str, Any]
Names = Mapping[bytes, str]


def _who(names: Names, payload: Payload, key: str) -> str:
    return name_of(names, bytes.fromhex(payload[key]))


def _validator(names: Names, payload: Payload) -> str:
    return validator_name(names, payload.get("validator_index"), payload.get("pubkey"))


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


def _block_mined(payload: Payload, names: Names) -> discord.Embed:
    if payload.get("proof_of_stake"):
        embed = discord.Embed(title=f"🧱 Block {payload['height']} proposed", colour=PURPLE)
        embed.description = (
            f"Slot {payload['slot']:,}: validator #{payload['proposer_index']} signed `{payload['hash'][:20]}…`; "
            f"its fees go to {_who(names, payload, 'miner')}"
        )
        embed.add_field(name="Fees", value=points(payload["reward"]))
    else:
        embed = discord.Embed(title=f"⛏️ Block {payload['height']} mined", colour=GOLD)
        embed.description = f"{_who(names, payload, 'miner')} found `{payload['hash'][:20]}…`"
        embed.add_field(name="Reward", value=points(payload["reward"]))
    embed.add_field(name="Transfers", value=str(payload["transfers"]))
    return embed


def _reward_paid(payload: Payload, names: Names) -> discord.Embed:
    if payload.get("proof_of_stake") or payload["subsidy"] == 0:
        # A proof-of-stake block mints nothing: its proposer's wallet gets the fees only.
        return discord.Embed(
            title=f"💰 Fees for block {payload['height']}",
            description=f"{_who(names, payload, 'miner')} earned {points(payload['fees'])} in fees",
            colour=GREEN,
        )
    return discord.Embed(
        title=f"💰 Reward for block {payload['height']}",
        description=f"{_who(names, payload, 'miner')} earned {points(payload['subsidy'])} subsidy + "
        f"{points(payload['fees'])} fees",
        colour=GREEN,
    )


def _difficulty_changed(payload: Payload, names: Names) -> discord.Embed:
    return discord.Embed(title="🎯 Difficulty changed", description=payload["sentence"], colour=BLUE)


def _milestone(payload: Payload, names: Names) -> discord.Embed:
    return discord.Embed(
        title="🏆 Milestone",
        description=f"{_who(names, payload, 'account')} now holds {points(payload['balance'])} "
        f"(passed {points(payload['milestone'])})",
        colour=GOLD,
    )


def _params_changed(payload: Payload, names: Names) -> discord.Embed:
    # The payload is flat: ``height`` beside one ``name: [old, new]`` pair per changed rule
    # (chain/consensus/state.py describe_params_change), so ``height`` must be skipped before unpacking.
    changes = [
        f"{PARAM_LABELS.get(name, name)}: {pair[0]:,} → **{pair[1]:,}**"
        for name, pair in sorted(payload.items())
        if name != "height"
    ]
    return discord.Embed(
        title=f"⚙️ New rules from block {payload['height'] + 1}",
        description="\n".join(changes) + f"\nBlock {payload['height']} committed to them in its coinbase.",
        colour=BLUE,
    )


def _stake_deposited(payload: Payload, names: Names) -> discord.Embed:
    member = _who(names, payload, "wallet")
    index = payload["validator_index"]
    if payload.get("top_up"):
        text = f"{member} added {points(payload['amount'])} to validator #{index}."
    else:
        text = (
            f"{member} staked {points(payload['amount'])}: new validator #{index}, "
            f"active from epoch {payload['activation_epoch']:,}."
        )
    return discord.Embed(title="🔒 Stake deposited", description=text, colour=GREEN)


def _stake_withdrawn(payload: Payload, names: Names) -> discord.Embed:
    member = _who(names, payload, "address")
    index = payload["validator_index"]
    if payload.get("full"):
        text = f"{member} got {points(payload['points'])} back: validator #{index}'s whole stake, paid out."
    else:
        text = f"{member} got {points(payload['points'])} back from above validator #{index}'s stake cap."
    embed = discord.Embed(title="💸 Stake withdrawn", description=text, colour=GREEN)
    dust = payload.get("dust_burned_units", 0)
    if dust:
        embed.add_field(name="Dust burned", value=f"{stake_points(dust)} (below one point)")
    return embed


def _validator_activated(payload: Payload, names: Names) -> discord.Embed:
    return discord.Embed(
        title=f"✅ Validator #{payload['validator_index']} is active",
        description=f"{_capitalized(_validator(names, payload))} proposes blocks and votes from epoch "
        f"{payload['epoch']:,} on.",
        colour=GREEN,
    )


def _validator_exited(payload: Payload, names: Names) -> discord.Embed:
    why = "forced out after being slashed" if payload.get("slashed") else "left"
    return discord.Embed(
        title=f"🚪 Validator #{payload['validator_index']} exited",
        description=f"{_capitalized(_validator(names, payload))} {why}: it stops validating at epoch "
        f"{payload['epoch']:,}. Its stake stays locked until the unbonding period ends.",
        colour=GREY,
    )


def _validator_withdrawable(payload: Payload, names: Names) -> discord.Embed:
    return discord.Embed(
        title=f"🔓 Validator #{payload['validator_index']}'s stake unlocked",
        description=f"{_capitalized(_validator(names, payload))} can be paid out from epoch {payload['epoch']:,}: "
        "the next block pays its stake to the wallet that deposited it.",
        colour=GREEN,
    )


def _checkpoint_justified(payload: Payload, names: Names) -> discord.Embed:
    return discord.Embed(
        title=f"☑️ Epoch {payload['epoch']:,} justified",
        description=f"Two thirds of the active stake voted for checkpoint `{payload['root'][:16]}…`.",
        colour=BLUE,
    )


def _checkpoint_finalized(payload: Payload, names: Names) -> discord.Embed:
    return discord.Embed(
        title=f"🔏 Epoch {payload['epoch']:,} finalized",
        description=f"Checkpoint `{payload['root'][:16]}…` is final: no block up to it can ever be undone.",
        colour=PURPLE,
    )


def _epoch_rewards(payload: Payload, names: Names) -> discord.Embed:
    active = payload["active_units"]
    voted = payload["attesting_units"]
    percent = voted * 100 // active if active else 0
    embed = discord.Embed(
        title=f"📈 Epoch {payload['epoch']:,} rewards",
        description=f"{percent}% of the active stake ({stake_points(voted)} of {stake_points(active)}) "
        "voted for this epoch's checkpoint.",
        colour=GREEN,
    )
    embed.add_field(name="Minted", value=stake_points(payload["minted_units"]))
    embed.add_field(name="Penalties burned", value=stake_points(payload["burned_units"]))
    if payload.get("in_inactivity_leak"):
        embed.add_field(
            name="Inactivity leak",
            value=f"nothing final for {counted(payload.get('finality_delay', 0), 'epoch')}: "
            "only non-voters pay, and nobody earns",
            inline=False,
        )
    return embed


def describe_offence(payload: Payload, who: str) -> str:
    """``@bob signed two different blocks for slot 812`` and the like, from a ``validator_slashed`` payload."""
    offence = payload.get("offence")
    if offence == "double proposal" and "slot" in payload:
        return f"{who} signed two different blocks for slot {payload['slot']:,}"
    votes = payload.get("votes")
    if offence == "double vote" and votes:
        return f"{who} voted twice for epoch {votes[0][1]:,}"
    if offence == "surround vote" and votes:
        (s1, t1), (s2, t2) = votes
        outer, inner = ((s1, t1), (s2, t2)) if s1 < s2 else ((s2, t2), (s1, t1))
        return (
            f"{who} cast a surround vote: its vote {outer[0]} → {outer[1]} surrounds its vote "
            f"{inner[0]} → {inner[1]}"
        )
    return f"{who} {payload.get('description') or offence or 'broke a slashing rule'}"


def _validator_slashed(payload: Payload, names: Names) -> discord.Embed:
    who = _validator(names, payload)
    embed = discord.Embed(
        title=f"⚔️ Validator #{payload['validator_index']} slashed",
        description=_capitalized(describe_offence(payload, who)) + ".",
        colour=RED,
    )
    embed.add_field(name="Penalty", value=stake_points(payload["penalty_units"]))
    reward = payload.get("whistleblower_reward_units", 0)
    if reward:
        embed.add_field(name="Whistleblower reward", value=stake_points(reward))
    embed.add_field(name="Burned", value=stake_points(payload.get("burned_units", 0)))
    embed.add_field(
        name="Out",
        value=f"forced to exit; stake locked until epoch {payload['withdrawable_epoch']:,}",
        inline=False,
    )
    return embed


def _leak_started(payload: Payload, names: Names) -> discord.Embed:
    return discord.Embed(
        title="🩸 Inactivity leak started",
        description=f"Nothing has been finalized for {counted(payload['finality_delay'], 'epoch')} (epoch "
        f"{payload['epoch']:,}). "
        "Until two thirds of the stake vote again, nobody earns and every validator not voting loses "
        "a growing share of its stake each epoch.",
        colour=ORANGE,
    )


def _leak_ended(payload: Payload, names: Names) -> discord.Embed:
    return discord.Embed(
        title="🩹 Inactivity leak ended",
        description=f"Finality is back at epoch {payload['epoch']:,}: voters earn again and the leak stops.",
        colour=GREEN,
    )


def _merge_scheduled(payload: Payload, names: Names) -> discord.Embed:
    if payload.get("merge_at_height"):
        when = (
            f"block {payload['merge_at_height'] - 1:,} is the last proof-of-work block and block "
            f"{payload['merge_at_height']:,} the first proof-of-stake block"
        )
    else:
        when = (
            f"the first block whose total difficulty reaches {payload['merge_at_total_difficulty']:,} is the last "
            f"proof-of-work block (now {payload['total_difficulty']:,})"
        )
    return discord.Embed(
        title="🗓️ The Merge is scheduled",
        description=f"Block {payload['height']:,} committed to it: {when}. Validators staked by then propose "
        "every block after it (the Merge waits until at least one is active).",
        colour=PURPLE,
    )


def _merge_delayed(payload: Payload, names: Names) -> discord.Embed:
    pending = payload.get("pending_validators", 0)
    waiting = (f"{pending:,} deposit(s) are waiting for their activation epoch" if pending
               else "nobody has staked yet: `/stake deposit` makes a validator")
    return discord.Embed(
        title="⏳ The Merge is waiting for a validator",
        description=f"Block {payload['height']:,} was due to be the last proof-of-work block, but no validator "
        f"could propose the next one ({waiting}). Mining goes on; the Merge happens after the first block "
        "mined once a validator is active, and its announcement names the real blocks.",
        colour=PURPLE,
    )


def _the_merge(payload: Payload, names: Names) -> discord.Embed:
    embed = discord.Embed(
        title="🐼 The Merge",
        description=f"Block {payload['terminal_height']:,} (`{payload['terminal_hash'][:16]}…`) was the last "
        f"proof-of-work block. From block {payload['height']:,} on, blocks come from validators, one per slot: "
        "mining is over, and the proof-of-work history stays verifiable.",
        colour=PURPLE,
    )
    embed.add_field(name="Validators", value=f"{payload['validators']:,} active from the first proof-of-stake epoch")
    embed.add_field(name="Terminal total difficulty", value=f"{payload['total_difficulty']:,}")
    return embed


RENDERERS: dict[str, Callable[[Payload, Names], discord.Embed]] = {
    BLOCK_MINED: _block_mined,
    REWARD_PAID: _reward_paid,
    DIFFICULTY_CHANGED: _difficulty_changed,
    MILESTONE_REACHED: _milestone,
    PARAMS_CHANGED: _params_changed,
    STAKE_DEPOSITED: _stake_deposited,
    STAKE_WITHDRAWN: _stake_withdrawn,
    VALIDATOR_ACTIVATED: _validator_activated,
    VALIDATOR_EXITED: _validator_exited,
    VALIDATOR_WITHDRAWABLE: _validator_withdrawable,
    CHECKPOINT_JUSTIFIED: _checkpoint_justified,
    CHECKPOINT_FINALIZED: _checkpoint_finalized,
    EPOCH_REWARDS: _epoch_rewards,
    VALIDATOR_SLASHED: _validator_slashed,
    INACTIVITY_LEAK_STARTED: _leak_started,
    INACTIVITY_LEAK_ENDED: _leak_ended,
    MERGE_SCHEDULED: _merge_scheduled,
    THE_MERGE: _the_merge,
    MERGE_DELAYED: _merge_delayed,
}


def event_embed(kind: str, payload: Mapping[str, Any], names: Mapping[bytes, str]) -> discord.Embed:
    """One outbox event as the embed the webhook posts; an unknown kind gets a plain one."""
    render = RENDERERS.get(kind)
    if render is not None:
        return render(payload, names)
    embed = discord.Embed(title=kind.replace("_", " ").capitalize(), colour=GREY)
    lines = [f"{key}: {value}" for key, value in list(payload.items())[:FALLBACK_FIELDS_SHOWN]]
    if lines:
        embed.description = "\n".join(lines)[:1000]
    return embed
