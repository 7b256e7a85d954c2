"""Selfish mining: Eyal and Sirer, "Majority is not Enough: Bitcoin Mining is Vulnerable" (FC 2014).

A pool with a share α of the hash power keeps the blocks it finds private and publishes them only to
orphan honest blocks (the paper's Algorithm 1). Its states are the private branch's lead over the
public one: 0 (no fork), 0' (two public branches of one block each, a race), 1, 2, 3... In a race,
a share γ of the honest miners mine on the pool's branch (how well the pool's blocks spread).

- ``simulate_selfish_mining`` plays Algorithm 1 block by block against honest miners, with the
  randomness handed in, and counts each side's blocks on the main chain and orphaned;
- ``relative_revenue`` is the paper's closed form for the pool's share of the main chain (its
  equation (8), from the state machine's stationary distribution):

      R_pool = (α(1-α)²(4α + γ(1-2α)) - α³) / (1 - α(1 + (2-α)α))

- ``profitability_threshold`` is the α above which selfish mining beats honest mining,
  ``(1-γ)/(3-2γ)``: 1/3 when γ = 0, 1/4 when γ = 1/2, 0 when γ = 1.

Exact rationals throughout (Fraction), integers in the simulation. α is refused outside (0, 1/2):
at 0 there is no pool, and from 1/2 up the pool's lead never comes back and the state machine has
no steady state (the closed form's derivation needs α < 1/2). Pure: no clock, no randomness of its
own, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from chain.errors import InvalidHashShareError, InvalidSimulationLengthError, InvalidTieBreakError
from chain.games.chance import RandomSource, exact_fraction, happens, whole_number

# A simulation finds at most this many blocks (plus those that settle the last fork) per call.
MAX_BLOCKS = 10_000_000


def check_pool_share(alpha: object) -> Fraction:
    """The selfish pool's share α of the hash power: an exact fraction strictly between 0 and 1/2."""
    share = exact_fraction("the pool's hash share α", alpha, InvalidHashShareError)
    if not 0 < share < Fraction(1, 2):
        raise InvalidHashShareError(f"the pool's hash share α must be above 0 and below 1/2, not {share}")
    return share


def check_tie_break(gamma: object) -> Fraction:
    """γ, the share of honest miners that mine on the pool's branch during a race: in [0, 1]."""
    share = exact_fraction("the tie-break share γ", gamma, InvalidTieBreakError)
    if not 0 <= share <= 1:
        raise InvalidTieBreakError(f"the tie-break share γ must be between 0 and 1, not {share}")
    return share


def relative_revenue(alpha: Fraction, gamma: Fraction | int) -> Fraction:
    """The pool's expected share of the main chain's blocks (Eyal and Sirer, equation (8)), exactly."""
    a = check_pool_share(alpha)
    g = check_tie_break(gamma)
    return (a * (1 - a) ** 2 * (4 * a + g * (1 - 2 * a)) - a**3) / (1 - a * (1 + (2 - a) * a))


def profitability_threshold(gamma: Fraction | int) -> Fraction:
    """The share α above which a selfish pool earns more than α: ``(1-γ)/(3-2γ)``."""
    g = check_tie_break(gamma)
    return (1 - g) / (3 - 2 * g)


@dataclass(frozen=True)
class SelfishMiningResult:
    """Blocks found by each side, and where they ended: on the main chain or orphaned.

    Every block is settled (the simulation stops only with no fork open), so
    ``pool_blocks + pool_orphaned`` is what the pool found, and the same for the honest side.
    """

    pool_blocks: int
    honest_blocks: int
    pool_orphaned: int
    honest_orphaned: int

    @property
    def main_chain(self) -> int:
        return self.pool_blocks + self.honest_blocks

    @property
    def pool_share(self) -> Fraction:
        """The pool's share of the main chain (its relative revenue); 0 for an empty chain."""
        return Fraction(self.pool_blocks, self.main_chain) if self.main_chain else Fraction(0)


def simulate_selfish_mining(
    alpha: Fraction, gamma: Fraction | int, rng: RandomSource, *, blocks: int
) -> SelfishMiningResult:
    """Play Algorithm 1 until ``blocks`` blocks are found and no fork is open.

    Each found block is the pool's with probability exactly α. The fork since the last settled block
    is ``private`` pool blocks against ``public`` honest ones; ``race`` is state 0' (the pool has
    published its one block to match the honest one). A fork settles when one branch wins: its blocks
    join the main chain and the other branch's are orphaned.
    """
    a = check_pool_share(alpha)
    g = check_tie_break(gamma)
    budget = whole_number("the blocks to find", blocks, InvalidSimulationLengthError)
    if not 0 < budget <= MAX_BLOCKS:
        raise InvalidSimulationLengthError(f"the blocks to find must be from 1 to {MAX_BLOCKS:,}, not {budget:,}")
    pool = honest = pool_orphaned = honest_orphaned = 0
    private = public = 0
    race = False
    found = 0
    while found < budget or private or public:
        found += 1
        if happens(rng, a):
            if race:
                # State 0', the pool finds: it publishes and its branch is two blocks to one.
                pool += private + 1
                honest_orphaned += public
                private = public = 0
                race = False
            else:
                # States 0, 1, 2...: the lead grows and the block stays private.
                private += 1
            continue
        lead = private - public
        if race:
            # State 0', an honest block: γ of the honest miners built on the pool's branch.
            if happens(rng, g):
                pool += private
                honest += 1
                honest_orphaned += public
            else:
                honest += public + 1
                pool_orphaned += private
            private = public = 0
            race = False
        elif lead == 0:
            # State 0: the honest block is the new tip for everyone.
            honest += 1
        elif lead == 1:
            # State 1: the pool publishes its block to match, a race (state 0').
            public += 1
            race = True
        elif lead == 2:
            # State 2: the pool publishes everything; its branch is longer by one and wins.
            public += 1
            pool += private
            honest_orphaned += public
            private = public = 0
        else:
            # Lead above 2: the pool publishes its next block and keeps the lead (it wins later).
            public += 1
    return SelfishMiningResult(pool, honest, pool_orphaned, honest_orphaned)
