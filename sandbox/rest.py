"""The Discord REST API surface (/api/v10/...) that discord.py uses, backed by sandbox state.

Routing is done here rather than with aiohttp's router so that every request,
matched or not, is recorded with the same route templates discord.py uses
(e.g. "/webhooks/{webhook_id}/{webhook_token}"), which tests and fault
patterns can name.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import interactions as ix
from .errors import ApiError
from .faults import VIA_HEADER, bucket_hash, rate_limit_headers
from .models import (
    EPHEMERAL,
    KIND_BOT,
    KIND_FOLLOWUP,
    KIND_INTERACTION,
    KIND_WEBHOOK,
    LOADING,
    Channel,
    Message,
    Webhook,
)
from .permissions import (
    ADD_REACTIONS,
    MANAGE_MESSAGES,
    MANAGE_WEBHOOKS,
    READ_MESSAGE_HISTORY,
    SEND_MESSAGES,
    VIEW_CHANNEL,
)
from .records import CallbackRecord, RequestRecord, SandboxEvent, UploadedFile
from .validation import (
    FormErrors,
    is_empty_message,
    validate_choices,
    validate_command,
    validate_message,
    validate_modal,
)

if TYPE_CHECKING:
    from .server import Sandbox

_log = logging.getLogger(__name__)

_VERSION_PREFIX = re.compile(r"^v(\d+)/")
_RECORDED_HEADERS = ("authorization", "content-type", "user-agent", "x-audit-log-reason")


def unknown(kind: str, code: int) -> ApiError:
    return ApiError(404, code, f"Unknown {kind}")


MISSING_PERMISSIONS = (403, 50013, "Missing Permissions")
MISSING_ACCESS = (403, 50001, "Missing Access")


@dataclass
class Ctx:
    request: web.Request
    record: RequestRecord
    params: dict[str, str]
    body: Any
    files: list[UploadedFile]
    handle: ix.InteractionHandle | None = None

    @property
    def query(self) -> dict[str, str]:
        return self.record.query

    def int_param(self, name: str, kind: str, code: int) -> int:
        try:
            return int(self.params[name])
        except (KeyError, ValueError):
            raise unknown(kind, code) from None

    def json_object(self) -> dict[str, Any]:
        if self.body is None:
            return {}
        if not isinstance(self.body, dict):
            raise ApiError(400, 50109, "The request body contains invalid JSON.")
        return self.body

    def flag(self, name: str) -> bool:
        return self.query.get(name, "").lower() in ("1", "true", "yes")


Handler = Callable[[Ctx], Awaitable[tuple[int, Any]]]


@dataclass
class Route:
    method: str
    template: str
    handler: Handler
    auth: bool
    regex: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        pattern = re.escape(self.template)
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", pattern)
        self.regex = re.compile(f"^{pattern}$")


class RestApi:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sb = sandbox
        self.routes: list[Route] = []
        r = self._add
        # Order matters only where a literal segment could also match a parameter.
        r("GET", "/users/@me", self.get_me)
        r("GET", "/users/{user_id}", self.get_user)
        r("GET", "/oauth2/applications/@me", self.get_application)
        r("GET", "/applications/@me", self.get_application)
        r("GET", "/gateway", self.get_gateway, auth=False)
        r("GET", "/gateway/bot", self.get_gateway_bot)
        r("GET", "/applications/{application_id}/commands", self.list_commands)
        r("PUT", "/applications/{application_id}/commands", self.bulk_commands)
        r("POST", "/applications/{application_id}/commands", self.upsert_command)
        r("GET", "/applications/{application_id}/commands/{command_id}", self.get_command)
        r("PATCH", "/applications/{application_id}/commands/{command_id}", self.edit_command)
        r("DELETE", "/applications/{application_id}/commands/{command_id}", self.delete_command)
        r("GET", "/applications/{application_id}/guilds/{guild_id}/commands/permissions", self.command_permissions)
        r("GET", "/applications/{application_id}/guilds/{guild_id}/commands", self.list_commands)
        r("PUT", "/applications/{application_id}/guilds/{guild_id}/commands", self.bulk_commands)
        r("POST", "/applications/{application_id}/guilds/{guild_id}/commands", self.upsert_command)
        r("GET", "/applications/{application_id}/guilds/{guild_id}/commands/{command_id}", self.get_command)
        r("PATCH", "/applications/{application_id}/guilds/{guild_id}/commands/{command_id}", self.edit_command)
        r("DELETE", "/applications/{application_id}/guilds/{guild_id}/commands/{command_id}", self.delete_command)
        r("GET", "/guilds/{guild_id}", self.get_guild)
        r("GET", "/guilds/{guild_id}/channels", self.get_guild_channels)
        r("GET", "/guilds/{guild_id}/roles", self.get_guild_roles)
        r("GET", "/guilds/{guild_id}/members", self.get_guild_members)
        r("GET", "/guilds/{guild_id}/members/{user_id}", self.get_guild_member)
        r("GET", "/guilds/{guild_id}/webhooks", self.get_guild_webhooks)
        r("GET", "/channels/{channel_id}", self.get_channel)
        r("GET", "/channels/{channel_id}/messages", self.list_messages)
        r("POST", "/channels/{channel_id}/messages", self.create_message)
        r("GET", "/channels/{channel_id}/messages/{message_id}", self.get_message)
        r("PATCH", "/channels/{channel_id}/messages/{message_id}", self.edit_message)
        r("DELETE", "/channels/{channel_id}/messages/{message_id}", self.delete_message)
        r("POST", "/channels/{channel_id}/typing", self.typing)
        r("PUT", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me", self.add_reaction)
        r("POST", "/channels/{channel_id}/webhooks", self.create_webhook)
        r("GET", "/channels/{channel_id}/webhooks", self.get_channel_webhooks)
        r("GET", "/webhooks/{webhook_id}", self.get_webhook)
        r("PATCH", "/webhooks/{webhook_id}", self.edit_webhook)
        r("DELETE", "/webhooks/{webhook_id}", self.delete_webhook)
        r("GET", "/webhooks/{webhook_id}/{webhook_token}", self.get_webhook, auth=False)
        r("PATCH", "/webhooks/{webhook_id}/{webhook_token}", self.edit_webhook, auth=False)
        r("DELETE", "/webhooks/{webhook_id}/{webhook_token}", self.delete_webhook, auth=False)
        r("POST", "/webhooks/{webhook_id}/{webhook_token}", self.execute_webhook, auth=False)
        r("GET", "/webhooks/{webhook_id}/{webhook_token}/messages/@original", self.get_webhook_message, auth=False)
        r("PATCH", "/webhooks/{webhook_id}/{webhook_token}/messages/@original", self.edit_webhook_message, auth=False)
        r(
            "DELETE",
            "/webhooks/{webhook_id}/{webhook_token}/messages/@original",
            self.delete_webhook_message,
            auth=False,
        )
        r("GET", "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}", self.get_webhook_message, auth=False)
        r(
            "PATCH",
            "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
            self.edit_webhook_message,
            auth=False,
        )
        r(
            "DELETE",
            "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
            self.delete_webhook_message,
            auth=False,
        )
        r("POST", "/interactions/{interaction_id}/{interaction_token}/callback", self.interaction_callback, auth=False)

    def _add(self, method: str, template: str, handler: Handler, *, auth: bool = True) -> None:
        self.routes.append(Route(method, template, handler, auth))

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            if route.method != method:
                continue
            m = route.regex.match(path)
            if m:
                return route, m.groupdict()
        return None

    # --- request pipeline ----------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        tail = request.match_info.get("tail", "")
        m = _VERSION_PREFIX.match(tail)
        path = "/" + (tail[m.end():] if m else tail)
        record = RequestRecord(
            method=request.method,
            path=path,
            query=dict(request.query),
            json=None,
            files=[],
            headers={k: v for k, v in request.headers.items() if k.lower() in _RECORDED_HEADERS},
        )
        self.sb.requests.append(record)
        matched = self.match(request.method, path)
        route: Route | None = None
        params: dict[str, str] = {}
        if matched is not None:
            route, params = matched
            record.route = route.template
        try:
            record.json, record.files = await self._parse_body(request)
        except ApiError as exc:
            return self._respond(record, exc.status, exc.body)

        faults = self.sb.faults.take(record)
        for fault in faults:
            if fault.passthrough and fault.delay:
                await asyncio.sleep(fault.delay)
        replacing = next((f for f in faults if not f.passthrough), None)
        if replacing is not None:
            record.fault = replacing.name
            resp = replacing.response()
            _log.info("fault %s -> %s %s: %s", replacing.name, record.method, record.path, resp.status)
            return self._respond(record, resp.status, resp.body, resp.headers)

        if route is None:
            _log.warning("sandbox has no route for %s %s (add one in sandbox/rest.py)", request.method, path)
            return self._respond(record, 404, {"message": "404: Not Found", "code": 0})

        if route.auth and request.headers.get("Authorization") != f"Bot {self.sb.bot_token}":
            return self._respond(record, 401, {"message": "401: Unauthorized", "code": 0})

        extra_headers: dict[str, str] = {}
        major = (
            params.get("channel_id")
            or params.get("guild_id")
            or params.get("webhook_id")
            or params.get("interaction_id")
            or ""
        )
        for bucket in self.sb.faults.buckets_for(record):
            ok, headers, retry_after = bucket.take(record, major)
            extra_headers.update(headers)
            if not ok:
                record.fault = "bucket"
                body = {"message": "You are being rate limited.", "retry_after": round(retry_after, 3), "global": False}
                return self._respond(record, 429, body, headers)

        ctx = Ctx(request=request, record=record, params=params, body=record.json, files=record.files)
        try:
            status, body = await route.handler(ctx)
        except ApiError as exc:
            status, body = exc.status, exc.body
        except (AttributeError, TypeError, KeyError, ValueError) as exc:
            # A payload of the wrong shape. Answer 400 like Discord: a 500 would make
            # discord.py retry for ~25 s before failing.
            _log.exception("malformed %s %s payload: %r", record.method, record.path, record.json)
            errors = FormErrors()
            errors.add((), "MALFORMED", str(exc))
            status, body = 400, errors.body()
        if status >= 400 and ctx.handle is not None:
            ctx.handle.rejected.append(record)
        if status >= 400:
            _log.info("%s %s -> %s %s", record.method, record.path, status, body)
        for fault in faults:
            if fault.answer_delay:
                # aiohttp lets a handler finish when its client hangs up, so the effects stay, as on Discord.
                await fault.hold_answer()
        return self._respond(record, status, body, extra_headers or None, route=route)

    async def _parse_body(self, request: web.Request) -> tuple[Any, list[UploadedFile]]:
        if not request.can_read_body:
            return None, []
        ctype = request.content_type
        if ctype == "multipart/form-data":
            # discord.py sends payload_json plus files[n] parts whenever a message carries files.
            payload: Any = None
            files: list[UploadedFile] = []
            reader = await request.multipart()
            while True:
                part = await reader.next()
                if part is None:
                    break
                if not hasattr(part, "read") or not hasattr(part, "filename"):
                    continue  # nested multipart is not something Discord accepts either
                data = await part.read(decode=False)  # type: ignore[union-attr]
                if part.filename is None and part.name == "payload_json":  # type: ignore[union-attr]
                    try:
                        payload = json.loads(bytes(data).decode("utf-8"))
                    except ValueError:
                        raise ApiError(400, 50109, "The request body contains invalid JSON.") from None
                elif part.filename is not None:  # type: ignore[union-attr]
                    files.append(
                        UploadedFile(
                            field_name=part.name or "",  # type: ignore[union-attr]
                            filename=part.filename,  # type: ignore[union-attr]
                            content_type=part.headers.get("Content-Type"),
                            data=bytes(data),
                        )
                    )
            return payload, files
        raw = await request.read()
        if not raw:
            return None, []
        try:
            return json.loads(raw.decode("utf-8")), []
        except ValueError:
            raise ApiError(400, 50109, "The request body contains invalid JSON.") from None

    def _respond(
        self,
        record: RequestRecord,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
        route: Route | None = None,
    ) -> web.StreamResponse:
        record.status = status
        record.response = body
        out_headers = {"Via": VIA_HEADER}
        if status != 429 and route is not None:
            # Generous static bucket info: exercises discord.py's bucket-hash bookkeeping without throttling it.
            out_headers.update(
                rate_limit_headers(
                    limit=50, remaining=49, reset_after=1.0, bucket=bucket_hash(route.method + route.template)
                )
            )
        if headers:
            out_headers.update(headers)
        self.sb.notifier.notify(SandboxEvent("request_error", detail=record) if status >= 400 else None)
        if status == 204 or body is None:
            return web.Response(status=204 if status < 300 else status, headers=out_headers)
        # discord.py only parses JSON when Content-Type is exactly "application/json" (json_or_text
        # compares the whole header), so aiohttp's default "; charset=utf-8" suffix must not be added.
        out_headers["Content-Type"] = "application/json"
        return web.Response(body=json.dumps(body).encode("utf-8"), status=status, headers=out_headers)

    # --- lookups ----------------------------------------------------------

    def _channel(self, ctx: Ctx) -> Channel:
        channel = self.sb.channels.get(ctx.int_param("channel_id", "Channel", 10003))
        if channel is None:
            raise unknown("Channel", 10003)
        return channel

    def _check_app(self, ctx: Ctx) -> None:
        if ctx.params.get("application_id") != str(self.sb.application_id):
            raise ApiError(403, 50001, "Missing Access")

    def _bot_can(self, channel: Channel, perms: int, error: tuple[int, int, str] = MISSING_PERMISSIONS) -> None:
        if not self.sb.has_bot(channel.guild):
            raise ApiError(*MISSING_ACCESS)
        member = self.sb.bot_member(channel.guild)
        have = member.permissions_in(channel)
        if not have & VIEW_CHANNEL:
            raise ApiError(*MISSING_ACCESS)
        if have & perms != perms:
            raise ApiError(*error)

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
        return 200, {
            "url": self.sb.gateway_url,
            "shards": 1,
            "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 14400000, "max_concurrency": 1},
        }

    # --- application commands ------------------------------------------

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

    # --- guilds ------------------------------------------------------------

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

    # --- channels & messages ------------------------------------------------

    async def get_channel(self, ctx: Ctx) -> tuple[int, Any]:
        channel = self._channel(ctx)
        self._bot_can(channel, 0)
        return 200, channel.payload()

    def _message(self, channel: Channel, ctx: Ctx) -> Message:
        msg = self.sb.messages.get(ctx.int_param("message_id", "Message", 10008))
        if msg is None or msg.channel is not channel or msg.deleted or msg.ephemeral:
            raise unknown("Message", 10008)
        return msg

    async def list_messages(self, ctx: Ctx) -> tuple[int, Any]:
        channel = self._channel(ctx)
        self._bot_can(channel, 0)
        member = self.sb.bot_member(channel.guild)
        if not member.permissions_in(channel) & READ_MESSAGE_HISTORY:
            return 200, []
        limit = max(1, min(int(ctx.query.get("limit", "50") or 50), 100))
        visible = [m for m in channel.messages if not m.deleted and not m.ephemeral]
        before = ctx.query.get("before")
        after = ctx.query.get("after")
        around = ctx.query.get("around")
        if before:
            visible = [m for m in visible if m.id < int(before)]
        if after:
            visible = [m for m in visible if m.id > int(after)]
            visible = visible[:limit]
        if around:
            pivot = int(around)
            older = [m for m in visible if m.id <= pivot][-(limit // 2 + 1):]
            newer = [m for m in visible if m.id > pivot][: limit - len(older)]
            visible = older + newer
        chosen = visible[-limit:]
        return 200, [m.payload() for m in reversed(chosen)]

    async def get_message(self, ctx: Ctx) -> tuple[int, Any]:
        channel = self._channel(ctx)
        self._bot_can(channel, READ_MESSAGE_HISTORY)
        return 200, self._message(channel, ctx).payload()

    def _validate_create(self, payload: dict[str, Any], files: list[UploadedFile]) -> None:
        errors = FormErrors()
        validate_message(payload, errors)
        if errors:
            raise ApiError(400, 50035, "Invalid Form Body", errors.body())
        if is_empty_message(payload, bool(files)):
            raise ApiError(400, 50006, "Cannot send an empty message")

    async def create_message(self, ctx: Ctx) -> tuple[int, Any]:
        channel = self._channel(ctx)
        self._bot_can(channel, SEND_MESSAGES)
        payload = ctx.json_object()
        self._validate_create(payload, ctx.files)
        reference = payload.get("message_reference")
        if reference is not None:
            target = self.sb.messages.get(int(reference.get("message_id", 0)))
            if target is None and reference.get("fail_if_not_exists", True):
                errors = FormErrors()
                errors.add(("message_reference",), "REPLIES_UNKNOWN_MESSAGE", "Unknown message")
                raise ApiError(400, 50035, "Invalid Form Body", errors.body())
        msg = self.sb.messaging.create_message(
            channel,
            self.sb.bot_user,
            KIND_BOT,
            payload,
            ctx.files,
            source=ctx.record.key,
            type_=19 if reference else 0,
            # Only these flags may be set by a bot message; ephemeral is interaction-only.
            allowed_flags=(1 << 2) | (1 << 12) | (1 << 15),
        )
        return 200, msg.payload()

    async def edit_message(self, ctx: Ctx) -> tuple[int, Any]:
        channel = self._channel(ctx)
        self._bot_can(channel, 0)
        msg = self._message(channel, ctx)
        payload = ctx.json_object()
        if msg.author.id != self.sb.bot_user.id:
            # Others' messages: only the SUPPRESS_EMBEDS flag may be toggled, and only with MANAGE_MESSAGES.
            if set(payload) - {"flags"}:
                raise ApiError(403, 50005, "Cannot edit a message authored by another user")
            self._bot_can(channel, MANAGE_MESSAGES)
        self.sb.messaging.edit_message(msg, payload, ctx.files, source=ctx.record.key, validate=self._validate_edit)
        return 200, msg.payload()

    async def delete_message(self, ctx: Ctx) -> tuple[int, Any]:
        channel = self._channel(ctx)
        self._bot_can(channel, 0)
        msg = self._message(channel, ctx)
        if msg.author.id != self.sb.bot_user.id:
            self._bot_can(channel, MANAGE_MESSAGES)
        self.sb.messaging.delete_message(msg)
        return 204, None

    async def typing(self, ctx: Ctx) -> tuple[int, Any]:
        channel = self._channel(ctx)
        self._bot_can(channel, SEND_MESSAGES)
        return 204, None

    async def add_reaction(self, ctx: Ctx) -> tuple[int, Any]:
        channel = self._channel(ctx)
        self._bot_can(channel, ADD_REACTIONS)
        self._message(channel, ctx)
        return 204, None

    def _validate_edit(self, payload: dict[str, Any]) -> None:
        errors = FormErrors()
        validate_message(payload, errors)
        if errors:
            raise ApiError(400, 50035, "Invalid Form Body", errors.body())

    # --- channel webhooks -----------------------------------------------------

    async def create_webhook(self, ctx: Ctx) -> tuple[int, Any]:
        channel = self._channel(ctx)
        self._bot_can(channel, MANAGE_WEBHOOKS)
        payload = ctx.json_object()
        name = payload.get("name", "")  # "" is missing too, as for Discord
        errors = FormErrors()
        if errors.required(("name",), name):
            if not 1 <= len(name) <= 80:
                errors.add(("name",), "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 80 in length.")
            elif "discord" in name.lower() or name.lower() == "clyde":
                errors.add(("name",), "WEBHOOK_INVALID_USERNAME", 'Username cannot contain "discord"')
        if errors:
            return 400, errors.body()
        webhook = self.sb.messaging.create_webhook(channel, name, creator=self.sb.bot_user)
        return 200, webhook.payload()

    async def get_channel_webhooks(self, ctx: Ctx) -> tuple[int, Any]:
        channel = self._channel(ctx)
        self._bot_can(channel, MANAGE_WEBHOOKS)
        return 200, [w.payload() for w in self.sb.webhooks.values() if w.channel is channel and not w.deleted]

    def _webhook(self, ctx: Ctx, *, with_token: bool) -> Webhook:
        webhook = self.sb.webhooks.get(ctx.int_param("webhook_id", "Webhook", 10015))
        if webhook is None or webhook.deleted:
            raise unknown("Webhook", 10015)
        if with_token and ctx.params.get("webhook_token") != webhook.token:
            raise ApiError(401, 50027, "Invalid Webhook Token")
        if not with_token:
            self._bot_can(webhook.channel, MANAGE_WEBHOOKS)
        return webhook

    def _interaction_for(self, ctx: Ctx) -> ix.InteractionHandle | None:
        """Interaction webhooks are addressed as /webhooks/{application_id}/{interaction_token}."""
        if ctx.params.get("webhook_id") != str(self.sb.application_id):
            return None
        handle = self.sb.interactions_by_token.get(ctx.params.get("webhook_token", ""))
        if handle is None:
            raise unknown("Webhook", 10015)
        ctx.handle = handle
        return handle

    async def get_webhook(self, ctx: Ctx) -> tuple[int, Any]:
        webhook = self._webhook(ctx, with_token="webhook_token" in ctx.params)
        return 200, webhook.payload()

    async def edit_webhook(self, ctx: Ctx) -> tuple[int, Any]:
        webhook = self._webhook(ctx, with_token="webhook_token" in ctx.params)
        payload = ctx.json_object()
        if "name" in payload and payload["name"]:
            webhook.name = str(payload["name"])
        if "channel_id" in payload and "webhook_token" not in ctx.params:
            channel = self.sb.channels.get(int(payload["channel_id"]))
            if channel is None or channel.guild is not webhook.channel.guild:
                raise unknown("Channel", 10003)
            webhook.channel = channel
        return 200, webhook.payload()

    async def delete_webhook(self, ctx: Ctx) -> tuple[int, Any]:
        webhook = self._webhook(ctx, with_token="webhook_token" in ctx.params)
        self.sb.messaging.delete_webhook(webhook)
        return 204, None

    async def execute_webhook(self, ctx: Ctx) -> tuple[int, Any]:
        handle = self._interaction_for(ctx)
        payload = ctx.json_object()
        if handle is not None:
            return self._followup(ctx, handle, payload)
        webhook = self._webhook(ctx, with_token=True)
        self._validate_create(payload, ctx.files)
        username = payload.get("username")
        if username is not None and not 1 <= len(username) <= 80:
            errors = FormErrors()
            errors.add(("username",), "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 80 in length.")
            return 400, errors.body()
        msg = self.sb.messaging.create_message(
            webhook.channel,
            webhook.author_for(username),
            KIND_WEBHOOK,
            payload,
            ctx.files,
            source=ctx.record.key,
            webhook_id=webhook.id,
            allowed_flags=(1 << 2) | (1 << 12) | (1 << 15),
        )
        if ctx.flag("wait"):
            return 200, msg.payload()
        return 204, None

    def _followup(self, ctx: Ctx, handle: ix.InteractionHandle, payload: dict[str, Any]) -> tuple[int, Any]:
        if not handle.acknowledged:
            # Discord only creates the interaction webhook once the interaction is acknowledged.
            raise unknown("Webhook", 10015)
        original = handle.original
        if (
            handle.ack_type == ix.DEFERRED_CHANNEL_MESSAGE
            and original is not None
            and original.loading
            and not original.deleted
        ):
            # Discord turns the first followup after a "thinking" defer into that message's content.
            self.sb.messaging.edit_message(
                original, payload, ctx.files, source=ctx.record.key, validate=self._validate_edit, clear_loading=True
            )
            return 200, original.payload()
        self._validate_create(payload, ctx.files)
        msg = self.sb.messaging.create_message(
            handle.channel,
            self.sb.bot_user,
            KIND_FOLLOWUP,
            payload,
            ctx.files,
            source=ctx.record.key,
            webhook_id=self.sb.application_id,
            application_id=self.sb.application_id,
            interaction=handle,
            type_=20 if handle.type == ix.APPLICATION_COMMAND else 0,
            allowed_flags=EPHEMERAL | (1 << 2) | (1 << 12) | (1 << 15),
            visible_to=handle.member.id,
        )
        handle.followups.append(msg)
        return 200, msg.payload()

    def _webhook_message(self, ctx: Ctx) -> Message:
        handle = self._interaction_for(ctx)
        message_id = ctx.params.get("message_id")
        if handle is not None:
            if not handle.acknowledged:
                raise unknown("Webhook", 10015)
            if message_id is None:
                if handle.original is None or handle.original_deleted:
                    raise unknown("Message", 10008)
                return handle.original
            for msg in handle.messages:
                if str(msg.id) == message_id and not msg.deleted:
                    return msg
            raise unknown("Message", 10008)
        webhook = self._webhook(ctx, with_token=True)
        if message_id is None:
            raise unknown("Message", 10008)
        posted = self.sb.messages.get(int(message_id)) if message_id.isdigit() else None
        if posted is None or posted.webhook_id != webhook.id or posted.deleted:
            raise unknown("Message", 10008)
        return posted

    async def get_webhook_message(self, ctx: Ctx) -> tuple[int, Any]:
        return 200, self._webhook_message(ctx).payload()

    async def edit_webhook_message(self, ctx: Ctx) -> tuple[int, Any]:
        msg = self._webhook_message(ctx)
        self.sb.messaging.edit_message(
            msg, ctx.json_object(), ctx.files, source=ctx.record.key, validate=self._validate_edit, clear_loading=True
        )
        return 200, msg.payload()

    async def delete_webhook_message(self, ctx: Ctx) -> tuple[int, Any]:
        msg = self._webhook_message(ctx)
        self.sb.messaging.delete_message(msg)
        if ctx.handle is not None and msg is ctx.handle.original:
            ctx.handle.original_deleted = True
        return 204, None

    # --- interaction callbacks -------------------------------------------------

    async def interaction_callback(self, ctx: Ctx) -> tuple[int, Any]:
        handle = self.sb.interactions.get(ctx.int_param("interaction_id", "interaction", 10062))
        if handle is None or ctx.params.get("interaction_token") != handle.token:
            raise unknown("interaction", 10062)
        ctx.handle = handle
        now = ctx.record.at
        started = handle.dispatched_at if handle.dispatched_at is not None else handle.created_at
        latency = now - started
        payload = ctx.json_object()
        cb_type = payload.get("type")
        data = payload.get("data")

        def reject(status: int, code: int, message: str, body: dict[str, Any] | None = None) -> ApiError:
            handle.callbacks.append(
                CallbackRecord(cb_type if isinstance(cb_type, int) else -1, data, now, latency, False, code)
            )
            return ApiError(status, code, message, body)

        deadline = self.sb.ack_deadline
        if deadline is not None and latency > deadline and not handle.acknowledged:
            _log.warning(
                "interaction %s acknowledged after %.2fs (> %.1fs): Unknown interaction", handle.id, latency, deadline
            )
            raise reject(404, 10062, "Unknown interaction")
        if handle.acknowledged:
            raise reject(400, 40060, "Interaction has already been acknowledged.")
        if cb_type not in ix.ALLOWED_CALLBACKS.get(handle.type, set()):
            errors = FormErrors()
            errors.add(
                ("type",),
                "INTERACTION_CALLBACK_TYPE_INVALID",
                f"Interaction callback type {cb_type} is not valid for interaction type {handle.type}",
            )
            raise reject(400, 50035, "Invalid Form Body", errors.body())

        message: Message | None = None
        data_obj = data if isinstance(data, dict) else {}
        if cb_type == ix.CHANNEL_MESSAGE:
            try:
                self._validate_create(data_obj, ctx.files)
            except ApiError as exc:
                raise reject(exc.status, exc.body.get("code", 0), exc.body.get("message", ""), exc.body) from None
            message = self._interaction_message(ctx, handle, data_obj, loading=False)
        elif cb_type == ix.DEFERRED_CHANNEL_MESSAGE:
            message = self._interaction_message(ctx, handle, {"flags": data_obj.get("flags", 0)}, loading=True)
        elif cb_type in (ix.DEFERRED_UPDATE_MESSAGE, ix.UPDATE_MESSAGE):
            message = handle.source_message
            if message is None:
                errors = FormErrors()
                errors.add(("type",), "INTERACTION_NO_MESSAGE", "This interaction has no message to update")
                raise reject(400, 50035, "Invalid Form Body", errors.body())
            if cb_type == ix.UPDATE_MESSAGE:
                try:
                    self.sb.messaging.edit_message(
                        message, data_obj, ctx.files, source=ctx.record.key, validate=self._validate_edit
                    )
                except ApiError as exc:
                    raise reject(exc.status, exc.body.get("code", 0), exc.body.get("message", ""), exc.body) from None
            handle.original = message
        elif cb_type == ix.AUTOCOMPLETE_RESULT:
            errors = FormErrors()
            validate_choices(data_obj.get("choices", []), errors, ("data", "choices"))
            if errors:
                raise reject(400, 50035, "Invalid Form Body", errors.body())
            handle.choices = list(data_obj.get("choices", []))
        elif cb_type == ix.MODAL:
            errors = FormErrors()
            validate_modal(data_obj, errors)
            if errors:
                raise reject(400, 50035, "Invalid Form Body", errors.body())
            handle.modal = data_obj
        handle.callbacks.append(CallbackRecord(cb_type, data, now, latency, True))
        self.sb.emit_interaction_event("ack", handle)

        if not ctx.flag("with_response"):
            return 204, None
        interaction: dict[str, Any] = {"id": str(handle.id), "type": handle.type}
        resource: dict[str, Any] = {"type": cb_type}
        if message is not None:
            interaction["response_message_id"] = str(message.id)
            interaction["response_message_loading"] = bool(message.flags & LOADING)
            interaction["response_message_ephemeral"] = bool(message.flags & EPHEMERAL)
            if cb_type in (ix.CHANNEL_MESSAGE, ix.DEFERRED_CHANNEL_MESSAGE, ix.UPDATE_MESSAGE):
                resource["message"] = message.payload()
        return 200, {"interaction": interaction, "resource": resource}

    def _interaction_message(
        self, ctx: Ctx, handle: ix.InteractionHandle, data: dict[str, Any], *, loading: bool
    ) -> Message:
        extra = LOADING if loading else 0
        msg = self.sb.messaging.create_message(
            handle.channel,
            self.sb.bot_user,
            KIND_INTERACTION,
            data if not loading else {},
            ctx.files if not loading else [],
            source=ctx.record.key,
            webhook_id=self.sb.application_id,
            application_id=self.sb.application_id,
            interaction=handle,
            type_=20 if handle.type == ix.APPLICATION_COMMAND else 0,
            flags=(int(data.get("flags") or 0) & (EPHEMERAL | (1 << 2) | (1 << 12) | (1 << 15))) | extra,
            visible_to=handle.member.id,
        )
        handle.original = msg
        return msg
