"""Append-only records of what the bot did, and the change notifier tests wait on."""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .errors import SandboxError, SandboxTimeout

__all__ = [
    "CallbackRecord",
    "ChangeNotifier",
    "GatewayEvent",
    "RequestRecord",
    "SandboxError",
    "SandboxEvent",
    "SandboxTimeout",
    "UploadedFile",
    "route_pattern_matches",
]

_log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class UploadedFile:
    """A file part of a multipart request, kept verbatim so tests can read it back."""

    field_name: str
    filename: str
    content_type: str | None
    data: bytes


@dataclass
class RequestRecord:
    """One HTTP request received on the REST API, whatever its outcome."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    files: list[UploadedFile]
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)
    wall: float = field(default_factory=time.time)
    route: str | None = None
    status: int | None = None
    response: Any = None
    fault: str | None = None

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    def matches(self, pattern: str) -> bool:
        return route_pattern_matches(pattern, self.method, self.path, self.route)


def route_pattern_matches(pattern: str, method: str, path: str, route: str | None) -> bool:
    """Match "METHOD /path" patterns.

    METHOD may be omitted or "*". A path containing "{" is compared with the route
    template (e.g. "/webhooks/{webhook_id}/{webhook_token}"), otherwise it is an
    fnmatch glob over the concrete path (where "*" also crosses "/").
    """
    pattern = pattern.strip()
    want_method = "*"
    want_path = pattern
    if " " in pattern:
        want_method, want_path = pattern.split(None, 1)
    if want_method != "*" and want_method.upper() != method.upper():
        return False
    if "{" in want_path:
        return route is not None and route == want_path
    return fnmatch.fnmatchcase(path, want_path)


@dataclass
class CallbackRecord:
    """An interaction callback (POST /interactions/{id}/{token}/callback)."""

    type: int
    data: dict[str, Any] | None
    at: float
    latency: float
    accepted: bool
    error_code: int | None = None


@dataclass
class GatewayEvent:
    """One frame the sandbox sent or received on the gateway (payload kept as JSON)."""

    direction: str  # "send" or "recv"
    op: int
    t: str | None
    s: int | None
    d: Any
    session_id: str | None
    at: float = field(default_factory=time.monotonic)
    # (shard_id, num_shards) of the session the frame belongs to; None before IDENTIFY.
    shard: tuple[int, int] | None = None


@dataclass
class SandboxEvent:
    """Pushed to listeners (the terminal) whenever observable state changes."""

    kind: str  # message_create, message_update, message_delete, interaction, ack, autocomplete, modal, gateway
    message: Any = None
    interaction: Any = None
    detail: Any = None


class ChangeNotifier:
    """Wakes waiters whenever state changes, so waits are event-driven rather than polling."""

    poll_interval = 0.05

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._listeners: list[Callable[[SandboxEvent], None]] = []
        # Called on every change, with or without an event (the sandbox saves its world on it).
        self.on_change: Callable[[], None] | None = None

    def notify(self, event: SandboxEvent | None = None) -> None:
        self._event.set()
        # A fresh event per change lets every waiter observe every change exactly once.
        self._event = asyncio.Event()
        if self.on_change is not None:
            self.on_change()
        if event is None:
            return
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - a broken listener must not break the REST handler that notified it
                _log.exception("sandbox listener %r failed on %s", listener, event.kind)

    def add_listener(self, listener: Callable[[SandboxEvent], None]) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[SandboxEvent], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    async def wait_until(
        self,
        predicate: Callable[[], T | None],
        timeout: float,
        describe: Callable[[], str] | str = "condition",
    ) -> T:
        """Return the first truthy predicate() value, re-evaluated after every change."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            remaining = deadline - loop.time()
            if remaining <= 0:
                what = describe() if callable(describe) else describe
                raise SandboxTimeout(f"timed out after {timeout:.2f}s waiting for {what}")
            event = self._event
            try:
                # Re-check periodically too: predicates may also read state the sandbox does not
                # own (e.g. the bot's cache), which changes without a sandbox notification.
                await asyncio.wait_for(event.wait(), timeout=min(remaining, self.poll_interval))
            except TimeoutError:
                continue
