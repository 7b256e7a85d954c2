"""Block headers: Bitcoin's 80-byte layout and double SHA-256, on real mainnet headers."""

import pytest

from chain.errors import CheckProofOfWorkError, EncodingError
from chain.hashing import hash_from_display, hash_to_display
from chain.params import BITCOIN_MAINNET
from chain.pow.difficulty import check_proof_of_work, is_valid_proof_of_work
from chain.pow.header import BlockHeader
from tests.vectors import GENESIS, MAINNET_HEADERS


def header_from(v: dict) -> BlockHeader:
    return BlockHeader(
        v["version"], hash_from_display(v["prev"]), hash_from_display(v["merkle"]), v["time"], v["bits"], v["nonce"]
    )


def test_genesis_header_serializes_byte_for_byte():
    assert header_from(GENESIS).serialize().hex() == GENESIS["header_hex"]


def test_genesis_hash_and_proof_of_work():
    header = header_from(GENESIS)
    assert header.hash_hex() == GENESIS["hash"]
    check_proof_of_work(header.hash(), header.bits, BITCOIN_MAINNET)


@pytest.mark.parametrize("vector", MAINNET_HEADERS, ids=lambda v: f"block-{v['height']}")
def test_real_mainnet_headers_hash_and_pass_proof_of_work(vector):
    header = header_from(vector)
    assert header.hash_hex() == vector["hash"]
    assert is_valid_proof_of_work(header.hash(), header.bits, BITCOIN_MAINNET)


def test_mainnet_headers_chain_to_each_other():
    assert header_from(MAINNET_HEADERS[0]).prev_hash == header_from(GENESIS).hash()
    assert header_from(MAINNET_HEADERS[1]).prev_hash == header_from(MAINNET_HEADERS[0]).hash()


def test_deserialize_round_trip():
    raw = bytes.fromhex(GENESIS["header_hex"])
    assert BlockHeader.deserialize(raw).serialize() == raw
    assert BlockHeader.deserialize(raw) == header_from(GENESIS)


def test_display_order_is_reversed_internal_order():
    internal = header_from(GENESIS).hash()
    assert internal[-1] == 0 and hash_to_display(internal).startswith("0000")
    assert hash_from_display(GENESIS["hash"]) == internal


def test_invalid_changed_nonce_fails_proof_of_work():
    header = header_from(GENESIS).with_nonce(GENESIS["nonce"] + 1)
    with pytest.raises(CheckProofOfWorkError, match="above the target"):
        check_proof_of_work(header.hash(), header.bits, BITCOIN_MAINNET)


@pytest.mark.parametrize("length", [0, 79, 81])
def test_invalid_header_length(length):
    with pytest.raises(EncodingError, match="80 bytes"):
        BlockHeader.deserialize(bytes(length))


@pytest.mark.parametrize(
    "field,value", [("nonce", -1), ("nonce", 1 << 32), ("time", 1 << 32), ("bits", -5), ("version", 1 << 31)]
)
def test_invalid_field_ranges(field, value):
    kwargs = dict(version=1, prev_hash=bytes(32), merkle_root=bytes(32), time=0, bits=0, nonce=0)
    kwargs[field] = value
    with pytest.raises(EncodingError):
        BlockHeader(**kwargs)


def test_invalid_hash_length():
    with pytest.raises(EncodingError, match="32 bytes"):
        BlockHeader(1, bytes(31), bytes(32), 0, 0, 0)
    with pytest.raises(EncodingError):
        hash_from_display("zz")
