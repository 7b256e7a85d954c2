"""The guided lessons' checks (issue 11, item 7): pure functions of a member's view of the chain."""

from __future__ import annotations

import pytest

from chain.errors import LessonUnavailableError, UnknownLessonError
from chain.games.lessons import (
    LESSONS,
    PAYMENT_CONFIRMATIONS,
    Lesson,
    LessonFacts,
    ReorgSeen,
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


def test_invalid_unavailable_lesson_says_why_instead_of_passing_or_failing(monkeypatch):
    from chain.games import lessons

    locked = Lesson("later", "Later", "why", 0, None, "needs engine parts not running yet")
    monkeypatch.setitem(lessons.LESSONS_BY_ID, "later", locked)
    assert not locked.available
    with pytest.raises(LessonUnavailableError, match="not running yet"):
        check_lesson("later", facts(blocks_mined=9, has_validator=True, vote_counted=True))


def test_every_lesson_is_available():
    assert all(lesson.available for lesson in LESSONS)


# --- see a reorg ---------------------------------------------------------------------------


def test_reorg_passes_when_a_block_of_theirs_was_on_the_winning_branch():
    result = check_lesson("reorg", facts(start_height=4, reorgs=(ReorgSeen(7, 2, "branch"),)))
    assert result.done and "to block 7" in result.detail and "2 blocks off" in result.detail
    assert "on the branch that took over" in result.detail


def test_reorg_passes_when_a_block_of_theirs_was_orphaned():
    result = check_lesson("reorg", facts(start_height=4, reorgs=(ReorgSeen(6, 1), ReorgSeen(8, 1, "orphaned"))))
    assert result.done and "1 block off" in result.detail and "orphaned" in result.detail


def test_invalid_reorg_check_before_the_lesson_started_never_passes():
    result = check_lesson("reorg", facts(start_height=None, reorgs=(ReorgSeen(7, 2, "branch"),)))
    assert not result.done and "start the lesson" in result.detail


def test_invalid_reorg_someone_else_caused_does_not_pass():
    result = check_lesson("reorg", facts(start_height=4, reorgs=(ReorgSeen(7, 2), ReorgSeen(9, 1))))
    assert not result.done and "2 time(s)" in result.detail and "yourself" in result.detail


def test_invalid_no_reorg_yet_says_how_to_make_one():
    result = check_lesson("reorg", facts(start_height=4))
    assert not result.done and "since you started at block 4" in result.detail and "older block" in result.detail
    votes = check_lesson("reorg", facts(start_height=4, finality="votes"))
    assert not votes.done and "votes choose the head" in votes.detail


def test_a_refusal_is_no_reorg():
    assert not check_lesson("reorg", facts(start_height=4, refusals=(ReorgSeen(7, 2, "branch"),))).done


# --- see finality stop a reorg -------------------------------------------------------------


def test_finality_passes_when_a_branch_of_theirs_was_refused():
    result = check_lesson(
        "finality", facts(start_height=4, finality="checkpoints", finalized_height=8,
                          refusals=(ReorgSeen(13, 6, "branch"),))
    )
    assert result.done and "to block 13" in result.detail and "6 blocks off" in result.detail


def test_invalid_finality_check_before_the_lesson_started_never_passes():
    assert not check_lesson("finality", facts(refusals=(ReorgSeen(13, 6, "branch"),))).done


def test_invalid_finality_refusal_of_someone_elses_branch_does_not_pass():
    result = check_lesson("finality", facts(start_height=4, finality="checkpoints", refusals=(ReorgSeen(13, 6),)))
    assert not result.done and "none had a block of yours" in result.detail


def test_invalid_finality_on_a_chain_that_cannot_refuse_says_which_chain_it_needs():
    pow_only = check_lesson("finality", facts(start_height=4, finality="none"))
    assert not pow_only.done and "nothing is ever finalized" in pow_only.detail and "hybrid" in pow_only.detail
    votes = check_lesson("finality", facts(start_height=4, finality="votes"))
    assert not votes.done and "hybrid chain before the Merge" in votes.detail
    nothing_yet = check_lesson("finality", facts(start_height=4, finality="checkpoints"))
    assert not nothing_yet.done and "nothing is finalized" in nothing_yet.detail
    ready = check_lesson("finality", facts(start_height=4, finality="checkpoints", finalized_height=12))
    assert not ready.done and "finalized block is 12" in ready.detail and "below it" in ready.detail


def test_a_reorg_is_no_refusal():
    reorged = facts(start_height=4, finality="checkpoints", reorgs=(ReorgSeen(7, 2, "branch"),))
    assert not check_lesson("finality", reorged).done


def test_every_available_lesson_pays_a_small_reward():
    ids = [lesson.id for lesson in LESSONS]
    assert len(ids) == len(set(ids)) == 6
    assert all(0 < lesson.reward_points <= 20 for lesson in LESSONS if lesson.available)


def test_the_lesson_option_offers_exactly_the_lessons_in_order():
    """/learn start and /learn check take LessonChoice: a lesson added to the engine but not to the
    option (or the reverse) could not be picked, or would be refused as unknown."""
    from cogs.learn import LessonChoice

    assert [c.value for c in LessonChoice.choices] == [lesson.id for lesson in LESSONS]
