"""/chain: explore this server's chain."""

from __future__ import annotations

import asyncio
import io
import logging
import math
import time
from dataclasses import dataclass
from typing import Protocol

import discord
from discord import app_commands
from discord.ext import commands

from chain.consensus.block import Block
from chain.errors import ExportTooLargeError, VerificationError
from chain.hashing import HASH_SIZE_BYTES, hash_to_display
from chain.ledger.transaction import Transfer
from chain.mode import Mode
from chain.playground import (
    ETHEREUM_MERGE_PERCENT_SAVED_THOUSANDTHS,
    EnergyReport,
    Playground,
    RetargetExplanation,
    StoredOrphan,
    StoredSideBranch,
    StoredTransaction,
    TransactionMatches,
    VerifyReport,
)
from chain.pos.beacon import BeaconState, get_start_slot_at_epoch
from chain.pos.proposer import MAX_RANDOM_BYTE, ProposerDraw
from cogs.chart_book import OwnerNames, short_owner
from cogs.chart_kinds import CHART_KINDS
from cogs.core_pause import core_runs_while_waiting
from cogs.embeds import (
    BLUE,
    GREEN,
    GREY,
    PURPLE,
    block_embed,
    counted,
    duration,
    is_proof_of_work_block,
    name_of,
    percent_from_bp,
    points,
    stake_points,
)
from cogs.errors import PlaygroundCog, UserFacingError, require_guild
from cogs.options import Range, named_choices
from cogs.services import BOT_OWNER_NAMES, Services

log = logging.getLogger(__name__)

MIN_HASH_PREFIX = 6
MAX_QUERY_CHARS = 66  # a full hash, with room for the backticks it is shown in
TXID_HEX_CHARS = 64
MAX_AUTOCOMPLETE_CHOICES = 25  # Discord's limit
BLOCK_TRANSFERS_SHOWN = 5
AMBIGUOUS_HEIGHTS_SHOWN = 5
# Orphaned blocks autocomplete offers (by hash) beside the main chain's, and side branches /chain forks lists.
ORPHAN_CHOICES = 5
FORKS_SHOWN = 10
# /chain proposer lists at most this many attempts of the draw (most draws take one or two).
DRAW_ATTEMPTS_SHOWN = 10
MAX_SLOT = 2**53 - 1  # Discord's integer options stop here
# /chain proposer draws slots up to this many epochs past the current slot (the chain's own
# lookahead is one epoch; a second shows how a draw changes once blocks come).
PROPOSER_LOOKAHEAD_EPOCHS = 2
# ...and at most this many epochs past the chain's state, however far behind it is (each epoch
# transition is work: ~0.1 ms with 4 validators, more with more).
MAX_DRAW_EPOCHS_PAST_STATE = 64
MILLIJOULES_PER_WATT_HOUR = 3_600_000
# One /chain export per member per server this often: an export of a big chain is a second of CPU.
EXPORT_COOLDOWN_S = 60
# Past this many members on cooldown, the expired entries are dropped (the map stays small).
EXPORT_COOLDOWNS_KEPT = 1_024


@dataclass(frozen=True, slots=True)
class BuiltExport:
    height: int
    tip: str
    data: bytes
    # Blocks off the main chain the file carries too (the verifier checks each on its own branch).
    orphans: int = 0


@dataclass(frozen=True, slots=True)
class ExportJob:
    """One server's export being built, shared by everyone who asks meanwhile."""

    build: asyncio.Task[BuiltExport]
    # The link to the message the first request posted the file in; None if posting it failed.
    posted: asyncio.Future[str | None]


def export_embed(built: BuiltExport, filename: str) -> discord.Embed:
    orphans = f" and {counted(built.orphans, 'orphaned block')}" if built.orphans else ""
    checked = " and checks every orphaned block on its own branch" if built.orphans else ""
    return discord.Embed(
        title="📦 Chain export",
        description=f"Blocks 0 to {built.height}{orphans} (tip `{built.tip[:16]}…`), "
        f"{len(built.data) / 1024:,.1f} KB.\n"
        f"Check it yourself, without the bot: `python -m chain verify {filename}` replays every block "
        f"from genesis{checked}.",
        colour=BLUE,
    )


def parse_block_query(query: str, tip_height: int) -> int | str:
    """What a member meant: a height (``12``, ``#12``) or a hash prefix of 6+ hex digits (returned
    as lowercase hex, still to be looked up).

    Autocomplete sends heights as plain digits, so digits are read as a height
    whenever that height exists; hashes shown in Discord start with zeros, and
    a leading zero is the sign of a hash prefix.
    """
    text = query.strip().strip("`").strip().lower()
    explicit_height = text.startswith("#")
    text = text.removeprefix("#").strip()
    if not text:
        raise UserFacingError("Give a block height (like `12`) or a hash (at least 6 hex digits).")
    is_digits = text.isascii() and text.isdecimal()
    if is_digits and (
        explicit_height or len(text) < MIN_HASH_PREFIX or (text[0] != "0" and int(text) <= tip_height)
    ):
        height = int(text)
        if height > tip_height:
            raise UserFacingError(f"There is no block {height} yet: the chain is at height {tip_height}.")
        return height
    if explicit_height or not all(c in "0123456789abcdef" for c in text):
        raise UserFacingError(f"`{text[:MAX_QUERY_CHARS]}` is neither a block height nor a hex hash.")
    if len(text) < MIN_HASH_PREFIX:
        raise UserFacingError(f"Type at least {MIN_HASH_PREFIX} hex digits of the hash (you gave {len(text)}).")
    return text


class BlockIndex(Protocol):
    """Where block hashes are looked up (``Playground``; tests pass the store itself)."""

    async def find_blocks_by_hash_prefix(
        self, chain_id: int, prefix: str, limit: int
    ) -> tuple[int, list[tuple[int, bytes]]]: ...

    async def block_hashes(self, chain_id: int, heights: list[int]) -> dict[int, bytes]: ...


class OrphanIndex(Protocol):
    """Where the blocks off the main chain are looked up by hash (``Playground``)."""

    async def find_orphans_by_hash_prefix(
        self, chain_id: int, prefix: str, limit: int
    ) -> tuple[int, list[tuple[int, bytes]]]: ...


async def resolve_block(
    store: BlockIndex, chain_id: int, tip_height: int, query: str, orphans: OrphanIndex | None = None
) -> int | bytes:
    """The block a member meant (see ``parse_block_query``): a main-chain block's height, or an
    orphaned block's hash when a hash (prefix) names one of ``orphans``.  Both are index lookups,
    never a read of the chain."""
    parsed = parse_block_query(query, tip_height)
    if isinstance(parsed, int):
        return parsed
    count, matches = await store.find_blocks_by_hash_prefix(chain_id, parsed, AMBIGUOUS_HEIGHTS_SHOWN)
    orphan_count, orphan_matches = (0, []) if orphans is None else await orphans.find_orphans_by_hash_prefix(
        chain_id, parsed, AMBIGUOUS_HEIGHTS_SHOWN
    )
    if count + orphan_count == 0:
        also = (
            f", and there is no block {int(parsed)} (the chain is at height {tip_height})" if parsed.isdecimal() else ""
        )
        raise UserFacingError(f"No block's hash starts with `{parsed}`{also}.")
    if count + orphan_count > 1:
        shown = [f"#{h}" for h in sorted(height for height, _ in matches)]
        shown += [f"an orphan at #{h} (`{hash_to_display(b)[:12]}…`)" for h, b in orphan_matches]
        more = ", …" if count > AMBIGUOUS_HEIGHTS_SHOWN or orphan_count > AMBIGUOUS_HEIGHTS_SHOWN else ""
        raise UserFacingError(
            f"`{parsed}` starts the hashes of {count + orphan_count} blocks ({', '.join(shown)}{more}): "
            "type more of the hash."
        )
    return matches[0][0] if count else orphan_matches[0][1]


async def resolve_block_height(store: BlockIndex, chain_id: int, tip_height: int, query: str) -> int:
    """The height of the main-chain block a member meant (see ``parse_block_query``); a hash prefix is
    looked up in the store's display-order hash index, not by reading the chain."""
    found = await resolve_block(store, chain_id, tip_height, query)
    assert isinstance(found, int)  # without an orphan index, only main-chain heights come back
    return found


def heights_with_prefix(digits: str, tip_height: int, limit: int) -> list[int]:
    """Heights up to the tip whose decimal form starts with ``digits``, highest first, at most ``limit``:
    counted, not searched (numbers with more digits are higher, so longer ones come first)."""
    if not digits.isascii() or not digits.isdecimal():
        return []
    if digits.startswith("0"):
        return [0] if digits == "0" else []
    if len(digits) > len(str(tip_height)):
        return []  # more digits than the tip's height has (and never int() of thousands of digits)
    found: list[int] = []
    base = int(digits)
    for extra in range(len(str(tip_height)) - len(digits), -1, -1):
        low, high = base * 10**extra, min(tip_height, (base + 1) * 10**extra - 1)
        for height in range(high, low - 1, -1):
            found.append(height)
            if len(found) == limit:
                return found
    return found


def is_hash_prefix(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text) and len(text) <= 2 * HASH_SIZE_BYTES


async def block_choices(
    store: BlockIndex, chain_id: int, tip_height: int, typed: str, orphans: OrphanIndex | None = None
) -> list[app_commands.Choice[str]]:
    """Newest blocks first, filtered by what was typed (the start of a height or of a hash); then,
    for a hash, up to ``ORPHAN_CHOICES`` orphaned blocks whose hash starts with it (their value is
    their whole hash: a height would name the main chain's block).

    Heights matching the digits are counted and hashes matching the prefix found in the store's
    index, so a long chain costs two small queries, not a scan.
    """
    text = typed.strip().strip("`").removeprefix("#").strip().lower()
    orphan_choices: list[app_commands.Choice[str]] = []
    if orphans is not None and text and is_hash_prefix(text):
        _, found_orphans = await orphans.find_orphans_by_hash_prefix(chain_id, text, ORPHAN_CHOICES)
        orphan_choices = [
            app_commands.Choice(name=f"orphan at #{height} {hash_to_display(h)[:16]}…", value=hash_to_display(h))
            for height, h in found_orphans
        ]
    main_choices = await _main_block_choices(store, chain_id, tip_height, text)
    return main_choices[:MAX_AUTOCOMPLETE_CHOICES - len(orphan_choices)] + orphan_choices


async def _main_block_choices(
    store: BlockIndex, chain_id: int, tip_height: int, text: str
) -> list[app_commands.Choice[str]]:
    if not text:
        heights = list(range(tip_height, max(-1, tip_height - MAX_AUTOCOMPLETE_CHOICES), -1))
        found = await store.block_hashes(chain_id, heights)
    else:
        found = {}
        if is_hash_prefix(text):
            _, matches = await store.find_blocks_by_hash_prefix(chain_id, text, MAX_AUTOCOMPLETE_CHOICES)
            found.update(matches)
        by_height = heights_with_prefix(text, tip_height, MAX_AUTOCOMPLETE_CHOICES)
        found.update(await store.block_hashes(chain_id, [h for h in by_height if h not in found]))
    newest = sorted(found, reverse=True)[:MAX_AUTOCOMPLETE_CHOICES]
    return [
        app_commands.Choice(name=f"#{height} {hash_to_display(found[height])[:16]}…", value=str(height))
        for height in newest
    ]


def compare_work(work: int, main_work: int) -> str:
    """A branch's cumulative work against the main chain's, in words (work decides which branch wins)."""
    if work == main_work:
        return "equal: the main chain was seen first, so it stays"
    difference = abs(work - main_work)
    return f"{difference:,} {'more' if work > main_work else 'less'} than the main chain's"


def orphan_embed(
    stored: StoredOrphan, names: dict[bytes, str], tip_height: int, proposer: str | None, beacon: BeaconState | None
) -> discord.Embed:
    """An orphaned block: what ``block_embed`` shows, said to be off the main chain, with the main
    chain's block at its height and the work on both sides."""
    height = stored.height
    embed = block_embed(
        stored.block, names, title=f"Orphaned block at height {height:,}", proposer=proposer, beacon=beacon
    )
    embed.colour = GREY
    if stored.main_hash is None:
        instead = f"The main chain has no block at this height yet (its tip is block {tip_height:,})."
    else:
        instead = f"Block {height:,} of the main chain is `{hash_to_display(stored.main_hash)[:16]}…` instead."
    embed.description = (
        "🪦 **Orphaned: not on the main chain.** Its transfers and reward do not count; its branch lost "
        f"(or has not yet won) on cumulative work. {instead}"
    )
    embed.add_field(name="Main chain at this height", value=(
        "none yet" if stored.main_hash is None else f"`{hash_to_display(stored.main_hash)}`"), inline=False)
    main_work = f"{stored.main_chain_work:,}" if stored.main_chain_work is not None else "no block yet"
    versus = "" if stored.main_chain_work is None else f" ({compare_work(stored.chain_work, stored.main_chain_work)})"
    embed.add_field(
        name="Chain work at this height",
        value=f"this branch {stored.chain_work:,} · main chain {main_work}{versus}",
        inline=False,
    )
    return embed


def forks_embed(count: int, branches: list[StoredSideBranch], tip_height: int) -> discord.Embed:
    """The newest side branches: where each forks, how long it is, its tip and its work against the main chain's."""
    embed = discord.Embed(title="🌿 Side branches", colour=GREY)
    if not branches:
        embed.description = (
            "No side branches: every block this chain kept is on the main chain. A block found a moment "
            "too late, or a branch that loses a race, shows up here."
        )
        return embed
    lines = []
    for b in branches:
        where = f"block {b.fork_height:,} (`{hash_to_display(b.fork_hash)[:12]}…`)"
        main_at = f"main chain at {min(b.tip_height, tip_height):,}"
        lines.append(
            f"**{counted(b.length, 'block')}** forking at {where}; tip `{hash_to_display(b.tip_hash)[:16]}…` at "
            f"height {b.tip_height:,}; work {b.chain_work:,} vs {main_at} {b.main_chain_work:,}: "
            f"{compare_work(b.chain_work, b.main_chain_work)}"
        )
    shown = f"the {len(branches)} newest" if count > len(branches) else "newest first"
    embed.description = (
        f"{counted(count, 'side branch', 'side branches')} off the main chain ({shown}). Each is a run of "
        "orphaned blocks; `/chain block` with a tip's hash shows it.\n\n" + "\n".join(lines)
    )
    return embed


def proposer_slot_range(beacon: BeaconState, current: int) -> tuple[int, int]:
    """The slots ``/chain proposer`` draws: (first, last).

    The state keeps the draw's inputs (registry, checkpoint roots) for its own epoch onward;
    a later slot is drawn by running every epoch transition up to it, so at most a few epochs
    past the current slot, and never more than ``MAX_DRAW_EPOCHS_PAST_STATE`` past the state
    (a chain that made no block for long is far behind its current slot).
    """
    per_epoch = beacon.config.slots_per_epoch
    first = get_start_slot_at_epoch(beacon, beacon.epoch)
    last = min(current + PROPOSER_LOOKAHEAD_EPOCHS * per_epoch, first + MAX_DRAW_EPOCHS_PAST_STATE * per_epoch)
    return first, last


def check_proposer_slot(beacon: BeaconState, slot: int, current: int) -> None:
    first, last = proposer_slot_range(beacon, current)
    if slot < first:
        raise UserFacingError(
            f"Slot {slot:,} is in an earlier epoch than the chain's state (epoch {beacon.epoch:,}, "
            f"from slot {first:,}), whose validators and checkpoints it no longer keeps: ask for a slot "
            f"from {first:,} to {last:,}."
        )
    if slot > last:
        if last < current + PROPOSER_LOOKAHEAD_EPOCHS * beacon.config.slots_per_epoch:
            why = (f"this chain has made no block since slot {beacon.slot:,} (epoch {beacon.epoch:,}), and a draw "
                   f"replays every epoch from there: at most {MAX_DRAW_EPOCHS_PAST_STATE} epochs")
        else:
            why = (f"the current slot is {current:,}, and a draw can be shown up to {PROPOSER_LOOKAHEAD_EPOCHS} "
                   "epochs ahead of it")
        raise UserFacingError(f"Slot {slot:,} is too far ahead: {why}. Ask for a slot from {first:,} to {last:,}.")


def parse_txid_prefix(text: str) -> str:
    """A typed transaction id, or the start of one (lowercase hex, at least ``MIN_HASH_PREFIX``
    digits): autocomplete fills in all 64, a member may type the few that `/wallet pay` showed."""
    cleaned = text.strip().strip("`").strip().rstrip("…").strip().lower()
    if not cleaned or len(cleaned) > TXID_HEX_CHARS or not all(c in "0123456789abcdef" for c in cleaned):
        raise UserFacingError(
            f"A transaction id is up to {TXID_HEX_CHARS} hex digits (0-9, a-f), as `/wallet pay` shows it; "
            f"`{cleaned[:TXID_HEX_CHARS]}` is not one."
        )
    if len(cleaned) < MIN_HASH_PREFIX:
        raise UserFacingError(
            f"Type at least {MIN_HASH_PREFIX} hex digits of the transaction id (you gave {len(cleaned)}), "
            "or pick one from the list."
        )
    return cleaned


def short_id(prefix: str) -> str:
    return prefix if len(prefix) <= 16 else f"{prefix[:16]}…"


def pending_transaction_embed(tx: Transfer, names: dict[bytes, str], pending_here: int) -> discord.Embed:
    embed = discord.Embed(
        title="⏳ Pending transaction",
        description="Waiting in the mempool: it confirms when the next block is mined (higher fees confirm first).",
        colour=GREY,
    )
    embed.add_field(name="From", value=name_of(names, tx.sender))
    embed.add_field(name="To", value=name_of(names, tx.recipient))
    embed.add_field(name="Amount", value=points(tx.amount))
    embed.add_field(name="Fee", value=points(tx.fee))
    embed.add_field(name="Nonce", value=str(tx.nonce))
    embed.add_field(name="Pending here", value=counted(pending_here, "transfer"))
    return embed


def confirmed_transaction_embed(
    stored: StoredTransaction, names: dict[bytes, str], tip_height: int, block_hash: bytes
) -> discord.Embed:
    confirmations = tip_height - stored.height + 1
    embed = discord.Embed(
        title="✅ Confirmed transaction",
        description=f"In block {stored.height} at position {stored.position} "
        f"({counted(confirmations, 'confirmation')}).",
        colour=GREEN,
    )
    if stored.sender is None:
        embed.add_field(name="From", value="new points: the block's mining reward")
    else:
        embed.add_field(name="From", value=name_of(names, stored.sender))
    embed.add_field(name="To", value=name_of(names, stored.recipient))
    embed.add_field(name="Amount", value=points(stored.amount))
    embed.add_field(name="Fee", value=points(stored.fee))
    embed.add_field(name="Block hash", value=f"`{hash_to_display(block_hash)}`", inline=False)
    return embed


def transaction_choices(matches: TransactionMatches) -> list[app_commands.Choice[str]]:
    """Pending transactions first, then the newest confirmed ones; the value is the whole id."""
    choices = []
    for e in matches.pending:
        txid = hash_to_display(e.txid)
        label = f"{txid[:12]}… pending: {points(e.tx.amount)} (fee {e.tx.fee})"
        choices.append(app_commands.Choice(name=label, value=txid))
    for t in matches.confirmed:
        txid = hash_to_display(bytes(t.txid))
        what = "mining reward" if t.sender is None else f"fee {t.fee}"
        label = f"{txid[:12]}… block {t.height}: {points(t.amount)} ({what})"
        choices.append(app_commands.Choice(name=label[:100], value=txid))
    return choices


def describe_change(e: RetargetExplanation) -> str:
    change = e.target_change_percent
    effect = "harder" if change < 0 else "easier" if change > 0 else "unchanged"
    return f"height {e.height}: `{e.old_bits:#010x}` → `{e.new_bits:#010x}` (target {change:+d}%, {effect})"


def format_energy(millijoules: int) -> str:
    """``850 mJ``, ``12.3 J``, ``4.56 Wh``: the unit that keeps the number readable."""
    if millijoules < 1_000:
        return f"{millijoules:,} mJ"
    if millijoules < MILLIJOULES_PER_WATT_HOUR:
        return f"{millijoules // 1_000:,}.{millijoules % 1_000 // 100} J"
    return f"{millijoules / MILLIJOULES_PER_WATT_HOUR:,.2f} Wh"


def ethereum_merge_percent() -> str:
    whole, rest = divmod(ETHEREUM_MERGE_PERCENT_SAVED_THOUSANDTHS, 1_000)
    return f"{whole}.{rest:03d}%"


def energy_embed(report: EnergyReport, milliwatts_per_core: int) -> discord.Embed:
    embed = discord.Embed(title="⚡ Energy: proof of work vs proof of stake", colour=GREEN)
    if report.saved_bp is None:
        embed.description = "Nothing to compare yet: no proof-of-work hashing has been measured on this chain."
    elif report.saved_bp >= 0:
        embed.description = (
            f"Proof of stake used **{percent_from_bp(report.saved_bp, fixed=True)} less** energy than proof of work "
            "on this chain."
        )
    else:
        embed.description = (
            f"So far proof of stake used {percent_from_bp(-report.saved_bp, fixed=True)} **more** than proof of work: "
            "too little mining to compare with yet."
        )
    watts_fraction = f".{milliwatts_per_core % 1_000:03d}" if milliwatts_per_core % 1_000 else ""
    embed.add_field(
        name="Proof of work",
        value=f"{format_energy(report.pow_millijoules)}: the CPU time the hashing core actually spent on this "
        f"chain × {milliwatts_per_core // 1_000:,}{watts_fraction} W a core",
        inline=False,
    )
    embed.add_field(
        name="Proof of stake",
        value=f"{format_energy(report.pos_millijoules)}: every signature made and checked (blocks, votes, "
        "deposits) × the CPU time one takes on this machine × the same power",
        inline=False,
    )
    embed.add_field(
        name="Ethereum's Merge (September 2022)",
        value=f"{ethereum_merge_percent()} less energy, when its miners' GPUs were replaced by validators",
        inline=False,
    )
    embed.set_footer(
        text="CPU energy only, estimated; both sides use the same power per core, so the percentage does not "
        "depend on it."
    )
    return embed


def describe_attempt(draw: ProposerDraw, attempt, owners: dict[int, str]) -> str:
    """One step of the draw: the candidate, its random byte and whether it passed."""
    threshold = attempt.effective_balance * MAX_RANDOM_BYTE // draw.max_effective_balance
    owner = owners.get(attempt.candidate)
    who = f"#{attempt.candidate}" + (f" {owner}" if owner else "")
    verdict = "✅ accepted" if attempt.accepted else "❌ rejected"
    return (
        f"{attempt.attempt + 1}. {who} ({stake_points(attempt.effective_balance)}): byte {attempt.random_byte} "
        f"(needs ≤ {threshold}) {verdict}"
    )


def proposer_embed(draw: ProposerDraw, owners: dict[int, str], mix_height: int | None) -> discord.Embed:
    winner = draw.proposer
    owner = owners.get(winner)
    embed = discord.Embed(
        title=f"🎲 Proposer of slot {draw.slot:,}",
        description=f"Validator **#{winner}**{f' ({owner})' if owner else ''} was drawn. Anyone can redo this "
        "draw from the chain alone: the seed hashes the epoch with the checkpoint block below, then the slot; "
        "it shuffles the candidates (swap-or-not), and each in turn is accepted if a random byte is at most "
        "255 × its effective stake ÷ the cap.",
        colour=PURPLE,
    )
    embed.add_field(name="Epoch", value=f"{draw.epoch:,}")
    at = f" (block {mix_height:,})" if mix_height is not None else ""
    embed.add_field(name="Mix epoch", value=f"{draw.mix_epoch:,}")
    embed.add_field(name="Mix: checkpoint block", value=f"`{hash_to_display(draw.mix)}`{at}", inline=False)
    embed.add_field(name="Epoch seed", value=f"`{draw.epoch_seed.hex()}`", inline=False)
    embed.add_field(name="Slot seed", value=f"`{draw.seed.hex()}`", inline=False)
    embed.add_field(name="Candidates", value=counted(len(draw.candidates), "active validator"))
    embed.add_field(name="Total effective stake", value=stake_points(draw.total_effective_balance))
    embed.add_field(name="Cap", value=stake_points(draw.max_effective_balance))
    lines = [describe_attempt(draw, a, owners) for a in draw.attempts[:DRAW_ATTEMPTS_SHOWN]]
    hidden = len(draw.attempts) - DRAW_ATTEMPTS_SHOWN
    if hidden > 0:
        lines.append(f"…and {hidden} more, the last accepted")
    embed.add_field(name=f"Attempts ({len(draw.attempts)})", value="\n".join(lines), inline=False)
    embed.add_field(name="Winner", value=f"validator #{winner}" + (f", {owner}" if owner else ""), inline=False)
    return embed


def verify_embed(report: VerifyReport, elapsed: float) -> discord.Embed:
    # Proof-of-stake figures only once the chain has any: a pow chain nobody staked on reads as before.
    staking = report.mode is not None and (
        report.mode is not Mode.POW or report.pos_blocks > 0 or report.validators > 0
    )
    if staking:
        checked = ("every header, proof of work, retarget, proof-of-stake proposer and seal, operation, "
                   "epoch transition, signature and balance")
    else:
        checked = "every header, proof of work, retarget, signature and balance"
    embed = discord.Embed(
        title="✅ Chain verified",
        description=f"Replayed all {counted(report.blocks, 'block')} from genesis in {elapsed:.2f}s: "
        f"{checked} was checked "
        "again, and the stored balances match the replay.",
        colour=GREEN,
    )
    embed.add_field(name="Blocks", value=f"{report.blocks:,}")
    embed.add_field(name="Proofs of work", value=f"{report.proofs_of_work:,}")
    if staking:
        embed.add_field(name="Proof-of-stake blocks", value=f"{report.pos_blocks:,}")
        if report.merge_height is not None:
            embed.add_field(name="The Merge", value=f"at block {report.merge_height:,}")
    embed.add_field(name="Retargets", value=f"{report.retargets:,}")
    embed.add_field(name="Transfers", value=f"{report.transfers:,}")
    embed.add_field(name="Signatures", value=f"{report.signatures:,}")
    embed.add_field(name="Accounts", value=f"{report.accounts:,}")
    if staking:
        embed.add_field(name="Operations", value=f"{report.operations:,}")
        embed.add_field(name="Epochs", value=f"{report.epochs:,} (finalized: {report.finalized_epoch:,})")
        embed.add_field(
            name="Supply",
            value=f"{points(report.supply)} in wallets + {stake_points(report.staked_units)} staked by "
            f"{counted(report.validators, 'validator')}: exactly what was minted minus what was burned",
            inline=False,
        )
    else:
        embed.add_field(name="Supply", value=f"{points(report.supply)}, exactly what was minted", inline=False)
    if report.orphans:
        embed.add_field(
            name="Orphaned blocks",
            value=f"{report.orphans:,}, each fully checked on its own branch (they are off the main chain)",
            inline=False,
        )
    embed.add_field(name="Tip", value=f"`{report.tip_hash}`", inline=False)
    return embed


# On the group: Discord ignores guild_only on subcommands, so only this keeps it out of DMs.
@app_commands.guild_only()
class Explorer(PlaygroundCog, commands.GroupCog, group_name="chain", group_description="Explore this server's chain"):
    def __init__(self, services: Services) -> None:
        self.services = services
        self.playground: Playground = services.playground
        # One replay per server at a time: a replay of a big chain is seconds of CPU.
        self._verifying: set[int] = set()
        # (server, member) -> monotonic time of their next allowed export.
        self._export_ready_at: dict[tuple[int, int], float] = {}
        # Exports being built, one per server: a second request waits for it and is pointed at its file.
        self._exports: dict[int, ExportJob] = {}
        super().__init__()

    @app_commands.command(name="tip")
    async def tip(self, interaction: discord.Interaction) -> None:
        """The newest block of this server's chain."""
        guild_id = require_guild(interaction)
        state = self.playground.state(guild_id)
        names = await self.services.owner_names(guild_id)
        block = self.playground.tip_block(guild_id)
        proposer = await self._proposer_label(guild_id, block)
        embed = block_embed(block, names, title=f"Tip: block {block.height}", proposer=proposer, beacon=state.beacon)
        if is_proof_of_work_block(block, state.beacon):
            embed.add_field(name="Difficulty", value=f"{self.playground.difficulty(state.tip.bits, state.params):,}")
        await interaction.response.send_message(embed=embed, allowed_mentions=discord.AllowedMentions.none())

    async def _validator_owners(self, guild_id: int) -> dict[int, str]:
        """Validator index -> owner mention, for the validators the bot holds keys for."""
        owners = await self.playground.validator_owners_by_index(guild_id)
        return {index: f"<@{owner}>" for index, owner in owners.items()}

    async def _proposer_label(self, guild_id: int, block: Block) -> str | None:
        if block.seal is None:
            return None
        index = block.seal.proposer_index
        owner = (await self._validator_owners(guild_id)).get(index)
        return f"{owner} (validator #{index})" if owner else f"validator #{index}"

    @app_commands.command(name="block")
    @app_commands.describe(query="A height (12) or a block hash; its first 6 hex digits are enough")
    async def block(self, interaction: discord.Interaction, query: Range[str, 1, MAX_QUERY_CHARS]) -> None:
        """A block of this server's chain, by height or by hash, with its transfers."""
        guild_id = require_guild(interaction)
        state = self.playground.state(guild_id)
        found = await resolve_block(self.playground, guild_id, state.height, query, self.playground)
        names = await self.services.owner_names(guild_id)
        if isinstance(found, bytes):
            stored = await self.playground.orphan(guild_id, found)
            block = stored.block
            embed = orphan_embed(stored, names, state.height, await self._proposer_label(guild_id, block), state.beacon)
            embed.description = f"{embed.description}\n\n{self._transfer_lines(block, names)}"
        else:
            block = await self.playground.get_block(guild_id, found)
            embed = block_embed(block, names, proposer=await self._proposer_label(guild_id, block), beacon=state.beacon)
            embed.description = self._transfer_lines(block, names)
        if is_proof_of_work_block(block, state.beacon):
            embed.add_field(name="Difficulty", value=f"{self.playground.difficulty(block.header.bits, state.params):,}")
        if isinstance(found, int):
            embed.add_field(name="Confirmations", value=str(state.height - found + 1))
            competing = await self.playground.orphans_at(guild_id, found)
            embed.add_field(
                name="Competing blocks",
                value=f"{counted(competing, 'orphaned block')} at this height (off the main chain): see `/chain forks`"
                if competing else "none",
            )
        await interaction.response.send_message(embed=embed, allowed_mentions=discord.AllowedMentions.none())

    @app_commands.command(name="forks")
    async def forks(self, interaction: discord.Interaction) -> None:
        """The newest side branches of this server's chain: orphaned blocks and where they fork."""
        guild_id = require_guild(interaction)
        state = self.playground.state(guild_id)
        count, branches = await self.playground.side_branches(guild_id, FORKS_SHOWN)
        await interaction.response.send_message(embed=forks_embed(count, branches, state.height))

    @block.autocomplete("query")
    async def block_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        guild_id = interaction.guild_id
        # Typing must not create a chain; an empty list is the honest answer.
        if guild_id is None or not self.playground.has_chain(guild_id):
            return []
        return await block_choices(
            self.playground, guild_id, self.playground.state(guild_id).height, current, self.playground
        )

    @staticmethod
    def _transfer_lines(block: Block, names: dict[bytes, str]) -> str:
        if not block.transfers:
            return "No transfers." if block.seal is not None else "No transfers: only the miner's reward."
        lines = [
            f"`{hash_to_display(tx.txid())[:12]}…` {name_of(names, tx.sender)} → {name_of(names, tx.recipient)}: "
            f"{points(tx.amount)} (fee {tx.fee})"
            for tx in block.transfers[:BLOCK_TRANSFERS_SHOWN]
        ]
        hidden = len(block.transfers) - BLOCK_TRANSFERS_SHOWN
        if hidden > 0:
            lines.append(f"…and {hidden} more")
        return "\n".join(lines)

    # Checks the id's form before the chain is created.
    @app_commands.command(name="tx", extras={"chain": False})
    @app_commands.describe(
        txid="The transaction id as /wallet pay shows it; its first 6 hex digits are enough (pick from the list)"
    )
    async def tx(self, interaction: discord.Interaction, txid: Range[str, 1, TXID_HEX_CHARS + 2]) -> None:
        """A transaction: confirmed in a block, or pending in the mempool."""
        guild_id = require_guild(interaction)
        prefix = parse_txid_prefix(txid)
        state = await self.playground.ensure_chain(guild_id)
        matches = await self.playground.find_transactions(guild_id, prefix, AMBIGUOUS_HEIGHTS_SHOWN)
        if matches.count == 0:
            raise UserFacingError(
                f"No transaction `{short_id(prefix)}` on this server's chain or in its mempool "
                "(a replaced or dropped transfer is gone too)."
            )
        if matches.count > 1:
            shown = [f"`{hash_to_display(e.txid)[:16]}…` (pending)" for e in matches.pending]
            shown += [f"`{hash_to_display(t.txid)[:16]}…` (block {t.height})" for t in matches.confirmed]
            more = ", …" if matches.count > len(shown) else ""
            raise UserFacingError(
                f"`{prefix}` starts the ids of {matches.count} transactions ({', '.join(shown)}{more}): "
                "type more of the id, or pick one from the list."
            )
        names = await self.services.owner_names(guild_id)
        if matches.pending:
            pending = matches.pending[0]
            embed = pending_transaction_embed(pending.tx, names, self.playground.status(guild_id).pending_transfers)
            raw_txid = pending.txid
        else:
            stored = matches.confirmed[0]
            block_hash = (await self.playground.block_hashes(guild_id, [stored.height]))[stored.height]
            embed = confirmed_transaction_embed(stored, names, state.height, block_hash)
            raw_txid = bytes(stored.txid)
        embed.add_field(name="Transaction", value=f"`{hash_to_display(raw_txid)}`", inline=False)
        await interaction.response.send_message(embed=embed, allowed_mentions=discord.AllowedMentions.none())

    @tx.autocomplete("txid")
    async def tx_autocomplete(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        guild_id = interaction.guild_id
        # Typing must not create a chain, and half-typed text is no error: no choices.
        if guild_id is None or not self.playground.has_chain(guild_id):
            return []
        typed = current.strip().strip("`").strip().lower()
        if len(typed) > TXID_HEX_CHARS or not all(c in "0123456789abcdef" for c in typed):
            return []
        matches = await self.playground.find_transactions(guild_id, typed, MAX_AUTOCOMPLETE_CHOICES)
        return transaction_choices(matches)[:MAX_AUTOCOMPLETE_CHOICES]

    @app_commands.command(name="difficulty")
    async def difficulty(self, interaction: discord.Interaction) -> None:
        """How hard mining is now, how it changed at recent retargets, and why."""
        guild_id = require_guild(interaction)
        state = self.playground.state(guild_id)
        params, tip = state.params, state.tip
        window = params.retarget_window_blocks
        embed = discord.Embed(title="🎯 Difficulty", colour=BLUE)
        embed.add_field(name="Current bits", value=f"`{tip.bits:#010x}`")
        embed.add_field(name="Difficulty", value=f"{self.playground.difficulty(tip.bits, params):,}")
        embed.add_field(name="Target spacing", value=f"{duration(params.target_spacing_s)} per block")
        if params.no_retargeting:
            embed.description = "This chain never retargets: its difficulty is fixed."
            await interaction.response.send_message(embed=embed)
            return
        embed.add_field(name="Retarget window", value=f"every {window} blocks ({duration(params.target_timespan_s)})")
        next_height = state.height + window - state.height % window
        embed.add_field(
            name="Next retarget",
            value=f"at height {next_height}, in {counted(next_height - state.height, 'block')}",
        )
        window_start = state.height - state.height % window
        mined = state.height - window_start
        if mined > 0:
            average_s = (tip.time - state.headers[window_start].time) / mined
            embed.add_field(name="This window so far", value=f"{counted(mined, 'block')}, ~{duration(average_s)} apart")
        recent, last = await self.playground.retarget_history(guild_id)
        embed.description = last.sentence() if last is not None else (
            f"No retarget yet: the first comes at height {window}, when the chain compares how long "
            f"its first blocks took with {duration(params.target_timespan_s)}."
        )
        embed.add_field(
            name="Recent retargets (bits changed)",
            value="\n".join(describe_change(e) for e in recent) or "none yet",
            inline=False,
        )
        await interaction.response.send_message(embed=embed)

    # Defers before the chain is created (a first chain measures the core's rate).
    @app_commands.command(name="verify", extras={"chain": False})
    async def verify(self, interaction: discord.Interaction) -> None:
        """Replay this server's whole chain from genesis and check every rule again."""
        guild_id = require_guild(interaction)
        if guild_id in self._verifying:
            raise UserFacingError("A verification of this chain is already running: its result is on its way.")
        self._verifying.add(guild_id)
        try:
            await interaction.response.defer(thinking=True)
            started = time.perf_counter()
            try:
                # Off the event loop and without the store's lock, from one read snapshot
                # (blocks and balances of the same instant); mining goes on meanwhile.
                async with core_runs_while_waiting():
                    report = await self.playground.verify(guild_id)
            except VerificationError as exc:
                # The error names the block: a main-chain height, or an orphan's hash and height.
                log.warning("chain %d failed verification: %s", guild_id, exc)
                raise
            elapsed = time.perf_counter() - started
        finally:
            self._verifying.discard(guild_id)
        log.info("chain %d verified: %d blocks in %.2fs", guild_id, report.blocks, elapsed)
        await interaction.followup.send(embed=verify_embed(report, elapsed))

    @app_commands.command(name="proposer")
    @app_commands.describe(slot="The slot whose proposer draw to show (default: the current slot)")
    async def proposer(
        self, interaction: discord.Interaction, slot: Range[int, 0, MAX_SLOT] | None = None
    ) -> None:
        """Who proposes a slot's block, and the draw that picked them, step by step."""
        guild_id = require_guild(interaction)
        state = self.playground.state(guild_id)
        playground = self.playground
        if playground.mode(guild_id) is None:
            raise UserFacingError("This chain was created before proof of stake: it has no validators to draw from.")
        current = playground.current_slot(guild_id, playground.now())
        if slot is None:
            slot = current
        ahead = False
        if playground.is_merged(guild_id) and state.beacon is not None:
            check_proposer_slot(state.beacon, slot, current)
            ahead = slot >= get_start_slot_at_epoch(state.beacon, state.beacon.epoch + 2)
        # Drawing a slot ahead runs epoch transitions: pure CPU, in a thread, never on the event loop.
        draw = await asyncio.to_thread(playground.proposer_draw, guild_id, slot)
        embed = proposer_embed(draw, await self._validator_owners(guild_id), state.height_of(draw.mix))
        if ahead:
            embed.set_footer(
                text="More than an epoch ahead: this draw assumes no block comes before it; blocks made "
                "meanwhile change the checkpoint it mixes in."
            )
        await interaction.response.send_message(embed=embed, allowed_mentions=discord.AllowedMentions.none())

    @app_commands.command(name="chart")
    @app_commands.describe(kind="Which picture of this server's chain to draw")
    async def chart(
        self, interaction: discord.Interaction,
        kind: app_commands.Transform[str, named_choices({k.name: k.label for k in CHART_KINDS.values()})],
    ) -> None:
        """A chart of this server's chain: difficulty, block times, who wins blocks, and more."""
        guild_id = require_guild(interaction)
        charts = self.services.charts
        if charts is None:
            raise UserFacingError("Charts are not available on this bot (its chart worker did not start).")
        chart_kind = charts.kind(kind)
        # Reading the chain is quick and may refuse (nothing to show yet): done before deferring, so a
        # refusal is still ephemeral.  Drawing is what can take seconds on a busy bot.
        spec = await charts.spec(guild_id, chart_kind.name, self._names_for(interaction))
        charts.claim(guild_id, interaction.user.id)
        await interaction.response.defer(thinking=True)
        picture = await charts.render(guild_id, chart_kind.name, spec)
        embed = discord.Embed(title=f"📈 {picture.spec.title}", description=chart_kind.explains, colour=BLUE)
        await interaction.followup.send(
            embed=picture.show_in(embed), file=picture.file(), allowed_mentions=discord.AllowedMentions.none()
        )

    def _names_for(self, interaction: discord.Interaction) -> OwnerNames:
        """Owners -> names to print inside a picture (mentions do not render there)."""
        guild = interaction.guild

        async def name(owner: str) -> str:
            if owner in BOT_OWNER_NAMES:
                return BOT_OWNER_NAMES[owner]
            member = guild.get_member(int(owner)) if guild is not None and owner.isdigit() else None
            if member is None and owner == str(interaction.user.id):
                return interaction.user.display_name
            if member is not None:
                return member.display_name
            return short_owner(owner)

        return name

    @app_commands.command(name="energy")
    async def energy(self, interaction: discord.Interaction) -> None:
        """Energy this chain's proof of work used against its proof of stake, measured on the bot's CPU."""
        guild_id = require_guild(interaction)
        playground = self.playground
        if playground.mode(guild_id) is None:
            raise UserFacingError("This chain was created before proof of stake: there is nothing to compare with.")
        report = await playground.energy(guild_id)
        embed = energy_embed(report, playground.milliwatts_per_core)
        charts = self.services.charts
        if charts is None:
            await interaction.response.send_message(embed=embed)
            return
        # The comparison chart rides along when it can be had (best effort: a member's chart cooldown,
        # a busy or failing chart worker only leave it out); drawing can take a moment, so defer first.
        await interaction.response.defer(thinking=True)
        picture = await charts.attachment(guild_id, "energy", member_id=interaction.user.id)
        if picture is None:
            await interaction.followup.send(embed=embed)
            return
        await interaction.followup.send(embed=picture.show_in(embed), file=picture.file())

    # Defers before the chain is created; the build creates it (Playground.export_to).
    @app_commands.command(name="export", extras={"chain": False})
    async def export(self, interaction: discord.Interaction) -> None:
        """This server's whole chain as a JSON file that anyone can verify offline."""
        guild_id = require_guild(interaction)
        self._start_export_cooldown(guild_id, interaction.user.id)
        limit = interaction.guild.filesize_limit if interaction.guild else discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES
        # Joined or started before the first await, so two requests can never both start a build.
        job = self._exports.get(guild_id)
        first = job is None
        if job is None:
            build = asyncio.create_task(self._build_export(guild_id, limit), name=f"chain-export-{guild_id}")
            job = ExportJob(build, asyncio.get_running_loop().create_future())
            self._exports[guild_id] = job
            build.add_done_callback(lambda task: self._export_done(guild_id, job, task))
        link = None
        try:
            await interaction.response.defer(thinking=True)
            try:
                # The build runs in a worker thread: mining goes on meanwhile.
                # Shielded: a request that goes away does not cancel the file others wait for.
                async with core_runs_while_waiting():
                    built = await asyncio.shield(job.build)
            except ExportTooLargeError as exc:
                raise UserFacingError(
                    f"The export is {format_size(exc.size)}, over this server's upload limit of "
                    f"{format_size(exc.limit)}. The bot's host can write it with `python -m chain export FILE`."
                ) from exc
            filename = f"chain-{guild_id}-{built.height}.json"
            embed = export_embed(built, filename)
            if not first:
                # Point at the file the first request posted rather than upload it again.
                async with core_runs_while_waiting():
                    posted = await asyncio.shield(job.posted)
                if posted is not None:
                    embed.description = (embed.description or "") + (
                        f"\nAn export of this chain was already being built when you asked: it is here, {posted}."
                    )
                    await interaction.followup.send(embed=embed)
                    return
            message = await interaction.followup.send(
                embed=embed, file=discord.File(io.BytesIO(built.data), filename=filename), wait=True
            )
            link = message.jump_url
        finally:
            # Waiters get the link, or None (then they upload the file themselves), never silence.
            if first and not job.posted.done():
                job.posted.set_result(link)

    def _start_export_cooldown(self, guild_id: int, member_id: int) -> None:
        """Refuse a member's export within ``EXPORT_COOLDOWN_S`` of their last; else start the wait."""
        now = time.monotonic()
        key = (guild_id, member_id)
        ready_at = self._export_ready_at.get(key, 0.0)
        if now < ready_at:
            raise UserFacingError(
                f"You can export this chain again in {duration(math.ceil(ready_at - now))} "
                f"(one export a member every {duration(EXPORT_COOLDOWN_S)} keeps the bot quick for everyone)."
            )
        if len(self._export_ready_at) >= EXPORT_COOLDOWNS_KEPT:
            self._export_ready_at = {k: t for k, t in self._export_ready_at.items() if t > now}
        self._export_ready_at[key] = now + EXPORT_COOLDOWN_S

    async def _build_export(self, guild_id: int, limit: int) -> BuiltExport:
        buffer = io.BytesIO()
        summary = await self.playground.export_to(guild_id, buffer, limit=limit)
        log.info("chain %d exported: blocks 0 to %d, %d bytes", guild_id, summary.height, summary.size)
        return BuiltExport(summary.height, summary.tip, buffer.getvalue(), summary.orphans)

    def _export_done(self, guild_id: int, job: ExportJob, task: asyncio.Task[BuiltExport]) -> None:
        if self._exports.get(guild_id) is job:
            del self._exports[guild_id]
        if not task.cancelled():
            # Every waiter sees the outcome; retrieving it here keeps asyncio from
            # reporting a failure nobody was left to await as never retrieved.
            task.exception()


def format_size(size: int) -> str:
    """``850 bytes``, ``12.3 KB``, ``25.0 MB``."""
    if size < 1_000:
        return f"{size:,} bytes"
    if size < 1_000_000:
        return f"{size / 1e3:.1f} KB"
    return f"{size / 1e6:.1f} MB"


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Explorer(bot.services))  # type: ignore[attr-defined]
