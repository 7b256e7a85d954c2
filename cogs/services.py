"""What the cogs need from the bot, handed to them by ``bot/`` at startup.

Cogs never import ``bot/`` (imports point bot -> cogs -> chain); the bot
builds one ``Services`` and every cog's ``setup`` reads it from ``bot.services``.
This module is the wiring: it names the engine's two halves (``Node``, ``BeaconNode``) only to
hand them to ``chain.playground.Playground``, the one thing cogs call for a server's chain
(``services.playground``).  What is the bot's and not the engine's (the non-consensus server
settings, the epoch message, lesson progress) cogs reach through the small protocols below, which ``bot/``
implements (``bot/storage.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from chain.adapters.beacon_node import BeaconNode
from chain.adapters.hashcore import HashingCore
from chain.adapters.node import Node
from chain.params import PLAYGROUND, ChainParams
from chain.playground import (
    FAUCET_OWNER,
    SELFISH_HONEST_OWNER,
    SELFISH_POOL_OWNER,
    ChainState,
    Playground,
    StoreTransaction,
)
from chain.pos.beacon import ConsensusConfig
from cogs.chart_book import ChartBook, ChartRendering
from cogs.chart_kinds import CHART_KINDS

# Interaction tokens live 15 minutes; a session must end (and edit) before that.
MAX_SESSION_S = 14 * 60
# The name announcements are posted under, by the webhook and in setup.
WEBHOOK_NAME = "Consensus Playground"
# How the faucet's wallet is named wherever a member's mention would be (blocks, transfers).
FAUCET_NAME = "🚰 the faucet"
# The bot's own wallets' names, wherever a member's mention would be: they are nobody's to mention.
BOT_OWNER_NAMES = {
    FAUCET_OWNER: FAUCET_NAME,
    SELFISH_POOL_OWNER: "🕵️ the selfish pool",
    SELFISH_HONEST_OWNER: "⛏️ the bot's honest miner",
}
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


class ServerSettingsStore(Protocol):
    """A server's settings that are not consensus rules (``session_s``, ``cooldown_s``), as stored:
    the defaults are ``Services.server_settings``'s.  Chaos mode is not among them: it is the
    engine's (``Playground.chaos_mode``)."""

    async def get(self, chain_id: int) -> dict[str, Any]: ...

    async def update(self, chain_id: int, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Merge ``changes`` into the stored settings in one transaction; the result."""
        ...


class DashboardLinks(Protocol):
    """The classroom dashboard's links (``bot/dashboard.py``): signed, expiring, revocable."""

    async def issue_link(self, chain_id: int, hours: int) -> str:
        """A link to this server's dashboard, valid ``hours`` hours unless revoked."""
        ...

    async def revoke_links(self, chain_id: int) -> int:
        """Every link made so far for this server gets 403 from now on, open pages included."""
        ...


@dataclass(frozen=True, slots=True)
class EpochMessage:
    """Where a server's running epoch is shown: one Discord message, edited as slots pass."""

    chain_id: int
    channel_id: int
    message_id: int
    epoch: int


class EpochMessageStore(Protocol):
    async def get_epoch_message(self, chain_id: int) -> EpochMessage | None: ...

    async def set_epoch_message(self, message: EpochMessage, now: int) -> None:
        """Record (replacing any other) the message that shows the chain's running epoch."""
        ...


@dataclass(frozen=True, slots=True)
class LessonProgress:
    """One member's record of one lesson on a server's chain (/learn)."""

    member: str
    lesson: str
    started_at: int
    start_height: int  # the tip when they started: a retarget counts from there
    completed_at: int | None
    reward_txid: bytes | None  # the faucet transfer that paid the reward; None: no points paid
    reward_points: int
    start_reorg_seq: int = 0  # the chain's reorg log when they started: a reorg lesson counts later ones


class LessonStore(Protocol):
    """The bot's teaching record (``bot/storage.py`` ``LessonProgressRepository``)."""

    async def start(
        self, chain_id: int, member: str, lesson: str, now: int, height: int, reorg_seq: int = 0
    ) -> LessonProgress: ...

    async def member_progress(self, chain_id: int, member: str) -> dict[str, LessonProgress]: ...

    async def complete(
        self, within: StoreTransaction, chain_id: int, member: str, lesson: str, now: int, start_height: int,
        reward_txid: bytes | None, reward_points: int,
    ) -> None:
        """Inside ``within`` (the reward's transaction); raises ``LessonAlreadyCompletedError`` if done before."""
        ...

    async def class_progress(self, chain_id: int, limit: int, offset: int) -> tuple[int, list[LessonProgress]]: ...


@dataclass
class Services:
    node: Node
    hashing_core: HashingCore
    notifier: Notifier
    server_settings_store: ServerSettingsStore
    epoch_messages: EpochMessageStore
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
    # /learn: who started and completed which lesson (None: /learn refuses, the store is not wired).
    lessons: LessonStore | None = None
    # Charts (issue 12): the bot's chart worker; None: no charts (``charts`` stays None).
    chart_renderer: ChartRendering | None = None
    clock: Callable[[], float] = time.time
    # The classroom dashboard's links (None: the dashboard is off on this bot).
    dashboard: DashboardLinks | None = None
    _calibration: asyncio.Task[int] | None = None
    # The one front door cogs call for a server's chain; it reads the defaults above from here.
    playground: Playground = field(init=False)
    # What commands, announcements and the dashboard ask for charts.
    charts: ChartBook | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.playground = Playground(self.node, self.beacon, defaults=self)
        if self.chart_renderer is not None:
            self.charts = ChartBook(self.playground, self.chart_renderer, CHART_KINDS, clock=self.clock)

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
        """This server's chain, created on first use (``Playground.ensure_chain``)."""
        return await self.playground.ensure_chain(guild_id)

    async def reset_chain(self, guild_id: int, *, defaults: bool = False) -> ChainState:
        """Start this server's chain over (``Playground.reset_chain``)."""
        return await self.playground.reset_chain(guild_id, defaults=defaults)

    async def server_settings(self, guild_id: int) -> dict[str, Any]:
        stored = await self.server_settings_store.get(guild_id)
        return {**DEFAULT_SERVER_SETTINGS, **stored}

    async def update_server_settings(self, guild_id: int, changes: Mapping[str, Any]) -> None:
        # Merged in one transaction: two admins changing different settings at once keep both.
        await self.server_settings_store.update(guild_id, changes)

    def member_balances(self, guild_id: int) -> list[int]:
        """Every positive balance on this server's chain but the faucet's (it is nobody's)."""
        return [balance for balance, _key in self.playground.member_balances(guild_id)]

    async def owner_names(self, guild_id: int) -> dict[bytes, str]:
        """Public key -> mention of the member who owns it, for this server's chain."""
        return {
            pubkey: BOT_OWNER_NAMES.get(owner, f"<@{owner}>")
            for pubkey, owner in (await self.playground.owners(guild_id)).items()
        }
