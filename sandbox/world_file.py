"""The sandbox world on disk, so sandbox play finds its servers again after a restart.

The bot keys every chain by its Discord server id and every wallet by member id, so
a sandbox that mints new ids on each start shows a fresh chain at block 0 to the same
people.  ``snapshot`` turns the world (users, guilds with roles, members, channels and
their recent messages, webhooks with their tokens, application commands, and the id
generator's position) into JSON; ``restore`` rebuilds it in a new ``Sandbox``.

What is not kept: gateway sessions (the bot identifies afresh), interactions and
their tokens (Discord's expire after 15 minutes anyway), request and event logs,
fault rules, and messages beyond the newest ``MESSAGES_KEPT_PER_CHANNEL`` of a
channel.  A message that answered an interaction keeps a one-line note of it
("alice used /mine start") for the terminal, not the interaction itself.

Writes go to a temporary file in the same folder, are flushed to disk, then renamed
over the old file: a crash or kill mid-save leaves the previous world whole.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .commands import CommandRegistry
from .errors import SandboxError
from .ids import bot_token_for
from .models import (
    KIND_FOLLOWUP,
    KIND_INTERACTION,
    Attachment,
    Channel,
    Guild,
    Member,
    Message,
    Overwrite,
    Role,
    User,
    Webhook,
)

if TYPE_CHECKING:
    from .server import Sandbox

_log = logging.getLogger(__name__)

FORMAT = "consensus-playground-sandbox-world"
VERSION = 1
# Enough scrollback for buttons pressed later (a /help page, a block's Attest button) while
# keeping the file, rewritten whole on each save, to a few megabytes at most per channel.
MESSAGES_KEPT_PER_CHANNEL = 200
# Changes come in bursts (a reply, its edits, the bot's next request): one save a second at most.
WORLD_SAVE_DELAY_S = 1.0

class WorldFileError(SandboxError):
    """The world file cannot be used; the message is one line saying which file and what to do."""


def _problem(path: Path, what: str) -> WorldFileError:
    return WorldFileError(
        f"the sandbox world file {path} {what}. Move or delete it to start a new sandbox world "
        "(the chains in the database belong to the old one's servers)"
    )


# --- writing ------------------------------------------------------------------------------


def _user(user: User) -> dict[str, Any]:
    return {"id": user.id, "username": user.username, "bot": user.bot, "global_name": user.global_name}


def interaction_note(message: Message) -> str | None:
    """What the terminal shows after the author for a message that answered an interaction."""
    handle = message.interaction
    if handle is None or message.kind not in (KIND_INTERACTION, KIND_FOLLOWUP):
        return message.origin
    who = handle.member.display_name
    if handle.command_path:
        return f"{who} used /{handle.command_path}"
    if handle.type == 5:
        return f"{who} submitted a form"
    return f"{who} pressed {handle.data.get('custom_id')!r}"


def _message(msg: Message) -> dict[str, Any]:
    return {
        "id": msg.id,
        "channel_id": msg.channel.id,
        "author": _user(msg.author),
        "kind": msg.kind,
        "content": msg.content,
        "embeds": msg.embeds,
        "components": msg.components,
        "flags": msg.flags,
        "attachments": [
            {
                "id": a.id,
                "filename": a.filename,
                "data": base64.b64encode(a.data).decode("ascii"),
                "content_type": a.content_type,
                "description": a.description,
            }
            for a in msg.attachments
        ],
        "tts": msg.tts,
        "type": msg.type,
        "webhook_id": msg.webhook_id,
        "application_id": msg.application_id,
        "visible_to": msg.visible_to,
        "created_at": msg.created_at,
        "edited_at": msg.edited_at,
        "message_reference": msg.message_reference,
        "origin": interaction_note(msg),
    }


def _channel(channel: Channel) -> dict[str, Any]:
    return {
        "id": channel.id,
        "name": channel.name,
        "position": channel.position,
        "topic": channel.topic,
        "type": channel.type,
        "overwrites": [
            {"id": o.id, "type": o.type, "allow": o.allow, "deny": o.deny} for o in channel.overwrites.values()
        ],
    }


def _guild(guild: Guild) -> dict[str, Any]:
    return {
        "id": guild.id,
        "name": guild.name,
        "owner_id": guild.owner_id,
        "joined_at": guild.joined_at,
        "system_channel_id": guild.system_channel_id,
        "roles": [
            {
                "id": r.id,
                "name": r.name,
                "permissions": r.permissions,
                "position": r.position,
                "color": r.color,
                "managed": r.managed,
                "bot_id": r.bot_id,
                "hoist": r.hoist,
                "mentionable": r.mentionable,
            }
            for r in guild.roles.values()
        ],
        "members": [
            {"user_id": m.user.id, "role_ids": list(m.role_ids), "nick": m.nick, "joined_at": m.joined_at}
            for m in guild.members.values()
        ],
        "channels": [_channel(c) for c in guild.channels.values()],
    }


def _encode(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


# A message's JSON, and the revision count it was made at: every change to a message (create,
# edit) records a revision, so an unchanged count means unchanged JSON.
MessageCache = dict[int, tuple[int, str]]


def snapshot(sb: Sandbox, cache: MessageCache | None = None) -> str:
    """The whole world as JSON text, taken at once (the sandbox changes on while it is written).

    Messages are most of the file and most of them never change again, so each one's JSON is
    kept in ``cache`` and made again only after the message changed: a save during play then
    costs about as much as the messages that changed since the last one.
    """
    last_ms, increment = sb.ids.position()
    world = {
        "format": FORMAT,
        "version": VERSION,
        "ids": {"last_ms": last_ms, "increment": increment},
        "application_id": sb.application_id,
        "bot_user_id": sb.bot_user.id,
        "app_owner_id": sb.app_owner.id,
        "users": [_user(u) for u in sb.users.values()],
        "guilds": [_guild(g) for g in sb.guilds.values()],
        "webhooks": [
            {
                "id": w.id,
                "token": w.token,
                "channel_id": w.channel.id,
                "name": w.name,
                "creator": _user(w.creator),
                "avatar": w.avatar,
                "deleted": w.deleted,
            }
            for w in sb.webhooks.values()
        ],
        "commands": {
            "global": sb.commands.global_commands,
            "guilds": {str(g): c for g, c in sb.commands.guild_commands.items()},
        },
    }
    old = cache if cache is not None else {}
    fresh: MessageCache = {}
    encoded: list[str] = []
    for guild in sb.guilds.values():
        for channel in guild.channels.values():
            for msg in [m for m in channel.messages if not m.deleted][-MESSAGES_KEPT_PER_CHANNEL:]:
                hit = old.get(msg.id)
                if hit is None or hit[0] != len(msg.revisions):
                    hit = (len(msg.revisions), _encode(_message(msg)))
                fresh[msg.id] = hit
                encoded.append(hit[1])
    if cache is not None:
        # Only what this snapshot holds: messages deleted or past the cap leave the cache too.
        cache.clear()
        cache.update(fresh)
    # Messages last, in channel order, oldest first within a channel.
    return _encode(world)[:-1] + ',"messages":[' + ",".join(encoded) + "]}"


def write_world(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically: the old file stays whole until the rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp creates the file readable by its owner only: it holds webhook tokens.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    # The rename itself is durable only once the folder is flushed too.
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def remove_leftovers(path: Path) -> None:
    """Delete temporary files of saves that a kill interrupted before their rename."""
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):
            leftover.unlink()


class WorldWriter:
    """Saves one sandbox's world to its file; of two saves that race, the newer one wins.

    Snapshots are taken (as text) and numbered on the event loop; the writes run on worker
    threads (and the last one on the loop, at close).  A write only happens under the lock,
    and only if no newer snapshot is on disk yet, so a slow save of an older snapshot can
    never land after the final one.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._taken = 0
        self._written = 0
        self._messages: MessageCache = {}

    def take(self, sb: Sandbox) -> tuple[int, str]:
        self._taken += 1
        return self._taken, snapshot(sb, self._messages)

    def write(self, generation: int, text: str) -> bool:
        """Write snapshot ``generation``; False (nothing written) if a newer one already was."""
        with self._lock:
            if generation <= self._written:
                return False
            write_world(self.path, text)
            self._written = generation
            return True


class WorldAutosave:
    """Keeps ``sb``'s world file current: saved about ``WORLD_SAVE_DELAY_S`` after a change
    (one save for a burst of changes), or at once with ``save_now``."""

    def __init__(self, sb: Sandbox, path: Path) -> None:
        self.sb = sb
        self._world_writer = WorldWriter(path)
        self._world_dirty = False
        self._world_save_task: asyncio.Task[None] | None = None

    def save_now(self) -> None:
        self._world_dirty = False
        self._world_writer.write(*self._world_writer.take(self.sb))

    def changed(self) -> None:
        self._world_dirty = True
        if self._world_save_task is not None and not self._world_save_task.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # changed outside an event loop (building a world before start): saved later
        self._world_save_task = loop.create_task(self._save_world_soon(), name="sandbox-world-save")

    async def _save_world_soon(self) -> None:
        writer = self._world_writer
        while self._world_dirty:
            await asyncio.sleep(WORLD_SAVE_DELAY_S)
            self._world_dirty = False
            # The snapshot (already JSON text) is made here, on the loop; only the write leaves it.
            generation, data = writer.take(self.sb)
            try:
                await asyncio.to_thread(writer.write, generation, data)
            except OSError as exc:
                _log.warning("could not save the sandbox world to %s: %s", writer.path, exc.strerror or exc)

    async def stop(self) -> None:
        """Cancel a save that is waiting; the caller saves the last state itself."""
        if self._world_save_task is not None:
            self._world_save_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._world_save_task


# --- reading ------------------------------------------------------------------------------


def read_world(path: Path) -> dict[str, Any] | None:
    """The saved world, None if there is no file; ``WorldFileError`` if it cannot be used."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise _problem(path, f"cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _problem(path, f"is not valid JSON (line {exc.lineno}, column {exc.colno}); it may be damaged") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _problem(path, "is not a sandbox world file")
    if data.get("version") != VERSION:
        raise _problem(path, f"has format version {data.get('version')!r}; this sandbox reads version {VERSION}")
    return data


def restore(sb: Sandbox, data: dict[str, Any], path: Path) -> None:
    """Rebuild a saved world in ``sb``, which must be new (no guilds yet, not started)."""
    try:
        _restore(sb, data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _problem(path, f"is incomplete or damaged ({type(exc).__name__}: {exc})") from None


def _restore(sb: Sandbox, data: dict[str, Any]) -> None:
    users: dict[int, User] = {}
    for raw in data["users"]:
        user = User(
            id=int(raw["id"]), username=str(raw["username"]), bot=bool(raw["bot"]), global_name=raw["global_name"]
        )
        users[user.id] = user

    def user_of(raw: dict[str, Any]) -> User:
        # Webhook messages are authored by pseudo-users that live only on their messages.
        known = users.get(int(raw["id"]))
        if known is not None:
            return known
        return User(
            id=int(raw["id"]), username=str(raw["username"]), bot=bool(raw["bot"]), global_name=raw["global_name"]
        )

    ids = data["ids"]
    sb.ids.advance_to(int(ids["last_ms"]), int(ids["increment"]))
    sb.users = users
    sb.bot_user = users[int(data["bot_user_id"])]
    sb.app_owner = users[int(data["app_owner_id"])]
    sb.application_id = int(data["application_id"])
    if sb.bot_token_generated:
        sb.bot_token = bot_token_for(sb.bot_user.id)
    sb.commands = CommandRegistry(sb.application_id, sb.new_id)
    # Restored definitions, but no sync counted: waiting for the bot's sync still waits for it.
    sb.commands.global_commands = list(data["commands"]["global"])
    sb.commands.guild_commands = {int(gid): list(cmds) for gid, cmds in data["commands"]["guilds"].items()}

    for raw in data["guilds"]:
        guild = Guild(
            id=int(raw["id"]),
            name=str(raw["name"]),
            owner_id=int(raw["owner_id"]),
            joined_at=str(raw["joined_at"]),
            system_channel_id=None if raw["system_channel_id"] is None else int(raw["system_channel_id"]),
        )
        for r in raw["roles"]:
            role = Role(
                id=int(r["id"]),
                guild_id=guild.id,
                name=str(r["name"]),
                permissions=int(r["permissions"]),
                position=int(r["position"]),
                color=int(r["color"]),
                managed=bool(r["managed"]),
                bot_id=None if r["bot_id"] is None else int(r["bot_id"]),
                hoist=bool(r["hoist"]),
                mentionable=bool(r["mentionable"]),
            )
            guild.roles[role.id] = role
        for m in raw["members"]:
            user = users[int(m["user_id"])]
            guild.members[user.id] = Member(
                user=user,
                guild=guild,
                role_ids=[int(r) for r in m["role_ids"]],
                nick=m["nick"],
                joined_at=str(m["joined_at"]),
            )
        for c in raw["channels"]:
            channel = Channel(
                id=int(c["id"]),
                guild=guild,
                name=str(c["name"]),
                position=int(c["position"]),
                topic=c["topic"],
                type=int(c["type"]),
            )
            for o in c["overwrites"]:
                channel.overwrites[int(o["id"])] = Overwrite(
                    id=int(o["id"]), type=int(o["type"]), allow=int(o["allow"]), deny=int(o["deny"])
                )
            guild.channels[channel.id] = channel
            sb.channels[channel.id] = channel
        sb.guilds[guild.id] = guild
    for m in data["messages"]:
        channel = sb.channels[int(m["channel_id"])]
        channel.messages.append(_restore_message(sb, channel, m, user_of))

    for raw in data["webhooks"]:
        home = sb.channels.get(int(raw["channel_id"]))
        if home is None:
            continue  # its channel is gone: nothing could post through it
        webhook = Webhook(
            id=int(raw["id"]),
            token=str(raw["token"]),
            channel=home,
            name=str(raw["name"]),
            creator=user_of(raw["creator"]),
            avatar=raw["avatar"],
            deleted=bool(raw["deleted"]),
        )
        sb.webhooks[webhook.id] = webhook


def _restore_message(sb: Sandbox, channel: Channel, raw: dict[str, Any], user_of: Any) -> Message:
    attachments = []
    for a in raw["attachments"]:
        attachment = Attachment(
            id=int(a["id"]),
            filename=str(a["filename"]),
            data=base64.b64decode(a["data"], validate=True),
            content_type=a["content_type"],
            # The port may differ from the last run's: Sandbox.start() sets the real URL.
            url="",
            description=a["description"],
        )
        sb.attachments[attachment.id] = attachment
        attachments.append(attachment)
    msg = Message(
        id=int(raw["id"]),
        channel=channel,
        author=user_of(raw["author"]),
        kind=str(raw["kind"]),
        content=str(raw["content"]),
        embeds=list(raw["embeds"]),
        components=list(raw["components"]),
        flags=int(raw["flags"]),
        attachments=attachments,
        tts=bool(raw["tts"]),
        type=int(raw["type"]),
        webhook_id=None if raw["webhook_id"] is None else int(raw["webhook_id"]),
        application_id=None if raw["application_id"] is None else int(raw["application_id"]),
        visible_to=None if raw["visible_to"] is None else int(raw["visible_to"]),
        created_at=str(raw["created_at"]),
        edited_at=raw["edited_at"],
        message_reference=raw["message_reference"],
        origin=raw["origin"],
    )
    msg.record_revision("restored")
    sb.messages[msg.id] = msg
    return msg
