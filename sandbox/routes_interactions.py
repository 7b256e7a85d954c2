"""REST routes for interactions: the callback that acknowledges one (deadline, one callback only,
the types each interaction may use), its original response and followups (reached through the
interaction webhook routes in sandbox.routes_webhooks)."""

from __future__ import annotations

import logging
from typing import Any

from . import interactions as ix
from .errors import ApiError
from .models import EPHEMERAL, KIND_FOLLOWUP, KIND_INTERACTION, LOADING, Message
from .records import CallbackRecord
from .routes import Ctx, Routes, unknown
from .validation import FormErrors, validate_choices, validate_modal

_log = logging.getLogger(__name__)


class InteractionRoutes(Routes):
    """Interaction callbacks, and the interaction webhook behind followups and the original response."""

    # --- interaction webhooks (reached through sandbox.routes_webhooks) ----------

    def interaction_for(self, ctx: Ctx) -> ix.InteractionHandle | None:
        """Interaction webhooks are addressed as /webhooks/{application_id}/{interaction_token}."""
        if ctx.params.get("webhook_id") != str(self.sb.application_id):
            return None
        handle = self.sb.interactions_by_token.get(ctx.params.get("webhook_token", ""))
        if handle is None:
            raise unknown("Webhook", 10015)
        ctx.handle = handle
        return handle

    def followup(self, ctx: Ctx, handle: ix.InteractionHandle, payload: dict[str, Any]) -> tuple[int, Any]:
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
