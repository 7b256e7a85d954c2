"""The one message per server that shows the running epoch: the ``epoch_messages`` table."""

from __future__ import annotations

from chain.adapters.storage.database import Database
from chain.adapters.storage.records import EpochMessage


class EpochMessageRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get_epoch_message(self, chain_id: int) -> EpochMessage | None:
        """The message showing the chain's running epoch, as the slot driver last recorded it."""
        row = await self._db.fetchone(
            "SELECT channel_id, message_id, epoch FROM epoch_messages WHERE chain_id = ?", (chain_id,)
        )
        return None if row is None else EpochMessage(chain_id, row[0], row[1], row[2])

    async def set_epoch_message(self, message: EpochMessage, now: int) -> None:
        """Record (replacing any other) the message that shows the chain's running epoch."""
        async with self._db.transaction(message.chain_id) as tx:
            await tx.execute(
                "INSERT INTO epoch_messages (chain_id, channel_id, message_id, epoch, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (chain_id) DO UPDATE SET channel_id = excluded.channel_id, "
                "message_id = excluded.message_id, epoch = excluded.epoch, updated_at = excluded.updated_at",
                (message.chain_id, message.channel_id, message.message_id, message.epoch, now),
            )
