"""All of the bot's settings, read from the environment and an optional .env file.

Every field is mirrored, with a comment, in ``.env.example``.  Secrets are
``SecretStr`` so they never reach a log line or a repr, and no setting's value
ever appears in an error: a bad setting raises ``SettingsError``, one line naming
the setting and what is wrong, so a mistyped key is never printed to a terminal
or a log collector.
"""

from __future__ import annotations

import logging
import os
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.shard_scope import MAX_SHARD_COUNT, ShardScope, ShardSpecError, parse_shard_ids
from chain.keys import MASTER_KEY_SIZE_BYTES

log = logging.getLogger(__name__)


def master_key_problem(text: str) -> str | None:
    """What is wrong with a master key's text, without repeating any of it; None if it is fine."""
    digits = MASTER_KEY_SIZE_BYTES * 2
    if text.lower().startswith("0x"):
        return f"must be {digits} hex digits without a 0x prefix"
    if any(c not in string.hexdigits for c in text):
        return f"must be {digits} hex digits (0-9, a-f); it holds other characters"
    if len(text) != digits:
        return f"must be {digits} hex digits, got {len(text)}"
    return None


class SettingsError(ValueError):
    """A setting that cannot be used; the message names it and says why, never its value."""


class MasterKeyMissingError(SettingsError):
    """No master key anywhere, next to a database whose secrets need one."""


def describe_settings_errors(error: ValidationError) -> str:
    """One line naming every bad setting, as its environment variable, and what is wrong with it."""
    parts = []
    for item in error.errors(include_input=False, include_url=False, include_context=False):
        name = ".".join(str(part) for part in item["loc"]).upper() or "settings"
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{name} {message}" if message.startswith("must") else f"{name}: {message}")
    return "; ".join(parts)


class Settings(BaseSettings):
    # ``env_ignore_empty``: ``NAME=`` (as .env.example has every optional setting) means unset, the
    # default, in .env and in the environment alike; without it an empty integer was refused.
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", hide_input_in_errors=True,
        env_ignore_empty=True,
    )

    discord_token: SecretStr | None = Field(
        default=None, description="Bot token; without one the bot runs against the built-in sandbox"
    )
    database_path: Path = Field(default=Path("data/playground.sqlite3"), description="SQLite database file")
    database_url: SecretStr | None = Field(
        default=None,
        description="postgresql://user:password@host:port/database: keep the data in PostgreSQL, not DATABASE_PATH",
    )
    master_key: SecretStr | None = Field(
        default=None, description="64 hex digits that encrypt wallet keys and webhook URLs at rest"
    )
    master_key_file: Path = Field(
        default=Path("data/master.key"), description="Where the master key is created when MASTER_KEY is unset"
    )
    hashing_workers: int | None = Field(default=None, ge=1, le=64, description="Hashing processes; default all cores")
    hashing_cpu_percent: int = Field(
        default=100, ge=1, le=100,
        description="Most of the machine's CPU (all cores together) the hashing core may use, in percent",
    )
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
    faucet_points: int = Field(
        default=32, ge=1, le=1_000_000, description="Points one /wallet faucet claim gives a member"
    )
    faucet_cooldown_s: int = Field(
        default=3_600, ge=0, le=30 * 86_400, description="Seconds a member waits between two faucet claims"
    )
    faucet_fund_points: int = Field(
        default=100_000, ge=0, le=1_000_000_000_000,
        description="Points a new chain's faucet holds at genesis (0: new chains get no faucet)",
    )

    dashboard_host: str = Field(
        default="127.0.0.1", min_length=1, description="Address the classroom dashboard listens on"
    )
    dashboard_port: int | None = Field(
        default=None, ge=0, le=65535,
        description="Port of the classroom dashboard (0: any free port); unset: off (on in sandbox play)",
    )
    dashboard_public_url: str | None = Field(
        default=None, description="Base URL dashboard links use behind a reverse proxy (https://host[/prefix])"
    )

    # Sharded processes (README "Scaling out"): the launcher (python -m bot --shards N) sets these
    # for each process it starts; a process started by hand may set them itself.
    shard_count: int | None = Field(
        default=None, ge=1, le=MAX_SHARD_COUNT,
        description="Discord shards of the whole bot; unset: one process serving every server",
    )
    shard_ids: str | None = Field(
        default=None, description="This process's shards, like 0,1 or 0-3 (needs SHARD_COUNT); unset: all of them"
    )
    process_index: int = Field(
        default=0, ge=0, le=MAX_SHARD_COUNT, description="This process's number in a sharded bot (names its lease)"
    )
    sync_commands: bool = Field(
        default=True, description="Sync slash commands at startup (the launcher lets process 0 only)"
    )

    def __init__(self, **values: Any) -> None:
        problem = None
        try:
            super().__init__(**values)
        except ValidationError as exc:
            problem = describe_settings_errors(exc)
        # Raised outside the except block so the pydantic error (whose .errors() still holds
        # every input, the key included) is not even kept as this one's __context__.
        if problem is not None:
            raise SettingsError(problem)

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        value = value.upper()
        if value not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return value

    @field_validator("master_key")
    @classmethod
    def _hex_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        problem = master_key_problem(value.get_secret_value().strip())
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("shard_ids")
    @classmethod
    def _shard_list(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or not value.strip():
            return None
        count = info.data.get("shard_count")
        if count is None:
            raise ValueError("must be empty unless SHARD_COUNT is set")
        try:
            parse_shard_ids(value, count)
        except ShardSpecError as exc:
            raise ValueError(str(exc)) from None
        return value.strip()

    def shard_scope(self) -> ShardScope:
        """The servers this process serves: its shards, or every server when SHARD_COUNT is unset."""
        if self.shard_count is None:
            return ShardScope.everything()
        if self.shard_ids is None:
            return ShardScope(self.shard_count, tuple(range(self.shard_count)))
        return ShardScope(self.shard_count, parse_shard_ids(self.shard_ids, self.shard_count))

    @property
    def sharded(self) -> bool:
        """Whether this process is one of a sharded bot's (SHARD_COUNT set)."""
        return self.shard_count is not None

    def sharding_problem(self) -> str | None:
        """Why these settings cannot run sharded (one line), or None."""
        if not self.sharded:
            return None
        if self.database_url is None:
            return (
                "sharding (SHARD_COUNT, python -m bot --shards) needs PostgreSQL: several processes cannot share "
                "the SQLite file. Set DATABASE_URL=postgresql://... (see README, Scaling out), or run one process "
                "without SHARD_COUNT."
            )
        if self.discord_token is None:
            return (
                "sharding (SHARD_COUNT, python -m bot --shards) needs DISCORD_TOKEN: the built-in sandbox play "
                "is one process. Set DISCORD_TOKEN, or unset SHARD_COUNT."
            )
        return None

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if not value.get_secret_value().strip().startswith(("postgresql://", "postgres://")):
            raise ValueError("must start with postgresql:// (empty: the SQLite file DATABASE_PATH)")
        return SecretStr(value.get_secret_value().strip())

    def database_target(self) -> str | Path:
        """What ``Store.open`` opens: the PostgreSQL URL when set, else the SQLite file."""
        return self.database_path if self.database_url is None else self.database_url.get_secret_value()

    def database_name(self) -> str:
        """The database, for messages: the SQLite path, or PostgreSQL's host and database (never a password)."""
        if self.database_url is None:
            return str(self.database_path)
        url = urlsplit(self.database_url.get_secret_value())
        return f"PostgreSQL database {url.path.lstrip('/') or '(default)'} on {url.hostname or 'localhost'}"
    @field_validator("dashboard_public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        parsed = urlsplit(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError("must be an http:// or https:// URL, like https://playground.example.org")
        if parsed.query or parsed.fragment or "@" in parsed.netloc:
            raise ValueError("must be a plain base URL: no user, query or fragment")
        return value

    def master_key_source(self) -> str:
        """Where the master key comes from, for messages (never the key itself)."""
        if self.master_key is not None:
            return "MASTER_KEY"
        return f"the key file {self.master_key_file}"

    def load_master_key(
        self, randomness: Callable[[int], bytes] = os.urandom, *, may_create: bool = True
    ) -> bytes:
        """The master key: from settings, else from its file, else a new one (with a warning).

        ``may_create=False`` (the database already holds sealed secrets) refuses to make a
        new key: one made now could open none of them.
        """
        if self.master_key is not None:
            return bytes.fromhex(self.master_key.get_secret_value().strip())
        path = self.master_key_file
        if path.exists():
            text = path.read_text().strip()
            problem = master_key_problem(text)
            if problem is not None:
                raise SettingsError(f"MASTER_KEY_FILE {path}: the key in it {problem}")
            return bytes.fromhex(text)
        if not may_create:
            raise MasterKeyMissingError(
                f"no master key: MASTER_KEY is empty and {path} does not exist, but the database "
                "holds secrets sealed under a master key. Set MASTER_KEY, or put the key file back "
                "(MASTER_KEY_FILE); a new key would lock every wallet. Nothing was changed."
            )
        # The folder holds the key: only its owner may list or enter it.
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = randomness(MASTER_KEY_SIZE_BYTES)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key.hex() + "\n")
        log.warning(
            "no MASTER_KEY set: created a new one in %s. Back it up: without it no wallet can be opened.", path
        )
        return key
