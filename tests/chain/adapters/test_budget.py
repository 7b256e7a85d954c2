"""chain/adapters/budget.py: the slot-block budget and the idle rule, with the time passed in."""

import pytest

from chain.adapters.budget import (
    IDLE_AFTER_S,
    SECONDS_PER_HOUR,
    BlockBudget,
    is_idle,
    should_skip_empty_slot,
)
from chain.errors import ParamsError


def test_a_budget_starts_full_and_refills_by_the_hour():
    budget = BlockBudget.full(360, now=1_000)
    assert budget.available(1_000) == 360
    for _ in range(360):
        budget.spend(1_000)
    assert budget.available(1_000) == 0
    assert budget.available(1_010) == 1  # 360 an hour: one every 10 s
    assert budget.available(1_000 + SECONDS_PER_HOUR) == 360
    assert budget.available(1_000 + 10 * SECONDS_PER_HOUR) == 360  # never more than an hour saved up


def test_a_block_with_members_actions_may_overdraw():
    budget = BlockBudget.full(1, now=0)
    budget.spend(0)
    budget.spend(0)
    assert budget.available(0) == 0 and budget.available(SECONDS_PER_HOUR) == 0
    assert budget.available(2 * SECONDS_PER_HOUR) == 1


def test_invalid_budget():
    with pytest.raises(ParamsError, match="at least one block an hour"):
        BlockBudget.full(0, now=0)


def test_idle_after_ten_minutes_without_a_member():
    assert not is_idle(last_activity=0, now=IDLE_AFTER_S - 1)
    assert is_idle(last_activity=0, now=IDLE_AFTER_S)


@pytest.mark.parametrize(
    ("last_activity", "slots_since_block", "budget_left", "skip"),
    [
        (0, 1, 10, True),  # idle
        (IDLE_AFTER_S, 1, 10, False),  # active, within budget
        (IDLE_AFTER_S, 1, 0, True),  # active, over budget
        (0, 8, 0, False),  # a whole epoch without a block: never skipped
    ],
)
def test_should_skip_empty_slot(last_activity, slots_since_block, budget_left, skip):
    assert should_skip_empty_slot(
        last_activity=last_activity, now=IDLE_AFTER_S, slots_since_block=slots_since_block, slots_per_epoch=8,
        budget_left=budget_left,
    ) is skip
