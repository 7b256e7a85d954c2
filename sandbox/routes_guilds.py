"""REST routes for guilds: the guild, its channels, roles, members and webhooks, as the bot sees them."""

from __future__ import annotations

from typing import Any

from .errors import ApiError
from .permissions import MANAGE_WEBHOOKS
from .routes import MISSING_ACCESS, MISSING_PERMISSIONS, Ctx, Routes, unknown


class GuildRoutes(Routes):
    """A guild and what is in it, for a bot that is a member."""

    def _guild(self, ctx: Ctx) -> Any:
        guild = self.sb.guilds.get(ctx.int_param("guild_id", "Guild", 10004))
        if guild is None:
            raise unknown("Guild", 10004)
        if not self.sb.has_bot(guild):
            raise ApiError(*MISSING_ACCESS)
        return guild

    async def get_guild(self, ctx: Ctx) -> tuple[int, Any]:
        return 200, self._guild(ctx).rest_payload()

    async def get_guild_channels(self, ctx: Ctx) -> tuple[int, Any]:
        return 200, [c.payload() for c in self._guild(ctx).channels.values()]

    async def get_guild_roles(self, ctx: Ctx) -> tuple[int, Any]:
        return 200, [r.payload() for r in self._guild(ctx).roles.values()]

    async def get_guild_members(self, ctx: Ctx) -> tuple[int, Any]:
        guild = self._guild(ctx)
        limit = min(int(ctx.query.get("limit", "1") or 1), 1000)
        after = int(ctx.query.get("after", "0") or 0)
        members = sorted((m for m in guild.members.values() if m.id > after), key=lambda m: m.id)
        return 200, [m.payload() for m in members[:limit]]

    async def get_guild_member(self, ctx: Ctx) -> tuple[int, Any]:
        guild = self._guild(ctx)
        member = guild.members.get(ctx.int_param("user_id", "Member", 10007))
        if member is None:
            raise unknown("Member", 10007)
        return 200, member.payload()

    async def get_guild_webhooks(self, ctx: Ctx) -> tuple[int, Any]:
        guild = self._guild(ctx)
        if not self.sb.bot_member(guild).base_permissions() & MANAGE_WEBHOOKS:
            raise ApiError(*MISSING_PERMISSIONS)
        return 200, [w.payload() for w in self.sb.webhooks.values() if w.channel.guild is guild and not w.deleted]
