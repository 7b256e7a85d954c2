"""Undo records: disconnecting a block is the exact inverse of connecting it, the record survives its
bytes, and a reorg returns still-valid transfers to the mempool and drops the double spends."""

from __future__ import annotations

import contextlib
import hashlib
import struct
from collections import ChainMap

import pytest
from hypothesis import HealthCheck, event, given, settings

from chain.consensus.block import Block
from chain.consensus.state import ChainState
from chain.consensus.templates import build_template
from chain.consensus.transition import process_block
from chain.consensus.undo import (
    MAGIC,
    AccountUndo,
    BlockUndo,
    compute_block_undo,
    compute_returned_transfers,
    process_disconnect_block,
    process_disconnect_blocks,
)
from chain.errors import (
    ChainError,
    DisconnectOrderError,
    EncodingError,
    UndoEncodingError,
    UndoError,
    UndoMismatchError,
)
from chain.hashing import sha256d
from chain.ledger.accounts import Account, Ledger, compute_block_subsidy
from chain.ledger.mempool import Mempool
from chain.ledger.transaction import make_transfer
from chain.params import REGTEST
from tests.chain.ledger.test_supply_property import KEYS, PARAMS, ops
from tests.chainkit import genesis_block, key, new_chain, pay, solve
from tests.poskit import merged_chain_with_exit_and_slashing, new_consensus_chain

ALICE, BOB, CAROL, MERCHANT, ATTACKER_TOO = (key(n) for n in ("alice", "bob", "carol", "merchant", "attacker-2"))


def view(ledger: Ledger) -> tuple[dict[bytes, Account], int]:
    """Everything a ledger holds: every account (so the account set too) and the points minted."""
    return dict(ledger.items()), ledger.minted


def connect(state: ChainState, block: Block, now: int | None = None, proposed=None) -> BlockUndo:
    """Process and apply ``block``; return its undo record, computed before the ledger moves."""
    now = now if now is not None else block.header.time
    effects = process_block(state, block, now, proposed)
    undo = compute_block_undo(state.ledger, effects, state.tip_hash)
    state.apply(block, effects)
    return undo


def mine_block(state: ChainState, miner: bytes, transfers=(), proposed=None) -> Block:
    now = state.tip.time + state.params.target_spacing_s
    return solve(build_template(state, miner, list(transfers), now, proposed_params=proposed), state.params)


def replay(blocks: list[Block], params=REGTEST) -> ChainState:
    """A second state on the same blocks: the fork point another branch grows from."""
    state = new_chain(params)
    for block in blocks:
        state.apply(block, process_block(state, block, block.header.time))
    return state


def test_connect_then_disconnect_returns_the_identical_ledger():
    state = new_chain()
    funding = mine_block(state, ALICE.public_key)
    connect(state, funding)
    before = view(state.ledger)
    # Transfers with fees to a new account (bob), alice's nonce moving twice, a new miner (carol).
    transfers = [pay(state, ALICE, BOB.public_key, 20, fee=3), pay(state, ALICE, BOB.public_key, 5, fee=1, nonce=1)]
    block = mine_block(state, CAROL.public_key, transfers)
    undo = connect(state, block)
    assert state.ledger[BOB.public_key] == Account(25, 0)
    assert state.ledger[CAROL.public_key] == Account(50 + 4, 0)
    assert state.ledger[ALICE.public_key] == Account(50 - 29, 2)
    assert {e.address: e.before for e in undo.accounts} == {
        ALICE.public_key: Account(50, 0), BOB.public_key: None, CAROL.public_key: None,
    }
    assert (undo.height, undo.block_hash, undo.parent_hash, undo.minted) == (2, block.hash(), funding.hash(), 50)

    restored = process_disconnect_block(state.ledger, undo, tip_hash=state.tip_hash)
    assert view(restored) == before
    assert BOB.public_key not in restored and CAROL.public_key not in restored
    assert view(state.ledger) != before  # the ledger given is not changed
    # All the way back to genesis: nothing left, nothing minted.
    effects = process_block(replay([]), funding, funding.header.time)
    first = compute_block_undo(Ledger(), effects, genesis_block().hash())
    assert view(process_disconnect_block(restored, first, tip_hash=funding.hash())) == ({}, 0)


def test_a_parameter_change_is_recorded_and_round_trips():
    state = new_chain()
    connect(state, mine_block(state, ALICE.public_key))
    richer = state.params.evolve(initial_subsidy_points=80)
    undo = connect(state, mine_block(state, ALICE.public_key, proposed=richer), proposed=richer)
    assert undo.params_change == richer
    assert BlockUndo.deserialize(undo.serialize()) == undo


def test_a_miner_whose_account_existed_is_restored_not_removed():
    state = new_chain()
    connect(state, mine_block(state, ALICE.public_key))
    before = view(state.ledger)
    undo = connect(state, mine_block(state, ALICE.public_key))
    assert undo.accounts == (AccountUndo(ALICE.public_key, Account(50, 0), Account(100, 0)),)
    assert view(process_disconnect_block(state.ledger, undo)) == before


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_disconnecting_every_block_in_reverse_gives_back_the_start(operations):
    """Random valid transfer sequences (the supply property's generator): connect N blocks, then
    disconnect them all, tip first; every step equals the ledger recorded at that height, supply is
    conserved at each step, and each record survives its bytes."""
    state = new_chain(PARAMS)
    mempool = Mempool(PARAMS, state.chain_id)
    ledgers = [view(state.ledger)]
    undos: list[BlockUndo] = []
    blocks: list[Block] = []
    arrival = 0
    for op in [("mine", i, False) for i in range(len(KEYS))] + operations:
        if op[0] == "pay":
            _, s, r, amount, fee, offset, _forge = op
            nonce = max(0, mempool.next_nonce(KEYS[s].public_key, state.ledger) + offset)
            arrival += 1
            with contextlib.suppress(ChainError):
                mempool.add(make_transfer(KEYS[s], KEYS[r].public_key, amount, fee, nonce, state.chain_id),
                            state.ledger, arrival)
            continue
        block = solve(
            build_template(state, KEYS[op[1]].public_key, mempool.select(PARAMS.max_block_transfers),
                           state.tip.time + 30),
            PARAMS,
        )
        undo = connect(state, block)
        assert BlockUndo.deserialize(undo.serialize()) == undo
        undos.append(undo)
        blocks.append(block)
        ledgers.append(view(state.ledger))
        mempool.discard(mempool.invalidated_by(ChainMap({}, state.ledger)))

    ledger, tip = state.ledger, state.tip_hash
    for height in range(state.height, 0, -1):
        ledger = process_disconnect_block(ledger, undos[height - 1], tip_hash=tip)
        tip = undos[height - 1].parent_hash
        assert view(ledger) == ledgers[height - 1]
        minted = sum(compute_block_subsidy(h, PARAMS) for h in range(1, height))
        assert ledger.total_balance() == ledger.minted == minted
    assert view(ledger) == ({}, 0) and tip == state.genesis_hash
    event(f"blocks with transfers: {min(3, sum(1 for b in blocks if b.transfers))}")
    # The same walk in one call.
    walked, walked_to = process_disconnect_blocks(state.ledger, state.tip_hash, undos[::-1])
    assert view(walked) == view(ledger) and walked_to == tip

    # A reorg back to the opening blocks: what it returns, the mempool takes in that order.
    opening = len(KEYS)
    fork = Ledger(*ledgers[opening])
    returned, dropped = compute_returned_transfers(blocks[opening:], fork, state.chain_id, PARAMS)
    every = [tx for block in blocks[opening:] for tx in block.transfers]
    assert sorted(t.txid() for t in returned + tuple(d.tx for d in dropped)) == sorted(t.txid() for t in every)
    event(f"returned: {bool(returned)}, dropped: {bool(dropped)}")
    roomy = Mempool(PARAMS.evolve(max_pending_per_account=1000, mempool_max_transfers=10_000), state.chain_id)
    for index, tx in enumerate(returned):
        roomy.add(tx, fork, index)


def two_branches():
    """Alice is funded in block 1 (the fork point); branch A's block 2 pays the merchant."""
    state = new_chain()
    funding = mine_block(state, ALICE.public_key)
    connect(state, funding)
    payment = pay(state, ALICE, MERCHANT.public_key, 30, fee=2)
    block = mine_block(state, BOB.public_key, [payment])
    undo = connect(state, block)
    return state, funding, payment, block, undo


def test_reorg_returns_a_payment_on_one_branch_and_drops_it_as_a_double_spend_on_another():
    state_a, funding, payment, block_a, undo = two_branches()
    fork_ledger = process_disconnect_block(state_a.ledger, undo, tip_hash=state_a.tip_hash)

    # Branch B: two empty blocks by carol. The payment is still valid there: back to the mempool.
    honest = replay([funding])
    assert view(fork_ledger) == view(honest.ledger)
    for _ in range(2):
        connect(honest, mine_block(honest, CAROL.public_key))
    returned, dropped = compute_returned_transfers([block_a], honest.ledger, honest.chain_id, honest.params)
    assert returned == (payment,) and dropped == ()
    pool = Mempool(honest.params, honest.chain_id)
    pool.add(returned[0], honest.ledger, 1)

    # Branch C: alice spent the same nonce paying herself. The merchant's payment is a double spend.
    attack = replay([funding])
    to_self = pay(attack, ALICE, ATTACKER_TOO.public_key, 45)
    for transfers in ([to_self], []):
        connect(attack, mine_block(attack, CAROL.public_key, transfers))
    returned, dropped = compute_returned_transfers([block_a], attack.ledger, attack.chain_id, attack.params)
    assert returned == ()
    assert [(d.tx, d.txid, d.code) for d in dropped] == [(payment, payment.txid(), "nonce_replay")]
    assert "already used" in dropped[0].reason

    # Branch D confirms the very same payment: not reversed, so neither returned nor dropped.
    same = replay([funding])
    connect(same, mine_block(same, CAROL.public_key, [payment]))
    confirmed = {payment.txid()}
    assert compute_returned_transfers([block_a], same.ledger, same.chain_id, same.params, confirmed) == ((), ())


def test_returned_transfers_follow_nonce_order_and_a_gap_after_a_drop_is_dropped():
    state = new_chain()
    funding = mine_block(state, ALICE.public_key)
    connect(state, funding)
    first = pay(state, ALICE, MERCHANT.public_key, 10)
    second = pay(state, ALICE, BOB.public_key, 10, nonce=1)
    blocks = []
    for transfers in ([first], [second]):
        blocks.append(mine_block(state, CAROL.public_key, transfers))
        connect(state, blocks[-1])
    fork = replay([funding])
    # Given newest first, still returned oldest first (nonce order).
    assert compute_returned_transfers(blocks[::-1], fork.ledger, fork.chain_id, fork.params) == ((first, second), ())
    # On a branch where alice spent nearly everything with nonce 0, both go: the first is a double
    # spend of its nonce, the second (nonce 1, now the next one) is no longer covered.
    connect(fork, mine_block(fork, CAROL.public_key, [pay(fork, ALICE, ATTACKER_TOO.public_key, 49)]))
    returned, dropped = compute_returned_transfers(blocks, fork.ledger, fork.chain_id, fork.params)
    assert returned == () and [d.code for d in dropped] == ["nonce_replay", "insufficient_balance"]


def test_a_transfer_spending_a_returned_credit_is_dropped_as_the_mempool_would():
    state = new_chain()
    funding = [mine_block(state, ALICE.public_key)]
    connect(state, funding[0])
    funding.append(mine_block(state, BOB.public_key))
    connect(state, funding[1])
    to_bob = pay(state, ALICE, BOB.public_key, 20)
    block_1 = mine_block(state, CAROL.public_key, [to_bob])
    connect(state, block_1)
    # Bob's 60 needs alice's 20; his next transfer (nonce 1) then follows a dropped nonce 0.
    onward = [pay(state, BOB, MERCHANT.public_key, 60), pay(state, BOB, MERCHANT.public_key, 5, nonce=1)]
    block_2 = mine_block(state, CAROL.public_key, onward)
    connect(state, block_2)
    fork = replay(funding)
    returned, dropped = compute_returned_transfers([block_1, block_2], fork.ledger, fork.chain_id, fork.params)
    assert returned == (to_bob,)
    assert [(d.tx, d.code) for d in dropped] == [(onward[0], "insufficient_balance"), (onward[1], "nonce_gap")]


def test_undo_bytes_round_trip():
    state_a, *_rest, undo = two_branches()
    data = undo.serialize()
    assert data.startswith(MAGIC)
    assert BlockUndo.deserialize(data) == undo
    assert BlockUndo.deserialize(data).serialize() == data
    # Every optional part present: a created account, a parameter change, a Merge schedule digest.
    full = BlockUndo(
        7, b"\x01" * 32, b"\x02" * 32, 50,
        (AccountUndo(b"\x03" * 32, None, Account(5, 0)), AccountUndo(b"\x04" * 32, Account(2**63, 9), Account(1, 10))),
        REGTEST.evolve(target_spacing_s=60), hashlib.sha256(b"config").digest(),
    )
    assert BlockUndo.deserialize(full.serialize()) == full


def resealed(body: bytes) -> bytes:
    """A body with a valid checksum: corruption the checksum alone does not catch."""
    return body + sha256d(body)


def _corruptions() -> dict[str, bytes]:
    _state, *_rest, undo = two_branches()
    good = undo.serialize()
    body = good[:-32]
    head = 4 + 1 + 4 + 32 + 32 + 8
    count_at = head
    first_account = head + 4
    swapped = list(undo.accounts)[::-1]
    spaced = b" " + REGTEST.to_bytes()
    return {
        "empty": b"",
        "truncated": good[:40],
        "bad magic": resealed(b"XXXX" + body[4:]),
        "unknown version": resealed(body[:4] + b"\x09" + body[5:]),
        "checksum": good[:-1] + bytes([good[-1] ^ 1]),
        "flipped body bit": bytes([good[0]]) + good[1:20] + bytes([good[20] ^ 1]) + good[21:],
        "trailing bytes": resealed(body + b"\x00"),
        "missing bytes": resealed(body[:-1]),
        "huge account count": resealed(body[:count_at] + struct.pack("<I", 10**6) + body[count_at + 4 :]),
        "bad existed flag": resealed(body[: first_account + 32] + b"\x02" + body[first_account + 33 :]),
        "accounts out of order": BlockUndo(
            undo.height, undo.block_hash, undo.parent_hash, undo.minted, tuple(swapped)
        ).serialize(),
        "bad params flag": resealed(body[:-2] + b"\x05\x00"),
        "params not json": resealed(body[:-2] + b"\x01" + struct.pack("<I", 3) + b"{x}" + b"\x00"),
        "params not canonical": resealed(body[:-2] + b"\x01" + struct.pack("<I", len(spaced)) + spaced + b"\x00"),
    }


@pytest.mark.parametrize("name", list(_corruptions()))
def test_invalid_undo_bytes_are_refused(name):
    with pytest.raises(UndoEncodingError) as caught:
        BlockUndo.deserialize(_corruptions()[name])
    assert caught.value.code == "undo_encoding"
    assert isinstance(caught.value, EncodingError)


def test_invalid_undo_that_cannot_be_encoded():
    with pytest.raises(UndoEncodingError):
        BlockUndo(1, b"\x01" * 31, b"\x02" * 32, 0, ()).serialize()
    with pytest.raises(UndoEncodingError):
        BlockUndo(1, b"\x01" * 32, b"\x02" * 32, 2**64, ()).serialize()


def test_invalid_disconnect_against_a_mismatched_ledger():
    state, funding, _payment, _block, undo = two_branches()
    # A later block moved bob's account (the miner of block 2): block 2's record no longer matches.
    connect(state, mine_block(state, BOB.public_key))
    with pytest.raises(UndoMismatchError) as caught:
        process_disconnect_block(state.ledger, undo)
    assert caught.value.code == "undo_mismatch" and isinstance(caught.value, UndoError)
    assert "left it at balance 52" in str(caught.value)
    # The ledger of the parent (the block was already taken off once), then one where nothing exists.
    with pytest.raises(UndoMismatchError, match="holds balance 50, nonce 0"):
        process_disconnect_block(replay([funding]).ledger, undo)
    with pytest.raises(UndoMismatchError, match="no such account"):
        process_disconnect_block(Ledger(), undo)
    # The accounts match but the points minted do not.
    _s, _f, _p, _b, undo = two_branches()
    after = Ledger({e.address: e.after for e in undo.accounts}, undo.minted - 1)
    with pytest.raises(UndoMismatchError, match="minted"):
        process_disconnect_block(after, undo)


def test_invalid_disconnect_out_of_order():
    state = new_chain()
    undos = [connect(state, mine_block(state, miner.public_key)) for miner in (ALICE, BOB, CAROL)]
    # Block 2 (bob) touched nothing block 3 (carol) did: only the tip check stops it coming off first.
    with pytest.raises(DisconnectOrderError) as caught:
        process_disconnect_block(state.ledger, undos[1], tip_hash=state.tip_hash)
    assert caught.value.code == "disconnect_order" and isinstance(caught.value, UndoError)
    with pytest.raises(DisconnectOrderError):
        process_disconnect_blocks(state.ledger, state.tip_hash, [undos[2], undos[0], undos[1]])
    with pytest.raises(DisconnectOrderError):
        process_disconnect_blocks(state.ledger, state.tip_hash, undos)
    ledger, tip = process_disconnect_blocks(state.ledger, state.tip_hash, undos[::-1])
    assert view(ledger) == ({}, 0) and tip == state.genesis_hash



def test_a_merged_chain_with_deposits_exits_and_slashing_disconnects_exactly():
    """Proof of work, deposits (wallet debits), the Merge, fee-only proof-of-stake coinbases, an exit
    and a slashing: every block comes back off exactly.  (The beacon state is restored from snapshots,
    not from these records.)"""
    original, chain = merged_chain_with_exit_and_slashing()
    state = new_consensus_chain(original.consensus)
    now = max(block.header.time for block in chain)
    ledgers, undos = [view(state.ledger)], []
    for block in chain[1:]:
        undos.append(connect(state, block, now))
        ledgers.append(view(state.ledger))
    assert state.tip_hash == original.tip_hash and any(block.seal is not None for block in chain)
    ledger, tip = state.ledger, state.tip_hash
    for undo, expected in zip(undos[::-1], ledgers[-2::-1], strict=True):
        assert BlockUndo.deserialize(undo.serialize()) == undo
        ledger = process_disconnect_block(ledger, undo, tip_hash=tip)
        tip = undo.parent_hash
        assert view(ledger) == expected
    assert tip == state.genesis_hash
