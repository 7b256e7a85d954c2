"""REST routes for the bot's identity and its application: users, the application, the
gateway's address and application commands (global and per guild), as discord.py syncs them."""

from __future__ import annotations

import logging
from typing import Any

from .errors import ApiError
from .routes import Ctx, Routes, unknown
from .validation import FormErrors, validate_command

_log = logging.getLogger(__name__)

# Discord's default session start limit (IDENTIFYs a day); the sandbox reports it, never enforces it.
SESSION_STARTS_PER_DAY = 1000


class ApplicationRoutes(Routes):
    """Who the bot is, where the gateway is, and the application commands it syncs."""

    # --- users / application / gateway ---------------------------------

    async def get_me(self, ctx: Ctx) -> tuple[int, Any]:
        data = self.sb.bot_user.payload()
        data.update({"verified": True, "mfa_enabled": False, "locale": "en-US", "email": None, "bio": ""})
        return 200, data

    async def get_user(self, ctx: Ctx) -> tuple[int, Any]:
        user = self.sb.users.get(ctx.int_param("user_id", "User", 10013))
        if user is None:
            raise unknown("User", 10013)
        return 200, user.payload()

    def application_payload(self) -> dict[str, Any]:
        return {
            "id": str(self.sb.application_id),
            "name": self.sb.bot_user.username,
            "icon": None,
            "description": "Sandbox application",
            "summary": "",
            "type": None,
            "hook": True,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "flags": 0,
            "owner": self.sb.app_owner.payload(),
            "team": None,
            "bot": self.sb.bot_user.payload(),
            "rpc_origins": [],
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "tags": [],
            "approximate_guild_count": len(self.sb.guilds),
        }

    async def get_application(self, ctx: Ctx) -> tuple[int, Any]:
        return 200, self.application_payload()

    async def get_gateway(self, ctx: Ctx) -> tuple[int, Any]:
        return 200, {"url": self.sb.gateway_url}

    async def get_gateway_bot(self, ctx: Ctx) -> tuple[int, Any]:
        # discord.py's AutoShardedClient (shard_count=None) starts this many shards at this url;
        # it reads max_concurrency only through fetch_session_start_limits().
        total = SESSION_STARTS_PER_DAY
        return 200, {
            "url": self.sb.gateway_url,
            "shards": self.sb.recommended_shards(),
            "session_start_limit": {
                "total": total,
                "remaining": max(0, total - self.sb.gateway.identify_count),
                "reset_after": 86_400_000,
                "max_concurrency": self.sb.max_concurrency,
            },
        }

    # --- application commands ------------------------------------------

    def _check_app(self, ctx: Ctx) -> None:
        if ctx.params.get("application_id") != str(self.sb.application_id):
            raise ApiError(403, 50001, "Missing Access")

    def _command_scope(self, ctx: Ctx) -> int | None:
        self._check_app(ctx)
        if "guild_id" not in ctx.params:
            return None
        guild_id = ctx.int_param("guild_id", "Guild", 10004)
        if guild_id not in self.sb.guilds or not self.sb.has_bot(guild_id):
            raise ApiError(403, 50001, "Missing Access")
        return guild_id

    async def list_commands(self, ctx: Ctx) -> tuple[int, Any]:
        return 200, list(self.sb.commands.scope(self._command_scope(ctx)))

    async def bulk_commands(self, ctx: Ctx) -> tuple[int, Any]:
        scope = self._command_scope(ctx)
        payload = ctx.body
        if not isinstance(payload, list):
            raise ApiError(400, 50035, "Invalid Form Body")
        errors = FormErrors()
        seen: set[tuple[str, int]] = set()
        for i, cmd in enumerate(payload):
            validate_command(cmd, errors, (str(i),))
            key = (cmd.get("name"), cmd.get("type", 1))
            if key in seen:
                errors.add(
                    (str(i), "name"), "APPLICATION_COMMANDS_DUPLICATE_NAME", "Application command names must be unique"
                )
            seen.add(key)
        if sum(1 for c in payload if c.get("type", 1) == 1) > 100:
            errors.add((), "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")
        if errors:
            return 400, errors.body()
        result = self.sb.commands.bulk_overwrite(scope, payload)
        _log.info(
            "commands synced (%s): %s", "global" if scope is None else f"guild {scope}", [c["name"] for c in result]
        )
        return 200, result

    async def upsert_command(self, ctx: Ctx) -> tuple[int, Any]:
        scope = self._command_scope(ctx)
        payload = ctx.json_object()
        errors = FormErrors()
        validate_command(payload, errors, ())
        if errors:
            return 400, errors.body()
        cmd, created = self.sb.commands.upsert(scope, payload)
        return (201 if created else 200), cmd

    async def get_command(self, ctx: Ctx) -> tuple[int, Any]:
        cmd = self.sb.commands.get(self._command_scope(ctx), ctx.int_param("command_id", "application command", 10063))
        if cmd is None:
            raise unknown("application command", 10063)
        return 200, cmd

    async def edit_command(self, ctx: Ctx) -> tuple[int, Any]:
        cmd = self.sb.commands.edit(
            self._command_scope(ctx), ctx.int_param("command_id", "application command", 10063), ctx.json_object()
        )
        if cmd is None:
            raise unknown("application command", 10063)
        return 200, cmd

    async def delete_command(self, ctx: Ctx) -> tuple[int, Any]:
        if not self.sb.commands.delete(
            self._command_scope(ctx), ctx.int_param("command_id", "application command", 10063)
        ):
            raise unknown("application command", 10063)
        return 204, None

    async def command_permissions(self, ctx: Ctx) -> tuple[int, Any]:
        self._command_scope(ctx)
        return 200, []
