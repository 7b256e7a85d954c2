"""Hash functions used by consensus, and Bitcoin's display byte order."""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable
from typing import Protocol, cast

from chain.errors import EncodingError

HASH_SIZE_BYTES = 32
ZERO_HASH = bytes(HASH_SIZE_BYTES)


def sha256d(data: bytes) -> bytes:
    """Bitcoin's double SHA-256; the digest is in internal (little-endian) order."""
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def hash_to_display(h: bytes) -> str:
    """Hashes are shown byte-reversed, as Bitcoin shows them."""
    return h[::-1].hex()


def hash_from_display(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError as exc:
        raise EncodingError(f"{text!r} is not a hex hash") from exc
    if len(raw) != HASH_SIZE_BYTES:
        raise EncodingError(f"a hash has 32 bytes (64 hex digits), got {len(raw)}")
    return raw[::-1]


def hash_to_int(h: bytes) -> int:
    """The hash as the 256-bit number proof of work compares with the target."""
    return int.from_bytes(h, "little")


class Sha256Hash(Protocol):
    """What a SHA-256 object offers (hashlib's and CPython's bundled one alike)."""

    def copy(self) -> Sha256Hash: ...

    def update(self, data: bytes, /) -> None: ...

    def digest(self) -> bytes: ...


def _fastest_sha256() -> Callable[[bytes], Sha256Hash]:
    # CPython's bundled SHA-256 (`_sha2` from 3.12, `_sha256` before) costs
    # much less per call than hashlib's OpenSSL wrapper for short inputs (the
    # nonce search and proposer shuffling hash millions of them). The
    # known-answer check guards against an odd build.
    expected = hashlib.sha256(b"abc").digest()
    for module_name in ("_sha2", "_sha256"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if module.sha256(b"abc").digest() == expected:
            return cast(Callable[[bytes], Sha256Hash], module.sha256)
    return hashlib.sha256


# A SHA-256 constructor (same interface as hashlib.sha256), fastest available.
fast_sha256 = _fastest_sha256()
