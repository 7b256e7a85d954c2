"""Redirect discord.py's network endpoints to a sandbox.

discord.py has three hard-coded bases, all class attributes read when a
request or connection is made:

* ``discord.http.Route.BASE`` - every REST call, *including* webhook calls made by
  ``discord.Webhook`` (webhook/async_.py and webhook/sync.py import the same Route),
  so a ``Webhook.from_url("https://discord.com/api/webhooks/ID/TOKEN")`` also lands here;
  the discord.com URL only has to pass discord.py's regex.
* ``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY`` - the first connection (the plain
  Client never calls GET /gateway/bot; reconnects use READY's resume_gateway_url).
* ``discord.asset.Asset.BASE`` - CDN URLs for avatars/icons, so ``.read()`` stays local.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from types import TracebackType

import discord.asset
import discord.gateway
import discord.http
import yarl

_log = logging.getLogger(__name__)


@dataclass
class DiscordPyTarget:
    """The previous endpoint values; ``restore()`` (or leaving the ``with`` block) puts them back."""

    previous_api_base: str
    previous_gateway: yarl.URL
    previous_cdn_base: str
    api_base: str
    gateway_url: str
    cdn_base: str | None

    def restore(self) -> None:
        discord.http.Route.BASE = self.previous_api_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = self.previous_gateway
        discord.asset.Asset.BASE = self.previous_cdn_base
        _log.debug("discord.py endpoints restored to %s", self.previous_api_base)

    def __enter__(self) -> DiscordPyTarget:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.restore()


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _require_loopback(url: yarl.URL) -> None:
    host = url.host or ""
    if not is_loopback_host(host):
        raise ValueError(f"refusing to point discord.py at non-loopback host {host!r}; the sandbox is local-only")


def point_discord_py_at(api_base: str, gateway_url: str, cdn_base: str | None = None) -> DiscordPyTarget:
    """Send all of discord.py's REST, webhook, gateway (and optionally CDN) traffic to a local sandbox.

    ``api_base`` is e.g. ``http://127.0.0.1:PORT/api/v10`` and ``gateway_url``
    ``ws://127.0.0.1:PORT/gateway``. If ``cdn_base`` is omitted it is derived from
    ``api_base`` (``http://127.0.0.1:PORT/cdn``). Returns a handle whose ``restore()``
    undoes the change; it is also a context manager.
    """
    api = yarl.URL(api_base.rstrip("/"))
    gateway = yarl.URL(gateway_url)
    _require_loopback(api)
    _require_loopback(gateway)
    if api.scheme not in ("http", "https") or gateway.scheme not in ("ws", "wss"):
        raise ValueError("api_base must be http(s):// and gateway_url ws(s)://")
    cdn = cdn_base.rstrip("/") if cdn_base else str(api.with_path("/cdn"))
    target = DiscordPyTarget(
        previous_api_base=discord.http.Route.BASE,
        previous_gateway=discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY,
        previous_cdn_base=discord.asset.Asset.BASE,
        api_base=str(api),
        gateway_url=str(gateway),
        cdn_base=cdn,
    )
    discord.http.Route.BASE = str(api)
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway
    discord.asset.Asset.BASE = cdn
    _log.info("discord.py pointed at %s / %s", api, gateway)
    return target
