"""The Sandbox: a loopback-only Discord look-alike that a real discord.py client connects to.

State lives in plain objects (sandbox.models) held here; the behaviour is split by concern:
REST handlers (sandbox.rest, sandbox.routes_*) and the gateway (sandbox.gateway) answer the
bot, world building (sandbox.world), messages and webhooks (sandbox.messaging) and simulated
users (sandbox.actions) change the state, and the world file (sandbox.world_file) keeps it.  Tests
and the terminal observe the state and act through the methods below, which hand each call
to the collaborator that owns it.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from .actions import UserActions
from .commands import CommandRegistry
from .discord_py import is_loopback_host
from .errors import SandboxError
from .faults import FaultInjector
from .gateway import MAX_GUILDS_PER_SESSION, Gateway, shard_for
from .ids import SnowflakeGenerator, bot_token_for
from .interactions import InteractionHandle
from .messaging import Messaging
from .models import (
    COMPONENTS_V2,
    KIND_WEBHOOK,
    SUPPRESS_EMBEDS,
    Attachment,
    Channel,
    ChannelRef,
    Guild,
    GuildRef,
    Member,
    MemberRef,
    Message,
    Role,
    User,
    Webhook,
)
from .permissions import PermissionsLike
from .records import ChangeNotifier, RequestRecord, SandboxEvent, UploadedFile
from .rest import RestApi
from .world import World
from .world_file import WorldAutosave, read_world, remove_leftovers, restore

_log = logging.getLogger(__name__)

T = TypeVar("T")

# Discord recommends about one shard per this many guilds (GET /gateway/bot's ``shards``).
GUILDS_PER_RECOMMENDED_SHARD = 1000

# A 1x1 transparent PNG served for every CDN asset (avatars, icons) so nothing leaves the machine.
_PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6300010000050001"
    "0d0a2db40000000049454e44ae426082"
)


def _check_loopback(host: str) -> None:
    if not is_loopback_host(host):
        raise ValueError(f"the sandbox only listens on loopback addresses, not {host!r}")


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


class Sandbox:
    """A Discord-compatible REST API + gateway on 127.0.0.1 with a Python API for tests.

    Usage::

        async with Sandbox() as sb:
            guild = sb.add_guild("Genesis")
            general = sb.add_channel(guild, "general")
            alice = sb.add_member(guild, "alice", permissions={"manage_guild": True})
            point_discord_py_at(sb.api_base, sb.gateway_url)
            ...  # start the bot with sb.bot_token
            await sb.wait_until_ready()
            handle = await sb.invoke(guild, general, alice, "mine start", {"amount": 5})
            await handle.wait_response()
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        bot_name: str = "Consensus Playground",
        bot_token: str | None = None,
        application_id: int | None = None,
        heartbeat_interval_ms: int = 41250,
        ack_deadline: float | None = 3.0,
        world_path: Path | None = None,
        shard_count: int = 1,
        max_concurrency: int = 1,
        max_guilds_per_session: int | None = MAX_GUILDS_PER_SESSION,
    ) -> None:
        """``world_path``: keep the world in this JSON file (sandbox.world_file): load it now if
        it exists (``WorldFileError`` if it cannot be used), save it after changes and at
        ``close()``.  Without it the world lives in memory only, as tests want.

        ``shard_count``: the shard count GET /gateway/bot recommends (at least one shard per
        ``GUILDS_PER_RECOMMENDED_SHARD`` guilds, as Discord recommends); ``max_concurrency`` its
        ``session_start_limit.max_concurrency``; ``max_guilds_per_session``: an IDENTIFY whose
        shard would hold more guilds is closed with 4011 Sharding required (None: no limit)."""
        _check_loopback(host)
        if shard_count < 1 or max_concurrency < 1:
            raise ValueError("shard_count and max_concurrency must be at least 1")
        self.shard_count = shard_count
        self.max_concurrency = max_concurrency
        self.host = host
        self._requested_port = port
        self.port: int | None = None
        self.ids = SnowflakeGenerator()
        self.notifier = ChangeNotifier()
        self.faults = FaultInjector()
        self.requests: list[RequestRecord] = []
        # Seconds an interaction may stay unanswered before callbacks get 404 Unknown interaction.
        self.ack_deadline = ack_deadline

        self.users: dict[int, User] = {}
        self.guilds: dict[int, Guild] = {}
        self.channels: dict[int, Channel] = {}
        self.messages: dict[int, Message] = {}
        self.webhooks: dict[int, Webhook] = {}
        self.attachments: dict[int, Attachment] = {}
        self.interactions: dict[int, InteractionHandle] = {}
        self.interactions_by_token: dict[str, InteractionHandle] = {}
        # The behaviour, one collaborator per concern; each works on the state above through this sandbox.
        self.world = World(self)
        self.messaging = Messaging(self)
        self.actions = UserActions(self)

        # Modern Discord apps share one id between the application and its bot user.
        bot_id = application_id or self.ids.next()
        self.application_id = bot_id
        self.bot_user = self.world.register_user(User(id=bot_id, username=bot_name, bot=True))
        self.app_owner = self.world.register_user(User(id=self.ids.next(), username="app-developer"))
        self.bot_token = bot_token or bot_token_for(bot_id)
        self.bot_token_generated = bot_token is None
        self.commands = CommandRegistry(self.application_id, self.new_id)
        self.world_path = world_path
        self._autosave: WorldAutosave | None = None
        self.world_restored = False
        if world_path is not None:
            self._autosave = WorldAutosave(self, world_path)
            remove_leftovers(world_path)
            saved = read_world(world_path)
            if saved is not None:
                restore(self, saved, world_path)
                self.world_restored = True
            self.notifier.on_change = self._autosave.changed
        self.gateway = Gateway(self, heartbeat_interval_ms=heartbeat_interval_ms)
        self.gateway.max_guilds_per_session = max_guilds_per_session
        self.rest = RestApi(self)
        self._runner: web.AppRunner | None = None
        self._resumes_at_disconnect = 0

    # --- lifecycle --------------------------------------------------------

    async def start(self) -> Sandbox:
        if self._runner is not None:
            # Already listening (started, then entered with ``async with``): a second bind of
            # the same port would fail, and of port 0 would leave the first server orphaned.
            return self
        # Files sent by bots are capped by Discord at 10 MiB per message for unboosted guilds; allow headroom.
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_route("*", "/api/{tail:.*}", self.rest.handle)
        app.router.add_get("/attachments/{attachment_id}/{filename}", self._serve_attachment)
        app.router.add_get("/cdn/{tail:.*}", self._serve_cdn)
        app.router.add_get("/", self._serve_index)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._requested_port)
        try:
            await site.start()
        except BaseException:  # e.g. the port is in use: nothing stays half set up
            await runner.cleanup()
            raise
        self._runner = runner
        address = runner.addresses[0]
        self.port = int(address[1])
        for attachment in self.attachments.values():
            # Restored attachments: served from this run's port.
            attachment.url = self.messaging.attachment_url(attachment.id, attachment.filename)
        _log.info("sandbox listening on %s (gateway %s)", self.api_base, self.gateway_url)
        return self

    async def close(self) -> None:
        if self._runner is None:
            return
        await self.gateway.close_all()
        await self._runner.cleanup()
        self._runner = None
        if self._autosave is not None:
            self.notifier.on_change = None
            await self._autosave.stop()
            # Synchronous on purpose: the last state is on disk before close() returns.
            try:
                self.save_world()
            except OSError as exc:
                _log.error("could not save the sandbox world to %s: %s", self.world_path, exc.strerror or exc)

    # --- the world on disk (sandbox.world_file.WorldAutosave) ----------------

    def save_world(self) -> None:
        """Write the world to ``world_path`` now (atomically; see sandbox.world_file)."""
        if self._autosave is None:
            raise SandboxError("this sandbox keeps its world in memory only (no world_path)")
        self._autosave.save_now()

    async def __aenter__(self) -> Sandbox:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("sandbox not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return self.base_url.replace("http://", "ws://", 1) + "/gateway"

    @property
    def cdn_base(self) -> str:
        return f"{self.base_url}/cdn"

    def new_id(self) -> int:
        return self.ids.next()

    # --- world building (sandbox.world.World) --------------------------------

    def add_guild(self, name: str, *, owner: str | User | None = None, shard: tuple[int, int] | None = None) -> Guild:
        """``shard=(shard_id, num_shards)`` picks an id that falls on that shard."""
        return self.world.add_guild(name, owner=owner, shard=shard)

    def remove_bot(self, guild: GuildRef) -> None:
        self.world.remove_bot(guild)

    def add_bot(self, guild: GuildRef) -> Member:
        return self.world.add_bot(guild)

    def add_channel(self, guild: GuildRef, name: str, *, topic: str | None = None, type: int = 0) -> Channel:
        return self.world.add_channel(guild, name, topic=topic, type=type)

    def add_role(self, guild: GuildRef, name: str, permissions: PermissionsLike = 0, *, color: int = 0) -> Role:
        return self.world.add_role(guild, name, permissions, color=color)

    def add_member(
        self,
        guild: GuildRef,
        name: str,
        *,
        permissions: PermissionsLike = None,
        roles: Iterable[Role | str | int] = (),
        bot: bool = False,
        nick: str | None = None,
        global_name: str | None = None,
    ) -> Member:
        return self.world.add_member(
            guild, name, permissions=permissions, roles=roles, bot=bot, nick=nick, global_name=global_name
        )

    def set_member_roles(self, member: Member, roles: Iterable[Role | str | int]) -> None:
        self.world.set_member_roles(member, roles)

    def set_role_permissions(self, role: Role, permissions: PermissionsLike = None, **flags: bool) -> int:
        return self.world.set_role_permissions(role, permissions, **flags)

    def set_bot_permissions(self, guild: GuildRef, permissions: PermissionsLike = None, **flags: bool) -> int:
        return self.world.set_bot_permissions(guild, permissions, **flags)

    def set_channel_overwrite(
        self,
        channel: Channel,
        target: Role | Member,
        *,
        allow: PermissionsLike = 0,
        deny: PermissionsLike = 0,
    ) -> None:
        self.world.set_channel_overwrite(channel, target, allow=allow, deny=deny)

    # --- lookups -----------------------------------------------------------

    def find_user(self, ref: User | Member | int | str) -> User | None:
        if isinstance(ref, User):
            return ref
        if isinstance(ref, Member):
            return ref.user
        if isinstance(ref, int):
            return self.users.get(ref)
        text = ref.strip()
        m = re.fullmatch(r"<@!?(\d+)>", text)
        if m:
            return self.users.get(int(m.group(1)))
        text = text.lstrip("@")
        if text.isdigit():
            return self.users.get(int(text))
        return next((u for u in self.users.values() if u.username == text), None)

    def has_bot(self, guild: GuildRef) -> bool:
        return self.bot_user.id in self.guild(guild).members

    def bot_guilds(self) -> list[Guild]:
        """The guilds the bot is a member of: the ones READY lists."""
        return [g for g in self.guilds.values() if self.bot_user.id in g.members]

    def bot_role(self, guild: GuildRef) -> Role:
        g = self.guild(guild)
        return next(r for r in g.roles.values() if r.bot_id == self.bot_user.id)

    def bot_member(self, guild: GuildRef) -> Member:
        return self.guild(guild).members[self.bot_user.id]

    def guild(self, ref: GuildRef) -> Guild:
        """Find a guild by object, id, name, slug ("fork-town") or creation index ("guild2")."""
        if isinstance(ref, Guild):
            return ref
        if isinstance(ref, int):
            if ref in self.guilds:
                return self.guilds[ref]
            raise SandboxError(f"no guild with id {ref}")
        text = ref.strip()
        guilds = list(self.guilds.values())
        for g in guilds:
            if g.name == text:
                return g
        for g in guilds:
            if g.name.lower() == text.lower() or _slug(g.name) == _slug(text):
                return g
        m = re.fullmatch(r"guild(\d+)", text.lower())
        if m and 1 <= int(m.group(1)) <= len(guilds):
            return guilds[int(m.group(1)) - 1]
        if text.isdigit() and int(text) in self.guilds:
            return self.guilds[int(text)]
        raise SandboxError(f"no guild {ref!r} (known: {', '.join(g.name for g in guilds) or 'none'})")

    def channel(self, guild: GuildRef, ref: ChannelRef) -> Channel:
        g = self.guild(guild)
        channel = g.find_channel(ref)
        if channel is None:
            raise SandboxError(
                f"no channel {ref!r} in {g.name} (known: {', '.join('#' + c.name for c in g.channels.values())})"
            )
        return channel

    def member(self, guild: GuildRef, ref: MemberRef) -> Member:
        g = self.guild(guild)
        member = g.find_member(ref)
        if member is None:
            raise SandboxError(f"{ref!r} is not a member of {g.name}")
        return member

    def message(self, ref: Message | int) -> Message:
        if isinstance(ref, Message):
            return ref
        msg = self.messages.get(ref)
        if msg is None:
            raise SandboxError(f"no message {ref}")
        return msg

    # --- messages and webhooks (sandbox.messaging.Messaging) ------------------

    def create_message(
        self,
        channel: Channel,
        author: User,
        kind: str,
        payload: Mapping[str, Any],
        files: list[UploadedFile],
        *,
        source: str,
        webhook_id: int | None = None,
        application_id: int | None = None,
        interaction: InteractionHandle | None = None,
        type_: int = 0,
        flags: int | None = None,
        allowed_flags: int = SUPPRESS_EMBEDS | COMPONENTS_V2,
        visible_to: int | None = None,
    ) -> Message:
        return self.messaging.create_message(
            channel,
            author,
            kind,
            payload,
            files,
            source=source,
            webhook_id=webhook_id,
            application_id=application_id,
            interaction=interaction,
            type_=type_,
            flags=flags,
            allowed_flags=allowed_flags,
            visible_to=visible_to,
        )

    def edit_message(
        self,
        msg: Message,
        payload: Mapping[str, Any],
        files: list[UploadedFile],
        *,
        source: str,
        validate: Callable[[dict[str, Any]], None] | None = None,
        clear_loading: bool = False,
    ) -> Message:
        return self.messaging.edit_message(
            msg, payload, files, source=source, validate=validate, clear_loading=clear_loading
        )

    def delete_message(self, msg: Message) -> None:
        self.messaging.delete_message(msg)

    def create_webhook(self, channel: Channel, name: str, *, creator: User | None = None) -> Webhook:
        return self.messaging.create_webhook(channel, name, creator=creator)

    def delete_webhook(self, webhook: Webhook | int) -> None:
        self.messaging.delete_webhook(webhook)

    # --- observation -----------------------------------------------------------

    def webhooks_in(self, channel: Channel, *, include_deleted: bool = False) -> list[Webhook]:
        return [w for w in self.webhooks.values() if w.channel is channel and (include_deleted or not w.deleted)]

    def webhook_feed(self, channel: Channel | None = None) -> list[Message]:
        """Messages posted through channel webhooks (not interaction webhooks), oldest first."""
        source = channel.messages if channel is not None else sorted(self.messages.values(), key=lambda m: m.id)
        return [m for m in source if m.kind == KIND_WEBHOOK and not m.deleted]

    def channel_messages(
        self,
        channel: Channel,
        *,
        include_ephemeral: bool = True,
        include_deleted: bool = False,
        kind: str | None = None,
    ) -> list[Message]:
        return [
            m
            for m in channel.messages
            if (include_ephemeral or not m.ephemeral)
            and (include_deleted or not m.deleted)
            and (kind is None or m.kind == kind)
        ]

    def find_requests(self, pattern: str | None = None, *, status: int | None = None) -> list[RequestRecord]:
        """Requests matching "METHOD /path-glob" or "METHOD /route/{template}" (see records.route_pattern_matches)."""
        return [
            r
            for r in self.requests
            if (pattern is None or r.matches(pattern)) and (status is None or r.status == status)
        ]

    def add_listener(self, listener: Callable[[SandboxEvent], None]) -> None:
        self.notifier.add_listener(listener)

    def remove_listener(self, listener: Callable[[SandboxEvent], None]) -> None:
        self.notifier.remove_listener(listener)

    def emit_interaction_event(self, kind: str, handle: InteractionHandle) -> None:
        self.notifier.notify(SandboxEvent(kind, interaction=handle))

    async def wait_until(
        self,
        predicate: Callable[[], T | None],
        timeout: float = 5.0,
        describe: str | Callable[[], str] = "condition",
    ) -> T:
        return await self.notifier.wait_until(predicate, timeout, describe)

    # --- gateway lifecycle -------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Every shard of the bot's newest IDENTIFY count was sent READY and its guilds."""
        return self.gateway.ready_for()

    async def wait_until_ready(self, timeout: float = 10.0, *, shard_ids: Iterable[int] | None = None) -> None:
        """Wait until every shard of the bot (the shard count of its newest IDENTIFY; an unsharded
        bot is shard [0, 1]) identified and was sent READY plus the GUILD_CREATE of each guild it
        owns.  ``shard_ids``: only those shards (a process that runs some of them)."""
        wanted = None if shard_ids is None else list(shard_ids)
        what = "the bot" if wanted is None else f"shards {wanted}"
        await self.wait_until(lambda: self.gateway.ready_for(wanted), timeout, f"{what} to IDENTIFY and receive READY")

    def recommended_shards(self) -> int:
        """GET /gateway/bot's ``shards``: the configured count, or more for many guilds."""
        guilds = len(self.bot_guilds())
        return max(self.shard_count, -(-guilds // GUILDS_PER_RECOMMENDED_SHARD))

    def shard_of(self, guild: GuildRef, num_shards: int | None = None) -> int:
        """The shard that owns ``guild``: ``(guild_id >> 22) % num_shards``, by default with the
        bot's newest IDENTIFY count (before any IDENTIFY, the configured ``shard_count``)."""
        if num_shards is None:
            newest = self.gateway.newest
            num_shards = newest.num_shards if newest is not None else self.shard_count
        return shard_for(self.guild(guild).id, num_shards)

    async def wait_commands_synced(
        self,
        guild: GuildRef | None = None,
        *,
        names: Iterable[str] | None = None,
        timeout: float = 10.0,
    ) -> list[dict[str, Any]]:
        """Wait for a global (or guild) bulk overwrite/upsert containing ``names``; returns the commands."""
        gid = self.guild(guild).id if guild is not None else None
        wanted = set(names or ())

        def synced() -> bool:
            count = self.commands.global_syncs if gid is None else self.commands.guild_syncs.get(gid, 0)
            return count > 0 and wanted <= {c["name"] for c in self.commands.scope(gid)}

        where = "global" if gid is None else f"guild {gid}"
        await self.wait_until(synced, timeout, f"{where} command sync of {sorted(wanted) or 'anything'}")
        return list(self.commands.scope(gid))

    async def disconnect_gateway(self, code: int = 4000, *, shard_id: int | None = None) -> None:
        """Close the bot's websocket (of ``shard_id``) with a resumable code; pair with wait_resumed()."""
        self._resumes_at_disconnect = self.gateway.resume_count
        await self.gateway.disconnect(code, shard_id)

    async def wait_resumed(self, timeout: float = 10.0) -> None:
        target = self._resumes_at_disconnect + 1
        await self.wait_until(
            lambda: self.gateway.resume_count >= target and self.gateway.connected,
            timeout,
            "the bot to RESUME its gateway session",
        )

    async def invalidate_session(self, *, resumable: bool = False, shard_id: int | None = None) -> None:
        await self.gateway.invalidate_session(resumable, shard_id)

    async def request_reconnect(self, *, shard_id: int | None = None) -> None:
        await self.gateway.request_reconnect(shard_id)

    # --- simulated user actions (sandbox.actions.UserActions) ----------------------

    async def send_message(self, guild: GuildRef, channel: ChannelRef, member: MemberRef, content: str) -> Message:
        return await self.actions.send_message(guild, channel, member, content)

    async def send_dm(self, user: User | Member | int | str, content: str) -> dict[str, Any]:
        """A direct message to the bot (MESSAGE_CREATE without a guild, to shard 0); not stored."""
        return await self.actions.send_dm(user, content)

    async def invoke(
        self,
        guild: GuildRef,
        channel: ChannelRef,
        member: MemberRef,
        command: str,
        options: Mapping[str, Any] | None = None,
        *,
        check_permissions: bool = True,
        validate: bool = True,
    ) -> InteractionHandle:
        return await self.actions.invoke(
            guild, channel, member, command, options, check_permissions=check_permissions, validate=validate
        )

    async def autocomplete(
        self,
        guild: GuildRef,
        channel: ChannelRef,
        member: MemberRef,
        command: str,
        options: Mapping[str, Any] | None = None,
        *,
        focused: str,
        timeout: float = 3.0,
        wait: bool = True,
    ) -> InteractionHandle:
        return await self.actions.autocomplete(
            guild, channel, member, command, options, focused=focused, timeout=timeout, wait=wait
        )

    async def click(
        self,
        message: Message | int,
        custom_id: str | None = None,
        member: MemberRef | None = None,
        *,
        label: str | None = None,
    ) -> InteractionHandle:
        return await self.actions.click(message, custom_id, member, label=label)

    async def select(
        self,
        message: Message | int,
        custom_id: str,
        values: Iterable[str],
        member: MemberRef,
    ) -> InteractionHandle:
        return await self.actions.select(message, custom_id, values, member)

    async def submit_modal(
        self,
        handle: InteractionHandle,
        values: Mapping[str, str],
        member: MemberRef | None = None,
    ) -> InteractionHandle:
        return await self.actions.submit_modal(handle, values, member)

    # --- static endpoints -----------------------------------------------------------

    async def _serve_attachment(self, request: web.Request) -> web.StreamResponse:
        try:
            attachment = self.attachments[int(request.match_info["attachment_id"])]
        except (KeyError, ValueError):
            raise web.HTTPNotFound() from None
        return web.Response(body=attachment.data, content_type=attachment.content_type or "application/octet-stream")

    async def _serve_cdn(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=_PNG_1X1, content_type="image/png")

    async def _serve_index(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {
                "api_base": self.api_base,
                "gateway_url": self.gateway_url,
                "application_id": str(self.application_id),
                "guilds": [{"id": str(g.id), "name": g.name} for g in self.guilds.values()],
                "uptime": time.monotonic(),
            }
        )
