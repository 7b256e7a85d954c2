"""Discord gateway (v10, JSON encoding) over an aiohttp websocket.

Dispatches are appended to a per-session, sequence-numbered buffer and written
by one writer task per connection. That gives Discord's guarantees cheaply:
events keep their order, dispatching never blocks the caller, and a RESUME
replays exactly the events the client has not seen.

Sharding follows Discord: an IDENTIFY may carry ``shard: [shard_id, num_shards]`` (none means
``[0, 1]``); each (shard_id, num_shards) pair holds one live session, and an event about a guild
goes to every live session whose shard owns it by ``(guild_id >> 22) % num_shards == shard_id``.
Events about no guild (DMs) go to shard 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import WSCloseCode, WSMsgType, web

from .ids import session_id as new_session_id
from .records import GatewayEvent

if TYPE_CHECKING:
    from .models import Guild, Message
    from .server import Sandbox

_log = logging.getLogger(__name__)

# Opcodes
DISPATCH = 0
HEARTBEAT = 1
IDENTIFY = 2
PRESENCE_UPDATE = 3
VOICE_STATE_UPDATE = 4
RESUME = 6
RECONNECT = 7
REQUEST_GUILD_MEMBERS = 8
INVALID_SESSION = 9
HELLO = 10
HEARTBEAT_ACK = 11

# Intents (bit positions from the Discord docs)
GUILDS = 1 << 0
GUILD_MEMBERS = 1 << 1
GUILD_WEBHOOKS = 1 << 5
GUILD_MESSAGES = 1 << 9
DIRECT_MESSAGES = 1 << 12
MESSAGE_CONTENT = 1 << 15

# Close codes
UNKNOWN_ERROR = 4000
UNKNOWN_OPCODE = 4001
DECODE_ERROR = 4002
NOT_AUTHENTICATED = 4003
AUTHENTICATION_FAILED = 4004
ALREADY_AUTHENTICATED = 4005
INVALID_SHARD = 4010
SHARDING_REQUIRED = 4011

MAX_BUFFER = 5000
# Discord's HEARTBEAT_ACK comes back after a network round trip. discord.py relies on that: its
# keep-alive thread records the send time only after the loop has sent the heartbeat, so an ACK
# read before then is measured against the previous heartbeat ("websocket is 41.3s behind").
# A same-machine answer is instant; this delay stands in for a typical round trip.
HEARTBEAT_ACK_DELAY_S = 0.1
# Discord closes an IDENTIFY whose shard would hold more guilds than this with 4011.
MAX_GUILDS_PER_SESSION = 2500


def shard_for(guild_id: int, num_shards: int) -> int:
    """The shard that owns ``guild_id`` among ``num_shards``: Discord's formula."""
    return (guild_id >> 22) % num_shards


def parse_shard(value: Any) -> tuple[int, int] | None:
    """IDENTIFY's ``shard`` as (shard_id, num_shards), or None if Discord would refuse it (4010)."""
    if not isinstance(value, list) or len(value) != 2:
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return None
    shard_id, num_shards = value
    if num_shards < 1 or not 0 <= shard_id < num_shards:
        return None
    return shard_id, num_shards


class GatewaySession:
    """An identified session; outlives individual websocket connections so it can be resumed."""

    def __init__(self, session_id: str, intents: int, shard: list[int] | None, identify: dict[str, Any]) -> None:
        self.session_id = session_id
        self.intents = intents
        # As the client sent it (READY echoes it only then); routing uses shard_id/num_shards.
        self.shard = shard
        self.shard_id, self.num_shards = (shard[0], shard[1]) if shard is not None else (0, 1)
        self.identify = identify
        self.seq = 0
        self.frames: dict[int, dict[str, Any]] = {}
        self.on_sent: dict[int, Callable[[float], None]] = {}
        self.connection: GatewayConnection | None = None
        self.ready = False
        self.presence: dict[str, Any] | None = None
        # The guilds READY listed, and what was queued for this session: tests ask these which
        # shard an event went to.
        self.guild_ids: list[int] = []
        self.event_counts: Counter[str] = Counter()
        self.guild_event_counts: Counter[int] = Counter()

    @property
    def key(self) -> tuple[int, int]:
        return self.shard_id, self.num_shards

    def owns(self, guild_id: int | None) -> bool:
        """Whether Discord would send this session an event about ``guild_id`` (None: a DM, shard 0)."""
        if guild_id is None:
            return self.shard_id == 0
        return shard_for(guild_id, self.num_shards) == self.shard_id

    def push(
        self,
        t: str,
        d: Any,
        on_sent: Callable[[float], None] | None = None,
        *,
        guild_id: int | None = None,
    ) -> int:
        self.event_counts[t] += 1
        if guild_id is not None:
            self.guild_event_counts[guild_id] += 1
        self.seq += 1
        self.frames[self.seq] = {"op": DISPATCH, "t": t, "s": self.seq, "d": d}
        if on_sent is not None:
            self.on_sent[self.seq] = on_sent
        stale = self.seq - MAX_BUFFER
        if stale in self.frames:
            del self.frames[stale]
        if self.connection is not None:
            self.connection.wake.set()
        return self.seq

    def has_intent(self, intent: int) -> bool:
        return bool(self.intents & intent)


class GatewayConnection:
    def __init__(self, ws: web.WebSocketResponse, query: dict[str, str]) -> None:
        self.ws = ws
        self.query = query
        self.session: GatewaySession | None = None
        self.sent_upto = 0
        self.wake = asyncio.Event()
        self.writer: asyncio.Task[None] | None = None
        self.heartbeats = 0
        self.opened_at = time.monotonic()
        self.pending_acks: set[asyncio.Task[None]] = set()


class Gateway:
    def __init__(
        self,
        sandbox: Sandbox,
        *,
        heartbeat_interval_ms: int = 41250,
        heartbeat_ack_delay_s: float = HEARTBEAT_ACK_DELAY_S,
    ) -> None:
        self.sb = sandbox
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.heartbeat_ack_delay_s = heartbeat_ack_delay_s
        self.sessions: dict[str, GatewaySession] = {}
        # The live session of each (shard_id, num_shards); a new IDENTIFY for a pair replaces it.
        self.shard_sessions: dict[tuple[int, int], GatewaySession] = {}
        # The newest IDENTIFY's session: its num_shards is the count readiness waits for.
        self.newest: GatewaySession | None = None
        # Discord's 4011: an IDENTIFY whose shard would hold more guilds is refused (None: no limit).
        self.max_guilds_per_session: int | None = MAX_GUILDS_PER_SESSION
        self.connections: list[GatewayConnection] = []
        self.log: deque[GatewayEvent] = deque(maxlen=20000)
        self.identify_count = 0
        self.resume_count = 0
        self.connect_count = 0
        self.failed_resumes = 0
        self.disconnects = 0
        # Lets a test simulate a zombied connection (discord.py then reconnects on its own).
        self.ack_heartbeats = True

    # --- dispatching ---------------------------------------------------

    @property
    def current(self) -> GatewaySession | None:
        """The session DMs go to (shard 0 of the newest shard count), else the newest one.

        With an unsharded bot this is its only session."""
        newest = self.newest
        if newest is None:
            return None
        return self.shard_sessions.get((0, newest.num_shards)) or self.shard_sessions.get(newest.key)

    def live_sessions(self) -> list[GatewaySession]:
        return list(self.shard_sessions.values())

    def session_for_shard(self, shard_id: int, num_shards: int | None = None) -> GatewaySession | None:
        """The live session of ``shard_id`` (of ``num_shards``, default the newest IDENTIFY's count)."""
        if num_shards is None:
            if self.newest is None:
                return None
            num_shards = self.newest.num_shards
        return self.shard_sessions.get((shard_id, num_shards))

    def sessions_for(self, guild_id: int | None) -> list[GatewaySession]:
        """The live sessions an event about ``guild_id`` goes to (None: a DM, shard 0)."""
        return [s for s in self.shard_sessions.values() if s.owns(guild_id)]

    def dispatch(
        self,
        t: str,
        d: Any,
        *,
        guild_id: int | None,
        intent: int | None = None,
        on_sent: Callable[[float], None] | None = None,
    ) -> int:
        """Queue an event for every live session whose shard owns ``guild_id`` (None: a DM, shard 0)
        and that asked for ``intent``; returns how many sessions it was queued for."""
        count = 0
        for session in self.sessions_for(guild_id):
            if intent is not None and not session.has_intent(intent):
                continue
            session.push(t, d, on_sent, guild_id=guild_id)
            count += 1
        return count

    def dispatch_guild_create(self, guild: Guild) -> None:
        """GUILD_CREATE for a guild the bot just joined, built for each owning session's intents."""
        for session in self.sessions_for(guild.id):
            if session.has_intent(GUILDS):
                session.push("GUILD_CREATE", self.guild_create_payload(guild, session, joined=True), guild_id=guild.id)

    def _shard_ready(self, num_shards: int, shard_ids: list[int] | None = None) -> bool:
        wanted = range(num_shards) if shard_ids is None else shard_ids
        for shard_id in wanted:
            session = self.shard_sessions.get((shard_id, num_shards))
            if session is None or not session.ready:
                return False
        return True

    def ready_for(self, shard_ids: list[int] | None = None) -> bool:
        """Every shard (or those of ``shard_ids``) of the newest IDENTIFY's count has a session that
        was sent READY and each GUILD_CREATE of the guilds it owns."""
        newest = self.newest
        return newest is not None and self._shard_ready(newest.num_shards, shard_ids)

    @property
    def connected(self) -> bool:
        """Every shard of the newest IDENTIFY's count has a session with an open websocket."""
        newest = self.newest
        if newest is None:
            return False
        for shard_id in range(newest.num_shards):
            session = self.shard_sessions.get((shard_id, newest.num_shards))
            if session is None or session.connection is None or session.connection.ws.closed:
                return False
        return True

    # --- the payloads of READY, GUILD_CREATE and message events ---------

    def ready_payload(self, session: GatewaySession) -> dict[str, Any]:
        user = self.sb.bot_user.payload()
        user.update({"verified": True, "mfa_enabled": False, "email": None, "locale": "en-US"})
        data: dict[str, Any] = {
            "v": 10,
            "user": user,
            "guilds": [{"id": str(gid), "unavailable": True} for gid in session.guild_ids],
            "session_id": session.session_id,
            "session_type": "normal",
            # discord.py reconnects (and RESUMEs) to this URL, so it must point back at the sandbox.
            "resume_gateway_url": self.sb.gateway_url,
            "application": {"id": str(self.sb.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "user_settings": {},
            "geo_ordered_rtc_regions": [],
            "auth": {},
        }
        if session.shard is not None:
            data["shard"] = session.shard
        return data

    def guild_create_payload(self, guild: Guild, session: GatewaySession, *, joined: bool = False) -> dict[str, Any]:
        # Without the GUILD_MEMBERS intent Discord only includes the bot itself.
        if session.has_intent(GUILD_MEMBERS):
            members = list(guild.members.values())
        else:
            members = [guild.members[self.sb.bot_user.id]]
        payload = guild.payload(members=members)
        if joined:
            # Discord leaves ``unavailable`` out when the bot just joined (``false`` means "available
            # again"): discord.py tells on_guild_join from on_guild_available by it.
            payload.pop("unavailable", None)
        return payload

    def _message_event_payload(self, msg: Message, session: GatewaySession) -> dict[str, Any]:
        data = msg.payload()
        mentioned = any(m.id == self.sb.bot_user.id for m in msg.mentioned_users())
        if not session.has_intent(MESSAGE_CONTENT) and msg.author.id != self.sb.bot_user.id and not mentioned:
            # MESSAGE_CONTENT is privileged: without it Discord blanks other users' message bodies.
            data.update(content="", embeds=[], attachments=[], components=[])
        return data

    def dispatch_message(self, event: str, msg: Message) -> None:
        # Like Discord, send nothing to a bot that did not ask for message events
        # (and skip building the payload: bursts of replies are a hot path).
        if msg.ephemeral:
            return
        for session in self.sessions_for(msg.guild.id):
            if session.has_intent(GUILD_MESSAGES):
                session.push(event, self._message_event_payload(msg, session), guild_id=msg.guild.id)

    # --- websocket endpoint ------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0, autoping=True)
        await ws.prepare(request)
        conn = GatewayConnection(ws, dict(request.query))
        self.connections.append(conn)
        self.connect_count += 1
        encoding = request.query.get("encoding", "json")
        if encoding != "json":
            # ETF would need an erlpack encoder; discord.py uses JSON unless told otherwise.
            _log.warning("gateway client asked for encoding=%s; only json is supported", encoding)
            await ws.close(code=DECODE_ERROR, message=b"only json encoding is supported")
            return ws
        conn.writer = asyncio.create_task(self._writer(conn), name="sandbox-gateway-writer")
        try:
            # discord.py may ask for zlib-stream transport compression; plain text frames are
            # always accepted by its receive path, so compression is skipped on purpose.
            await self._send_op(conn, HELLO, {"heartbeat_interval": self.heartbeat_interval_ms})
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_text(conn, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await ws.close(code=DECODE_ERROR, message=b"binary frames are not supported")
                elif msg.type == WSMsgType.ERROR:
                    _log.debug("gateway websocket error: %s", ws.exception())
        finally:
            for ack in list(conn.pending_acks):
                ack.cancel()
            conn.writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await conn.writer
            if conn.session is not None and conn.session.connection is conn:
                conn.session.connection = None
            if conn in self.connections:
                self.connections.remove(conn)
            _log.debug("gateway connection closed (code %s)", ws.close_code)
            self.sb.notifier.notify()
        return ws

    async def _writer(self, conn: GatewayConnection) -> None:
        while not conn.ws.closed:
            await conn.wake.wait()
            conn.wake.clear()
            session = conn.session
            if session is None:
                continue
            while conn.sent_upto < session.seq and not conn.ws.closed:
                seq = conn.sent_upto + 1
                frame = session.frames.get(seq)
                if frame is None:
                    # Trimmed from the buffer; nothing sensible to replay.
                    conn.sent_upto = seq
                    continue
                try:
                    await conn.ws.send_str(json.dumps(frame))
                except (ConnectionResetError, RuntimeError) as exc:
                    _log.debug("gateway send of seq %s failed (%s); will replay on resume", seq, exc)
                    return
                conn.sent_upto = seq
                self._log("send", frame, session)
                hook = session.on_sent.pop(seq, None)
                if hook is not None:
                    hook(time.monotonic())
                self.sb.notifier.notify()

    async def _send_op(self, conn: GatewayConnection, op: int, d: Any) -> None:
        frame = {"op": op, "d": d, "s": None, "t": None}
        try:
            await conn.ws.send_str(json.dumps(frame))
        except (ConnectionResetError, RuntimeError) as exc:
            _log.debug("gateway op %s not sent: %s", op, exc)
            return
        self._log("send", frame, conn.session)

    async def _ack_heartbeat(self, conn: GatewayConnection) -> None:
        """Op 11 after the simulated round trip (``HEARTBEAT_ACK_DELAY_S``), unless the socket closed."""
        # Never a tenth of the interval or more: with a short test interval, an ACK still on its way
        # when the next heartbeat goes out would be taken for that heartbeat's.
        await asyncio.sleep(min(self.heartbeat_ack_delay_s, self.heartbeat_interval_ms / 10_000))
        if not conn.ws.closed:
            await self._send_op(conn, HEARTBEAT_ACK, None)
            self.sb.notifier.notify()

    def _log(self, direction: str, frame: dict[str, Any], session: GatewaySession | None) -> None:
        session_id = session.session_id if session is not None else None
        shard = session.key if session is not None else None
        self.log.append(
            GatewayEvent(
                direction=direction,
                op=frame.get("op", -1),
                t=frame.get("t"),
                s=frame.get("s"),
                d=frame.get("d"),
                session_id=session_id,
                shard=shard,
            )
        )

    async def _on_text(self, conn: GatewayConnection, text: str) -> None:
        try:
            frame = json.loads(text)
        except ValueError:
            await conn.ws.close(code=DECODE_ERROR, message=b"invalid json")
            return
        op = frame.get("op")
        d = frame.get("d")
        self._log("recv", frame, conn.session)
        if op == HEARTBEAT:
            conn.heartbeats += 1
            if self.ack_heartbeats:
                ack = asyncio.create_task(self._ack_heartbeat(conn), name="sandbox-heartbeat-ack")
                conn.pending_acks.add(ack)
                ack.add_done_callback(conn.pending_acks.discard)
        elif op == IDENTIFY:
            await self._identify(conn, d or {})
        elif op == RESUME:
            await self._resume(conn, d or {})
        elif conn.session is None:
            await conn.ws.close(code=NOT_AUTHENTICATED, message=b"not authenticated")
        elif op == PRESENCE_UPDATE:
            conn.session.presence = d
        elif op == REQUEST_GUILD_MEMBERS:
            self._request_members(conn.session, d or {})
        elif op == VOICE_STATE_UPDATE:
            _log.debug("ignoring voice state update %s", d)
        else:
            await conn.ws.close(code=UNKNOWN_OPCODE, message=b"unknown opcode")
        self.sb.notifier.notify()

    async def _identify(self, conn: GatewayConnection, d: dict[str, Any]) -> None:
        if conn.session is not None:
            await conn.ws.close(code=ALREADY_AUTHENTICATED, message=b"already authenticated")
            return
        if d.get("token") != self.sb.bot_token:
            _log.warning("gateway IDENTIFY with a wrong token")
            await conn.ws.close(code=AUTHENTICATION_FAILED, message=b"authentication failed")
            return
        raw_shard = d.get("shard")
        shard = parse_shard(raw_shard) if raw_shard is not None else (0, 1)
        if shard is None:
            _log.warning("gateway IDENTIFY with an invalid shard %r", raw_shard)
            await conn.ws.close(code=INVALID_SHARD, message=b"Invalid shard.")
            return
        guilds = [g for g in self.sb.bot_guilds() if shard_for(g.id, shard[1]) == shard[0]]
        limit = self.max_guilds_per_session
        if limit is not None and len(guilds) > limit:
            _log.warning("gateway IDENTIFY for shard %s would hold %s guilds (limit %s)", shard, len(guilds), limit)
            await conn.ws.close(code=SHARDING_REQUIRED, message=b"Sharding required.")
            return
        session = GatewaySession(
            new_session_id(), int(d.get("intents") or 0), list(shard) if raw_shard is not None else None, d
        )
        session.guild_ids = [g.id for g in guilds]
        self.sessions[session.session_id] = session
        # Discord keeps one session per bot/shard here; the newest identify wins.
        old = self.shard_sessions.get(session.key)
        self.shard_sessions[session.key] = session
        self.newest = session
        if old is not None:
            # Replaced sessions can never be resumed: drop them and their event buffers.
            self.sessions.pop(old.session_id, None)
            if old.connection is not None and old.connection is not conn:
                await old.connection.ws.close(code=UNKNOWN_ERROR, message=b"session replaced")
        conn.session = session
        session.connection = conn
        self.identify_count += 1
        session.push("READY", self.ready_payload(session))

        def mark_ready(_: float) -> None:
            session.ready = True

        if not guilds:
            session.on_sent[session.seq] = mark_ready
        for i, guild in enumerate(guilds):
            hook = mark_ready if i == len(guilds) - 1 else None
            session.push("GUILD_CREATE", self.guild_create_payload(guild, session), hook, guild_id=guild.id)
        conn.wake.set()
        _log.info(
            "bot identified (session %s, shard %s, intents %s, %s guilds)",
            session.session_id,
            list(session.key),
            session.intents,
            len(guilds),
        )

    async def _resume(self, conn: GatewayConnection, d: dict[str, Any]) -> None:
        session = self.sessions.get(str(d.get("session_id")))
        # A session replaced by a newer IDENTIFY of its shard cannot be resumed; the shard stays the session's.
        if (
            session is None
            or d.get("token") != self.sb.bot_token
            or self.shard_sessions.get(session.key) is not session
        ):
            self.failed_resumes += 1
            _log.info("gateway RESUME rejected; sending INVALID_SESSION")
            await self._send_op(conn, INVALID_SESSION, False)
            return
        if session.connection is not None and session.connection is not conn:
            await session.connection.ws.close(code=UNKNOWN_ERROR, message=b"resumed elsewhere")
        conn.session = session
        session.connection = conn
        # Replays every event after the client's last seq, then RESUMED, in order via the writer.
        conn.sent_upto = int(d.get("seq") or 0)
        session.push("RESUMED", {})
        self.resume_count += 1
        conn.wake.set()
        _log.info("bot resumed session %s from seq %s", session.session_id, d.get("seq"))

    def _request_members(self, session: GatewaySession, d: dict[str, Any]) -> None:
        guild_ids = d.get("guild_id")
        if not isinstance(guild_ids, list):
            guild_ids = [guild_ids]
        query = (d.get("query") or "").lower()
        limit = int(d.get("limit") or 0)
        user_ids = d.get("user_ids")
        if user_ids is not None and not isinstance(user_ids, list):
            user_ids = [user_ids]
        for gid in guild_ids:
            guild = self.sb.guilds.get(int(gid))
            if guild is None or not session.owns(guild.id):
                # A shard knows only its own guilds; Discord's docs do not say what it answers for
                # another shard's, so the sandbox skips them.
                continue
            members = list(guild.members.values())
            not_found: list[str] = []
            if user_ids is not None:
                wanted = {int(u) for u in user_ids}
                members = [m for m in members if m.id in wanted]
                not_found = [str(u) for u in wanted - {m.id for m in members}]
            elif query:
                members = [
                    m for m in members if m.name.lower().startswith(query) or m.display_name.lower().startswith(query)
                ]
            if limit:
                members = members[:limit]
            payload: dict[str, Any] = {
                "guild_id": str(guild.id),
                "members": [m.payload() for m in members],
                "chunk_index": 0,
                "chunk_count": 1,
            }
            if d.get("nonce") is not None:
                payload["nonce"] = d["nonce"]
            if user_ids is not None:
                payload["not_found"] = not_found
            session.push("GUILD_MEMBERS_CHUNK", payload, guild_id=guild.id)

    # --- test controls --------------------------------------------------

    def _connection_of(self, shard_id: int | None) -> tuple[GatewaySession, GatewayConnection]:
        session = self.current if shard_id is None else self.session_for_shard(shard_id)
        if session is None or session.connection is None:
            which = "the bot" if shard_id is None else f"shard {shard_id}"
            raise RuntimeError(f"{which} has no open gateway connection")
        return session, session.connection

    async def disconnect(self, code: int = UNKNOWN_ERROR, shard_id: int | None = None) -> None:
        """Close the bot's websocket (of ``shard_id``; default the current session's);
        4000-class codes except 4004/4010-4014 are resumable."""
        _, conn = self._connection_of(shard_id)
        self.disconnects += 1
        await conn.ws.close(code=code, message=b"sandbox disconnect")

    async def invalidate_session(self, resumable: bool = False, shard_id: int | None = None) -> None:
        session, conn = self._connection_of(shard_id)
        if not resumable:
            # Forget the session so the client's next RESUME is refused, as Discord would.
            self.sessions.pop(session.session_id, None)
        await self._send_op(conn, INVALID_SESSION, resumable)

    async def request_reconnect(self, shard_id: int | None = None) -> None:
        _, conn = self._connection_of(shard_id)
        await self._send_op(conn, RECONNECT, None)

    async def close_all(self) -> None:
        for conn in list(self.connections):
            with contextlib.suppress(ConnectionResetError, RuntimeError):
                await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"sandbox shutting down")
