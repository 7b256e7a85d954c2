"""Identifier and token generation that satisfies discord.py's own parsers.

discord.py validates webhook URLs with a regex that requires 17-20 digit ids
and tokens of at least 60 characters, so the sandbox mints real-looking
Discord snowflakes and long url-safe tokens instead of small counters.
"""

from __future__ import annotations

import base64
import datetime
import secrets
import threading
import time

DISCORD_EPOCH_MS = 1420070400000


class SnowflakeGenerator:
    """Monotonic Discord-style snowflakes: (ms since 2015) << 22 | worker << 17 | increment."""

    def __init__(self, worker_id: int = 1) -> None:
        self._worker = worker_id & 0x1F
        self._last_ms = 0
        self._increment = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            now_ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
            # Never go backwards even if the wall clock does, so ids stay sortable by creation order.
            now_ms = max(now_ms, self._last_ms)
            if now_ms == self._last_ms:
                self._increment += 1
                if self._increment > 0xFFF:
                    now_ms += 1
                    self._increment = 0
            else:
                self._increment = 0
            self._last_ms = now_ms
            return (now_ms << 22) | (self._worker << 17) | self._increment

    def next_on_shard(self, shard_id: int, num_shards: int) -> int:
        """A new id that Discord's formula, ``(id >> 22) % num_shards``, puts on ``shard_id``:
        the first millisecond after every id minted so far whose number falls on that shard (at
        most ``num_shards`` ms ahead of the clock), so ids stay unique and sorted."""
        if num_shards < 1 or not 0 <= shard_id < num_shards:
            raise ValueError(f"no shard {shard_id} among {num_shards}")
        with self._lock:
            now_ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
            # Strictly after the last millisecond used, so increment 0 in it is still free.
            now_ms = max(now_ms, self._last_ms + 1)
            now_ms += (shard_id - now_ms) % num_shards
            self._last_ms, self._increment = now_ms, 0
            return (now_ms << 22) | (self._worker << 17)

    def position(self) -> tuple[int, int]:
        """Where the generator stands (last millisecond used, increment within it), to save."""
        with self._lock:
            return self._last_ms, self._increment

    def advance_to(self, last_ms: int, increment: int) -> None:
        """Continue after a saved position, so no new id repeats one minted before a restart
        (even if the wall clock has gone back since)."""
        with self._lock:
            if (last_ms, increment) > (self._last_ms, self._increment):
                self._last_ms, self._increment = last_ms, increment


def snowflake_time(snowflake: int) -> datetime.datetime:
    ms = (snowflake >> 22) + DISCORD_EPOCH_MS
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)


def iso_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


def webhook_token() -> str:
    # 68 chars from [A-Za-z0-9_-]: inside discord.py's from_url token charset and above its 60-char minimum.
    return secrets.token_urlsafe(51)


def interaction_token() -> str:
    return "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(96)


def bot_token_for(user_id: int) -> str:
    # Same three-part shape as a real token so code that splits or logs tokens behaves the same.
    head = base64.urlsafe_b64encode(str(user_id).encode()).decode().rstrip("=")
    return f"{head}.{secrets.token_urlsafe(4)}.{secrets.token_urlsafe(27)}"


def session_id() -> str:
    return secrets.token_hex(16)
