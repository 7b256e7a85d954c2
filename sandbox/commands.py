"""Application command storage with Discord's overwrite/upsert semantics."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any


class CommandRegistry:
    """Global and per-guild command lists, keyed by (name, type) like Discord.

    Bulk overwrite keeps the id of a command whose name and type survive, as
    Discord does, so ids recorded by a test stay valid across re-syncs.
    """

    def __init__(self, application_id: int, new_id: Callable[[], int]) -> None:
        self.application_id = application_id
        self._new_id = new_id
        self.global_commands: list[dict[str, Any]] = []
        self.guild_commands: dict[int, list[dict[str, Any]]] = {}
        self.global_syncs = 0
        self.guild_syncs: dict[int, int] = {}
        self.last_sync_at: float | None = None

    def scope(self, guild_id: int | None) -> list[dict[str, Any]]:
        if guild_id is None:
            return self.global_commands
        return self.guild_commands.setdefault(guild_id, [])

    def _normalise(
        self, raw: dict[str, Any], guild_id: int | None, existing: dict[str, Any] | None
    ) -> dict[str, Any]:
        cmd = copy.deepcopy(raw)
        cmd.setdefault("type", 1)
        cmd.setdefault("description", "" if cmd["type"] != 1 else cmd.get("description", ""))
        cmd.setdefault("options", [])
        cmd.setdefault("default_member_permissions", None)
        cmd.setdefault("nsfw", False)
        cmd.setdefault("name_localizations", None)
        cmd.setdefault("description_localizations", None)
        if cmd.get("default_member_permissions") is not None:
            cmd["default_member_permissions"] = str(cmd["default_member_permissions"])
        cmd["id"] = existing["id"] if existing else str(self._new_id())
        cmd["application_id"] = str(self.application_id)
        cmd["version"] = str(self._new_id())
        if guild_id is not None:
            cmd["guild_id"] = str(guild_id)
            cmd.pop("contexts", None)
            cmd.pop("integration_types", None)
        else:
            cmd.setdefault("contexts", None)
            cmd.setdefault("integration_types", [0])
        return cmd

    def bulk_overwrite(self, guild_id: int | None, payload: list[dict[str, Any]]) -> list[dict[str, Any]]:
        current = {(c["name"], c.get("type", 1)): c for c in self.scope(guild_id)}
        result = [self._normalise(raw, guild_id, current.get((raw.get("name"), raw.get("type", 1)))) for raw in payload]
        if guild_id is None:
            self.global_commands = result
        else:
            self.guild_commands[guild_id] = result
        self._count_sync(guild_id)
        return copy.deepcopy(result)

    def _count_sync(self, guild_id: int | None) -> None:
        if guild_id is None:
            self.global_syncs += 1
        else:
            self.guild_syncs[guild_id] = self.guild_syncs.get(guild_id, 0) + 1
        self.last_sync_at = time.monotonic()

    def upsert(self, guild_id: int | None, raw: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        self._count_sync(guild_id)
        commands = self.scope(guild_id)
        key = (raw.get("name"), raw.get("type", 1))
        for i, existing in enumerate(commands):
            if (existing["name"], existing.get("type", 1)) == key:
                commands[i] = self._normalise(raw, guild_id, existing)
                return copy.deepcopy(commands[i]), False
        cmd = self._normalise(raw, guild_id, None)
        commands.append(cmd)
        return copy.deepcopy(cmd), True

    def get(self, guild_id: int | None, command_id: int) -> dict[str, Any] | None:
        return next((c for c in self.scope(guild_id) if int(c["id"]) == command_id), None)

    def edit(self, guild_id: int | None, command_id: int, patch: dict[str, Any]) -> dict[str, Any] | None:
        commands = self.scope(guild_id)
        for i, existing in enumerate(commands):
            if int(existing["id"]) == command_id:
                merged = {**existing, **patch}
                commands[i] = self._normalise(merged, guild_id, existing)
                return copy.deepcopy(commands[i])
        return None

    def delete(self, guild_id: int | None, command_id: int) -> bool:
        commands = self.scope(guild_id)
        for i, existing in enumerate(commands):
            if int(existing["id"]) == command_id:
                del commands[i]
                return True
        return False

    def find(self, guild_id: int, name: str, type_: int = 1) -> dict[str, Any] | None:
        """Guild commands shadow global ones of the same name, as in the Discord client."""
        for cmd in self.guild_commands.get(guild_id, []):
            if cmd["name"] == name and cmd.get("type", 1) == type_:
                return cmd
        for cmd in self.global_commands:
            if cmd["name"] == name and cmd.get("type", 1) == type_:
                return cmd
        return None

    def visible(self, guild_id: int) -> list[dict[str, Any]]:
        names = set()
        out = []
        for cmd in self.guild_commands.get(guild_id, []) + self.global_commands:
            key = (cmd["name"], cmd.get("type", 1))
            if key not in names:
                names.add(key)
                out.append(cmd)
        return out
