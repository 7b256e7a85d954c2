"""Reading what the bot showed: content and embeds flattened to text."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def embed_text(embeds: Iterable[Mapping[str, Any]]) -> str:
    parts: list[str] = []
    for embed in embeds:
        parts += [embed.get("title", ""), embed.get("description", "")]
        for field in embed.get("fields", []):
            parts += [field.get("name", ""), field.get("value", "")]
        parts.append(embed.get("footer", {}).get("text", ""))
    return "\n".join(p for p in parts if p)


def shown(message_or_revision: Any) -> str:
    """Everything a member sees of a message (or one revision of it)."""
    if message_or_revision is None:
        return ""
    return "\n".join(filter(None, [message_or_revision.content or "", embed_text(message_or_revision.embeds)]))


def reply_text(handle: Any) -> str:
    return shown(handle.response)
