"""The explorer's reads of old blocks go to the store, and answer what reading the whole chain did."""

from __future__ import annotations

import os

from chain.adapters.node import Node
from chain.adapters.storage import Store
from chain.consensus.retargets import retarget_history
from chain.hashing import hash_to_display
from chain.params import PLAYGROUND
from chain.pow.difficulty import explain_retarget
from cogs.explorer import block_choices, resolve_block_height
from tests.chainkit import CHAIN_ID, GENESIS_TIME, solve


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> float:
        return float(self.now)


async def long_chain(tmp_path, blocks: int = 250):
    """PLAYGROUND (a retarget every 10 blocks), windows alternately fast and slow: the bits change
    at every retarget, and the window of headers in memory has long moved past the first ones."""
    clock = Clock(GENESIS_TIME)
    node = Node(await Store.open(tmp_path / "long.sqlite3"), clock=clock, randomness=os.urandom, master_key=bytes(32))
    await node.create_chain(CHAIN_ID, PLAYGROUND, initial_bits=0x207FFFFF)
    miner = await node.address(CHAIN_ID, "miner")
    for height in range(1, blocks + 1):
        clock.now += 30 if (height - 1) // 10 % 2 == 0 else 120
        await node.submit_block(CHAIN_ID, solve(node.template(CHAIN_ID, miner), PLAYGROUND))
    return node


async def test_retarget_history_from_the_store_matches_the_whole_chain(tmp_path):
    node = await long_chain(tmp_path)
    state = node.chain(CHAIN_ID).state
    assert state.headers.oldest_kept > 1
    headers = [b.header for b in (await node.store.load_chain(CHAIN_ID)).blocks]
    changed = [h for h in range(1, len(headers)) if headers[h].bits != headers[h - 1].bits]
    assert len(changed) > 5
    expected = [explain_retarget(headers[:h], PLAYGROUND) for h in reversed(changed[-5:])]
    last_height = state.height - state.height % PLAYGROUND.retarget_window_blocks
    recent, last = await retarget_history(node.store.blocks, CHAIN_ID, state)
    assert recent == expected
    assert last == explain_retarget(headers[:last_height], PLAYGROUND)
    await node.store.close()


async def test_block_choices_and_hash_lookups_match_a_scan_of_the_chain(tmp_path):
    node = await long_chain(tmp_path, blocks=150)
    state = node.chain(CHAIN_ID).state
    hashes = [b.hash() for b in (await node.store.load_chain(CHAIN_ID)).blocks]
    shown = [hash_to_display(h) for h in hashes]

    def scanned(text: str) -> list[str]:  # what block_choices did over every hash in memory
        return [str(h) for h in range(state.height, -1, -1)
                if not text or str(h).startswith(text) or shown[h].startswith(text)][:25]

    for typed in ("", "1", "12", "149", "0", "00", "7", shown[3][:4], shown[140][:8], "zz"):
        choices = await block_choices(node.store.blocks, CHAIN_ID, state.height, typed)
        assert [c.value for c in choices] == scanned(typed), typed
        for c in choices:
            assert c.name == f"#{c.value} {shown[int(c.value)][:16]}…"
    assert await resolve_block_height(node.store.blocks, CHAIN_ID, state.height, shown[5][:12]) == 5
    assert await resolve_block_height(node.store.blocks, CHAIN_ID, state.height, shown[5]) == 5
    await node.store.close()


async def test_transaction_prefix_lookups_match_a_scan_including_rows_from_before_migration_10(tmp_path):
    """`/chain tx` finds ids by the prefix members see (byte-reversed hex) through an index; rows written
    before the index existed are back-filled by migration 10."""
    import sqlite3

    from tests.chain.adapters.test_store import undo_migrations

    path = tmp_path / "old.sqlite3"
    clock = Clock(GENESIS_TIME)
    old = Node(await Store.open(path), clock=clock, randomness=os.urandom, master_key=bytes(32))
    await old.create_chain(CHAIN_ID, PLAYGROUND, initial_bits=0x207FFFFF)
    miner = await old.address(CHAIN_ID, "miner")
    for _ in range(40):
        clock.now += 60
        await old.submit_block(CHAIN_ID, solve(old.template(CHAIN_ID, miner), PLAYGROUND))
    await old.store.close()
    with sqlite3.connect(path) as db:
        undo_migrations(db, 10)

    store = await Store.open(path)  # migrates to the newest schema
    node = Node(store, clock=clock, randomness=os.urandom, master_key=bytes(32))
    await node.load()
    clock.now += 60
    await node.submit_block(CHAIN_ID, solve(node.template(CHAIN_ID, miner), PLAYGROUND))  # one after it
    # The genesis block's coinbase pays nobody and is not a stored transaction.
    txids = [hash_to_display(b.txids()[0]) for b in (await store.load_chain(CHAIN_ID)).blocks[1:]]
    for prefix in ("", "0", "a", "f", "7", txids[5][:6], txids[-1][:3], txids[0]):
        expected = [t for t in reversed(txids) if t.startswith(prefix)]
        matches = await node.find_transactions(CHAIN_ID, prefix, 25)
        assert matches.pending == ()
        assert matches.confirmed_count == (len(expected) if prefix else 25), prefix
        assert [hash_to_display(bytes(t.txid)) for t in matches.confirmed] == expected[:25], prefix
    await store.close()


async def test_a_retarget_after_a_block_time_change_is_explained_from_the_change_on(tmp_path):
    """Issue 9 item 12: the retarget after a block time change measures from the committing block;
    /chain difficulty explains it with the same window (5 intervals of 120 s, not 9 since genesis)."""
    from chain.pow.difficulty import SpacingChange

    clock = Clock(GENESIS_TIME)
    node = Node(await Store.open(tmp_path / "spacing.sqlite3"), clock=clock, randomness=os.urandom,
                master_key=bytes(32))
    await node.create_chain(CHAIN_ID, PLAYGROUND, initial_bits=0x2000FFFF)
    miner = await node.address(CHAIN_ID, "miner")
    for height in range(1, 13):
        if height == 4:
            await node.propose_params(CHAIN_ID, PLAYGROUND.evolve(target_spacing_s=120))
        clock.now += 60 if height <= 4 else 120
        state = node.chain(CHAIN_ID).state
        await node.submit_block(CHAIN_ID, solve(node.template(CHAIN_ID, miner), state.params))
    state = node.chain(CHAIN_ID).state
    headers = [b.header for b in (await node.store.load_chain(CHAIN_ID)).blocks]
    _recent, last = await retarget_history(node.store.blocks, CHAIN_ID, state)
    assert last == explain_retarget(headers[:10], state.params, SpacingChange(5, 60))
    assert (last.height, last.actual_timespan_s, last.target_timespan_s) == (10, 600, 600)
    assert last.new_bits == headers[10].bits
    await node.store.close()
