"""A block: header, coinbase, and up to ``max_block_transfers`` transfers.

Version 1 (every proof-of-work block before proof of stake, byte for byte as
before): the 80-byte header, the coinbase, a u16 transfer count and the
transfers.  The header's merkle root commits to the coinbase and transfers.

Version 2 appends a seal flag (u8: 0 for a proof-of-work block, 1 for a
proof-of-stake one) and, for a proof-of-stake block, its seal: slot u64,
proposer index u32, and the proposer's Ed25519 signature (64 B) over the
``chain.pos.attestation.ProposalHeader`` (chain id, slot, proposer key, parent =
previous hash, body root = merkle root).  Then the block operations
(chain/pos/operations.py), whose leaves the merkle root also commits to after the
transfers.  The seal is outside the header hash, as a beacon block's signature
is outside its root; the slot is bound to the header through its time.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

from chain.errors import EncodingError
from chain.keys import SIGNATURE_SIZE_BYTES
from chain.ledger.transaction import (
    Coinbase,
    Transfer,
    deserialize_coinbase,
    deserialize_transfer,
)
from chain.pos.operations import Operations, check_operation_caps, deserialize_operations
from chain.pow.header import HEADER_SIZE_BYTES, BlockHeader
from chain.pow.merkle import compute_merkle_root

_COUNT = struct.Struct("<H")
_SEAL = struct.Struct("<QI")
BLOCK_VERSION = 1
BLOCK_VERSION_OPERATIONS = 2
SEAL_SIZE_BYTES = _SEAL.size + SIGNATURE_SIZE_BYTES


@dataclass(frozen=True, slots=True)
class PosSeal:
    """What makes a version-2 block a proof-of-stake block: its slot, proposer and signature."""

    slot: int
    proposer_index: int
    signature: bytes = b""

    def serialize(self) -> bytes:
        if len(self.signature) != SIGNATURE_SIZE_BYTES:
            raise EncodingError("a proof-of-stake block must be signed by its proposer")
        try:
            return _SEAL.pack(self.slot, self.proposer_index) + self.signature
        except struct.error as exc:
            raise EncodingError(f"seal slot or proposer index does not fit its field: {exc}") from exc


def _leaves(coinbase: Coinbase, transfers: tuple[Transfer, ...], operations: Operations | None) -> list[bytes]:
    leaves = [coinbase.txid(), *(tx.txid() for tx in transfers)]
    if operations is not None:
        leaves.extend(operations.leaf_ids())
    return leaves


@dataclass(frozen=True, slots=True)
class Block:
    header: BlockHeader
    coinbase: Coinbase
    transfers: tuple[Transfer, ...] = ()
    # Version 2 only: None in a version-1 block.
    operations: Operations | None = None
    # Version 2 proof-of-stake blocks only.
    seal: PosSeal | None = None

    def __post_init__(self) -> None:
        if self.header.version == BLOCK_VERSION_OPERATIONS:
            if self.operations is None:
                raise EncodingError("a version-2 block carries an operations section (possibly empty)")
        elif self.operations is not None or self.seal is not None:
            raise EncodingError(f"a version-{self.header.version} block carries no operations and no seal")

    @property
    def height(self) -> int:
        return self.coinbase.height

    @property
    def is_proof_of_stake(self) -> bool:
        return self.seal is not None

    def hash(self) -> bytes:
        return self.header.hash()

    def txids(self) -> list[bytes]:
        return [self.coinbase.txid(), *(tx.txid() for tx in self.transfers)]

    def leaf_ids(self) -> list[bytes]:
        """Every merkle leaf: transactions, then operations (version 2)."""
        return _leaves(self.coinbase, self.transfers, self.operations)

    def compute_merkle_root(self) -> bytes:
        return compute_merkle_root(self.leaf_ids())

    def serialize(self) -> bytes:
        parts = [self.header.serialize(), self.coinbase.serialize(), _COUNT.pack(len(self.transfers))]
        parts.extend(tx.serialize() for tx in self.transfers)
        if self.header.version == BLOCK_VERSION_OPERATIONS:
            if self.seal is None:
                parts.append(b"\x00")
            else:
                parts.append(b"\x01" + self.seal.serialize())
            parts.append((self.operations or Operations()).serialize())
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
        operations = seal = None
        if header.version == BLOCK_VERSION_OPERATIONS:
            if len(data) < offset + 1:
                raise EncodingError("truncated block: missing the seal flag")
            flag = data[offset]
            offset += 1
            if flag == 1:
                if len(data) < offset + SEAL_SIZE_BYTES:
                    raise EncodingError("truncated block: proof-of-stake seal ends early")
                slot, proposer = _SEAL.unpack_from(data, offset)
                seal = PosSeal(slot, proposer, data[offset + _SEAL.size : offset + SEAL_SIZE_BYTES])
                offset += SEAL_SIZE_BYTES
            elif flag != 0:
                raise EncodingError(f"seal flag must be 0 (proof of work) or 1 (proof of stake), got {flag}")
            operations, offset = deserialize_operations(data, offset)
        if offset != len(data):
            raise EncodingError(f"block has {len(data) - offset} trailing bytes")
        return cls(header, coinbase, tuple(transfers), operations, seal)


@dataclass(frozen=True, slots=True)
class BlockTemplate:
    """A block waiting for its nonce: what a miner hashes over.

    Rolling the extra nonce changes the coinbase, hence the merkle root, hence
    the header prefix: a fresh 2^32 nonce space.
    """

    header: BlockHeader
    coinbase: Coinbase
    transfers: tuple[Transfer, ...]
    # Version-2 templates only.
    operations: Operations | None = None

    @classmethod
    def build(
        cls,
        version: int,
        prev_hash: bytes,
        time: int,
        bits: int,
        coinbase: Coinbase,
        transfers: tuple[Transfer, ...],
        operations: Operations | None = None,
    ) -> BlockTemplate:
        if operations is not None:
            check_operation_caps(operations)
        root = compute_merkle_root(_leaves(coinbase, transfers, operations))
        header = BlockHeader(version, prev_hash, root, time, bits, 0)
        return cls(header, coinbase, transfers, operations)

    def with_extra_nonce(self, extra_nonce: int) -> BlockTemplate:
        coinbase = self.coinbase.with_extra_nonce(extra_nonce)
        root = compute_merkle_root(_leaves(coinbase, self.transfers, self.operations))
        return replace(self, header=replace(self.header, merkle_root=root), coinbase=coinbase)

    def with_time(self, time: int) -> BlockTemplate:
        """The same block dated ``time`` (BIP 23's time rolling: the body and merkle root stay)."""
        return replace(self, header=replace(self.header, time=time))

    def solve(self, extra_nonce: int, nonce: int) -> Block:
        template = self if extra_nonce == self.coinbase.extra_nonce else self.with_extra_nonce(extra_nonce)
        return Block(template.header.with_nonce(nonce), template.coinbase, template.transfers, template.operations)
