"""A network split's rules (chain/games/network_split.py): each side's bookkeeping, what its next
block carries, and which branch the heal keeps."""

import pytest

from chain.errors import SplitBranchMismatchError
from chain.games.network_split import (
    SIDE_A,
    SIDE_B,
    SideBlock,
    SplitBranch,
    compute_publish_order,
    compute_side_account,
    compute_side_next_nonce,
    compute_side_spendable,
    confirmed_on_both,
    count_double_spends,
    predict_winner,
    select_side_transfers,
)
from chain.ledger.accounts import Account
from chain.ledger.transaction import make_transfer
from tests.chainkit import CHAIN_ID, key

BASE = bytes(32)
ALICE, BOB, CAROL, DAVE = key("alice"), key("bob"), key("carol"), key("dave")
START = {ALICE.public_key: Account(100, 0), CAROL.public_key: Account(40, 3)}


def base(address: bytes) -> Account:
    return START.get(address, Account())


def pay(sender, recipient, amount, nonce, fee=0):
    return make_transfer(sender, recipient.public_key, amount, fee, nonce, CHAIN_ID)


def block(branch: SplitBranch, n: int, *, work: int = 10, miner=BOB, transfers=(), order: int = 0) -> SideBlock:
    return SideBlock(
        block_hash=bytes([n]) * 32, parent_hash=branch.tip_hash, height=branch.height + 1, work=work,
        miner=miner.public_key, reward=50, transfers=tuple(transfers), found_order=order or n,
    )


def side(name: str = SIDE_A) -> SplitBranch:
    return SplitBranch(name, BASE, 7)


def test_a_branch_grows_from_the_base_and_counts_its_work():
    a = side()
    assert (a.tip_hash, a.height, a.work, a.first_found) == (BASE, 7, 0, None)
    a.append(block(a, 1, work=10))
    a.append(block(a, 2, work=12))
    assert (a.tip_hash, a.height, a.work, a.first_found) == (bytes([2]) * 32, 9, 22, 1)


def test_invalid_block_not_on_the_side_tip_is_refused_and_changes_nothing():
    a = side()
    first = block(a, 1)
    a.append(first)
    stale = SideBlock(bytes([9]) * 32, BASE, 8, 10, BOB.public_key, 50, (), 2)
    with pytest.raises(SplitBranchMismatchError, match="does not extend side A's tip, block 8"):
        a.append(stale)
    wrong_height = SideBlock(bytes([9]) * 32, first.block_hash, 10, 10, BOB.public_key, 50, (), 2)
    with pytest.raises(SplitBranchMismatchError):
        a.append(wrong_height)
    assert a.blocks == [first]


def test_a_side_account_adds_the_side_blocks_to_the_balances_at_the_split():
    a = side()
    a.append(block(a, 1, miner=CAROL, transfers=[pay(ALICE, BOB, 30, 0, fee=2), pay(CAROL, DAVE, 5, 3)]))
    assert compute_side_account(a, base, ALICE.public_key) == Account(68, 1)
    assert compute_side_account(a, base, CAROL.public_key) == Account(40 + 50 - 5, 4)
    assert compute_side_account(a, base, BOB.public_key) == Account(30, 0)
    assert compute_side_account(a, base, DAVE.public_key) == Account(5, 0)


def test_side_payments_take_the_next_nonce_there_and_are_spent_from_its_balance():
    a = side()
    assert compute_side_next_nonce(a, base, CAROL.public_key) == 3
    a.pool.append(pay(CAROL, BOB, 10, 3))
    assert compute_side_next_nonce(a, base, CAROL.public_key) == 4
    assert compute_side_spendable(a, base, CAROL.public_key) == 30
    # Confirmed on the side, it leaves the pool; the nonce stays used.
    a.append(block(a, 1, transfers=[a.pool[0]]))
    assert a.pool == [] and compute_side_next_nonce(a, base, CAROL.public_key) == 4


def test_a_side_block_carries_its_own_payments_first_then_the_mempool_valid_on_its_branch():
    a = side()
    own = pay(CAROL, BOB, 30, 3)
    a.pool.append(own)
    spent_twice = pay(CAROL, DAVE, 30, 3)  # the same nonce, heard from the mempool: a double spend
    later = pay(CAROL, DAVE, 5, 4)  # carol's next one: fits after her side payment
    too_much = pay(CAROL, DAVE, 9, 5)  # 40 - 30 - 5 = 5 left
    alice = pay(ALICE, BOB, 10, 0)
    chosen = select_side_transfers(a, base, [alice, too_much, later, spent_twice], limit=10)
    assert chosen == [own, alice, later]
    assert select_side_transfers(a, base, [alice, later], limit=1) == [own]


def test_a_payment_already_confirmed_on_the_side_is_not_carried_again():
    a = side()
    tx = pay(ALICE, BOB, 10, 0)
    a.append(block(a, 1, transfers=[tx]))
    nxt = pay(ALICE, BOB, 10, 1)
    assert select_side_transfers(a, base, [tx, nxt], limit=10) == [nxt]


def test_the_same_payment_confirms_on_both_sides_and_a_double_spend_is_counted():
    a, b = side(SIDE_A), side(SIDE_B)
    both = pay(ALICE, BOB, 10, 0)
    a.append(block(a, 1, transfers=[both, pay(CAROL, DAVE, 30, 3)]))
    b.append(block(b, 2, transfers=[both, pay(CAROL, BOB, 30, 3)]))
    assert confirmed_on_both(a, b) == 1
    assert count_double_spends(a, b) == 1


def test_the_heavier_branch_wins_whatever_the_order():
    a, b = side(SIDE_A), side(SIDE_B)
    a.append(block(a, 1, work=10, order=1))
    b.append(block(b, 2, work=10, order=2))
    b.append(block(b, 3, work=10, order=3))
    assert predict_winner(a, b) == SIDE_B
    # Work, not height: one harder block outweighs two easy ones.
    a2 = side(SIDE_A)
    a2.append(block(a2, 4, work=25, order=4))
    assert predict_winner(a2, b) == SIDE_A


def test_equal_work_keeps_the_branch_whose_first_block_was_found_first():
    a, b = side(SIDE_A), side(SIDE_B)
    b.append(block(b, 1, work=10, order=1))
    a.append(block(a, 2, work=10, order=2))
    assert [x.side for x in compute_publish_order(a, b)] == [SIDE_B, SIDE_A]
    assert predict_winner(a, b) == SIDE_B


def test_a_side_without_blocks_publishes_last_and_neither_means_no_winner():
    a, b = side(SIDE_A), side(SIDE_B)
    assert predict_winner(a, b) is None
    assert [x.side for x in compute_publish_order(a, b)] == [SIDE_A, SIDE_B]
    b.append(block(b, 1))
    assert [x.side for x in compute_publish_order(a, b)] == [SIDE_B, SIDE_A]
    assert predict_winner(a, b) == SIDE_B
