"""Exceptions shared by the sandbox modules."""

from __future__ import annotations

from typing import Any


class SandboxError(Exception):
    """A test or terminal asked the sandbox for something Discord would not allow."""


class SandboxTimeout(TimeoutError):
    """A wait on sandbox state expired; the message says what was being waited for."""


class ApiError(Exception):
    """Raised while handling a REST request; rendered as Discord's JSON error body."""

    def __init__(self, status: int, code: int, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.body: dict[str, Any] = body if body is not None else {"message": message, "code": code}
