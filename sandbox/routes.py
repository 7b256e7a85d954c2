"""What every REST route handler shares: the request as a handler sees it (``Ctx``), Discord's
"Unknown ..." and permission errors, and the lookups and checks used across resources.

The route table and the request pipeline that calls the handlers are in sandbox.rest; the
handlers themselves, grouped by resource as Discord's API reference groups them, are in the
sandbox.routes_* modules.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import interactions as ix
from .errors import ApiError
from .models import Channel
from .permissions import VIEW_CHANNEL
from .records import RequestRecord, UploadedFile
from .validation import FormErrors, is_empty_message, validate_message

if TYPE_CHECKING:
    from .server import Sandbox


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


class Routes:
    """A group of route handlers; each works on the ``Sandbox``'s state through ``self.sb``."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sb = sandbox

    def _channel(self, ctx: Ctx) -> Channel:
        channel = self.sb.channels.get(ctx.int_param("channel_id", "Channel", 10003))
        if channel is None:
            raise unknown("Channel", 10003)
        return channel

    def _bot_can(self, channel: Channel, perms: int, error: tuple[int, int, str] = MISSING_PERMISSIONS) -> None:
        if not self.sb.has_bot(channel.guild):
            raise ApiError(*MISSING_ACCESS)
        member = self.sb.bot_member(channel.guild)
        have = member.permissions_in(channel)
        if not have & VIEW_CHANNEL:
            raise ApiError(*MISSING_ACCESS)
        if have & perms != perms:
            raise ApiError(*error)

    def _validate_create(self, payload: dict[str, Any], files: list[UploadedFile]) -> None:
        errors = FormErrors()
        validate_message(payload, errors)
        if errors:
            raise ApiError(400, 50035, "Invalid Form Body", errors.body())
        if is_empty_message(payload, bool(files)):
            raise ApiError(400, 50006, "Cannot send an empty message")

    def _validate_edit(self, payload: dict[str, Any]) -> None:
        errors = FormErrors()
        validate_message(payload, errors)
        if errors:
            raise ApiError(400, 50035, "Invalid Form Body", errors.body())
