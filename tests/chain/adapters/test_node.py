"""The node: wallets, payments, blocks, restarts, crash safety, verification and export."""

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from chain.adapters.node import Node
from chain.adapters.storage import Store
from chain.consensus.export import import_chain
from chain.consensus.verify import verify_chain
from chain.errors import (
    BadSignatureError,
    InsufficientBalanceError,
    InvalidAmountError,
    StaleBlockError,
    VerificationError,
)
from chain.params import REGTEST
from tests.chainkit import key, solve

CHAIN = 5
MASTER = b"\x42" * 32
ROOT = Path(__file__).resolve().parents[3]


class FakeClock:
    def __init__(self, start: int = 1_800_000_000) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 1
        return float(self.now)


async def open_node(path, clock=None):
    store = await Store.open(path)
    node = Node(store, clock=clock or FakeClock(), randomness=os.urandom, master_key=MASTER)
    await node.load()
    return node


async def mine_block(node, owner):
    miner = await node.address(CHAIN, owner)
    block = solve(node.template(CHAIN, miner), REGTEST)
    return await node.submit_block(CHAIN, block)


@pytest.fixture
async def node(tmp_path):
    n = await open_node(tmp_path / "node.sqlite3")
    await n.create_chain(CHAIN, REGTEST, initial_bits=0x207FFFFF)
    yield n
    await n.store.close()


async def test_wallet_is_created_once_and_sealed_at_rest(node, tmp_path):
    first = await node.wallet(CHAIN, "alice")
    again = await node.wallet(CHAIN, "alice")
    assert first == again
    assert first.public_key != (await node.wallet(CHAIN, "bob")).public_key
    await node.store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("node.sqlite3*"))
    assert first.public_key in raw
    assert first.seed not in raw
    node.store = await Store.open(tmp_path / "node.sqlite3")


async def test_pay_then_mine_confirms_and_emits_events(node):
    await mine_block(node, "alice")
    bob = await node.address(CHAIN, "bob")
    admission = await node.pay(CHAIN, "alice", bob, 20, fee=2)
    assert admission.entry.txid in node.chain(CHAIN).mempool
    effects = await mine_block(node, "carol")
    assert effects.fees == 2
    assert node.account(CHAIN, bob).balance == 20
    assert node.account(CHAIN, await node.address(CHAIN, "alice")).balance == 28
    assert len(node.chain(CHAIN).mempool) == 0
    stored = await node.store.blocks.get_transaction(CHAIN, admission.entry.txid)
    assert stored is not None and stored.height == 2


async def test_invalid_payments_change_nothing(node):
    await mine_block(node, "alice")
    bob = await node.address(CHAIN, "bob")
    before = (dict(node.chain(CHAIN).state.ledger.items()), len(node.chain(CHAIN).mempool))
    with pytest.raises(InsufficientBalanceError):
        await node.pay(CHAIN, "alice", bob, 500)
    with pytest.raises(InvalidAmountError):
        await node.pay(CHAIN, "alice", bob, 0)
    assert (dict(node.chain(CHAIN).state.ledger.items()), len(node.chain(CHAIN).mempool)) == before
    assert (await node.store.load_chain(CHAIN)).mempool == []


async def test_invalid_forged_transfer(node):
    from chain.ledger.transaction import Transfer

    await mine_block(node, "alice")
    alice = await node.address(CHAIN, "alice")
    forged = Transfer(alice, key("x").public_key, 1, 0, 0, bytes(64))
    with pytest.raises(BadSignatureError):
        await node.submit_transfer(CHAIN, forged)


async def test_invalid_stale_block(node):
    alice = await node.address(CHAIN, "alice")
    late = solve(node.template(CHAIN, alice), REGTEST)
    await mine_block(node, "bob")
    with pytest.raises(StaleBlockError):
        await node.submit_block(CHAIN, late)
    assert node.chain(CHAIN).state.height == 1


async def test_restart_reloads_tip_balances_and_mempool(tmp_path):
    path = tmp_path / "restart.sqlite3"
    node = await open_node(path)
    await node.create_chain(CHAIN, REGTEST, initial_bits=0x207FFFFF)
    for owner in ("alice", "bob", "alice"):
        await mine_block(node, owner)
    bob = await node.address(CHAIN, "bob")
    pending = await node.pay(CHAIN, "alice", bob, 7, fee=1)
    tip, ledger = node.chain(CHAIN).state.tip_hash, dict(node.chain(CHAIN).state.ledger.items())
    await node.store.close()

    again = await open_node(path)
    runtime = again.chain(CHAIN)
    assert runtime.state.tip_hash == tip
    assert dict(runtime.state.ledger.items()) == ledger
    assert pending.entry.txid in runtime.mempool
    effects = await mine_block(again, "carol")  # carries on from where it stopped
    assert effects.height == 4 and effects.fees == 1
    report = await again.verify(CHAIN)
    assert report.blocks == 5 and report.transfers == 1 and report.supply == 200
    await again.store.close()


async def test_crash_loses_nothing_acknowledged(database_target):
    path = database_target  # a SQLite file, then a PostgreSQL database
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.crash_writer", str(path), cwd=ROOT, stdout=subprocess.PIPE
    )
    acked_blocks: dict[int, str] = {}
    acked_txs: list[str] = []
    try:
        while len(acked_blocks) < 25:
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().split()
            assert line, "writer exited early"
            if line[1] == "block":
                acked_blocks[int(line[2])] = line[3]
            else:
                acked_txs.append(line[2])
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()

    node = await open_node(path, FakeClock(4_000_000_000))
    state = node.chain(77).state
    for height, block_hash in acked_blocks.items():
        assert state.headers[height].hash().hex() == bytes.fromhex(block_hash)[::-1].hex()
    for txid in acked_txs:
        assert (await node.store.blocks.get_transaction(77, bytes.fromhex(txid))) is not None or bytes.fromhex(
            txid
        ) in node.chain(77).mempool
    report = await node.verify(77)
    assert report.blocks >= 26
    await node.store.close()


async def test_export_verifies_offline_and_detects_tampering(node):
    for owner in ("alice", "bob"):
        await mine_block(node, owner)
    await node.pay(CHAIN, "alice", await node.address(CHAIN, "bob"), 5)
    await mine_block(node, "bob")
    document = json.loads(json.dumps(await node.export(CHAIN)))
    params, chain_id, blocks = import_chain(document)
    _, report = verify_chain(params, chain_id, blocks, now=node.now())
    assert report.blocks == 4 and report.signatures == 1

    tampered = dict(document, params=params.evolve(initial_subsidy_points=5000).to_json())
    p2, c2, b2 = import_chain(tampered)
    with pytest.raises(VerificationError, match="block 0"):
        verify_chain(p2, c2, b2, now=node.now())

    raw = bytearray(bytes.fromhex(document["blocks"][3]))
    raw[-70] ^= 1  # a byte inside the transfer's fields
    broken = dict(document, blocks=[*document["blocks"][:3], raw.hex()])
    p3, c3, b3 = import_chain(broken)
    with pytest.raises(VerificationError, match="block 3"):
        verify_chain(p3, c3, b3, now=node.now())


async def test_verify_detects_stored_balance_drift(node):
    await mine_block(node, "alice")
    alice = await node.address(CHAIN, "alice")
    # Simulate corruption outside the engine.
    async with node.store.db.transaction(CHAIN) as tx:
        await tx.execute("UPDATE accounts SET balance = 999 WHERE pubkey = ?", (alice,))
    with pytest.raises(VerificationError, match="stored balances differ"):
        await node.verify(CHAIN)


async def test_in_memory_views_match_the_store_before_and_after_restart(tmp_path):
    """Tip block, blocks per miner and wallet owners are served from memory; they must agree with SQLite."""
    path = tmp_path / "views.sqlite3"
    node = await open_node(path)
    await node.create_chain(CHAIN, REGTEST, initial_bits=0x207FFFFF)
    assert await node.owners(CHAIN) == {}  # cached empty: later wallets must still appear
    for owner in ("alice", "bob", "alice"):
        await mine_block(node, owner)
    alice, bob = await node.address(CHAIN, "alice"), await node.address(CHAIN, "bob")
    carol = await node.address(CHAIN, "carol")

    def views(n):
        runtime = n.chain(CHAIN)
        return runtime.tip_block, dict(runtime.blocks_mined)

    live = views(node)
    assert live[0] == await node.store.blocks.get_block(CHAIN, height=3)
    assert live[1] == {alice: 2, bob: 1}
    assert await node.owners(CHAIN) == {alice: "alice", bob: "bob", carol: "carol"}
    await node.store.close()

    again = await open_node(path)
    assert views(again) == live
    assert await again.owners(CHAIN) == {alice: "alice", bob: "bob", carol: "carol"}
    await again.store.close()


async def test_pausing_a_chain_keeps_it_and_says_whether_anything_changed(node):
    assert not node.is_paused(CHAIN) and node.paused_chain_ids() == []
    await mine_block(node, "alice")
    assert node.pause(CHAIN) is True
    assert node.pause(CHAIN) is False  # already paused
    assert node.is_paused(CHAIN) and node.paused_chain_ids() == [CHAIN]
    assert node.chain(CHAIN).state.height == 1  # paused, not gone
    assert node.resume(CHAIN) is True
    assert node.resume(CHAIN) is False
    assert not node.is_paused(CHAIN)


class _FoundWithoutNonces:
    """A hashing core that breaks its contract: FOUND, but no nonces to rebuild the block from."""

    def __init__(self) -> None:
        from chain.adapters.hashcore import MiningOutcome, OutcomeKind

        self.outcome = MiningOutcome(OutcomeKind.FOUND, hashes_tried=1, elapsed=0.0)

    def start_session(self, job, **_kwargs):
        core = self

        class Session:
            def cancel(self) -> None:
                pass

            async def wait(self):
                return core.outcome

        return Session()

    def drain_cpu_ns(self) -> dict[int, int]:
        return {}


async def test_mine_refuses_a_found_outcome_without_nonces(node):
    from chain.errors import HashingCoreError

    node.hashing_core = _FoundWithoutNonces()
    with pytest.raises(HashingCoreError, match="without its nonces"):
        await node.mine(CHAIN, "alice")
    assert node.chain(CHAIN).state.height == 0
