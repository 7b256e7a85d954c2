"""Fault injection for the REST API: rate limits, server errors, dead webhooks, latency.

Faults are matched before a request touches sandbox state, so a 429 followed by
a successful retry changes state exactly once, as on real Discord.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .records import RequestRecord, route_pattern_matches

Pattern = str | Callable[[RequestRecord], bool]

# discord.py treats a 429 without a Via header as a Cloudflare ban and raises instead of
# retrying (http.py and webhook/async_.py both check it), so every 429 must carry one.
VIA_HEADER = "1.1 google"


def _matches(pattern: Pattern, record: RequestRecord) -> bool:
    if callable(pattern):
        return bool(pattern(record))
    return route_pattern_matches(pattern, record.method, record.path, record.route)


def bucket_hash(name: str) -> str:
    return hashlib.md5(name.encode()).hexdigest()[:16]


def rate_limit_headers(
    *,
    limit: int,
    remaining: int,
    reset_after: float,
    bucket: str,
    scope: str | None = None,
    is_global: bool = False,
    retry_after: float | None = None,
) -> dict[str, str]:
    headers = {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(max(remaining, 0)),
        "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
        "X-RateLimit-Reset-After": f"{reset_after:.3f}",
        "X-RateLimit-Bucket": bucket,
    }
    if scope is not None:
        headers["X-RateLimit-Scope"] = scope
    if is_global:
        headers["X-RateLimit-Global"] = "true"
    if retry_after is not None:
        # Discord's Retry-After header is whole seconds; the JSON body carries the precise float.
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
        headers["Via"] = VIA_HEADER
    return headers


@dataclass
class FaultResponse:
    status: int
    body: Any
    headers: dict[str, str]


@dataclass(eq=False)
class Fault:
    """A rule that replaces (or delays) the response of matching requests."""

    name: str
    pattern: Pattern
    status: int = 0
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    times: int | None = 1
    delay: float = 0.0
    # Seconds to hold the answer back after the request was handled (its effects already made).
    answer_delay: float = 0.0
    passthrough: bool = False
    hits: list[RequestRecord] = field(default_factory=list, repr=False)
    _released: asyncio.Event | None = field(default=None, repr=False)

    def release(self) -> None:
        """Send the answers this fault holds back now, and let later ones through at once."""
        if self._released is None:
            self._released = asyncio.Event()
        self._released.set()

    async def hold_answer(self) -> None:
        """Wait ``answer_delay`` seconds, or until ``release()``."""
        if self._released is None:
            self._released = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._released.wait(), self.answer_delay)

    @property
    def active(self) -> bool:
        return self.times is None or self.times > 0

    @property
    def hit_count(self) -> int:
        return len(self.hits)

    def consume(self, record: RequestRecord) -> None:
        self.hits.append(record)
        if self.times is not None:
            self.times -= 1

    def response(self) -> FaultResponse:
        headers = dict(self.headers)
        if self.name == "rate_limit":
            # Recompute the reset timestamps at the moment of the 429, not when the fault was armed.
            retry_after = float(self.body["retry_after"])
            headers.update(
                rate_limit_headers(
                    limit=1,
                    remaining=0,
                    reset_after=retry_after,
                    bucket=headers.get("X-RateLimit-Bucket", bucket_hash(str(self.pattern))),
                    scope=headers.get("X-RateLimit-Scope"),
                    is_global=bool(self.body.get("global")),
                    retry_after=retry_after,
                )
            )
        return FaultResponse(self.status, self.body, headers)


@dataclass(eq=False)
class RateLimitBucket:
    """A real fixed-window limit: matching requests see live X-RateLimit-* values and 429 past `limit`."""

    pattern: Pattern
    limit: int
    per: float
    name: str
    windows: dict[str, tuple[float, int]] = field(default_factory=dict, repr=False)
    rejected: list[RequestRecord] = field(default_factory=list, repr=False)

    def take(self, record: RequestRecord, major: str) -> tuple[bool, dict[str, str], float]:
        now = time.monotonic()
        start, count = self.windows.get(major, (now, 0))
        if now - start >= self.per:
            start, count = now, 0
        reset_after = max(self.per - (now - start), 0.0)
        if count >= self.limit:
            self.rejected.append(record)
            headers = rate_limit_headers(
                limit=self.limit,
                remaining=0,
                reset_after=reset_after,
                bucket=bucket_hash(self.name),
                scope="user",
                retry_after=reset_after,
            )
            self.windows[major] = (start, count)
            return False, headers, reset_after
        count += 1
        self.windows[major] = (start, count)
        headers = rate_limit_headers(
            limit=self.limit, remaining=self.limit - count, reset_after=reset_after, bucket=bucket_hash(self.name)
        )
        return True, headers, reset_after


class FaultInjector:
    """Test-facing API to arm faults; see each method for the Discord behaviour it imitates."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self.buckets: list[RateLimitBucket] = []

    def add(self, fault: Fault) -> Fault:
        self.faults.append(fault)
        return fault

    def rate_limit(
        self,
        pattern: Pattern,
        *,
        times: int | None = 1,
        retry_after: float = 0.25,
        global_: bool = False,
        scope: str = "user",
    ) -> Fault:
        """Answer 429 with Discord's JSON body and X-RateLimit-*/Retry-After/Via headers."""
        body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": global_}
        if global_:
            body["code"] = 0
        return self.add(
            Fault(
                name="rate_limit",
                pattern=pattern,
                status=429,
                body=body,
                headers={"X-RateLimit-Scope": "global" if global_ else scope},
                times=times,
            )
        )

    def server_error(self, pattern: Pattern, *, times: int | None = 1, status: int = 500) -> Fault:
        """5xx; discord.py retries 500/502/504 (after 1s, 3s, ...) and raises DiscordServerError otherwise."""
        body = {"message": f"{status}: Internal Server Error", "code": 0}
        return self.add(Fault(name="server_error", pattern=pattern, status=status, body=body, times=times))

    def unknown_webhook(self, pattern: Pattern = "* /webhooks/*", *, times: int | None = None) -> Fault:
        """404 Unknown Webhook (10015), what Discord answers once a webhook was deleted."""
        body = {"message": "Unknown Webhook", "code": 10015}
        return self.add(Fault(name="unknown_webhook", pattern=pattern, status=404, body=body, times=times))

    def unknown_interaction(self, pattern: Pattern = "POST /interactions/*", *, times: int | None = None) -> Fault:
        """404 Unknown interaction (10062): the callback came too late or the token is invalid."""
        body = {"message": "Unknown interaction", "code": 10062}
        return self.add(Fault(name="unknown_interaction", pattern=pattern, status=404, body=body, times=times))

    def unauthorized(self, pattern: Pattern, *, times: int | None = None) -> Fault:
        body = {"message": "401: Unauthorized", "code": 0}
        return self.add(Fault(name="unauthorized", pattern=pattern, status=401, body=body, times=times))

    def forbidden(
        self,
        pattern: Pattern,
        *,
        times: int | None = None,
        code: int = 50013,
        message: str = "Missing Permissions",
    ) -> Fault:
        body = {"message": message, "code": code}
        return self.add(Fault(name="forbidden", pattern=pattern, status=403, body=body, times=times))

    def error(
        self,
        pattern: Pattern,
        status: int,
        *,
        code: int = 0,
        message: str = "Injected error",
        body: Any = None,
        headers: dict[str, str] | None = None,
        times: int | None = 1,
    ) -> Fault:
        payload = body if body is not None else {"message": message, "code": code}
        return self.add(
            Fault(name="error", pattern=pattern, status=status, body=payload, headers=dict(headers or {}), times=times)
        )

    def delay(self, pattern: Pattern, seconds: float, *, times: int | None = None) -> Fault:
        """Slow responses down (then handle them normally), e.g. to push an ack past 3 s."""
        return self.add(Fault(name="delay", pattern=pattern, delay=seconds, passthrough=True, times=times))

    def slow_answer(self, pattern: Pattern, seconds: float, *, times: int | None = None) -> Fault:
        """Handle the request at once (the message is posted), but answer only ``seconds`` later.

        What a slow Discord looks like to a client whose timeout is shorter: the request had its
        effect even though the client gave up waiting for the answer.  ``release()`` answers at
        once.  Only requests that reach the API are held: one answered by another fault (a 429,
        say) does not use this one up.
        """
        return self.add(Fault(name="slow_answer", pattern=pattern, answer_delay=seconds, passthrough=True, times=times))

    def enforce_bucket(
        self, pattern: Pattern, *, limit: int, per: float, name: str | None = None
    ) -> RateLimitBucket:
        """Enforce a real rate limit so discord.py's pre-emptive bucket handling is exercised."""
        bucket = RateLimitBucket(pattern=pattern, limit=limit, per=per, name=name or str(pattern))
        self.buckets.append(bucket)
        return bucket

    def clear(self) -> None:
        self.faults.clear()
        self.buckets.clear()

    @property
    def active(self) -> list[Fault]:
        return [f for f in self.faults if f.active]

    def take(self, record: RequestRecord) -> list[Fault]:
        """Consume matching faults: all matching delays, plus at most one replacing fault."""
        taken: list[Fault] = []
        replaced = False
        for fault in self.faults:
            if not fault.active or not _matches(fault.pattern, record):
                continue
            if not fault.passthrough and not replaced:
                fault.consume(record)
                taken.append(fault)
                replaced = True
        for fault in self.faults:
            if not fault.active or not fault.passthrough or not _matches(fault.pattern, record):
                continue
            if replaced and fault.answer_delay:
                continue  # holds back the API's own answer, and the API never sees this request
            fault.consume(record)
            taken.append(fault)
        return taken

    def buckets_for(self, record: RequestRecord) -> list[RateLimitBucket]:
        return [b for b in self.buckets if _matches(b.pattern, record)]
