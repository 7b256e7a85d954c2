"""Fixtures for every test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import discord
import discord.asset
import discord.client
import discord.gateway
import discord.http
import discord.shard
import pytest

from tests.postgres_server import PostgresServer, PostgresUnavailableError


@pytest.fixture(autouse=True)
def restore_discord_py_endpoints() -> Iterator[None]:
    """discord.py keeps its endpoints as class attributes: put them back after every test."""
    saved = (
        discord.http.Route.BASE,
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY,
        discord.asset.Asset.BASE,
        discord.client.DiscordWebSocket,
        discord.shard.DiscordWebSocket,  # type: ignore[attr-defined]
    )
    try:
        yield
    finally:
        (
            discord.http.Route.BASE,
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY,
            discord.asset.Asset.BASE,
            discord.client.DiscordWebSocket,
            discord.shard.DiscordWebSocket,  # type: ignore[attr-defined]
        ) = saved


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the whole session (started by the first test that needs it)."""
    try:
        server = PostgresServer.start()
    except PostgresUnavailableError as exc:
        if os.environ.get("PLAYGROUND_REQUIRE_POSTGRES") == "1":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A new, empty database on the session's server, dropped after the test."""
    url = postgres_server.create_database()
    try:
        yield url
    finally:
        postgres_server.drop_database(url)


@pytest.fixture(params=["sqlite", "postgres"])
def database_target(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where a storage test's database lives, once per backend: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "chain.sqlite3"
    return str(request.getfixturevalue("postgres_url"))
