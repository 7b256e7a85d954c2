"""In-memory world state of the sandbox and its Discord JSON serialisation.

Every object here is the sandbox's source of truth; the ``payload`` methods
produce exactly the shapes discord.py parses (see discord/types/*.py), so the
same objects feed REST responses, gateway events and interaction payloads.
"""

from __future__ import annotations

import copy
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .ids import iso_now
from .permissions import ADMINISTRATOR, ALL_PERMISSIONS

if TYPE_CHECKING:
    from .interactions import InteractionHandle

EPHEMERAL = 1 << 6
LOADING = 1 << 7
SUPPRESS_EMBEDS = 1 << 2
COMPONENTS_V2 = 1 << 15

TEXT_CHANNEL = 0

# Message kinds; they decide who "sent" a message and which feed it belongs to.
KIND_BOT = "bot"
KIND_INTERACTION = "interaction"
KIND_FOLLOWUP = "followup"
KIND_WEBHOOK = "webhook"
KIND_USER = "user"

_USER_MENTION = re.compile(r"<@!?(\d{15,21})>")
_ROLE_MENTION = re.compile(r"<@&(\d{15,21})>")


@dataclass(eq=False)
class User:
    id: int
    username: str
    bot: bool = False
    global_name: str | None = None

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"

    @property
    def display_name(self) -> str:
        return self.global_name or self.username

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
            "public_flags": 0,
            "flags": 0,
        }
        if self.bot:
            data["bot"] = True
        return data


@dataclass(eq=False)
class Role:
    id: int
    guild_id: int
    name: str
    permissions: int
    position: int = 0
    color: int = 0
    managed: bool = False
    bot_id: int | None = None
    hoist: bool = False
    mentionable: bool = False

    @property
    def is_everyone(self) -> bool:
        return self.id == self.guild_id

    @property
    def mention(self) -> str:
        return "@everyone" if self.is_everyone else f"<@&{self.id}>"

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "name": self.name,
            "color": self.color,
            "colors": {"primary_color": self.color, "secondary_color": None, "tertiary_color": None},
            "hoist": self.hoist,
            "icon": None,
            "unicode_emoji": None,
            "position": self.position,
            "permissions": str(self.permissions),
            "managed": self.managed,
            "mentionable": self.mentionable,
            "flags": 0,
        }
        if self.bot_id is not None:
            data["tags"] = {"bot_id": str(self.bot_id)}
        return data


@dataclass(eq=False)
class Overwrite:
    id: int
    type: int  # 0 = role, 1 = member, as in Discord's payload
    allow: int = 0
    deny: int = 0

    def payload(self) -> dict[str, Any]:
        return {"id": str(self.id), "type": self.type, "allow": str(self.allow), "deny": str(self.deny)}


@dataclass(eq=False)
class Attachment:
    id: int
    filename: str
    data: bytes
    content_type: str | None
    url: str
    description: str | None = None

    @property
    def size(self) -> int:
        return len(self.data)

    def text(self, encoding: str = "utf-8") -> str:
        return self.data.decode(encoding)

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "filename": self.filename,
            "size": self.size,
            "url": self.url,
            "proxy_url": self.url,
        }
        if self.content_type:
            data["content_type"] = self.content_type
        if self.description:
            data["description"] = self.description
        return data


@dataclass(eq=False)
class Channel:
    id: int
    guild: Guild = field(repr=False)
    name: str
    position: int = 0
    topic: str | None = None
    type: int = TEXT_CHANNEL
    overwrites: dict[int, Overwrite] = field(default_factory=dict, repr=False)
    messages: list[Message] = field(default_factory=list, repr=False)

    @property
    def guild_id(self) -> int:
        return self.guild.id

    @property
    def mention(self) -> str:
        return f"<#{self.id}>"

    @property
    def last_message_id(self) -> int | None:
        # Newest first: channels collect thousands of messages over a long session.
        return next((m.id for m in reversed(self.messages) if not m.deleted and not m.ephemeral), None)

    def payload(self, *, include_guild_id: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "type": self.type,
            "name": self.name,
            "position": self.position,
            "permission_overwrites": [o.payload() for o in self.overwrites.values()],
            "topic": self.topic,
            "nsfw": False,
            "last_message_id": str(self.last_message_id) if self.last_message_id else None,
            "rate_limit_per_user": 0,
            "parent_id": None,
            "flags": 0,
        }
        if include_guild_id:
            data["guild_id"] = str(self.guild_id)
        return data


@dataclass(eq=False)
class Member:
    user: User
    guild: Guild = field(repr=False)
    role_ids: list[int] = field(default_factory=list)
    nick: str | None = None
    joined_at: str = field(default_factory=iso_now)

    @property
    def id(self) -> int:
        return self.user.id

    @property
    def name(self) -> str:
        return self.user.username

    @property
    def display_name(self) -> str:
        return self.nick or self.user.display_name

    @property
    def mention(self) -> str:
        return self.user.mention

    @property
    def roles(self) -> list[Role]:
        return [self.guild.roles[r] for r in self.role_ids if r in self.guild.roles]

    def base_permissions(self) -> int:
        """Guild-level permissions: @everyone | roles, with owner/administrator short-circuits."""
        if self.id == self.guild.owner_id:
            return ALL_PERMISSIONS
        perms = self.guild.everyone_role.permissions
        for role in self.roles:
            perms |= role.permissions
        if perms & ADMINISTRATOR:
            return ALL_PERMISSIONS
        return perms

    def permissions_in(self, channel: Channel | None) -> int:
        """Discord's documented overwrite order: @everyone, then all roles together, then the member."""
        base = self.base_permissions()
        if channel is None or base & ADMINISTRATOR:
            return base
        perms = base
        everyone = channel.overwrites.get(self.guild.id)
        if everyone is not None:
            perms &= ~everyone.deny
            perms |= everyone.allow
        allow = deny = 0
        for role_id in self.role_ids:
            ow = channel.overwrites.get(role_id)
            if ow is not None and ow.type == 0:
                allow |= ow.allow
                deny |= ow.deny
        perms &= ~deny
        perms |= allow
        mine = channel.overwrites.get(self.id)
        if mine is not None and mine.type == 1:
            perms &= ~mine.deny
            perms |= mine.allow
        return perms

    def payload(self, *, with_user: bool = True, permissions: int | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "nick": self.nick,
            "avatar": None,
            "banner": None,
            "roles": [str(r) for r in self.role_ids],
            "joined_at": self.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "flags": 0,
            "communication_disabled_until": None,
        }
        if with_user:
            data["user"] = self.user.payload()
        if permissions is not None:
            data["permissions"] = str(permissions)
        return data


@dataclass(eq=False)
class Guild:
    id: int
    name: str
    owner_id: int = 0
    roles: dict[int, Role] = field(default_factory=dict, repr=False)
    channels: dict[int, Channel] = field(default_factory=dict, repr=False)
    members: dict[int, Member] = field(default_factory=dict, repr=False)
    joined_at: str = field(default_factory=iso_now)
    # Where Discord posts join notices: a new server's first text channel, as Discord sets it up.
    system_channel_id: int | None = None

    @property
    def everyone_role(self) -> Role:
        return self.roles[self.id]

    def find_channel(self, ref: int | str | Channel) -> Channel | None:
        if isinstance(ref, Channel):
            return ref if ref.guild is self else None
        if isinstance(ref, int):
            return self.channels.get(ref)
        name = ref.lstrip("#")
        if name.isdigit() and int(name) in self.channels:
            return self.channels[int(name)]
        return next((c for c in self.channels.values() if c.name == name), None)

    def find_member(self, ref: int | str | Member | User) -> Member | None:
        if isinstance(ref, Member):
            return self.members.get(ref.id)
        if isinstance(ref, User):
            return self.members.get(ref.id)
        if isinstance(ref, int):
            return self.members.get(ref)
        m = _USER_MENTION.fullmatch(ref)
        if m:
            return self.members.get(int(m.group(1)))
        name = ref.lstrip("@")
        if name.isdigit() and int(name) in self.members:
            return self.members[int(name)]
        for member in self.members.values():
            if member.user.username == name:
                return member
        lowered = name.lower()
        return next(
            (mb for mb in self.members.values() if mb.display_name.lower() == lowered or mb.name.lower() == lowered),
            None,
        )

    def find_role(self, ref: int | str | Role) -> Role | None:
        if isinstance(ref, Role):
            return self.roles.get(ref.id)
        if isinstance(ref, int):
            return self.roles.get(ref)
        m = _ROLE_MENTION.fullmatch(ref)
        if m:
            return self.roles.get(int(m.group(1)))
        name = ref.lstrip("@")
        return next((r for r in self.roles.values() if r.name == name), None)

    def payload(self, *, members: list[Member]) -> dict[str, Any]:
        """Full GUILD_CREATE payload (the gateway variant, with channels and members)."""
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 1,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "preferred_locale": "en-US",
            "system_channel_id": None if self.system_channel_id is None else str(self.system_channel_id),
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "features": [],
            "roles": [r.payload() for r in self.roles.values()],
            "emojis": [],
            "stickers": [],
            "channels": [c.payload(include_guild_id=False) for c in self.channels.values()],
            "threads": [],
            "members": [m.payload() for m in members],
            "member_count": len(self.members),
            "large": len(self.members) >= 250,
            "unavailable": False,
            "joined_at": self.joined_at,
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "max_members": 500000,
            "max_video_channel_users": 25,
            "lazy": True,
        }

    def rest_payload(self) -> dict[str, Any]:
        """GET /guilds/{id} shape: no channels/members, as Discord's REST API returns."""
        data = self.payload(members=[])
        for key in ("channels", "threads", "members", "voice_states", "presences", "joined_at", "large", "lazy"):
            data.pop(key, None)
        data["approximate_member_count"] = len(self.members)
        return data


@dataclass(frozen=True)
class Revision:
    """One observable state of a message; the first is its creation, the rest are edits."""

    content: str
    embeds: tuple[dict[str, Any], ...]
    components: tuple[dict[str, Any], ...]
    flags: int
    attachments: tuple[str, ...]
    at: float
    source: str

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def loading(self) -> bool:
        return bool(self.flags & LOADING)


@dataclass(eq=False)
class Message:
    id: int
    channel: Channel = field(repr=False)
    author: User
    kind: str
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    flags: int = 0
    attachments: list[Attachment] = field(default_factory=list)
    tts: bool = False
    type: int = 0
    webhook_id: int | None = None
    application_id: int | None = None
    interaction: InteractionHandle | None = field(default=None, repr=False)
    # Ephemeral messages exist only for the user who triggered the interaction.
    visible_to: int | None = None
    created_at: str = field(default_factory=iso_now)
    edited_at: str | None = None
    deleted: bool = False
    revisions: list[Revision] = field(default_factory=list, repr=False)
    message_reference: dict[str, Any] | None = None
    # For a message restored from a saved world: who did what to make it ("alice used /help"),
    # since the interaction itself is not kept across a restart.
    origin: str | None = None

    @property
    def guild(self) -> Guild:
        return self.channel.guild

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def loading(self) -> bool:
        return bool(self.flags & LOADING)

    @property
    def edits(self) -> list[Revision]:
        return self.revisions[1:]

    @property
    def jump_url(self) -> str:
        return f"https://discord.com/channels/{self.guild.id}/{self.channel.id}/{self.id}"

    def record_revision(self, source: str) -> Revision:
        rev = Revision(
            content=self.content,
            embeds=tuple(copy.deepcopy(self.embeds)),
            components=tuple(copy.deepcopy(self.components)),
            flags=self.flags,
            attachments=tuple(a.filename for a in self.attachments),
            at=time.monotonic(),
            source=source,
        )
        self.revisions.append(rev)
        return rev

    def iter_components(self) -> list[dict[str, Any]]:
        """Every interactive component, depth-first, in display order."""
        found: list[dict[str, Any]] = []

        def walk(items: list[dict[str, Any]]) -> None:
            for item in items:
                if item.get("type") in (2, 3, 5, 6, 7, 8):
                    found.append(item)
                for key in ("components",):
                    if isinstance(item.get(key), list):
                        walk(item[key])
                if isinstance(item.get("accessory"), dict):
                    walk([item["accessory"]])
                if isinstance(item.get("component"), dict):
                    walk([item["component"]])

        walk(self.components)
        return found

    def find_component(
        self, *, custom_id: str | None = None, label: str | None = None
    ) -> dict[str, Any] | None:
        for comp in self.iter_components():
            if custom_id is not None and comp.get("custom_id") == custom_id:
                return comp
            if label is not None and comp.get("label") == label:
                return comp
        return None

    def mentioned_users(self) -> list[Member]:
        found: list[Member] = []
        for match in _USER_MENTION.finditer(self.content):
            member = self.guild.members.get(int(match.group(1)))
            if member is not None and member not in found:
                found.append(member)
        return found

    def payload(self) -> dict[str, Any]:
        mentions = []
        for member in self.mentioned_users():
            entry = member.user.payload()
            entry["member"] = member.payload(with_user=False)
            mentions.append(entry)
        data: dict[str, Any] = {
            "id": str(self.id),
            "channel_id": str(self.channel.id),
            "guild_id": str(self.guild.id),
            "author": self.author.payload(),
            "content": self.content,
            "timestamp": self.created_at,
            "edited_timestamp": self.edited_at,
            "tts": self.tts,
            "mention_everyone": "@everyone" in self.content,
            "mentions": mentions,
            "mention_roles": [m.group(1) for m in _ROLE_MENTION.finditer(self.content)],
            "attachments": [a.payload() for a in self.attachments],
            "embeds": copy.deepcopy(self.embeds),
            "components": copy.deepcopy(self.components),
            "reactions": [],
            "pinned": False,
            "type": self.type,
            "flags": self.flags,
        }
        if self.webhook_id is not None:
            data["webhook_id"] = str(self.webhook_id)
        if self.application_id is not None:
            data["application_id"] = str(self.application_id)
        if self.message_reference is not None:
            data["message_reference"] = dict(self.message_reference)
        if self.kind in (KIND_BOT, KIND_USER) and self.webhook_id is None:
            author_member = self.guild.members.get(self.author.id)
            if author_member is not None:
                data["member"] = author_member.payload(with_user=False)
        if self.interaction is not None and self.kind in (KIND_INTERACTION, KIND_FOLLOWUP):
            data["interaction_metadata"] = self.interaction.metadata_payload()
        return data


@dataclass(eq=False)
class Webhook:
    id: int
    token: str
    channel: Channel = field(repr=False)
    name: str
    creator: User = field(repr=False)
    avatar: str | None = None
    deleted: bool = False

    @property
    def url(self) -> str:
        # The real-looking URL is deliberate: bots store it and later call Webhook.from_url(),
        # whose regex only accepts discord.com hosts; Route.BASE redirects the actual request.
        return f"https://discord.com/api/webhooks/{self.id}/{self.token}"

    def payload(self, *, include_token: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "type": 1,
            "guild_id": str(self.channel.guild.id),
            "channel_id": str(self.channel.id),
            "user": self.creator.payload(),
            "name": self.name,
            "avatar": self.avatar,
            "application_id": None,
        }
        if include_token:
            data["token"] = self.token
            data["url"] = self.url
        return data

    def author_for(self, username: str | None) -> User:
        """Webhook messages are authored by a pseudo-user carrying the webhook id."""
        return User(id=self.id, username=username or self.name, bot=True)


# How tests and the terminal name a guild, channel or member: the object, its id, or a name
# (``Sandbox.guild``, ``channel`` and ``member`` say which names they accept).
GuildRef = Guild | int | str
ChannelRef = Channel | int | str
MemberRef = Member | User | int | str
