"""The guided lessons' checks (issue 11, item 7): pure functions of a member's view of the chain."""

from __future__ import annotations

import pytest

from chain.errors import LessonUnavailableError, UnknownLessonError
from chain.games.lessons import (
    LESSONS,
    PAYMENT_CONFIRMATIONS,
    LessonFacts,
    check_lesson,
    compute_confirmations,
    compute_next_retarget_height,
    get_lesson,
)
from chain.params import PLAYGROUND

WINDOW = PLAYGROUND.retarget_window_blocks


def facts(**changes) -> LessonFacts:
    base = dict(tip_height=5, params=PLAYGROUND, blocks_mined=0, payment_heights=(), has_validator=False,
                vote_counted=False, start_height=None)
    base.update(changes)
    return LessonFacts(**base)


def test_mine_passes_with_one_block_of_theirs():
    assert not check_lesson("mine", facts()).done
    assert check_lesson("mine", facts(blocks_mined=1)).done


def test_retarget_counts_only_retargets_after_the_start():
    before = facts(tip_height=WINDOW + 3, start_height=WINDOW)  # started at the retarget block: not after it
    result = check_lesson("retarget", before)
    assert not result.done and f"block {2 * WINDOW}" in result.detail
    assert check_lesson("retarget", facts(tip_height=2 * WINDOW, start_height=WINDOW + 3)).done
    assert check_lesson("retarget", facts(tip_height=2 * WINDOW, start_height=2 * WINDOW - 1)).done


def test_retarget_needs_a_start_and_a_chain_that_retargets():
    assert "start the lesson" in check_lesson("retarget", facts(tip_height=3 * WINDOW)).detail
    never = facts(tip_height=3 * WINDOW, start_height=0, params=PLAYGROUND.evolve(no_retargeting=True))
    assert not check_lesson("retarget", never).done
    assert compute_next_retarget_height(5, never.params) is None
    assert compute_next_retarget_height(WINDOW, PLAYGROUND) == 2 * WINDOW


def test_a_start_above_the_tip_waits_for_the_next_retarget():
    """A start height the tip is below (it cannot be, with progress reset with the chain) never passes."""
    assert not check_lesson("retarget", facts(tip_height=3, start_height=WINDOW + 9)).done


def test_confirmations_count_the_block_itself():
    assert compute_confirmations(10, 10) == 1
    assert compute_confirmations(10, 8) == 3
    assert compute_confirmations(10, 12) == 0
    short = facts(tip_height=10, payment_heights=(10 - PAYMENT_CONFIRMATIONS + 2,))
    assert not check_lesson("confirm", short).done and "1 more" in check_lesson("confirm", short).detail
    assert check_lesson("confirm", facts(tip_height=10, payment_heights=(10, 10 - PAYMENT_CONFIRMATIONS + 1))).done
    assert not check_lesson("confirm", facts()).done


def test_stake_needs_a_validator_and_a_counted_vote():
    assert not check_lesson("stake", facts()).done
    assert not check_lesson("stake", facts(has_validator=True)).done
    assert check_lesson("stake", facts(has_validator=True, vote_counted=True)).done


def test_invalid_lesson_id_is_refused_with_the_known_ones():
    with pytest.raises(UnknownLessonError) as refused:
        check_lesson("nope", facts())
    assert refused.value.code == "unknown_lesson" and "mine" in str(refused.value)
    with pytest.raises(UnknownLessonError):
        get_lesson("")


def test_invalid_unavailable_lessons_say_why_instead_of_passing_or_failing():
    for lesson_id in ("reorg", "finality"):
        assert not get_lesson(lesson_id).available
        with pytest.raises(LessonUnavailableError, match="block tree"):
            check_lesson(lesson_id, facts(blocks_mined=9, has_validator=True, vote_counted=True))


def test_every_available_lesson_pays_a_small_reward():
    ids = [lesson.id for lesson in LESSONS]
    assert len(ids) == len(set(ids)) == 6
    assert all(0 < lesson.reward_points <= 20 for lesson in LESSONS if lesson.available)


def test_the_lesson_option_offers_exactly_the_lessons_in_order():
    """/learn start and /learn check take LessonChoice: a lesson added to the engine but not to the
    option (or the reverse) could not be picked, or would be refused as unknown."""
    from cogs.learn import LessonChoice

    assert [c.value for c in LessonChoice.choices] == [lesson.id for lesson in LESSONS]
