"""What simulated members do: post messages, run slash commands, ask for autocomplete, press
buttons, choose in select menus and submit modals.

Each action is checked the way the official Discord client checks it (the command is synced
and visible to the member, the options fit the definition, the button is enabled and can be
seen) before it becomes the MESSAGE_CREATE or INTERACTION_CREATE the bot receives; a refusal is
a ``SandboxError`` and sends nothing.  An interaction comes back as an ``InteractionHandle``
to wait on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from . import interactions as ix
from .errors import SandboxError
from .gateway import DIRECT_MESSAGES
from .ids import interaction_token as new_interaction_token
from .ids import iso_now
from .interactions import InteractionHandle, OptionBuilder, nest_options, resolve_leaf, split_path
from .models import KIND_USER, Channel, ChannelRef, Guild, GuildRef, Member, MemberRef, Message, User
from .permissions import ALL_PERMISSIONS
from .records import SandboxEvent

if TYPE_CHECKING:
    from .server import Sandbox

_log = logging.getLogger(__name__)


class UserActions:
    """The simulated users' half of the test API; ``Sandbox`` hands its public calls here."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sb = sandbox
        # user id -> the id of that user's DM channel with the bot (send_dm)
        self._dm_channels: dict[int, int] = {}

    async def send_message(self, guild: GuildRef, channel: ChannelRef, member: MemberRef, content: str) -> Message:
        """A simulated user posts a plain message (delivered to the bot as MESSAGE_CREATE)."""
        g = self.sb.guild(guild)
        ch = self.sb.channel(g, channel)
        m = self.sb.member(g, member)
        msg = self.sb.messaging.create_message(ch, m.user, KIND_USER, {"content": content}, [], source="user")
        await asyncio.sleep(0)
        return msg

    async def send_dm(self, user: User | Member | int | str, content: str) -> dict[str, Any]:
        """A simulated user sends the bot a direct message: MESSAGE_CREATE without a guild, which
        Discord delivers to shard 0 only (with the DIRECT_MESSAGES intent).  Returns the payload.

        The sandbox keeps no DM channels: the message is not stored, and the bot's reply to its
        channel is answered 404 Unknown Channel."""
        author = self.sb.find_user(user)
        if author is None:
            raise SandboxError(f"no user {user!r}")
        # One DM channel per user, as on Discord (the bot's DM channel with that user).
        channel_id = self._dm_channels.setdefault(author.id, self.sb.new_id())
        payload: dict[str, Any] = {
            "id": str(self.sb.new_id()),
            "channel_id": str(channel_id),
            "author": author.payload(),
            "content": content,
            "timestamp": iso_now(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "components": [],
            "pinned": False,
            "type": 0,
            "flags": 0,
        }
        self.sb.gateway.dispatch("MESSAGE_CREATE", payload, guild_id=None, intent=DIRECT_MESSAGES)
        await asyncio.sleep(0)
        return payload

    def _check_can_use(self, cmd: dict[str, Any], member: Member, channel: Channel, path: str) -> None:
        required = cmd.get("default_member_permissions")
        if required is None:
            return
        perms = member.permissions_in(channel)
        needed = int(required)
        # "0" hides a command from everyone but administrators.
        if (needed == 0 and perms != ALL_PERMISSIONS) or (perms & needed) != needed:
            raise SandboxError(
                f"{member.name} cannot use /{path}: Discord hides it from members lacking permissions {needed}"
            )

    async def invoke(
        self,
        guild: GuildRef,
        channel: ChannelRef,
        member: MemberRef,
        command: str,
        options: Mapping[str, Any] | None = None,
        *,
        check_permissions: bool = True,
        validate: bool = True,
    ) -> InteractionHandle:
        """Run a slash command as ``member``: ``invoke(g, ch, alice, "wallet pay", {"member": bob, "amount": 5})``.

        Options are typed from the synced definition (strings are coerced, users/channels/roles
        accept objects, ids or names, attachments accept Upload(...)). Returns immediately after
        dispatching; wait on the handle.

        ``validate=False`` sends what a modified client can send: string, integer, number and
        boolean values exactly as given (any JSON value, out of range, not a choice, of the
        wrong type), required options may be left out, and a channel of any type is accepted.
        The API forwards such interactions to the bot; only the official client checks.
        """
        g = self.sb.guild(guild)
        ch = self.sb.channel(g, channel)
        m = self.sb.member(g, member)
        parts = split_path(command)
        cmd = self.sb.commands.find(g.id, parts[0])
        if cmd is None:
            known = ", ".join(sorted("/" + c["name"] for c in self.sb.commands.visible(g.id))) or "none"
            raise SandboxError(f"/{parts[0]} is not registered in {g.name} (synced commands: {known})")
        path = " ".join(parts)
        if check_permissions:
            self._check_can_use(cmd, m, ch, path)
        chain, leaf = resolve_leaf(cmd, parts)
        builder = OptionBuilder(self.sb, g, ch, m, validate=validate)
        options_payload = nest_options(chain, builder.build(path, leaf, options or {}))
        data: dict[str, Any] = {"id": cmd["id"], "name": cmd["name"], "type": 1}
        if options_payload:
            data["options"] = options_payload
        if builder.resolved:
            data["resolved"] = builder.resolved
        if cmd.get("guild_id"):
            data["guild_id"] = cmd["guild_id"]
        return await self._dispatch_interaction(ix.APPLICATION_COMMAND, g, ch, m, data, command_path=path)

    async def autocomplete(
        self,
        guild: GuildRef,
        channel: ChannelRef,
        member: MemberRef,
        command: str,
        options: Mapping[str, Any] | None = None,
        *,
        focused: str,
        timeout: float = 3.0,
        wait: bool = True,
    ) -> InteractionHandle:
        """Send an autocomplete interaction and (by default) wait for the bot's choices (handle.choices)."""
        g = self.sb.guild(guild)
        ch = self.sb.channel(g, channel)
        m = self.sb.member(g, member)
        parts = split_path(command)
        cmd = self.sb.commands.find(g.id, parts[0])
        if cmd is None:
            raise SandboxError(f"/{parts[0]} is not registered in {g.name}")
        path = " ".join(parts)
        chain, leaf = resolve_leaf(cmd, parts)
        definition = next((o for o in leaf if o["name"] == focused), None)
        if definition is None or not definition.get("autocomplete"):
            raise SandboxError(f"/{path}: option {focused!r} does not have autocomplete enabled")
        builder = OptionBuilder(self.sb, g, ch, m)
        options_payload = nest_options(chain, builder.build(path, leaf, options or {}, focused=focused))
        data: dict[str, Any] = {"id": cmd["id"], "name": cmd["name"], "type": 1, "options": options_payload}
        if cmd.get("guild_id"):
            data["guild_id"] = cmd["guild_id"]
        handle = await self._dispatch_interaction(ix.AUTOCOMPLETE, g, ch, m, data, command_path=path)
        if wait:
            await handle.wait_choices(timeout)
        return handle

    def _component_target(self, message: Message | int, member: MemberRef | None) -> tuple[Message, Member]:
        if member is None:
            raise SandboxError("say which member clicks (member=...)")
        msg = self.sb.message(message)
        if msg.deleted:
            raise SandboxError(f"message {msg.id} was deleted")
        m = self.sb.member(msg.guild, member)
        if msg.ephemeral and msg.visible_to not in (None, m.id):
            raise SandboxError(f"{m.name} cannot see ephemeral message {msg.id}")
        return msg, m

    async def click(
        self,
        message: Message | int,
        custom_id: str | None = None,
        member: MemberRef | None = None,
        *,
        label: str | None = None,
    ) -> InteractionHandle:
        """Press a button (by custom_id or label) on a message, as ``member``."""
        msg, m = self._component_target(message, member)
        comp = msg.find_component(custom_id=custom_id, label=label)
        if comp is None or comp.get("type") != 2:
            buttons = [c.get("label") or c.get("custom_id") for c in msg.iter_components() if c.get("type") == 2]
            raise SandboxError(f"no button {custom_id or label!r} on message {msg.id} (buttons: {buttons})")
        if comp.get("disabled"):
            raise SandboxError(f"button {comp.get('label')!r} is disabled")
        if comp.get("style") == 5 or not comp.get("custom_id"):
            raise SandboxError(
                f"button {comp.get('label')!r} is a link button; Discord opens {comp.get('url')} instead"
            )
        data = {"custom_id": comp["custom_id"], "component_type": 2}
        if "id" in comp:
            data["id"] = comp["id"]
        return await self._dispatch_interaction(
            ix.MESSAGE_COMPONENT, msg.guild, msg.channel, m, data, source_message=msg
        )

    async def select(
        self,
        message: Message | int,
        custom_id: str,
        values: Iterable[str],
        member: MemberRef,
    ) -> InteractionHandle:
        """Choose values in a select menu on a message, as ``member``."""
        msg, m = self._component_target(message, member)
        comp = msg.find_component(custom_id=custom_id)
        if comp is None or comp.get("type") not in (3, 5, 6, 7, 8):
            raise SandboxError(f"no select menu {custom_id!r} on message {msg.id}")
        chosen = [str(v) for v in values]
        if comp.get("type") == 3:
            allowed = {o["value"] for o in comp.get("options", [])}
            labels = {o["label"]: o["value"] for o in comp.get("options", [])}
            chosen = [labels.get(v, v) for v in chosen]
            bad = [v for v in chosen if v not in allowed]
            if bad:
                raise SandboxError(f"select {custom_id!r} has no option(s) {bad}")
        lo, hi = comp.get("min_values", 1), comp.get("max_values", 1)
        if not lo <= len(chosen) <= hi:
            raise SandboxError(f"select {custom_id!r} needs between {lo} and {hi} values")
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": comp["type"]}
        if comp["type"] != 3:
            # Entity selects carry ids plus resolved objects, like slash command options.
            builder = OptionBuilder(self.sb, msg.guild, msg.channel, m)
            kind = {5: ix.USER, 6: ix.ROLE, 7: ix.MENTIONABLE, 8: ix.CHANNEL}[comp["type"]]
            chosen = [builder.convert(custom_id, {"type": kind, "name": custom_id}, v, validate=False) for v in chosen]
            data["resolved"] = builder.resolved
        data["values"] = chosen
        return await self._dispatch_interaction(
            ix.MESSAGE_COMPONENT, msg.guild, msg.channel, m, data, source_message=msg
        )

    async def submit_modal(
        self,
        handle: InteractionHandle,
        values: Mapping[str, str],
        member: MemberRef | None = None,
    ) -> InteractionHandle:
        """Fill in and submit the modal the bot opened on ``handle`` (values keyed by custom_id or label)."""
        modal = handle.modal
        if modal is None:
            raise SandboxError(f"{handle!r} did not open a modal")
        if any(h.parent is handle and h.type == ix.MODAL_SUBMIT for h in self.sb.interactions.values()):
            raise SandboxError("that modal was already submitted (Discord closes it on submit)")
        m = self.sb.member(handle.guild, member) if member is not None else handle.member
        used: set[str] = set()

        def pick(comp: dict[str, Any], label: str | None) -> str | None:
            for key in (comp.get("custom_id"), label, comp.get("label")):
                if key is not None and key in values:
                    used.add(key)
                    return values[key]
            return None

        def fill(components: list[dict[str, Any]], label: str | None = None) -> list[dict[str, Any]]:
            out: list[dict[str, Any]] = []
            for comp in components:
                ctype = comp.get("type")
                if ctype == 1:
                    out.append({"type": 1, "components": fill(comp.get("components") or [])})
                elif ctype == 18:
                    inner = fill([comp["component"]], comp.get("label")) if comp.get("component") else []
                    if inner:
                        out.append({"type": 18, "component": inner[0]})
                elif ctype == 4:
                    value = pick(comp, label)
                    if value is None:
                        value = comp.get("value") or ""
                    if comp.get("required", True) and not value:
                        raise SandboxError(
                            f"modal field {comp.get('label') or label or comp['custom_id']!r} is required"
                        )
                    out.append({"type": 4, "custom_id": comp["custom_id"], "value": str(value)})
                elif ctype in (3, 5, 6, 7, 8):
                    value = pick(comp, label)
                    chosen = [] if value is None else ([value] if isinstance(value, str) else list(value))
                    out.append({"type": ctype, "custom_id": comp["custom_id"], "values": chosen})
            return out

        components = fill(modal.get("components") or [])
        unknown_keys = set(values) - used
        if unknown_keys:
            raise SandboxError(f"modal has no field(s) {sorted(unknown_keys)}")
        data = {"custom_id": modal["custom_id"], "components": components}
        source = handle.source_message
        return await self._dispatch_interaction(
            ix.MODAL_SUBMIT, handle.guild, handle.channel, m, data, source_message=source, parent=handle
        )

    async def _dispatch_interaction(
        self,
        type_: int,
        guild: Guild,
        channel: Channel,
        member: Member,
        data: dict[str, Any],
        *,
        command_path: str | None = None,
        source_message: Message | None = None,
        parent: InteractionHandle | None = None,
    ) -> InteractionHandle:
        if self.sb.gateway.newest is None:
            raise SandboxError("the bot has not connected to the gateway yet (no IDENTIFY received)")
        if not self.sb.gateway.sessions_for(guild.id):
            raise SandboxError(
                f"no gateway session owns {guild.name} (shard {self.sb.shard_of(guild)} of"
                f" {self.sb.gateway.newest.num_shards}): that shard has not identified yet"
            )
        if self.sb.bot_user.id not in guild.members:
            # Discord offers no command or component of an app that is not in the guild.
            raise SandboxError(f"the bot is not in {guild.name} (sb.add_bot adds it back)")
        handle = InteractionHandle(
            self.sb,
            id=self.sb.new_id(),
            token=new_interaction_token(),
            type=type_,
            guild=guild,
            channel=channel,
            member=member,
            data=data,
            command_path=command_path,
            source_message=source_message,
            parent=parent,
        )
        channel_data = channel.payload()
        channel_data["permissions"] = str(member.permissions_in(channel))
        payload: dict[str, Any] = {
            "id": str(handle.id),
            "application_id": str(self.sb.application_id),
            "type": type_,
            "data": data,
            "guild_id": str(guild.id),
            "guild": {"id": str(guild.id), "locale": "en-US", "features": []},
            "channel_id": str(channel.id),
            "channel": channel_data,
            "member": member.payload(permissions=member.permissions_in(channel)),
            "token": handle.token,
            "version": 1,
            "app_permissions": str(self.sb.bot_member(guild).permissions_in(channel)),
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild.id)},
            "context": 0,
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        if source_message is not None:
            payload["message"] = source_message.payload()
        handle.payload = payload
        self.sb.interactions[handle.id] = handle
        self.sb.interactions_by_token[handle.token] = handle

        def on_sent(at: float) -> None:
            if handle.dispatched_at is None:
                handle.dispatched_at = at

        self.sb.gateway.dispatch("INTERACTION_CREATE", payload, guild_id=guild.id, on_sent=on_sent)
        self.sb.notifier.notify(SandboxEvent("interaction", interaction=handle))
        _log.debug("dispatched interaction %s (%s)", handle.id, command_path or data.get("custom_id"))
        # Yield so the gateway writer can put the event on the wire before the caller starts timing.
        await asyncio.sleep(0)
        return handle
