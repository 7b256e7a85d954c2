"""REST routes for webhooks: created and listed in a channel, read, edited and deleted, executed,
and their messages read, edited and deleted.

Interaction webhooks share these routes (/webhooks/{application_id}/{interaction_token}): followups
and the original response are handed to sandbox.routes_interactions, which knows the interaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ApiError
from .models import KIND_WEBHOOK, Message, Webhook
from .permissions import MANAGE_WEBHOOKS
from .routes import Ctx, Routes, unknown
from .validation import FormErrors

if TYPE_CHECKING:
    from .routes_interactions import InteractionRoutes
    from .server import Sandbox


class WebhookRoutes(Routes):
    """Webhooks and their messages; ``interactions`` answers the interaction webhooks."""

    def __init__(self, sandbox: Sandbox, interactions: InteractionRoutes) -> None:
        super().__init__(sandbox)
        self.interactions = interactions

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
        handle = self.interactions.interaction_for(ctx)
        payload = ctx.json_object()
        if handle is not None:
            return self.interactions.followup(ctx, handle, payload)
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

    def _webhook_message(self, ctx: Ctx) -> Message:
        handle = self.interactions.interaction_for(ctx)
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
