"""The 80-byte block header, byte for byte Bitcoin's.

Layout (all little-endian): version int32, previous block hash 32 bytes,
merkle root 32 bytes, time uint32, bits uint32, nonce uint32.  Hashes are kept
in internal byte order and shown reversed (see ``chain.hashing``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

from chain.errors import EncodingError
from chain.hashing import HASH_SIZE_BYTES, hash_to_display, sha256d

HEADER_SIZE_BYTES = 80
HEADER_PREFIX_SIZE_BYTES = 76  # everything but the nonce: what the miner hashes over
_LAYOUT = struct.Struct("<i32s32sIII")
_UINT32_MAX = 0xFFFFFFFF
_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1


@dataclass(frozen=True, slots=True)
class BlockHeader:
    version: int
    prev_hash: bytes
    merkle_root: bytes
    time: int
    bits: int
    nonce: int

    def __post_init__(self) -> None:
        if not _INT32_MIN <= self.version <= _INT32_MAX:
            raise EncodingError(f"header version {self.version} is not an int32")
        for name in ("prev_hash", "merkle_root"):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != HASH_SIZE_BYTES:
                raise EncodingError(f"header {name} must be 32 bytes")
        for name in ("time", "bits", "nonce"):
            value = getattr(self, name)
            if not 0 <= value <= _UINT32_MAX:
                raise EncodingError(f"header {name} {value} is not a uint32")

    def serialize(self) -> bytes:
        return _LAYOUT.pack(
            self.version, self.prev_hash, self.merkle_root, self.time, self.bits, self.nonce
        )

    def prefix(self) -> bytes:
        """The first 76 bytes: the part a nonce search keeps fixed."""
        return self.serialize()[:HEADER_PREFIX_SIZE_BYTES]

    @classmethod
    def deserialize(cls, data: bytes) -> BlockHeader:
        if len(data) != HEADER_SIZE_BYTES:
            raise EncodingError(f"a header has 80 bytes, got {len(data)}")
        return cls(*_LAYOUT.unpack(data))

    def hash(self) -> bytes:
        return sha256d(self.serialize())

    def hash_hex(self) -> str:
        return hash_to_display(self.hash())

    def with_nonce(self, nonce: int) -> BlockHeader:
        return replace(self, nonce=nonce)
