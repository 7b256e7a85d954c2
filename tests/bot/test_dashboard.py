"""The classroom dashboard's server (bot/dashboard.py) on 127.0.0.1, over real HTTP: links and their
403s, one server's link showing nothing of another's, no secret in any byte served, security headers,
GET only, the live stream fed by the outbox, and the bounds on streams."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time

import aiohttp
import pytest

import bot.dashboard
from bot.dashboard import CONTENT_SECURITY_POLICY, Dashboard, StreamHub
from bot.dashboard_links import LinkRefusedError, derive_link_key
from bot.dashboard_view import NameBook
from bot.outbox_feed import FeedingOutboxWriter, OutboxFeed
from bot.storage import DashboardLinkRepository, StoredWebhook, WebhookRepository
from chain.adapters.hashcore import HashingCore
from chain.adapters.node import Node
from chain.adapters.storage import Store
from chain.adapters.storage.outbox import OutboxTableWriter
from chain.keys import seal_bytes, webhook_url_aad
from chain.params import REGTEST
from chain.playground import Playground
from chain.pos.beacon import ConsensusConfig

MASTER = bytes(range(1, 33))
ALPHA, BETA = 101, 202
GUILD_NAMES = {ALPHA: "Alpha <b>School</b>", BETA: "Beta Secret Club"}
WEBHOOK_URL = "https://discord.com/api/webhooks/998877/WEBHOOK-TOKEN-never-shown"
DISCORD_TOKEN = "MTAx.fake-discord-token.never-shown"
GUARD_S = 60  # how long a test waits for something that must come before it gives up (a hang guard)


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class Defaults:
    default_params = REGTEST
    default_consensus = ConsensusConfig()

    async def hash_rate(self) -> int:
        return 1


async def fake_charts(chain_id: int, kind: str) -> tuple[bytes, str]:
    fake_charts.calls.append((chain_id, kind))
    await asyncio.sleep(0)
    return b"\x89PNG fake " + kind.encode(), f"{kind}: a fake chart of server {chain_id}"


fake_charts.calls = []


class World:
    def __init__(self, store, node, playground, dashboard, feed, clock) -> None:
        self.store, self.node, self.playground = store, node, playground
        self.dashboard, self.feed, self.clock = dashboard, feed, clock

    def url(self, link: str, suffix: str = "") -> str:
        return link + suffix


@pytest.fixture
async def world(tmp_path):
    fake_charts.calls.clear()
    feed_box: list[OutboxFeed] = []
    store = await Store.open(
        tmp_path / "dashboard.sqlite3",
        outbox=FeedingOutboxWriter(OutboxTableWriter(), lambda: feed_box[0].wake() if feed_box else None),
    )
    core = HashingCore(1)
    await core.start()
    node = Node(store, clock=time.time, randomness=os.urandom, master_key=MASTER, hashing_core=core)
    await node.load()
    playground = Playground(node, None, Defaults())
    for chain_id in (ALPHA, BETA):
        await playground.ensure_chain(chain_id)
    clock = Clock()
    names = NameBook()
    names.learn(ALPHA, "1111", "alice")
    names.learn(BETA, "beta-member-7", "zed-of-beta")
    dashboard = Dashboard(
        playground, DashboardLinkRepository(store.db), MASTER, host="127.0.0.1", port=0,
        guild_name=GUILD_NAMES.get, names=names, charts=fake_charts, chart_kinds=("difficulty", "intervals"),
        clock=clock, hub=StreamHub(per_server=3, total=5, queue_events=8),
    )
    await dashboard.start()
    feed = OutboxFeed(store.db, dashboard.on_outbox_events)
    feed_box.append(feed)
    await feed.start()
    yield World(store, node, playground, dashboard, feed, clock)
    await dashboard.close()
    await feed.close()
    await core.close()
    await store.close()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=GUARD_S)) as session:
        yield session


async def get(http, url, method="GET"):
    async with http.request(method, url) as response:
        return response.status, dict(response.headers), await response.read()


class Stream:
    """A dashboard event stream, read event by event."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.raw = b""

    async def next(self) -> tuple[str, dict]:
        event, data = "message", None
        while True:
            line = await asyncio.wait_for(self.response.content.readline(), GUARD_S)
            if not line:
                raise EOFError("the stream ended")
            self.raw += line
            line = line.rstrip(b"\n")
            if not line:
                if data is not None:
                    return event, json.loads(data)
                continue
            if line.startswith(b"event: "):
                event = line[7:].decode()
            elif line.startswith(b"data: "):
                data = line[6:].decode()

    async def until(self, predicate) -> tuple[str, dict]:
        while True:
            event, data = await self.next()
            if predicate(event, data):
                return event, data


async def open_stream(http, link: str) -> Stream:
    response = await http.get(link + "/events")
    assert response.status == 200, response.status
    return Stream(response)


# --- links ------------------------------------------------------------------------------------


async def test_a_link_opens_its_servers_page_state_and_stream(world, http):
    link = await world.dashboard.issue_link(ALPHA, 2)
    assert link.startswith(f"http://127.0.0.1:{world.dashboard.port}/d/{ALPHA}.")
    status, headers, body = await get(http, link)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b"Alpha &lt;b&gt;School&lt;/b&gt;" in body and b"<b>School" not in body  # escaped, never markup
    status, _, body = await get(http, link + "/state")
    state = json.loads(body)
    assert status == 200 and state["server"] == "Alpha <b>School</b>" and state["chain"]["height"] == 0
    assert [b["height"] for b in state["blocks"]] == [0]
    stream = await open_stream(http, link)
    event, data = await stream.next()
    assert event == "state" and data["chain"]["height"] == 0
    stream.response.close()


async def test_a_block_mined_reaches_the_open_stream_through_the_outbox(world, http):
    link = await world.dashboard.issue_link(ALPHA, 2)
    stream = await open_stream(http, link)
    await stream.until(lambda e, d: e == "state")
    reads_before = world.feed.reads
    world.dashboard.names.learn(ALPHA, "1111", "alice")
    assert (await world.playground.mine(ALPHA, "1111")).found
    _, news = await stream.until(lambda e, d: e == "news" and d["kind"] == "block_mined")
    assert news["height"] == 1 and "alice" in news["text"] + news["title"]
    _, state = await stream.until(lambda e, d: e == "state" and d["chain"]["height"] == 1)
    assert state["blocks"][0]["height"] == 1 and state["blocks"][0]["miner"] == "alice"
    assert world.feed.reads > reads_before
    stream.response.close()


async def test_the_feed_reads_the_outbox_only_when_woken_and_never_an_uncommitted_event(world):
    feed = world.feed
    reads = feed.reads
    for _ in range(5):
        await asyncio.sleep(0)
    assert feed.reads == reads  # nothing written: nothing read, whatever the time
    await feed.close()  # from here on this test reads for the feed, step by step
    assert feed._wake.is_set() is False
    from chain.events import MilestoneReached

    event = MilestoneReached(height=1, account=bytes(32), milestone=100, balance=100)
    with pytest.raises(RuntimeError):
        async with world.store.db.transaction(ALPHA) as tx:
            await world.store.outbox_writer.insert_events(tx, ALPHA, [event], 0)
            raise RuntimeError("the block's transaction fails after writing its events")
    assert not feed._wake.is_set()  # a write that rolled back wakes nobody...
    assert await feed.read_new() == []  # ...and there is nothing to read
    async with world.store.db.transaction(ALPHA) as tx:
        await world.store.outbox_writer.insert_events(tx, ALPHA, [event], 0)
        assert not feed._wake.is_set()  # not before the commit: a read now could not see the event
        # A read meanwhile (another writer's wake) waits for SQLite's write lock, i.e. for the commit.
        reading = asyncio.create_task(feed.read_new())
        for _ in range(5):
            await asyncio.sleep(0)
        assert not reading.done()
    assert feed._wake.is_set()  # woken once committed
    assert [e.event for e in await reading] == [event]


async def test_an_expired_link_gets_403_everywhere(world, http):
    link = await world.dashboard.issue_link(ALPHA, 1)
    assert (await get(http, link))[0] == 200
    world.clock.now += 3600
    for suffix in ("", "/state", "/events", "/chart/difficulty.png"):
        status, headers, body = await get(http, link + suffix)
        assert status == 403 and b"expired" in body, suffix
        assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


def flip_bit(text: str, index: int) -> str:
    """``text`` with one bit of its ``index``-th character flipped (the numeric parts: a digit stays a digit)."""
    return text[:index] + chr(ord(text[index]) ^ 1) + text[index + 1:]


def flip_mac_bit(mac: str, byte: int) -> str:
    """The base64url MAC with one bit of its ``byte``-th decoded byte flipped, re-encoded: still a
    well-formed token, so it reaches the signature check. (Flipping a bit of the text itself would make
    6 of the alphabet's 64 characters into ones outside it, '{' among them, which aiohttp's router
    answers with 404 before the dashboard sees it: the test's outcome then hung on the MAC drawn.)"""
    raw = bytearray(base64.urlsafe_b64decode(mac + "=" * (-len(mac) % 4)))
    raw[byte] ^= 1
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


async def test_a_link_with_one_bit_flipped_in_any_part_gets_403(world, http):
    link = await world.dashboard.issue_link(ALPHA, 2)
    base, token = link.rsplit("/", 1)
    parts = token.split(".")
    assert len(parts) == 4
    tried = 0
    for number, part in enumerate(parts):
        for index in (0, len(part) - 1):
            changed = parts.copy()
            changed[number] = flip_bit(part, index) if number < 3 else flip_mac_bit(part, 0 if index == 0 else 31)
            assert changed[number] != part
            for suffix in ("", "/state", "/events"):
                status, _, _ = await get(http, f"{base}/{'.'.join(changed)}{suffix}")
                assert status == 403, (number, index, suffix)
                tried += 1
    assert tried == 4 * 2 * 3
    assert (await get(http, link))[0] == 200  # the genuine one still works


async def test_a_link_with_a_character_outside_the_alphabet_opens_nothing(world, http):
    link = await world.dashboard.issue_link(ALPHA, 2)
    for character in "`{@[,^":  # what flipping the low bit of a, z, A, Z, - and _ gives
        status, _, _ = await get(http, link[:-1] + character)
        # '{' never reaches the dashboard (aiohttp's router refuses it: 404); the others are malformed: 403.
        assert status == (404 if character == "{" else 403), character


async def test_a_revoked_link_gets_403_and_its_open_stream_ends(world, http):
    old = await world.dashboard.issue_link(ALPHA, 2)
    beta = await world.dashboard.issue_link(BETA, 2)
    stream = await open_stream(http, old)
    await stream.until(lambda e, d: e == "state")
    await world.dashboard.revoke_links(ALPHA)
    event, data = await stream.until(lambda e, d: e == "bye")
    assert data == {"reason": "revoked"}
    for suffix in ("", "/state", "/events"):
        assert (await get(http, old + suffix))[0] == 403
    assert (await get(http, beta))[0] == 200  # another server's links are not touched
    new = await world.dashboard.issue_link(ALPHA, 2)
    assert (await get(http, new))[0] == 200
    # Kept in the database: a dashboard started afresh on it refuses the old link too.
    again = Dashboard(world.playground, DashboardLinkRepository(world.store.db), MASTER, host="127.0.0.1", port=0)
    assert await again.check(new.rsplit("/", 1)[1])
    with pytest.raises(Exception, match="revoked"):
        await again.check(old.rsplit("/", 1)[1])


async def test_a_revocation_racing_a_first_check_is_never_undone(world):
    # The generation is cached; a check that read the database before a revocation committed must not
    # put the old generation back in the cache after it (then revoked links would work again).
    dashboard = world.dashboard
    token = (await dashboard.issue_link(BETA, 2)).rsplit("/", 1)[1]
    dashboard._generations.clear()
    store = dashboard._generations_store
    real_generation = store.generation
    read = asyncio.Event()
    revoked = asyncio.Event()

    async def slow_generation(chain_id):
        value = await real_generation(chain_id)
        read.set()
        await revoked.wait()  # the revocation commits while this read's answer is on its way back
        return value

    store.generation = slow_generation
    checking = asyncio.create_task(dashboard.check(token))
    await read.wait()
    await dashboard.revoke_links(BETA)
    revoked.set()
    with pytest.raises(LinkRefusedError, match="revoked"):
        await checking  # it ends after the revocation committed: refused already
    store.generation = real_generation
    with pytest.raises(Exception, match="revoked"):
        await dashboard.check(token)


async def test_two_revocations_at_the_same_moment_both_count(world):
    repo = DashboardLinkRepository(world.store.db)
    results = await asyncio.gather(*(repo.revoke(ALPHA, 1) for _ in range(5)))
    assert sorted(results) == [1, 2, 3, 4, 5] and await repo.generation(ALPHA) == 5


# --- one server's link shows nothing of another ---------------------------------------------


async def test_a_link_for_one_server_shows_nothing_of_another(world, http):
    world.dashboard.names.learn(BETA, "beta-member-7", "zed-of-beta")
    assert (await world.playground.mine(BETA, "beta-member-7")).found
    alpha = await world.dashboard.issue_link(ALPHA, 2)
    stream = await open_stream(http, alpha)
    await stream.until(lambda e, d: e == "state")
    # A block on Beta while Alpha's stream is open, then one on Alpha: Alpha's stream gets only its own.
    assert (await world.playground.mine(BETA, "beta-member-7")).found
    assert (await world.playground.mine(ALPHA, "1111")).found
    await stream.until(lambda e, d: e == "state" and d["chain"]["height"] == 1)
    served = stream.raw
    for suffix in ("", "/state", "/chart/difficulty.png", "/chart/intervals.png"):
        served += (await get(http, alpha + suffix))[2]
    beta_tip = world.playground.state(BETA).tip_hash
    from chain.hashing import hash_to_display

    for secret in (b"Beta", b"zed-of-beta", b"beta-member-7", hash_to_display(beta_tip)[:16].encode()):
        assert secret not in served, secret
    assert fake_charts.calls and {c for c, _ in fake_charts.calls} == {ALPHA}
    stream.response.close()


# --- secrets ---------------------------------------------------------------------------------


async def test_no_token_key_webhook_or_wallet_secret_is_in_any_byte_served(world, http):
    sealed_url = seal_bytes(MASTER, WEBHOOK_URL.encode(), os.urandom(12), webhook_url_aad(ALPHA))
    await WebhookRepository(world.store.db).set(StoredWebhook(ALPHA, 5, 998877, sealed_url, None), 0)
    assert (await world.playground.mine(ALPHA, "1111")).found
    await world.playground.pay(ALPHA, "1111", "3333", 7, 1)
    link = await world.dashboard.issue_link(ALPHA, 2)
    stream = await open_stream(http, link)
    await stream.until(lambda e, d: e == "state")
    assert (await world.playground.mine(ALPHA, "1111")).found
    await stream.until(lambda e, d: e == "state" and d["chain"]["height"] == 2)
    served = stream.raw
    for suffix in ("", "/state", "/chart/difficulty.png", "/../static/dashboard.js"):
        served += (await get(http, link + suffix))[2]
    for name in ("dashboard.js", "dashboard.css"):
        served += (await get(http, f"http://127.0.0.1:{world.dashboard.port}/static/{name}"))[2]
    wallet_rows = await world.store.db.fetchall("SELECT sealed_key FROM wallets")
    link_key = derive_link_key(MASTER)
    secrets = [
        MASTER.hex(), MASTER.hex().upper(), link_key.hex(), WEBHOOK_URL, "WEBHOOK-TOKEN", "998877", DISCORD_TOKEN,
        sealed_url.hex(), *(row[0].hex() for row in wallet_rows), *(row[0].hex()[:24] for row in wallet_rows),
    ]
    assert len(wallet_rows) >= 2
    text = served.decode("utf-8", "replace")
    for secret in secrets:
        assert secret not in text, secret[:12]
    assert "7" in text  # the payment's amount is public, and shown
    stream.response.close()


# --- headers and methods -------------------------------------------------------------------


async def test_every_response_carries_the_security_headers(world, http):
    link = await world.dashboard.issue_link(ALPHA, 2)
    root = f"http://127.0.0.1:{world.dashboard.port}"
    urls = [link, link + "/state", link + "/chart/difficulty.png", root + "/static/dashboard.js",
            root + "/static/dashboard.css", root + "/", root + "/static/nope.js", root + "/d/garbage",
            link + "/chart/unknown.png"]
    for url in urls:
        _, headers, _ = await get(http, url)
        assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY, url
        assert headers["X-Content-Type-Options"] == "nosniff", url
        assert headers["Referrer-Policy"] == "no-referrer", url
        assert headers["Cache-Control"] == "no-store", url
    async with http.get(link + "/events") as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["Cache-Control"] == "no-store"
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY and "unsafe" not in CONTENT_SECURITY_POLICY


async def test_nothing_but_get_is_answered(world, http):
    link = await world.dashboard.issue_link(ALPHA, 2)
    root = f"http://127.0.0.1:{world.dashboard.port}"
    for url in (link, link + "/state", link + "/events", link + "/chart/difficulty.png", root + "/static/dashboard.js"):
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            status, headers, _ = await get(http, url, method)
            assert status == 405, (method, url)
            assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


# --- charts ----------------------------------------------------------------------------------


async def test_charts_are_drawn_once_per_tip_for_every_viewer_and_name_their_alt_text(world, http):
    link = await world.dashboard.issue_link(ALPHA, 2)
    results = await asyncio.gather(*(get(http, link + "/chart/difficulty.png") for _ in range(6)))
    assert {(s, b) for s, _, b in results} == {(200, b"\x89PNG fake difficulty")}
    assert results[0][1]["Content-Type"] == "image/png"
    assert fake_charts.calls == [(ALPHA, "difficulty")]
    state = json.loads((await get(http, link + "/state"))[2])
    assert state["charts"] == [
        {"kind": "difficulty", "alt": f"difficulty: a fake chart of server {ALPHA}"},
        {"kind": "intervals", "alt": "intervals chart of this server's chain"},
    ]
    assert (await get(http, link + "/chart/nope.png"))[0] == 404
    assert (await world.playground.mine(ALPHA, "1111")).found
    await get(http, link + "/chart/difficulty.png")
    assert fake_charts.calls == [(ALPHA, "difficulty")] * 2  # a new tip: drawn again


# --- bounds ----------------------------------------------------------------------------------


async def test_streams_arriving_at_the_same_moment_never_exceed_the_caps(world, http):
    # The hub allows 3 streams a server, 5 in all: 8 at once for Alpha, then 4 at once for Beta.
    alpha = await world.dashboard.issue_link(ALPHA, 2)
    beta = await world.dashboard.issue_link(BETA, 2)
    responses = await asyncio.gather(*(http.get(alpha + "/events") for _ in range(8)))
    assert sorted(r.status for r in responses) == [200] * 3 + [429] * 5
    assert world.dashboard.hub.count(ALPHA) == 3
    more = await asyncio.gather(*(http.get(beta + "/events") for _ in range(4)))
    assert sorted(r.status for r in more) == [200] * 2 + [503] * 2
    assert world.dashboard.hub.count() == 5
    for response in (*responses, *more):
        response.close()


async def test_a_viewer_too_slow_for_its_queue_is_dropped_with_a_final_event():
    hub = StreamHub(per_server=5, total=5, queue_events=4)
    from bot.dashboard_links import LinkClaims

    slow = hub.join(LinkClaims(ALPHA, 10**10, 0))
    fast = hub.join(LinkClaims(ALPHA, 10**10, 0))
    for n in range(4):
        hub.publish(ALPHA, f"event {n}".encode())
        await fast.queue.get()  # the fast viewer keeps up; the slow one takes nothing
    assert slow.dropped is None and slow.queue.full()
    hub.publish(ALPHA, b"one too many")
    assert slow.dropped == "too-slow" and hub.dropped_slow == 1
    left = [slow.queue.get_nowait() for _ in range(slow.queue.qsize())]
    assert left == [b'event: bye\ndata: {"reason":"too-slow"}\n\n', None]  # nothing buffered beyond the bound
    assert hub.count(ALPHA) == 1 and fast.dropped is None
    assert await fast.queue.get() == b"one too many"


async def test_a_quiet_stream_gets_heartbeats_and_ends_when_its_link_expires(world, http, monkeypatch):
    monkeypatch.setattr(bot.dashboard, "HEARTBEAT_S", 0.05)
    link = await world.dashboard.issue_link(ALPHA, 1)
    stream = await open_stream(http, link)
    await stream.until(lambda e, d: e == "state")
    while b": keep-alive\n\n" not in stream.raw:  # nothing happens on the chain: comment lines keep it open
        line = await asyncio.wait_for(stream.response.content.readline(), GUARD_S)
        assert line, "the stream ended"
        stream.raw += line
    world.clock.now += 3600
    _, data = await stream.until(lambda e, d: e == "bye")
    assert data == {"reason": "expired"}
    assert await asyncio.wait_for(stream.response.content.read(), GUARD_S) == b""  # and it is closed
    assert world.dashboard.hub.count(ALPHA) == 0
