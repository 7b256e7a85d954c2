"""The hashing core: proof-of-work searches in worker processes, shared fairly.

Nothing here knows about blocks. A mining job hands out 76-byte header
prefixes and a target; the core cuts the nonce space into short chunks, runs
them in a process pool off the event loop and, when a job's nonce space runs
out, asks it for the prefix of the next extra nonce.

Sessions share the workers by stride scheduling: each has a pass value, the
next chunk goes to the live session with the lowest pass, and that session's
pass grows by ``chunk hashes / weight``. Over time each session gets hashes in
proportion to its weight (its hash power). Chunks are sized from the observed
hash rate to last about ``chunk_seconds``, which bounds how long a worker is
tied up by a chunk whose result nobody wants any more.

All bookkeeping runs on the event loop in callbacks that do a few dictionary
operations; the hashing itself never does.

Backends: the fastest the machine offers by default (``nonce_search.DEFAULT_BACKEND``:
the native C search on the CPU's SHA extensions, its portable C path, or pure
Python); ``backend_label`` names the one running, for the log and the members.

CPU budget: with ``cpu_percent`` below 100 each worker sleeps after every chunk
in proportion to the CPU time it took (``cpu_budget.CpuBudget``), so the core
uses at most that share of the machine; the sleep is part of the chunk's wall
time, so the observed rate, the chunk sizes and ``measure_rate`` (difficulty
calibration) are all under the cap.

Energy: each worker measures its own CPU time per chunk (``run_chunk``). The
core adds it up in total (``stats().cpu_ns_total``), per session
(``MiningSession.cpu_ns``, ``MiningOutcome.cpu_ns``) and per chain
(``drain_cpu_ns``), so proof-of-work CPU time can be attributed to a chain.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from itertools import count
from typing import Protocol

from chain.adapters.cpu_budget import FULL_PERCENT, CpuBudget
from chain.adapters.cpu_quota import compute_available_cores
from chain.adapters.nonce_search import (
    BACKEND_NOTE,
    DEFAULT_BACKEND,
    MAX_NONCE,
    PREFIX_SIZE,
    SearchResult,
    get_backend,
    run_chunk,
)
from chain.adapters.worker_lifeline import bind_to_owner

log = logging.getLogger(__name__)

Clock = Callable[[], float]

DEFAULT_CHUNK_SECONDS = 0.075
# A guess for the first chunks, before any rate has been observed (the warm-up replaces it).
INITIAL_WORKER_RATE = 500_000
# Hashes each worker does at start-up to measure its rate: the first chunks are then sized for the
# backend actually running (a native one is ~10x Python), so they are neither far too short nor long.
WARM_UP_HASHES = 20_000
# How much longer than asked ``measure_rate`` waits for a first full chunk on a loaded host, in seconds.
MEASURE_PATIENCE_S = 10.0
MIN_CHUNK = 1_024
MAX_CHUNK = 1 << 24
RATE_SMOOTHING = 0.3
# Workers run at the lowest CPU priority: with every core busy hashing, the
# event loop (and the Discord heartbeat on it) still gets a core as soon as it
# wakes up. On the 2-core dev VM this halved the p99 loop lag under load.
DEFAULT_WORKER_NICENESS = 19


def _init_worker(niceness: int, owner_pid: int) -> None:
    """Worker initializer: die with the bot, then step out of its way."""
    bind_to_owner(owner_pid)
    _lower_priority(niceness)


def _lower_priority(niceness: int) -> None:
    """Worker initializer: nice, and on Linux SCHED_IDLE as well.

    Under EEVDF (Linux 6.6+) a waking nice-0 task does not always preempt a
    nice-19 one at once; it always preempts a SCHED_IDLE one.  On the 2-core
    dev VM this took the burst benchmark's loaded p99 acknowledgement from
    305/327/213 ms to 227/227/215 ms (three paired runs).  Idle cores are
    still used in full: SCHED_IDLE only yields to other work.
    """
    os.nice(niceness)
    if niceness > 0 and hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except OSError as exc:  # containers may forbid it; nice alone still helps
            log.warning("cannot put hashing workers under SCHED_IDLE: %s", exc)


class MiningJob(Protocol):
    """What a session mines on; provided by the caller.

    A job may also have ``max_nonce: int`` (default ``MAX_NONCE``): the last
    nonce tried before the core moves to the next extra nonce; and
    ``refresh_due() -> bool``: asked before each chunk, True moves the session
    to the next extra nonce at once, so the job can hand out a fresher header
    (a newer time, new transactions) as Bitcoin miners refresh their work;
    and ``follows_tip: bool`` (default True): False for a job on a block other
    than the main tip on purpose (a private branch, one side of a network
    split), which a new main tip does not make stale.
    """

    @property
    def chain_id(self) -> int: ...

    @property
    def tip(self) -> bytes:
        """Hash of the block this job builds on."""
        ...

    @property
    def target(self) -> int: ...

    def header_prefix(self, extra_nonce: int) -> bytes:
        """The 76-byte header prefix (header without its nonce) for this extra nonce."""
        ...


class OutcomeKind(enum.Enum):
    FOUND = "found"
    STALE = "stale"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"


@dataclass(frozen=True)
class MiningOutcome:
    """How a session ended.

    ``extra_nonce``, ``nonce``, ``hash`` (raw digest, little-endian) and
    ``header`` (the full 80 bytes) are set only when ``kind`` is FOUND.
    """

    kind: OutcomeKind
    hashes_tried: int
    elapsed: float
    extra_nonce: int | None = None
    nonce: int | None = None
    hash: bytes | None = None
    header: bytes | None = None
    cpu_ns: int = 0
    """Worker CPU time of the chunks merged before the session ended (``MiningSession.cpu_ns``
    keeps counting chunks that return later)."""

    @property
    def hash_hex(self) -> str | None:
        return None if self.hash is None else self.hash[::-1].hex()


@dataclass(frozen=True)
class Progress:
    hashes_tried: int
    rate: int
    """Average hashes per second since the session started."""
    best_hash: str
    """Lowest hash so far, byte-reversed hex as Bitcoin displays hashes."""
    elapsed: float
    extra_nonce: int


@dataclass(frozen=True)
class SessionStats:
    key: Hashable | None
    chain_id: int
    weight: float
    share: float
    """This session's weight over the total weight of live sessions."""
    hashes_tried: int
    extra_nonce: int
    elapsed: float
    cpu_ns: int = 0
    """Worker CPU time spent on this session's chunks so far."""


@dataclass(frozen=True)
class CoreStats:
    workers: int
    sessions: int
    chunks_in_flight: int
    hashes_total: int
    """Every hash the workers completed, including chunks discarded after their session ended."""
    worker_rate: int
    """Smoothed hashes per second of one busy worker."""
    per_session: tuple[SessionStats, ...]
    cpu_ns_total: int = 0
    """Worker CPU time of every completed chunk, as the workers measured it (warm-up excluded)."""
    backend: str = ""
    """Which nonce search runs, as members read it: "native (SHA-NI)", "native (portable C)", "Python"."""
    cpu_percent: int = FULL_PERCENT
    """The share of the machine's CPU the core may use (``HASHING_CPU_PERCENT``)."""


ProgressCallback = Callable[[Progress], None]


class MiningSession:
    """One job being mined; created by ``HashingCore.start_session``."""

    def __init__(
        self,
        core: HashingCore,
        job: MiningJob,
        *,
        session_id: int,
        weight: float,
        on_progress: ProgressCallback | None,
        key: Hashable | None,
        started_at: float,
        deadline_at: float | None,
        pass_value: float,
    ) -> None:
        self.id = session_id
        self.job = job
        self.key = key
        self.weight = weight
        self.chain_id = job.chain_id
        self.tip = job.tip
        # A session on a side branch on purpose (``MiningJob.follows_tip`` False) outlives tip changes.
        self.follows_tip: bool = getattr(job, "follows_tip", True)
        self.target = job.target
        self.max_nonce: int = getattr(job, "max_nonce", MAX_NONCE)
        if not 0 <= self.max_nonce <= MAX_NONCE:
            raise ValueError(f"max_nonce {self.max_nonce} is outside 0..{MAX_NONCE:#x}")
        self.started_at = started_at
        self.deadline_at = deadline_at
        self.hashes_tried = 0
        # Chunks of this session the workers are hashing now: a session past its deadline ends when
        # the last one is back, so the hashes it was given count (and a timeout never reads 0 hashes
        # because another session's chunk happened to come back first).
        self.chunks_in_flight = 0
        # Worker CPU time of this session's chunks, including those that return after
        # it ended: they were hashed for it all the same.
        self.cpu_ns = 0
        self.best_hash_le: bytes | None = None
        self._core = core
        self._on_progress = on_progress
        self._future: asyncio.Future[MiningOutcome] = core.loop.create_future()
        self._pass = pass_value
        # Calibration must measure even while commands hold the core.
        self.ignores_holds = False
        # Where the next chunk starts; chunks in flight carry their own. The
        # session starts as if extra nonce -1 were used up, so its first chunk
        # fetches the prefix for extra nonce 0.
        self._extra_nonce = -1
        self._prefix = b""
        self._next_nonce = self.max_nonce + 1

    @property
    def extra_nonce(self) -> int:
        return max(self._extra_nonce, 0)

    def refresh_due(self) -> bool:
        """Whether the job has fresher work than the current extra nonce's header."""
        due = getattr(self.job, "refresh_due", None)
        return bool(due()) if due is not None else False

    def done(self) -> bool:
        return self._future.done()

    def cancel(self) -> None:
        """End the session as CANCELLED now; a no-op once it has ended."""
        self._core._end(self, OutcomeKind.CANCELLED)

    async def wait(self) -> MiningOutcome:
        """The outcome; cancelling the waiter does not cancel the session."""
        return await asyncio.shield(self._future)


@dataclass(frozen=True)
class _Chunk:
    session: MiningSession
    extra_nonce: int
    prefix: bytes
    start_nonce: int
    count: int
    full_count: int
    """The chunk size of the moment; ``count`` is less at the end of a nonce space."""
    dispatched_at: float


class _CalibrationJob:
    """A job nobody can finish, for measuring the hash rate."""

    chain_id = -1
    tip = b""
    target = 0

    def header_prefix(self, extra_nonce: int) -> bytes:
        return extra_nonce.to_bytes(PREFIX_SIZE, "little")


class HashingCore:
    """A pool of hashing worker processes shared by many mining sessions.

    Use from a single event loop: ``await start()`` (or ``async with``),
    then ``start_session`` / ``notify_tip`` from the loop, ``await close()``.
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        backend: str = DEFAULT_BACKEND,
        clock: Clock = time.monotonic,
        chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
        mp_start_method: str = "forkserver",
        worker_niceness: int = DEFAULT_WORKER_NICENESS,
        cpu_percent: int = FULL_PERCENT,
        cores: int | None = None,
    ) -> None:
        # The cores this process may use (CPU affinity, the container's CPU quota), not the host's count.
        cores = compute_available_cores() if cores is None else cores
        workers = cores if workers is None else workers
        if workers < 1:
            raise ValueError(f"need at least one worker, got {workers}")
        if chunk_seconds <= 0:
            raise ValueError(f"chunk_seconds must be positive, got {chunk_seconds}")
        self._backend_label = get_backend(backend).label
        self._budget = CpuBudget(cpu_percent, cores, workers)
        self._workers = workers
        self._backend = backend
        self._clock = clock
        self._chunk_seconds = chunk_seconds
        self._mp_start_method = mp_start_method
        self._worker_niceness = worker_niceness
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool: ProcessPoolExecutor | None = None
        self._closed = False
        self._session_ids = count()
        self._sessions: dict[int, MiningSession] = {}
        self._by_key: dict[Hashable, MiningSession] = {}
        self._tips: dict[int, bytes] = {}
        self._in_flight: set[asyncio.Future[SearchResult]] = set()
        self._holds = 0
        # Pass value of the session served last: where newcomers join the
        # stride schedule, so they neither wait for nor overtake the others.
        self._virtual_time = 0.0
        self._worker_rate = float(INITIAL_WORKER_RATE)
        self._hashes_total = 0
        self._cpu_ns_total = 0
        # Per chain, CPU ns not yet handed out by ``drain_cpu_ns``.
        self._cpu_ns_undrained: dict[int, int] = {}
        # Per session key, every hash its sessions' chunks completed (``hashes_by_key``); never drained.
        self._hashes_by_key: dict[Hashable, int] = {}
        self._busy_hashes = 0
        self._busy_seconds = 0.0
        # Set whenever a full chunk's rate is recorded (``measure_rate`` waits on it).
        self._rate_recorded = asyncio.Event()

    @property
    def workers(self) -> int:
        return self._workers

    @property
    def backend_label(self) -> str:
        """The nonce search running: "native (SHA-NI)", "native (portable C)" or "Python"."""
        return self._backend_label

    @property
    def budget(self) -> CpuBudget:
        return self._budget

    def _chunk_budget(self) -> CpuBudget | None:
        # None when there is nothing to pause: one less object to pickle per chunk.
        return None if self._budget.unlimited else self._budget

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the hashing core has not been started")
        return self._loop

    async def start(self) -> None:
        if self._pool is not None or self._closed:
            raise RuntimeError("a hashing core can be started only once")
        self._loop = asyncio.get_running_loop()
        # Not fork: forking a process that runs threads (the bot's) can
        # deadlock the child on a lock some thread held.
        context = multiprocessing.get_context(self._mp_start_method)
        pool = ProcessPoolExecutor(
            self._workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(self._worker_niceness, os.getpid()),
        )
        # Starting processes blocks, so it happens in a thread; one tiny chunk
        # per worker imports the backend there before real work arrives.
        try:
            await asyncio.to_thread(self._warm_up, pool)
        except BaseException:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
            raise
        self._pool = pool
        log.info(
            "hashing core started: %d workers, backend %s, CPU budget %d%% of %d cores, ~%d H/s a worker",
            self._workers, self._backend_label, self._budget.percent, self._budget.cores, int(self._worker_rate),
        )
        if self._backend == DEFAULT_BACKEND and BACKEND_NOTE is not None:
            log.warning("hashing core: %s", BACKEND_NOTE)

    def _warm_up(self, pool: ProcessPoolExecutor) -> None:
        """Import the backend in every worker and time a short search there: the first chunks' size."""
        warm_ups = [
            pool.submit(run_chunk, self._backend, bytes(PREFIX_SIZE), 0, 0, WARM_UP_HASHES)
            for _ in range(self._workers)
        ]
        cpu_ns = sorted(future.result().cpu_ns for future in warm_ups)
        fastest = cpu_ns[0]
        if fastest > 0:
            self._worker_rate = float(self._budget.scaled_rate(WARM_UP_HASHES * 1_000_000_000 // fastest))

    async def close(self) -> None:
        """Cancel every session, then stop the workers and wait for them to exit."""
        if self._closed:
            return
        self._closed = True
        for session in list(self._sessions.values()):
            self._end(session, OutcomeKind.CANCELLED)
        pool, self._pool = self._pool, None
        if pool is None:
            return
        await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        log.info("hashing core closed after %d hashes", self._hashes_total)

    async def __aenter__(self) -> HashingCore:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def start_session(
        self,
        job: MiningJob,
        *,
        weight: float = 1,
        on_progress: ProgressCallback | None = None,
        key: Hashable | None = None,
        deadline: float | None = None,
    ) -> MiningSession:
        """Start mining ``job``; ``weight`` is the session's share of hash power.

        ``on_progress`` is called on the loop after each completed chunk.
        ``deadline`` is in seconds from now; past it the session ends as
        TIMEOUT. ``key`` names the session for ``session()`` and ``stats()``;
        at most one live session may hold a key. A job built on a tip other
        than the last one passed to ``notify_tip`` for its chain ends STALE at
        once.
        """
        if self._pool is None or self._closed:
            raise RuntimeError("the hashing core is not running")
        if weight <= 0:
            raise ValueError(f"weight must be positive, got {weight}")
        if key is not None and key in self._by_key:
            raise ValueError(f"a session with key {key!r} is already running")
        now = self._clock()
        session = MiningSession(
            self,
            job,
            session_id=next(self._session_ids),
            weight=weight,
            on_progress=on_progress,
            key=key,
            started_at=now,
            deadline_at=None if deadline is None else now + deadline,
            pass_value=self._virtual_time,
        )
        self._sessions[session.id] = session
        if key is not None:
            self._by_key[key] = session
        current_tip = self._tips.get(session.chain_id)
        if current_tip is not None and current_tip != session.tip and session.follows_tip:
            self._end(session, OutcomeKind.STALE)
        else:
            self._pump()
        return session

    def hold(self) -> None:
        """Interactive work is running: hand out no new chunks until ``release``.

        Chunks in flight finish (within ``chunk_seconds``); workers then stay
        idle, leaving the CPU to the bot's commands.  Holds nest.
        """
        self._holds += 1

    def release(self) -> None:
        if self._holds > 0:
            self._holds -= 1
        if not self._holds:
            self._pump()

    def session(self, key: Hashable) -> MiningSession | None:
        return self._by_key.get(key)

    def notify_tip(self, chain_id: int, new_tip: bytes, *, started_over: bool = False) -> int:
        """Record a chain's new tip; sessions building on another tip end STALE now.

        Their chunks still in flight are discarded when they return. Returns
        how many sessions were ended. Sessions on a side branch on purpose
        (``follows_tip`` False) go on, unless the chain ``started_over`` (reset,
        mode switch or deletion: their branch is gone).
        """
        self._tips[chain_id] = new_tip
        stale = [
            s for s in self._sessions.values()
            if s.chain_id == chain_id and s.tip != new_tip and (s.follows_tip or started_over)
        ]
        for session in stale:
            self._end(session, OutcomeKind.STALE)
        return len(stale)

    async def measure_rate(self, seconds: float = 1.0) -> int:
        """Hashes per second the whole core delivers with every worker busy.

        Runs a throwaway session for ``seconds`` alongside any others and
        divides the hashes of all chunks completed meanwhile by the time they
        took; so it holds while other sessions are mining too. When no full
        chunk is back after ``seconds`` it waits for the first one, at most
        ``MEASURE_PATIENCE_S`` more. It relies on the core's clock and reads 0
        if that clock does not move or no chunk comes back in time.
        """
        hashes_before, seconds_before = self._busy_hashes, self._busy_seconds
        session = self.start_session(_CalibrationJob())
        session.ignores_holds = True
        self._pump()
        try:
            await asyncio.sleep(seconds)
            # On a loaded host (or with a window shorter than a chunk) no full chunk may be back yet,
            # and a rate from no chunk is no measurement: a new chain calibrated from 0 starts at the
            # easiest target.  Wait for the first one, within reason.
            deadline = self.loop.time() + MEASURE_PATIENCE_S
            while self._busy_seconds == seconds_before and (left := deadline - self.loop.time()) > 0:
                self._rate_recorded.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._rate_recorded.wait(), left)
        finally:
            session.cancel()
        busy_seconds = self._busy_seconds - seconds_before
        if busy_seconds <= 0:
            return 0
        return int((self._busy_hashes - hashes_before) / busy_seconds * self._workers)

    def stats(self) -> CoreStats:
        now = self._clock()
        total_weight = sum(s.weight for s in self._sessions.values())
        per_session = tuple(
            SessionStats(
                key=s.key,
                chain_id=s.chain_id,
                weight=s.weight,
                share=s.weight / total_weight,
                hashes_tried=s.hashes_tried,
                extra_nonce=s.extra_nonce,
                elapsed=now - s.started_at,
                cpu_ns=s.cpu_ns,
            )
            for s in self._sessions.values()
        )
        return CoreStats(
            workers=self._workers,
            sessions=len(self._sessions),
            chunks_in_flight=len(self._in_flight),
            hashes_total=self._hashes_total,
            worker_rate=int(self._worker_rate),
            per_session=per_session,
            cpu_ns_total=self._cpu_ns_total,
            backend=self._backend_label,
            cpu_percent=self._budget.percent,
        )

    def drain_cpu_ns(self) -> dict[int, int]:
        """Worker CPU ns per chain id since the last drain, then forget them.

        For attributing proof-of-work energy to chains: it counts every chunk,
        also those that returned after their session ended, and nothing twice.
        The rate calibration's chunks are under chain id -1.
        """
        drained, self._cpu_ns_undrained = self._cpu_ns_undrained, {}
        return drained

    def hashes_by_key(self) -> dict[Hashable, int]:
        """Hashes completed per session key since the core started (a copy), for measuring hash power.

        Counts every chunk of a keyed session, also those that returned after it ended (found, stale,
        cancelled): they were hashed for it all the same, so the difference between two readings is
        the hash power each key got in between. A game reads it to report each side's measured share
        beside the share it set. One integer per key ever used (a key is a chain and an owner).
        """
        return dict(self._hashes_by_key)

    def _chunk_size(self) -> int:
        return max(MIN_CHUNK, min(MAX_CHUNK, int(self._worker_rate * self._chunk_seconds)))

    def _pump(self) -> None:
        """Hand chunks to idle workers, lowest pass first."""
        if self._pool is None:
            return
        now = self._clock()
        for session in list(self._sessions.values()):
            if session.deadline_at is not None and now >= session.deadline_at and not session.chunks_in_flight:
                self._end(session, OutcomeKind.TIMEOUT)
        while len(self._in_flight) < self._workers:
            runnable = [
                s for s in self._sessions.values()
                if (not self._holds or s.ignores_holds) and (s.deadline_at is None or now < s.deadline_at)
            ]
            if not runnable:
                break
            session = min(runnable, key=lambda s: s._pass)
            try:
                chunk = self._next_chunk(session, now)
                future = self.loop.run_in_executor(
                    self._pool,
                    run_chunk,
                    self._backend,
                    chunk.prefix,
                    session.target,
                    chunk.start_nonce,
                    chunk.count,
                    self._chunk_budget(),
                )
            except Exception as exc:  # the job's header_prefix, or a broken pool
                log.exception("cannot hand out a chunk for session %r", session.key)
                self._fail(session, exc)
                continue
            self._virtual_time = session._pass
            session._pass += chunk.count / session.weight
            session.chunks_in_flight += 1
            self._in_flight.add(future)
            future.add_done_callback(partial(self._chunk_done, chunk))

    def _next_chunk(self, session: MiningSession, now: float) -> _Chunk:
        if session._next_nonce > session.max_nonce or (session._extra_nonce >= 0 and session.refresh_due()):
            extra_nonce = session._extra_nonce + 1
            prefix = session.job.header_prefix(extra_nonce)
            if len(prefix) != PREFIX_SIZE:
                raise ValueError(
                    f"header_prefix({extra_nonce}) returned {len(prefix)} bytes, not {PREFIX_SIZE}"
                )
            session._extra_nonce, session._prefix, session._next_nonce = extra_nonce, prefix, 0
        start = session._next_nonce
        full_count = self._chunk_size()
        count = min(full_count, session.max_nonce - start + 1)
        session._next_nonce = start + count
        return _Chunk(session, session._extra_nonce, session._prefix, start, count, full_count, now)

    def _chunk_done(self, chunk: _Chunk, future: asyncio.Future[SearchResult]) -> None:
        self._in_flight.discard(future)
        session = chunk.session
        session.chunks_in_flight -= 1
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:
            if not session.done():
                log.error("a hashing chunk failed: %r", error)
                self._fail(session, error)
            self._pump()
            return
        result = future.result()
        now = self._clock()
        self._record_rate(chunk, result.hashes_tried, now - chunk.dispatched_at)
        self._record_cpu(session, result.cpu_ns)
        if session.key is not None:
            self._hashes_by_key[session.key] = self._hashes_by_key.get(session.key, 0) + result.hashes_tried
        if not session.done():
            self._merge(session, chunk, result, now)
        self._pump()

    def _record_rate(self, chunk: _Chunk, hashes: int, seconds: float) -> None:
        self._hashes_total += hashes
        # Chunks cut short (by the end of a nonce space or by a find) are
        # mostly inter-process overhead; their timing would drag the rate down.
        if 2 * hashes < chunk.full_count or seconds <= 0:
            return
        self._busy_hashes += hashes
        self._busy_seconds += seconds
        self._rate_recorded.set()
        self._worker_rate += RATE_SMOOTHING * (hashes / seconds - self._worker_rate)

    def _record_cpu(self, session: MiningSession, cpu_ns: int) -> None:
        self._cpu_ns_total += cpu_ns
        session.cpu_ns += cpu_ns
        chain_id = session.chain_id
        self._cpu_ns_undrained[chain_id] = self._cpu_ns_undrained.get(chain_id, 0) + cpu_ns

    def _merge(
        self, session: MiningSession, chunk: _Chunk, result: SearchResult, now: float
    ) -> None:
        session.hashes_tried += result.hashes_tried
        best = session.best_hash_le
        # Equal-length big-endian byte strings order like the numbers they encode.
        if best is None or result.best_hash_le[::-1] < best[::-1]:
            best = session.best_hash_le = result.best_hash_le
        nonce, found_hash = result.found_nonce, result.hash_le
        if nonce is not None and found_hash is not None:
            self._end(session, OutcomeKind.FOUND, found=(chunk, nonce, found_hash))
            return
        if session._on_progress is None:
            return
        elapsed = now - session.started_at
        progress = Progress(
            hashes_tried=session.hashes_tried,
            rate=int(session.hashes_tried / elapsed) if elapsed > 0 else 0,
            best_hash=best[::-1].hex(),
            elapsed=elapsed,
            extra_nonce=chunk.extra_nonce,
        )
        try:
            session._on_progress(progress)
        except Exception:
            log.exception("progress callback of session %r failed", session.key)

    def _detach(self, session: MiningSession) -> bool:
        if session.done():
            return False
        del self._sessions[session.id]
        if session.key is not None:
            self._by_key.pop(session.key, None)
        return True

    def _end(
        self,
        session: MiningSession,
        kind: OutcomeKind,
        found: tuple[_Chunk, int, bytes] | None = None,
    ) -> None:
        if not self._detach(session):
            return
        outcome = MiningOutcome(
            kind=kind,
            hashes_tried=session.hashes_tried,
            elapsed=self._clock() - session.started_at,
            cpu_ns=session.cpu_ns,
        )
        if found is not None:
            chunk, nonce, found_hash = found
            outcome = replace(
                outcome,
                extra_nonce=chunk.extra_nonce,
                nonce=nonce,
                hash=found_hash,
                header=chunk.prefix + nonce.to_bytes(4, "little"),
            )
        session._future.set_result(outcome)
        log.debug(
            "session %r ended %s after %d hashes", session.key, kind.name, session.hashes_tried
        )

    def _fail(self, session: MiningSession, error: BaseException) -> None:
        if self._detach(session):
            session._future.set_exception(error)
