"""Per-server settings that are not consensus rules (session length, chaos mode...): the
``server_settings`` table.  Chain-side because the engine reads chaos mode (``BeaconNode``)."""

from __future__ import annotations

import json
from typing import Any

from chain.adapters.storage.database import Database, Reader


class ServerSettingsRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, chain_id: int, *, within: Reader | None = None) -> dict[str, Any]:
        row = await (within or self._db).fetchone(
            "SELECT settings FROM server_settings WHERE chain_id = ?", (chain_id,)
        )
        return json.loads(row[0]) if row else {}

    async def update(self, chain_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        """Merge ``changes`` into the stored settings (read and write: one transaction); the result."""
        async with self._db.transaction(chain_id) as tx:
            settings = {**await self.get(chain_id, within=tx), **changes}
            await tx.execute(
                "INSERT INTO server_settings (chain_id, settings) VALUES (?, ?) "
                "ON CONFLICT (chain_id) DO UPDATE SET settings = excluded.settings",
                (chain_id, json.dumps(settings, sort_keys=True)),
            )
        return settings

    async def replace(self, chain_id: int, settings: dict[str, Any]) -> None:
        async with self._db.transaction(chain_id) as tx:
            await tx.execute(
                "INSERT INTO server_settings (chain_id, settings) VALUES (?, ?) "
                "ON CONFLICT (chain_id) DO UPDATE SET settings = excluded.settings",
                (chain_id, json.dumps(settings, sort_keys=True)),
            )

    async def get_chaos_mode(self, chain_id: int) -> bool:
        """Whether admins let members sign conflicting messages (``chaos`` in the server settings)."""
        return bool((await self.get(chain_id)).get("chaos", False))

    async def set_chaos_mode(self, chain_id: int, enabled: bool) -> None:
        """Turn chaos mode on or off, keeping the other server settings."""
        await self.update(chain_id, {"chaos": bool(enabled)})
