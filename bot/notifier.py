"""The webhook notifier: drains each server's durable outbox into its webhook.

Events are written to the outbox in the same transaction as the state change
that emits them.  This task posts them with ``wait=True`` and marks them
delivered only after Discord confirmed the message, so an event is never lost;
it can be posted twice only when a message Discord did post is not confirmed
to us: a crash between Discord's answer and our commit, or an answer slower than
``REQUEST_TIMEOUT_S``.  After such a timeout a server's events go out one per
message until Discord confirms one, so each further timeout repeats at most one
event.  It runs on its own tasks: commands only call ``wake()``.

Each server is drained by its own worker task under its own lock, so one
server's sick webhook (discord.py retries a 5xx for up to 25 s inside one
send) never delays another server's announcements, and the shutdown flush
never posts a batch that a worker is already posting.

Some announcements carry a chart (``EVENT_CHARTS``: a retarget carries the difficulty chart), asked
of the injected ``pictures`` callable (the bot's ``ChartBook.attachment``) just before the post, as
part of the same message: best effort, never holding the outbox up for more than
``CHART_TIMEOUT_S``.  Whatever goes wrong with it (nothing to show, a failing or slow chart worker)
the message goes out without it, logged; there is never a second message for a picture, so the
exactly-once delivery above is unchanged.  A message posted plainly (Discord refused its full text)
has no chart either.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import aiohttp
import discord

from bot.storage import OutboxEvent, OutboxRepository, StoredWebhook, WebhookRepository
from chain.adapters.storage import Store
from chain.events import BlockMined, ChainEvent, DifficultyChanged, RewardPaid, UnknownEvent
from chain.keys import open_bytes, seal_bytes, webhook_url_aad
from cogs.chart_book import ChartPicture
from cogs.embeds import GREY, event_embed
from cogs.services import WEBHOOK_NAME

log = logging.getLogger(__name__)

EMBEDS_PER_MESSAGE = 10  # Discord's limit per message
IDLE_POLL_S = 5.0
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 300.0
REQUEST_TIMEOUT_S = 15.0
CLOSE_TIMEOUT_S = 5.0
# A post waiting longer than this for Discord shows as stalled in /playground status.
STALLED_AFTER_S = 5.0
# Delivered events are deleted after the retention period, this many per transaction, this often.
PRUNE_BATCH = 500
PRUNE_INTERVAL_S = 3600.0
_WEBHOOK_PATH = re.compile(r"/webhooks/([0-9]+)/")
# The longest a post waits for its chart (the renderer's own timeout is longer: past this the
# message goes without, and the render finishes for the cache).
CHART_TIMEOUT_S = 3.0
# Announcements that carry a chart, and which (``/chain chart``'s kinds).
EVENT_CHARTS: dict[type[ChainEvent], str] = {DifficultyChanged: "difficulty"}

Alert = Callable[[int, int, str], Awaitable[None]]
Names = Callable[[int], Awaitable[Mapping[bytes, str]]]
# (chain id, chart kind) -> the picture, or None when there is none to be had.
Pictures = Callable[[int, str], Awaitable[ChartPicture | None]]


@dataclass(frozen=True, slots=True)
class WebhookStatus:
    # Both None while no webhook was ever set for this server.
    channel_id: int | None
    webhook_id: int | None
    disabled_reason: str | None
    # Events not yet confirmed by Discord (kept while no webhook works).
    backlog: int
    # Seconds until the next attempt while backing off, else 0.
    retry_in_s: float
    # Seconds the post in progress has been waiting for Discord (inside discord.py's own retries
    # and rate-limit sleeps), else 0.
    posting_for_s: float = 0.0
    # Seconds left of a wait Discord's rate limit imposed on the post in progress, else 0.
    rate_limited_for_s: float = 0.0

    @property
    def stalled(self) -> bool:
        """Announcements are held up although nothing failed (yet)."""
        return self.rate_limited_for_s > 0 or self.posting_for_s >= STALLED_AFTER_S


def is_announced(event: OutboxEvent) -> bool:
    """Whether the webhook posts this event (a proof-of-stake block and its fees are posted by the
    slot driver instead, as the message members press Attest on)."""
    return not (isinstance(event.event, (BlockMined, RewardPaid)) and event.event.proof_of_stake)


def _header_seconds(headers: Mapping[str, str], *names: str) -> float | None:
    for name in names:
        try:
            return float(headers[name])
        except (KeyError, TypeError, ValueError):
            continue
    return None


def _retry_after(exc: discord.HTTPException) -> float | None:
    """The wait a 429 asked for: discord.py keeps the response, not the parsed body."""
    if exc.status != 429:
        return None
    headers = getattr(exc.response, "headers", None) or {}
    return _header_seconds(headers, "X-RateLimit-Reset-After", "Retry-After")


class WebhookNotifier:
    def __init__(
        self,
        store: Store,
        master_key: bytes,
        *,
        names: Names,
        alert: Alert,
        clock: Callable[[], float],
        randomness: Callable[[int], bytes],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        retention_s: float = 7 * 86_400.0,
        pictures: Pictures | None = None,
        owns: Callable[[int], bool] | None = None,
    ) -> None:
        """``pictures``: the charts some announcements carry (None: announcements without charts).
        ``owns``: the servers this process announces for (None: all); with several processes on one
        database each delivers only its own servers' outbox, so no event is posted by two of them."""
        # The bot's own tables, in the engine's database.
        self.outbox = OutboxRepository(store.db)
        self.webhooks = WebhookRepository(store.db)
        self._master_key = master_key
        self._names = names
        self._alert = alert
        self._clock = clock
        self._randomness = randomness
        self._sleep = sleep
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        # chain id -> (clock time before which we do not retry, current backoff)
        self._backoff: dict[int, tuple[float, float]] = {}
        # Events Discord refused even in plain form (400-class), given up so the rest flow.
        self.refused_events = 0
        # One drainer per server at a time: the worker, or the shutdown flush.
        self._locks: dict[int, asyncio.Lock] = {}
        self._workers: dict[int, asyncio.Task[None]] = {}
        self._closing = False
        self.delivered_batches = 0
        # Servers whose last post timed out: one event per message until Discord confirms one,
        # so a message that was posted although we never heard back holds a single event.
        self._careful: set[int] = set()
        # chain id -> clock time its post in progress started.
        self._posting_since: dict[int, float] = {}
        # webhook id -> clock time until which Discord's rate limit holds its posts back
        # (discord.py sleeps inside ``send``; we see the answers through the session's trace).
        self._rate_limited_until: dict[int, float] = {}
        self._retention_s = retention_s
        self._next_prune = 0.0
        self.pruned_events = 0
        self._pictures = pictures
        self._owns = owns
        # Posts (retries included) that carried their chart, and that went without (nothing to show,
        # a failure, too slow).
        self.charts_attached = 0
        self.charts_left_out = 0

    # --- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        trace = aiohttp.TraceConfig()
        trace.on_request_end.append(self._on_answer)
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S), trace_configs=[trace]
        )
        self._task = asyncio.create_task(self._run(), name="webhook-notifier")

    def wake(self) -> None:
        self._wake.set()

    async def flush(self, timeout_s: float) -> bool:
        """Deliver what can be delivered now; True if that pass finished in time.

        Servers backing off are left for later (after a restart, the first pass
        retries them at once).
        """
        try:
            await asyncio.wait_for(self._drain_all(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        # The flag, not only cancel(): on Python 3.11 asyncio.wait_for swallows a cancellation
        # that lands as its inner wait completes (a wake() at that moment), and the loop would go on.
        self._closing = True
        self._wake.set()
        tasks = [t for t in (self._task, *self._workers.values()) if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT_S)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    log.error("webhook task failed while closing", exc_info=task.exception())
            if pending:
                log.warning("%d webhook task(s) did not stop within %.0fs", len(pending), CLOSE_TIMEOUT_S)
        self._workers.clear()
        if self._session is not None:
            await self._session.close()

    async def prune(self) -> int:
        """Delete the events delivered longer than the retention period ago; how many went.

        Batches of ``PRUNE_BATCH``, each its own short transaction with a yield in between, so
        commands and deliveries are never held up for long.  Undelivered events are never deleted.
        """
        delivered_before = int(self._clock() - self._retention_s)
        total = 0
        while not self._closing:
            deleted = await self.outbox.prune_delivered_events(delivered_before, limit=PRUNE_BATCH)
            total += deleted
            if deleted < PRUNE_BATCH:
                break
            await self._sleep(0)
        if total:
            log.info("pruned %d announcement(s) delivered before %d", total, delivered_before)
        self.pruned_events += total
        return total

    # --- configuration ------------------------------------------------------------

    def _aad(self, chain_id: int) -> bytes:
        return webhook_url_aad(chain_id)

    async def register(self, chain_id: int, channel_id: int, webhook_id: int, url: str) -> None:
        """Use this webhook from now on; undelivered events (kept while none worked) go out."""
        sealed = seal_bytes(self._master_key, url.encode(), self._randomness(12), self._aad(chain_id))
        await self.webhooks.set(StoredWebhook(chain_id, channel_id, webhook_id, sealed, None), int(self._clock()))
        self._backoff.pop(chain_id, None)
        self.wake()

    async def status(self, chain_id: int) -> WebhookStatus:
        webhook = await self.webhooks.get(chain_id)
        backlog = (await self.outbox.backlog()).get(chain_id, 0)
        if webhook is None:
            return WebhookStatus(None, None, None, backlog, 0.0)
        now = self._clock()
        retry_at, _ = self._backoff.get(chain_id, (0.0, 0.0))
        since = self._posting_since.get(chain_id)
        posting_for = 0.0 if since is None else max(0.0, now - since)
        limited_for = 0.0
        if since is not None:
            limited_for = max(0.0, self._rate_limited_until.get(webhook.webhook_id, 0.0) - now)
        return WebhookStatus(
            webhook.channel_id, webhook.webhook_id, webhook.disabled_reason, backlog, max(0.0, retry_at - now),
            posting_for, limited_for,
        )

    async def _on_answer(
        self, _session: aiohttp.ClientSession, _context: object, params: aiohttp.TraceRequestEndParams
    ) -> None:
        """Note Discord's rate-limit waits: discord.py sleeps them inside ``send``, out of our sight."""
        match = _WEBHOOK_PATH.search(params.url.path)
        if match is None:
            return
        headers = params.response.headers
        wait: float | None = None
        if params.response.status == 429:
            wait = _header_seconds(headers, "X-RateLimit-Reset-After", "Retry-After")
        elif headers.get("X-RateLimit-Remaining") == "0":
            # discord.py holds the next post to this webhook back until the bucket resets.
            wait = _header_seconds(headers, "X-RateLimit-Reset-After")
        if wait:
            webhook_id = int(match[1])
            until = self._clock() + wait
            self._rate_limited_until[webhook_id] = max(until, self._rate_limited_until.get(webhook_id, 0.0))

    # --- scheduling -------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._closing:
            # Cleared before the pass, so a wake() during it triggers the next one.
            self._wake.clear()
            try:
                for chain_id in await self._due_chains():
                    self._spawn(chain_id)
            except Exception:  # the notifier must outlive any one failure
                log.exception("webhook delivery pass failed; retrying")
            if self._clock() >= self._next_prune:
                self._next_prune = self._clock() + PRUNE_INTERVAL_S
                try:
                    await self.prune()
                except Exception:  # pruning is housekeeping: it must not stop delivery
                    log.exception("pruning delivered events failed; trying again in %.0fs", PRUNE_INTERVAL_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._next_wait())

    def _next_wait(self) -> float:
        now = self._clock()
        waits = [retry_at - now for retry_at, _ in self._backoff.values()]
        return max(0.05, min([IDLE_POLL_S, *waits]))

    def _due(self, chain_id: int) -> bool:
        retry_at, _ = self._backoff.get(chain_id, (0.0, 0.0))
        return self._clock() >= retry_at

    async def _due_chains(self) -> list[int]:
        """Servers with undelivered events, a working webhook and no back-off running."""
        backlog = await self.outbox.backlog()
        if not backlog:
            return []
        return [
            w.chain_id
            for w in await self.webhooks.all()
            if w.disabled_reason is None and backlog.get(w.chain_id) and self._due(w.chain_id) and self.owns(w.chain_id)
        ]

    def owns(self, chain_id: int) -> bool:
        """Whether this notifier announces for the server (another process announces for the others)."""
        return self._owns is None or self._owns(chain_id)

    def _spawn(self, chain_id: int) -> None:
        running = self._workers.get(chain_id)
        if self._closing or (running is not None and not running.done()):
            return  # it reads the outbox again before it stops; its end triggers another pass
        task = asyncio.create_task(self._drain_chain(chain_id), name=f"webhook-{chain_id}")
        self._workers[chain_id] = task
        task.add_done_callback(functools.partial(self._worker_done, chain_id))

    def _worker_done(self, chain_id: int, task: asyncio.Task[None]) -> None:
        if self._workers.get(chain_id) is task:
            del self._workers[chain_id]
        # Another pass: for events that came in as it stopped, and to time the retry of a back-off
        # it just started. It cannot spin: a worker stops only once its outbox is empty, or its
        # webhook is disabled or backing off, and none of those is due again at once.
        if not self._closing:
            self.wake()

    def _lock(self, chain_id: int) -> asyncio.Lock:
        return self._locks.setdefault(chain_id, asyncio.Lock())

    async def _drain_all(self) -> None:
        await asyncio.gather(*(self._drain_chain(chain_id) for chain_id in await self._due_chains()))

    async def _drain_chain(self, chain_id: int) -> None:
        if not self.owns(chain_id):
            return  # another process's server: its own notifier delivers it
        async with self._lock(chain_id):
            # Read again under the lock: it may have been disabled or replaced meanwhile.
            stored = await self.webhooks.get(chain_id)
            if stored is None or stored.disabled_reason is not None or not self._due(chain_id):
                return
            try:
                await self._drain(stored)
            except Exception:  # one server's failure must not stop the others
                log.exception("delivery to the webhook of server %d failed", chain_id)
                self._back_off(chain_id, "unexpected error", None)

    # --- delivery -------------------------------------------------------------------

    async def _drain(self, stored: StoredWebhook) -> None:
        if self._session is None:
            raise RuntimeError("the notifier has not been started")
        url = open_bytes(self._master_key, stored.sealed_url, self._aad(stored.chain_id)).decode()
        webhook = discord.Webhook.from_url(url, session=self._session)
        while True:
            limit = 1 if stored.chain_id in self._careful else EMBEDS_PER_MESSAGE
            events = await self.outbox.pending_events(stored.chain_id, limit=limit)
            if not events:
                return
            quiet = [e.id for e in events if not is_announced(e)]
            if quiet:
                # Already in the channel another way: the slot driver shows each proof-of-stake
                # block itself, on the epoch message with its Attest button.
                await self.outbox.mark_delivered(quiet, int(self._clock()))
                events = [e for e in events if is_announced(e)]
                if not events:
                    continue
            if not await self._post(stored, webhook, events):
                return

    def _embed(self, event: OutboxEvent, names: Mapping[bytes, str]) -> discord.Embed:
        if isinstance(event.event, UnknownEvent):
            log.warning("event %d (%s) is posted plainly: %s", event.id, event.kind, event.event.reason)
        try:
            return event_embed(event.event, names)
        except (KeyError, TypeError, ValueError):
            # A malformed event must not hold back every event after it.
            log.exception("event %d (%s) could not be rendered; posting it plainly", event.id, event.kind)
            return discord.Embed(title=event.kind.replace("_", " ").capitalize(), colour=GREY)

    def _plain_embed(self, event: OutboxEvent) -> discord.Embed:
        return discord.Embed(
            title=event.kind.replace("_", " ").capitalize(),
            description="(Discord refused this announcement's full text.)",
            colour=GREY,
        )

    async def _post(
        self, stored: StoredWebhook, webhook: discord.Webhook, events: list[OutboxEvent], *, plain: bool = False
    ) -> bool:
        files: list[discord.File] = []
        if plain:
            embeds = [self._plain_embed(e) for e in events]
        else:
            names = await self._names(stored.chain_id)
            embeds = [self._embed(e, names) for e in events]
            chart = await self._chart(stored.chain_id, events)
            if chart is not None:
                index, picture = chart
                picture.show_in(embeds[index])
                files.append(picture.file())
        self._posting_since[stored.chain_id] = self._clock()
        try:
            # discord.py itself retries 429 (after retry_after) and 5xx up to five times in here
            # (rewinding the chart's file for each attempt).
            await webhook.send(
                embeds=embeds,
                files=files,
                username=WEBHOOK_NAME,
                wait=True,
                allowed_mentions=discord.AllowedMentions.none(),
            )
        except (discord.NotFound, discord.Forbidden) as exc:
            await self._disable(stored, f"the webhook was deleted or refused us ({exc.status})")
            return False
        except discord.HTTPException as exc:
            if exc.status == 401:
                await self._disable(stored, "the webhook's token is no longer valid (401)")
                return False
            if 400 <= exc.status < 500 and exc.status != 429:
                return await self._refused(stored, webhook, events, plain, exc)
            self._back_off(stored.chain_id, f"HTTP {exc.status}", _retry_after(exc))
            return False
        except (aiohttp.ClientError, TimeoutError) as exc:
            # A timeout may hide a message Discord did post, which the retry then repeats: from now
            # on one event per message, so that repeat is one event, until a post is confirmed.
            if stored.chain_id not in self._careful and len(events) > 1:
                log.warning("server %d: a post of %d events got no answer; posting one event at a time until "
                            "Discord confirms one", stored.chain_id, len(events))
            self._careful.add(stored.chain_id)
            self._back_off(stored.chain_id, type(exc).__name__, None)
            return False
        finally:
            self._posting_since.pop(stored.chain_id, None)
        # Only now is the batch known to be in Discord; a crash before this
        # commit re-posts it on restart.
        await self.outbox.mark_delivered([e.id for e in events], int(self._clock()))
        self._backoff.pop(stored.chain_id, None)
        self._careful.discard(stored.chain_id)
        self.delivered_batches += 1
        return True

    async def _chart(self, chain_id: int, events: list[OutboxEvent]) -> tuple[int, ChartPicture] | None:
        """The picture the batch carries, on the embed of its last event that has one (one message,
        one picture: the chart shows the chain as it is now, every retarget in the batch included)."""
        wanted = [(i, EVENT_CHARTS[type(e.event)]) for i, e in enumerate(events) if type(e.event) in EVENT_CHARTS]
        if self._pictures is None or not wanted:
            return None
        index, kind = wanted[-1]
        try:
            picture = await asyncio.wait_for(self._pictures(chain_id, kind), CHART_TIMEOUT_S)
        except Exception:  # best effort: the announcement must go out whatever the chart does
            log.warning("server %d: the %s chart of event %d failed; posting without it", chain_id, kind,
                        events[index].id, exc_info=True)
            picture = None
        if picture is None:
            self.charts_left_out += 1
            return None
        self.charts_attached += 1
        return index, picture

    async def _refused(
        self,
        stored: StoredWebhook,
        webhook: discord.Webhook,
        events: list[OutboxEvent],
        plain: bool,
        exc: discord.HTTPException,
    ) -> bool:
        """Discord refused the message itself (400-class): retrying it unchanged would block the outbox forever.

        Narrow it down: one event at a time, then that event plainly; an event
        refused even plainly is given up (logged), so the ones after it flow.
        """
        if len(events) > 1:
            log.warning("server %d: Discord refused a batch of %d (%s); posting one by one",
                        stored.chain_id, len(events), exc.status)
            for event in events:
                if not await self._post(stored, webhook, [event], plain=plain):
                    return False
            return True
        [event] = events
        if not plain:
            return await self._post(stored, webhook, events, plain=True)
        log.error("server %d: Discord refused event %d (%s) even plainly (%s %s); giving up on it",
                  stored.chain_id, event.id, event.kind, exc.status, exc.text)
        await self.outbox.mark_delivered([event.id], int(self._clock()))
        self.refused_events += 1
        return True

    def _back_off(self, chain_id: int, reason: str, retry_after: float | None) -> None:
        _, previous = self._backoff.get(chain_id, (0.0, 0.0))
        delay = min(MAX_BACKOFF_S, max(FIRST_BACKOFF_S, previous * 2, retry_after or 0.0))
        self._backoff[chain_id] = (self._clock() + delay, delay)
        log.warning("webhook of server %d failed (%s); retrying in %.1fs", chain_id, reason, delay)

    async def _disable(self, stored: StoredWebhook, reason: str) -> None:
        await self.webhooks.disable(stored.chain_id, stored.webhook_id, reason, int(self._clock()))
        log.warning("webhook of server %d disabled: %s", stored.chain_id, reason)
        text = (
            f"⚠️ Consensus Playground can no longer post to this channel's webhook: {reason}. "
            "Events are kept; an admin can run `/playground setup` to create a new webhook."
        )
        try:
            await self._alert(stored.chain_id, stored.channel_id, text)
        except discord.HTTPException:
            log.warning("could not alert server %d about its webhook", stored.chain_id)
