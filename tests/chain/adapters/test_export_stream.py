"""Exports streamed from a read snapshot: the same document, a size known before any block is read."""

from __future__ import annotations

import io
import json

import pytest

from chain.adapters.node import Node
from chain.adapters.storage import ChainSnapshot, Store
from chain.consensus.export import export_chain
from chain.errors import ExportTooLargeError, SnapshotUnavailableError
from chain.params import REGTEST
from chain.pos.beacon import ConsensusConfig
from tests.chain.adapters.test_node import CHAIN, MASTER, FakeClock, mine_block, open_node


@pytest.fixture(params=[None, ConsensusConfig()], ids=["pow", "with-consensus"])
async def node(database_target, request):
    n = await open_node(database_target)
    await n.create_chain(CHAIN, REGTEST, initial_bits=0x207FFFFF, consensus=request.param)
    for owner in ("alice", "bob", "alice"):
        await mine_block(n, owner)
    await n.pay(CHAIN, "alice", await n.address(CHAIN, "bob"), 5)
    await mine_block(n, "bob")
    yield n
    n.close()
    await n.store.close()


async def test_the_streamed_export_is_the_document_json_dumps_made(node):
    state = node.chain(CHAIN).state
    blocks = [b async for b in node.store.blocks.iter_blocks(CHAIN)]
    expected = json.dumps(
        export_chain(state.genesis_params, CHAIN, blocks, state.param_changes, state.consensus,
                     state.consensus_changes),
        separators=(",", ":"),
    ).encode()
    out = io.BytesIO()
    summary = await node.export_to(CHAIN, out)
    assert out.getvalue() == expected
    assert (summary.height, summary.size, summary.tip) == (4, len(expected), blocks[-1].header.hash_hex())


async def test_an_export_over_the_limit_stops_before_reading_a_block(node, monkeypatch):
    full = io.BytesIO()
    size = (await node.export_to(CHAIN, full)).size
    streamed = []
    original = ChainSnapshot.raw_blocks

    def raw_blocks(self):
        for raw in original(self):
            streamed.append(raw)
            yield raw

    monkeypatch.setattr(ChainSnapshot, "raw_blocks", raw_blocks)
    out = io.BytesIO()
    with pytest.raises(ExportTooLargeError) as refused:
        await node.export_to(CHAIN, out, limit=size - 1)
    assert (refused.value.size, refused.value.limit) == (size, size - 1)
    assert out.getvalue() == b"" and streamed == []
    # At the limit exactly, it is built.
    await node.export_to(CHAIN, io.BytesIO(), limit=size)
    assert len(streamed) == 5


async def test_an_in_memory_store_says_why_it_cannot_export():
    store = await Store.open(":memory:")
    node = Node(store, clock=FakeClock(), randomness=lambda n: b"\x01" * n, master_key=MASTER)
    await node.create_chain(CHAIN, REGTEST, initial_bits=0x207FFFFF)
    with pytest.raises(SnapshotUnavailableError, match="in-memory"):
        await node.export_to(CHAIN, io.BytesIO())
    node.close()
    await store.close()
