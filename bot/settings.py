"""All of the bot's settings, read from the environment and an optional .env file.

Every field is mirrored, with a comment, in ``.env.example``.  Secrets are
``SecretStr`` so they never reach a log line or a repr.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from chain.keys import MASTER_KEY_SIZE_BYTES

log = logging.getLogger(__name__)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    discord_token: SecretStr | None = Field(
        default=None, description="Bot token; without one the bot runs against the built-in sandbox"
    )
    database_path: Path = Field(default=Path("data/playground.sqlite3"), description="SQLite database file")
    master_key: SecretStr | None = Field(
        default=None, description="64 hex digits that encrypt wallet keys and webhook URLs at rest"
    )
    master_key_file: Path = Field(
        default=Path("data/master.key"), description="Where the master key is created when MASTER_KEY is unset"
    )
    hashing_workers: int | None = Field(default=None, ge=1, le=64, description="Hashing processes; default all cores")
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR")
    dev_guild_id: int | None = Field(default=None, description="Sync commands to this server instantly")
    discord_api_base: str | None = Field(default=None, description="REST base of a Discord-compatible server")
    discord_gateway_url: str | None = Field(default=None, description="Gateway URL of a Discord-compatible server")
    sandbox_port: int = Field(default=8765, ge=0, le=65535, description="Port of the built-in sandbox")
    progress_interval_s: float = Field(default=3.0, gt=0, le=60, description="Seconds between /mine progress edits")
    watts_per_core: int = Field(default=15, ge=1, le=1000, description="Power of one busy CPU core, for /chain energy")
    slot_blocks_per_hour: int = Field(
        default=360, ge=1, le=3_600, description="Proof-of-stake slot blocks a server may get per hour on average"
    )
    outbox_retention_days: int = Field(
        default=7, ge=1, le=3650, description="Days a delivered announcement is kept before it is deleted"
    )

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        value = value.upper()
        if value not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("log_level must be DEBUG, INFO, WARNING or ERROR")
        return value

    @field_validator("master_key")
    @classmethod
    def _hex_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        try:
            raw = bytes.fromhex(value.get_secret_value())
        except ValueError:
            raise ValueError("master_key must be hex") from None
        if len(raw) != MASTER_KEY_SIZE_BYTES:
            raise ValueError(f"master_key must be {MASTER_KEY_SIZE_BYTES * 2} hex digits")
        return value

    def load_master_key(self, randomness=os.urandom) -> bytes:
        """The master key: from settings, else from its file, else a new one (with a warning)."""
        if self.master_key is not None:
            return bytes.fromhex(self.master_key.get_secret_value())
        path = self.master_key_file
        if path.exists():
            raw = bytes.fromhex(path.read_text().strip())
            if len(raw) != MASTER_KEY_SIZE_BYTES:
                raise ValueError(f"{path} does not hold a {MASTER_KEY_SIZE_BYTES}-byte hex key")
            return raw
        path.parent.mkdir(parents=True, exist_ok=True)
        key = randomness(MASTER_KEY_SIZE_BYTES)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key.hex() + "\n")
        log.warning(
            "no MASTER_KEY set: created a new one in %s. Back it up: without it no wallet can be opened.", path
        )
        return key
