"""Transactions: the coinbase that pays a miner, and signed transfers.

Byte layouts (little-endian, fixed width so they are easy to audit):

- coinbase: type 0x00, height u32, miner public key 32 B, amount u64,
  extra nonce u64, message length u8, message (at most 100 B);
- transfer: type 0x01, sender 32 B, recipient 32 B, amount u64, fee u64,
  nonce u64, signature 64 B.

A transfer is signed over a domain tag, the chain id and its unsigned bytes,
so a signature from one server's chain cannot be replayed on another's.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

from chain.errors import EncodingError, InvalidAmountError, InvalidFeeError, SelfTransferError
from chain.hashing import sha256d
from chain.keys import PUBLIC_KEY_SIZE_BYTES, SIGNATURE_SIZE_BYTES, SigningKey, verify_signature
from chain.params import ChainParams

TX_TYPE_COINBASE = 0x00
TX_TYPE_TRANSFER = 0x01
MAX_COINBASE_MESSAGE_BYTES = 100
UINT64_MAX = (1 << 64) - 1
TRANSFER_SIGNING_DOMAIN = b"consensus-playground/transfer/v1"

_COINBASE_FIXED = struct.Struct("<BI32sQQB")
_TRANSFER_UNSIGNED = struct.Struct("<B32s32sQQQ")
_CHAIN_ID = struct.Struct("<Q")
TRANSFER_SIZE_BYTES = _TRANSFER_UNSIGNED.size + SIGNATURE_SIZE_BYTES


def _check_uint(name: str, value: int, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise EncodingError(f"{name} {value!r} does not fit its field")


@dataclass(frozen=True, slots=True)
class Coinbase:
    height: int
    miner: bytes
    amount: int
    extra_nonce: int = 0
    message: bytes = b""

    def __post_init__(self) -> None:
        _check_uint("coinbase height", self.height, 0xFFFFFFFF)
        _check_uint("coinbase amount", self.amount, UINT64_MAX)
        _check_uint("coinbase extra nonce", self.extra_nonce, UINT64_MAX)
        if len(self.miner) != PUBLIC_KEY_SIZE_BYTES:
            raise EncodingError("coinbase miner must be a 32-byte public key")
        if len(self.message) > MAX_COINBASE_MESSAGE_BYTES:
            raise EncodingError(f"coinbase message is limited to {MAX_COINBASE_MESSAGE_BYTES} bytes")

    def serialize(self) -> bytes:
        return (
            _COINBASE_FIXED.pack(
                TX_TYPE_COINBASE, self.height, self.miner, self.amount, self.extra_nonce, len(self.message)
            )
            + self.message
        )

    def txid(self) -> bytes:
        return sha256d(self.serialize())

    def with_extra_nonce(self, extra_nonce: int) -> Coinbase:
        return replace(self, extra_nonce=extra_nonce)


@dataclass(frozen=True, slots=True)
class Transfer:
    sender: bytes
    recipient: bytes
    amount: int
    fee: int
    nonce: int
    signature: bytes = b""

    def unsigned_bytes(self) -> bytes:
        for name in ("amount", "fee", "nonce"):
            _check_uint(f"transfer {name}", getattr(self, name), UINT64_MAX)
        if len(self.sender) != PUBLIC_KEY_SIZE_BYTES or len(self.recipient) != PUBLIC_KEY_SIZE_BYTES:
            raise EncodingError("transfer sender and recipient must be 32-byte public keys")
        return _TRANSFER_UNSIGNED.pack(
            TX_TYPE_TRANSFER, self.sender, self.recipient, self.amount, self.fee, self.nonce
        )

    def signing_message(self, chain_id: int) -> bytes:
        _check_uint("chain id", chain_id, UINT64_MAX)
        return TRANSFER_SIGNING_DOMAIN + _CHAIN_ID.pack(chain_id) + self.unsigned_bytes()

    def serialize(self) -> bytes:
        if len(self.signature) != SIGNATURE_SIZE_BYTES:
            raise EncodingError("transfer is not signed")
        return self.unsigned_bytes() + self.signature

    def txid(self) -> bytes:
        return sha256d(self.serialize())

    def signed(self, key: SigningKey, chain_id: int) -> Transfer:
        return replace(self, signature=key.sign(self.signing_message(chain_id)))


def make_transfer(
    key: SigningKey, recipient: bytes, amount: int, fee: int, nonce: int, chain_id: int
) -> Transfer:
    return Transfer(key.public_key, recipient, amount, fee, nonce).signed(key, chain_id)


def check_transfer_fields(tx: Transfer, params: ChainParams) -> None:
    """Context-free checks, each with its own error: amounts, fee, parties."""
    if isinstance(tx.amount, bool) or not isinstance(tx.amount, int) or tx.amount <= 0:
        raise InvalidAmountError(f"amount must be a positive whole number of points, got {tx.amount!r}")
    if tx.amount > params.max_amount_points:
        raise InvalidAmountError(
            f"amount {tx.amount} is beyond the supported maximum of {params.max_amount_points}"
        )
    if isinstance(tx.fee, bool) or not isinstance(tx.fee, int) or tx.fee < 0:
        raise InvalidFeeError(f"fee must be zero or more points, got {tx.fee!r}")
    if tx.fee > params.max_amount_points or tx.amount + tx.fee > params.max_amount_points:
        raise InvalidFeeError(
            f"amount plus fee is beyond the supported maximum of {params.max_amount_points}"
        )
    if not isinstance(tx.nonce, int) or not 0 <= tx.nonce <= UINT64_MAX:
        raise EncodingError(f"nonce {tx.nonce!r} does not fit in 64 bits")
    if tx.sender == tx.recipient:
        raise SelfTransferError("sender and recipient are the same account")
    tx.unsigned_bytes()  # raises EncodingError for malformed keys


def check_transfer_signature(tx: Transfer, chain_id: int) -> None:
    verify_signature(tx.sender, tx.signing_message(chain_id), tx.signature)


def deserialize_coinbase(data: bytes, offset: int = 0) -> tuple[Coinbase, int]:
    end = offset + _COINBASE_FIXED.size
    if len(data) < end:
        raise EncodingError("truncated coinbase")
    tx_type, height, miner, amount, extra, msg_len = _COINBASE_FIXED.unpack_from(data, offset)
    if tx_type != TX_TYPE_COINBASE:
        raise EncodingError(f"expected a coinbase (type 0), got type {tx_type}")
    if len(data) < end + msg_len:
        raise EncodingError("truncated coinbase message")
    return Coinbase(height, miner, amount, extra, data[end : end + msg_len]), end + msg_len


def deserialize_transfer(data: bytes, offset: int = 0) -> tuple[Transfer, int]:
    end = offset + TRANSFER_SIZE_BYTES
    if len(data) < end:
        raise EncodingError("truncated transfer")
    tx_type, sender, recipient, amount, fee, nonce = _TRANSFER_UNSIGNED.unpack_from(data, offset)
    if tx_type != TX_TYPE_TRANSFER:
        raise EncodingError(f"expected a transfer (type 1), got type {tx_type}")
    signature = data[offset + _TRANSFER_UNSIGNED.size : end]
    return Transfer(sender, recipient, amount, fee, nonce, signature), end
