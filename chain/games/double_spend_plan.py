"""The double-spend game's rules: what a start may ask for, when the private branch is published, and
how a round is judged (issue 11, item 4).

A round: the attacker pays a merchant (a payment that confirms on the public chain) while the
attacking side mines a private branch from the block before it, whose first block spends the same
nonce elsewhere. The merchant ships once the payment has ``k`` confirmations. Published, the private
branch wins if it has more work than the public blocks since the fork (ties go to the block seen
first, so level is not enough), and the reorg reverses the payment.

The figures shown are the Bitcoin paper's (``chain.games.double_spend.attacker_success_probability``,
section 11): P(q, k), before with the share the bot was told to lend (q as set), after with the share
the round measured (the attackers' fraction of the blocks found since the fork).

Pure: no clock, no randomness, no I/O; integers and exact fractions only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from chain.errors import DoubleSpendPlanError
from chain.games.double_spend import attacker_success_probability

# k, the confirmations the merchant waits for: a class round lasts minutes, and the paper's table
# already shows what 6 does to a 10 % attacker (0.0002428).
MIN_GAME_CONFIRMATIONS = 1
MAX_GAME_CONFIRMATIONS = 6
# Each side's share of the bot's hashing core, in percent (0: the bot does not mine for that side).
MAX_LENT_PERCENT = 100
# The round ends by itself after this long at the most (the admin picks up to this many minutes).
MAX_DEADLINE_MINUTES = 60


class Verdict(enum.Enum):
    """How a round ended."""

    # The payment was reversed after the merchant had its k confirmations: the goods are gone, the points back.
    DOUBLE_SPENT = "double_spent"
    # The payment was reversed, but before k confirmations: a careful merchant had not shipped yet.
    REVERSED_TOO_EARLY = "reversed_too_early"
    # The public branch kept the most work: the payment stands, the private blocks are orphans.
    PUBLIC_CHAIN_WON = "public_chain_won"


@dataclass(frozen=True, slots=True)
class DoubleSpendPlan:
    """A checked start: who pays whom, how much, the confirmations k, each side's lent share, the deadline."""

    payer: str
    merchant: str
    amount: int
    confirmations: int
    attack_percent: int
    honest_percent: int
    deadline_s: int

    @property
    def planned_share(self) -> Fraction | None:
        """q as set: the attackers' part of what the bot lends (None when the bot lends nothing:
        then only the members' own mining decides, and q is known only once measured)."""
        lent = self.attack_percent + self.honest_percent
        return None if lent == 0 else Fraction(self.attack_percent, lent)


def _whole(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DoubleSpendPlanError(f"{name} must be a whole number, not {value!r}")
    return value


def check_plan(
    *,
    payer: str,
    merchant: str,
    attackers: frozenset[str],
    amount: object,
    confirmations: object,
    attack_percent: object,
    honest_percent: object,
    deadline_minutes: object,
) -> DoubleSpendPlan:
    """The plan, or ``DoubleSpendPlanError`` saying which setting is wrong.

    ``attackers`` are the owners known to be on the attacking side at the start (the payer at least):
    the merchant must not be one of them, or the attack would pay itself.
    """
    if merchant == payer or merchant in attackers:
        raise DoubleSpendPlanError("the merchant must not be the attacker (or one of the attacking team)")
    points = _whole("the amount", amount)
    if points <= 0:
        raise DoubleSpendPlanError(f"the amount must be at least 1 point, not {points}")
    k = _whole("the confirmations k", confirmations)
    if not MIN_GAME_CONFIRMATIONS <= k <= MAX_GAME_CONFIRMATIONS:
        raise DoubleSpendPlanError(
            f"the confirmations k must be from {MIN_GAME_CONFIRMATIONS} to {MAX_GAME_CONFIRMATIONS}, not {k}"
        )
    shares = []
    for side, value in (("the attackers'", attack_percent), ("the honest side's", honest_percent)):
        percent = _whole(f"{side} share of the bot's hashing core", value)
        if not 0 <= percent <= MAX_LENT_PERCENT:
            raise DoubleSpendPlanError(
                f"{side} share of the bot's hashing core must be from 0 to {MAX_LENT_PERCENT} %, not {percent}"
            )
        shares.append(percent)
    if shares[0] + shares[1] > MAX_LENT_PERCENT:
        raise DoubleSpendPlanError(
            f"the bot can lend at most {MAX_LENT_PERCENT} % of its hashing core in all, not "
            f"{shares[0]} + {shares[1]} = {shares[0] + shares[1]} %"
        )
    minutes = _whole("the deadline", deadline_minutes)
    if not 1 <= minutes <= MAX_DEADLINE_MINUTES:
        raise DoubleSpendPlanError(f"the deadline must be from 1 to {MAX_DEADLINE_MINUTES} minutes, not {minutes}")
    return DoubleSpendPlan(payer, merchant, points, k, shares[0], shares[1], minutes * 60)


def paper_figure(q: Fraction | None, k: int) -> Decimal | None:
    """The paper's P(q, k) at its 7 places; None when q is not known."""
    return None if q is None else attacker_success_probability(q, k)


@dataclass(frozen=True, slots=True)
class BranchRace:
    """The two branches since the fork: work and blocks each, and where the payment sits on the public one.

    ``payment_height`` is the public block that confirmed the payment (None while it is pending),
    ``public_height`` the public tip's height.
    """

    public_work: int
    private_work: int
    public_blocks: int
    private_blocks: int
    payment_height: int | None
    public_height: int

    @property
    def confirmations(self) -> int:
        """The merchant's view: the payment's block and every block on top of it."""
        if self.payment_height is None:
            return 0
        return max(0, self.public_height - self.payment_height + 1)

    @property
    def private_is_heavier(self) -> bool:
        """Strictly more work: a tie goes to the public tip, which every node saw first."""
        return self.private_work > self.public_work


def is_ready_to_publish(race: BranchRace, confirmations: int) -> bool:
    """The automatic publish: the merchant has its k confirmations (and shipped) and the private
    branch has more work than the public one since the fork, so publishing it reverses the payment."""
    return race.confirmations >= confirmations and race.private_is_heavier


def measured_share(attacker_blocks: int, honest_blocks: int) -> Fraction | None:
    """The attackers' fraction of the blocks found since the fork (None before any block)."""
    total = attacker_blocks + honest_blocks
    return None if total == 0 else Fraction(attacker_blocks, total)


def judge(*, payment_reversed: bool, confirmations_at_publish: int, confirmations: int) -> Verdict:
    """The round's verdict from what publishing did and what the merchant had seen before it."""
    if not payment_reversed:
        return Verdict.PUBLIC_CHAIN_WON
    if confirmations_at_publish >= confirmations:
        return Verdict.DOUBLE_SPENT
    return Verdict.REVERSED_TOO_EARLY
