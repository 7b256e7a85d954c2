"""Chaos mode: whether a server's admins let members sign conflicting messages on purpose.

An engine fact (``BeaconChains.require_chaos`` reads it before anything slashable is signed),
stored as the ``chaos`` key of the server's row in the ``server_settings`` table.  The row is
shared on purpose: databases written before bot/ owned the other keys (session length,
cooldown: ``bot.storage.ServerSettingsRepository``) hold chaos mode there, and moving it to a
column or table of its own would need a migration for no gain.  So two repositories write the
one JSON row, each its own keys, each as one read-modify-write inside
``Database.transaction(chain_id)``: the write lock serialises them, so neither ever loses the
other's keys.
"""

from __future__ import annotations

import json
from typing import Any

from chain.adapters.storage.database import Database, Reader

# The key of the server_settings JSON this module owns; every other key is the bot's.
CHAOS_KEY = "chaos"


async def _read_row(reader: Reader, chain_id: int) -> dict[str, Any]:
    """The whole JSON of a server's settings row, every owner's keys ({} when none is stored)."""
    row = await reader.fetchone("SELECT settings FROM server_settings WHERE chain_id = ?", (chain_id,))
    return json.loads(row[0]) if row else {}


class ChaosModeRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get_chaos_mode(self, chain_id: int) -> bool:
        """Whether admins let members sign conflicting messages (off unless an admin turned it on)."""
        return bool((await _read_row(self._db, chain_id)).get(CHAOS_KEY, False))

    async def set_chaos_mode(self, chain_id: int, enabled: bool) -> bool:
        """Turn chaos mode on or off, keeping the bot's keys of the row; returns what it was (read
        in the same transaction, so two admins toggling at once never both see the same "was")."""
        async with self._db.transaction(chain_id) as tx:
            settings = await _read_row(tx, chain_id)
            was = bool(settings.get(CHAOS_KEY, False))
            settings[CHAOS_KEY] = bool(enabled)
            await tx.execute(
                "INSERT INTO server_settings (chain_id, settings) VALUES (?, ?) "
                "ON CONFLICT (chain_id) DO UPDATE SET settings = excluded.settings",
                (chain_id, json.dumps(settings, sort_keys=True)),
            )
        return was
