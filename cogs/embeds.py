"""How chain objects look in Discord: embeds and short text, pure functions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import discord

from chain.block import Block
from chain.events import BLOCK_MINED, DIFFICULTY_CHANGED, MILESTONE_REACHED, PARAMS_CHANGED, REWARD_PAID
from chain.hashing import hash_to_display

BAR_WIDTH = 20
GOLD = discord.Colour.gold()
BLUE = discord.Colour.blurple()
GREEN = discord.Colour.green()
GREY = discord.Colour.light_grey()


PARAM_LABELS = {
    "target_spacing_s": "Block time (s)",
    "initial_subsidy_points": "Reward (pts)",
    "halving_interval_blocks": "Halving interval (blocks)",
    "retarget_window_blocks": "Retarget window (blocks)",
}


def points(n: int) -> str:
    return f"{n:,} pts"


def short(hex_text: str, n: int = 12) -> str:
    return f"`{hex_text[:n]}…`"


def progress_bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    """A text bar; past 100% it stays full and says how far over it is."""
    if total <= 0:
        return "░" * width
    filled = min(width, done * width // total)
    percent = done * 100 // total
    return "█" * filled + "░" * (width - filled) + f" {percent}%"


def name_of(names: Mapping[bytes, str], pubkey: bytes) -> str:
    return names.get(pubkey, short(pubkey.hex()))


def block_embed(block: Block, names: Mapping[bytes, str], title: str | None = None) -> discord.Embed:
    header = block.header
    embed = discord.Embed(title=title or f"Block {block.height}", colour=BLUE)
    embed.add_field(name="Hash", value=f"`{header.hash_hex()}`", inline=False)
    embed.add_field(name="Previous", value=f"`{hash_to_display(header.prev_hash)}`", inline=False)
    embed.add_field(name="Miner", value=name_of(names, block.coinbase.miner))
    embed.add_field(name="Reward", value=points(block.coinbase.amount))
    embed.add_field(name="Transfers", value=str(len(block.transfers)))
    embed.add_field(name="Nonce", value=f"{header.nonce:,} (extra {block.coinbase.extra_nonce})")
    embed.add_field(name="Bits", value=f"`{header.bits:#010x}`")
    embed.add_field(name="Time", value=f"<t:{header.time}:T>")
    return embed


def event_embed(kind: str, payload: Mapping[str, Any], names: Mapping[bytes, str]) -> discord.Embed:
    """One outbox event as the embed the webhook posts."""
    def who(key: str) -> str:
        return name_of(names, bytes.fromhex(payload[key]))

    if kind == BLOCK_MINED:
        embed = discord.Embed(title=f"⛏️ Block {payload['height']} mined", colour=GOLD)
        embed.description = f"{who('miner')} found `{payload['hash'][:20]}…`"
        embed.add_field(name="Reward", value=points(payload["reward"]))
        embed.add_field(name="Transfers", value=str(payload["transfers"]))
        return embed
    if kind == REWARD_PAID:
        return discord.Embed(
            title=f"💰 Reward for block {payload['height']}",
            description=f"{who('miner')} earned {points(payload['subsidy'])} subsidy + {points(payload['fees'])} fees",
            colour=GREEN,
        )
    if kind == DIFFICULTY_CHANGED:
        return discord.Embed(title="🎯 Difficulty changed", description=payload["sentence"], colour=BLUE)
    if kind == MILESTONE_REACHED:
        return discord.Embed(
            title="🏆 Milestone",
            description=f"{who('account')} now holds {points(payload['balance'])} "
            f"(passed {points(payload['milestone'])})",
            colour=GOLD,
        )
    if kind == PARAMS_CHANGED:
        changes = [
            f"{PARAM_LABELS.get(name, name)}: {old:,} → **{new:,}**"
            for name, (old, new) in payload.items()
            if name != "height"
        ]
        return discord.Embed(
            title=f"⚙️ New rules from block {payload['height'] + 1}",
            description="\n".join(changes) + f"\nBlock {payload['height']} committed to them in its coinbase.",
            colour=BLUE,
        )
    return discord.Embed(title=kind.replace("_", " ").capitalize(), colour=GREY)
