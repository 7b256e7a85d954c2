"""OpPool.pending: the pooled operations of one class, typed as that class, in arrival order."""

from chain.pos.op_pool import OpPool
from chain.pos.operations import Deposit, VoluntaryExit, make_deposit
from tests.chainkit import key


def _add(pool: OpPool, operation) -> None:
    pool.commit(pool.prepare(operation))


def test_pending_gives_one_class_in_arrival_order():
    pool = OpPool()
    deposit_a = make_deposit(key("wallet-a"), key("validator-a"), 32, 0, 1)
    exit_1 = VoluntaryExit(5, 1, bytes(64))
    deposit_b = make_deposit(key("wallet-b"), key("validator-b"), 40, 0, 1)
    exit_0 = VoluntaryExit(5, 0, bytes(64))
    for operation in (deposit_a, exit_1, deposit_b, exit_0):
        _add(pool, operation)
    assert pool.pending(Deposit) == [deposit_a, deposit_b]
    assert pool.pending(VoluntaryExit) == [exit_1, exit_0]


def test_pending_of_an_empty_kind_is_empty():
    pool = OpPool()
    _add(pool, VoluntaryExit(5, 0, bytes(64)))
    assert pool.pending(Deposit) == []
