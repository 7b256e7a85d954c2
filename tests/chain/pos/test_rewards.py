"""Issuance, attester/proposer rewards and inactivity penalties.

Spec: consensus-specs phase0 beacon-chain.md, "Rewards and penalties"
(get_base_reward, get_attestation_deltas, get_inactivity_penalty_deltas,
process_rewards_and_penalties, is_in_inactivity_leak, PROPOSER_REWARD_QUOTIENT,
MIN_EPOCHS_TO_INACTIVITY_PENALTY, INACTIVITY_PENALTY_QUOTIENT), scaled as chain/pos/rewards.py says.
"""

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.errors import IssuanceRateError, ParamsError, RewardsError, StakingError
from chain.pos.finality import (
    genesis_finality_state,
    process_justification_and_finalization,
)
from chain.pos.rewards import (
    DEFAULT_REWARDS,
    SECONDS_PER_YEAR,
    UNITS_PER_POINT,
    EpochParticipation,
    RewardParams,
    compute_epoch_issuance,
    compute_inactivity_penalty,
    get_base_reward,
    get_finality_delay,
    is_in_inactivity_leak,
    points_to_units,
    process_rewards_and_penalties,
    units_to_points,
)

U = UNITS_PER_POINT
FULL = 32 * U
SLOTS = DEFAULT_REWARDS.slots_per_epoch


def participation(effective, attested, proposers=(None,) * SLOTS, active=None):
    active = tuple(True for _ in effective) if active is None else tuple(active)
    return EpochParticipation(tuple(effective), active, tuple(attested), tuple(proposers))


# --- units ------------------------------------------------------------------


def test_units_round_trip_and_dust_stays():
    assert points_to_units(32) == 32_000_000_000
    # Floor: 0.500000001 point of dust is reported, not lost or rounded up.
    assert units_to_points(32_500_000_001) == (32, 500_000_001)
    assert units_to_points(999_999_999) == (0, 999_999_999)
    with pytest.raises(RewardsError, match="at least 0"):
        units_to_points(-1)
    with pytest.raises(RewardsError, match="whole number"):
        points_to_units(1.5)


def test_whole_points_would_round_the_reward_to_zero():
    # Why nanopoints: a 32-point validator's per-epoch reward is below one point.
    assert compute_epoch_issuance(32, DEFAULT_REWARDS) == 0
    assert compute_epoch_issuance(FULL, DEFAULT_REWARDS) == 12_176


# --- exact cases, by hand ---------------------------------------------------
# Four validators of 32 points, default params (5%, 8 slots of 30 s = 240 s):
#   budget          = 128e9 * 500 * 240 // (10_000 * 31_536_000) = 48_706   (48_706.49 exactly)
#   proposer budget = 48_706 // 8 = 6_088; per slot 6_088 // 8 = 761
#   attester budget = 48_706 - 6_088 = 42_618; each 42_618 * 32 // 128 = 10_654
# Validator 3 misses; slot 2 stays empty; validators 0, 1, 2 propose twice, 3 once.
PROPOSERS = (0, 1, None, 2, 3, 0, 1, 2)
FOUR = participation((FULL,) * 4, (True, True, True, False), PROPOSERS)


def test_exact_epoch_without_leak():
    balances, summary = process_rewards_and_penalties((FULL,) * 4, FOUR, DEFAULT_REWARDS, 0)
    assert summary.budget == 48_706
    # 10_654 + 2 * 761 = 12_176; validator 3: 761 - 10_654 = -9_893.
    assert summary.deltas == (12_176, 12_176, 12_176, -9_893)
    assert balances == (FULL + 12_176, FULL + 12_176, FULL + 12_176, FULL - 9_893)
    assert summary.minted == 3 * 12_176 + 761 == 37_289
    assert summary.burned == 10_654
    assert not summary.in_inactivity_leak


def test_exact_epoch_in_leak():
    # Delay 5 > 4: attesters earn nothing; the miss costs 10_654 + 32e9 * 5 // 2**16 = 10_654 + 2_441_406.
    balances, summary = process_rewards_and_penalties((FULL,) * 4, FOUR, DEFAULT_REWARDS, 5)
    assert summary.in_inactivity_leak
    assert summary.deltas == (1_522, 1_522, 1_522, 761 - 2_452_060)
    assert summary.burned == 2_452_060 and summary.minted == 3 * 1_522 + 761
    assert balances[3] == FULL - 2_451_299


def test_penalty_never_takes_a_balance_below_zero():
    # phase0's decrease_balance floors at zero; burned is what was really taken.
    part = participation((FULL, FULL), (True, False))
    balances, summary = process_rewards_and_penalties((FULL, 1_000), part, DEFAULT_REWARDS, 100)
    assert balances[1] == 0 and summary.deltas[1] == -1_000 and summary.burned == 1_000


def test_inactive_validators_are_untouched():
    part = participation((FULL, FULL), (True, False), active=(True, False))
    balances, summary = process_rewards_and_penalties((FULL, 7), part, DEFAULT_REWARDS, 50)
    assert balances[1] == 7 and summary.deltas[1] == 0


# --- issuance ---------------------------------------------------------------


def test_five_percent_a_year_over_a_year_of_epochs():
    params = DEFAULT_REWARDS
    epochs_per_year = SECONDS_PER_YEAR // params.epoch_seconds
    assert epochs_per_year == 131_400
    part = participation((FULL,) * 4, (True,) * 4, (0, 1, 2, 3) * 2)
    balances, minted = (FULL,) * 4, 0
    for _ in range(epochs_per_year):
        # Effective balances stay at 32 points (the cap), so every epoch is paid on the same stake.
        balances, summary = process_rewards_and_penalties(balances, part, params, 0)
        minted += summary.minted
        assert summary.burned == 0
    expected = 4 * FULL * 5 // 100
    # Each floor loses under one nanopoint: the budget, the proposer share, per slot, per attester.
    assert expected - epochs_per_year * (1 + 1 + SLOTS + 4) <= minted <= expected
    assert sum(balances) == 4 * FULL + minted


@pytest.mark.parametrize("rate_bp", [300, 500, 1_500])
def test_rate_scales_issuance(rate_bp):
    params = RewardParams(issuance_rate_bp=rate_bp)
    # One day-long epoch of 100 points: rate * 100 points / 365.
    day = RewardParams(issuance_rate_bp=rate_bp, slots_per_epoch=8, slot_seconds=10_800)
    assert compute_epoch_issuance(100 * U, day) == 100 * U * rate_bp // (10_000 * 365)
    assert compute_epoch_issuance(100 * U, params) * 365 * 360 <= 100 * U * rate_bp // 10_000


# --- split ------------------------------------------------------------------


def test_split_seven_eighths_attesters_one_eighth_proposers():
    part = participation((FULL,) * 4, (True,) * 4, (0, 1, 2, 3) * 2)
    _, summary = process_rewards_and_penalties((FULL,) * 4, part, DEFAULT_REWARDS, 0)
    proposer_total = 8 * 761
    attester_total = 4 * 10_654
    assert summary.minted == proposer_total + attester_total
    assert proposer_total == summary.budget // 8 == 6_088
    assert attester_total == 42_616 and summary.budget - summary.budget // 8 - attester_total < 4


def test_reward_is_weighted_by_effective_balance_and_non_participants_get_nothing():
    # Stakes 32, 16, 16 points: each attester's share is taken of the whole active stake (64 points).
    part = participation((FULL, FULL // 2, FULL // 2), (True, True, False))
    _, summary = process_rewards_and_penalties((FULL, FULL // 2, FULL // 2), part, DEFAULT_REWARDS, 0)
    total = 64 * U
    budget = compute_epoch_issuance(total, DEFAULT_REWARDS)
    assert summary.deltas[0] == get_base_reward(FULL, total, budget, DEFAULT_REWARDS)
    assert summary.deltas[0] in (2 * summary.deltas[1], 2 * summary.deltas[1] + 1)
    assert summary.deltas[2] == -summary.deltas[1]  # a miss costs what an attester earns
    # The missing third's share of the budget is not minted at all.
    assert summary.minted == summary.deltas[0] + summary.deltas[1] < budget


def test_empty_slot_share_is_not_minted():
    full = participation((FULL,) * 4, (True,) * 4, (0,) * SLOTS)
    empty = participation((FULL,) * 4, (True,) * 4, (None,) * SLOTS)
    _, with_blocks = process_rewards_and_penalties((FULL,) * 4, full, DEFAULT_REWARDS, 0)
    _, without = process_rewards_and_penalties((FULL,) * 4, empty, DEFAULT_REWARDS, 0)
    assert with_blocks.minted - without.minted == 8 * 761


# --- inactivity leak ---------------------------------------------------------


def test_leak_threshold_is_strictly_more_than_four_epochs():
    assert [is_in_inactivity_leak(d, DEFAULT_REWARDS) for d in range(7)] == [False] * 5 + [True] * 2
    assert compute_inactivity_penalty(FULL, 10, DEFAULT_REWARDS) == 2 * compute_inactivity_penalty(
        FULL, 5, DEFAULT_REWARDS
    )


def _root(epoch: int) -> bytes:
    return hashlib.sha256(f"checkpoint {epoch}".encode()).digest()


def _effective(balance: int) -> int:
    # phase0's effective balance without hysteresis: whole points, capped at 32.
    return min(balance - balance % U, FULL)


def test_leak_starts_after_four_epochs_and_stops_when_finality_returns():
    online, offline = (0, 1, 2), (3, 4, 5)
    balances = (FULL,) * 6
    state = genesis_finality_state(_root(0))
    history = []
    for _ in range(2_000):
        effective = tuple(_effective(b) for b in balances)
        total = sum(effective)
        votes = sum(effective[i] for i in online)
        epoch = state.current_epoch
        state = process_justification_and_finalization(
            state, total, votes, votes, _root(max(epoch - 1, 0)), _root(epoch)
        )
        delay = get_finality_delay(state)
        proposers = tuple(online[s % 3] for s in range(SLOTS))
        part = participation(effective, [i in online for i in range(6)], proposers)
        before = balances
        balances, summary = process_rewards_and_penalties(balances, part, DEFAULT_REWARDS, delay)
        history.append((delay, summary.in_inactivity_leak))
        if summary.in_inactivity_leak:
            assert all(balances[i] >= before[i] for i in online)
            assert all(balances[i] < before[i] for i in offline)
        if state.finalized_checkpoint.epoch > 0 and delay <= 1:
            break
    else:
        pytest.fail("finality never returned")
    leaking = [delay for delay, leak in history if leak]
    assert leaking[0] == 5 and all(leak == (delay > 4) for delay, leak in history)
    assert history[-1] == (1, False)
    # Finality came back because the online half now holds two thirds of the effective stake.
    effective = [_effective(b) for b in balances]
    assert 3 * sum(effective[i] for i in online) >= 2 * sum(effective)
    assert sum(balances[i] for i in offline) < 3 * FULL * 6 // 10


# --- errors -----------------------------------------------------------------


@pytest.mark.parametrize("rate", [299, 1_501, 0, -500, True, 5.0, "500"])
def test_issuance_rate_out_of_range(rate):
    with pytest.raises(IssuanceRateError, match="from 300 to 1500"):
        RewardParams(issuance_rate_bp=rate)


def test_issuance_rate_error_is_a_params_error():
    assert issubclass(IssuanceRateError, ParamsError) and issubclass(RewardsError, StakingError)
    with pytest.raises(ParamsError, match="slot_seconds"):
        RewardParams(slot_seconds=0)


@pytest.mark.parametrize(
    ("balances", "part", "delay", "message"),
    [
        ((FULL,), FOUR, 0, "effective balances has 4 entries for 1 validators"),
        ((FULL, FULL, FULL, -1), FOUR, 0, "balance of validator 3"),
        ((FULL, FULL, FULL, 1.5), FOUR, 0, "balance of validator 3"),
        ((FULL,), participation((FULL,), (True,), active=(False,)), 0, "cannot have attested"),
        ((FULL,), participation((FULL,), (True,), (1,) + (None,) * 7), 0, "not one of the 1 validators"),
        ((FULL,), participation((FULL,), (True,), (None,) * 7), 0, "8 slots, got 7"),
        ((FULL,) * 4, FOUR, -1, "epochs since finality"),
        ((FULL,) * 2, participation((FULL, FULL), (True, False), (1,) * 8, active=(True, False)), 0, "not active"),
    ],
)
def test_bad_inputs_are_refused(balances, part, delay, message):
    with pytest.raises(RewardsError, match=message):
        process_rewards_and_penalties(balances, part, DEFAULT_REWARDS, delay)


# --- supply property ----------------------------------------------------------


@st.composite
def epochs(draw):
    count = draw(st.integers(1, 8))
    balances = tuple(draw(st.lists(st.integers(0, 40 * U), min_size=count, max_size=count)))
    steps = []
    for _ in range(draw(st.integers(1, 12))):
        active = draw(st.lists(st.booleans(), min_size=count, max_size=count))
        attested = [a and draw(st.booleans()) for a in active]
        effective = draw(st.lists(st.integers(0, 32).map(lambda p: p * U), min_size=count, max_size=count))
        candidates = [i for i in range(count) if active[i]]
        proposers = [
            draw(st.sampled_from(candidates)) if candidates and draw(st.booleans()) else None for _ in range(SLOTS)
        ]
        delay = draw(st.integers(0, 3_000))
        steps.append((participation(effective, attested, proposers, active), delay))
    rate = draw(st.integers(300, 1_500))
    return balances, steps, rate


@settings(max_examples=200, deadline=None)
@given(epochs())
def test_supply_is_initial_plus_minted_minus_burned(case):
    balances, steps, rate = case
    params = RewardParams(issuance_rate_bp=rate)
    initial = sum(balances)
    minted = burned = 0
    for part, delay in steps:
        new, summary = process_rewards_and_penalties(balances, part, params, delay)
        assert all(b >= 0 for b in new)
        assert tuple(n - o for n, o in zip(new, balances, strict=True)) == summary.deltas
        assert summary.minted >= 0 and summary.burned >= 0
        minted += summary.minted
        burned += summary.burned
        balances = new
    assert sum(balances) == initial + minted - burned
