"""Compact bits, bit-exact with Bitcoin Core's SetCompact/GetCompact and GetBlockProof."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain.errors import NegativeTargetError, TargetAbovePowLimitError, TargetOverflowError, ZeroTargetError
from chain.params import BITCOIN_POW_LIMIT
from chain.pow.compact import compute_block_work, compute_target, decode_compact, encode_compact
from tests.vectors import COMPACT_CASES, COMPACT_OVERFLOW


@pytest.mark.parametrize(
    "bits,value,negative,overflow,reencoded", COMPACT_CASES, ids=lambda v: f"{v:#010x}" if isinstance(v, int) else None
)
def test_core_set_compact_get_compact(bits, value, negative, overflow, reencoded):
    decoded = decode_compact(bits)
    assert (decoded.value, decoded.negative, decoded.overflow) == (value, negative, overflow)
    assert encode_compact(decoded.value, decoded.negative) == reencoded


@pytest.mark.parametrize("bits", COMPACT_OVERFLOW)
def test_core_overflow_case(bits):
    decoded = decode_compact(bits)
    assert decoded.overflow and not decoded.negative


def test_genesis_bits_decode_to_mainnet_limit_rounded():
    assert decode_compact(0x1D00FFFF).value == 0xFFFF << 208
    assert encode_compact(BITCOIN_POW_LIMIT) == 0x1D00FFFF


def test_block_work_of_genesis_difficulty():
    # Bitcoin Core's GetBlockProof for 0x1d00ffff: 0x100010001 hashes (4295032833).
    assert compute_block_work(decode_compact(0x1D00FFFF).value) == 4295032833


@given(st.integers(min_value=1, max_value=(1 << 256) - 1))
def test_encode_then_decode_rounds_down_by_less_than_the_mantissa_precision(value):
    decoded = decode_compact(encode_compact(value))
    assert not decoded.negative and not decoded.overflow
    assert decoded.value <= value
    # 3 mantissa bytes, of which the top bit is the sign: at most 2^-15 relative error.
    assert (value - decoded.value) * (1 << 15) <= value


@given(st.integers(min_value=1, max_value=(1 << 256) - 1))
def test_work_matches_definition(target):
    assert compute_block_work(target) == (1 << 256) // (target + 1)


def test_invalid_negative_target():
    with pytest.raises(NegativeTargetError):
        compute_target(0x04923456, BITCOIN_POW_LIMIT)


def test_invalid_overflowing_target():
    with pytest.raises(TargetOverflowError):
        compute_target(0xFF123456, BITCOIN_POW_LIMIT)


def test_invalid_zero_target():
    with pytest.raises(ZeroTargetError):
        compute_target(0x01003456, BITCOIN_POW_LIMIT)


def test_invalid_target_above_pow_limit():
    with pytest.raises(TargetAbovePowLimitError):
        compute_target(0x1D01FFFF, BITCOIN_POW_LIMIT)
