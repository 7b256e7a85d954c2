"""The Discord REST API surface (/api/v10/...) that discord.py uses, backed by sandbox state.

Routing is done here rather than with aiohttp's router so that every request,
matched or not, is recorded with the same route templates discord.py uses
(e.g. "/webhooks/{webhook_id}/{webhook_token}"), which tests and fault
patterns can name.  This module holds the route table (every route the sandbox answers, in
one place) and that pipeline (recording, faults, auth, rate-limit buckets, answering); the
handlers are grouped by resource in the sandbox.routes_* modules.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .errors import ApiError
from .faults import VIA_HEADER, bucket_hash, rate_limit_headers
from .records import RequestRecord, SandboxEvent, UploadedFile
from .routes import Ctx, Handler
from .routes_application import ApplicationRoutes
from .routes_guilds import GuildRoutes
from .routes_interactions import InteractionRoutes
from .routes_messages import MessageRoutes
from .routes_webhooks import WebhookRoutes
from .validation import FormErrors

if TYPE_CHECKING:
    from .server import Sandbox

_log = logging.getLogger(__name__)

_VERSION_PREFIX = re.compile(r"^v(\d+)/")
_RECORDED_HEADERS = ("authorization", "content-type", "user-agent", "x-audit-log-reason")


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
        # The handlers, one group per resource as Discord's API reference groups them.
        app = ApplicationRoutes(sandbox)
        guilds = GuildRoutes(sandbox)
        messages = MessageRoutes(sandbox)
        interactions = InteractionRoutes(sandbox)
        webhooks = WebhookRoutes(sandbox, interactions)
        r = self._add
        # Order matters only where a literal segment could also match a parameter.
        r("GET", "/users/@me", app.get_me)
        r("GET", "/users/{user_id}", app.get_user)
        r("GET", "/oauth2/applications/@me", app.get_application)
        r("GET", "/applications/@me", app.get_application)
        r("GET", "/gateway", app.get_gateway, auth=False)
        r("GET", "/gateway/bot", app.get_gateway_bot)
        r("GET", "/applications/{application_id}/commands", app.list_commands)
        r("PUT", "/applications/{application_id}/commands", app.bulk_commands)
        r("POST", "/applications/{application_id}/commands", app.upsert_command)
        r("GET", "/applications/{application_id}/commands/{command_id}", app.get_command)
        r("PATCH", "/applications/{application_id}/commands/{command_id}", app.edit_command)
        r("DELETE", "/applications/{application_id}/commands/{command_id}", app.delete_command)
        r("GET", "/applications/{application_id}/guilds/{guild_id}/commands/permissions", app.command_permissions)
        r("GET", "/applications/{application_id}/guilds/{guild_id}/commands", app.list_commands)
        r("PUT", "/applications/{application_id}/guilds/{guild_id}/commands", app.bulk_commands)
        r("POST", "/applications/{application_id}/guilds/{guild_id}/commands", app.upsert_command)
        r("GET", "/applications/{application_id}/guilds/{guild_id}/commands/{command_id}", app.get_command)
        r("PATCH", "/applications/{application_id}/guilds/{guild_id}/commands/{command_id}", app.edit_command)
        r("DELETE", "/applications/{application_id}/guilds/{guild_id}/commands/{command_id}", app.delete_command)
        r("GET", "/guilds/{guild_id}", guilds.get_guild)
        r("GET", "/guilds/{guild_id}/channels", guilds.get_guild_channels)
        r("GET", "/guilds/{guild_id}/roles", guilds.get_guild_roles)
        r("GET", "/guilds/{guild_id}/members", guilds.get_guild_members)
        r("GET", "/guilds/{guild_id}/members/{user_id}", guilds.get_guild_member)
        r("GET", "/guilds/{guild_id}/webhooks", guilds.get_guild_webhooks)
        r("GET", "/channels/{channel_id}", messages.get_channel)
        r("GET", "/channels/{channel_id}/messages", messages.list_messages)
        r("POST", "/channels/{channel_id}/messages", messages.create_message)
        r("GET", "/channels/{channel_id}/messages/{message_id}", messages.get_message)
        r("PATCH", "/channels/{channel_id}/messages/{message_id}", messages.edit_message)
        r("DELETE", "/channels/{channel_id}/messages/{message_id}", messages.delete_message)
        r("POST", "/channels/{channel_id}/typing", messages.typing)
        r("PUT", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me", messages.add_reaction)
        r("POST", "/channels/{channel_id}/webhooks", webhooks.create_webhook)
        r("GET", "/channels/{channel_id}/webhooks", webhooks.get_channel_webhooks)
        r("GET", "/webhooks/{webhook_id}", webhooks.get_webhook)
        r("PATCH", "/webhooks/{webhook_id}", webhooks.edit_webhook)
        r("DELETE", "/webhooks/{webhook_id}", webhooks.delete_webhook)
        r("GET", "/webhooks/{webhook_id}/{webhook_token}", webhooks.get_webhook, auth=False)
        r("PATCH", "/webhooks/{webhook_id}/{webhook_token}", webhooks.edit_webhook, auth=False)
        r("DELETE", "/webhooks/{webhook_id}/{webhook_token}", webhooks.delete_webhook, auth=False)
        r("POST", "/webhooks/{webhook_id}/{webhook_token}", webhooks.execute_webhook, auth=False)
        r("GET", "/webhooks/{webhook_id}/{webhook_token}/messages/@original", webhooks.get_webhook_message, auth=False)
        r(
            "PATCH",
            "/webhooks/{webhook_id}/{webhook_token}/messages/@original",
            webhooks.edit_webhook_message,
            auth=False,
        )
        r(
            "DELETE",
            "/webhooks/{webhook_id}/{webhook_token}/messages/@original",
            webhooks.delete_webhook_message,
            auth=False,
        )
        r(
            "GET",
            "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
            webhooks.get_webhook_message,
            auth=False,
        )
        r(
            "PATCH",
            "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
            webhooks.edit_webhook_message,
            auth=False,
        )
        r(
            "DELETE",
            "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
            webhooks.delete_webhook_message,
            auth=False,
        )
        r(
            "POST",
            "/interactions/{interaction_id}/{interaction_token}/callback",
            interactions.interaction_callback,
            auth=False,
        )

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
