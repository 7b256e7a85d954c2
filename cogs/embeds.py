"""How chain objects look in Discord: embeds and short text, pure functions."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import discord

from chain.consensus.block import Block
from chain.events import (
    BlockMined,
    ChainEvent,
    ChainReorganized,
    CheckpointFinalized,
    CheckpointJustified,
    DifficultyChanged,
    EpochRewards,
    InactivityLeakEnded,
    InactivityLeakStarted,
    MergeDelayed,
    MergeScheduled,
    MilestoneReached,
    ParamsChanged,
    PaymentReturnedToMempool,
    PaymentReversed,
    ReorgRefusedByFinality,
    RewardPaid,
    StakeDeposited,
    StakeWithdrawn,
    TheMerge,
    ValidatorActivated,
    ValidatorExited,
    ValidatorSlashed,
    ValidatorWithdrawable,
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

Names = Mapping[bytes, str]


def _validator(names: Names, index: int | None, pubkey: bytes | None) -> str:
    return validator_name(names, index, pubkey.hex() if pubkey is not None else None)


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


def _block_mined(event: BlockMined, names: Names) -> discord.Embed:
    shown_hash = hash_to_display(event.hash)
    if event.proof_of_stake:
        embed = discord.Embed(title=f"🧱 Block {event.height} proposed", colour=PURPLE)
        embed.description = (
            f"Slot {event.slot:,}: validator #{event.proposer_index} signed `{shown_hash[:20]}…`; "
            f"its fees go to {name_of(names, event.miner)}"
        )
        embed.add_field(name="Fees", value=points(event.reward))
    else:
        embed = discord.Embed(title=f"⛏️ Block {event.height} mined", colour=GOLD)
        embed.description = f"{name_of(names, event.miner)} found `{shown_hash[:20]}…`"
        embed.add_field(name="Reward", value=points(event.reward))
    embed.add_field(name="Transfers", value=str(event.transfers))
    return embed


def _reward_paid(event: RewardPaid, names: Names) -> discord.Embed:
    if event.proof_of_stake or event.subsidy == 0:
        # A proof-of-stake block mints nothing: its proposer's wallet gets the fees only.
        return discord.Embed(
            title=f"💰 Fees for block {event.height}",
            description=f"{name_of(names, event.miner)} earned {points(event.fees)} in fees",
            colour=GREEN,
        )
    return discord.Embed(
        title=f"💰 Reward for block {event.height}",
        description=f"{name_of(names, event.miner)} earned {points(event.subsidy)} subsidy + "
        f"{points(event.fees)} fees",
        colour=GREEN,
    )


def _difficulty_changed(event: DifficultyChanged, names: Names) -> discord.Embed:
    return discord.Embed(title="🎯 Difficulty changed", description=event.sentence, colour=BLUE)


def _milestone(event: MilestoneReached, names: Names) -> discord.Embed:
    return discord.Embed(
        title="🏆 Milestone",
        description=f"{name_of(names, event.account)} now holds {points(event.balance)} "
        f"(passed {points(event.milestone)})",
        colour=GOLD,
    )


def _params_changed(event: ParamsChanged, names: Names) -> discord.Embed:
    changes = [f"{PARAM_LABELS.get(name, name)}: {old:,} → **{new:,}**" for name, old, new in event.changes()]
    return discord.Embed(
        title=f"⚙️ New rules from block {event.height + 1}",
        description="\n".join(changes) + f"\nBlock {event.height} committed to them in its coinbase.",
        colour=BLUE,
    )


def _stake_deposited(event: StakeDeposited, names: Names) -> discord.Embed:
    member = name_of(names, event.wallet)
    index = event.validator_index
    if event.top_up:
        text = f"{member} added {points(event.amount)} to validator #{index}."
    else:
        text = (
            f"{member} staked {points(event.amount)}: new validator #{index}, "
            f"active from epoch {event.activation_epoch:,}."
        )
    return discord.Embed(title="🔒 Stake deposited", description=text, colour=GREEN)


def _stake_withdrawn(event: StakeWithdrawn, names: Names) -> discord.Embed:
    member = name_of(names, event.address)
    index = event.validator_index
    if event.full:
        text = f"{member} got {points(event.points)} back: validator #{index}'s whole stake, paid out."
    else:
        text = f"{member} got {points(event.points)} back from above validator #{index}'s stake cap."
    embed = discord.Embed(title="💸 Stake withdrawn", description=text, colour=GREEN)
    if event.dust_burned_units:
        embed.add_field(name="Dust burned", value=f"{stake_points(event.dust_burned_units)} (below one point)")
    return embed


def _validator_activated(event: ValidatorActivated, names: Names) -> discord.Embed:
    return discord.Embed(
        title=f"✅ Validator #{event.validator_index} is active",
        description=f"{_capitalized(_validator(names, event.validator_index, event.pubkey))} proposes blocks and "
        f"votes from epoch {event.epoch:,} on.",
        colour=GREEN,
    )


def _validator_exited(event: ValidatorExited, names: Names) -> discord.Embed:
    why = "forced out after being slashed" if event.slashed else "left"
    return discord.Embed(
        title=f"🚪 Validator #{event.validator_index} exited",
        description=f"{_capitalized(_validator(names, event.validator_index, event.pubkey))} {why}: it stops "
        f"validating at epoch {event.epoch:,}. Its stake stays locked until the unbonding period ends.",
        colour=GREY,
    )


def _validator_withdrawable(event: ValidatorWithdrawable, names: Names) -> discord.Embed:
    return discord.Embed(
        title=f"🔓 Validator #{event.validator_index}'s stake unlocked",
        description=f"{_capitalized(_validator(names, event.validator_index, event.pubkey))} can be paid out from "
        f"epoch {event.epoch:,}: the next block pays its stake to the wallet that deposited it.",
        colour=GREEN,
    )


def _checkpoint_justified(event: CheckpointJustified, names: Names) -> discord.Embed:
    return discord.Embed(
        title=f"☑️ Epoch {event.epoch:,} justified",
        description=f"Two thirds of the active stake voted for checkpoint `{hash_to_display(event.root)[:16]}…`.",
        colour=BLUE,
    )


def _checkpoint_finalized(event: CheckpointFinalized, names: Names) -> discord.Embed:
    return discord.Embed(
        title=f"🔏 Epoch {event.epoch:,} finalized",
        description=f"Checkpoint `{hash_to_display(event.root)[:16]}…` is final: no block up to it can ever be "
        "undone.",
        colour=PURPLE,
    )


def _epoch_rewards(event: EpochRewards, names: Names) -> discord.Embed:
    active = event.active_units
    voted = event.attesting_units
    percent = voted * 100 // active if active else 0
    embed = discord.Embed(
        title=f"📈 Epoch {event.epoch:,} rewards",
        description=f"{percent}% of the active stake ({stake_points(voted)} of {stake_points(active)}) "
        "voted for this epoch's checkpoint.",
        colour=GREEN,
    )
    embed.add_field(name="Minted", value=stake_points(event.minted_units))
    embed.add_field(name="Penalties burned", value=stake_points(event.burned_units))
    if event.in_inactivity_leak:
        embed.add_field(
            name="Inactivity leak",
            value=f"nothing final for {counted(event.finality_delay, 'epoch')}: "
            "only non-voters pay, and nobody earns",
            inline=False,
        )
    return embed


def describe_offence(event: ValidatorSlashed, who: str) -> str:
    """``@bob signed two different blocks for slot 812`` and the like, from a ``ValidatorSlashed`` event."""
    offence = event.offence
    if offence == "double proposal" and event.slot is not None:
        return f"{who} signed two different blocks for slot {event.slot:,}"
    votes = event.votes
    if offence == "double vote" and votes:
        return f"{who} voted twice for epoch {votes[0][1]:,}"
    if offence == "surround vote" and votes:
        (s1, t1), (s2, t2) = votes
        outer, inner = ((s1, t1), (s2, t2)) if s1 < s2 else ((s2, t2), (s1, t1))
        return (
            f"{who} cast a surround vote: its vote {outer[0]} → {outer[1]} surrounds its vote "
            f"{inner[0]} → {inner[1]}"
        )
    return f"{who} {event.description or offence or 'broke a slashing rule'}"


def _validator_slashed(event: ValidatorSlashed, names: Names) -> discord.Embed:
    who = _validator(names, event.validator_index, event.pubkey)
    embed = discord.Embed(
        title=f"⚔️ Validator #{event.validator_index} slashed",
        description=_capitalized(describe_offence(event, who)) + ".",
        colour=RED,
    )
    embed.add_field(name="Penalty", value=stake_points(event.penalty_units))
    if event.whistleblower_reward_units:
        embed.add_field(name="Whistleblower reward", value=stake_points(event.whistleblower_reward_units))
    embed.add_field(name="Burned", value=stake_points(event.burned_units))
    embed.add_field(
        name="Out",
        value=f"forced to exit; stake locked until epoch {event.withdrawable_epoch:,}",
        inline=False,
    )
    return embed


def _leak_started(event: InactivityLeakStarted, names: Names) -> discord.Embed:
    return discord.Embed(
        title="🩸 Inactivity leak started",
        description=f"Nothing has been finalized for {counted(event.finality_delay, 'epoch')} (epoch "
        f"{event.epoch:,}). "
        "Until two thirds of the stake vote again, nobody earns and every validator not voting loses "
        "a growing share of its stake each epoch.",
        colour=ORANGE,
    )


def _leak_ended(event: InactivityLeakEnded, names: Names) -> discord.Embed:
    return discord.Embed(
        title="🩹 Inactivity leak ended",
        description=f"Finality is back at epoch {event.epoch:,}: voters earn again and the leak stops.",
        colour=GREEN,
    )


def _merge_scheduled(event: MergeScheduled, names: Names) -> discord.Embed:
    if event.merge_at_height:
        when = (
            f"block {event.merge_at_height - 1:,} is the last proof-of-work block and block "
            f"{event.merge_at_height:,} the first proof-of-stake block"
        )
    else:
        when = (
            f"the first block whose total difficulty reaches {event.merge_at_total_difficulty:,} is the last "
            f"proof-of-work block (now {event.total_difficulty:,})"
        )
    return discord.Embed(
        title="🗓️ The Merge is scheduled",
        description=f"Block {event.height:,} committed to it: {when}. Validators staked by then propose "
        "every block after it (the Merge waits until at least one is active).",
        colour=PURPLE,
    )


def _merge_delayed(event: MergeDelayed, names: Names) -> discord.Embed:
    pending = event.pending_validators
    waiting = (f"{pending:,} deposit(s) are waiting for their activation epoch" if pending
               else "nobody has staked yet: `/stake deposit` makes a validator")
    return discord.Embed(
        title="⏳ The Merge is waiting for a validator",
        description=f"Block {event.height:,} was due to be the last proof-of-work block, but no validator "
        f"could propose the next one ({waiting}). Mining goes on; the Merge happens after the first block "
        "mined once a validator is active, and its announcement names the real blocks.",
        colour=PURPLE,
    )


def _the_merge(event: TheMerge, names: Names) -> discord.Embed:
    embed = discord.Embed(
        title="🐼 The Merge",
        description=f"Block {event.terminal_height:,} (`{hash_to_display(event.terminal_hash)[:16]}…`) was the last "
        f"proof-of-work block. From block {event.height:,} on, blocks come from validators, one per slot: "
        "mining is over, and the proof-of-work history stays verifiable.",
        colour=PURPLE,
    )
    embed.add_field(name="Validators", value=f"{event.validators:,} active from the first proof-of-stake epoch")
    embed.add_field(name="Terminal total difficulty", value=f"{event.total_difficulty:,}")
    return embed


def _tip(height: int | None, block_hash: bytes) -> str:
    """``block 7 (`00a1b2c3d4e5f6a7…`)``, or the hash alone when the height is not known."""
    shown = f"`{hash_to_display(block_hash)[:16]}…`"
    return f"block {height:,} ({shown})" if height is not None else shown


def _chain_reorganized(event: ChainReorganized, names: Names) -> discord.Embed:
    orphaned = counted(event.depth, "block")
    if event.proof_of_stake:
        why = "The validators' latest votes moved the head to another branch"
    elif event.old_chain_work is not None and event.new_chain_work is not None:
        why = (
            f"A branch with more work ({event.new_chain_work:,} against {event.old_chain_work:,}) "
            "replaced the chain's last blocks"
        )
    else:
        why = "A branch with more work replaced the chain's last blocks"
    payments = event.payments_returned + event.payments_reversed
    if payments:
        after = (
            f"{counted(payments, 'payment')} confirmed there: {event.payments_returned:,} back in the "
            f"mempool, {event.payments_reversed:,} reversed (each one below)."
        )
    else:
        after = "No payment was confirmed there."
    embed = discord.Embed(
        title=f"🔀 The chain reorganized: {orphaned} orphaned",
        description=f"{why}. The chain now ends at {_tip(event.new_tip_height, event.new_tip_hash)} "
        f"instead of {_tip(event.old_tip_height, event.old_tip_hash)}; both branches share every block up "
        f"to block {event.fork_height:,}. The old branch's {orphaned} after it are orphaned: their rewards "
        f"no longer count. {after}",
        colour=ORANGE,
    )
    embed.add_field(name="Orphaned", value=orphaned)
    embed.add_field(name="Connected", value=counted(event.connected, "block"))
    return embed


def _payment(names: Names, sender: bytes, amount: int, recipient: bytes) -> str:
    return f"{name_of(names, sender)}'s payment of {points(amount)} to {name_of(names, recipient)}"


def _payment_returned(event: PaymentReturnedToMempool, names: Names) -> discord.Embed:
    embed = discord.Embed(
        title="↩️ Payment back in the mempool",
        description=f"{_capitalized(_payment(names, event.sender, event.amount, event.recipient))} was in "
        f"block {event.height:,}, which the reorg orphaned. It is still valid on the new chain, so it is "
        "unconfirmed again and back in the mempool: its confirmations start over once a block includes it.",
        colour=BLUE,
    )
    embed.add_field(name="Transaction", value=short(hash_to_display(event.txid), 16))
    embed.add_field(name="Fee", value=points(event.fee))
    return embed


def _why_reversed(event: PaymentReversed, names: Names) -> str:
    sender = name_of(names, event.sender)
    if event.code == "nonce_replay":
        return (
            f"it is a double spend, since the new chain already holds another payment by {sender} with the "
            f"same nonce ({event.nonce:,})"
        )
    if event.code == "insufficient_balance":
        return f"on the new chain {sender} no longer has enough points for it"
    if event.code == "nonce_gap":
        return f"an earlier payment by {sender} was reversed, so this one (nonce {event.nonce:,}) cannot follow it"
    if event.code == "unknown_account":
        return f"on the new chain {sender} never received any points"
    if event.code == "mempool_full":
        return "it is still valid, but the mempool had no room for it (it may be sent again)"
    return event.reason or event.code


def _payment_reversed(event: PaymentReversed, names: Names) -> discord.Embed:
    embed = discord.Embed(
        title="❌ Payment reversed",
        description=f"{_capitalized(_payment(names, event.sender, event.amount, event.recipient))} was in "
        f"block {event.height:,}, which the reorg orphaned, and it no longer happened: "
        f"{_why_reversed(event, names)}. {_capitalized(name_of(names, event.recipient))} does not have these "
        "points.",
        colour=RED,
    )
    embed.add_field(name="Transaction", value=short(hash_to_display(event.txid), 16))
    embed.add_field(name="Refused as", value=f"`{event.code}`")
    return embed


def _reorg_refused(event: ReorgRefusedByFinality, names: Names) -> discord.Embed:
    would_undo = counted(event.depth, "block")
    if event.proof_of_stake:
        epoch = f"epoch {event.finalized_epoch:,}'s " if event.finalized_epoch is not None else "the "
        slot = f" (its tip at slot {event.tip_slot:,})" if event.tip_slot is not None else ""
        text = (
            f"Votes worth {stake_points(event.branch_weight)} of stake back another branch{slot}, against "
            f"{stake_points(event.canonical_weight)} for the chain's own. It conflicts with {epoch}finalized "
            f"checkpoint {_tip(None, event.finalized_hash)}: switching would undo {would_undo}. Finalized "
            "blocks are never reverted, so the head stays where it is."
        )
    else:
        text = (
            f"A branch ending at {_tip(event.tip_height, event.tip_hash)} has more work "
            f"({event.branch_weight:,} against {event.canonical_weight:,}), but it conflicts with finalized "
            f"{_tip(event.finalized_height, event.finalized_hash)}: switching would undo {would_undo}. "
            "Finalized blocks are never reverted, so the chain keeps its branch."
        )
    return discord.Embed(title="🛡️ Finality refused a reorg", description=text, colour=PURPLE)


# One renderer per event class (chain.events.EVENT_TYPES); tests/cogs/test_embeds.py fails when a class has none.
RENDERERS: dict[type[ChainEvent], Callable[[Any, Names], discord.Embed]] = {
    BlockMined: _block_mined,
    RewardPaid: _reward_paid,
    DifficultyChanged: _difficulty_changed,
    MilestoneReached: _milestone,
    ParamsChanged: _params_changed,
    StakeDeposited: _stake_deposited,
    StakeWithdrawn: _stake_withdrawn,
    ValidatorActivated: _validator_activated,
    ValidatorExited: _validator_exited,
    ValidatorWithdrawable: _validator_withdrawable,
    CheckpointJustified: _checkpoint_justified,
    CheckpointFinalized: _checkpoint_finalized,
    EpochRewards: _epoch_rewards,
    ValidatorSlashed: _validator_slashed,
    InactivityLeakStarted: _leak_started,
    InactivityLeakEnded: _leak_ended,
    MergeScheduled: _merge_scheduled,
    TheMerge: _the_merge,
    MergeDelayed: _merge_delayed,
    ChainReorganized: _chain_reorganized,
    PaymentReturnedToMempool: _payment_returned,
    PaymentReversed: _payment_reversed,
    ReorgRefusedByFinality: _reorg_refused,
}


def plain_event_embed(event: ChainEvent) -> discord.Embed:
    """An event shown by its kind and its stored "key: value" lines: what an ``UnknownEvent`` gets."""
    embed = discord.Embed(title=event.kind.replace("_", " ").capitalize(), colour=GREY)
    lines = [f"{key}: {value}" for key, value in list(event.payload.items())[:FALLBACK_FIELDS_SHOWN]]
    if lines:
        embed.description = "\n".join(lines)[:1000]
    return embed


def event_embed(event: ChainEvent, names: Mapping[bytes, str]) -> discord.Embed:
    """One outbox event as the embed the webhook posts; an unknown kind (or a payload this version
    cannot read) gets a plain one."""
    render = RENDERERS.get(type(event))
    if render is None:  # an UnknownEvent has no renderer
        return plain_event_embed(event)
    return render(event, names)
