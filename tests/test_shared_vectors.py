"""Our copied vectors must match ../shared/vectors when that file is present."""

import json
from pathlib import Path

import pytest

from tests.vectors import COMPACT_CASES, GENESIS, POW_TESTS, RFC8032_TEST_1

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "vectors" / "bitcoin-and-friends.json"

pytestmark = pytest.mark.skipif(not SHARED.exists(), reason="../shared is not present")


@pytest.fixture(scope="module")
def shared():
    return json.loads(SHARED.read_text())


def test_genesis_matches(shared):
    g = shared["bitcoin_genesis_header"]
    for field in ("version", "prev", "merkle", "time", "bits", "nonce", "hash", "header_hex"):
        assert g[field] == GENESIS[field], field


def test_retarget_cases_match(shared):
    ours = {c[0]: c[1:] for c in POW_TESTS}
    for case in shared["bitcoin_retarget_mainnet"]["cases"]:
        assert ours[case["name"]] == (
            case["first_block_time"], case["last_block_time"], case["last_bits"], case["expected_bits"]
        )


def test_compact_cases_match(shared):
    ours = {c[0]: c for c in COMPACT_CASES}
    for case in shared["bitcoin_compact_bits"]["decode"]:
        bits = int(case["bits"], 16)
        assert ours[bits][1] == int(case["value"], 16)
        assert ours[bits][4] == int(case["reencoded"], 16)
    for bits in shared["bitcoin_compact_bits"]["decode_to_zero"]:
        assert ours[int(bits, 16)][1] == 0


def test_rfc8032_matches(shared):
    assert shared["ed25519_rfc8032_test_1"]["signature"] == RFC8032_TEST_1["signature"]
    assert shared["ed25519_rfc8032_test_1"]["public"] == RFC8032_TEST_1["public"]
