"""The webhook notifier: drains each server's durable outbox into its webhook.

Events are written to the outbox in the same transaction as the state change
that emits them.  This task posts them with ``wait=True`` and marks them
delivered only after Discord confirmed the message, so a crash can at worst
post a batch twice (dying between Discord's answer and our commit), never
lose one.  It runs on its own task: commands only call ``wake()``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import aiohttp
import discord

from chain.keys import open_bytes, seal_bytes
from chain.store import OutboxEvent, Store, StoredWebhook
from cogs.embeds import event_embed

log = logging.getLogger(__name__)

EMBEDS_PER_MESSAGE = 10  # Discord's limit per message
IDLE_POLL_S = 5.0
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 300.0
REQUEST_TIMEOUT_S = 15.0
WEBHOOK_NAME = "Consensus Playground"

Alert = Callable[[int, int, str], Awaitable[None]]
Names = Callable[[int], Awaitable[Mapping[bytes, str]]]


@dataclass(frozen=True, slots=True)
class WebhookStatus:
    channel_id: int
    disabled_reason: str | None
    backlog: int
    retry_in_s: float


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
    ) -> None:
        self._store = store
        self._master_key = master_key
        self._names = names
        self._alert = alert
        self._clock = clock
        self._randomness = randomness
        self._sleep = sleep
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        # chain id -> (monotonic time before which we do not retry, current backoff)
        self._backoff: dict[int, tuple[float, float]] = {}
        self.delivered_batches = 0

    # --- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S))
        self._task = asyncio.create_task(self._run(), name="webhook-notifier")

    def wake(self) -> None:
        self._wake.set()

    async def flush(self, timeout_s: float) -> bool:
        """Deliver what can be delivered now; True if nothing deliverable is left."""
        try:
            await asyncio.wait_for(self._drain_all(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._session is not None:
            await self._session.close()

    # --- configuration ------------------------------------------------------------

    def _aad(self, chain_id: int) -> bytes:
        return f"consensus-playground/webhook/{chain_id}".encode()

    async def register(self, chain_id: int, channel_id: int, webhook_id: int, url: str) -> None:
        """Use this webhook from now on; undelivered events (kept while none worked) go out."""
        sealed = seal_bytes(self._master_key, url.encode(), self._randomness(12), self._aad(chain_id))
        await self._store.set_webhook(StoredWebhook(chain_id, channel_id, webhook_id, sealed, None), int(self._clock()))
        self._backoff.pop(chain_id, None)
        self.wake()

    async def status(self, chain_id: int) -> WebhookStatus | None:
        webhook = await self._store.get_webhook(chain_id)
        if webhook is None:
            return None
        backlog = (await self._store.backlog()).get(chain_id, 0)
        retry_at, _ = self._backoff.get(chain_id, (0.0, 0.0))
        return WebhookStatus(webhook.channel_id, webhook.disabled_reason, backlog, max(0.0, retry_at - self._clock()))

    # --- delivery -------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                await self._drain_all()
            except Exception:  # noqa: BLE001 - the notifier must outlive any one failure
                log.exception("webhook delivery pass failed; retrying")
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self._next_wait())
            except TimeoutError:
                pass

    def _next_wait(self) -> float:
        now = self._clock()
        waits = [retry_at - now for retry_at, _ in self._backoff.values()]
        return max(0.05, min([IDLE_POLL_S, *waits]))

    async def _drain_all(self) -> None:
        for webhook in await self._store.webhooks():
            if webhook.disabled_reason is not None:
                continue
            retry_at, _ = self._backoff.get(webhook.chain_id, (0.0, 0.0))
            if self._clock() < retry_at:
                continue
            await self._drain(webhook)

    async def _drain(self, stored: StoredWebhook) -> None:
        if self._session is None:
            raise RuntimeError("the notifier has not been started")
        url = open_bytes(self._master_key, stored.sealed_url, self._aad(stored.chain_id)).decode()
        webhook = discord.Webhook.from_url(url, session=self._session)
        while True:
            events = await self._store.pending_events(stored.chain_id, limit=EMBEDS_PER_MESSAGE)
            if not events:
                return
            if not await self._post(stored, webhook, events):
                return

    async def _post(self, stored: StoredWebhook, webhook: discord.Webhook, events: list[OutboxEvent]) -> bool:
        names = await self._names(stored.chain_id)
        embeds = [event_embed(e.kind, e.payload, names) for e in events]
        try:
            await webhook.send(
                embeds=embeds,
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
            self._back_off(stored.chain_id, f"HTTP {exc.status}", getattr(exc, "retry_after", None))
            return False
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._back_off(stored.chain_id, type(exc).__name__, None)
            return False
        # Only now is the batch known to be in Discord; a crash before this
        # commit re-posts it on restart (the one duplicate we accept).
        await self._store.mark_delivered([e.id for e in events], int(self._clock()))
        self._backoff.pop(stored.chain_id, None)
        self.delivered_batches += 1
        return True

    def _back_off(self, chain_id: int, reason: str, retry_after: float | None) -> None:
        _, previous = self._backoff.get(chain_id, (0.0, 0.0))
        delay = retry_after if retry_after else min(MAX_BACKOFF_S, max(FIRST_BACKOFF_S, previous * 2))
        self._backoff[chain_id] = (self._clock() + delay, delay)
        log.warning("webhook of server %d failed (%s); retrying in %.1fs", chain_id, reason, delay)

    async def _disable(self, stored: StoredWebhook, reason: str) -> None:
        await self._store.disable_webhook(stored.chain_id, stored.webhook_id, reason, int(self._clock()))
        log.warning("webhook of server %d disabled: %s", stored.chain_id, reason)
        text = (
            f"⚠️ Consensus Playground can no longer post to this channel's webhook: {reason}. "
            "Events are kept; an admin can run `/playground setup` to create a new webhook."
        )
        try:
            await self._alert(stored.chain_id, stored.channel_id, text)
        except discord.HTTPException:
            log.warning("could not alert server %d about its webhook", stored.chain_id)
