"""Signed, expiring, revocable links to a server's classroom dashboard: pure, no I/O.

A link carries its claims in the clear and a MAC over them:

    /d/<chain id>.<expires at, unix s>.<generation>.<HMAC-SHA256, base64url without padding>

The MAC key is derived from the master key with HKDF-SHA256 under its own label, so the key that
signs links is never the key that seals wallets, and a leaked link reveals nothing of either.
``generation`` is the server's link generation when the link was made: ``/playground dashboard
revoke:True`` bumps it (``bot/storage.py``), and every link made before then is refused.

Parsing is strict (digits without sign or leading zero, the exact MAC length and alphabet), so a
changed character anywhere either breaks the format or the MAC: both are refused alike.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# HKDF's "info": names what the derived key is for, so no other use of the master key can collide.
LINK_KEY_LABEL = b"consensus-playground/dashboard-link/v1"
LINK_KEY_BYTES = 32
# What the MAC covers: a version prefix, so a future format can never be confused with this one.
_MAC_PREFIX = b"dashboard-link-v1"
_MAC_CHARS = 43  # 32 bytes in base64url without padding
_TOKEN = re.compile(r"([1-9][0-9]{0,19})\.([1-9][0-9]{0,11})\.(0|[1-9][0-9]{0,8})\.([A-Za-z0-9_-]{43})")
MAX_GENERATION = 999_999_999


class LinkRefusedError(Exception):
    """A link that opens nothing; ``reason`` is for the log (the viewer gets a bare 403)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class LinkClaims:
    chain_id: int
    expires_at: int
    generation: int


def derive_link_key(master_key: bytes) -> bytes:
    """The key links are signed with: HKDF-SHA256 of the master key under ``LINK_KEY_LABEL``."""
    return HKDF(algorithm=hashes.SHA256(), length=LINK_KEY_BYTES, salt=None, info=LINK_KEY_LABEL).derive(master_key)


def _mac(key: bytes, claims: LinkClaims) -> str:
    message = b":".join(
        (_MAC_PREFIX, str(claims.chain_id).encode(), str(claims.expires_at).encode(), str(claims.generation).encode())
    )
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign_link(key: bytes, claims: LinkClaims) -> str:
    """The token for ``claims`` (the part of the link after ``/d/``)."""
    if claims.chain_id <= 0 or claims.expires_at <= 0 or not 0 <= claims.generation <= MAX_GENERATION:
        raise ValueError("a link needs a server id, an expiry and a generation in range")
    return f"{claims.chain_id}.{claims.expires_at}.{claims.generation}.{_mac(key, claims)}"


def read_link(key: bytes, token: str, now: int) -> LinkClaims:
    """The claims of a genuine, unexpired token; ``LinkRefusedError`` otherwise.

    The generation is not checked here (it is the server's current one, read from the database):
    the caller compares ``claims.generation`` with it.
    """
    match = _TOKEN.fullmatch(token)
    if match is None:
        raise LinkRefusedError("malformed link")
    claims = LinkClaims(int(match[1]), int(match[2]), int(match[3]))
    # Constant time, so the MAC cannot be guessed a character at a time from response times.
    if not hmac.compare_digest(_mac(key, claims).encode(), match[4].encode()):
        raise LinkRefusedError("bad signature")
    if now >= claims.expires_at:
        raise LinkRefusedError("expired")
    return claims
