"""End-of-epoch processing: consensus-specs phase0 beacon-chain.md ``process_epoch``
(process_justification_and_finalization, process_rewards_and_penalties,
process_effective_balance_updates, in that order)."""

import hashlib

import pytest

from chain.errors import EncodingError, RewardsError
from chain.pos.epoch import (
    DEFAULT_MAX_EFFECTIVE_BALANCE_UNITS,
    EpochState,
    process_effective_balance_updates,
    process_epoch_accounting,
)
from chain.pos.finality import genesis_finality_state
from chain.pos.rewards import DEFAULT_REWARDS, UNITS_PER_POINT

U = UNITS_PER_POINT
FULL = 32 * U
SLOTS = DEFAULT_REWARDS.slots_per_epoch


def root(epoch: int) -> bytes:
    return hashlib.sha256(f"epoch checkpoint {epoch}".encode()).digest()


def genesis(count: int) -> EpochState:
    return EpochState(genesis_finality_state(root(0)), (FULL,) * count, (FULL,) * count)


def run(state: EpochState, online: set[int], count: int):
    epoch = state.finality.current_epoch
    proposers = tuple(sorted(online)[s % len(online)] for s in range(SLOTS))
    return process_epoch_accounting(
        state,
        (True,) * count,
        tuple(i in online for i in range(count)),
        proposers,
        root(max(epoch - 1, 0)),
        root(epoch),
        DEFAULT_REWARDS,
    )


def test_full_participation_finalizes_and_pays():
    state = genesis(4)
    for _ in range(6):
        state, report = run(state, {0, 1, 2, 3}, 4)
        assert not report.rewards.in_inactivity_leak and report.rewards.burned == 0
    # phase0 rule 4 (1st and 2nd justified, the 1st with the 2nd as source): finality trails by one epoch.
    assert state.finality.current_epoch == 6 and state.finality.finalized_checkpoint.epoch == 4
    assert report.finality_delay == 1
    assert all(b > FULL for b in state.balances)
    # Rewards of a few thousand nanopoints stay inside the hysteresis band; the cap holds anyway.
    assert state.effective_balances == (FULL,) * 4


def test_half_offline_leaks_until_finality_returns():
    count, online = 6, {0, 1, 2}
    state = genesis(count)
    initial = sum(state.balances)
    minted = burned = 0
    leak_delays = []
    for _ in range(2_000):
        state, report = run(state, online, count)
        minted += report.rewards.minted
        burned += report.rewards.burned
        if report.rewards.in_inactivity_leak:
            leak_delays.append(report.finality_delay)
        if state.finality.finalized_checkpoint.epoch > 0:
            break
    else:
        pytest.fail("finality never returned")
    # phase0 is_in_inactivity_leak: finality delay > MIN_EPOCHS_TO_INACTIVITY_PENALTY (4).
    assert leak_delays[0] == 5 and leak_delays == list(range(5, 5 + len(leak_delays)))
    # The offline half lost whole points of effective stake; the online half now holds two thirds.
    online_stake = sum(state.effective_balances[i] for i in online)
    assert 3 * online_stake >= 2 * sum(state.effective_balances)
    assert all(state.effective_balances[i] < FULL for i in range(3, 6))
    assert sum(state.balances) == initial + minted - burned
    # One more epoch: finality is fresh, so the leak is over.
    state, report = run(state, online, count)
    assert report.finality_delay <= 4 and not report.rewards.in_inactivity_leak


def test_effective_balance_hysteresis_in_nanopoints():
    # phase0: down when balance + 0.25 increment < effective, up when effective + 1.25 increments < balance.
    cases = [
        (FULL - U // 5, FULL, FULL),  # 31.8 points: inside the band, stays 32
        (FULL - 3 * U // 10, FULL, 31 * U),  # 31.7 points: 31.95 < 32, drops to 31
        (31 * U + 12 * U // 10, 31 * U, 31 * U),  # 32.2 points on 31: 32.25 is not < 32.2, stays
        (31 * U + 13 * U // 10, 31 * U, FULL),  # 32.3 points on 31: rises, capped at 32
        (100 * U, FULL, FULL),
    ]
    for balance, effective, expected in cases:
        updated = process_effective_balance_updates((balance,), (effective,), DEFAULT_MAX_EFFECTIVE_BALANCE_UNITS)
        assert updated == (expected,), (balance, effective)


def test_mismatched_state_is_refused():
    with pytest.raises(RewardsError, match="2 balances but 1 effective balances"):
        EpochState(genesis_finality_state(root(0)), (FULL, FULL), (FULL,))


def test_bad_inputs_change_nothing():
    state = genesis(2)
    with pytest.raises(RewardsError, match="8 slots, got 3"):
        process_epoch_accounting(state, (True, True), (True, True), (0, 1, None), root(0), root(0), DEFAULT_REWARDS)
    with pytest.raises(EncodingError):
        process_epoch_accounting(state, (True, True), (True, True), (0,) * SLOTS, b"short", root(0), DEFAULT_REWARDS)
    # Frozen inputs: the state the caller holds is still the genesis state.
    assert state == genesis(2)
