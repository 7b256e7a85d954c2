import hashlib
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.adapters.nonce_search import (
    BACKENDS,
    DEFAULT_BACKEND,
    MAX_NONCE,
    PurePythonBackend,
    SearchResult,
    get_backend,
    naive_search,
    run_chunk,
)

# Bitcoin's genesis block header, from Bitcoin Core src/kernel/chainparams.cpp (CreateGenesisBlock).
GENESIS_HEADER = bytes.fromhex(
    "0100000000000000000000000000000000000000000000000000000000000000"
    "000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa"
    "4b1e5e4a29ab5f49ffff001d1dac2b7c"
)
GENESIS_NONCE = 2083236893
GENESIS_TARGET = 0x00000000FFFF0000000000000000000000000000000000000000000000000000
GENESIS_HASH_DISPLAY = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"

BACKEND = PurePythonBackend()


def sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def prefix_for(seed: int) -> bytes:
    return hashlib.sha512(seed.to_bytes(8, "little")).digest()[:64] + bytes(12)


def header_hash(prefix: bytes, nonce: int) -> bytes:
    return sha256d(prefix + nonce.to_bytes(4, "little"))


def test_genesis_header_found_in_a_window_around_its_nonce():
    prefix = GENESIS_HEADER[:76]
    assert int.from_bytes(GENESIS_HEADER[76:], "little") == GENESIS_NONCE

    result = BACKEND.search(prefix, GENESIS_TARGET, GENESIS_NONCE - 3_000, 6_000)

    assert result.found_nonce == GENESIS_NONCE
    assert result.hashes_tried == 3_001
    assert result.hash_le is not None
    assert result.hash_le[::-1].hex() == GENESIS_HASH_DISPLAY
    assert result.best_hash_le == result.hash_le
    assert naive_search(prefix, GENESIS_TARGET, GENESIS_NONCE - 3_000, 6_000) == result


def test_genesis_window_without_its_nonce_finds_nothing():
    result = BACKEND.search(GENESIS_HEADER[:76], GENESIS_TARGET, GENESIS_NONCE - 2_000, 2_000)

    assert result.found_nonce is None
    assert result.hash_le is None
    assert result.hashes_tried == 2_000


def test_best_hash_is_the_lowest_hash_of_the_range():
    prefix = prefix_for(7)
    hashes = [header_hash(prefix, n) for n in range(100, 600)]

    result = BACKEND.search(prefix, 0, 100, 500)

    assert result.found_nonce is None
    assert result.hashes_tried == 500
    assert result.best_hash_le == min(hashes, key=lambda h: int.from_bytes(h, "little"))


def test_target_equal_to_a_hash_is_met_and_one_below_is_not():
    prefix = prefix_for(3)
    nonce = 250
    value = int.from_bytes(header_hash(prefix, nonce), "little")

    met = BACKEND.search(prefix, value, nonce, 1)
    missed = BACKEND.search(prefix, value - 1, nonce, 1)

    assert met.found_nonce == nonce
    assert met.hash_le == header_hash(prefix, nonce)
    assert missed.found_nonce is None


def test_stops_at_the_first_nonce_meeting_the_target():
    prefix = prefix_for(11)
    values = [int.from_bytes(header_hash(prefix, n), "little") for n in range(2_000)]
    # Six nonces qualify; the search must stop at the earliest of them.
    target = sorted(values)[5]
    first = next(n for n, v in enumerate(values) if v <= target)

    result = BACKEND.search(prefix, target, 0, 2_000)

    assert result.found_nonce == first
    assert result.hashes_tried == first + 1


@pytest.mark.parametrize(
    ("seed", "target", "start", "count"),
    [
        (1, 0, 0, 3_000),
        (2, (1 << 256) - 1, 0, 10),
        (3, 1 << 248, 17, 5_000),
        (4, 1 << 244, 1_000_000, 8_000),
        (5, 1 << 250, MAX_NONCE - 300, 300),
        (6, 1 << 300, 5, 1),
    ],
)
def test_fast_backend_agrees_with_naive_loop(seed, target, start, count):
    prefix = prefix_for(seed)
    assert BACKEND.search(prefix, target, start, count) == naive_search(
        prefix, target, start, count
    )


@settings(max_examples=40, deadline=None)
@given(
    prefix=st.binary(min_size=76, max_size=76),
    target_bits=st.integers(min_value=0, max_value=256),
    start=st.integers(min_value=0, max_value=MAX_NONCE),
    count=st.integers(min_value=1, max_value=600),
)
def test_fast_backend_agrees_with_naive_loop_on_random_input(prefix, target_bits, start, count):
    target = (1 << target_bits) - 1
    assert BACKEND.search(prefix, target, start, count) == naive_search(
        prefix, target, start, count
    )


def test_never_searches_past_the_last_nonce():
    prefix = prefix_for(9)

    result = BACKEND.search(prefix, 0, MAX_NONCE - 4, 1_000)

    assert result.hashes_tried == 5
    last = BACKEND.search(prefix, (1 << 256) - 1, MAX_NONCE, 10)
    assert last.found_nonce == MAX_NONCE
    assert last.hash_le == header_hash(prefix, MAX_NONCE)


@pytest.mark.parametrize(
    ("prefix", "target", "start", "count"),
    [
        (bytes(75), 0, 0, 1),
        (bytes(80), 0, 0, 1),
        (bytes(76), -1, 0, 1),
        (bytes(76), 0, -1, 1),
        (bytes(76), 0, MAX_NONCE + 1, 1),
        (bytes(76), 0, 0, 0),
    ],
)
@pytest.mark.parametrize("search", [BACKEND.search, naive_search])
def test_rejects_bad_requests(search, prefix, target, start, count):
    with pytest.raises(ValueError):
        search(prefix, target, start, count)


def test_run_chunk_dispatches_by_backend_name_and_pickles():
    prefix = prefix_for(12)

    result = run_chunk(DEFAULT_BACKEND, prefix, 1 << 250, 0, 1_000)

    assert result == naive_search(prefix, 1 << 250, 0, 1_000)
    assert pickle.loads(pickle.dumps(run_chunk)) is run_chunk
    assert pickle.loads(pickle.dumps(result)) == result
    assert isinstance(result, SearchResult)
    assert get_backend("python") is BACKENDS["python"]


def test_unknown_backend_is_an_error():
    with pytest.raises(ValueError, match="unknown nonce search backend"):
        run_chunk("no-such-backend", bytes(76), 0, 0, 1)


def test_run_chunk_reports_its_cpu_time_and_it_grows_with_work():
    prefix = prefix_for(13)

    small = run_chunk(DEFAULT_BACKEND, prefix, 0, 0, 2_000)
    large = run_chunk(DEFAULT_BACKEND, prefix, 0, 0, 200_000)

    assert small.cpu_ns > 0
    # A hundred times the hashes: far more than timer noise could make up.
    assert large.cpu_ns > 10 * small.cpu_ns
    assert pickle.loads(pickle.dumps(large)).cpu_ns == large.cpu_ns
    # CPU time is a measurement, not part of what the search found.
    assert small == BACKEND.search(prefix, 0, 0, 2_000)
    assert BACKEND.search(prefix, 0, 0, 10).cpu_ns == 0
