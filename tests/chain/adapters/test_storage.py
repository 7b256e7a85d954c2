"""The storage layout: explicit transactions shared by repositories, one key store for both kinds
of key, and SQLite classes that match the interfaces the engine is typed against."""

import inspect

import pytest

from bot.storage import (
    EpochMessageRepository,
    Outbox,
    OutboxRepository,
    ServerSettingsRepository,
    WebhookRepository,
    Webhooks,
)
from chain.adapters.storage import Store, StoredKey, protocols
from chain.adapters.storage.block_tree import BlockTreeRepository
from chain.adapters.storage.blocks import BlockRepository
from chain.adapters.storage.chains import ChainRepository
from chain.adapters.storage.chaos_mode import ChaosModeRepository
from chain.adapters.storage.energy import EnergyRepository
from chain.adapters.storage.keys import KeyCheckRepository, KeyStore
from chain.adapters.storage.mempool import MempoolRepository
from chain.adapters.storage.operations import OperationRepository
from chain.adapters.storage.outbox import OutboxTableWriter, OutboxWriter
from chain.adapters.storage.protection import ProtectionRepository
from chain.adapters.storage.snapshots import SnapshotRepository
from chain.adapters.storage.validators import ValidatorSettingsRepository
from chain.params import REGTEST
from cogs.services import EpochMessageStore, ServerSettingsStore
from tests.chainkit import genesis_block

IMPLEMENTATIONS = [
    (protocols.Chains, ChainRepository),
    (protocols.Blocks, BlockRepository),
    (protocols.BlockTreeRows, BlockTreeRepository),
    (protocols.Mempool, MempoolRepository),
    (protocols.Operations, OperationRepository),
    (protocols.Snapshots, SnapshotRepository),
    (protocols.Keys, KeyStore),
    (protocols.KeyChecks, KeyCheckRepository),
    (protocols.Protection, ProtectionRepository),
    (protocols.ValidatorSettings, ValidatorSettingsRepository),
    (protocols.Energy, EnergyRepository),
    (protocols.ChaosMode, ChaosModeRepository),
    (OutboxWriter, OutboxTableWriter),
    (Outbox, OutboxRepository),
    (Webhooks, WebhookRepository),
    (ServerSettingsStore, ServerSettingsRepository),
    (EpochMessageStore, EpochMessageRepository),
]


@pytest.fixture
async def store(database_target):
    s = await Store.open(database_target)
    await s.create_chain(1, REGTEST, genesis_block(REGTEST, 1), 0)
    yield s
    await s.close()


@pytest.mark.parametrize(("interface", "implementation"), IMPLEMENTATIONS, ids=lambda x: x.__name__)
def test_each_repository_has_its_interface_methods_with_the_same_parameters(interface, implementation):
    wanted = {n for n, v in vars(interface).items() if callable(v) and not n.startswith("_")}
    assert wanted, interface
    for name in wanted:
        method = getattr(implementation, name, None)
        assert method is not None, f"{implementation.__name__} has no {name}"
        assert list(inspect.signature(method).parameters) == list(
            inspect.signature(getattr(interface, name)).parameters
        ), f"{implementation.__name__}.{name}"


async def test_writes_given_one_transaction_commit_or_roll_back_together(store):
    async with store.db.transaction(1) as tx:
        await store.energy.add(1, pow_cpu_ns=5, tx=tx)
        await store.chains.set_proposed_params(1, REGTEST, tx=tx)
    assert (await store.energy.counters(1)).pow_cpu_ns == 5

    with pytest.raises(RuntimeError, match="after both writes"):
        async with store.db.transaction(1) as tx:
            await store.energy.add(1, pow_cpu_ns=7, tx=tx)
            await store.chains.set_proposed_params(1, None, tx=tx)
            raise RuntimeError("after both writes")
    assert (await store.energy.counters(1)).pow_cpu_ns == 5
    assert (await store.chains.rules(1))[3] == REGTEST  # the withdrawal rolled back with the count


async def test_a_write_without_a_transaction_commits_alone(store):
    await store.energy.add(1, pos_sign_ops=2)
    with pytest.raises(RuntimeError):
        async with store.db.transaction(1) as tx:
            await store.energy.add(1, pos_sign_ops=3, tx=tx)
            raise RuntimeError("roll back")
    assert (await store.energy.counters(1)).pos_sign_ops == 2


async def test_a_callback_after_commit_runs_once_committed_and_never_after_a_rollback(store):
    """What wakes a reader of a transaction's rows (the outbox's) must come when the rows can be seen."""
    calls: list[str] = []

    async def committed_energy() -> int:
        return (await store.energy.counters(1)).pos_sign_ops

    async with store.db.transaction(1) as tx:
        await store.energy.add(1, pos_sign_ops=4, tx=tx)
        tx.call_after_commit(lambda: calls.append("outer"))
        async with store.db.transaction(1, within=tx) as joined:
            # A joined transaction is the caller's: its callback waits for the caller's commit.
            joined.call_after_commit(lambda: calls.append("joined"))
        assert calls == []
    assert calls == ["outer", "joined"]
    assert await committed_energy() == 4

    calls.clear()
    with pytest.raises(RuntimeError):
        async with store.db.transaction(1) as tx:
            await store.energy.add(1, pos_sign_ops=5, tx=tx)
            tx.call_after_commit(lambda: calls.append("rolled back"))
            raise RuntimeError("roll back")
    assert calls == []

    def broken() -> None:
        raise ValueError("a callback that fails")

    async with store.db.transaction(1) as tx:
        await store.energy.add(1, pos_sign_ops=1, tx=tx)
        tx.call_after_commit(broken)
        tx.call_after_commit(lambda: calls.append("still"))
    assert calls == ["still"]  # logged, the others still run, and the commit stands
    assert await committed_energy() == 5


async def test_wallet_and_validator_keys_are_one_key_store_over_two_tables(store):
    assert type(store.wallets) is type(store.validator_keys) is KeyStore
    wallet, validator = StoredKey("alice", b"w" * 32, b"sealed-w"), StoredKey("alice", b"v" * 32, b"sealed-v")
    assert await store.wallets.insert(1, wallet, 1) == wallet
    assert await store.validator_keys.get(1, "alice") is None  # separate tables
    assert await store.validator_keys.insert(1, validator, 2) == validator
    # Insert keeps the first key of an owner, in either table.
    assert await store.wallets.insert(1, StoredKey("alice", b"x" * 32, b"other"), 3) == wallet
    assert await store.validator_keys.all(1) == [validator]
    assert await store.wallets.all(1) == [wallet]
    # A reset deletes the chain's validator keys, never its wallets.
    await store.delete_chain(1)
    assert await store.validator_keys.all(1) == [] and await store.wallets.all(1) == [wallet]


def test_a_key_store_names_only_a_key_table(store):
    with pytest.raises(ValueError, match="not 'outbox'"):
        KeyStore(store.db, "outbox")
