"""A block: header, coinbase, and up to ``max_block_transfers`` transfers.

Serialized as the 80-byte header, the coinbase, a u16 transfer count and the
transfers.  The header's merkle root commits to the coinbase and transfers.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

from chain.errors import EncodingError
from chain.header import BlockHeader, HEADER_SIZE_BYTES
from chain.merkle import compute_merkle_root
from chain.transaction import Coinbase, Transfer, deserialize_coinbase, deserialize_transfer

_COUNT = struct.Struct("<H")
BLOCK_VERSION = 1


@dataclass(frozen=True, slots=True)
class Block:
    header: BlockHeader
    coinbase: Coinbase
    transfers: tuple[Transfer, ...] = ()

    @property
    def height(self) -> int:
        return self.coinbase.height

    def hash(self) -> bytes:
        return self.header.hash()

    def txids(self) -> list[bytes]:
        return [self.coinbase.txid(), *(tx.txid() for tx in self.transfers)]

    def compute_merkle_root(self) -> bytes:
        return compute_merkle_root(self.txids())

    def serialize(self) -> bytes:
        parts = [self.header.serialize(), self.coinbase.serialize(), _COUNT.pack(len(self.transfers))]
        parts.extend(tx.serialize() for tx in self.transfers)
        return b"".join(parts)

    @classmethod
    def deserialize(cls, data: bytes) -> Block:
        header = BlockHeader.deserialize(data[:HEADER_SIZE_BYTES])
        coinbase, offset = deserialize_coinbase(data, HEADER_SIZE_BYTES)
        if len(data) < offset + _COUNT.size:
            raise EncodingError("truncated block: missing transfer count")
        (count,) = _COUNT.unpack_from(data, offset)
        offset += _COUNT.size
        transfers = []
        for _ in range(count):
            tx, offset = deserialize_transfer(data, offset)
            transfers.append(tx)
        if offset != len(data):
            raise EncodingError(f"block has {len(data) - offset} trailing bytes")
        return cls(header, coinbase, tuple(transfers))


@dataclass(frozen=True, slots=True)
class BlockTemplate:
    """A block waiting for its nonce: what a miner hashes over.

    Rolling the extra nonce changes the coinbase, hence the merkle root, hence
    the header prefix: a fresh 2^32 nonce space.
    """

    header: BlockHeader
    coinbase: Coinbase
    transfers: tuple[Transfer, ...]

    @classmethod
    def build(
        cls, version: int, prev_hash: bytes, time: int, bits: int, coinbase: Coinbase, transfers: tuple[Transfer, ...]
    ) -> BlockTemplate:
        root = compute_merkle_root([coinbase.txid(), *(tx.txid() for tx in transfers)])
        header = BlockHeader(version, prev_hash, root, time, bits, 0)
        return cls(header, coinbase, transfers)

    def with_extra_nonce(self, extra_nonce: int) -> BlockTemplate:
        coinbase = self.coinbase.with_extra_nonce(extra_nonce)
        root = compute_merkle_root([coinbase.txid(), *(tx.txid() for tx in self.transfers)])
        return replace(self, header=replace(self.header, merkle_root=root), coinbase=coinbase)

    def solve(self, extra_nonce: int, nonce: int) -> Block:
        template = self if extra_nonce == self.coinbase.extra_nonce else self.with_extra_nonce(extra_nonce)
        return Block(template.header.with_nonce(nonce), template.coinbase, template.transfers)
