"""The Sandbox: a loopback-only Discord look-alike that a real discord.py client connects to.

State lives in plain objects (sandbox.models); REST handlers (sandbox.rest) and
the gateway (sandbox.gateway) mutate it, and tests or the terminal observe it
and trigger user actions (slash commands, clicks, modals, messages) through
the methods below.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mimetypes
import re
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from aiohttp import web

from . import interactions as ix
from .commands import CommandRegistry
from .discord_py import is_loopback_host
from .errors import ApiError, SandboxError
from .faults import FaultInjector
from .gateway import GUILD_MEMBERS, GUILD_MESSAGES, GUILD_WEBHOOKS, GUILDS, MESSAGE_CONTENT, Gateway, GatewaySession
from .ids import SnowflakeGenerator, bot_token_for, iso_now
from .ids import interaction_token as new_interaction_token
from .ids import webhook_token as new_webhook_token
from .interactions import InteractionHandle, OptionBuilder, nest_options, resolve_leaf, split_path
from .models import (
    COMPONENTS_V2,
    EPHEMERAL,
    KIND_USER,
    KIND_WEBHOOK,
    LOADING,
    SUPPRESS_EMBEDS,
    Attachment,
    Channel,
    Guild,
    Member,
    Message,
    Overwrite,
    Role,
    User,
    Webhook,
)
from .permissions import (
    ALL_PERMISSIONS,
    DEFAULT_BOT,
    DEFAULT_EVERYONE,
    PermissionsLike,
    apply_flags,
    to_permission_value,
)
from .records import ChangeNotifier, RequestRecord, SandboxEvent, UploadedFile
from .rest import RestApi
from .world_file import WorldWriter, read_world, remove_leftovers, restore

_log = logging.getLogger(__name__)

T = TypeVar("T")

GuildRef = Guild | int | str
ChannelRef = Channel | int | str
MemberRef = Member | User | int | str

# A 1x1 transparent PNG served for every CDN asset (avatars, icons) so nothing leaves the machine.
_PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6300010000050001"
    "0d0a2db40000000049454e44ae426082"
)

_FILE_FIELD = re.compile(r"^files\[(\d+)\]$")

# Changes come in bursts (a reply, its edits, the bot's next request): one save a second at most.
WORLD_SAVE_DELAY_S = 1.0


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
    ) -> None:
        """``world_path``: keep the world in this JSON file (sandbox.world_file): load it now if
        it exists (``WorldFileError`` if it cannot be used), save it after changes and at
        ``close()``.  Without it the world lives in memory only, as tests want."""
        _check_loopback(host)
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

        # Modern Discord apps share one id between the application and its bot user.
        bot_id = application_id or self.ids.next()
        self.application_id = bot_id
        self.bot_user = self._register_user(User(id=bot_id, username=bot_name, bot=True))
        self.app_owner = self._register_user(User(id=self.ids.next(), username="app-developer"))
        self.bot_token = bot_token or bot_token_for(bot_id)
        self.bot_token_generated = bot_token is None
        self.commands = CommandRegistry(self.application_id, self.new_id)
        self.world_path = world_path
        self._world_writer = WorldWriter(world_path) if world_path is not None else None
        self.world_restored = False
        self._world_dirty = False
        self._world_save_task: asyncio.Task[None] | None = None
        if world_path is not None:
            remove_leftovers(world_path)
            saved = read_world(world_path)
            if saved is not None:
                restore(self, saved, world_path)
                self.world_restored = True
            self.notifier.on_change = self._world_changed
        self.gateway = Gateway(self, heartbeat_interval_ms=heartbeat_interval_ms)
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
            attachment.url = self._attachment_url(attachment.id, attachment.filename)
        _log.info("sandbox listening on %s (gateway %s)", self.api_base, self.gateway_url)
        return self

    async def close(self) -> None:
        if self._runner is None:
            return
        await self.gateway.close_all()
        await self._runner.cleanup()
        self._runner = None
        if self.world_path is not None:
            self.notifier.on_change = None
            if self._world_save_task is not None:
                self._world_save_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._world_save_task
            # Synchronous on purpose: the last state is on disk before close() returns.
            try:
                self.save_world()
            except OSError as exc:
                _log.error("could not save the sandbox world to %s: %s", self.world_path, exc.strerror or exc)

    # --- the world on disk ----------------------------------------------------

    def save_world(self) -> None:
        """Write the world to ``world_path`` now (atomically; see sandbox.world_file)."""
        if self._world_writer is None:
            raise SandboxError("this sandbox keeps its world in memory only (no world_path)")
        self._world_dirty = False
        self._world_writer.write(*self._world_writer.take(self))

    def _world_changed(self) -> None:
        self._world_dirty = True
        if self._world_save_task is not None and not self._world_save_task.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # changed outside an event loop (building a world before start): saved later
        self._world_save_task = loop.create_task(self._save_world_soon(), name="sandbox-world-save")

    async def _save_world_soon(self) -> None:
        writer = self._world_writer
        assert writer is not None
        while self._world_dirty:
            await asyncio.sleep(WORLD_SAVE_DELAY_S)
            self._world_dirty = False
            # The snapshot (already JSON text) is made here, on the loop; only the write leaves it.
            generation, data = writer.take(self)
            try:
                await asyncio.to_thread(writer.write, generation, data)
            except OSError as exc:
                _log.warning("could not save the sandbox world to %s: %s", writer.path, exc.strerror or exc)

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

    # --- world building ---------------------------------------------------

    def _register_user(self, user: User) -> User:
        self.users[user.id] = user
        return user

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

    def add_guild(self, name: str, *, owner: str | User | None = None) -> Guild:
        guild = Guild(id=self.new_id(), name=name)
        guild.roles[guild.id] = Role(id=guild.id, guild_id=guild.id, name="@everyone", permissions=DEFAULT_EVERYONE)
        self._join_bot(guild)
        owner_user = owner if isinstance(owner, User) else self._user_named(owner or "server-owner", bot=False)
        guild.owner_id = owner_user.id
        guild.members[owner_user.id] = Member(user=owner_user, guild=guild)
        self.guilds[guild.id] = guild
        session = self.gateway.current
        if session is not None:
            self.gateway.dispatch("GUILD_CREATE", self.guild_create_payload(guild, session, joined=True), intent=GUILDS)
        self.notifier.notify()
        return guild

    def _join_bot(self, guild: Guild) -> Member:
        # Discord gives a bot its own managed role when it joins, and deletes it when the bot leaves.
        bot_role = Role(
            id=self.new_id(),
            guild_id=guild.id,
            name=self.bot_user.username,
            permissions=DEFAULT_BOT,
            position=1,
            managed=True,
            bot_id=self.bot_user.id,
        )
        guild.roles[bot_role.id] = bot_role
        member = Member(user=self.bot_user, guild=guild, role_ids=[bot_role.id])
        guild.members[self.bot_user.id] = member
        guild.joined_at = iso_now()
        return member

    def has_bot(self, guild: GuildRef) -> bool:
        return self.bot_user.id in self.guild(guild).members

    def bot_guilds(self) -> list[Guild]:
        """The guilds the bot is a member of: the ones READY lists."""
        return [g for g in self.guilds.values() if self.bot_user.id in g.members]

    def remove_bot(self, guild: GuildRef) -> None:
        """Kick the bot from ``guild`` (to the bot this looks exactly like the guild being deleted).

        As on Discord: the bot's managed role goes, so do the webhooks the bot created (Discord
        removes an app's webhooks with it; its docs do not say so, bot developers report it), the
        bot gets GUILD_DELETE without an ``unavailable`` field (the sign of a removal rather than an
        outage), the guild is left out of later READYs, and REST calls about it answer 403 Missing
        Access.  Everything else in the guild (channels, messages, other webhooks) stays.
        """
        g = self.guild(guild)
        member = g.members.pop(self.bot_user.id, None)
        if member is None:
            raise SandboxError(f"the bot is not in {g.name}")
        for role_id in member.role_ids:
            role = g.roles.get(role_id)
            if role is not None and role.managed and role.bot_id == self.bot_user.id:
                del g.roles[role_id]
        for webhook in self.webhooks.values():
            if webhook.channel.guild is g and webhook.creator is self.bot_user and not webhook.deleted:
                webhook.deleted = True
                self.notifier.notify(SandboxEvent("webhook_delete", detail=webhook))
        self.gateway.dispatch("GUILD_DELETE", {"id": str(g.id)}, intent=GUILDS)
        self.notifier.notify()

    def add_bot(self, guild: GuildRef) -> Member:
        """Add the bot (back) to ``guild``, as when someone authorizes it there: a new managed role,
        then GUILD_CREATE with the whole guild."""
        g = self.guild(guild)
        if self.bot_user.id in g.members:
            raise SandboxError(f"the bot is already in {g.name}")
        member = self._join_bot(g)
        session = self.gateway.current
        if session is not None:
            self.gateway.dispatch("GUILD_CREATE", self.guild_create_payload(g, session, joined=True), intent=GUILDS)
        self.notifier.notify()
        return member

    def _user_named(self, name: str, *, bot: bool, global_name: str | None = None) -> User:
        # The same name means the same person across guilds, so "alice" in two servers shares one id.
        existing = next((u for u in self.users.values() if u.username == name and u.bot == bot), None)
        if existing is not None:
            return existing
        return self._register_user(User(id=self.new_id(), username=name, bot=bot, global_name=global_name))

    def add_channel(self, guild: GuildRef, name: str, *, topic: str | None = None, type: int = 0) -> Channel:
        """A channel; ``type`` is Discord's channel type (0 text, 2 voice, 4 category)."""
        g = self.guild(guild)
        if g.find_channel(name) is not None:
            raise SandboxError(f"#{name} already exists in {g.name}")
        channel = Channel(id=self.new_id(), guild=g, name=name, position=len(g.channels), topic=topic, type=type)
        g.channels[channel.id] = channel
        self.channels[channel.id] = channel
        if g.system_channel_id is None and type == 0:
            g.system_channel_id = channel.id
        self.gateway.dispatch("CHANNEL_CREATE", channel.payload(), intent=GUILDS)
        self.notifier.notify()
        return channel

    def add_role(self, guild: GuildRef, name: str, permissions: PermissionsLike = 0, *, color: int = 0) -> Role:
        g = self.guild(guild)
        role = Role(
            id=self.new_id(),
            guild_id=g.id,
            name=name,
            permissions=to_permission_value(permissions),
            position=len(g.roles),
            color=color,
        )
        g.roles[role.id] = role
        self.gateway.dispatch("GUILD_ROLE_CREATE", {"guild_id": str(g.id), "role": role.payload()}, intent=GUILDS)
        self.notifier.notify()
        return role

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
        """Add a member; ``permissions`` creates a role "<name> perms" granting exactly those.

        The same ``name`` in several guilds is the same Discord user (same id).
        """
        g = self.guild(guild)
        user = self._user_named(name, bot=bot, global_name=global_name)
        if user.id in g.members:
            raise SandboxError(f"{name} is already a member of {g.name}")
        member = Member(user=user, guild=g, role_ids=self._role_ids(g, roles), nick=nick)
        g.members[user.id] = member
        if permissions is not None:
            role = self.add_role(g, f"{name} perms", permissions)
            member.role_ids.append(role.id)
        payload = member.payload()
        payload["guild_id"] = str(g.id)
        self.gateway.dispatch("GUILD_MEMBER_ADD", payload, intent=GUILD_MEMBERS)
        self.notifier.notify()
        return member

    def set_member_roles(self, member: Member, roles: Iterable[Role | str | int]) -> None:
        member.role_ids = self._role_ids(member.guild, roles)
        self._member_updated(member)

    @staticmethod
    def _role_ids(g: Guild, roles: Iterable[Role | str | int]) -> list[int]:
        ids: list[int] = []
        for ref in roles:
            role = g.find_role(ref)
            if role is None:
                raise SandboxError(f"no role {ref!r} in {g.name}")
            ids.append(role.id)
        return ids

    def _member_updated(self, member: Member) -> None:
        payload = member.payload()
        payload["guild_id"] = str(member.guild.id)
        self.gateway.dispatch("GUILD_MEMBER_UPDATE", payload, intent=GUILD_MEMBERS)
        self.notifier.notify()

    def set_role_permissions(self, role: Role, permissions: PermissionsLike = None, **flags: bool) -> int:
        if permissions is not None:
            role.permissions = to_permission_value(permissions)
        if flags:
            role.permissions = apply_flags(role.permissions, flags)
        self.gateway.dispatch(
            "GUILD_ROLE_UPDATE", {"guild_id": str(role.guild_id), "role": role.payload()}, intent=GUILDS
        )
        self.notifier.notify()
        return role.permissions

    def bot_role(self, guild: GuildRef) -> Role:
        g = self.guild(guild)
        return next(r for r in g.roles.values() if r.bot_id == self.bot_user.id)

    def set_bot_permissions(self, guild: GuildRef, permissions: PermissionsLike = None, **flags: bool) -> int:
        """Set the bot's managed role: an exact value, and/or flag toggles like ``manage_webhooks=False``."""
        return self.set_role_permissions(self.bot_role(guild), permissions, **flags)

    def set_channel_overwrite(
        self,
        channel: Channel,
        target: Role | Member,
        *,
        allow: PermissionsLike = 0,
        deny: PermissionsLike = 0,
    ) -> None:
        kind = 0 if isinstance(target, Role) else 1
        channel.overwrites[target.id] = Overwrite(
            id=target.id, type=kind, allow=to_permission_value(allow), deny=to_permission_value(deny)
        )
        self.gateway.dispatch("CHANNEL_UPDATE", channel.payload(), intent=GUILDS)
        self.notifier.notify()

    def bot_member(self, guild: GuildRef) -> Member:
        return self.guild(guild).members[self.bot_user.id]

    # --- lookups -----------------------------------------------------------

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

    # --- payloads used by the gateway and REST -----------------------------

    def application_payload(self) -> dict[str, Any]:
        return {
            "id": str(self.application_id),
            "name": self.bot_user.username,
            "icon": None,
            "description": "Sandbox application",
            "summary": "",
            "type": None,
            "hook": True,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "flags": 0,
            "owner": self.app_owner.payload(),
            "team": None,
            "bot": self.bot_user.payload(),
            "rpc_origins": [],
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "tags": [],
            "approximate_guild_count": len(self.guilds),
        }

    def ready_payload(self, session: GatewaySession) -> dict[str, Any]:
        user = self.bot_user.payload()
        user.update({"verified": True, "mfa_enabled": False, "email": None, "locale": "en-US"})
        data: dict[str, Any] = {
            "v": 10,
            "user": user,
            "guilds": [{"id": str(g.id), "unavailable": True} for g in self.bot_guilds()],
            "session_id": session.session_id,
            "session_type": "normal",
            # discord.py reconnects (and RESUMEs) to this URL, so it must point back at the sandbox.
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(self.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "user_settings": {},
            "geo_ordered_rtc_regions": [],
            "auth": {},
        }
        if session.shard is not None:
            data["shard"] = session.shard
        return data

    def guild_create_payload(self, guild: Guild, session: GatewaySession, *, joined: bool = False) -> dict[str, Any]:
        # Without the GUILD_MEMBERS intent Discord only includes the bot itself.
        if session.has_intent(GUILD_MEMBERS):
            members = list(guild.members.values())
        else:
            members = [guild.members[self.bot_user.id]]
        payload = guild.payload(members=members)
        if joined:
            # Discord leaves ``unavailable`` out when the bot just joined (``false`` means "available
            # again"): discord.py tells on_guild_join from on_guild_available by it.
            payload.pop("unavailable", None)
        return payload

    def _message_event_payload(self, msg: Message, session: GatewaySession) -> dict[str, Any]:
        data = msg.payload()
        mentioned = any(m.id == self.bot_user.id for m in msg.mentioned_users())
        if not session.has_intent(MESSAGE_CONTENT) and msg.author.id != self.bot_user.id and not mentioned:
            # MESSAGE_CONTENT is privileged: without it Discord blanks other users' message bodies.
            data.update(content="", embeds=[], attachments=[], components=[])
        return data

    def _dispatch_message(self, event: str, msg: Message) -> None:
        session = self.gateway.current
        # Like Discord, send nothing to a bot that did not ask for message events
        # (and skip building the payload: bursts of replies are a hot path).
        if session is None or msg.ephemeral or not session.has_intent(GUILD_MESSAGES):
            return
        self.gateway.dispatch(event, self._message_event_payload(msg, session), intent=GUILD_MESSAGES)

    # --- messages ------------------------------------------------------------

    def store_attachment(
        self,
        channel: Channel,
        filename: str,
        data: bytes,
        content_type: str | None = None,
        description: str | None = None,
    ) -> Attachment:
        attachment_id = self.new_id()
        if not content_type or content_type == "application/octet-stream":
            # discord.py uploads everything as octet-stream; Discord derives the type from the name.
            content_type = mimetypes.guess_type(filename)[0] or content_type
        attachment = Attachment(
            id=attachment_id,
            filename=filename,
            data=data,
            content_type=content_type,
            url=self._attachment_url(attachment_id, filename),
            description=description,
        )
        self.attachments[attachment_id] = attachment
        return attachment

    def _attachment_url(self, attachment_id: int, filename: str) -> str:
        return f"{self.base_url}/attachments/{attachment_id}/{quote(filename)}"

    def _attachments_from(
        self,
        channel: Channel,
        entries: Any,
        files: list[UploadedFile],
        existing: list[Attachment],
    ) -> list[Attachment]:
        uploads: dict[int, UploadedFile] = {}
        for i, upload in enumerate(files):
            m = _FILE_FIELD.match(upload.field_name)
            uploads[int(m.group(1)) if m else i] = upload
        if not isinstance(entries, list):
            new = [self.store_attachment(channel, u.filename, u.data, u.content_type) for u in uploads.values()]
            return list(existing) + new
        by_id = {a.id: a for a in existing}
        result: list[Attachment] = []
        for entry in entries:
            try:
                ref = int(entry.get("id"))
            except (TypeError, ValueError):
                continue
            if ref in by_id:
                kept = by_id[ref]
                if entry.get("description") is not None:
                    kept.description = entry["description"]
                result.append(kept)
            elif ref in uploads:
                upload = uploads[ref]
                result.append(
                    self.store_attachment(
                        channel,
                        entry.get("filename") or upload.filename,
                        upload.data,
                        upload.content_type,
                        entry.get("description"),
                    )
                )
        return result

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
        if flags is None:
            flags = int(payload.get("flags") or 0) & allowed_flags
        msg = Message(
            id=self.new_id(),
            channel=channel,
            author=author,
            kind=kind,
            content=str(payload.get("content") or ""),
            embeds=[dict(e, type=e.get("type", "rich")) for e in (payload.get("embeds") or [])],
            components=list(payload.get("components") or []),
            flags=flags,
            attachments=self._attachments_from(channel, payload.get("attachments"), files, []),
            tts=bool(payload.get("tts")),
            type=type_,
            webhook_id=webhook_id,
            application_id=application_id,
            interaction=interaction,
            visible_to=visible_to if flags & EPHEMERAL else None,
            message_reference=(
                {
                    "type": 0,
                    "message_id": str(payload["message_reference"].get("message_id")),
                    "channel_id": str(channel.id),
                    "guild_id": str(channel.guild.id),
                }
                if payload.get("message_reference")
                else None
            ),
        )
        msg.record_revision(source)
        channel.messages.append(msg)
        self.messages[msg.id] = msg
        self._dispatch_message("MESSAGE_CREATE", msg)
        self.notifier.notify(SandboxEvent("message_create", message=msg, interaction=interaction))
        return msg

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
        if validate is not None:
            validate(dict(payload))
        was_loading = msg.loading
        content = msg.content
        embeds = msg.embeds
        components = msg.components
        flags = msg.flags
        attachments = msg.attachments
        if "content" in payload:
            content = str(payload.get("content") or "")
        if "embeds" in payload:
            embeds = [dict(e, type=e.get("type", "rich")) for e in (payload.get("embeds") or [])]
        if "components" in payload:
            components = list(payload.get("components") or [])
        if payload.get("flags") is not None:
            # Ephemerality and the loading state are fixed at creation; edits may only toggle these.
            mutable = SUPPRESS_EMBEDS | COMPONENTS_V2
            flags = (flags & ~mutable) | (int(payload["flags"]) & mutable)
        if "attachments" in payload or files:
            attachments = self._attachments_from(msg.channel, payload.get("attachments"), files, msg.attachments)
        if clear_loading:
            flags &= ~LOADING
        if not (content or embeds or components or attachments) and not (flags & LOADING) and not msg.deleted:
            raise ApiError(400, 50006, "Cannot send an empty message")
        msg.content, msg.embeds, msg.components, msg.flags, msg.attachments = (
            content,
            embeds,
            components,
            flags,
            attachments,
        )
        # Discord does not mark the first edit of a deferred "thinking" message as an edit.
        if not was_loading:
            msg.edited_at = iso_now()
        msg.record_revision(source)
        self._dispatch_message("MESSAGE_UPDATE", msg)
        self.notifier.notify(SandboxEvent("message_update", message=msg, interaction=msg.interaction))
        return msg

    def delete_message(self, msg: Message) -> None:
        msg.deleted = True
        if not msg.ephemeral:
            self.gateway.dispatch(
                "MESSAGE_DELETE",
                {"id": str(msg.id), "channel_id": str(msg.channel.id), "guild_id": str(msg.guild.id)},
                intent=GUILD_MESSAGES,
            )
        self.notifier.notify(SandboxEvent("message_delete", message=msg, interaction=msg.interaction))

    async def send_message(self, guild: GuildRef, channel: ChannelRef, member: MemberRef, content: str) -> Message:
        """A simulated user posts a plain message (delivered to the bot as MESSAGE_CREATE)."""
        g = self.guild(guild)
        ch = self.channel(g, channel)
        m = self.member(g, member)
        msg = self.create_message(ch, m.user, KIND_USER, {"content": content}, [], source="user")
        await asyncio.sleep(0)
        return msg

    # --- webhooks --------------------------------------------------------------

    def create_webhook(self, channel: Channel, name: str, *, creator: User | None = None) -> Webhook:
        webhook = Webhook(
            id=self.new_id(),
            token=new_webhook_token(),
            channel=channel,
            name=name,
            creator=creator or self.bot_user,
        )
        self.webhooks[webhook.id] = webhook
        self.gateway.dispatch(
            "WEBHOOKS_UPDATE", {"guild_id": str(channel.guild.id), "channel_id": str(channel.id)}, intent=GUILD_WEBHOOKS
        )
        self.notifier.notify(SandboxEvent("webhook_create", detail=webhook))
        return webhook

    def delete_webhook(self, webhook: Webhook | int) -> None:
        """Delete a webhook (as an admin would); later executions get 404 Unknown Webhook."""
        wh = webhook if isinstance(webhook, Webhook) else self.webhooks[webhook]
        wh.deleted = True
        self.gateway.dispatch(
            "WEBHOOKS_UPDATE",
            {"guild_id": str(wh.channel.guild.id), "channel_id": str(wh.channel.id)},
            intent=GUILD_WEBHOOKS,
        )
        self.notifier.notify(SandboxEvent("webhook_delete", detail=wh))

    def webhooks_in(self, channel: Channel, *, include_deleted: bool = False) -> list[Webhook]:
        return [w for w in self.webhooks.values() if w.channel is channel and (include_deleted or not w.deleted)]

    def webhook_feed(self, channel: Channel | None = None) -> list[Message]:
        """Messages posted through channel webhooks (not interaction webhooks), oldest first."""
        source = channel.messages if channel is not None else sorted(self.messages.values(), key=lambda m: m.id)
        return [m for m in source if m.kind == KIND_WEBHOOK and not m.deleted]

    # --- observation -----------------------------------------------------------

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
        session = self.gateway.current
        return session is not None and session.ready

    async def wait_until_ready(self, timeout: float = 10.0) -> None:
        """Wait until the bot identified and was sent READY plus every GUILD_CREATE."""
        await self.wait_until(lambda: self.ready, timeout, "the bot to IDENTIFY and receive READY")

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

    async def disconnect_gateway(self, code: int = 4000) -> None:
        """Close the bot's websocket with a resumable code; pair with wait_resumed()."""
        self._resumes_at_disconnect = self.gateway.resume_count
        await self.gateway.disconnect(code)

    async def wait_resumed(self, timeout: float = 10.0) -> None:
        target = self._resumes_at_disconnect + 1
        await self.wait_until(
            lambda: self.gateway.resume_count >= target and self.gateway.connected,
            timeout,
            "the bot to RESUME its gateway session",
        )

    async def invalidate_session(self, *, resumable: bool = False) -> None:
        await self.gateway.invalidate_session(resumable)

    async def request_reconnect(self) -> None:
        await self.gateway.request_reconnect()

    # --- simulated user actions -----------------------------------------------------

    def _check_can_use(self, cmd: dict[str, Any], member: Member, channel: Channel, path: str) -> None:
        required = cmd.get("default_member_permissions")
        if required is None:
            return
        perms = member.permissions_in(channel)
        needed = int(required)
        # "0" hides a command from everyone but administrators.
        if (needed == 0 and perms != ALL_PERMISSIONS) or (perms & needed) != needed:
            raise SandboxError(
                f"{member.name} cannot use /{path}: Discord hides it from members lacking permissions {needed}"
            )

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
        """Run a slash command as ``member``: ``invoke(g, ch, alice, "wallet pay", {"member": bob, "amount": 5})``.

        Options are typed from the synced definition (strings are coerced, users/channels/roles
        accept objects, ids or names, attachments accept Upload(...)). Returns immediately after
        dispatching; wait on the handle.

        ``validate=False`` sends what a modified client can send: string, integer, number and
        boolean values exactly as given (any JSON value, out of range, not a choice, of the
        wrong type), required options may be left out, and a channel of any type is accepted.
        The API forwards such interactions to the bot; only the official client checks.
        """
        g = self.guild(guild)
        ch = self.channel(g, channel)
        m = self.member(g, member)
        parts = split_path(command)
        cmd = self.commands.find(g.id, parts[0])
        if cmd is None:
            known = ", ".join(sorted("/" + c["name"] for c in self.commands.visible(g.id))) or "none"
            raise SandboxError(f"/{parts[0]} is not registered in {g.name} (synced commands: {known})")
        path = " ".join(parts)
        if check_permissions:
            self._check_can_use(cmd, m, ch, path)
        chain, leaf = resolve_leaf(cmd, parts)
        builder = OptionBuilder(self, g, ch, m, validate=validate)
        options_payload = nest_options(chain, builder.build(path, leaf, options or {}))
        data: dict[str, Any] = {"id": cmd["id"], "name": cmd["name"], "type": 1}
        if options_payload:
            data["options"] = options_payload
        if builder.resolved:
            data["resolved"] = builder.resolved
        if cmd.get("guild_id"):
            data["guild_id"] = cmd["guild_id"]
        return await self._dispatch_interaction(ix.APPLICATION_COMMAND, g, ch, m, data, command_path=path)

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
        """Send an autocomplete interaction and (by default) wait for the bot's choices (handle.choices)."""
        g = self.guild(guild)
        ch = self.channel(g, channel)
        m = self.member(g, member)
        parts = split_path(command)
        cmd = self.commands.find(g.id, parts[0])
        if cmd is None:
            raise SandboxError(f"/{parts[0]} is not registered in {g.name}")
        path = " ".join(parts)
        chain, leaf = resolve_leaf(cmd, parts)
        definition = next((o for o in leaf if o["name"] == focused), None)
        if definition is None or not definition.get("autocomplete"):
            raise SandboxError(f"/{path}: option {focused!r} does not have autocomplete enabled")
        builder = OptionBuilder(self, g, ch, m)
        options_payload = nest_options(chain, builder.build(path, leaf, options or {}, focused=focused))
        data: dict[str, Any] = {"id": cmd["id"], "name": cmd["name"], "type": 1, "options": options_payload}
        if cmd.get("guild_id"):
            data["guild_id"] = cmd["guild_id"]
        handle = await self._dispatch_interaction(ix.AUTOCOMPLETE, g, ch, m, data, command_path=path)
        if wait:
            await handle.wait_choices(timeout)
        return handle

    def _component_target(self, message: Message | int, member: MemberRef | None) -> tuple[Message, Member]:
        if member is None:
            raise SandboxError("say which member clicks (member=...)")
        msg = self.message(message)
        if msg.deleted:
            raise SandboxError(f"message {msg.id} was deleted")
        m = self.member(msg.guild, member)
        if msg.ephemeral and msg.visible_to not in (None, m.id):
            raise SandboxError(f"{m.name} cannot see ephemeral message {msg.id}")
        return msg, m

    async def click(
        self,
        message: Message | int,
        custom_id: str | None = None,
        member: MemberRef | None = None,
        *,
        label: str | None = None,
    ) -> InteractionHandle:
        """Press a button (by custom_id or label) on a message, as ``member``."""
        msg, m = self._component_target(message, member)
        comp = msg.find_component(custom_id=custom_id, label=label)
        if comp is None or comp.get("type") != 2:
            buttons = [c.get("label") or c.get("custom_id") for c in msg.iter_components() if c.get("type") == 2]
            raise SandboxError(f"no button {custom_id or label!r} on message {msg.id} (buttons: {buttons})")
        if comp.get("disabled"):
            raise SandboxError(f"button {comp.get('label')!r} is disabled")
        if comp.get("style") == 5 or not comp.get("custom_id"):
            raise SandboxError(
                f"button {comp.get('label')!r} is a link button; Discord opens {comp.get('url')} instead"
            )
        data = {"custom_id": comp["custom_id"], "component_type": 2}
        if "id" in comp:
            data["id"] = comp["id"]
        return await self._dispatch_interaction(
            ix.MESSAGE_COMPONENT, msg.guild, msg.channel, m, data, source_message=msg
        )

    async def select(
        self,
        message: Message | int,
        custom_id: str,
        values: Iterable[str],
        member: MemberRef,
    ) -> InteractionHandle:
        """Choose values in a select menu on a message, as ``member``."""
        msg, m = self._component_target(message, member)
        comp = msg.find_component(custom_id=custom_id)
        if comp is None or comp.get("type") not in (3, 5, 6, 7, 8):
            raise SandboxError(f"no select menu {custom_id!r} on message {msg.id}")
        chosen = [str(v) for v in values]
        if comp.get("type") == 3:
            allowed = {o["value"] for o in comp.get("options", [])}
            labels = {o["label"]: o["value"] for o in comp.get("options", [])}
            chosen = [labels.get(v, v) for v in chosen]
            bad = [v for v in chosen if v not in allowed]
            if bad:
                raise SandboxError(f"select {custom_id!r} has no option(s) {bad}")
        lo, hi = comp.get("min_values", 1), comp.get("max_values", 1)
        if not lo <= len(chosen) <= hi:
            raise SandboxError(f"select {custom_id!r} needs between {lo} and {hi} values")
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": comp["type"]}
        if comp["type"] != 3:
            # Entity selects carry ids plus resolved objects, like slash command options.
            builder = OptionBuilder(self, msg.guild, msg.channel, m)
            kind = {5: ix.USER, 6: ix.ROLE, 7: ix.MENTIONABLE, 8: ix.CHANNEL}[comp["type"]]
            chosen = [builder.convert(custom_id, {"type": kind, "name": custom_id}, v, validate=False) for v in chosen]
            data["resolved"] = builder.resolved
        data["values"] = chosen
        return await self._dispatch_interaction(
            ix.MESSAGE_COMPONENT, msg.guild, msg.channel, m, data, source_message=msg
        )

    async def submit_modal(
        self,
        handle: InteractionHandle,
        values: Mapping[str, str],
        member: MemberRef | None = None,
    ) -> InteractionHandle:
        """Fill in and submit the modal the bot opened on ``handle`` (values keyed by custom_id or label)."""
        modal = handle.modal
        if modal is None:
            raise SandboxError(f"{handle!r} did not open a modal")
        if any(h.parent is handle and h.type == ix.MODAL_SUBMIT for h in self.interactions.values()):
            raise SandboxError("that modal was already submitted (Discord closes it on submit)")
        m = self.member(handle.guild, member) if member is not None else handle.member
        used: set[str] = set()

        def pick(comp: dict[str, Any], label: str | None) -> str | None:
            for key in (comp.get("custom_id"), label, comp.get("label")):
                if key is not None and key in values:
                    used.add(key)
                    return values[key]
            return None

        def fill(components: list[dict[str, Any]], label: str | None = None) -> list[dict[str, Any]]:
            out: list[dict[str, Any]] = []
            for comp in components:
                ctype = comp.get("type")
                if ctype == 1:
                    out.append({"type": 1, "components": fill(comp.get("components") or [])})
                elif ctype == 18:
                    inner = fill([comp["component"]], comp.get("label")) if comp.get("component") else []
                    if inner:
                        out.append({"type": 18, "component": inner[0]})
                elif ctype == 4:
                    value = pick(comp, label)
                    if value is None:
                        value = comp.get("value") or ""
                    if comp.get("required", True) and not value:
                        raise SandboxError(
                            f"modal field {comp.get('label') or label or comp['custom_id']!r} is required"
                        )
                    out.append({"type": 4, "custom_id": comp["custom_id"], "value": str(value)})
                elif ctype in (3, 5, 6, 7, 8):
                    value = pick(comp, label)
                    chosen = [] if value is None else ([value] if isinstance(value, str) else list(value))
                    out.append({"type": ctype, "custom_id": comp["custom_id"], "values": chosen})
            return out

        components = fill(modal.get("components") or [])
        unknown_keys = set(values) - used
        if unknown_keys:
            raise SandboxError(f"modal has no field(s) {sorted(unknown_keys)}")
        data = {"custom_id": modal["custom_id"], "components": components}
        source = handle.source_message
        return await self._dispatch_interaction(
            ix.MODAL_SUBMIT, handle.guild, handle.channel, m, data, source_message=source, parent=handle
        )

    async def _dispatch_interaction(
        self,
        type_: int,
        guild: Guild,
        channel: Channel,
        member: Member,
        data: dict[str, Any],
        *,
        command_path: str | None = None,
        source_message: Message | None = None,
        parent: InteractionHandle | None = None,
    ) -> InteractionHandle:
        if self.gateway.current is None:
            raise SandboxError("the bot has not connected to the gateway yet (no IDENTIFY received)")
        if self.bot_user.id not in guild.members:
            # Discord offers no command or component of an app that is not in the guild.
            raise SandboxError(f"the bot is not in {guild.name} (sb.add_bot adds it back)")
        handle = InteractionHandle(
            self,
            id=self.new_id(),
            token=new_interaction_token(),
            type=type_,
            guild=guild,
            channel=channel,
            member=member,
            data=data,
            command_path=command_path,
            source_message=source_message,
            parent=parent,
        )
        channel_data = channel.payload()
        channel_data["permissions"] = str(member.permissions_in(channel))
        payload: dict[str, Any] = {
            "id": str(handle.id),
            "application_id": str(self.application_id),
            "type": type_,
            "data": data,
            "guild_id": str(guild.id),
            "guild": {"id": str(guild.id), "locale": "en-US", "features": []},
            "channel_id": str(channel.id),
            "channel": channel_data,
            "member": member.payload(permissions=member.permissions_in(channel)),
            "token": handle.token,
            "version": 1,
            "app_permissions": str(self.bot_member(guild).permissions_in(channel)),
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild.id)},
            "context": 0,
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        if source_message is not None:
            payload["message"] = source_message.payload()
        handle.payload = payload
        self.interactions[handle.id] = handle
        self.interactions_by_token[handle.token] = handle

        def on_sent(at: float) -> None:
            if handle.dispatched_at is None:
                handle.dispatched_at = at

        self.gateway.dispatch("INTERACTION_CREATE", payload, on_sent=on_sent)
        self.notifier.notify(SandboxEvent("interaction", interaction=handle))
        _log.debug("dispatched interaction %s (%s)", handle.id, command_path or data.get("custom_id"))
        # Yield so the gateway writer can put the event on the wire before the caller starts timing.
        await asyncio.sleep(0)
        return handle

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
