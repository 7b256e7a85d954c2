"""Building the sandbox's world: what Discord itself or a server's admin does to it.

A guild created, the bot added or kicked, channels, roles, members, permissions and channel
overwrites: each change lands in the state the ``Sandbox`` holds and reaches the bot as the
gateway event Discord sends for it (GUILD_CREATE, GUILD_MEMBER_ADD, CHANNEL_UPDATE...), only
if its session asked for that intent.  Reading the world (``Sandbox.guild``, ``member``...)
stays on the ``Sandbox``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .errors import SandboxError
from .gateway import GUILD_MEMBERS, GUILDS
from .ids import iso_now
from .models import Channel, Guild, GuildRef, Member, Overwrite, Role, User
from .permissions import DEFAULT_BOT, DEFAULT_EVERYONE, PermissionsLike, apply_flags, to_permission_value
from .records import SandboxEvent

if TYPE_CHECKING:
    from .server import Sandbox


class World:
    """The world-building half of the test API; ``Sandbox`` hands its public calls here."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sb = sandbox

    def register_user(self, user: User) -> User:
        self.sb.users[user.id] = user
        return user

    def add_guild(self, name: str, *, owner: str | User | None = None, shard: tuple[int, int] | None = None) -> Guild:
        """``shard=(shard_id, num_shards)``: the guild's id falls on that shard (Discord's formula)."""
        guild_id = self.sb.new_id() if shard is None else self.sb.ids.next_on_shard(*shard)
        guild = Guild(id=guild_id, name=name)
        guild.roles[guild.id] = Role(id=guild.id, guild_id=guild.id, name="@everyone", permissions=DEFAULT_EVERYONE)
        self._join_bot(guild)
        owner_user = owner if isinstance(owner, User) else self._user_named(owner or "server-owner", bot=False)
        guild.owner_id = owner_user.id
        guild.members[owner_user.id] = Member(user=owner_user, guild=guild)
        self.sb.guilds[guild.id] = guild
        self.sb.gateway.dispatch_guild_create(guild)
        self.sb.notifier.notify()
        return guild

    def _join_bot(self, guild: Guild) -> Member:
        # Discord gives a bot its own managed role when it joins, and deletes it when the bot leaves.
        bot_role = Role(
            id=self.sb.new_id(),
            guild_id=guild.id,
            name=self.sb.bot_user.username,
            permissions=DEFAULT_BOT,
            position=1,
            managed=True,
            bot_id=self.sb.bot_user.id,
        )
        guild.roles[bot_role.id] = bot_role
        member = Member(user=self.sb.bot_user, guild=guild, role_ids=[bot_role.id])
        guild.members[self.sb.bot_user.id] = member
        guild.joined_at = iso_now()
        return member

    def remove_bot(self, guild: GuildRef) -> None:
        """Kick the bot from ``guild`` (to the bot this looks exactly like the guild being deleted).

        As on Discord: the bot's managed role goes, so do the webhooks the bot created (Discord
        removes an app's webhooks with it; its docs do not say so, bot developers report it), the
        bot gets GUILD_DELETE without an ``unavailable`` field (the sign of a removal rather than an
        outage), the guild is left out of later READYs, and REST calls about it answer 403 Missing
        Access.  Everything else in the guild (channels, messages, other webhooks) stays.
        """
        g = self.sb.guild(guild)
        member = g.members.pop(self.sb.bot_user.id, None)
        if member is None:
            raise SandboxError(f"the bot is not in {g.name}")
        for role_id in member.role_ids:
            role = g.roles.get(role_id)
            if role is not None and role.managed and role.bot_id == self.sb.bot_user.id:
                del g.roles[role_id]
        for webhook in self.sb.webhooks.values():
            if webhook.channel.guild is g and webhook.creator is self.sb.bot_user and not webhook.deleted:
                webhook.deleted = True
                self.sb.notifier.notify(SandboxEvent("webhook_delete", detail=webhook))
        self.sb.gateway.dispatch("GUILD_DELETE", {"id": str(g.id)}, guild_id=g.id, intent=GUILDS)
        self.sb.notifier.notify()

    def add_bot(self, guild: GuildRef) -> Member:
        """Add the bot (back) to ``guild``, as when someone authorizes it there: a new managed role,
        then GUILD_CREATE with the whole guild."""
        g = self.sb.guild(guild)
        if self.sb.bot_user.id in g.members:
            raise SandboxError(f"the bot is already in {g.name}")
        member = self._join_bot(g)
        self.sb.gateway.dispatch_guild_create(g)
        self.sb.notifier.notify()
        return member

    def _user_named(self, name: str, *, bot: bool, global_name: str | None = None) -> User:
        # The same name means the same person across guilds, so "alice" in two servers shares one id.
        existing = next((u for u in self.sb.users.values() if u.username == name and u.bot == bot), None)
        if existing is not None:
            return existing
        return self.register_user(User(id=self.sb.new_id(), username=name, bot=bot, global_name=global_name))

    def add_channel(self, guild: GuildRef, name: str, *, topic: str | None = None, type: int = 0) -> Channel:
        """A channel; ``type`` is Discord's channel type (0 text, 2 voice, 4 category)."""
        g = self.sb.guild(guild)
        if g.find_channel(name) is not None:
            raise SandboxError(f"#{name} already exists in {g.name}")
        channel = Channel(id=self.sb.new_id(), guild=g, name=name, position=len(g.channels), topic=topic, type=type)
        g.channels[channel.id] = channel
        self.sb.channels[channel.id] = channel
        if g.system_channel_id is None and type == 0:
            g.system_channel_id = channel.id
        self.sb.gateway.dispatch("CHANNEL_CREATE", channel.payload(), guild_id=channel.guild.id, intent=GUILDS)
        self.sb.notifier.notify()
        return channel

    def add_role(self, guild: GuildRef, name: str, permissions: PermissionsLike = 0, *, color: int = 0) -> Role:
        g = self.sb.guild(guild)
        role = Role(
            id=self.sb.new_id(),
            guild_id=g.id,
            name=name,
            permissions=to_permission_value(permissions),
            position=len(g.roles),
            color=color,
        )
        g.roles[role.id] = role
        self.sb.gateway.dispatch(
            "GUILD_ROLE_CREATE", {"guild_id": str(g.id), "role": role.payload()}, guild_id=g.id, intent=GUILDS
        )
        self.sb.notifier.notify()
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
        g = self.sb.guild(guild)
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
        self.sb.gateway.dispatch("GUILD_MEMBER_ADD", payload, guild_id=g.id, intent=GUILD_MEMBERS)
        self.sb.notifier.notify()
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
        self.sb.gateway.dispatch("GUILD_MEMBER_UPDATE", payload, guild_id=member.guild.id, intent=GUILD_MEMBERS)
        self.sb.notifier.notify()

    def set_role_permissions(self, role: Role, permissions: PermissionsLike = None, **flags: bool) -> int:
        if permissions is not None:
            role.permissions = to_permission_value(permissions)
        if flags:
            role.permissions = apply_flags(role.permissions, flags)
        self.sb.gateway.dispatch(
            "GUILD_ROLE_UPDATE",
            {"guild_id": str(role.guild_id), "role": role.payload()},
            guild_id=role.guild_id,
            intent=GUILDS,
        )
        self.sb.notifier.notify()
        return role.permissions

    def set_bot_permissions(self, guild: GuildRef, permissions: PermissionsLike = None, **flags: bool) -> int:
        """Set the bot's managed role: an exact value, and/or flag toggles like ``manage_webhooks=False``."""
        return self.set_role_permissions(self.sb.bot_role(guild), permissions, **flags)

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
        self.sb.gateway.dispatch("CHANNEL_UPDATE", channel.payload(), guild_id=channel.guild.id, intent=GUILDS)
        self.sb.notifier.notify()
