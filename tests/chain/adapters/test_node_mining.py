"""Mining through the node on the real hashing core (worker processes)."""

import asyncio
import hashlib

import pytest
import pytest_asyncio

from chain.adapters.hashcore import HashingCore, OutcomeKind
from chain.adapters.node import Node
from chain.adapters.storage import Store
from chain.consensus.verify import verify_chain
from chain.params import PLAYGROUND, REGTEST
from chain.pow.compact import encode_compact
from chain.pow.difficulty import compute_calibrated_bits

CHAIN = 3
# About 2^14 hashes per block: quick, yet long enough for sessions to overlap.
MEDIUM_BITS = encode_compact(REGTEST.pow_limit >> 13)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def core():
    c = HashingCore(2)
    await c.start()
    yield c
    await c.close()


def deterministic_randomness():
    counter = iter(range(1 << 30))
    return lambda n: hashlib.sha256(next(counter).to_bytes(4, "little")).digest()[:n]


@pytest_asyncio.fixture(loop_scope="module")
async def node(tmp_path, core):
    store = await Store.open(tmp_path / "mining.sqlite3")
    # Fixed clock and randomness: the same templates, hence the same nonces, every run.
    n = Node(
        store,
        clock=lambda: 1_900_000_000.0,
        randomness=deterministic_randomness(),
        master_key=bytes(32),
        hashing_core=core,
    )
    yield n
    await store.close()


pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_new_chain_is_calibrated_from_the_measured_rate(node, core, monkeypatch):
    measured = []
    real = core.measure_rate

    async def spy(seconds: float = 1.0) -> int:
        rate = await real(0.3)
        measured.append(rate)
        return rate

    monkeypatch.setattr(core, "measure_rate", spy)
    state = await node.create_chain(CHAIN, PLAYGROUND)
    assert measured and measured[0] > 10_000
    assert state.tip.bits == compute_calibrated_bits(measured[0], PLAYGROUND)


async def test_mine_finds_and_appends_a_block(node):
    await node.create_chain(CHAIN, REGTEST, initial_bits=MEDIUM_BITS)
    progress = []
    result = await node.mine(CHAIN, "alice", on_progress=progress.append)
    assert result.outcome.kind is OutcomeKind.FOUND and result.found
    assert node.chain(CHAIN).state.height == 1
    assert node.account(CHAIN, await node.address(CHAIN, "alice")).balance == 50
    assert result.block.header.hash_hex() == result.outcome.hash_hex


async def test_competing_sessions_one_wins_the_other_is_stale(node):
    await node.create_chain(CHAIN, REGTEST, initial_bits=encode_compact(REGTEST.pow_limit >> 16))
    results = await asyncio.gather(node.mine(CHAIN, "alice"), node.mine(CHAIN, "bob"))
    kinds = sorted(r.outcome.kind.value for r in results)
    assert kinds == ["found", "stale"]
    assert node.chain(CHAIN).state.height == 1
    loser = next(r for r in results if r.outcome.kind is OutcomeKind.STALE)
    assert loser.tip_height == 1


async def test_extra_nonce_rolls_when_the_nonce_space_runs_out(node):
    await node.create_chain(CHAIN, REGTEST, initial_bits=MEDIUM_BITS)
    result = await node.mine(CHAIN, "alice", max_nonce=63)
    assert result.found and result.outcome.extra_nonce > 0
    assert result.block.coinbase.extra_nonce == result.outcome.extra_nonce
    stored = await node.store.load_chain(CHAIN)
    verify_chain(REGTEST, CHAIN, stored.blocks, node.now())


async def test_a_reset_chain_ends_its_sessions_as_stale(node):
    await node.create_chain(CHAIN, REGTEST, initial_bits=encode_compact(REGTEST.pow_limit >> 40))
    hashing = asyncio.Event()
    session = asyncio.ensure_future(node.mine(CHAIN, "alice", on_progress=lambda p: hashing.set()))
    await asyncio.wait_for(hashing.wait(), 10)  # far too hard to finish, but under way
    await node.delete_chain(CHAIN)
    result = await asyncio.wait_for(session, 5)
    assert result.outcome.kind is OutcomeKind.STALE and not result.found
    assert result.outcome.hashes_tried > 0


async def test_timeout(node):
    await node.create_chain(CHAIN, REGTEST, initial_bits=encode_compact(REGTEST.pow_limit >> 40))
    result = await node.mine(CHAIN, "alice", deadline_s=0.3)
    assert result.outcome.kind is OutcomeKind.TIMEOUT and result.outcome.hashes_tried > 0


async def test_a_session_cancelled_on_start_mines_nothing(node, core):
    """``on_start`` is where a stop that came while ``mine`` awaited ends the session: on this easy
    chain the first chunk would find the block before any progress report could cancel it."""
    await node.create_chain(CHAIN, REGTEST)
    result = await node.mine(CHAIN, "alice", on_start=lambda session: session.cancel())
    assert result.outcome.kind is OutcomeKind.CANCELLED and not result.found
    assert node.chain(CHAIN).state.height == 0 and core.session((CHAIN, "alice")) is None


async def test_a_failing_on_start_leaves_no_session_hashing(node, core):
    await node.create_chain(CHAIN, REGTEST, initial_bits=encode_compact(REGTEST.pow_limit >> 40))

    def broken(session):
        raise RuntimeError("caller bug")

    with pytest.raises(RuntimeError, match="caller bug"):
        await node.mine(CHAIN, "alice", on_start=broken)
    assert core.session((CHAIN, "alice")) is None


class SteppedClock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> float:
        return float(self.now)


async def test_a_mining_template_is_refreshed_with_the_time_and_new_payments(tmp_path):
    """Before: a session mined the template of its start, so a block found 68 s later was dated 68 s
    early (the retarget then read blocks as faster than they were) and missed payments sent meanwhile."""
    from tests.chainkit import solve

    clock = SteppedClock(1_900_000_000)
    store = await Store.open(tmp_path / "refresh.sqlite3")
    node = Node(store, clock=clock, randomness=deterministic_randomness(), master_key=bytes(32))
    await node.create_chain(CHAIN, REGTEST, initial_bits=0x207FFFFF)
    alice = await node.address(CHAIN, "alice")
    await node.submit_block(CHAIN, solve(node.template(CHAIN, alice), REGTEST))
    bob = await node.address(CHAIN, "bob")

    job = node.mining_job(CHAIN, await node.address(CHAIN, "carol"))
    job.header_prefix(0)
    started = job.template_for(0).header.time
    assert not job.refresh_due()
    clock.now += 68
    payment = await node.pay(CHAIN, "alice", bob, 5, fee=1)
    assert job.refresh_due()
    job.header_prefix(1)  # what the hashing core asks for next: dated now at once
    assert job.template_for(1).header.time == clock.now and started < clock.now - 60
    # The new body is built off the event loop; the core takes it at the very next chunk.
    await job.rebuilding
    assert job.refresh_due()
    job.header_prefix(2)
    fresh = job.template_for(2)
    assert fresh.header.time == clock.now and payment.entry.tx in fresh.transfers
    assert not job.refresh_due()

    clock.now += 3  # only the time moves: the body stays, the date follows
    job.header_prefix(3)
    assert job.template_for(3).header.time == clock.now and job.template_for(3).transfers == fresh.transfers

    found = solve(job.template_for(3), REGTEST)
    assert found.coinbase.extra_nonce == 3
    effects = await node.submit_block(CHAIN, found)
    assert effects.fees == 1 and node.account(CHAIN, bob).balance == 5
    assert node.chain(CHAIN).state.tip.time == clock.now
    await store.close()
