"""Nonce search: hash a 76-byte header prefix with a range of nonces.

A backend tries ``prefix76 + nonce.to_bytes(4, "little")`` for consecutive
nonces and stops at the first header whose double SHA-256, read as a
little-endian integer, is at or below the target (Bitcoin's proof of work).

Backends are looked up by name in ``BACKENDS`` so that ``run_chunk`` can be
sent to a worker process as a plain picklable call.  Three exist:

* ``native-sha``: the C extension ``_noncesearch`` (built by the install from
  ``_noncesearch.c``) on the CPU's SHA extensions, where the CPU has them;
* ``native-portable``: the same extension's portable C compression function;
* ``python``: ``PurePythonBackend``, always there.

A native backend is offered only once it has passed a known-answer self-test
against hashlib (``choose_backends``); ``DEFAULT_BACKEND`` is the fastest
offered, and ``BACKEND_NOTE`` says why a faster one is missing, if one is.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol, cast

from chain.adapters.cpu_budget import CpuBudget
from chain.hashing import fast_sha256

log = logging.getLogger(__name__)

PREFIX_SIZE = 76
MAX_NONCE = 0xFFFFFFFF
HASH_SIZE = 32

_NONCE = struct.Struct("<I")


@dataclass(frozen=True)
class SearchResult:
    """What one search over a nonce range found.

    Hashes are raw double-SHA-256 digests, little-endian as hashlib returns
    them. ``best_hash_le`` is the numerically lowest hash seen (the found hash
    when there is one).
    """

    found_nonce: int | None
    hash_le: bytes | None
    hashes_tried: int
    best_hash_le: bytes
    # CPU time the search took in the process that ran it (``run_chunk`` sets it;
    # backends leave it 0). A measurement, not part of what was found: two
    # searches of the same range are equal whatever they cost.
    cpu_ns: int = field(default=0, compare=False)


class NonceSearchBackend(Protocol):
    name: str
    label: str
    """How the bot names it to members and in its log: "native (SHA-NI)", "Python"."""

    def search(self, prefix76: bytes, target: int, start_nonce: int, count: int) -> SearchResult:
        """Try nonces start_nonce, start_nonce + 1, ... (at most count of them,
        never past MAX_NONCE) and stop at the first that meets the target."""
        ...


_sha256 = fast_sha256


def _nonce_stop(prefix76: bytes, target: int, start_nonce: int, count: int) -> int:
    """Validate a search request; return the exclusive end of its nonce range."""
    if len(prefix76) != PREFIX_SIZE:
        raise ValueError(f"a header prefix has {PREFIX_SIZE} bytes, got {len(prefix76)}")
    if target < 0:
        raise ValueError(f"the target must not be negative, got {target}")
    if not 0 <= start_nonce <= MAX_NONCE:
        raise ValueError(f"start_nonce {start_nonce} is outside 0..{MAX_NONCE:#x}")
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    return min(start_nonce + count, MAX_NONCE + 1)


def naive_search(prefix76: bytes, target: int, start_nonce: int, count: int) -> SearchResult:
    """The straightforward loop: the reference for tests and the benchmark baseline."""
    stop = _nonce_stop(prefix76, target, start_nonce, count)
    best_value = -1
    best_hash = b""
    for nonce in range(start_nonce, stop):
        header = prefix76 + struct.pack("<I", nonce)
        digest = hashlib.sha256(hashlib.sha256(header).digest()).digest()
        value = int.from_bytes(digest, "little")
        if best_value < 0 or value < best_value:
            best_value, best_hash = value, digest
        if value <= target:
            return SearchResult(nonce, digest, nonce - start_nonce + 1, digest)
    return SearchResult(None, None, stop - start_nonce, best_hash)


class PurePythonBackend:
    """The search loop tuned for CPython.

    The first 64-byte block of the header is compressed once (the midstate)
    and the other 12 prefix bytes buffered with it, so each nonce costs one
    context copy, a 4-byte update and the second hash. Almost every hash is
    rejected on its most significant byte alone (``digest[31]``); only hashes
    that could beat the best so far pay for the integer conversion. A hash at
    or below the target is necessarily below every earlier hash (those were
    all above the target), so that single test also catches a find.
    """

    name = "python"
    label = "Python"

    def search(self, prefix76: bytes, target: int, start_nonce: int, count: int) -> SearchResult:
        stop = _nonce_stop(prefix76, target, start_nonce, count)
        sha256 = _sha256
        copy = sha256(prefix76).copy
        pack = _NONCE.pack
        from_bytes = int.from_bytes
        best_value = 1 << (8 * HASH_SIZE)
        best_hash = b""
        best_top = 0xFF
        for nonce in range(start_nonce, stop):
            ctx = copy()
            ctx.update(pack(nonce))
            digest = sha256(ctx.digest()).digest()
            if digest[31] <= best_top:
                value = from_bytes(digest, "little")
                if value < best_value:
                    best_value, best_hash, best_top = value, digest, digest[31]
                    if value <= target:
                        return SearchResult(nonce, digest, nonce - start_nonce + 1, digest)
        return SearchResult(None, None, stop - start_nonce, best_hash)


# The largest target a hash can be compared with: every hash meets it.
_MAX_TARGET = (1 << (8 * HASH_SIZE)) - 1


class NativeModule(Protocol):
    """What the C extension ``chain.adapters._noncesearch`` offers."""

    def search(
        self, prefix76: bytes, target_be: bytes, start_nonce: int, count: int, impl: int, /
    ) -> tuple[int | None, int, bytes]: ...

    def sha_extensions(self) -> bool: ...


# ``impl`` values of ``_noncesearch.search``.
IMPL_SHA = 0
IMPL_PORTABLE = 1


class NativeBackend:
    """The search loop in C (``_noncesearch.c``): the same contract and results as ``PurePythonBackend``.

    The midstate of the header's first 64 bytes is computed once per call, each
    nonce then costs two SHA-256 compressions in C, and the hash is compared with
    the target as 32 big-endian bytes: no Python object per nonce.  The GIL is
    released while it runs.
    """

    def __init__(self, module: NativeModule, impl: int, name: str, label: str) -> None:
        self._module = module
        self._impl = impl
        self.name = name
        self.label = label

    def search(self, prefix76: bytes, target: int, start_nonce: int, count: int) -> SearchResult:
        stop = _nonce_stop(prefix76, target, start_nonce, count)
        target_be = min(target, _MAX_TARGET).to_bytes(HASH_SIZE, "big")
        found, tried, best = self._module.search(
            bytes(prefix76), target_be, start_nonce, stop - start_nonce, self._impl
        )
        return SearchResult(found, best if found is not None else None, tried, best)


# Self-test: Bitcoin's genesis header (Bitcoin Core src/kernel/chainparams.cpp, CreateGenesisBlock)
# found at its nonce, and the lowest hash of a short range matching hashlib's.
_GENESIS_HEADER = bytes.fromhex(
    "0100000000000000000000000000000000000000000000000000000000000000"
    "000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa"
    "4b1e5e4a29ab5f49ffff001d1dac2b7c"
)
_GENESIS_TARGET = 0xFFFF << 208
_SELF_TEST_RANGE = 64


def self_test(backend: NonceSearchBackend) -> str | None:
    """None when ``backend`` finds what hashlib finds on known headers; otherwise what went wrong."""
    genesis_nonce = int.from_bytes(_GENESIS_HEADER[PREFIX_SIZE:], "little")
    expected_hash = hashlib.sha256(hashlib.sha256(_GENESIS_HEADER).digest()).digest()
    try:
        found = backend.search(_GENESIS_HEADER[:PREFIX_SIZE], _GENESIS_TARGET, genesis_nonce - 5, 10)
        prefix = (hashlib.sha512(b"nonce search self-test").digest() * 2)[:PREFIX_SIZE]
        searched = backend.search(prefix, 0, 0xFFFFFFF0 - _SELF_TEST_RANGE, _SELF_TEST_RANGE)
    except Exception as exc:  # noqa: BLE001 - any failure of a native backend means: do not use it
        return f"it failed: {exc!r}"
    if (found.found_nonce, found.hash_le, found.hashes_tried) != (genesis_nonce, expected_hash, 6):
        return "it does not find Bitcoin's genesis block at its nonce"
    if searched != naive_search(prefix, 0, 0xFFFFFFF0 - _SELF_TEST_RANGE, _SELF_TEST_RANGE):
        return "its hashes differ from hashlib's"
    return None


def _import_native() -> NativeModule:
    return cast(NativeModule, importlib.import_module("chain.adapters._noncesearch"))


@dataclass(frozen=True)
class BackendChoice:
    backends: Mapping[str, NonceSearchBackend]
    default: str
    """The fastest backend offered."""
    note: str | None
    """Why a native backend is missing (None: none is)."""


def choose_backends(import_native: Callable[[], NativeModule] = _import_native) -> BackendChoice:
    """The backends this machine can run, fastest first; a native one only once it passed ``self_test``."""
    python = PurePythonBackend()
    offered: list[NonceSearchBackend] = []
    notes: list[str] = []
    try:
        module = import_native()
    except ImportError as exc:
        notes.append(f"the native nonce search is not built ({exc}); run scripts/setup.sh with a C compiler")
    else:
        candidates = [NativeBackend(module, IMPL_PORTABLE, "native-portable", "native (portable C)")]
        if module.sha_extensions():
            candidates.insert(0, NativeBackend(module, IMPL_SHA, "native-sha", "native (SHA-NI)"))
        for candidate in candidates:
            problem = self_test(candidate)
            if problem is None:
                offered.append(candidate)
            else:
                notes.append(f"{candidate.label} is not used: {problem}")
    offered.append(python)
    return BackendChoice(
        backends={backend.name: backend for backend in offered},
        default=offered[0].name,
        note="; ".join(notes) or None,
    )


_CHOICE = choose_backends()
BACKENDS: Mapping[str, NonceSearchBackend] = _CHOICE.backends
DEFAULT_BACKEND = _CHOICE.default
BACKEND_NOTE = _CHOICE.note


def get_backend(name: str) -> NonceSearchBackend:
    try:
        return BACKENDS[name]
    except KeyError:
        raise ValueError(
            f"unknown nonce search backend {name!r}; known: {sorted(BACKENDS)}"
        ) from None


def run_chunk(
    backend_name: str,
    prefix76: bytes,
    target: int,
    start_nonce: int,
    count: int,
    budget: CpuBudget | None = None,
) -> SearchResult:
    """One unit of work for a worker process (module-level, so it pickles by reference).

    Measures the worker's own CPU time around the search (not wall time: a
    worker at the lowest priority may wait for a core), for the energy figures.
    Under a CPU ``budget`` it then sleeps in proportion to that CPU time before
    returning, so the chunk's wall time (which the core's rate comes from)
    includes the pause: the rate the core measures is the rate under the cap.
    """
    backend = get_backend(backend_name)
    started = time.process_time_ns()
    result = backend.search(prefix76, target, start_nonce, count)
    cpu_ns = time.process_time_ns() - started
    if budget is not None:
        pause_ns = budget.pause_ns(cpu_ns)
        if pause_ns > 0:
            time.sleep(pause_ns / 1e9)
    return replace(result, cpu_ns=cpu_ns)
