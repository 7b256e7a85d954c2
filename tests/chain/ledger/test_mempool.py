"""Mempool: admission, replacement, bounds, and fee-then-arrival ordering."""

import pytest

from chain.errors import (
    AlreadyKnownError,
    BadSignatureError,
    InsufficientBalanceError,
    MempoolFullError,
    NonceGapError,
    NonceReplayError,
    ReplacementRejectedError,
    TooManyPendingError,
    UnknownAccountError,
)
from chain.ledger.accounts import Account
from chain.ledger.mempool import Mempool, compute_min_replacement_fee
from chain.ledger.transaction import make_transfer
from chain.params import REGTEST
from tests.chainkit import CHAIN_ID, key

ALICE, BOB, CAROL, DAVE = key("alice"), key("bob"), key("carol"), key("dave")
RICH = {k.public_key: Account(1_000, 0) for k in (ALICE, BOB, CAROL, DAVE)}


def tx(sender, amount=10, fee=1, nonce=0, recipient=None):
    recipient = recipient or key("sink").public_key
    return make_transfer(sender, recipient, amount, fee, nonce, CHAIN_ID)


def pool(**changes):
    return Mempool(REGTEST.evolve(**changes) if changes else REGTEST, CHAIN_ID)


def test_select_orders_by_fee_then_arrival():
    mp = pool()
    a = mp.add(tx(ALICE, fee=1), RICH, arrival=1).entry.tx
    b = mp.add(tx(BOB, fee=5), RICH, arrival=2).entry.tx
    c = mp.add(tx(CAROL, fee=1), RICH, arrival=3).entry.tx
    d = mp.add(tx(DAVE, fee=5), RICH, arrival=4).entry.tx
    assert mp.select(10) == [b, d, a, c]
    assert mp.select(2) == [b, d]


def test_select_keeps_each_senders_nonces_in_order():
    mp = pool()
    low = mp.add(tx(ALICE, fee=1, nonce=0), RICH, 1).entry.tx
    high = mp.add(tx(ALICE, fee=9, nonce=1), RICH, 2).entry.tx
    other = mp.add(tx(BOB, fee=5), RICH, 3).entry.tx
    assert mp.select(10) == [other, low, high]


def test_queued_nonces_need_no_gap():
    mp = pool()
    mp.add(tx(ALICE, nonce=0), RICH, 1)
    mp.add(tx(ALICE, nonce=1), RICH, 2)
    assert mp.next_nonce(ALICE.public_key, RICH) == 2
    with pytest.raises(NonceGapError, match="the next nonce is 2"):
        mp.add(tx(ALICE, nonce=3), RICH, 3)


def test_replacement_needs_a_ten_percent_higher_fee():
    mp = pool()
    mp.add(tx(ALICE, fee=10), RICH, 1)
    assert compute_min_replacement_fee(10, REGTEST) == 11
    with pytest.raises(ReplacementRejectedError, match="at least 11"):
        mp.add(tx(ALICE, amount=11, fee=10), RICH, 2)
    admission = mp.add(tx(ALICE, amount=12, fee=11), RICH, 3)
    assert admission.replaced is not None and admission.replaced.tx.fee == 10
    assert len(mp) == 1 and mp.select(1)[0].amount == 12


def test_replacement_of_a_zero_fee_needs_one_point():
    assert compute_min_replacement_fee(0, REGTEST) == 1


def test_balance_covers_all_pending_spends():
    accounts = {ALICE.public_key: Account(25, 0)}
    mp = pool()
    mp.add(tx(ALICE, amount=10, fee=1, nonce=0), accounts, 1)
    mp.add(tx(ALICE, amount=10, fee=1, nonce=1), accounts, 2)
    with pytest.raises(InsufficientBalanceError, match="on top of pending"):
        mp.add(tx(ALICE, amount=3, fee=1, nonce=2), accounts, 3)


def test_invalid_replayed_nonce():
    with pytest.raises(NonceReplayError):
        pool().add(tx(ALICE, nonce=0), {ALICE.public_key: Account(100, 1)}, 1)


def test_invalid_unknown_sender():
    with pytest.raises(UnknownAccountError):
        pool().add(tx(ALICE), {}, 1)


def test_invalid_signature():
    from dataclasses import replace

    with pytest.raises(BadSignatureError):
        pool().add(replace(tx(ALICE), fee=0), RICH, 1)


def test_invalid_duplicate():
    mp = pool()
    t = tx(ALICE)
    mp.add(t, RICH, 1)
    with pytest.raises(AlreadyKnownError):
        mp.add(t, RICH, 2)


def test_invalid_too_many_pending_for_one_sender():
    mp = pool(max_pending_per_account=2)
    mp.add(tx(ALICE, nonce=0), RICH, 1)
    mp.add(tx(ALICE, nonce=1), RICH, 2)
    with pytest.raises(TooManyPendingError):
        mp.add(tx(ALICE, nonce=2), RICH, 3)


def test_full_pool_evicts_the_cheapest_tail_for_a_higher_fee():
    mp = pool(mempool_max_transfers=2)
    mp.add(tx(ALICE, fee=1, nonce=0), RICH, 1)
    mp.add(tx(BOB, fee=3), RICH, 2)
    with pytest.raises(MempoolFullError, match="a fee of at least 2"):
        mp.add(tx(CAROL, fee=1), RICH, 3)
    admission = mp.add(tx(CAROL, fee=2), RICH, 4)
    assert [e.tx.sender for e in admission.evicted] == [ALICE.public_key]
    assert len(mp) == 2


def test_invalid_replacement_or_eviction_when_the_caller_forbids_them():
    """The bot's own payments: every pending one was acknowledged, so none may push another out."""
    mp = pool(mempool_max_transfers=2)
    mp.add(tx(ALICE, fee=1, nonce=0), RICH, 1)
    with pytest.raises(ReplacementRejectedError, match="not replaced unless you ask"):
        mp.check_admission(tx(ALICE, fee=50, nonce=0), RICH, 2, replace=False)
    mp.add(tx(BOB, fee=1), RICH, 3)
    with pytest.raises(MempoolFullError, match="try again after the next block"):
        mp.check_admission(tx(CAROL, fee=50), RICH, 4, evict=False)
    assert len(mp) == 2 and mp.check_admission(tx(CAROL, fee=50), RICH, 5).evicted


def test_check_admission_changes_nothing_until_commit():
    mp = pool()
    admission = mp.check_admission(tx(ALICE), RICH, 1)
    assert len(mp) == 0
    mp.commit(admission)
    assert admission.entry.txid in mp


def test_invalidated_by_a_new_tip():
    mp = pool()
    a0 = mp.add(tx(ALICE, amount=10, nonce=0), RICH, 1).entry
    a1 = mp.add(tx(ALICE, amount=10, nonce=1), RICH, 2).entry
    b0 = mp.add(tx(BOB, amount=10, nonce=0), RICH, 3).entry
    # A block confirmed a0, and Bob's balance was spent elsewhere.
    after = {ALICE.public_key: Account(979, 1), BOB.public_key: Account(5, 0)}
    gone = mp.invalidated_by(after)
    assert {e.txid for e in gone} == {a0.txid, b0.txid}
    mp.discard(gone)
    assert [e.txid for e in mp.entries()] == [a1.txid]


def test_restore_keeps_arrival_order_and_drops_stale_entries():
    mp = pool()
    entries = [mp.add(tx(ALICE, nonce=n), RICH, 10 + n).entry for n in range(3)]
    fresh = pool()
    dropped = fresh.restore(reversed(entries), {ALICE.public_key: Account(1_000, 1)})
    assert [e.tx.nonce for e in dropped] == [0]
    assert [e.arrival for e in fresh.entries()] == [11, 12]
