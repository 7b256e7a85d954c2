"""A line-based Discord client for humans: type as a member, watch the bot answer.

Type as a member (NAME: ..., NAME@SERVER: ..., NAME#CHANNEL: ...):

    alice: /mine start                       a slash command as alice (Genesis Guild, #general)
    alice: /wallet pay member:@bob amount:5 fee:1
    bob@guild2: /mine start                  as bob in the second server (Fork Town)
    alice#blocks: /chain block query:1       in #blocks (later lines of alice's stay there)
    carol: !complete /chain block query:1    the suggestions the bot offers while typing query
    alice: !press 1                          the 1st button of the last message with buttons alice can see
    alice: !press 2@3                        the 2nd button of message (msg 3)
    alice: !select 1 VALUE[,VALUE...]        choose in select menu 1 of that message
    alice: !submit FIELD="text" ...          answer the form the bot opened for alice
    alice: !save                             save the files of the last message with files alice can see
    alice: hello bot                         a plain chat message

Terminal commands:

    :who                     servers, members, who is admin where, how to speak as each
    :save [N] [PATH]         save file N (default: all) of the last message with files
    :wait [SECONDS]          wait until the bot has answered and gone quiet
    :wait for TEXT [SECONDS] wait until TEXT appears (say, "found" after /mine start)
    :commands [SERVER]       every slash command with its options
    :history [CHANNEL] [N]   the last N messages of a channel
    :webhooks  :members  :channels  :guilds  :use SERVER [CHANNEL]  :requests  :quit
    # or //                  a comment: the line is ignored

Edits print only the lines that changed, under a "✎ ... (edited)" header.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shlex
import time
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .errors import SandboxError, SandboxTimeout
from .interactions import InteractionHandle
from .models import KIND_USER, Attachment, Channel, Guild, Member, Message
from .permissions import ADMINISTRATOR, MANAGE_GUILD
from .records import RequestRecord, SandboxEvent
from .render import changed_lines, render_choices, render_message, render_modal
from .server import Sandbox

_log = logging.getLogger(__name__)

_SPEAKER = re.compile(r"^(?P<name>[^\s:@#]+)(?:@(?P<guild>[^\s:#]+))?(?:#(?P<channel>[^\s:]+))?\s*:\s*(?P<rest>.*)$")

HELP = __doc__ or ""

# Messages remembered for ``!press``/``!save`` and for printing only what an edit changed;
# older ones are forgotten (an edit of one is then printed whole).
REMEMBERED_MESSAGES = 500
DEFAULT_WAIT_FOR_S = 180.0
# How long !press / !select / !save wait for the answers to the lines typed before them.
ANSWER_WAIT_S = 10.0


@runtime_checkable
class LineReader(Protocol):
    async def readline(self) -> str | bytes: ...


class _Out:
    """Accepts text-mode writers (sys.stdout, StringIO) and byte writers (asyncio.StreamWriter)."""

    def __init__(self, writer: Any) -> None:
        self._writer = writer
        # What was printed since the last typed action, for ``:wait for TEXT``.
        self.since_action: list[str] = []

    def line(self, text: str = "") -> None:
        self.since_action.append(text)
        data = text + "\n"
        try:
            self._writer.write(data)
        except TypeError:
            self._writer.write(data.encode("utf-8"))
        flush = getattr(self._writer, "flush", None)
        if callable(flush):
            with contextlib.suppress(Exception):  # flushing is best-effort; some writers reject it when closed
                flush()


Reader = LineReader | AsyncIterable[str] | AsyncIterable[bytes]


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
    def __init__(
        self,
        sandbox: Sandbox,
        writer: Any,
        *,
        guild: Guild | None = None,
        channel: Channel | None = None,
        save_dir: str | Path | None = None,
    ) -> None:
        self.sb = sandbox
        self.out = _Out(writer)
        self.default_guild = guild
        self.current_channel: dict[int, Channel] = {}
        if guild is not None and channel is not None:
            self.current_channel[guild.id] = channel
        # Where ``!save`` writes files (python -m bot: the data folder's saved/).
        self.save_dir = Path(save_dir) if save_dir is not None else Path("saved")
        # Messages in the order they were last shown (created or edited), newest last, with the
        # lines last printed for each: ``!press N`` looks here for "the last message with buttons".
        self._recent: OrderedDict[int, Message] = OrderedDict()
        self._printed: dict[int, list[str]] = {}
        # Messages with buttons get a short number, shown as "(msg 3)", for ``!press N@3``.
        self._refs: dict[int, Message] = {}
        self._ref_of: dict[int, int] = {}
        self._last_ref = 0
        self.handles: list[InteractionHandle] = []
        self.modals: dict[int, InteractionHandle] = {}
        self._watchdogs: set[asyncio.Task[None]] = set()
        self._last_activity = time.monotonic()
        self.running = True

    # --- output ---------------------------------------------------------

    @staticmethod
    def _pressable(msg: Message) -> list[dict[str, Any]]:
        """Buttons and menus a member can use, in display order (link buttons open a page instead)."""
        return [c for c in msg.iter_components() if c.get("custom_id") and c.get("style") != 5]

    def _numbers_for(self, msg: Message) -> dict[str, int]:
        """Each message numbers its own buttons and menus from 1, in display order."""
        return {comp["custom_id"]: i for i, comp in enumerate(self._pressable(msg), 1)}

    def _ref_for(self, msg: Message) -> int | None:
        if not self._pressable(msg):
            return self._ref_of.get(msg.id)
        if msg.id not in self._ref_of:
            self._last_ref += 1
            self._refs[self._last_ref] = msg
            self._ref_of[msg.id] = self._last_ref
        return self._ref_of[msg.id]

    def _render(self, msg: Message) -> list[str]:
        return render_message(msg, self._numbers_for(msg), ref=self._ref_for(msg)).splitlines()

    def _remember(self, msg: Message, lines: list[str]) -> None:
        self._recent[msg.id] = msg
        self._recent.move_to_end(msg.id)
        self._printed[msg.id] = lines
        while len(self._recent) > REMEMBERED_MESSAGES:
            old, _ = self._recent.popitem(last=False)
            self._printed.pop(old, None)
            # Forgotten for !press N@M too (a long proof-of-stake session shows a button per block).
            self._refs.pop(self._ref_of.pop(old, 0), None)

    def show(self, msg: Message, *, edited: bool = False) -> None:
        lines = render_message(msg, self._numbers_for(msg), edited=edited, ref=self._ref_for(msg)).splitlines()
        for line in lines:
            self.out.line(line)
        self._remember(msg, lines)

    def show_edit(self, msg: Message) -> None:
        """Print the header and only the lines the edit changed; nothing if nothing visible changed."""
        lines = self._render(msg)
        before = self._printed.get(msg.id)
        shown = lines[1:] if before is None else changed_lines(before[1:], lines[1:])
        if shown or before is None:
            self.out.line("✎ " + lines[0])
            for line in shown:
                self.out.line(line)
            self._remember(msg, lines)
        else:
            # Nothing visible changed: it stays where it was on screen (``!press`` follows the screen).
            self._printed[msg.id] = lines

    @staticmethod
    def _visible_to(msg: Message, member: Member) -> bool:
        if msg.deleted or msg.guild.id != member.guild.id:
            return False
        return not msg.ephemeral or msg.visible_to in (None, member.id)

    def _last_message(self, member: Member | None, wanted: str) -> Message:
        """The newest message shown that ``member`` can see (any, for None) and that has ``wanted``."""
        for msg in reversed(self._recent.values()):
            if member is not None and not self._visible_to(msg, member):
                continue
            if wanted == "buttons" and self._pressable(msg):
                return msg
            if wanted == "files" and msg.attachments:
                return msg
        who = f" {member.name} can see" if member is not None else ""
        raise SandboxError(f"no message with {wanted}{who} on screen yet")

    def on_event(self, event: SandboxEvent) -> None:
        self._last_activity = time.monotonic()
        if event.kind == "message_create" and event.message is not None:
            if event.message.kind != KIND_USER:
                self.show(event.message)
        elif event.kind == "message_update" and event.message is not None:
            self.show_edit(event.message)
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
        if not line or line.startswith(("//", "#")):
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
            self.out.since_action.clear()
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
        elif rest.startswith(("!press", "!select", "!save")):
            # "The last message" is the one on screen once the bot has answered what was typed
            # before: a pasted "/help" then "!press 2" presses /help's button, as a reader would.
            await self.settle(ANSWER_WAIT_S)
            if rest.startswith("!press"):
                msg, custom_id = self._component(member, rest[len("!press"):].strip())
                if (msg.find_component(custom_id=custom_id) or {}).get("type") != 2:
                    raise SandboxError("that is a menu, not a button: choose with  !select N VALUE")
                self._track(await self.sb.click(msg, custom_id, member))
            elif rest.startswith("!select"):
                args = shlex.split(rest[len("!select"):])
                if len(args) < 2:
                    raise SandboxError("usage: !select N value[,value...]")
                msg, custom_id = self._component(member, args[0])
                chosen = [v for v in ",".join(args[1:]).split(",") if v]
                self._track(await self.sb.select(msg, custom_id, chosen, member))
            else:
                self._save(member, shlex.split(rest[len("!save"):]))
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
            raise SandboxError(f"unknown action {rest.split()[0]!r}; try !press, !select, !submit, !complete, !save")
        else:
            await self.sb.send_message(guild, channel, member, rest)
            self.out.line(f"[{guild.name} #{channel.name}] {member.display_name}: {rest}")

    def _component(self, member: Member, spec: str) -> tuple[Message, str]:
        """``N`` (the Nth button of the last message with buttons ``member`` can see), ``N@M``
        (the Nth of message ``(msg M)``) or a button's label."""
        number_text, _, ref_text = spec.strip().partition("@")
        if ref_text:
            try:
                msg = self._refs[int(ref_text.strip().lstrip("#"))]
            except (ValueError, KeyError):
                raise SandboxError(f"no message (msg {ref_text.strip()}) on screen") from None
        else:
            msg = self._last_message(member, "buttons")
        pressable = self._pressable(msg)
        number_text = number_text.strip().lstrip("#")
        if number_text.isdigit():
            number = int(number_text)
            if not 1 <= number <= len(pressable):
                where = f"(msg {self._ref_of.get(msg.id)})"
                raise SandboxError(f"message {where} has {len(pressable)} button(s); there is no {number}")
            return msg, pressable[number - 1]["custom_id"]
        for comp in pressable:
            if (comp.get("label") or "").lower() == number_text.lower() and number_text:
                return msg, comp["custom_id"]
        raise SandboxError(f"expected a button number (or label), got {spec.strip()!r}")

    def _save(self, member: Member | None, args: list[str]) -> None:
        """Write the files of the last message with files to disk, each to a new file; print where."""
        msg = self._last_message(member, "files")
        attachments: list[Attachment] = list(msg.attachments)
        target: Path | None = None
        if args and args[0].isdigit():
            index = int(args.pop(0))
            if not 1 <= index <= len(attachments):
                raise SandboxError(f"that message has {len(attachments)} file(s); there is no {index}")
            attachments = [attachments[index - 1]]
        if args:
            target = Path(args.pop(0)).expanduser()
            if len(attachments) > 1:
                raise SandboxError("a path names one file: say which, e.g.  !save 1 export.csv")
        if args:
            raise SandboxError("usage: !save [N] [PATH]")
        for attachment in attachments:
            path = target if target is not None else self._free_path(attachment.filename)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                if path.exists():
                    raise SandboxError(f"{path} already exists; give another path")
                # O_EXCL: never overwrite a file that is already there (an earlier export, say).
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(attachment.data)
            except OSError as exc:  # a folder that cannot be made or written: say so, keep playing
                raise SandboxError(f"cannot write {path}: {exc.strerror or exc}") from None
            self.out.line(f"💾 saved {attachment.filename} ({attachment.size:,} bytes) to {path.resolve()}")

    def _free_path(self, filename: str) -> Path:
        # Only the file's own name: a bot-chosen "../x" must not leave the folder.
        name = Path(filename).name or "attachment"
        stem, suffix = os.path.splitext(name)
        path = self.save_dir / name
        n = 1
        while path.exists():
            n += 1
            path = self.save_dir / f"{stem}-{n}{suffix}"
        return path

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
        try:
            words = shlex.split(command)
        except ValueError as exc:
            self.out.line(f"✗ could not parse: {exc}")
            return
        name = words[0].lower() if words else "help"
        args = words[1:]
        try:
            if name in ("help", "?"):
                self.out.line(HELP.strip("\n"))
            elif name == "who":
                for line in describe_world(self.sb):
                    self.out.line(line)
            elif name == "save":
                await self.settle(ANSWER_WAIT_S)
                self._save(None, args)
            elif name == "wait" and args and args[0].lower() == "for":
                await self._wait_for(args[1:])
            elif name == "guilds":
                for i, g in enumerate(self.sb.guilds.values(), 1):
                    self.out.line(f"  guild{i}: {g.name} ({len(g.members)} members, {len(g.channels)} channels)")
            elif name == "members":
                g = self.sb.guild(args[0]) if args else self._default_guild()
                for member in g.members.values():
                    perms = "owner" if member.id == g.owner_id else ("admin" if is_admin(member) else "")
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
                if not args:
                    raise SandboxError("usage: :use SERVER [CHANNEL], e.g.  :use guild2 mempool")
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
                    self.out.line(
                        f"  {rec.method} {rec.route or rec.path} → "
                        f"{rec.status}{' (' + rec.fault + ')' if rec.fault else ''}"
                    )
            else:
                self.out.line(f"✗ unknown command :{name} (type :help)")
        except SandboxError as exc:
            self.out.line(f"✗ {exc}")
        except ValueError as exc:  # a number that is not one (":wait soon")
            self.out.line(f"✗ {exc}")

    async def _wait_for(self, args: list[str]) -> None:
        """Wait until TEXT was printed since the last typed action (case-insensitive)."""
        if not args:
            raise SandboxError('usage: :wait for TEXT [SECONDS], e.g.  :wait for "found"')
        text = args[0].lower()
        timeout = float(args[1]) if len(args) > 1 else DEFAULT_WAIT_FOR_S

        def seen() -> bool:
            return any(text in line.lower() for line in self.out.since_action)

        try:
            await self.sb.wait_until(seen, timeout, f"{args[0]!r}")
        except SandboxTimeout:
            raise SandboxError(f"waited {timeout:g}s and {args[0]!r} did not appear") from None

    async def close(self) -> None:
        for task in list(self._watchdogs):
            task.cancel()
        for task in list(self._watchdogs):
            with contextlib.suppress(asyncio.CancelledError):
                await task


def is_admin(member: Member) -> bool:
    """What the bot's admin commands (/playground) ask for: Manage Server, or administrator."""
    return bool(member.base_permissions() & (MANAGE_GUILD | ADMINISTRATOR))


def describe_world(sb: Sandbox) -> list[str]:
    """Who is where, and who is admin where: the banner and ``:who``.

    The sandbox's own server-owner account is left out: nobody types as it.
    """
    lines = ["Servers and members (admin = Manage Server, what /playground asks for):"]
    guilds = list(sb.guilds.values())

    def people(g: Guild) -> list[Member]:
        return [m for m in g.members.values() if not m.user.bot and m.id != g.owner_id]

    for i, g in enumerate(guilds, 1):
        members = people(g)
        names = ", ".join(f"{m.name} (admin)" if is_admin(m) else m.name for m in members) or "nobody"
        channels = " ".join("#" + c.name for c in g.channels.values())
        example = f"{members[0].name}{'' if i == 1 else f'@guild{i}'}: /help" if members else ""
        lines.append(f"  {g.name} (guild{i}): {names}; channels {channels}" + (f"; type  {example}" if example else ""))
    for name in sorted({m.name for g in guilds for m in people(g)}):
        inside = [g for g in guilds if any(m.name == name for m in people(g))]
        admin_of = [g.name for g in inside if any(m.name == name and is_admin(m) for m in people(g))]
        outside = [g.name for g in guilds if g not in inside]
        text = f"  {name}: in {', '.join(g.name for g in inside)}; "
        text += f"admin of {', '.join(admin_of)}" if admin_of else "admin nowhere"
        if outside:
            text += f"; not a member of {', '.join(outside)}"
        lines.append(text)
    return lines


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
    # Keyed by whatever "type" the JSON carried: anything unknown shows as "?".
    types: dict[object, str] = {
        3: "text", 4: "integer", 5: "true/false", 6: "@member", 7: "#channel",
        8: "@role", 9: "@mention", 10: "number", 11: "file",
    }
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
    guild: Guild | None = None,
    channel: Channel | None = None,
    banner: bool = True,
    settle_timeout: float = 5.0,
    save_dir: str | Path | None = None,
) -> Terminal:
    """Read lines from ``reader`` (readline() coroutine or async iterable) and act on the sandbox.

    Everything the bot does is written to ``writer`` (anything with write(str) or
    write(bytes)). Returns at EOF or ``:quit`` once typed interactions have settled.
    """
    term = Terminal(sandbox, writer, guild=guild, channel=channel, save_dir=save_dir)
    sandbox.add_listener(term.on_event)
    try:
        if banner:
            g = term._default_guild() if sandbox.guilds else None
            where = f"{g.name} #{term._channel_for(g).name}" if g is not None and g.channels else "no guild yet"
            for line in describe_world(sandbox):
                term.out.line(line)
            term.out.line(
                f"Discord sandbox terminal — speaking in {where}. Type :help for commands, :who for this list."
            )
        async for raw in _lines(reader):
            await term.handle_line(raw)
            if not term.running:
                break
        await term.settle(settle_timeout)
    finally:
        sandbox.remove_listener(term.on_event)
        await term.close()
    return term
