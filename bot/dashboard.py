"""The classroom dashboard: a read-only web page per server, live through server-sent events.

``/playground dashboard`` gives an admin a signed, expiring link (``bot/dashboard_links.py``); the
page it opens shows that server's chain as it grows.  Every route takes the server from the
verified link, never from anything else the viewer sends, so a link for one server can show
nothing of another.  Viewers are anonymous: every route is GET (anything else gets 405) and none
changes state.

Live updates, without polling the database:

- **Outbox events** (blocks, rewards, difficulty, checkpoints...): ``bot/outbox_feed.py`` hands
  each newly committed outbox row to ``on_outbox_events``; each becomes a ``news`` event (its
  announcement's text, as the webhook posts it) for that server's viewers, and the server's state
  (recent blocks and the rest) is rebuilt once and sent as a ``state`` event.
- **What is not in the outbox** (the mining race's progress, the mempool, this epoch's votes) is
  in memory: once a second, for the servers someone is watching, the ``live`` part is rebuilt from
  the façade's in-memory reads and sent if it changed.  A changed tip without an outbox event (a
  reset) rebuilds the state too.

Bounds: each connection has a queue of ``QUEUE_EVENTS`` events; a viewer too slow to take them is
sent a final ``bye`` event and dropped (the browser reconnects by itself).  At most
``MAX_STREAMS_PER_SERVER`` streams per server (429 beyond) and ``MAX_STREAMS`` in all (503).  A comment
line every ``HEARTBEAT_S`` keeps proxies from closing an idle stream; a stream ends when its link
expires or is revoked.  Each state is built once per server and sent to all of its viewers.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from bot.dashboard_links import LinkClaims, LinkRefusedError, derive_link_key, read_link, sign_link
from bot.dashboard_view import ChainView, NameBook
from bot.storage import OutboxEvent
from chain.errors import ChainError
from chain.playground import Playground

log = logging.getLogger(__name__)

STATIC_FOLDER = Path(__file__).with_name("dashboard_static")
STATIC_FILES = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
# Nothing may load from anywhere but this server, nothing inline, no frames, no forms.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    # The link is a bearer secret: never send it on as a Referer.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}
DEFAULT_LINK_HOURS = 24
MAX_LINK_HOURS = 720
QUEUE_EVENTS = 64
MAX_STREAMS_PER_SERVER = 50
MAX_STREAMS = 500
HEARTBEAT_S = 15.0
LIVE_INTERVAL_S = 1.0
# A write the viewer's connection does not take within this long ends the stream.
WRITE_TIMEOUT_S = 10.0
RECONNECT_MS = 3000
REFUSED_TEXT = (
    "This dashboard link has expired, was revoked, or is not a dashboard link. "
    "Ask an admin of the server for a new one (/playground dashboard)."
)

Charts = Callable[[int, str], Awaitable[tuple[bytes, str]]]
GuildName = Callable[[int], str]


class LinkGenerations(Protocol):
    async def generation(self, chain_id: int) -> int: ...

    async def revoke(self, chain_id: int, now: int) -> int: ...


def sse(event: str, data: Any, event_id: int | None = None) -> bytes:
    """One server-sent event; its data is one line of JSON (json.dumps escapes every newline)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class StreamsFullError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(eq=False)
class Subscriber:
    chain_id: int
    claims: LinkClaims
    queue: asyncio.Queue[bytes | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_EVENTS))
    dropped: str | None = None


class StreamHub:
    """The open event streams, by server; every check and change happens without an await in between,
    so connections arriving at the same moment can never exceed a cap."""

    def __init__(self, *, per_server: int = MAX_STREAMS_PER_SERVER, total: int = MAX_STREAMS,
                 queue_events: int = QUEUE_EVENTS) -> None:
        self.per_server = per_server
        self.total = total
        self.queue_events = queue_events
        self._by_chain: dict[int, set[Subscriber]] = {}
        self._count = 0
        self.dropped_slow = 0
        self.joined = asyncio.Event()  # set while anyone is watching

    def count(self, chain_id: int | None = None) -> int:
        return self._count if chain_id is None else len(self._by_chain.get(chain_id, ()))

    def chains(self) -> list[int]:
        return list(self._by_chain)

    def join(self, claims: LinkClaims) -> Subscriber:
        if self._count >= self.total:
            raise StreamsFullError(503, "the dashboard has as many viewers as it serves")
        subscribers = self._by_chain.setdefault(claims.chain_id, set())
        if len(subscribers) >= self.per_server:
            raise StreamsFullError(429, "this server's dashboard has as many viewers as it serves")
        subscriber = Subscriber(claims.chain_id, claims, asyncio.Queue(self.queue_events))
        subscribers.add(subscriber)
        self._count += 1
        self.joined.set()
        return subscriber

    def leave(self, subscriber: Subscriber) -> None:
        subscribers = self._by_chain.get(subscriber.chain_id)
        if subscribers is None or subscriber not in subscribers:
            return
        subscribers.discard(subscriber)
        self._count -= 1
        if not subscribers:
            del self._by_chain[subscriber.chain_id]
        if not self._count:
            self.joined.clear()

    def publish(self, chain_id: int, data: bytes) -> None:
        for subscriber in list(self._by_chain.get(chain_id, ())):
            if subscriber.dropped is not None:
                continue
            try:
                subscriber.queue.put_nowait(data)
            except asyncio.QueueFull:
                self.dropped_slow += 1
                self.drop(subscriber, "too-slow")

    def drop(self, subscriber: Subscriber, reason: str) -> None:
        """End a stream with a final ``bye`` event: whatever it had not taken yet is dropped."""
        if subscriber.dropped is not None:
            return
        subscriber.dropped = reason
        while not subscriber.queue.empty():
            subscriber.queue.get_nowait()
        subscriber.queue.put_nowait(sse("bye", {"reason": reason}))
        subscriber.queue.put_nowait(None)
        self.leave(subscriber)

    def drop_all(self, reason: str) -> None:
        for subscribers in list(self._by_chain.values()):
            for subscriber in list(subscribers):
                self.drop(subscriber, reason)

    def revoke(self, chain_id: int, generation: int) -> None:
        for subscriber in list(self._by_chain.get(chain_id, ())):
            if subscriber.claims.generation < generation:
                self.drop(subscriber, "revoked")


class Dashboard:
    """The dashboard's web server and its live feed; ``start`` binds it, ``close`` ends it."""

    def __init__(
        self,
        playground: Playground,
        generations: LinkGenerations,
        master_key: bytes,
        *,
        host: str,
        port: int,
        public_url: str | None = None,
        guild_name: GuildName = lambda chain_id: "",
        names: NameBook | None = None,
        charts: Charts | None = None,
        chart_kinds: Sequence[str] = (),
        clock: Callable[[], float] = time.time,
        hub: StreamHub | None = None,
    ) -> None:
        self.playground = playground
        self._generations_store = generations
        self._link_key = derive_link_key(master_key)
        self.host = host
        self.port = port
        self._public_url = public_url.rstrip("/") if public_url else None
        self._guild_name = guild_name
        self.names = names or NameBook()
        self.view = ChainView(playground, self.names, chart_kinds=chart_kinds)
        self._charts = charts
        self.chart_kinds = tuple(chart_kinds)
        self._clock = clock
        self.hub = hub or StreamHub()
        # chain id -> its link generation, as last read or set (see ``_generation``).
        self._generations: dict[int, int] = {}
        # Per server: the state rebuild running, whether another is due after it, the last live part sent.
        self._rebuilding: dict[int, asyncio.Task[None]] = {}
        self._rebuild_again: set[int] = set()
        self._last_live: dict[int, bytes] = {}
        self._last_tip: dict[int, str | None] = {}
        # (chain id, kind) -> (the tip it was drawn at, the drawing)
        self._chart_cache: dict[tuple[int, str], tuple[str | None, asyncio.Future[tuple[bytes, str]]]] = {}
        self._static = {name: (STATIC_FOLDER / name).read_bytes() for name in STATIC_FILES}
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._dispatch: asyncio.Queue[list[OutboxEvent]] = asyncio.Queue()
        self._dispatcher: asyncio.Task[None] | None = None
        self.state_builds = 0

    # --- lifecycle ------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.on_response_prepare.append(self._secure_headers)
        app.router.add_get("/", self._index)
        app.router.add_get("/static/{name}", self._static_file)
        app.router.add_get("/d/{token}", self._page)
        app.router.add_get("/d/{token}/state", self._state)
        app.router.add_get("/d/{token}/events", self._events)
        app.router.add_get("/d/{token}/chart/{kind}.png", self._chart)
        return app

    async def start(self) -> None:
        """Bind and serve; an ``OSError`` (the port is taken) leaves nothing running."""
        # No access log: every path holds a link, and a link is a bearer secret.
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        self._ticker = asyncio.create_task(self._tick(), name="dashboard-live")
        self._dispatcher = asyncio.create_task(self._dispatch_events(), name="dashboard-events")
        log.info("dashboard serving on %s:%d", self.host, self.port)

    @property
    def base_url(self) -> str:
        return self._public_url or f"http://{self.host}:{self.port}"

    async def close(self) -> None:
        for task in (self._ticker, self._dispatcher, *self._rebuilding.values()):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self.hub.drop_all("closing")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- links ------------------------------------------------------------------------------

    async def _generation(self, chain_id: int) -> int:
        cached = self._generations.get(chain_id)
        if cached is not None:
            return cached
        stored = await self._generations_store.generation(chain_id)
        # setdefault: a revocation that landed while this read waited has already set the newer one.
        return self._generations.setdefault(chain_id, stored)

    async def issue_link(self, chain_id: int, hours: int = DEFAULT_LINK_HOURS) -> str:
        """A link to this server's dashboard, valid ``hours`` hours (until revoked)."""
        if not 1 <= hours <= MAX_LINK_HOURS:
            raise ValueError(f"a link lasts 1 to {MAX_LINK_HOURS} hours")
        generation = await self._generation(chain_id)
        claims = LinkClaims(chain_id, int(self._clock()) + hours * 3600, generation)
        return f"{self.base_url}/d/{sign_link(self._link_key, claims)}"

    async def revoke_links(self, chain_id: int) -> int:
        """Every link made so far for this server gets 403 from now on, open pages included; the new generation."""
        generation = await self._generations_store.revoke(chain_id, int(self._clock()))
        self._generations[chain_id] = max(generation, self._generations.get(chain_id, 0))
        self.hub.revoke(chain_id, self._generations[chain_id])
        return generation

    async def check(self, token: str) -> LinkClaims:
        """The claims of a link that opens its server's dashboard now; ``LinkRefusedError`` otherwise."""
        claims = read_link(self._link_key, token, int(self._clock()))
        if claims.generation != await self._generation(claims.chain_id):
            raise LinkRefusedError("revoked")
        return claims

    async def _claims(self, request: web.Request) -> LinkClaims:
        try:
            return await self.check(request.match_info["token"])
        except LinkRefusedError as exc:
            # Never the link itself: it is a bearer secret.
            log.info("dashboard link refused: %s", exc.reason)
            raise web.HTTPForbidden(text=REFUSED_TEXT) from None

    # --- responses --------------------------------------------------------------------------

    @staticmethod
    async def _secure_headers(_request: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(SECURITY_HEADERS)

    async def _index(self, _request: web.Request) -> web.Response:
        return web.Response(
            status=404, text="Consensus Playground's classroom dashboard: open the link an admin of your server gave "
            "you (/playground dashboard).",
        )

    async def _static_file(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self._static:
            raise web.HTTPNotFound()
        return web.Response(body=self._static[name], content_type=STATIC_FILES[name], charset="utf-8")

    async def _page(self, request: web.Request) -> web.Response:
        claims = await self._claims(request)
        server = html.escape(self._guild_name(claims.chain_id) or "a Discord server")
        charts = "".join(
            f'<figure class="chart"><img data-kind="{html.escape(kind)}" alt="{html.escape(kind)} chart"></figure>'
            for kind in self.chart_kinds
        )
        page = PAGE.format(server=server, charts=charts, expires=claims.expires_at)
        return web.Response(text=page, content_type="text/html", charset="utf-8")

    async def _state(self, request: web.Request) -> web.Response:
        claims = await self._claims(request)
        return web.json_response(await self._build_state(claims.chain_id))

    async def _chart(self, request: web.Request) -> web.Response:
        claims = await self._claims(request)
        kind = request.match_info["kind"]
        if self._charts is None or kind not in self.chart_kinds:
            raise web.HTTPNotFound()
        try:
            png, _alt = await self._drawing(claims.chain_id, kind)
        except ChainError as exc:  # nothing to show yet (no fork, no votes): not a failure
            log.info("chart %s of server %d has nothing to show: %s", kind, claims.chain_id, exc)
            raise web.HTTPServiceUnavailable(text=f"nothing to show yet: {exc}") from None
        except Exception:  # a chart that fails must not take the page down: the image shows its alt text
            log.exception("chart %s of server %d failed", kind, claims.chain_id)
            raise web.HTTPServiceUnavailable(text="this chart could not be drawn") from None
        return web.Response(body=png, content_type="image/png")

    def _drawing(self, chain_id: int, kind: str) -> asyncio.Future[tuple[bytes, str]]:
        """One drawing per server, kind and tip, shared by every viewer who asks for it."""
        assert self._charts is not None
        tip = self._tip(chain_id)
        cached = self._chart_cache.get((chain_id, kind))
        if cached is not None and cached[0] == tip and not (cached[1].done() and cached[1].exception()):
            return cached[1]
        future = asyncio.ensure_future(self._charts(chain_id, kind))
        self._chart_cache[(chain_id, kind)] = (tip, future)
        return future

    def _chart_alts(self, chain_id: int) -> dict[str, str]:
        tip = self._tip(chain_id)
        alts = {}
        for kind in self.chart_kinds:
            cached = self._chart_cache.get((chain_id, kind))
            if cached is not None and cached[0] == tip and cached[1].done() and not cached[1].exception():
                alts[kind] = cached[1].result()[1]
        return alts

    def _tip(self, chain_id: int) -> str | None:
        if not self.playground.has_chain(chain_id):
            return None
        return self.playground.state(chain_id).tip_hash.hex()

    async def _build_state(self, chain_id: int) -> dict[str, Any]:
        self.state_builds += 1
        state = await self.view.state(chain_id, self._guild_name(chain_id), self._chart_alts(chain_id))
        self._last_tip[chain_id] = state.get("tip") if state.get("chain") is not None else None
        return state

    # --- the event stream ---------------------------------------------------------------------

    async def _events(self, request: web.Request) -> web.StreamResponse:
        claims = await self._claims(request)
        try:
            subscriber = self.hub.join(claims)
        except StreamsFullError as exc:
            log.warning("dashboard stream of server %d refused: %s", claims.chain_id, exc.reason)
            raise _status(exc.status, exc.reason) from None
        try:
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"})
            await response.prepare(request)
            await self._write(response, f"retry: {RECONNECT_MS}\n\n".encode())
            # Joined before the state is read: what happens meanwhile is queued, never missed.
            await self._write(response, sse("state", await self._build_state(claims.chain_id)))
            while True:
                left = claims.expires_at - self._clock()
                if left <= 0:
                    await self._write(response, sse("bye", {"reason": "expired"}))
                    break
                try:
                    item = await asyncio.wait_for(subscriber.queue.get(), min(HEARTBEAT_S, left))
                except TimeoutError:
                    await self._write(response, b": keep-alive\n\n")
                    continue
                if item is None:
                    break
                await self._write(response, item)
        except (ConnectionResetError, TimeoutError):
            log.debug("a dashboard viewer of server %d went away", claims.chain_id)
        finally:
            self.hub.leave(subscriber)
        return response

    @staticmethod
    async def _write(response: web.StreamResponse, data: bytes) -> None:
        await asyncio.wait_for(response.write(data), WRITE_TIMEOUT_S)

    # --- feeding the streams -----------------------------------------------------------------

    def on_outbox_events(self, events: list[OutboxEvent]) -> None:
        """The outbox feed's listener: events of the servers someone is watching go to their streams."""
        watched = set(self.hub.chains())
        mine = [e for e in events if e.chain_id in watched]
        if mine:
            self._dispatch.put_nowait(mine)

    async def _dispatch_events(self) -> None:
        while True:
            events = await self._dispatch.get()
            try:
                for chain_id in dict.fromkeys(e.chain_id for e in events):
                    names = await self.view.display_names(chain_id)
                    for event in (e for e in events if e.chain_id == chain_id):
                        self.hub.publish(chain_id, sse("news", self.view.event(event, names), event.id))
                    self.rebuild(chain_id)
            except Exception:  # one bad batch must not stop the feed
                log.exception("sending outbox events to the dashboard failed")

    def rebuild(self, chain_id: int) -> None:
        """Rebuild this server's state and send it to its viewers: once, however many ask at once."""
        running = self._rebuilding.get(chain_id)
        if running is not None and not running.done():
            self._rebuild_again.add(chain_id)
            return
        self._rebuilding[chain_id] = asyncio.create_task(self._rebuild(chain_id), name=f"dashboard-state-{chain_id}")

    async def _rebuild(self, chain_id: int) -> None:
        try:
            while True:
                self._rebuild_again.discard(chain_id)
                if self.hub.count(chain_id):
                    self.hub.publish(chain_id, sse("state", await self._build_state(chain_id)))
                if chain_id not in self._rebuild_again:
                    break
        except Exception:  # a failed rebuild must not end the dashboard; the next event tries again
            log.exception("building the dashboard state of server %d failed", chain_id)
        finally:
            self._rebuilding.pop(chain_id, None)

    async def _tick(self) -> None:
        """Once a second, while anyone watches: the live part (race, mempool, votes) from memory."""
        while True:
            await self.hub.joined.wait()
            for chain_id in self.hub.chains():
                try:
                    live = await self.view.live(chain_id)
                except Exception:  # one server's failure must not stop the others'
                    log.exception("building the dashboard's live part of server %d failed", chain_id)
                    continue
                if live.get("tip") != self._last_tip.get(chain_id, live.get("tip")):
                    self.rebuild(chain_id)  # the tip moved without an outbox event (a reset)
                data = sse("live", live)
                if self._last_live.get(chain_id) != data:
                    self._last_live[chain_id] = data
                    self.hub.publish(chain_id, data)
            for chain_id in [c for c in self._last_live if not self.hub.count(c)]:
                del self._last_live[chain_id]
            await asyncio.sleep(LIVE_INTERVAL_S)


def _status(status: int, reason: str) -> web.HTTPException:
    if status == 429:
        return web.HTTPTooManyRequests(text=reason)
    return web.HTTPServiceUnavailable(text=reason)


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{server} · Consensus Playground</title>
<link rel="stylesheet" href="../static/dashboard.css">
<script src="../static/dashboard.js" defer></script>
</head>
<body data-expires="{expires}">
<header>
  <h1><span id="server">{server}</span></h1>
  <p id="summary">Connecting…</p>
  <p id="connection" class="connection" role="status">connecting</p>
</header>
<noscript><p class="notice">This page shows the chain live with JavaScript: please turn it on.</p></noscript>
<p id="message" class="notice" hidden></p>
<main>
  <section id="blocks-section"><h2>Blocks</h2><ol id="blocks" class="blocks"></ol></section>
  <section id="race-section"><h2>Mining race</h2><p id="race-empty" class="muted">Nobody is mining.</p>
    <ul id="race" class="race"></ul></section>
  <section id="mempool-section"><h2>Mempool</h2><p id="mempool-count" class="big">0 waiting</p>
    <ul id="mempool" class="mempool"></ul></section>
  <section id="staking-section" hidden><h2>Validators</h2>
    <p id="votes-label"></p><progress id="votes" max="100" value="0"></progress>
    <p id="checkpoints"></p><ul id="validators" class="validators"></ul></section>
  <section id="news-section"><h2>News</h2><ol id="news" class="news"></ol></section>
  <section id="charts-section" class="charts">{charts}</section>
</main>
</body>
</html>
"""
