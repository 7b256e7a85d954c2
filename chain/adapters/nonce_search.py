"""Nonce search: hash a 76-byte header prefix with a range of nonces.

A backend tries ``prefix76 + nonce.to_bytes(4, "little")`` for consecutive
nonces and stops at the first header whose double SHA-256, read as a
little-endian integer, is at or below the target (Bitcoin's proof of work).

Backends are looked up by name in ``BACKENDS`` so that ``run_chunk`` can be
sent to a worker process as a plain picklable call; a faster backend (a C
extension, say) is one more entry there and nothing else changes.
"""

from __future__ import annotations

import hashlib
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from chain.hashing import fast_sha256

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


DEFAULT_BACKEND = PurePythonBackend.name

BACKENDS: Mapping[str, NonceSearchBackend] = {
    backend.name: backend for backend in (PurePythonBackend(),)
}


def get_backend(name: str) -> NonceSearchBackend:
    try:
        return BACKENDS[name]
    except KeyError:
        raise ValueError(
            f"unknown nonce search backend {name!r}; known: {sorted(BACKENDS)}"
        ) from None


def run_chunk(
    backend_name: str, prefix76: bytes, target: int, start_nonce: int, count: int
) -> SearchResult:
    """One unit of work for a worker process (module-level, so it pickles by reference).

    Measures the worker's own CPU time around the search (not wall time: a
    worker at the lowest priority may wait for a core), for the energy figures.
    """
    backend = get_backend(backend_name)
    started = time.process_time_ns()
    result = backend.search(prefix76, target, start_nonce, count)
    return replace(result, cpu_ns=time.process_time_ns() - started)
