"""The bot: wires settings, store, hashing core, notifier and cogs together."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import discord
import discord.client
import discord.gateway
import discord.http
import discord.shard
import yarl
from discord import app_commands
from discord.ext import commands

from bot.charts import ChartRenderer
from bot.dashboard import Dashboard
from bot.dashboard_view import NameBook
from bot.health import LoopLagMonitor
from bot.notifier import CHART_TIMEOUT_S, WebhookNotifier
from bot.outbox_feed import FeedingOutboxWriter, OutboxFeed
from bot.preflight import Preflight, run_preflight
from bot.private_files import database_files, make_private_files
from bot.settings import Settings
from bot.shard_scope import ShardScope
from bot.storage import (
    DashboardLinkRepository,
    EpochMessageRepository,
    LessonProgressRepository,
    ServerSettingsRepository,
)
from chain.adapters.beacon_node import BeaconNode
from chain.adapters.hashcore import HashingCore
from chain.adapters.key_check import record_key_check
from chain.adapters.node import Node
from chain.adapters.signer import ValidatorSigner
from chain.adapters.storage import Store
from chain.adapters.storage.outbox import OutboxTableWriter
from cogs.chart_book import ChartPicture
from cogs.core_pause import core_paused_for_command
from cogs.services import Services

log = logging.getLogger(__name__)

EXTENSIONS: tuple[str, ...] = (
    "cogs.mining",
    "cogs.wallet",
    "cogs.explorer",
    "cogs.admin",
    "cogs.stake",
    "cogs.learn",
    "cogs.selfish_mining",
    "cogs.double_spend",
    "cogs.help",
    "cogs.network_split",
)
FLUSH_ON_SHUTDOWN_S = 5.0
# The charts the classroom dashboard shows (a chart with nothing to show yet shows its refusal).
DASHBOARD_CHART_KINDS: tuple[str, ...] = ("difficulty", "intervals", "hashpower", "participation", "supply", "tree")
# Enough to overlap I/O waits, few enough to keep each loop iteration short.
MAX_CONCURRENT_COMMANDS = 8
# How often a command holding one of those turns is checked for having answered.
ANSWER_POLL_S = 0.02


def point_discord_at(api_base: str | None, gateway_url: str | None) -> None:
    """Aim discord.py at a Discord-compatible server other than Discord (self-hosted).

    discord.py keeps these as class attributes; webhooks follow ``Route.BASE`` too.
    """
    if api_base:
        discord.http.Route.BASE = api_base.rstrip("/")
        log.info("REST base set to %s", discord.http.Route.BASE)
    if gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)
        log.info("gateway set to %s", gateway_url)


class YieldingWebSocket(discord.gateway.DiscordWebSocket):
    """discord.py's gateway socket, handing the loop back after every event.

    When many events are already buffered (a burst of interactions),
    discord.py parses them all without suspending, since reading a buffered
    frame does not yield; the loop, and with it the heartbeat, waits for the
    whole burst.  One ``sleep(0)`` per event lets the commands already
    started, the timers and the heartbeat run in between.
    """

    async def poll_event(self) -> None:
        await super().poll_event()
        await asyncio.sleep(0)


class PlaygroundTree(app_commands.CommandTree):
    """The command tree, answering at most ``MAX_CONCURRENT_COMMANDS`` at once.

    Every interaction still gets its own task at once, but only a few run
    at a time, first come first served: a burst then drains in arrival
    order instead of advancing 200 tasks a step each per loop iteration,
    which keeps each iteration short for timers and the gateway heartbeat.
    A command gives its turn back once it has answered (or deferred): what
    it does after that (a replay, waiting on Discord for a webhook) must not
    keep every other server's commands from answering within 3 s.
    """

    def __init__(self, client: discord.Client, **options: Any) -> None:
        super().__init__(client, **options)
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_COMMANDS)

    async def _call(self, interaction: discord.Interaction) -> None:
        # Commands come first: while any is in flight (and not only waiting on a worker
        # thread, see cogs/core_pause.py) the hashing core hands out no new chunks (on two
        # cores, hashing slows everything else).
        with core_paused_for_command(getattr(self.client, "hashing_core", None)):
            await self._slots.acquire()
            command = asyncio.ensure_future(super()._call(interaction))
            try:
                # discord.py has no event for "answered"; is_done() is cheap, and only commands
                # holding a turn are polled.
                while not command.done() and not interaction.response.is_done():
                    await asyncio.wait({command}, timeout=ANSWER_POLL_S)
            except BaseException:
                command.cancel()
                raise
            finally:
                self._slots.release()
            await command


def use_yielding_gateway() -> None:
    # discord.py builds the socket through this module-level name in Client.connect, and through
    # discord.shard's own (a star import of discord.gateway) in AutoShardedClient.launch_shard.
    discord.client.DiscordWebSocket = YieldingWebSocket  # type: ignore[misc]
    discord.shard.DiscordWebSocket = YieldingWebSocket  # type: ignore[misc]


def make_intents() -> discord.Intents:
    """Only non-privileged intents: slash commands need nothing else."""
    intents = discord.Intents.none()
    intents.guilds = True
    return intents


class PlaygroundBot(commands.Bot):
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        randomness: Callable[[int], bytes] = os.urandom,
        preflight: Preflight | None = None,
        **options: Any,
    ) -> None:
        """``preflight``: checks already run (``python -m bot`` runs them before anything else);
        without it ``setup_hook`` runs them, and ``close`` releases what they hold."""
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=make_intents(),
            help_command=None,
            tree_cls=PlaygroundTree,
            **options,
        )
        use_yielding_gateway()
        self.settings = settings
        self.clock = clock
        self.randomness = randomness
        self.services: Services | None = None
        self.store: Store | None = None
        self.hashing_core: HashingCore | None = None
        self.notifier: WebhookNotifier | None = None
        self.charts: ChartRenderer | None = None
        # The classroom dashboard (None: off, or its port was taken) and the outbox feed that drives it.
        self.dashboard: Dashboard | None = None
        self.outbox_feed: OutboxFeed | None = None
        # Members' display names, learned from their commands, for the dashboard.
        self.names = NameBook()
        # The dashboard's charts: (chain id, kind) -> (PNG, alt text), and the kinds it shows.
        self.dashboard_charts: Any = None
        self.dashboard_chart_kinds: tuple[str, ...] = ()
        self.failed_extensions: dict[str, BaseException] = {}
        self.lag_monitor = LoopLagMonitor()
        # Servers already told (this run) that their chain could not be loaded.
        self._offline_announced: set[int] = set()
        self.preflight = preflight
        self._owns_preflight = preflight is None
        # The servers this process serves (every one, unless it is one of a sharded bot's processes).
        self.scope: ShardScope = settings.shard_scope()

    async def setup_hook(self) -> None:
        self.lag_monitor.start()
        settings = self.settings
        if self.preflight is None:
            self.preflight = await run_preflight(settings, self.randomness)
        master_key = self.preflight.master_key
        # Every commit that wrote outbox events (a block mined, a slot's block, a reorg, a game's) wakes
        # the readers of the outbox: the webhook notifier and the dashboard's feed.
        self.store = await Store.open(
            settings.database_target(), outbox=FeedingOutboxWriter(OutboxTableWriter(), self._outbox_committed)
        )
        # From now on the database itself names its key (an old database learns it here).
        await record_key_check(self.store.key_checks, master_key, self.randomness(12), int(self.clock()))
        make_private_files(database_files(settings.database_path))
        self.hashing_core = HashingCore(settings.hashing_workers, cpu_percent=settings.hashing_cpu_percent)
        await self.hashing_core.start()
        # Its own worker: charts never run on the event loop nor in the hashing core's workers.
        self.charts = ChartRenderer()
        await self.charts.start()
        node = Node(
            self.store, clock=self.clock, randomness=self.randomness, master_key=master_key,
            hashing_core=self.hashing_core, faucet_fund_points=settings.faucet_fund_points,
            owns=self.scope.owns,
        )
        await node.load()
        for chain_id in node.chain_ids():
            self.hashing_core.notify_tip(chain_id, node.chain(chain_id).state.tip_hash)
            # Until the gateway says which servers the bot is still in (``on_ready``), no chain makes
            # blocks: one of a server that removed the bot while it was offline must not run at all.
            node.pause(chain_id)
        self.notifier = WebhookNotifier(
            self.store, master_key, names=self._owner_names, alert=self._alert, clock=self.clock,
            randomness=self.randomness, retention_s=settings.outbox_retention_days * 86_400.0,
            pictures=self._announcement_chart, owns=self.scope.owns,
        )
        await self.notifier.start()
        signer = ValidatorSigner(self.store, clock=self.clock, randomness=self.randomness, master_key=master_key)
        beacon = BeaconNode(
            node, signer, milliwatts_per_core=settings.watts_per_core * 1_000,
            blocks_per_hour=settings.slot_blocks_per_hour,
        )
        await beacon.load()
        self.services = Services(
            node=node, hashing_core=self.hashing_core, notifier=self.notifier,
            server_settings_store=ServerSettingsRepository(self.store.db),
            epoch_messages=EpochMessageRepository(self.store.db),
            progress_interval_s=settings.progress_interval_s, beacon=beacon,
            faucet_points=settings.faucet_points, faucet_cooldown_s=settings.faucet_cooldown_s,
            lessons=LessonProgressRepository(self.store.db), chart_renderer=self.charts, clock=self.clock,
        )
        if self.dashboard_charts is None and self.services.charts is not None:
            self.dashboard_charts = self._dashboard_chart
            self.dashboard_chart_kinds = DASHBOARD_CHART_KINDS
        if settings.dashboard_port is not None:
            await self._start_dashboard(master_key)
        # The first new server's chain needs the core's hash rate: measured now, while the bot
        # logs in, not during that server's first command.
        self.services.start_calibration()
        for extension in EXTENSIONS:
            try:
                await self.load_extension(extension)
            except commands.ExtensionError as exc:
                # One broken extension must not take the others down with it.
                self.failed_extensions[extension] = exc
                log.exception("failed to load extension %s", extension)
        if settings.sync_commands:
            await self._sync_commands()
        else:
            # A sharded bot's commands are global: one process (the launcher's first) syncs them for all.
            log.info("not syncing commands (SYNC_COMMANDS is off: another process of this bot syncs them)")
        # Everything loaded so far (modules, chains, cogs) lives as long as the bot: keep it out of
        # the collector's full passes, whose pauses would otherwise land between commands.
        gc.freeze()

    async def _dashboard_chart(self, chain_id: int, kind: str) -> tuple[bytes, str]:
        """A chart for the dashboard: the same ChartBook as /chain chart (its cache and in-flight cap),
        no member cooldown (the dashboard asks once per kind and block, whoever watches)."""
        assert self.services is not None and self.services.charts is not None
        picture = await self.services.charts.picture(chain_id, kind)
        return picture.png, picture.spec.alt_text

    async def _start_dashboard(self, master_key: bytes) -> None:
        """Serve the classroom dashboard; a port already in use is a warning, and the bot goes on without it."""
        settings = self.settings
        port = settings.dashboard_port
        assert self.services is not None and self.store is not None and port is not None
        dashboard = Dashboard(
            self.services.playground, DashboardLinkRepository(self.store.db), master_key,
            host=settings.dashboard_host, port=port, public_url=settings.dashboard_public_url,
            guild_name=self._guild_name, names=self.names, charts=self.dashboard_charts,
            chart_kinds=self.dashboard_chart_kinds, clock=self.clock,
        )
        try:
            await dashboard.start()
        except OSError as exc:
            log.warning(
                "the classroom dashboard cannot listen on %s:%d (%s): going on without it. Set DASHBOARD_PORT "
                "to a free port (0 picks one).", settings.dashboard_host, settings.dashboard_port,
                exc.strerror or exc,
            )
            return
        feed = OutboxFeed(self.store.db, dashboard.on_outbox_events)
        await feed.start()
        self.dashboard, self.outbox_feed = dashboard, feed
        self.services.dashboard = dashboard

    def _outbox_committed(self) -> None:
        """Called once a transaction that wrote outbox events has committed (never before: a reader
        woken earlier might not see them, and nothing would wake it again)."""
        if self.notifier is not None:
            self.notifier.wake()
        if self.outbox_feed is not None:
            self.outbox_feed.wake()

    def _guild_name(self, chain_id: int) -> str:
        guild = self.get_guild(chain_id)
        return guild.name if guild is not None else ""

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        # The dashboard names members as the channel shows them; the bot has no member list to read, so
        # it learns the name of each member who runs a command, and of each member a command names.
        guild_id = interaction.guild_id
        if guild_id is None:
            return
        self.names.learn(guild_id, interaction.user.id, interaction.user.display_name)
        data: dict[str, Any] = dict(interaction.data or {})
        resolved: dict[str, Any] = data.get("resolved") or {}
        users: dict[str, Any] = resolved.get("users") or {}
        members: dict[str, Any] = resolved.get("members") or {}
        for user_id, user in users.items():
            member = members.get(user_id)
            if not isinstance(user, dict):
                continue
            nick = member.get("nick") if isinstance(member, dict) else None
            name = nick or user.get("global_name") or user.get("username")
            if isinstance(name, str) and name:
                self.names.learn(guild_id, user_id, name)

    async def _sync_commands(self) -> None:
        if self.settings.dev_guild_id is not None:
            guild = discord.Object(id=self.settings.dev_guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("synced %d commands to development server %d", len(synced), guild.id)
        else:
            synced = await self.tree.sync()
            log.info("synced %d global commands", len(synced))

    async def _announcement_chart(self, chain_id: int, kind: str) -> ChartPicture | None:
        """The chart an announcement carries (the notifier's ``pictures``): best effort, None when the
        bot has no chart worker or there is none to be had (``ChartBook.attachment``)."""
        charts = self.services.charts if self.services is not None else None
        if charts is None:
            return None
        return await charts.attachment(chain_id, kind, timeout_s=CHART_TIMEOUT_S)

    async def _owner_names(self, chain_id: int) -> dict[bytes, str]:
        if self.services is None:
            return {}
        return await self.services.owner_names(chain_id)

    async def _alert(self, chain_id: int, channel_id: int, text: str) -> None:
        channel = self.get_channel(channel_id)
        if isinstance(channel, discord.abc.Messageable):
            await channel.send(text)

    async def on_ready(self) -> None:
        log.info("logged in as %s in %d servers", self.user, len(self.guilds))
        self._follow_guilds()
        await self._announce_offline_chains()

    async def _announce_offline_chains(self) -> None:
        """Tell each server whose chain could not be loaded, once per start, in its playground channel:
        its admins learn it there and then, not from the first member's failed command."""
        if self.services is None:
            return
        playground = self.services.playground
        for chain_id in playground.offline_chain_ids():
            if chain_id in self._offline_announced or self.get_guild(chain_id) is None:
                continue
            self._offline_announced.add(chain_id)
            webhook = await self.notifier.webhooks.get(chain_id) if self.notifier is not None else None
            if webhook is None:
                continue  # no channel chosen yet: commands and /playground status say it
            text = (
                "⛔ This server's chain could not be loaded when the bot started "
                f"({playground.offline_reason(chain_id)}). "
                "Nothing on it can be used until an admin starts over with `/playground reset` (its blocks and "
                "balances are lost; wallets and settings are kept). Other servers are not affected."
            )
            try:
                await self._alert(chain_id, webhook.channel_id, text)
            except discord.HTTPException as exc:
                log.warning("could not tell server %d that its chain is offline: %s", chain_id, exc)

    def _follow_guilds(self) -> None:
        """Run the chains of the servers the bot is in, pause the others (their data is kept).

        ``self.guilds`` now holds every server READY listed, unavailable ones included (an outage
        is not a removal), so only servers that removed the bot are missing from it.
        """
        if self.services is None:
            return
        playground = self.services.playground
        present = {guild.id for guild in self.guilds}
        absent = [chain_id for chain_id in playground.chain_ids() if chain_id not in present]
        for chain_id in playground.chain_ids():
            if chain_id in present:
                playground.resume(chain_id)
            else:
                playground.pause(chain_id)
        if absent:
            log.info("%d chain(s) paused, the bot is not in their servers (data kept): %s", len(absent),
                     ", ".join(map(str, absent)))

    async def on_guild_available(self, guild: discord.Guild) -> None:
        if self.services is not None and self.services.playground.resume(guild.id):
            log.info("chain %d resumed: its server is available", guild.id)

    async def on_guild_join(self, guild: discord.Guild) -> None:
        if self.services is not None and self.services.playground.resume(guild.id):
            log.info("chain %d resumed: the bot was added back to %s", guild.id, guild.name)

    async def on_guild_remove(self, guild: discord.Guild) -> None:
        # Removed, or the server was deleted (an outage sends ``on_guild_unavailable`` instead).
        if self.services is not None and self.services.playground.pause(guild.id):
            log.info("chain %d paused: the bot was removed from %s (or it was deleted); data kept", guild.id,
                     guild.name)

    async def close(self) -> None:
        """Stop mining, flush the outbox, close the store; then disconnect."""
        log.info("shutting down")
        if self.services is not None:
            self.services.stop_calibration()
        for cog in list(self.cogs.values()):
            stop = getattr(cog, "stop_all_sessions", None)
            if stop is not None:
                await stop("the bot is restarting")
        if self.dashboard is not None:
            await self.dashboard.close()
        if self.outbox_feed is not None:
            await self.outbox_feed.close()
        if self.notifier is not None:
            if not await self.notifier.flush(FLUSH_ON_SHUTDOWN_S):
                log.warning("outbox not fully flushed; the rest goes out after the restart")
            await self.notifier.close()
        await super().close()
        if self.hashing_core is not None:
            await self.hashing_core.close()
        if self.charts is not None:
            await self.charts.close()
        if self.services is not None:
            self.services.playground.close()
        if self.store is not None:
            await self.store.close()
            self.store = None
        if self._owns_preflight and self.preflight is not None:
            await self.preflight.close()
            self.preflight = None
        await self.lag_monitor.stop()


class ShardedPlaygroundBot(PlaygroundBot, commands.AutoShardedBot):
    """One process of a sharded bot: discord.py's ``AutoShardedBot`` running this process's shards only.

    The method order is PlaygroundBot, commands.Bot, commands.AutoShardedBot, BotBase, AutoShardedClient,
    Client: the playground's own methods first, then the bot's command handling, and
    ``AutoShardedClient``'s connect/close (one gateway session per shard) before ``Client``'s.
    ``on_ready`` comes once every shard of the process is ready; a shard that identifies again later
    (its session could not be resumed) brings ``on_shard_ready`` alone, which follows that shard's servers.
    """

    def __init__(self, settings: Settings, **options: Any) -> None:
        scope = settings.shard_scope()
        super().__init__(settings, shard_count=scope.shard_count, shard_ids=list(scope.shard_ids), **options)

    async def on_shard_ready(self, shard_id: int) -> None:
        log.info("shard %d of %d ready (%d servers on it)", shard_id, self.scope.shard_count,
                 sum(1 for g in self.guilds if self.scope.shard_of(g.id) == shard_id))
        if self.is_ready():
            # After the first on_ready: this shard alone identified again.
            self._follow_guilds()


def make_bot(settings: Settings, **options: Any) -> PlaygroundBot:
    """The bot these settings ask for: sharded (SHARD_COUNT set) or the single-process default."""
    if settings.sharded:
        return ShardedPlaygroundBot(settings, **options)
    return PlaygroundBot(settings, **options)
