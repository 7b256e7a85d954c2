"""Property: supply is conserved through random valid and invalid transfer sequences.

After every block, the sum of all balances equals every subsidy minted so far,
no balance is negative, and refused inputs leave the state exactly as it was.
"""

import contextlib
from collections import ChainMap

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from chain.consensus.templates import build_template
from chain.consensus.transition import process_block
from chain.errors import ChainError
from chain.ledger.accounts import compute_block_subsidy
from chain.ledger.mempool import Mempool
from chain.ledger.transaction import Transfer, make_transfer
from chain.params import REGTEST
from tests.chainkit import key, new_chain, solve

PARAMS = REGTEST.evolve(halving_interval_blocks=4, initial_subsidy_points=40)
KEYS = [key(f"member-{i}") for i in range(4)]

pay_op = st.tuples(
    st.just("pay"),
    st.integers(0, 3),  # sender
    st.integers(0, 3),  # recipient (may equal sender: refused)
    st.one_of(st.integers(1, 20), st.integers(-5, 120)),  # amount: mostly valid, sometimes not
    st.one_of(st.integers(0, 3), st.integers(-2, 15)),  # fee
    st.sampled_from([0, 0, 0, -1, 1, 2]),  # nonce offset from the next free one (replays and gaps)
    st.sampled_from([False, False, False, True]),  # forge the signature
)
mine_op = st.tuples(
    st.just("mine"), st.integers(0, 3), st.sampled_from([False, False, False, True])
)  # miner, smuggle a bad transfer in
ops = st.lists(st.one_of(pay_op, pay_op, mine_op), min_size=5, max_size=40)


def snapshot(state):
    return (state.height, dict(state.ledger.items()), state.ledger.minted)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_supply_is_conserved(operations):
    state = new_chain(PARAMS)
    mempool = Mempool(PARAMS, state.chain_id)
    arrival = 0
    # Everyone mines once first, so that most generated transfers have funds behind them.
    opening = [("mine", i, False) for i in range(len(KEYS))]
    for op in opening + operations:
        if op[0] == "pay":
            _, s, r, amount, fee, offset, forge = op
            sender = KEYS[s]
            nonce = max(0, mempool.next_nonce(sender.public_key, state.ledger) + offset)
            try:
                tx = make_transfer(sender, KEYS[r].public_key, amount, fee, nonce, state.chain_id)
            except ChainError:
                tx = Transfer(sender.public_key, KEYS[r].public_key, amount, fee, nonce, bytes(64))
            if forge:
                tx = Transfer(tx.sender, tx.recipient, tx.amount, tx.fee, tx.nonce, bytes(64))
            arrival += 1
            with contextlib.suppress(ChainError):
                mempool.add(tx, state.ledger, arrival)
            continue

        _, m, smuggle = op
        now = state.tip.time + 30
        transfers = mempool.select(PARAMS.max_block_transfers)
        if smuggle:
            # A block that spends more than a sender has must be refused whole.
            poor = KEYS[(m + 1) % 4]
            nonce = mempool.next_nonce(poor.public_key, state.ledger)
            transfers = [*transfers, make_transfer(poor, KEYS[m].public_key, 10**6, 0, nonce, state.chain_id)]
        block = solve(build_template(state, KEYS[m].public_key, transfers, now), PARAMS)
        before = snapshot(state)
        try:
            effects = process_block(state, block, now)
        except ChainError:
            assert smuggle
            assert snapshot(state) == before
            continue
        state.apply(block, effects)
        event(f"block confirmed transfers: {bool(block.transfers)}")
        mempool.discard(mempool.invalidated_by(ChainMap({}, state.ledger)))

        minted = sum(compute_block_subsidy(h, PARAMS) for h in range(1, state.height + 1))
        assert state.ledger.minted == minted
        assert state.ledger.total_balance() == minted
        assert all(a.balance >= 0 and a.nonce >= 0 for a in state.ledger.values())
