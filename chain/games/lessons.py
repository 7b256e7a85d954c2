"""Guided lessons (issue 11, item 7): what each lesson asks of a member, and the check that says
whether the real chain shows it done.

A lesson is data (``Lesson``: id, title, why it matters, reward) and a pure check over a read model
of the chain as one member sees it (``LessonFacts``, built by the front door from the running
chain). The checks never look at anything a member could type: they read blocks, payments and
votes the chain really holds, so a lesson is passed by doing it, not by claiming it.

What a member types to do each lesson (the slash commands) is the front end's (``cogs/learn.py``):
the engine names no command. A lesson whose check needs engine parts that are not running is listed
as not available (``Lesson.check`` None), and its check says so (``LessonUnavailableError``) instead
of passing or failing.

The two reorg lessons read the chain's reorg log (``reorg_log``, written by the store in the reorg's
own transaction): only reorgs (or finality's refusals) logged after the member started count, and
only one the member took part in, with a block of theirs taken off or on the branch that took over
(or was refused): the member makes it happen, a classmate's reorg they had no block in is not theirs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from chain.errors import LessonUnavailableError, UnknownLessonError
from chain.params import ChainParams
from chain.pow.difficulty import is_retarget_height

# Confirmations a payment needs for the payment lesson: a few blocks on top, as a merchant waits.
PAYMENT_CONFIRMATIONS = 3


# How a member took part in a reorg: a block of theirs was taken off the main chain ("orphaned"), or
# was on the branch that took over, or that finality refused ("branch").
ReorgRole = Literal["orphaned", "branch"]
# What can stop a reorg on the chain: "none" (proof of work only: nothing is ever finalized),
# "checkpoints" (hybrid before the Merge: mined blocks, Casper FFG finalizes checkpoints), "votes"
# (proof of stake, or after the Merge: validators' votes choose the head, a mined branch cannot compete).
FinalityKind = Literal["none", "checkpoints", "votes"]


@dataclass(frozen=True, slots=True)
class ReorgSeen:
    """A reorg (or a heavier branch finality refused) logged after the member started the lesson.

    ``height``: the new tip's (or the refused tip's); ``depth``: the blocks taken off (or that would
    have been); ``took_part``: how the member's blocks were in it, None if none of theirs was."""

    height: int
    depth: int
    took_part: ReorgRole | None = None


@dataclass(frozen=True, slots=True)
class LessonFacts:
    """One member's view of one chain, as the checks need it.

    ``payment_heights``: heights of confirmed transfers the member sent (not rewards or claims they
    received). ``start_height``: the tip's height when the member started the lesson, on this chain
    (None if never started). ``reorgs``, ``refusals``: the chain's reorgs and finality's refusals
    logged since the member started, oldest first. ``finality``: what can stop a reorg on this chain;
    ``finalized_height``: the newest finalized block's height (None: nothing finalized above genesis)."""

    tip_height: int
    params: ChainParams
    blocks_mined: int
    payment_heights: tuple[int, ...]
    has_validator: bool
    vote_counted: bool
    start_height: int | None = None
    reorgs: tuple[ReorgSeen, ...] = ()
    refusals: tuple[ReorgSeen, ...] = ()
    finality: FinalityKind = "none"
    finalized_height: int | None = None


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


def _blocks(count: int) -> str:
    return f"{count} block{'' if count == 1 else 's'}"


def _taken_part(seen: tuple[ReorgSeen, ...]) -> ReorgSeen | None:
    """The first of ``seen`` the member took part in, a block of theirs on the branch first."""
    ours = [r for r in seen if r.took_part is not None]
    return next((r for r in ours if r.took_part == "branch"), ours[0] if ours else None)


def check_saw_a_reorg(facts: LessonFacts) -> LessonResult:
    if facts.start_height is None:
        return LessonResult(False, "start the lesson first: only reorgs after that count")
    seen = _taken_part(facts.reorgs)
    if seen is not None:
        how = (
            "a block of yours was on the branch that took over" if seen.took_part == "branch"
            else "a block of yours was taken off the main chain (orphaned)"
        )
        return LessonResult(
            True, f"the main chain switched branch, to block {seen.height}, taking {_blocks(seen.depth)} off: {how}"
        )
    if facts.reorgs:
        return LessonResult(
            False, f"the chain reorganised {len(facts.reorgs)} time(s) since you started, but no block of yours was "
            "taken off or on the branch that took over: build a competing branch yourself",
        )
    if facts.finality == "votes":
        return LessonResult(
            False, "no reorg since you started; on this chain validators' votes choose the head and nobody mines, "
            "so you cannot make one by mining a branch: try it on a proof-of-work or hybrid chain",
        )
    return LessonResult(
        False, f"no reorg since you started at block {facts.start_height}: mine on an older block, then on your "
        "own block, until your branch has more work than the main chain",
    )


def check_saw_finality_refuse_a_reorg(facts: LessonFacts) -> LessonResult:
    if facts.start_height is None:
        return LessonResult(False, "start the lesson first: only refusals after that count")
    seen = _taken_part(facts.refusals)
    if seen is not None:
        return LessonResult(
            True, f"your branch, to block {seen.height}, had more work than the main chain but was refused: "
            f"switching to it would have taken {_blocks(seen.depth)} off, a finalized one among them",
        )
    if facts.refusals:
        return LessonResult(
            False, f"finality refused {len(facts.refusals)} branch(es) since you started, but none had a block of "
            "yours: build one yourself",
        )
    if facts.finality == "none":
        return LessonResult(
            False, "this chain is proof of work only: nothing is ever finalized, so the branch with the most work "
            "always wins. This lesson needs a hybrid chain (proof of work with finality checkpoints)",
        )
    if facts.finality == "votes":
        return LessonResult(
            False, "on this chain validators' votes choose the head and nobody mines, so no mined branch can "
            "compete: this lesson needs a hybrid chain before the Merge",
        )
    if facts.finalized_height is None:
        return LessonResult(
            False, "nothing is finalized on this chain yet: validators must vote for two checkpoints in a row first",
        )
    return LessonResult(
        False, f"no heavier branch was refused since you started; the newest finalized block is "
        f"{facts.finalized_height}: mine a branch from below it until it has more work than the main chain",
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
        "their payments go back to the pool, or vanish if they were double spends.", 15, check_saw_a_reorg,
    ),
    Lesson(
        "finality", "See finality stop a reorg",
        "Once a checkpoint is finalized, no branch that leaves it is ever followed, however heavy: that is "
        "what finality means.", 20, check_saw_finality_refuse_a_reorg,
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
