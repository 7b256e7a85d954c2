"""chain/consensus/supply_history.py: the supply over height from a replay, its totals adding up at
every height, sampled to a bounded number of points."""

from __future__ import annotations

import pytest

from chain.consensus.supply_history import SupplyReplay, compute_supply_point
from chain.errors import ChartEmptyInputError, ChartValueError, SupplyMismatchError, ValidationError
from chain.params import REGTEST
from chain.pos.rewards import UNITS_PER_POINT
from tests.chainkit import CHAIN_ID, genesis_block, key, mine, new_chain
from tests.poskit import merged_chain_with_exit_and_slashing, pos_chain

U = UNITS_PER_POINT


def replay(state, chain, max_points=10_000):
    """Replay ``chain`` (genesis first) the way the adapter does, every block sampled by default."""
    replay = SupplyReplay(REGTEST, CHAIN_ID, chain[0], state.consensus, max_points=max_points)
    now = max(block.header.time for block in chain) + 3_600
    for block in chain[1:]:
        replay.extend(block, now)
    return replay


def test_a_merged_chain_with_deposits_exits_and_slashing_adds_up_at_every_height():
    state, chain = merged_chain_with_exit_and_slashing()
    history = replay(state, chain).history()
    assert [p.height for p in history.points] == list(range(len(chain)))
    for p in history.points:
        # The invariant the chart promises: nothing made or lost between the four lines.
        assert p.minted_units - p.burned_units == p.staked_units + p.circulating_units, p
    by_height = {p.height: p for p in history.points}
    # Three validators deposit 32 points each in block 3: wallets to stake, nothing minted by it
    # beyond the block's subsidy.
    assert by_height[2].staked_units == 0
    assert by_height[3].staked_units == 3 * 32 * U
    subsidy = by_height[3].minted_units - by_height[2].minted_units
    assert by_height[3].circulating_units == by_height[2].circulating_units + subsidy - 3 * 32 * U
    tip = history.points[-1]
    # The slashing burned points; the totals at the tip are the chain's own.
    assert tip.burned_units == state.beacon.burned_units > 0
    assert tip.staked_units == state.beacon.registry.total_balance()
    assert tip.circulating_units == state.ledger.total_balance() * U
    assert tip.minted_units == state.issued_supply_units() + state.beacon.burned_units


def test_a_pos_chain_starts_with_its_genesis_issuance():
    state, chain = pos_chain(validators=4, epochs=3)
    history = replay(state, chain).history()
    genesis = history.points[0]
    assert genesis.staked_units == 4 * 32 * U
    assert genesis.circulating_units == 4 * 1_000 * U
    assert genesis.minted_units == genesis.staked_units + genesis.circulating_units and genesis.burned_units == 0
    # Epoch rewards mint into stake; proof-of-stake blocks mint nothing into wallets.
    tip = history.points[-1]
    assert tip.minted_units > genesis.minted_units
    assert tip.minted_units - tip.burned_units == tip.staked_units + tip.circulating_units


def test_a_long_chain_is_sampled_evenly_to_at_most_max_points_with_genesis_and_tip():
    state = new_chain()
    miner = key("miner").public_key
    chain = [genesis_block()] + [mine(state, miner) for _ in range(37)]
    history = replay(state, chain, max_points=8).history()
    heights = [p.height for p in history.points]
    assert len(heights) <= 8
    assert heights[0] == 0 and heights[-1] == 37
    assert history.stride in (8, 16) and all(h % history.stride == 0 for h in heights[:-1])
    assert heights[:-1] == list(range(0, 37, history.stride))
    # Proof of work only: every point minted is in a wallet.
    assert all(p.circulating_units == p.minted_units and p.staked_units == p.burned_units == 0
               for p in history.points)
    assert history.points[-1].minted_units == state.ledger.minted * U


def test_extending_a_kept_replay_gives_the_same_history_as_replaying_at_once():
    state, chain = merged_chain_with_exit_and_slashing()
    now = max(block.header.time for block in chain) + 3_600
    kept = SupplyReplay(REGTEST, CHAIN_ID, chain[0], state.consensus, max_points=16)
    for block in chain[1:20]:
        kept.extend(block, now)
    first = kept.history()
    for block in chain[20:]:
        kept.extend(block, now)
    assert kept.history().points == replay(state, chain, max_points=16).history().points
    assert first.points[-1].height == 19 and kept.replayed_blocks == len(chain) - 1


def test_invalid_supply_replay_inputs():
    state = new_chain()
    with pytest.raises(ChartValueError, match="at least 2"):
        SupplyReplay(REGTEST, CHAIN_ID, genesis_block(), None, max_points=1)
    with pytest.raises(ChartEmptyInputError, match="only its genesis"):
        SupplyReplay(REGTEST, CHAIN_ID, genesis_block(), None).history()
    # Wallets that hold a point more than was minted: refused, not plotted.
    with pytest.raises(SupplyMismatchError, match="minted"):
        compute_supply_point(state, state.ledger.total_balance() + 1)


def test_invalid_block_in_a_replay_is_refused_and_changes_nothing():
    state = new_chain()
    miner = key("miner").public_key
    chain = [genesis_block()] + [mine(state, miner) for _ in range(3)]
    kept = SupplyReplay(REGTEST, CHAIN_ID, chain[0], None)
    kept.extend(chain[1], chain[-1].header.time)
    with pytest.raises(ValidationError):
        kept.extend(chain[3], chain[-1].header.time)  # skips block 2: not its parent
    assert kept.height == 1 and kept.history().points[-1].height == 1
