"""Fixtures for every test."""

from __future__ import annotations

from collections.abc import Iterator

import discord
import discord.asset
import discord.client
import discord.gateway
import discord.http
import pytest


@pytest.fixture(autouse=True)
def restore_discord_py_endpoints() -> Iterator[None]:
    """discord.py keeps its endpoints as class attributes: put them back after every test."""
    saved = (
        discord.http.Route.BASE,
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY,
        discord.asset.Asset.BASE,
        discord.client.DiscordWebSocket,
    )
    try:
        yield
    finally:
        (
            discord.http.Route.BASE,
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY,
            discord.asset.Asset.BASE,
            discord.client.DiscordWebSocket,
        ) = saved
