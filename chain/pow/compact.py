"""Bitcoin's compact ``bits`` encoding of 256-bit targets.

Bit-exact with Bitcoin Core's ``arith_uint256::SetCompact`` and ``GetCompact``
(src/arith_uint256.cpp): a one-byte size and a 23-bit mantissa with a sign bit,
including the quirks (negative zero, truncation above 256 bits, overflow).
"""

from __future__ import annotations

from dataclasses import dataclass

from chain.errors import (
    NegativeTargetError,
    TargetAbovePowLimitError,
    TargetOverflowError,
    ZeroTargetError,
)

UINT256_MASK = (1 << 256) - 1
COMPACT_SIGN_BIT = 0x00800000
COMPACT_MANTISSA_MASK = 0x007FFFFF


@dataclass(frozen=True, slots=True)
class DecodedCompact:
    value: int
    negative: bool
    overflow: bool


def decode_compact(bits: int) -> DecodedCompact:
    """``SetCompact``: the value (truncated to 256 bits, as Core does) and flags."""
    if not 0 <= bits <= 0xFFFFFFFF:
        raise TargetOverflowError(f"bits {bits!r} is not a 32-bit unsigned integer")
    size = bits >> 24
    word = bits & COMPACT_MANTISSA_MASK
    if size <= 3:
        # Core shifts the mantissa in place, so a mantissa shifted to zero is
        # neither negative nor overflowing.
        word >>= 8 * (3 - size)
        value = word
    else:
        value = (word << (8 * (size - 3))) & UINT256_MASK
    negative = word != 0 and (bits & COMPACT_SIGN_BIT) != 0
    overflow = word != 0 and (
        size > 34 or (word > 0xFF and size > 33) or (word > 0xFFFF and size > 32)
    )
    return DecodedCompact(value=value, negative=negative, overflow=overflow)


def encode_compact(value: int, negative: bool = False) -> int:
    """``GetCompact``: the shortest compact form, rounding the mantissa down."""
    if not 0 <= value <= UINT256_MASK:
        raise TargetOverflowError(f"value {value:#x} does not fit in 256 bits")
    size = (value.bit_length() + 7) // 8
    compact = ((value << (8 * (3 - size))) if size <= 3 else (value >> (8 * (size - 3)))) & 0xFFFFFFFF
    # A set sign bit would flip the meaning, so move a byte into the size.
    if compact & COMPACT_SIGN_BIT:
        compact >>= 8
        size += 1
    compact |= size << 24
    if negative and compact & COMPACT_MANTISSA_MASK:
        compact |= COMPACT_SIGN_BIT
    return compact


def compute_target(bits: int, pow_limit: int) -> int:
    """Core's ``DeriveTarget``: the target ``bits`` stands for, or a typed error."""
    decoded = decode_compact(bits)
    if decoded.negative:
        raise NegativeTargetError(f"bits {bits:#010x} encode a negative target")
    if decoded.overflow:
        raise TargetOverflowError(f"bits {bits:#010x} encode a target above 2^256")
    if decoded.value == 0:
        raise ZeroTargetError(f"bits {bits:#010x} encode a zero target")
    if decoded.value > pow_limit:
        raise TargetAbovePowLimitError(
            f"bits {bits:#010x} encode a target above this chain's proof-of-work limit"
        )
    return decoded.value


def compute_block_work(target: int) -> int:
    """Core's ``GetBlockProof``: expected hashes to meet ``target``, 2^256/(target+1)."""
    if not 0 <= target <= UINT256_MASK:
        raise TargetOverflowError(f"target {target:#x} does not fit in 256 bits")
    return ((~target & UINT256_MASK) // (target + 1)) + 1


def compute_target_for_work(expected_hashes: int, pow_limit: int) -> int:
    """The easiest target whose expected work is about ``expected_hashes``."""
    if expected_hashes < 1:
        expected_hashes = 1
    target = ((1 << 256) // expected_hashes) - 1
    return max(1, min(target, pow_limit))
