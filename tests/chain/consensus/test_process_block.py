"""process_block: header and body checks, each refusal typed, nothing changed on refusal."""

from dataclasses import replace

import pytest

from chain.consensus.block import Block
from chain.consensus.templates import build_template
from chain.consensus.transition import process_block
from chain.errors import (
    BadCoinbaseError,
    BadParentError,
    BlockTooLargeError,
    CheckProofOfWorkError,
    DuplicateTransactionError,
    InsufficientBalanceError,
    MerkleRootMismatchError,
    StaleBlockError,
    TimeTooNewError,
    TimeTooOldError,
)
from chain.events import BLOCK_MINED, DIFFICULTY_CHANGED, REWARD_PAID
from chain.ledger.accounts import Account, compute_block_subsidy
from chain.params import PLAYGROUND, REGTEST
from chain.pow.difficulty import compute_median_time_past, is_valid_proof_of_work
from tests.chainkit import GENESIS_TIME, key, mine, new_chain, pay, solve

MINER, ALICE, BOB = key("miner"), key("alice"), key("bob")


def snapshot(state):
    return (state.height, state.tip_hash, dict(state.ledger.items()), state.ledger.minted)


def funded_chain():
    state = new_chain()
    mine(state, ALICE.public_key)
    return state


def test_block_pays_subsidy_plus_fees_and_moves_balances():
    state = funded_chain()
    tx = pay(state, ALICE, BOB.public_key, 20, fee=3)
    block = mine(state, MINER.public_key, [tx])
    assert block.coinbase.amount == compute_block_subsidy(2, REGTEST) + 3
    assert state.ledger[ALICE.public_key] == Account(50 - 23, 1)
    assert state.ledger[BOB.public_key] == Account(20, 0)
    assert state.ledger[MINER.public_key].balance == 53
    assert state.ledger.total_balance() == state.ledger.minted == 100


def test_events_of_a_block():
    state = funded_chain()
    now = state.tip.time + 1
    block = solve(build_template(state, MINER.public_key, [], now), REGTEST)
    effects = process_block(state, block, now)
    kinds = [e.kind for e in effects.events]
    assert kinds == [BLOCK_MINED, REWARD_PAID]
    assert effects.events[0].payload["height"] == 2
    assert effects.events[0].payload["hash"] == block.header.hash_hex()
    assert effects.events[1].payload == {"height": 2, "miner": MINER.public_key.hex(), "subsidy": 50, "fees": 0}


def test_difficulty_changed_event_at_retarget():
    from chain.pow.compact import encode_compact

    state = new_chain(PLAYGROUND, bits=encode_compact(PLAYGROUND.pow_limit >> 8))
    for i in range(1, 10):
        mine(state, MINER.public_key, time=GENESIS_TIME + 30 * i)
    now = GENESIS_TIME + 300
    block = solve(build_template(state, MINER.public_key, [], now), PLAYGROUND)
    effects = process_block(state, block, now)
    changed = [e for e in effects.events if e.kind == DIFFICULTY_CHANGED]
    assert len(changed) == 1 and "faster than the target" in changed[0].payload["sentence"]


def test_subsidy_halves():
    params = REGTEST.evolve(halving_interval_blocks=3)
    assert [compute_block_subsidy(h, params) for h in range(0, 11)] == [0, 50, 50, 50, 25, 25, 25, 12, 12, 12, 6]


def _refused(state, block, now, error, match=None):
    before = snapshot(state)
    with pytest.raises(error, match=match):
        process_block(state, block, now)
    assert snapshot(state) == before


def test_invalid_wrong_parent():
    state = funded_chain()
    block = mine(state, MINER.public_key, apply=False)
    bad = replace(block, header=replace(block.header, prev_hash=b"\x11" * 32))
    _refused(state, solve_header(bad), block.header.time, BadParentError, "not in this chain")


def solve_header(block):
    for nonce in range(1 << 16):
        candidate = replace(block, header=block.header.with_nonce(nonce))
        if is_valid_proof_of_work(candidate.hash(), candidate.header.bits, REGTEST):
            return candidate
    raise AssertionError


def test_invalid_stale_block_on_an_old_tip():
    state = funded_chain()
    stale = mine(state, MINER.public_key, apply=False)
    mine(state, ALICE.public_key)  # someone else wins this height
    _refused(state, stale, stale.header.time + 60, StaleBlockError, "already the tip")


def test_invalid_hash_above_target():
    state = funded_chain()
    block = mine(state, MINER.public_key, apply=False)
    for nonce in range(1 << 16):
        candidate = replace(block, header=block.header.with_nonce(nonce))
        if not is_valid_proof_of_work(candidate.hash(), candidate.header.bits, REGTEST):
            break
    _refused(state, candidate, block.header.time, CheckProofOfWorkError, "above the target")


def test_invalid_time_not_after_median():
    state = funded_chain()
    for _ in range(5):
        mine(state, MINER.public_key)
    median = compute_median_time_past(state.headers)
    block = mine(state, MINER.public_key, apply=False)
    at_median = solve_header(replace(block, header=replace(block.header, time=median)))
    _refused(state, at_median, state.tip.time + 60, TimeTooOldError, "not after the median")


def test_invalid_time_too_far_in_future():
    state = funded_chain()
    now = state.tip.time + 10
    future = now + REGTEST.max_future_block_time_s + 1
    block = solve(build_template(state, MINER.public_key, [], future), REGTEST)
    _refused(state, block, now, TimeTooNewError, "in the future")


def test_invalid_merkle_root():
    state = funded_chain()
    tx = pay(state, ALICE, BOB.public_key, 5)
    block = mine(state, MINER.public_key, [tx], apply=False)
    tampered = Block(block.header, block.coinbase, ())  # drop the transfer, keep the header
    tampered = replace(tampered, coinbase=replace(block.coinbase, amount=50))
    _refused(state, tampered, block.header.time, MerkleRootMismatchError, "does not match")


def test_invalid_coinbase_overpays():
    state = funded_chain()
    now = state.tip.time + 60
    template = build_template(state, MINER.public_key, [], now)
    greedy = type(template).build(
        1, state.tip_hash, now, template.header.bits, replace(template.coinbase, amount=51), ()
    )
    _refused(state, solve(greedy, REGTEST), now, BadCoinbaseError, "subsidy 50 plus fees 0")


def test_invalid_coinbase_height():
    state = funded_chain()
    now = state.tip.time + 60
    template = build_template(state, MINER.public_key, [], now)
    wrong = type(template).build(1, state.tip_hash, now, template.header.bits, replace(template.coinbase, height=7), ())
    _refused(state, solve(wrong, REGTEST), now, BadCoinbaseError, "height 7")


def test_invalid_duplicate_transfer():
    state = funded_chain()
    tx = pay(state, ALICE, BOB.public_key, 5)
    now = state.tip.time + 60
    template = build_template(state, MINER.public_key, [tx], now)
    dup = type(template).build(1, state.tip_hash, now, template.header.bits, template.coinbase, (tx, tx))
    _refused(state, solve(dup, REGTEST), now, DuplicateTransactionError)


def test_invalid_too_many_transfers():
    params = REGTEST.evolve(max_block_transfers=1)
    state = new_chain(params)
    mine(state, ALICE.public_key)
    txs = [pay(state, ALICE, BOB.public_key, 1, nonce=n) for n in range(2)]
    now = state.tip.time + 60
    template = build_template(state, MINER.public_key, txs, now)
    _refused(state, solve(template, params), now, BlockTooLargeError, "limit is 1")


def test_invalid_transfer_inside_block_names_its_index():
    state = funded_chain()
    txs = [pay(state, ALICE, BOB.public_key, 30, nonce=0), pay(state, ALICE, BOB.public_key, 30, nonce=1)]
    now = state.tip.time + 60
    block = solve(build_template(state, MINER.public_key, txs, now), REGTEST)
    before = snapshot(state)
    with pytest.raises(InsufficientBalanceError) as info:
        process_block(state, block, now)
    assert any("transfer 1" in note for note in info.value.__notes__)
    assert snapshot(state) == before


def test_milestone_event_when_a_balance_crosses_a_threshold():
    from chain.events import MILESTONE_REACHED, compute_crossed_milestone

    assert compute_crossed_milestone(99, 100) == 100
    assert compute_crossed_milestone(50, 1_200) == 1_000
    assert compute_crossed_milestone(100, 150) is None
    state = funded_chain()  # alice has 50
    now = state.tip.time + 60
    block = solve(build_template(state, ALICE.public_key, [], now), REGTEST)
    effects = process_block(state, block, now)
    milestones = [e.payload for e in effects.events if e.kind == MILESTONE_REACHED]
    assert milestones == [{"height": 2, "account": ALICE.public_key.hex(), "milestone": 100, "balance": 100}]
