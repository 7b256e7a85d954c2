"""A line-based Discord client for humans: type as a member, watch the bot answer.

    alice: /mine start amount:5          slash command as alice (default guild/channel)
    bob@guild2: /wallet pay member:@alice amount:5
    alice#blocks: /chain block height:12 in #blocks
    alice: !complete /chain block height:1   ask for autocomplete (last option is focused)
    alice: !press 1                       press button number 1
    alice: !select 2 apple,banana          choose values in select menu 2
    alice: !submit block_name="Genesis"    answer the form the bot opened for alice
    alice: hello bot                       plain message
    :help  :guilds  :members  :commands  :webhooks  :history  :wait  :quit

Output comes from sandbox events, so bot replies, edits (re-rendered as they
arrive), followups and the webhook feed show up whenever they happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shlex
import time
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, Optional, Protocol, Union, runtime_checkable

from .errors import SandboxError, SandboxTimeout
from .interactions import InteractionHandle
from .models import KIND_USER, Channel, Guild, Member, Message
from .permissions import ADMINISTRATOR
from .records import RequestRecord, SandboxEvent
from .render import render_choices, render_message, render_modal
from .server import Sandbox

_log = logging.getLogger(__name__)

_SPEAKER = re.compile(r"^(?P<name>[^\s:@#]+)(?:@(?P<guild>[^\s:#]+))?(?:#(?P<channel>[^\s:]+))?\s*:\s*(?P<rest>.*)$")

HELP = __doc__ or ""


@runtime_checkable
class LineReader(Protocol):
    async def readline(self) -> Union[str, bytes]: ...


class _Out:
    """Accepts text-mode writers (sys.stdout, StringIO) and byte writers (asyncio.StreamWriter)."""

    def __init__(self, writer: Any) -> None:
        self._writer = writer

    def line(self, text: str = "") -> None:
        data = text + "\n"
        try:
            self._writer.write(data)
        except TypeError:
            self._writer.write(data.encode("utf-8"))
        flush = getattr(self._writer, "flush", None)
        if callable(flush):
            with contextlib.suppress(Exception):  # flushing is best-effort; some writers reject it when closed
                flush()


Reader = Union[LineReader, AsyncIterable[str], AsyncIterable[bytes]]


async def _lines(reader: Reader) -> AsyncIterator[str]:
    if isinstance(reader, LineReader):
        while True:
            raw = await reader.readline()
            if not raw:
                return
            yield raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    else:
        async for raw in reader:
            yield raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


class Terminal:
    def __init__(self, sandbox: Sandbox, writer: Any, *, guild: Optional[Guild] = None, channel: Optional[Channel] = None) -> None:
        self.sb = sandbox
        self.out = _Out(writer)
        self.default_guild = guild
        self.current_channel: dict[int, Channel] = {}
        if guild is not None and channel is not None:
            self.current_channel[guild.id] = channel
        # Buttons/selects get stable numbers the first time they are shown.
        self.numbers: dict[int, tuple[Message, str]] = {}
        self._number_of: dict[tuple[int, str], int] = {}
        self.handles: list[InteractionHandle] = []
        self.modals: dict[int, InteractionHandle] = {}
        self._watchdogs: set[asyncio.Task[None]] = set()
        self._last_activity = time.monotonic()
        self.running = True

    # --- output ---------------------------------------------------------

    def _numbers_for(self, msg: Message) -> dict[str, int]:
        out: dict[str, int] = {}
        for comp in msg.iter_components():
            custom_id = comp.get("custom_id")
            if not custom_id or comp.get("style") == 5:
                continue
            key = (msg.id, custom_id)
            if key not in self._number_of:
                number = len(self.numbers) + 1
                self._number_of[key] = number
                self.numbers[number] = (msg, custom_id)
            out[custom_id] = self._number_of[key]
        return out

    def show(self, msg: Message, *, edited: bool = False) -> None:
        self.out.line(render_message(msg, self._numbers_for(msg), edited=edited))

    def on_event(self, event: SandboxEvent) -> None:
        self._last_activity = time.monotonic()
        if event.kind == "message_create" and event.message is not None:
            if event.message.kind != KIND_USER:
                self.show(event.message)
        elif event.kind == "message_update" and event.message is not None:
            msg = event.message
            self.out.line(f"✎ edit {len(msg.edits)} of message {msg.id}:")
            self.show(msg)
        elif event.kind == "message_delete" and event.message is not None:
            self.out.line(f"✖ message {event.message.id} in #{event.message.channel.name} was deleted")
        elif event.kind == "ack" and event.interaction is not None:
            handle: InteractionHandle = event.interaction
            if handle.choices is not None and handle.type == 4:
                self.out.line(f"suggestions for {handle.member.display_name} in /{handle.command_path}:")
                self.out.line(render_choices(handle.choices))
            elif handle.modal is not None and handle.ack_type == 9:
                self.modals[handle.member.id] = handle
                self.out.line(f"{self.sb.bot_user.display_name} opened a form for {handle.member.display_name}:")
                self.out.line(render_modal(handle.modal))
        elif event.kind == "request_error" and isinstance(event.detail, RequestRecord):
            rec = event.detail
            body = rec.response if isinstance(rec.response, dict) else {}
            injected = f" (injected {rec.fault})" if rec.fault else ""
            self.out.line(
                f"⚠ bot request {rec.method} {rec.route or rec.path} → {rec.status} "
                f"{body.get('message', '')} (code {body.get('code', '?')}){injected}"
            )
        elif event.kind == "webhook_create":
            wh = event.detail
            self.out.line(f"⚓ webhook {wh.name!r} created in #{wh.channel.name}")

    # --- input ----------------------------------------------------------

    async def handle_line(self, line: str) -> None:
        line = line.strip()
        if not line or line.startswith("//"):
            return
        if line.lower() in ("quit", "exit", ":quit", ":exit", ":q"):
            self.running = False
            return
        if line.startswith(":") or line.lower() in ("help", "?"):
            await self._meta(line.lstrip(":").strip())
            return
        m = _SPEAKER.match(line)
        if m is None:
            self.out.line("✗ start with who is speaking, e.g.  alice: /mine start   (type :help)")
            return
        try:
            guild = self.sb.guild(m.group("guild")) if m.group("guild") else self._default_guild()
            member = self.sb.member(guild, m.group("name"))
            channel = self.sb.channel(guild, m.group("channel")) if m.group("channel") else self._channel_for(guild)
            if m.group("channel"):
                self.current_channel[guild.id] = channel
            await self._act(guild, channel, member, m.group("rest").strip())
        except SandboxError as exc:
            self.out.line(f"✗ {exc}")
        except SandboxTimeout as exc:
            self.out.line(f"✗ {exc}")
        except ValueError as exc:  # shlex quoting errors
            self.out.line(f"✗ could not parse: {exc}")

    def _default_guild(self) -> Guild:
        if self.default_guild is not None:
            return self.default_guild
        if not self.sb.guilds:
            raise SandboxError("the sandbox has no guilds")
        return next(iter(self.sb.guilds.values()))

    def _channel_for(self, guild: Guild) -> Channel:
        channel = self.current_channel.get(guild.id)
        if channel is None:
            if not guild.channels:
                raise SandboxError(f"{guild.name} has no channels")
            channel = next(iter(guild.channels.values()))
        return channel

    async def _act(self, guild: Guild, channel: Channel, member: Member, rest: str) -> None:
        if rest.startswith("/"):
            path, options = parse_command(rest)
            handle = await self.sb.invoke(guild, channel, member, path, options)
            self._track(handle)
        elif rest.startswith("!complete"):
            path, options = parse_command(rest[len("!complete"):].strip())
            if not options:
                raise SandboxError("say which option you are typing, e.g.  !complete /chain block height:1")
            focused = next((k for k, v in options.items() if isinstance(v, str) and v.endswith("?")), list(options)[-1])
            if isinstance(options[focused], str):
                options[focused] = options[focused].rstrip("?")
            await self.sb.autocomplete(guild, channel, member, path, options, focused=focused)
        elif rest.startswith("!press"):
            number = self._number(rest[len("!press"):])
            msg, custom_id = self.numbers[number]
            self._track(await self.sb.click(msg, custom_id, member))
        elif rest.startswith("!select"):
            args = shlex.split(rest[len("!select"):])
            if len(args) < 2:
                raise SandboxError("usage: !select N value[,value...]")
            number = self._number(args[0])
            msg, custom_id = self.numbers[number]
            values = [v for v in ",".join(args[1:]).split(",") if v]
            self._track(await self.sb.select(msg, custom_id, values, member))
        elif rest.startswith("!submit"):
            modal_handle = self.modals.get(member.id)
            if modal_handle is None:
                raise SandboxError(f"the bot has not opened a form for {member.name}")
            values: dict[str, str] = {}
            for token in shlex.split(rest[len("!submit"):]):
                if "=" not in token:
                    raise SandboxError(f"expected field=value, got {token!r}")
                key, value = token.split("=", 1)
                values[key] = value
            handle = await self.sb.submit_modal(modal_handle, values, member)
            del self.modals[member.id]
            self._track(handle)
        elif rest.startswith("!"):
            raise SandboxError(f"unknown action {rest.split()[0]!r}; try !press, !select, !submit, !complete")
        else:
            await self.sb.send_message(guild, channel, member, rest)
            self.out.line(f"[{guild.name} #{channel.name}] {member.display_name}: {rest}")

    def _number(self, text: str) -> int:
        try:
            number = int(text.strip().lstrip("#"))
        except ValueError:
            raise SandboxError(f"expected a component number, got {text.strip()!r}") from None
        if number not in self.numbers:
            raise SandboxError(f"no component number {number} on screen")
        return number

    def _track(self, handle: InteractionHandle) -> None:
        self.handles.append(handle)
        deadline = self.sb.ack_deadline
        if deadline is None:
            return

        async def watchdog() -> None:
            # Mirrors Discord's client: an unanswered interaction fails visibly after the deadline.
            try:
                await handle.wait_ack(deadline + 0.25)
            except SandboxTimeout:
                self.out.line(f"✗ {handle.member.display_name}: The application did not respond ({handle!r})")

        task = asyncio.create_task(watchdog())
        self._watchdogs.add(task)
        task.add_done_callback(self._watchdogs.discard)

    async def settle(self, timeout: float = 5.0, quiet: float = 0.3) -> None:
        """Wait until interactions typed here are answered, nothing is 'thinking', and the bot went quiet.

        The quiet period matters because followups and edits arrive after the acknowledgement.
        """

        deadline = self.sb.ack_deadline

        def done() -> bool:
            now = time.monotonic()
            if now - self._last_activity < quiet:
                return False
            for h in self.handles:
                if not h.acknowledged:
                    # Past the ack deadline nothing more will come; do not wait for it.
                    if deadline is None or now - h.created_at < deadline + 0.5:
                        return False
                elif h.original is not None and h.original.loading:
                    return False
            return True

        with contextlib.suppress(SandboxTimeout):
            await self.sb.wait_until(done, timeout, "pending interactions")

    async def _meta(self, command: str) -> None:
        words = command.split()
        name = words[0].lower() if words else "help"
        args = words[1:]
        try:
            if name in ("help", "?"):
                self.out.line(HELP.strip("\n"))
            elif name == "guilds":
                for i, g in enumerate(self.sb.guilds.values(), 1):
                    self.out.line(f"  guild{i}: {g.name} ({len(g.members)} members, {len(g.channels)} channels)")
            elif name == "members":
                g = self.sb.guild(args[0]) if args else self._default_guild()
                for member in g.members.values():
                    perms = "owner" if member.id == g.owner_id else ("admin" if member.base_permissions() & ADMINISTRATOR else "")
                    roles = ", ".join(r.name for r in member.roles) or "-"
                    tags = " [BOT]" if member.user.bot else ""
                    self.out.line(f"  {member.name}{tags}  roles: {roles}" + (f"  ({perms})" if perms else ""))
            elif name == "channels":
                g = self.sb.guild(args[0]) if args else self._default_guild()
                self.out.line("  " + "  ".join("#" + c.name for c in g.channels.values()))
            elif name == "commands":
                g = self.sb.guild(args[0]) if args else self._default_guild()
                for cmd in self.sb.commands.visible(g.id):
                    for line in describe_command(cmd):
                        self.out.line("  " + line)
            elif name == "webhooks":
                g = self._default_guild()
                feed = self.sb.webhook_feed(self.sb.channel(g, args[0]) if args else None)
                if not feed:
                    self.out.line("  (webhook feed is empty)")
                for msg in feed[-10:]:
                    self.show(msg)
            elif name == "history":
                g = self._default_guild()
                channel = self.sb.channel(g, args[0]) if args else self._channel_for(g)
                count = int(args[1]) if len(args) > 1 else 10
                for msg in self.sb.channel_messages(channel)[-count:]:
                    self.show(msg)
            elif name == "use":
                g = self.sb.guild(args[0])
                self.default_guild = g
                if len(args) > 1:
                    self.current_channel[g.id] = self.sb.channel(g, args[1])
                self.out.line(f"  now in {g.name} #{self._channel_for(g).name}")
            elif name == "wait":
                await self.settle(float(args[0]) if args else 5.0)
            elif name == "disconnect":
                await self.sb.disconnect_gateway()
                self.out.line("  gateway connection closed; the bot should RESUME")
            elif name == "requests":
                count = int(args[0]) if args else 10
                for rec in self.sb.requests[-count:]:
                    self.out.line(f"  {rec.method} {rec.route or rec.path} → {rec.status}{' (' + rec.fault + ')' if rec.fault else ''}")
            else:
                self.out.line(f"✗ unknown command :{name} (type :help)")
        except SandboxError as exc:
            self.out.line(f"✗ {exc}")

    async def close(self) -> None:
        for task in list(self._watchdogs):
            task.cancel()
        for task in list(self._watchdogs):
            with contextlib.suppress(asyncio.CancelledError):
                await task


def parse_command(text: str) -> tuple[str, dict[str, Any]]:
    """"/wallet pay member:@alice note:"for lunch"" -> ("wallet pay", {"member": "@alice", "note": "for lunch"})."""
    tokens = shlex.split(text.lstrip("/"))
    path: list[str] = []
    options: dict[str, Any] = {}
    for token in tokens:
        if ":" in token and not token.startswith("<"):
            key, value = token.split(":", 1)
            options[key] = value
        elif options:
            raise SandboxError(f"unexpected {token!r} after options; quote values with spaces")
        else:
            path.append(token)
    if not path:
        raise SandboxError("missing command name after /")
    return " ".join(path), options


def describe_command(cmd: dict[str, Any]) -> list[str]:
    """Flatten a command definition into '/name sub option:type' usage lines."""
    types = {3: "text", 4: "integer", 5: "true/false", 6: "@member", 7: "#channel", 8: "@role", 9: "@mention", 10: "number", 11: "file"}
    lines: list[str] = []

    def walk(prefix: str, options: list[dict[str, Any]], description: str) -> None:
        subs = [o for o in options if o.get("type") in (1, 2)]
        if subs:
            for sub in subs:
                walk(f"{prefix} {sub['name']}", sub.get("options") or [], sub.get("description", ""))
            return
        args = []
        for o in options:
            spec = f"{o['name']}:{types.get(o.get('type'), '?')}"
            if o.get("autocomplete"):
                spec += "…"
            args.append(spec if o.get("required") else f"[{spec}]")
        lines.append(" ".join([prefix] + args) + (f"   — {description}" if description else ""))

    walk("/" + cmd["name"], cmd.get("options") or [], cmd.get("description", ""))
    return lines


async def run_terminal(
    sandbox: Sandbox,
    reader: Reader,
    writer: Any,
    *,
    guild: Optional[Guild] = None,
    channel: Optional[Channel] = None,
    banner: bool = True,
    settle_timeout: float = 5.0,
) -> Terminal:
    """Read lines from ``reader`` (readline() coroutine or async iterable) and act on the sandbox.

    Everything the bot does is written to ``writer`` (anything with write(str) or
    write(bytes)). Returns at EOF or ``:quit`` once typed interactions have settled.
    """
    term = Terminal(sandbox, writer, guild=guild, channel=channel)
    sandbox.add_listener(term.on_event)
    try:
        if banner:
            g = term._default_guild() if sandbox.guilds else None
            where = f"{g.name} #{term._channel_for(g).name}" if g is not None and g.channels else "no guild yet"
            term.out.line(f"Discord sandbox terminal — speaking in {where}. Type :help for commands.")
        async for raw in _lines(reader):
            await term.handle_line(raw)
            if not term.running:
                break
        await term.settle(settle_timeout)
    finally:
        sandbox.remove_listener(term.on_event)
        await term.close()
    return term
