"""The native nonce search (chain/adapters/_noncesearch.c): bit-exact with the Python backend, and
the fallback to Python when it is missing or wrong.

Both C paths are covered: the CPU's SHA extensions (skipped, saying so, on a CPU without them)
and the portable C compression function, forced by its own backend name.  scripts/test.sh sets
PLAYGROUND_REQUIRE_NATIVE=1: there a missing extension (a broken build) fails these tests instead
of skipping them.
"""

import hashlib
import importlib
import logging
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.adapters import hashcore
from chain.adapters.hashcore import HashingCore
from chain.adapters.nonce_search import (
    BACKENDS,
    DEFAULT_BACKEND,
    MAX_NONCE,
    NativeBackend,
    PurePythonBackend,
    choose_backends,
    naive_search,
    run_chunk,
    self_test,
)
from chain.hashing import hash_from_display
from chain.pow.compact import decode_compact
from chain.pow.header import BlockHeader
from tests.vectors import GENESIS, MAINNET_HEADERS


def _native_module():
    try:
        return importlib.import_module("chain.adapters._noncesearch")
    except ImportError as exc:
        if os.environ.get("PLAYGROUND_REQUIRE_NATIVE") == "1":
            raise AssertionError(f"the native nonce search is not built: {exc}") from exc
        return None


NATIVE = _native_module()
needs_native = pytest.mark.skipif(NATIVE is None, reason="the native nonce search is not built (no C compiler?)")
HAS_SHA = NATIVE is not None and NATIVE.sha_extensions()

PYTHON = PurePythonBackend()
NATIVE_PATHS = [
    pytest.param("native-sha", marks=pytest.mark.skipif(not HAS_SHA, reason="this CPU has no SHA extensions")),
    pytest.param("native-portable", marks=needs_native),
]


def header_bytes(vector: dict) -> bytes:
    # Bitcoin's real headers from tests/vectors.py (Bitcoin Core's chainparams for genesis; blocks 1 and
    # 100000 as any block explorer or `bitcoin-cli getblockheader` shows them), serialized as Bitcoin does.
    return BlockHeader(
        vector["version"], hash_from_display(vector["prev"]), hash_from_display(vector["merkle"]),
        vector["time"], vector["bits"], vector["nonce"],
    ).serialize()


REAL_HEADERS = [GENESIS, *(v for v in MAINNET_HEADERS if v["height"] in (1, 100_000))]


@needs_native
def test_the_fastest_native_path_is_the_default_and_named_for_members():
    expected = "native-sha" if HAS_SHA else "native-portable"
    assert expected == DEFAULT_BACKEND
    assert BACKENDS[expected].label == ("native (SHA-NI)" if HAS_SHA else "native (portable C)")
    assert BACKENDS["native-portable"].label == "native (portable C)"
    assert BACKENDS["python"].label == "Python"


@pytest.mark.parametrize("name", NATIVE_PATHS)
@pytest.mark.parametrize("vector", REAL_HEADERS, ids=lambda v: f"block-{v.get('height', 0)}")
def test_real_bitcoin_headers_are_found_at_their_nonce(name, vector):
    header = header_bytes(vector)
    nonce = vector["nonce"]
    target = decode_compact(vector["bits"]).value
    window = 20_000

    result = BACKENDS[name].search(header[:76], target, nonce - window, 2 * window)

    assert result.found_nonce == nonce
    assert result.hashes_tried == window + 1
    assert result.hash_le is not None and result.hash_le[::-1].hex() == vector["hash"]
    assert result.best_hash_le == result.hash_le
    # Just past it, nothing in the window meets the target (real difficulty): the whole window is hashed.
    after = BACKENDS[name].search(header[:76], target, nonce + 1, window)
    assert (after.found_nonce, after.hashes_tried) == (None, window)


@pytest.mark.parametrize("name", NATIVE_PATHS)
@settings(max_examples=150, deadline=None)
@given(
    prefix=st.binary(min_size=76, max_size=76),
    target_bits=st.integers(min_value=0, max_value=260),
    start=st.integers(min_value=0, max_value=MAX_NONCE),
    count=st.integers(min_value=1, max_value=700),
)
def test_native_agrees_with_python_on_random_headers_and_targets(name, prefix, target_bits, start, count):
    target = (1 << target_bits) - 1
    native = BACKENDS[name].search(prefix, target, start, count)
    python = PYTHON.search(prefix, target, start, count)
    # Same nonce found (or none), same count of hashes, same best hash.
    assert native == python


@pytest.mark.parametrize("name", NATIVE_PATHS)
@settings(max_examples=60, deadline=None)
@given(prefix=st.binary(min_size=76, max_size=76), rank=st.integers(min_value=0, max_value=40), data=st.data())
def test_native_stops_where_python_does_when_the_target_is_a_hash_of_the_range(name, prefix, rank, data):
    # A target equal to the rank-th lowest hash of the range (or one below it): the first qualifying
    # nonce is somewhere inside, so the count and the stop are tested, not just "nothing found".
    start = data.draw(st.integers(min_value=0, max_value=MAX_NONCE - 500))
    hashes = (naive_search(prefix, 0, n, 1).best_hash_le for n in range(start, start + 500))
    values = sorted(int.from_bytes(h, "little") for h in hashes)
    target = values[rank] - data.draw(st.integers(min_value=0, max_value=1))
    assert BACKENDS[name].search(prefix, target, start, 500) == PYTHON.search(prefix, target, start, 500)


@pytest.mark.parametrize("name", NATIVE_PATHS)
def test_native_never_searches_past_the_last_nonce_and_accepts_any_target(name):
    prefix = bytes(range(76))
    backend = BACKENDS[name]
    assert backend.search(prefix, 0, MAX_NONCE - 4, 1_000) == PYTHON.search(prefix, 0, MAX_NONCE - 4, 1_000)
    assert backend.search(prefix, 1 << 300, MAX_NONCE, 10) == PYTHON.search(prefix, 1 << 300, MAX_NONCE, 10)
    # A bytearray or memoryview prefix is as good as bytes.
    assert backend.search(bytearray(prefix), 1 << 250, 0, 50) == PYTHON.search(prefix, 1 << 250, 0, 50)


@pytest.mark.parametrize("name", NATIVE_PATHS)
@pytest.mark.parametrize(
    ("prefix", "target", "start", "count"),
    [(bytes(75), 0, 0, 1), (bytes(77), 0, 0, 1), (bytes(76), -1, 0, 1), (bytes(76), 0, -1, 1),
     (bytes(76), 0, MAX_NONCE + 1, 1), (bytes(76), 0, 0, 0)],
)
def test_native_rejects_bad_requests_like_python(name, prefix, target, start, count):
    with pytest.raises(ValueError):
        BACKENDS[name].search(prefix, target, start, count)


@needs_native
def test_the_extension_itself_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="76-byte prefix"):
        NATIVE.search(bytes(75), bytes(32), 0, 1, 1)
    with pytest.raises(ValueError, match="nonce range"):
        NATIVE.search(bytes(76), bytes(32), MAX_NONCE, 2, 1)
    with pytest.raises(ValueError, match="impl"):
        NATIVE.search(bytes(76), bytes(32), 0, 1, 7)


@pytest.mark.parametrize("name", NATIVE_PATHS)
def test_run_chunk_runs_a_native_backend_by_name(name):
    prefix = hashlib.sha256(b"chunk").digest() * 2 + bytes(12)
    result = run_chunk(name, prefix, 1 << 248, 1_000, 5_000)
    assert result == naive_search(prefix, 1 << 248, 1_000, 5_000)
    assert result.cpu_ns > 0


# --- fallback -------------------------------------------------------------------------------------


def test_without_the_extension_the_python_backend_runs_and_says_why():
    def missing():
        raise ImportError("No module named 'chain.adapters._noncesearch'")

    choice = choose_backends(missing)

    assert choice.default == "python"
    assert list(choice.backends) == ["python"]
    assert choice.backends["python"].label == "Python"
    assert choice.note is not None and "not built" in choice.note and "_noncesearch" in choice.note


class WrongHashes:
    """An extension that builds and loads but hashes wrong (an odd CPU or compiler)."""

    def __init__(self, sha: bool):
        self.sha = sha

    def sha_extensions(self):
        return self.sha

    def search(self, prefix76, target_be, start_nonce, count, impl):
        return None, count, bytes(32)


def test_a_native_path_failing_its_self_test_is_not_used():
    choice = choose_backends(lambda: WrongHashes(sha=True))

    assert choice.default == "python"
    assert set(choice.backends) == {"python"}
    assert "native (SHA-NI) is not used" in choice.note and "native (portable C) is not used" in choice.note


class ShaBroken:
    """The SHA-extension path fails while the portable one is right: the portable one runs."""

    def __init__(self, real):
        self.real = real

    def sha_extensions(self):
        return True

    def search(self, prefix76, target_be, start_nonce, count, impl):
        if impl == 0:
            raise RuntimeError("illegal instruction, say")
        return self.real.search(prefix76, target_be, start_nonce, count, impl)


@needs_native
def test_a_failing_sha_path_falls_back_to_portable_c():
    choice = choose_backends(lambda: ShaBroken(NATIVE))

    assert choice.default == "native-portable"
    assert list(choice.backends) == ["native-portable", "python"]
    assert "native (SHA-NI) is not used: it failed" in choice.note


def test_a_cpu_without_sha_extensions_gets_no_sha_path():
    class NoSha(WrongHashes):
        def search(self, prefix76, target_be, start_nonce, count, impl):
            assert impl == 1, "the SHA path must not even be tried"
            return None, count, bytes(32)

    choice = choose_backends(lambda: NoSha(sha=False))
    assert "native-sha" not in choice.backends and "SHA-NI" not in (choice.note or "")


def test_the_self_test_passes_for_every_offered_backend_and_fails_a_wrong_one():
    for backend in BACKENDS.values():
        assert self_test(backend) is None, backend.name
    assert self_test(NativeBackend(WrongHashes(sha=False), 1, "wrong", "wrong")) is not None


async def test_the_core_names_its_backend_in_its_stats():
    core = HashingCore(1, backend="python")
    assert core.backend_label == "Python"
    async with core:
        assert core.stats().backend == "Python"
    default = HashingCore(1)
    assert default.backend_label == BACKENDS[DEFAULT_BACKEND].label


def test_when_the_extension_cannot_be_imported_the_module_defaults_to_python_and_says_why():
    # A fresh interpreter in which importing the extension fails, as where it was never built.
    code = (
        "import sys; sys.modules['chain.adapters._noncesearch'] = None\n"
        "from chain.adapters import nonce_search as n\n"
        "print(n.DEFAULT_BACKEND, sorted(n.BACKENDS), n.BACKENDS[n.DEFAULT_BACKEND].label, sep='|')\n"
        "print(n.BACKEND_NOTE)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    default, names, label, note = out.splitlines()[0].split("|") + out.splitlines()[1:]
    assert (default, names, label) == ("python", "['python']", "Python")
    assert "native nonce search is not built" in note


async def test_the_core_logs_its_backend_and_why_a_faster_one_is_missing(monkeypatch, caplog):
    monkeypatch.setattr(hashcore, "DEFAULT_BACKEND", "python")
    monkeypatch.setattr(hashcore, "BACKEND_NOTE", "the native nonce search is not built (no compiler)")
    caplog.set_level(logging.INFO, logger="chain.adapters.hashcore")
    async with HashingCore(1, backend="python", cpu_percent=40, cores=2):
        pass
    started = [r.getMessage() for r in caplog.records if "hashing core started" in r.getMessage()]
    assert started and "backend Python" in started[0] and "CPU budget 40% of 2 cores" in started[0]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("not built (no compiler)" in w for w in warnings)
