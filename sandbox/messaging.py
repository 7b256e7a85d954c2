"""Messages, their attachments, and webhooks: posted, edited and deleted as Discord does it.

REST handlers (sandbox.routes_*), simulated users (sandbox.actions) and tests post through here.
Each change records a revision on the message, reaches the bot as its gateway event
(MESSAGE_CREATE/UPDATE/DELETE, WEBHOOKS_UPDATE; never for an ephemeral message) and tells
the sandbox's listeners.  The messages themselves live in the ``Sandbox``'s state.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .errors import ApiError
from .gateway import GUILD_MESSAGES, GUILD_WEBHOOKS
from .ids import iso_now
from .ids import webhook_token as new_webhook_token
from .models import (
    COMPONENTS_V2,
    EPHEMERAL,
    LOADING,
    SUPPRESS_EMBEDS,
    Attachment,
    Channel,
    Message,
    User,
    Webhook,
)
from .records import SandboxEvent, UploadedFile

if TYPE_CHECKING:
    from .interactions import InteractionHandle
    from .server import Sandbox

_FILE_FIELD = re.compile(r"^files\[(\d+)\]$")


class Messaging:
    """Posting, editing and deleting messages and webhooks; ``Sandbox`` hands its public calls here."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sb = sandbox

    def store_attachment(
        self,
        channel: Channel,
        filename: str,
        data: bytes,
        content_type: str | None = None,
        description: str | None = None,
    ) -> Attachment:
        attachment_id = self.sb.new_id()
        if not content_type or content_type == "application/octet-stream":
            # discord.py uploads everything as octet-stream; Discord derives the type from the name.
            content_type = mimetypes.guess_type(filename)[0] or content_type
        attachment = Attachment(
            id=attachment_id,
            filename=filename,
            data=data,
            content_type=content_type,
            url=self.attachment_url(attachment_id, filename),
            description=description,
        )
        self.sb.attachments[attachment_id] = attachment
        return attachment

    def attachment_url(self, attachment_id: int, filename: str) -> str:
        return f"{self.sb.base_url}/attachments/{attachment_id}/{quote(filename)}"

    def _attachments_from(
        self,
        channel: Channel,
        entries: Any,
        files: list[UploadedFile],
        existing: list[Attachment],
    ) -> list[Attachment]:
        uploads: dict[int, UploadedFile] = {}
        for i, upload in enumerate(files):
            m = _FILE_FIELD.match(upload.field_name)
            uploads[int(m.group(1)) if m else i] = upload
        if not isinstance(entries, list):
            new = [self.store_attachment(channel, u.filename, u.data, u.content_type) for u in uploads.values()]
            return list(existing) + new
        by_id = {a.id: a for a in existing}
        result: list[Attachment] = []
        for entry in entries:
            try:
                ref = int(entry.get("id"))
            except (TypeError, ValueError):
                continue
            if ref in by_id:
                kept = by_id[ref]
                if entry.get("description") is not None:
                    kept.description = entry["description"]
                result.append(kept)
            elif ref in uploads:
                upload = uploads[ref]
                result.append(
                    self.store_attachment(
                        channel,
                        entry.get("filename") or upload.filename,
                        upload.data,
                        upload.content_type,
                        entry.get("description"),
                    )
                )
        return result

    def create_message(
        self,
        channel: Channel,
        author: User,
        kind: str,
        payload: Mapping[str, Any],
        files: list[UploadedFile],
        *,
        source: str,
        webhook_id: int | None = None,
        application_id: int | None = None,
        interaction: InteractionHandle | None = None,
        type_: int = 0,
        flags: int | None = None,
        allowed_flags: int = SUPPRESS_EMBEDS | COMPONENTS_V2,
        visible_to: int | None = None,
    ) -> Message:
        if flags is None:
            flags = int(payload.get("flags") or 0) & allowed_flags
        msg = Message(
            id=self.sb.new_id(),
            channel=channel,
            author=author,
            kind=kind,
            content=str(payload.get("content") or ""),
            embeds=[dict(e, type=e.get("type", "rich")) for e in (payload.get("embeds") or [])],
            components=list(payload.get("components") or []),
            flags=flags,
            attachments=self._attachments_from(channel, payload.get("attachments"), files, []),
            tts=bool(payload.get("tts")),
            type=type_,
            webhook_id=webhook_id,
            application_id=application_id,
            interaction=interaction,
            visible_to=visible_to if flags & EPHEMERAL else None,
            message_reference=(
                {
                    "type": 0,
                    "message_id": str(payload["message_reference"].get("message_id")),
                    "channel_id": str(channel.id),
                    "guild_id": str(channel.guild.id),
                }
                if payload.get("message_reference")
                else None
            ),
        )
        msg.record_revision(source)
        channel.messages.append(msg)
        self.sb.messages[msg.id] = msg
        self.sb.gateway.dispatch_message("MESSAGE_CREATE", msg)
        self.sb.notifier.notify(SandboxEvent("message_create", message=msg, interaction=interaction))
        return msg

    def edit_message(
        self,
        msg: Message,
        payload: Mapping[str, Any],
        files: list[UploadedFile],
        *,
        source: str,
        validate: Callable[[dict[str, Any]], None] | None = None,
        clear_loading: bool = False,
    ) -> Message:
        if validate is not None:
            validate(dict(payload))
        was_loading = msg.loading
        content = msg.content
        embeds = msg.embeds
        components = msg.components
        flags = msg.flags
        attachments = msg.attachments
        if "content" in payload:
            content = str(payload.get("content") or "")
        if "embeds" in payload:
            embeds = [dict(e, type=e.get("type", "rich")) for e in (payload.get("embeds") or [])]
        if "components" in payload:
            components = list(payload.get("components") or [])
        if payload.get("flags") is not None:
            # Ephemerality and the loading state are fixed at creation; edits may only toggle these.
            mutable = SUPPRESS_EMBEDS | COMPONENTS_V2
            flags = (flags & ~mutable) | (int(payload["flags"]) & mutable)
        if "attachments" in payload or files:
            attachments = self._attachments_from(msg.channel, payload.get("attachments"), files, msg.attachments)
        if clear_loading:
            flags &= ~LOADING
        if not (content or embeds or components or attachments) and not (flags & LOADING) and not msg.deleted:
            raise ApiError(400, 50006, "Cannot send an empty message")
        msg.content, msg.embeds, msg.components, msg.flags, msg.attachments = (
            content,
            embeds,
            components,
            flags,
            attachments,
        )
        # Discord does not mark the first edit of a deferred "thinking" message as an edit.
        if not was_loading:
            msg.edited_at = iso_now()
        msg.record_revision(source)
        self.sb.gateway.dispatch_message("MESSAGE_UPDATE", msg)
        self.sb.notifier.notify(SandboxEvent("message_update", message=msg, interaction=msg.interaction))
        return msg

    def delete_message(self, msg: Message) -> None:
        msg.deleted = True
        if not msg.ephemeral:
            self.sb.gateway.dispatch(
                "MESSAGE_DELETE",
                {"id": str(msg.id), "channel_id": str(msg.channel.id), "guild_id": str(msg.guild.id)},
                guild_id=msg.guild.id,
                intent=GUILD_MESSAGES,
            )
        self.sb.notifier.notify(SandboxEvent("message_delete", message=msg, interaction=msg.interaction))

    def create_webhook(self, channel: Channel, name: str, *, creator: User | None = None) -> Webhook:
        webhook = Webhook(
            id=self.sb.new_id(),
            token=new_webhook_token(),
            channel=channel,
            name=name,
            creator=creator or self.sb.bot_user,
        )
        self.sb.webhooks[webhook.id] = webhook
        self.sb.gateway.dispatch(
            "WEBHOOKS_UPDATE",
            {"guild_id": str(channel.guild.id), "channel_id": str(channel.id)},
            guild_id=channel.guild.id,
            intent=GUILD_WEBHOOKS,
        )
        self.sb.notifier.notify(SandboxEvent("webhook_create", detail=webhook))
        return webhook

    def delete_webhook(self, webhook: Webhook | int) -> None:
        """Delete a webhook (as an admin would); later executions get 404 Unknown Webhook."""
        wh = webhook if isinstance(webhook, Webhook) else self.sb.webhooks[webhook]
        wh.deleted = True
        self.sb.gateway.dispatch(
            "WEBHOOKS_UPDATE",
            {"guild_id": str(wh.channel.guild.id), "channel_id": str(wh.channel.id)},
            guild_id=wh.channel.guild.id,
            intent=GUILD_WEBHOOKS,
        )
        self.sb.notifier.notify(SandboxEvent("webhook_delete", detail=wh))
