"""The ``epoch_participation`` table: each epoch's end stored with the block that ended it, gone
with that block when a reorg takes it off, and read back for the participation chart."""

from __future__ import annotations

import sqlite3

import pytest

from chain.adapters.storage import MIGRATIONS, Store
from chain.consensus.genesis import make_genesis_block
from chain.consensus.stake_chart_data import EpochRecord
from chain.params import REGTEST
from tests.chain.adapters.test_store import undo_migrations
from tests.chainkit import CHAIN_ID, GENESIS_TIME
from tests.poskit import Harness, new_consensus_chain, pos_config, validator_keys

UNITS = 10**9
PER_EPOCH = 4


class Recording(Harness):
    """A harness that keeps each block's effects, to store them."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.effects = []

    def apply(self, block, now=None):
        effects = super().apply(block, now)
        self.effects.append(effects)
        return effects


@pytest.fixture
async def store(tmp_path):
    s = await Store.open(tmp_path / "epochs.sqlite3")
    yield s
    await s.close()


async def stored_chain(store: Store, epochs: int) -> Recording:
    config = pos_config(4, slots_per_epoch=PER_EPOCH)
    state = new_consensus_chain(config)
    genesis = make_genesis_block(REGTEST, CHAIN_ID, GENESIS_TIME, 0x207FFFFF, config)
    assert genesis.hash() == state.tip_hash
    await store.create_chain(
        CHAIN_ID, REGTEST, genesis, GENESIS_TIME, consensus=config, accounts=dict(state.ledger.items()),
    )
    harness = Recording(state, validator_keys(4))
    harness.run_epochs(epochs, voters=[0, 1, 2])
    for block, effects in zip(harness.blocks, harness.effects, strict=True):
        await store.append_block(CHAIN_ID, block, effects, [], GENESIS_TIME)
    return harness


async def test_each_epoch_end_is_stored_with_the_block_that_ended_it(store):
    harness = await stored_chain(store, 4)
    records = await store.blocks.epoch_records(CHAIN_ID, 100)
    assert records == [
        EpochRecord(0, 128 * UNITS, 96 * UNITS, 0, False, None, None),
        EpochRecord(1, 128 * UNITS, 96 * UNITS, 1, False, None, None),
        EpochRecord(2, 128 * UNITS, 96 * UNITS, 2, False, 2, None),
        EpochRecord(3, 128 * UNITS, 96 * UNITS, 1, False, 3, 2),
    ]
    # Epoch e ends with the first block of epoch e + 1 (slot (e + 1) * PER_EPOCH, block height = slot here).
    rows = await store.db.fetchall("SELECT epoch, height FROM epoch_participation WHERE chain_id = ?", (CHAIN_ID,))
    assert sorted(rows) == [(e, (e + 1) * PER_EPOCH) for e in range(4)]
    assert len(harness.blocks) == 4 * PER_EPOCH
    # The last ``last`` recorded epochs, oldest first.
    assert [r.epoch for r in await store.blocks.epoch_records(CHAIN_ID, 2)] == [2, 3]


async def test_a_disconnected_block_takes_its_epoch_end_with_it(store):
    harness = await stored_chain(store, 3)
    assert [r.epoch for r in await store.blocks.epoch_records(CHAIN_ID, 10)] == [0, 1, 2]
    # Take the blocks back to the one that ended epoch 1 (height 2 * PER_EPOCH), newest first.
    gone = [b.hash() for b in reversed(harness.blocks[2 * PER_EPOCH - 1:])]
    await store.reorganize(CHAIN_ID, gone, [], [], GENESIS_TIME)
    assert [r.epoch for r in await store.blocks.epoch_records(CHAIN_ID, 10)] == [0]
    # Connected again (as a reorg back would), the epoch ends are recorded again.
    connect = list(zip(harness.blocks, harness.effects, strict=True))[2 * PER_EPOCH - 1:]
    await store.reorganize(CHAIN_ID, [], connect, [], GENESIS_TIME)
    assert [r.epoch for r in await store.blocks.epoch_records(CHAIN_ID, 10)] == [0, 1, 2]


async def test_a_deleted_chain_takes_its_epoch_ends_with_it(store):
    await stored_chain(store, 2)
    await store.delete_chain(CHAIN_ID)
    assert await store.db.fetchall("SELECT * FROM epoch_participation") == []


async def test_migration_18_adds_the_table_to_an_existing_database(tmp_path):
    path = tmp_path / "before-18.sqlite3"
    store = await Store.open(path)
    await stored_chain(store, 2)
    await store.close()
    with sqlite3.connect(path) as db:  # the database as the migration before 18 left it
        undo_migrations(db, 18)

    store = await Store.open(path)
    try:
        assert await store.db.schema_version() == MIGRATIONS[-1][0]
        # Epochs that ended before the migration have no record; the chain itself is untouched.
        assert await store.blocks.epoch_records(CHAIN_ID, 10) == []
        assert await store.blocks.tip_height(CHAIN_ID) == 2 * PER_EPOCH
    finally:
        await store.close()
