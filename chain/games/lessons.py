"""Guided lessons (issue 11, item 7): what each lesson asks of a member, and the check that says
whether the real chain shows it done.

A lesson is data (``Lesson``: id, title, why it matters, reward) and a pure check over a read model
of the chain as one member sees it (``LessonFacts``, built by the front door from the running
chain). The checks never look at anything a member could type: they read blocks, payments and
votes the chain really holds, so a lesson is passed by doing it, not by claiming it.

What a member types to do each lesson (the slash commands) is the front end's (``cogs/learn.py``):
the engine names no command. Two lessons, a reorg and finality stopping one, need the block tree
wired into the running chain; until it is they are listed as not available and their check says
so (``LessonUnavailableError``) instead of passing or failing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chain.errors import LessonUnavailableError, UnknownLessonError
from chain.params import ChainParams
from chain.pow.difficulty import is_retarget_height

# Confirmations a payment needs for the payment lesson: a few blocks on top, as a merchant waits.
PAYMENT_CONFIRMATIONS = 3


@dataclass(frozen=True, slots=True)
class LessonFacts:
    """One member's view of one chain, as the checks need it.

    ``payment_heights``: heights of confirmed transfers the member sent (not rewards or claims they
    received). ``start_height``: the tip's height when the member started the lesson, on this chain
    (None if never started)."""

    tip_height: int
    params: ChainParams
    blocks_mined: int
    payment_heights: tuple[int, ...]
    has_validator: bool
    vote_counted: bool
    start_height: int | None = None


@dataclass(frozen=True, slots=True)
class LessonResult:
    """The check's verdict and what it saw, in words without commands (the front end adds those)."""

    done: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Lesson:
    id: str
    title: str
    why: str
    reward_points: int
    # None: not available yet (the check would need engine parts not running).
    check: Callable[[LessonFacts], LessonResult] | None
    unavailable_reason: str | None = None

    @property
    def available(self) -> bool:
        return self.check is not None


def check_mined_a_block(facts: LessonFacts) -> LessonResult:
    if facts.blocks_mined >= 1:
        return LessonResult(True, f"you mined {facts.blocks_mined} block(s) on this chain")
    return LessonResult(False, "no block on this chain has your wallet as its miner yet")


def compute_next_retarget_height(height: int, params: ChainParams) -> int | None:
    """The first height after ``height`` at which the difficulty is recomputed (None: never)."""
    if params.no_retargeting:
        return None
    window = params.retarget_window_blocks
    return (height // window + 1) * window


def check_watched_a_retarget(facts: LessonFacts) -> LessonResult:
    if facts.params.no_retargeting:
        return LessonResult(False, "this chain's rules never retarget: there is nothing to watch")
    if facts.start_height is None:
        return LessonResult(False, "start the lesson first: the check counts retargets from that moment")
    start = min(facts.start_height, facts.tip_height)
    passed = [h for h in range(start + 1, facts.tip_height + 1) if is_retarget_height(h, facts.params)]
    if passed:
        return LessonResult(True, f"the difficulty was recomputed at block {passed[0]} while you watched")
    upcoming = compute_next_retarget_height(facts.tip_height, facts.params)
    return LessonResult(
        False, f"no retarget since you started at block {facts.start_height}; the next one is at block {upcoming} "
        f"(the tip is block {facts.tip_height})",
    )


def compute_confirmations(tip_height: int, height: int) -> int:
    """Blocks on top of (and including) the block at ``height``: 1 when it is the tip."""
    return max(0, tip_height - height + 1)


def check_payment_confirmed(facts: LessonFacts) -> LessonResult:
    if not facts.payment_heights:
        return LessonResult(False, "no payment of yours is in a block yet")
    best = max(compute_confirmations(facts.tip_height, h) for h in facts.payment_heights)
    if best >= PAYMENT_CONFIRMATIONS:
        return LessonResult(True, f"your payment has {best} confirmations")
    return LessonResult(
        False, f"your payment has {best} of {PAYMENT_CONFIRMATIONS} confirmations: "
        f"{PAYMENT_CONFIRMATIONS - best} more block(s) to go",
    )


def check_staked_and_attested(facts: LessonFacts) -> LessonResult:
    if not facts.has_validator:
        return LessonResult(False, "you have no validator on this chain yet")
    if not facts.vote_counted:
        return LessonResult(False, "your validator exists, but none of its votes is counted in this epoch or the last")
    return LessonResult(True, "your validator's vote is counted")


NOT_WIRED = (
    "the block tree is not part of the running chain yet: this chain keeps a single line of blocks, "
    "so there is no reorg to see. This lesson opens when the tree is wired in"
)

LESSONS: tuple[Lesson, ...] = (
    Lesson(
        "mine", "Mine a block",
        "Proof of work: a block counts only when its hash is below the target. Finding one takes many "
        "tries; checking it takes one.", 10, check_mined_a_block,
    ),
    Lesson(
        "retarget", "Watch a retarget",
        "Every few blocks the chain compares how long its last blocks took with the time they should have "
        "taken, and makes the target harder or easier so that blocks keep their pace.", 10,
        check_watched_a_retarget,
    ),
    Lesson(
        "confirm", "Pay and wait for confirmations",
        f"A payment in the newest block could still be undone by a competing branch; each block on top "
        f"makes that less likely. Merchants wait for a few: here, {PAYMENT_CONFIRMATIONS}.", 10,
        check_payment_confirmed,
    ),
    Lesson(
        "stake", "Stake and attest",
        "Proof of stake: validators lock points and vote for the chain's head; when two thirds of the stake "
        "agree, checkpoints are justified, then finalized.", 15, check_staked_and_attested,
    ),
    Lesson(
        "reorg", "See a reorg",
        "When a heavier branch appears, nodes switch to it: blocks of the old branch are disconnected and "
        "their payments go back to the pool, or vanish if they were double spends.", 0, None, NOT_WIRED,
    ),
    Lesson(
        "finality", "See finality stop a reorg",
        "Once a checkpoint is finalized, no branch that leaves it is ever followed, however heavy: that is "
        "what finality means.", 0, None, NOT_WIRED,
    ),
)
LESSONS_BY_ID = {lesson.id: lesson for lesson in LESSONS}


def get_lesson(lesson_id: str) -> Lesson:
    try:
        return LESSONS_BY_ID[lesson_id]
    except KeyError:
        raise UnknownLessonError(lesson_id, tuple(LESSONS_BY_ID)) from None


def check_lesson(lesson_id: str, facts: LessonFacts) -> LessonResult:
    """The lesson's check on ``facts``; an unknown id or an unavailable lesson is refused."""
    lesson = get_lesson(lesson_id)
    if lesson.check is None:
        raise LessonUnavailableError(lesson_id, lesson.unavailable_reason or "not available yet")
    return lesson.check(facts)
