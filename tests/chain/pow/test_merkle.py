"""Merkle roots, checked against Bitcoin block 100000's four transactions."""

import pytest

from chain.hashing import hash_from_display, hash_to_display, sha256d
from chain.pow.merkle import compute_merkle_root
from tests.vectors import BLOCK_100000_TXIDS, MAINNET_HEADERS


def test_block_100000_merkle_root():
    header = next(v for v in MAINNET_HEADERS if v["height"] == 100000)
    root = compute_merkle_root([hash_from_display(t) for t in BLOCK_100000_TXIDS])
    assert hash_to_display(root) == header["merkle"]


def test_single_transaction_root_is_its_txid():
    txid = sha256d(b"only")
    assert compute_merkle_root([txid]) == txid


def test_odd_level_duplicates_the_last_entry():
    a, b, c = (sha256d(x) for x in (b"a", b"b", b"c"))
    assert compute_merkle_root([a, b, c]) == compute_merkle_root([a, b, c, c])


def test_invalid_empty_list():
    with pytest.raises(ValueError):
        compute_merkle_root([])
