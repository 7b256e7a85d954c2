"""REST routes for channels and their messages: read, list, post (with replies and files),
edit, delete, typing and reactions, each checked against the bot's permissions in the channel."""

from __future__ import annotations

from typing import Any

from .errors import ApiError
from .models import KIND_BOT, Channel, Message
from .permissions import ADD_REACTIONS, MANAGE_MESSAGES, READ_MESSAGE_HISTORY, SEND_MESSAGES
from .routes import Ctx, Routes, unknown
from .validation import FormErrors


class MessageRoutes(Routes):
    """A channel and its messages, as the bot reads and writes them."""

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
