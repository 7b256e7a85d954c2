"""What the cogs need from the bot, handed to them by ``bot/`` at startup.

Cogs never import ``bot/`` (imports point bot -> cogs -> chain); the bot
builds one ``Services`` and every cog's ``setup`` reads it from ``bot.services``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol

from chain.beacon import ConsensusConfig
from chain.beacon_node import BeaconNode
from chain.hashcore import HashingCore
from chain.node import FAUCET_OWNER, Node
from chain.params import PLAYGROUND, ChainParams
from chain.pow import compute_calibrated_bits
from chain.state import ChainState

# Interaction tokens live 15 minutes; a session must end (and edit) before that.
MAX_SESSION_S = 14 * 60
# The name announcements are posted under, by the webhook and in setup.
WEBHOOK_NAME = "Consensus Playground"
# How the faucet's wallet is named wherever a member's mention would be (blocks, transfers).
FAUCET_NAME = "🚰 the faucet"
DEFAULT_SERVER_SETTINGS: dict[str, Any] = {"session_s": 120, "cooldown_s": 10}


class Notifier(Protocol):
    def wake(self) -> None: ...

    async def register(self, chain_id: int, channel_id: int, webhook_id: int, url: str) -> None:
        """Post this server's events through this webhook from now on (the URL is stored sealed)."""
        ...

    async def status(self, chain_id: int) -> Any:
        """The webhook's health: ``channel_id`` and ``webhook_id`` (None if never set),
        ``disabled_reason``, ``backlog`` (undelivered events), ``retry_in_s``, and while a post is in
        progress ``posting_for_s``, ``rate_limited_for_s`` and ``stalled``."""
        ...


@dataclass
class Services:
    node: Node
    hashing_core: HashingCore
    notifier: Notifier
    progress_interval_s: float = 3.0
    default_params: ChainParams = PLAYGROUND
    # Measured once, on the first new chain; tests may set it to choose difficulty.
    measured_hash_rate: int | None = None
    # Proof of stake: validators, votes, slots and the Merge. New chains get ``default_consensus``.
    beacon: BeaconNode | None = None
    default_consensus: ConsensusConfig = field(default_factory=ConsensusConfig)
    # /wallet faucet: points per claim, and seconds between two claims of one member.
    faucet_points: int = 32
    faucet_cooldown_s: int = 3_600
    _creating: dict[int, asyncio.Lock] = field(default_factory=dict)
    _calibration: asyncio.Task[int] | None = None

    async def hash_rate(self) -> int:
        """The core's measured rate, measured once and then reused for every new chain.

        ``start_calibration`` measures it in the background when the bot starts, so the first
        command in a new server does not wait a second for it (it waits for what is left, if
        it comes that early)."""
        if self.measured_hash_rate is None:
            self.start_calibration()
            assert self._calibration is not None
            rate = await asyncio.shield(self._calibration)
            if self.measured_hash_rate is None:
                self.measured_hash_rate = rate
        return self.measured_hash_rate

    def stop_calibration(self) -> None:
        """Shutdown: a measurement still running is abandoned (the core is closing)."""
        if self._calibration is not None and not self._calibration.done():
            self._calibration.cancel()

    def start_calibration(self) -> None:
        """Measure the hashing core's rate now, in the background (once)."""
        if self.measured_hash_rate is None and self._calibration is None:
            self._calibration = asyncio.get_running_loop().create_task(
                self.hashing_core.measure_rate(), name="calibration"
            )

    async def ensure_chain(self, guild_id: int) -> ChainState:
        """This server's chain, created on first use with a calibrated difficulty.

        A stored chain that failed to load raises ``ChainOfflineError`` (an ephemeral answer that
        points to ``/playground reset``): it is never replaced behind the admins' back.
        """
        if self.node.has_chain(guild_id):
            return self.node.chain(guild_id).state
        lock = self._creating.setdefault(guild_id, asyncio.Lock())
        async with lock:
            self.node.require_online(guild_id)
            if not self.node.has_chain(guild_id):
                bits = compute_calibrated_bits(await self.hash_rate(), self.default_params)
                await self.node.create_chain(
                    guild_id, self.default_params, initial_bits=bits, consensus=self.default_consensus
                )
        return self.node.chain(guild_id).state

    async def reset_chain(self, guild_id: int, *, defaults: bool = False) -> ChainState:
        """Start this server's chain over, as one atomic step: with the rules in force on the old
        chain (block time, reward...), or with the default rules if ``defaults``."""
        bits = compute_calibrated_bits(await self.hash_rate(), self.default_params)
        keep = not defaults
        if self.beacon is not None:
            await self.beacon.reset(guild_id, self.default_params, initial_bits=bits, consensus=self.default_consensus,
                                    keep_rules=keep)
        else:
            await self.node.replace_chain(guild_id, self.default_params, initial_bits=bits,
                                          consensus=self.default_consensus, keep_rules=keep)
        return self.node.chain(guild_id).state

    async def server_settings(self, guild_id: int) -> dict[str, Any]:
        stored = await self.node.store.server_settings.get(guild_id)
        return {**DEFAULT_SERVER_SETTINGS, **stored}

    def member_balances(self, guild_id: int) -> list[int]:
        """Every positive balance on this server's chain but the faucet's (it is nobody's)."""
        faucet = self.node.faucet_address(guild_id)
        return [acc.balance for key, acc in self.node.chain(guild_id).state.ledger.items()
                if acc.balance > 0 and key != faucet]

    async def owner_names(self, guild_id: int) -> dict[bytes, str]:
        """Public key -> mention of the member who owns it, for this server's chain."""
        names = {
            pubkey: FAUCET_NAME if owner == FAUCET_OWNER else f"<@{owner}>"
            for pubkey, owner in (await self.node.owners(guild_id)).items()
        }
        if self.beacon is not None:
            names.update(
                {pubkey: f"<@{owner}>" for pubkey, owner in (await self.beacon.validator_owners(guild_id)).items()}
            )
        return names
