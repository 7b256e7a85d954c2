"""Interaction payload construction and the handle that records the bot's answer.

The option payloads are derived from the command definitions the bot synced,
so a test says ``invoke("mine start", {"amount": 5})`` and gets exactly the
nested SUB_COMMAND / SUB_COMMAND_GROUP structure and ``resolved`` data that
the Discord client would produce.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import SandboxError
from .models import Attachment, Channel, Guild, Member, Message, Revision, Role, User
from .records import CallbackRecord, RequestRecord

if TYPE_CHECKING:
    from .server import Sandbox

# Interaction types (Discord API)
PING = 1
APPLICATION_COMMAND = 2
MESSAGE_COMPONENT = 3
AUTOCOMPLETE = 4
MODAL_SUBMIT = 5

# Callback types
PONG = 1
CHANNEL_MESSAGE = 4
DEFERRED_CHANNEL_MESSAGE = 5
DEFERRED_UPDATE_MESSAGE = 6
UPDATE_MESSAGE = 7
AUTOCOMPLETE_RESULT = 8
MODAL = 9
LAUNCH_ACTIVITY = 12

CALLBACK_NAMES = {
    PONG: "PONG",
    CHANNEL_MESSAGE: "CHANNEL_MESSAGE_WITH_SOURCE",
    DEFERRED_CHANNEL_MESSAGE: "DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE",
    DEFERRED_UPDATE_MESSAGE: "DEFERRED_UPDATE_MESSAGE",
    UPDATE_MESSAGE: "UPDATE_MESSAGE",
    AUTOCOMPLETE_RESULT: "APPLICATION_COMMAND_AUTOCOMPLETE_RESULT",
    MODAL: "MODAL",
    LAUNCH_ACTIVITY: "LAUNCH_ACTIVITY",
}

# Which callback types each interaction type may use (Discord rejects the rest with 400).
ALLOWED_CALLBACKS = {
    APPLICATION_COMMAND: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, MODAL, LAUNCH_ACTIVITY},
    MESSAGE_COMPONENT: {
        CHANNEL_MESSAGE,
        DEFERRED_CHANNEL_MESSAGE,
        DEFERRED_UPDATE_MESSAGE,
        UPDATE_MESSAGE,
        MODAL,
        LAUNCH_ACTIVITY,
    },
    AUTOCOMPLETE: {AUTOCOMPLETE_RESULT},
    MODAL_SUBMIT: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE},
}

# Option types
SUB_COMMAND = 1
SUB_COMMAND_GROUP = 2
STRING = 3
INTEGER = 4
BOOLEAN = 5
USER = 6
CHANNEL = 7
ROLE = 8
MENTIONABLE = 9
NUMBER = 10
ATTACHMENT = 11
# Types whose value is the JSON value itself: a modified client can put anything there.
RAW_TYPES = (STRING, INTEGER, BOOLEAN, NUMBER)


@dataclass
class Upload:
    """A file a simulated user attaches to an ATTACHMENT option."""

    filename: str
    data: bytes
    content_type: str | None = None


class InteractionHandle:
    """Everything observable about one interaction: the payload sent and every answer received.

    Tests keep the handle and wait on it; the sandbox mutates it as callbacks,
    edits and followups arrive.
    """

    def __init__(
        self,
        sandbox: Sandbox,
        *,
        id: int,
        token: str,
        type: int,
        guild: Guild,
        channel: Channel,
        member: Member,
        data: dict[str, Any],
        command_path: str | None = None,
        source_message: Message | None = None,
        parent: InteractionHandle | None = None,
    ) -> None:
        self._sandbox = sandbox
        self.id = id
        self.token = token
        self.type = type
        self.guild = guild
        self.channel = channel
        self.member = member
        self.data = data
        self.command_path = command_path
        self.source_message = source_message
        self.parent = parent
        self.created_at = time.monotonic()
        self.dispatched_at: float | None = None
        self.callbacks: list[CallbackRecord] = []
        self.original: Message | None = None
        self.original_deleted = False
        self.followups: list[Message] = []
        self.choices: list[dict[str, Any]] | None = None
        self.modal: dict[str, Any] | None = None
        self.rejected: list[RequestRecord] = []
        self.payload: dict[str, Any] = {}
        # Component updates edit a message that pre-dates the interaction; remember where "its" edits begin.
        self._first_revision_index = len(source_message.revisions) if source_message is not None else 0

    def __repr__(self) -> str:
        what = self.command_path or self.data.get("custom_id") or self.data.get("name")
        return f"<InteractionHandle id={self.id} type={self.type} {what!r} ack={self.ack_type_name}>"

    # --- derived state -------------------------------------------------

    @property
    def ack(self) -> CallbackRecord | None:
        return next((c for c in self.callbacks if c.accepted), None)

    @property
    def acknowledged(self) -> bool:
        return self.ack is not None

    @property
    def ack_type(self) -> int | None:
        ack = self.ack
        return ack.type if ack else None

    @property
    def ack_type_name(self) -> str | None:
        t = self.ack_type
        return CALLBACK_NAMES.get(t, str(t)) if t is not None else None

    @property
    def ack_latency(self) -> float | None:
        ack = self.ack
        return ack.latency if ack else None

    @property
    def deferred(self) -> bool:
        return self.ack_type in (DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE_MESSAGE)

    @property
    def response(self) -> Message | None:
        """The original response message (for component updates: the message that was updated)."""
        return self.original

    @property
    def ephemeral(self) -> bool:
        return bool(self.original is not None and self.original.ephemeral)

    @property
    def content(self) -> str | None:
        return self.original.content if self.original is not None else None

    @property
    def embeds(self) -> list[dict[str, Any]]:
        return self.original.embeds if self.original is not None else []

    @property
    def edits(self) -> list[Revision]:
        """Revisions of the original response after its creation (a deferred 'thinking' state counts as creation)."""
        if self.original is None:
            return []
        if self.ack_type in (DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE) and self.source_message is self.original:
            # For component updates the message pre-dates the interaction; only count what it changed.
            return self.original.revisions[self._first_revision_index :]
        return self.original.edits

    @property
    def messages(self) -> list[Message]:
        out = [self.original] if self.original is not None else []
        return out + self.followups

    def metadata_payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "type": self.type,
            "user": self.member.user.payload(),
            "authorizing_integration_owners": {"0": str(self.guild.id)},
        }
        if self.type == APPLICATION_COMMAND and self.command_path:
            data["name"] = self.command_path
            data["command_type"] = 1
        if self.original is not None and self.original is not self.source_message:
            data["original_response_message_id"] = str(self.original.id)
        if self.source_message is not None:
            data["interacted_message_id"] = str(self.source_message.id)
        return data

    def describe(self) -> str:
        parts = [repr(self)]
        if self.rejected:
            parts.append(
                "rejected requests: " + ", ".join(f"{r.key} -> {r.status} {r.response}" for r in self.rejected)
            )
        if self.original is not None:
            parts.append(f"original={self.original.content!r} loading={self.original.loading}")
        if self.followups:
            parts.append(f"followups={[m.content for m in self.followups]!r}")
        return "; ".join(parts)

    # --- waiting -------------------------------------------------------

    async def wait_for(
        self, predicate: Callable[[InteractionHandle], Any], timeout: float = 5.0, what: str = "predicate"
    ) -> InteractionHandle:
        await self._sandbox.wait_until(
            lambda: predicate(self) or None, timeout=timeout, describe=lambda: f"{what} on {self.describe()}"
        )
        return self

    async def wait_ack(self, timeout: float = 3.0) -> float:
        """Wait for the first accepted callback; returns seconds from dispatch to that callback."""
        await self.wait_for(lambda h: h.acknowledged, timeout=timeout, what="acknowledgement")
        latency = self.ack_latency
        assert latency is not None
        return latency

    async def wait_response(self, timeout: float = 5.0) -> Message:
        """Wait until the original response exists and is no longer a 'thinking' placeholder."""
        await self.wait_for(
            lambda h: h.original is not None and not h.original.loading, timeout=timeout, what="a non-deferred response"
        )
        assert self.original is not None
        return self.original

    async def wait_edits(self, count: int, timeout: float = 5.0) -> list[Revision]:
        await self.wait_for(lambda h: len(h.edits) >= count, timeout=timeout, what=f"{count} edit(s)")
        return self.edits

    async def wait_followups(self, count: int = 1, timeout: float = 5.0) -> list[Message]:
        await self.wait_for(lambda h: len(h.followups) >= count, timeout=timeout, what=f"{count} followup(s)")
        return self.followups

    async def wait_choices(self, timeout: float = 3.0) -> list[dict[str, Any]]:
        await self.wait_for(lambda h: h.choices is not None, timeout=timeout, what="autocomplete choices")
        assert self.choices is not None
        return self.choices

    async def wait_modal(self, timeout: float = 3.0) -> dict[str, Any]:
        await self.wait_for(lambda h: h.modal is not None, timeout=timeout, what="a modal")
        assert self.modal is not None
        return self.modal


# --- command lookup and option building --------------------------------


def split_path(path: str) -> list[str]:
    parts = path.strip().lstrip("/").split()
    if not parts:
        raise SandboxError("empty command")
    return parts


def resolve_leaf(command: dict[str, Any], parts: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Walk subcommand groups/subcommands; return (chain of sub-option defs, leaf option defs)."""
    chain: list[dict[str, Any]] = []
    options: list[dict[str, Any]] = command.get("options") or []
    for part in parts[1:]:
        sub = next(
            (o for o in options if o.get("type") in (SUB_COMMAND, SUB_COMMAND_GROUP) and o["name"] == part), None
        )
        if sub is None:
            names = [o["name"] for o in options if o.get("type") in (SUB_COMMAND, SUB_COMMAND_GROUP)]
            raise SandboxError(f"/{' '.join(parts)}: no subcommand {part!r} (available: {', '.join(names) or 'none'})")
        chain.append(sub)
        options = sub.get("options") or []
    if any(o.get("type") in (SUB_COMMAND, SUB_COMMAND_GROUP) for o in options):
        names = [o["name"] for o in options]
        raise SandboxError(f"/{' '.join(parts)} needs a subcommand: {', '.join(names)}")
    return chain, options


def nest_options(chain: list[dict[str, Any]], leaf: list[dict[str, Any]]) -> list[dict[str, Any]]:
    options = leaf
    for sub in reversed(chain):
        options = [{"type": sub["type"], "name": sub["name"], "options": options}]
    return options


def _coerce_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "yes", "y", "1", "on"):
            return True
        if lowered in ("false", "no", "n", "0", "off"):
            return False
    if isinstance(value, int):
        return bool(value)
    raise SandboxError(f"not a boolean: {value!r}")


class OptionBuilder:
    """Turns simple Python values into Discord option payloads plus ``resolved`` data."""

    def __init__(
        self, sandbox: Sandbox, guild: Guild, channel: Channel, member: Member, *, validate: bool = True
    ) -> None:
        self.sandbox = sandbox
        # False: a modified client's raw values (see ``Sandbox.invoke(validate=False)``).
        self.validate = validate
        self.guild = guild
        self.channel = channel
        self.member = member
        self.resolved: dict[str, dict[str, Any]] = {}

    def build(
        self,
        path: str,
        definitions: list[dict[str, Any]],
        values: Mapping[str, Any],
        *,
        focused: str | None = None,
    ) -> list[dict[str, Any]]:
        by_name = {d["name"]: d for d in definitions}
        unknown = [k for k in values if k not in by_name]
        if unknown:
            raise SandboxError(
                f"/{path}: unknown option(s) {', '.join(unknown)}; expected {', '.join(by_name) or 'none'}"
            )
        if focused is not None and focused not in by_name:
            raise SandboxError(f"/{path}: focused option {focused!r} does not exist")
        out: list[dict[str, Any]] = []
        for definition in definitions:
            name = definition["name"]
            if name == focused:
                # Autocomplete sends the user's partial input verbatim, as a string, whatever the type.
                raw = values.get(name, "")
                out.append(
                    {
                        "type": definition["type"],
                        "name": name,
                        "value": "" if raw is None else str(raw),
                        "focused": True,
                    }
                )
                continue
            if name not in values or values[name] is None:
                if definition.get("required") and focused is None and self.validate:
                    raise SandboxError(f"/{path}: missing required option {name!r}")
                continue
            if not self.validate and definition["type"] in RAW_TYPES:
                out.append({"type": definition["type"], "name": name, "value": values[name]})
                continue
            value = self.convert(path, definition, values[name], validate=focused is None and self.validate)
            out.append({"type": definition["type"], "name": name, "value": value})
        return out

    def convert(self, path: str, definition: dict[str, Any], value: Any, *, validate: bool = True) -> Any:
        otype = definition["type"]
        name = definition["name"]
        choices = definition.get("choices") or []
        if choices:
            # The Discord client lets a user pick a choice by its display name.
            for choice in choices:
                if isinstance(value, str) and value == choice["name"] and value != choice["value"]:
                    value = choice["value"]
                    break
        try:
            if otype == STRING:
                converted: Any = str(value)
            elif otype == INTEGER:
                if isinstance(value, bool):
                    raise SandboxError("booleans are not integers")
                if isinstance(value, float) and not value.is_integer():
                    raise SandboxError(f"{value!r} is not an integer")
                converted = int(value)
            elif otype == NUMBER:
                converted = float(value)
                if math.isnan(converted) or math.isinf(converted):
                    raise SandboxError("not a finite number")
            elif otype == BOOLEAN:
                converted = _coerce_bool(value)
            elif otype == USER:
                converted = self._user(value)
            elif otype == CHANNEL:
                converted = self._channel(value, definition, check_type=validate)
            elif otype == ROLE:
                converted = self._role(value)
            elif otype == MENTIONABLE:
                converted = self._mentionable(value)
            elif otype == ATTACHMENT:
                converted = self._attachment(value)
            else:
                raise SandboxError(f"unsupported option type {otype}")
        except (TypeError, ValueError) as exc:
            raise SandboxError(f"/{path}: option {name!r}: {exc}") from None
        except SandboxError as exc:
            raise SandboxError(f"/{path}: option {name!r}: {exc}") from None
        if validate:
            self._validate(path, definition, converted)
        return converted

    def _validate(self, path: str, definition: dict[str, Any], value: Any) -> None:
        name = definition["name"]
        choices = definition.get("choices") or []
        if choices and value not in [c["value"] for c in choices]:
            allowed = ", ".join(str(c["name"]) for c in choices)
            raise SandboxError(f"/{path}: option {name!r} must be one of: {allowed}")
        if definition["type"] in (INTEGER, NUMBER):
            lo, hi = definition.get("min_value"), definition.get("max_value")
            if lo is not None and value < lo:
                raise SandboxError(f"/{path}: option {name!r} must be >= {lo}")
            if hi is not None and value > hi:
                raise SandboxError(f"/{path}: option {name!r} must be <= {hi}")
        if definition["type"] == STRING:
            lo, hi = definition.get("min_length"), definition.get("max_length")
            if lo is not None and len(value) < lo:
                raise SandboxError(f"/{path}: option {name!r} must be at least {lo} characters")
            if hi is not None and len(value) > hi:
                raise SandboxError(f"/{path}: option {name!r} must be at most {hi} characters")

    # The resolved maps mirror what Discord attaches so that discord.py builds Member/Role/... objects.

    def _add_user(self, user: User) -> None:
        self.resolved.setdefault("users", {})[str(user.id)] = user.payload()
        member = self.guild.members.get(user.id)
        if member is not None:
            self.resolved.setdefault("members", {})[str(user.id)] = member.payload(
                with_user=False, permissions=member.permissions_in(self.channel)
            )

    def _user(self, value: Any) -> str:
        user: User | None = None
        if isinstance(value, Member):
            user = value.user
        elif isinstance(value, User):
            user = value
        else:
            member = self.guild.find_member(value if not isinstance(value, str) else value.strip())
            if member is not None:
                user = member.user
            elif isinstance(value, (int, str)):
                user = self.sandbox.find_user(value)
        if user is None:
            raise SandboxError(f"no user or member {value!r}")
        self._add_user(user)
        return str(user.id)

    def _role(self, value: Any) -> str:
        role = self.guild.find_role(value) if not isinstance(value, Role) else self.guild.roles.get(value.id)
        if role is None:
            raise SandboxError(f"no role {value!r} in {self.guild.name}")
        self.resolved.setdefault("roles", {})[str(role.id)] = role.payload()
        return str(role.id)

    def _mentionable(self, value: Any) -> str:
        if isinstance(value, Role):
            return self._role(value)
        if isinstance(value, str) and value.startswith("<@&"):
            return self._role(value)
        try:
            return self._user(value)
        except SandboxError:
            return self._role(value)

    def _channel(self, value: Any, definition: dict[str, Any], *, check_type: bool = True) -> str:
        channel = self.guild.find_channel(value)
        if channel is None:
            raise SandboxError(f"no channel {value!r} in {self.guild.name}")
        allowed = definition.get("channel_types")
        if check_type and allowed and channel.type not in allowed:
            raise SandboxError(f"channel #{channel.name} is not an allowed type")
        data = channel.payload()
        data["permissions"] = str(self.member.permissions_in(channel))
        self.resolved.setdefault("channels", {})[str(channel.id)] = data
        return str(channel.id)

    def _attachment(self, value: Any) -> str:
        if isinstance(value, Attachment):
            attachment = value
        else:
            if isinstance(value, Upload):
                upload = value
            elif isinstance(value, tuple) and len(value) in (2, 3):
                upload = Upload(*value)
            else:
                raise SandboxError("attachments must be Upload(filename, data) or (filename, data)")
            attachment = self.sandbox.messaging.store_attachment(
                self.channel, upload.filename, upload.data, upload.content_type
            )
        self.resolved.setdefault("attachments", {})[str(attachment.id)] = attachment.payload()
        return str(attachment.id)


OptionValues = Mapping[str, Any] | None
