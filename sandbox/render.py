"""Plain-text rendering of sandbox messages: pure functions of message state.

Used by the terminal client; kept free of I/O so tests can assert on the
exact text a newcomer would see.
"""

from __future__ import annotations

import difflib
import re
import textwrap
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .models import KIND_FOLLOWUP, KIND_INTERACTION, KIND_WEBHOOK, Message

_USER = re.compile(r"<@!?(\d+)>")
_ROLE = re.compile(r"<@&(\d+)>")
_CHANNEL = re.compile(r"<#(\d+)>")
_TIMESTAMP = re.compile(r"<t:(-?\d+)(?::([tTdDfFR]))?>")

BAR = "│ "


def humanize_mentions(text: str, message: Message) -> str:
    """Show <@id>, <@&id>, <#id> the way the Discord client displays them."""
    guild = message.guild

    def user(m: re.Match[str]) -> str:
        member = guild.members.get(int(m.group(1)))
        return f"@{member.display_name}" if member else m.group(0)

    def role(m: re.Match[str]) -> str:
        r = guild.roles.get(int(m.group(1)))
        return f"@{r.name}" if r else m.group(0)

    def channel(m: re.Match[str]) -> str:
        c = guild.channels.get(int(m.group(1)))
        return f"#{c.name}" if c else m.group(0)

    text = _USER.sub(user, text)
    text = _ROLE.sub(role, text)
    text = _CHANNEL.sub(channel, text)
    return _TIMESTAMP.sub(lambda m: format_timestamp(int(m.group(1)), m.group(2) or "f"), text)


# Discord's timestamp styles (developer docs, "Message Formatting": t, T, d, D, f, F, R), shown in
# UTC as the sandbox has no reader's time zone.
_STYLES = {"t": "%H:%M", "T": "%H:%M:%S", "d": "%Y-%m-%d", "D": "%d %B %Y", "f": "%d %B %Y %H:%M",
           "F": "%A, %d %B %Y %H:%M"}


def format_timestamp(unix_s: int, style: str, now: float | None = None) -> str:
    """``<t:unix:style>`` as a Discord client shows it: R is relative ("in 3 minutes", "5 minutes
    ago"), the others a UTC date and/or time."""
    if style != "R":
        return datetime.fromtimestamp(unix_s, UTC).strftime(_STYLES[style]) + " UTC"
    delta = unix_s - (time.time() if now is None else now)
    seconds = abs(round(delta))
    for unit, size in (("year", 31_536_000), ("month", 2_592_000), ("day", 86_400), ("hour", 3_600),
                       ("minute", 60), ("second", 1)):
        if seconds >= size or unit == "second":
            count = seconds // size
            amount = f"{count} {unit}{'s' if count != 1 else ''}"
            break
    return f"in {amount}" if delta > 0 else f"{amount} ago" if delta < 0 else "now"


def _wrap(text: str, width: int, prefix: str) -> list[str]:
    lines: list[str] = []
    for raw in text.splitlines() or [""]:
        wrapped = textwrap.wrap(raw, width=max(width - len(prefix), 20), replace_whitespace=False) or [""]
        lines.extend(prefix + part for part in wrapped)
    return lines


def render_embed(embed: Mapping[str, Any], message: Message, *, width: int = 72, indent: str = "  ") -> list[str]:
    prefix = indent + BAR
    lines: list[str] = []
    author = (embed.get("author") or {}).get("name")
    if author:
        lines += _wrap(humanize_mentions(author, message), width, prefix)
    title = embed.get("title")
    if title:
        t = f"**{humanize_mentions(title, message)}**"
        if embed.get("url"):
            t += f" <{embed['url']}>"
        lines += _wrap(t, width, prefix)
    if embed.get("description"):
        lines += _wrap(humanize_mentions(embed["description"], message), width, prefix)
    inline_run: list[str] = []

    def flush_inline() -> None:
        if inline_run:
            lines.extend(_wrap("   ".join(inline_run), width, prefix))
            inline_run.clear()

    for f in embed.get("fields") or []:
        name = humanize_mentions(str(f.get("name", "")), message)
        value = humanize_mentions(str(f.get("value", "")), message)
        if f.get("inline") and "\n" not in value:
            inline_run.append(f"{name}: {value}")
        else:
            flush_inline()
            lines += _wrap(f"{name}:", width, prefix)
            lines += _wrap(value, width, prefix + "  ")
    flush_inline()
    for key in ("image", "thumbnail"):
        url = (embed.get(key) or {}).get("url")
        if url:
            lines += _wrap(f"[{key}: {url}]", width, prefix)
    footer = (embed.get("footer") or {}).get("text")
    stamp = embed.get("timestamp")
    if footer or stamp:
        lines += _wrap("— " + " · ".join(x for x in (footer, stamp) if x), width, prefix)
    if not lines:
        lines.append(prefix + "(empty embed)")
    return lines


def render_components(
    components: list[dict[str, Any]], numbers: Mapping[str, int] | None = None, *, indent: str = "  "
) -> list[str]:
    """One line per action row; interactive items carry the number a terminal user presses."""
    numbers = numbers or {}
    lines: list[str] = []

    def label_of(comp: dict[str, Any]) -> str:
        emoji = (comp.get("emoji") or {}).get("name")
        text = comp.get("label") or ""
        return " ".join(x for x in (emoji, text) if x) or comp.get("custom_id", "?")

    def item(comp: dict[str, Any]) -> str:
        ctype = comp.get("type")
        custom_id = comp.get("custom_id")
        num = numbers.get(custom_id) if custom_id else None
        tag = f"{num} " if num is not None else ""
        suffix = " (disabled)" if comp.get("disabled") else ""
        if ctype == 2:
            if comp.get("style") == 5:
                return f"[{label_of(comp)} ↗ {comp.get('url')}]"
            return f"[{tag}{label_of(comp)}{suffix}]"
        if ctype == 3:
            opts = ", ".join(o.get("label", o.get("value", "")) for o in comp.get("options", []))
            placeholder = comp.get("placeholder") or "choose"
            return f"<{tag}{placeholder}: {opts}{suffix}>"
        if ctype in (5, 6, 7, 8):
            kinds = {5: "user", 6: "role", 7: "user/role", 8: "channel"}
            return f"<{tag}{comp.get('placeholder') or 'pick a ' + kinds[ctype]}{suffix}>"
        if ctype == 10:
            return str(comp.get("content", ""))
        return f"<component type {ctype}>"

    def walk(items: list[dict[str, Any]]) -> None:
        for comp in items:
            ctype = comp.get("type")
            if ctype in (1,):
                lines.append(indent + " ".join(item(c) for c in comp.get("components", [])))
            elif ctype in (17, 9):  # container / section (components v2)
                walk(comp.get("components") or [])
                if isinstance(comp.get("accessory"), dict):
                    lines.append(indent + item(comp["accessory"]))
            elif ctype == 14:
                lines.append(indent + "─" * 20)
            else:
                lines.append(indent + item(comp))

    walk(components)
    return lines


def _find_component(components: list[dict[str, Any]], custom_id: Any) -> dict[str, Any] | None:
    for comp in components:
        if not isinstance(comp, dict):
            continue
        if comp.get("custom_id") == custom_id and comp.get("type") != 1:
            return comp
        nested = list(comp.get("components") or [])
        for key in ("accessory", "component"):
            if isinstance(comp.get(key), dict):
                nested.append(comp[key])
        found = _find_component(nested, custom_id)
        if found is not None:
            return found
    return None


def component_label(message: Message | None, custom_id: Any) -> str:
    """What the member saw on the component with ``custom_id``: its label (or emoji), never the id.

    The label is looked up in the message as it is now, then in its earlier states (a press
    often edits the buttons away); only a component that never existed falls back to the id.
    """
    if message is not None:
        states = [message.components] + [list(rev.components) for rev in reversed(message.revisions)]
        for components in states:
            comp = _find_component(components, custom_id)
            if comp is None:
                continue
            emoji = (comp.get("emoji") or {}).get("name")
            text = comp.get("label") or comp.get("placeholder") or ""
            shown = " ".join(x for x in (emoji, text) if x)
            if shown:
                return shown
    return str(custom_id)


def render_header(message: Message, *, edited: bool = False, ref: int | None = None) -> str:
    where = f"[{message.guild.name} #{message.channel.name}]"
    author = message.author.display_name
    if message.kind == KIND_WEBHOOK:
        author += " [WEBHOOK]"
    elif message.author.bot:
        author += " [BOT]"
    parts = [where, author]
    handle = message.interaction
    if handle is not None and message.kind in (KIND_INTERACTION, KIND_FOLLOWUP):
        who = handle.member.display_name
        if handle.command_path:
            parts.append(f"↳ {who} used /{handle.command_path}")
        elif handle.type == 5:
            parts.append(f"↳ {who} submitted a form")
        else:
            label = component_label(handle.source_message, handle.data.get("custom_id"))
            verb = "chose in" if handle.data.get("values") is not None else "pressed"
            parts.append(f"↳ {who} {verb} [{label}]")
    elif message.origin:
        parts.append(f"↳ {message.origin}")
    if message.ephemeral:
        viewer = message.guild.members.get(message.visible_to) if message.visible_to else None
        parts.append(f"(only {viewer.display_name if viewer else 'the caller'} can see this)")
    if edited or message.edited_at:
        parts.append("(edited)")
    if ref is not None:
        # Older messages' buttons are pressed with ``!press N@ref``.
        parts.append(f"(msg {ref})")
    return " ".join(parts)


def render_message(
    message: Message,
    numbers: Mapping[str, int] | None = None,
    *,
    width: int = 72,
    edited: bool = False,
    ref: int | None = None,
) -> str:
    """Render a message as the terminal shows it.

    ``numbers`` maps component custom_ids to the numbers a user types in
    ``!press N`` / ``!select N``; ``ref`` is the message's short number for
    ``!press N@ref``. The output depends only on the arguments.
    """
    if message.deleted:
        return f"{render_header(message)}\n  (message deleted)"
    lines = [render_header(message, edited=edited, ref=ref)]
    if message.loading:
        lines.append(f"  {message.author.display_name} is thinking…")
    if message.content:
        lines += _wrap(humanize_mentions(message.content, message), width, "  ")
    for i, embed in enumerate(message.embeds):
        if i:
            lines.append("  ├──")
        lines += render_embed(embed, message, width=width)
    for attachment in message.attachments:
        kind = attachment.content_type or "file"
        lines.append(f"  📎 {attachment.filename} ({kind}, {attachment.size} bytes)")
    lines += render_components(message.components, numbers)
    return "\n".join(lines)


def changed_lines(before: list[str], after: list[str]) -> list[str]:
    """The lines of ``after`` that are new or changed since ``before``, in order.

    Lines that disappeared are listed once, marked ``(removed)``, so buttons that went away
    are noticed; lines that stayed the same are not repeated.
    """
    out: list[str] = []
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag in ("replace", "insert"):
            out.extend(after[j1:j2])
        elif tag == "delete":
            out.extend(f"  (removed) {line.strip()}" for line in before[i1:i2])
    return out


def render_choices(choices: list[dict[str, Any]]) -> str:
    if not choices:
        return "  (no suggestions)"
    return "\n".join(f"  {i}) {c.get('name')}  → {c.get('value')!r}" for i, c in enumerate(choices, 1))


def render_modal(modal: Mapping[str, Any]) -> str:
    lines = [f"  ┌ form: {modal.get('title')}"]

    def walk(items: list[dict[str, Any]], label: str | None = None) -> None:
        for comp in items:
            ctype = comp.get("type")
            if ctype == 1:
                walk(comp.get("components") or [])
            elif ctype == 18 and comp.get("component"):
                walk([comp["component"]], comp.get("label"))
            elif ctype == 4:
                req = " (required)" if comp.get("required", True) else ""
                name = comp.get("label") or label or comp.get("custom_id")
                lines.append(f"  │ {name}{req}  → field id {comp.get('custom_id')!r}")
            elif ctype == 10:
                lines.append(f"  │ {comp.get('content', '')}")

    walk(list(modal.get("components") or []))
    lines.append("  └ answer with:  NAME: !submit field_id=\"value\" ...")
    return "\n".join(lines)
