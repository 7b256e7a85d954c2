"""/wallet and /leaderboard: balances, history and payments between members."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from chain.errors import FaucetCooldownError
from chain.events import StakeDeposited, StakeWithdrawn, ValidatorSlashed
from chain.hashing import hash_to_display
from chain.playground import Playground, StoredStakeEntry
from cogs.embeds import BLUE, GOLD, GREEN, counted, name_of, points, stake_points
from cogs.errors import PlaygroundCog, UserFacingError, require_guild
from cogs.options import OneOf, Range
from cogs.services import Services

HISTORY_LIMIT = 10
LEADERBOARD_SIZE = 10
MAX_PAYMENT_POINTS = 1_000_000_000
MAX_FEE_POINTS = 1_000_000


def describe_stake_entry(entry: StoredStakeEntry) -> str:
    """One staking line of /wallet history, from the engine event that recorded it."""
    match entry.event:
        case StakeDeposited(validator_index=index, amount=amount, top_up=True):
            return f"−{points(amount)} staked: added to validator #{index}"
        case StakeDeposited(validator_index=index, amount=amount):
            return f"−{points(amount)} staked: new validator #{index}"
        case StakeWithdrawn(validator_index=index, points=paid, full=True):
            return f"+{points(paid)} stake returned by validator #{index}"
        case StakeWithdrawn(validator_index=index, points=paid):
            return f"+{points(paid)} paid back from above validator #{index}'s stake cap"
        case ValidatorSlashed(validator_index=index, offence=offence, penalty_units=penalty):
            offence = offence or "a slashing rule"
            return f"⚔️ validator #{index} slashed ({offence}): −{stake_points(penalty)} of its stake"
    # A row this version cannot read (chain.events.UnknownEvent): say what it was, not nothing.
    return f"{entry.event.kind.replace('_', ' ')} (not readable by this version)"


# On the group: Discord ignores guild_only on subcommands, so only this keeps it out of DMs.
@app_commands.guild_only()
class Wallet(
    PlaygroundCog, commands.GroupCog, group_name="wallet", group_description="Your points on this server's chain"
):
    def __init__(self, services: Services) -> None:
        self.services = services
        self.playground: Playground = services.playground
        super().__init__()

    @app_commands.command(name="balance")
    async def balance(self, interaction: discord.Interaction) -> None:
        """Your balance, pending payments and address (only you see it)."""
        wallet = await self.playground.wallet(require_guild(interaction), str(interaction.user.id))
        embed = discord.Embed(title="👛 Your wallet", colour=BLUE)
        embed.add_field(name="Balance", value=points(wallet.balance))
        embed.add_field(
            name="Pending out", value=f"{points(wallet.pending_out)} in {counted(len(wallet.pending), 'transfer')}"
        )
        embed.add_field(name="Spendable", value=points(wallet.balance - wallet.pending_out))
        embed.add_field(name="Address", value=f"`{wallet.address.hex()}`", inline=False)
        embed.set_footer(text=f"next nonce {wallet.next_nonce}")
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @app_commands.command(name="history")
    async def history(self, interaction: discord.Interaction) -> None:
        """Your last payments, rewards, stake deposits, payouts and penalties (only you see it)."""
        guild_id = require_guild(interaction)
        view = await self.playground.history(guild_id, str(interaction.user.id), HISTORY_LIMIT)
        names = await self.services.owner_names(guild_id)
        address, faucet = view.address, view.faucet
        lines = [f"⏳ pending: +{points(entry.tx.amount)} faucet claim" for entry in view.pending_claims]
        for entry in view.pending_out:
            lines.append(
                f"⏳ pending: −{points(entry.tx.amount)} to {name_of(names, entry.tx.recipient)} (fee {entry.tx.fee})"
            )
        # (height, staking after transfers, position in the block) -> line; newest first, merged.
        entries: list[tuple[tuple[int, int, int], str]] = []
        for tx in view.transactions:
            if tx.sender is None and tx.height in view.proposed_heights:
                line = f"block {tx.height}: +{points(tx.amount)} fees for proposing it"
            elif tx.sender is None:
                line = f"block {tx.height}: +{points(tx.amount)} mining reward"
            elif tx.sender == faucet and faucet is not None:
                line = f"block {tx.height}: +{points(tx.amount)} faucet claim"
            elif tx.sender == address:
                line = f"block {tx.height}: −{points(tx.amount)} to {name_of(names, tx.recipient)} (fee {tx.fee})"
            else:
                line = f"block {tx.height}: +{points(tx.amount)} from {name_of(names, tx.sender)}"
            entries.append(((tx.height, 0, tx.position), line))
        for stake in view.stakes:
            entries.append(((stake.height, 1, stake.seq), f"block {stake.height}: {describe_stake_entry(stake)}"))
        entries.sort(reverse=True)
        lines += [line for _key, line in entries[:HISTORY_LIMIT]]
        embed = discord.Embed(
            title="📜 Your history",
            description="\n".join(lines) or "Nothing yet: `/mine start` earns your first points.",
            colour=BLUE,
        )
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @app_commands.command(name="faucet")
    async def faucet(self, interaction: discord.Interaction) -> None:
        """A starter allowance from the server's faucet, once per cooldown (only you see it)."""
        guild_id = require_guild(interaction)
        try:
            claim = await self.playground.faucet(
                guild_id, str(interaction.user.id), self.services.faucet_points,
                cooldown_s=self.services.faucet_cooldown_s,
            )
        except FaucetCooldownError as wait:
            raise UserFacingError(
                f"You already claimed from the faucet: your next claim opens <t:{wait.available_at}:R>. "
                "Nothing was changed."
            ) from None
        embed = discord.Embed(
            title="🚰 Faucet claim",
            description=f"**+{points(claim.amount)}** for {interaction.user.mention}, pending: "
            f"{self._arrives(guild_id)}",
            colour=GREEN,
        )
        embed.add_field(name="Next claim", value=f"<t:{claim.next_claim_at}:R>")
        embed.add_field(name="Faucet left", value=points(claim.left))
        embed.add_field(name="Transaction", value=f"`{hash_to_display(claim.admission.entry.txid)}`", inline=False)
        embed.set_footer(text="/wallet history shows it; then /wallet pay or /stake deposit spend it.")
        await interaction.response.send_message(embed=embed, ephemeral=True)

    def _arrives(self, guild_id: int) -> str:
        """When a pooled transfer lands, in this chain's mode."""
        if self.playground.is_merged(guild_id):
            slot_s = self.playground.consensus(guild_id).slot_duration_s
            return f"it arrives with the next slot's block (a slot is {slot_s} s)."
        return "it arrives with the next block mined (`/mine start` mines it yourself)."

    # Checks its input before the chain is created: a refused payment creates nothing.
    @app_commands.command(name="pay", extras={"chain": False})
    @app_commands.describe(
        member="Who receives the points",
        amount="How many points to send",
        fee="Points for the miner who confirms it; higher fees confirm first",
    )
    async def pay(
        self,
        interaction: discord.Interaction,
        member: discord.Member,
        amount: Range[int, 1, MAX_PAYMENT_POINTS],
        fee: Range[int, 0, MAX_FEE_POINTS] = 0,
    ) -> None:
        """Send points to another member; it confirms in the next block mined."""
        guild_id = require_guild(interaction)
        if member.bot:
            raise UserFacingError("Bots can't hold points: pay a member instead.")
        if member.id == interaction.user.id:
            raise UserFacingError("You can't pay yourself.")
        admission = await self.playground.pay(guild_id, str(interaction.user.id), str(member.id), amount, fee)
        embed = discord.Embed(
            title="💸 Payment sent",
            description=f"{interaction.user.mention} → {member.mention}: **{points(amount)}** (fee {points(fee)})",
            colour=GREEN,
        )
        embed.add_field(name="Transaction", value=f"`{hash_to_display(admission.entry.txid)}`", inline=False)
        embed.set_footer(text="Pending in the mempool: it confirms when the next block is mined.")
        await interaction.response.send_message(embed=embed, allowed_mentions=discord.AllowedMentions.none())


class Leaderboard(PlaygroundCog):
    def __init__(self, services: Services) -> None:
        self.services = services
        self.playground: Playground = services.playground

    @app_commands.command(name="leaderboard")
    @app_commands.guild_only()
    @app_commands.describe(by="Rank by balance or by blocks mined")
    async def leaderboard(
        self, interaction: discord.Interaction, by: OneOf["balance", "blocks"] = "balance"  # noqa: F821, UP037 - OneOf is Literal to type checkers: its strings are choices
    ) -> None:
        """The server's top members by balance or by blocks mined."""
        guild_id = require_guild(interaction)
        names = await self.services.owner_names(guild_id)
        if by == "balance":
            ranked = sorted(self.playground.member_balances(guild_id), reverse=True)
            lines = [
                f"**{i}.** {name_of(names, key)} — {points(v)}"
                for i, (v, key) in enumerate(ranked[:LEADERBOARD_SIZE], 1)
            ]
        else:
            mined = self.playground.blocks_mined(guild_id)
            lines = [
                f"**{i}.** {name_of(names, key)} — {counted(n, 'block')}"
                for i, (key, n) in enumerate(mined[:LEADERBOARD_SIZE], 1)
            ]
        embed = discord.Embed(
            title=f"🏆 Leaderboard by {'balance' if by == 'balance' else 'blocks mined'}",
            description="\n".join(lines) or "Nobody yet: `/mine start`!",
            colour=GOLD,
        )
        await interaction.response.send_message(embed=embed, allowed_mentions=discord.AllowedMentions.none())


async def setup(bot: commands.Bot) -> None:
    services: Services = bot.services  # type: ignore[attr-defined]
    await bot.add_cog(Wallet(services))
    await bot.add_cog(Leaderboard(services))
