"""Hash functions used by consensus, and Bitcoin's display byte order."""

from __future__ import annotations

import hashlib

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
