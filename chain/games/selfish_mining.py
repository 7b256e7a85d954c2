"""Selfish mining: Eyal and Sirer, "Majority is not Enough: Bitcoin Mining is Vulnerable" (FC 2014).

A pool with a share α of the hash power keeps the blocks it finds private and publishes them only to
orphan honest blocks (the paper's Algorithm 1). Its states are the private branch's lead over the
public one: 0 (no fork), 0' (two public branches of one block each, a race), 1, 2, 3... In a race,
a share γ of the honest miners mine on the pool's branch (how well the pool's blocks spread).

- ``next_state`` is Algorithm 1 as one transition: a block found (by the pool, by an honest miner,
  or in a race by an honest miner on the pool's branch) takes a ``PoolState`` to the next and says
  what the pool publishes and which blocks settle. The simulation below and the live game on a real
  chain (``chain/adapters/selfish_mining.py``) both step through it, so they play the same rules;
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

import enum
from dataclasses import dataclass
from fractions import Fraction

from chain.errors import (
    InvalidHashShareError,
    InvalidPoolStateError,
    InvalidSimulationLengthError,
    InvalidTieBreakError,
)
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


class Finder(enum.Enum):
    """Who found the block a transition is about."""

    POOL = "pool"
    HONEST = "honest"
    """An honest block on the public branch (in a race: on the branch the honest miner saw first)."""
    HONEST_ON_POOL = "honest_on_pool"
    """In a race (state 0'), an honest block on the pool's branch: the γ of the honest miners."""


@dataclass(frozen=True, slots=True)
class PoolState:
    """The fork since the last settled block: the pool's ``private`` blocks (``published`` of them
    public) against the ``public`` honest blocks on the other branch.

    The paper's states are the lead ``private - public``: 0 (no fork), 1, 2, 3... and 0', two public
    branches of equal length (``race``; only 1 against 1 in the paper, a longer tie in a live game
    where two honest blocks arrive before the pool has answered the first).
    """

    private: int = 0
    published: int = 0
    public: int = 0

    def __post_init__(self) -> None:
        for value in (self.private, self.published, self.public):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidPoolStateError(f"a pool state counts blocks: whole numbers from 0, not {value!r}")
        if self.published > self.private:
            raise InvalidPoolStateError(
                f"the pool cannot have published {self.published} of its {self.private} blocks"
            )
        if self.public > self.private or (self.public == self.private and self.published < self.private):
            # A fork where the honest branch is as long as the pool's, unpublished, or longer, is settled:
            # Algorithm 1 has adopted the honest branch or published to match it before.
            raise InvalidPoolStateError(
                f"{self.public} honest blocks against the pool's {self.private} ({self.published} published) "
                "is no state of Algorithm 1"
            )

    @property
    def lead(self) -> int:
        """How many blocks the pool's branch is ahead of the public one."""
        return self.private - self.public

    @property
    def race(self) -> bool:
        """State 0': both branches public and of equal length; the honest miners split by γ."""
        return self.private > 0 and self.private == self.public

    @property
    def settled(self) -> bool:
        """State 0: no fork open, every block found is on the main chain or orphaned."""
        return self.private == 0

    @property
    def withheld(self) -> int:
        """The pool's blocks nobody else has seen."""
        return self.private - self.published

    @property
    def name(self) -> str:
        """The paper's name of the state: 0, 0', 1, 2..."""
        return "0'" if self.race else str(self.lead)


@dataclass(frozen=True, slots=True)
class Transition:
    """One step of Algorithm 1: a block found in state ``before`` leads to ``after``.

    ``publish`` is how many of the pool's withheld blocks it publishes now, oldest first. When a fork
    settles, ``pool_settled``/``honest_settled`` blocks join the main chain for good (the one just
    found included) and ``pool_orphaned``/``honest_orphaned`` are left off it.
    """

    before: PoolState
    finder: Finder
    after: PoolState
    publish: int = 0
    pool_settled: int = 0
    honest_settled: int = 0
    pool_orphaned: int = 0
    honest_orphaned: int = 0

    @property
    def pool_wins(self) -> bool:
        """The pool's branch settled on the main chain and orphaned honest blocks."""
        return self.pool_settled > 0 and self.honest_orphaned > 0


SETTLED = PoolState()


def next_state(state: PoolState, finder: Finder) -> Transition:
    """Algorithm 1 of the paper, one block at a time: what the pool does when ``finder`` finds a block.

    The pool finds a block: in a race it publishes it and wins (its branch is one longer); otherwise
    it keeps the block private. An honest block on the public branch, with the pool's lead before it:
    0, the honest miners win (the pool adopts their chain); 0', the honest branch wins and the pool's
    is orphaned; 1, the pool publishes its block to match (a race, 0'); 2, the pool publishes
    everything and wins by one; more than 2, it publishes its oldest withheld block and keeps the lead.
    An honest block on the pool's branch (possible only in a race) settles the race for the pool.
    """
    if not isinstance(state, PoolState):
        raise InvalidPoolStateError(f"a pool state must be a PoolState, not {state!r}")
    if not isinstance(finder, Finder):
        raise InvalidPoolStateError(f"the finder must be a Finder, not {finder!r}")
    private, public = state.private, state.public
    if finder is Finder.POOL:
        if state.race:
            return Transition(state, finder, SETTLED, publish=state.withheld + 1,
                              pool_settled=private + 1, honest_orphaned=public)
        return Transition(state, finder, PoolState(private + 1, state.published, public))
    if finder is Finder.HONEST_ON_POOL:
        if not state.race:
            raise InvalidPoolStateError(
                f"an honest block on the pool's branch needs a race (state 0'), not state {state.name}"
            )
        return Transition(state, finder, SETTLED, pool_settled=private, honest_settled=1, honest_orphaned=public)
    if state.race:
        return Transition(state, finder, SETTLED, honest_settled=public + 1, pool_orphaned=private)
    lead = state.lead
    if lead == 0:
        return Transition(state, finder, SETTLED, honest_settled=1)
    if lead == 1:
        return Transition(state, finder, PoolState(private, private, public + 1), publish=state.withheld)
    if lead == 2:
        return Transition(state, finder, SETTLED, publish=state.withheld,
                          pool_settled=private, honest_orphaned=public + 1)
    published = min(private, max(state.published, public) + 1)
    return Transition(state, finder, PoolState(private, published, public + 1), publish=published - state.published)


def simulate_selfish_mining(
    alpha: Fraction, gamma: Fraction | int, rng: RandomSource, *, blocks: int
) -> SelfishMiningResult:
    """Play Algorithm 1 (``next_state``, the live game's transition too) until ``blocks`` blocks are found
    and no fork is open.

    Each found block is the pool's with probability exactly α; in a race, an honest block is on the
    pool's branch with probability exactly γ. A fork settles when one branch wins: its blocks join the
    main chain and the other branch's are orphaned.
    """
    a = check_pool_share(alpha)
    g = check_tie_break(gamma)
    budget = whole_number("the blocks to find", blocks, InvalidSimulationLengthError)
    if not 0 < budget <= MAX_BLOCKS:
        raise InvalidSimulationLengthError(f"the blocks to find must be from 1 to {MAX_BLOCKS:,}, not {budget:,}")
    pool = honest = pool_orphaned = honest_orphaned = 0
    state = SETTLED
    found = 0
    while found < budget or not state.settled:
        found += 1
        if happens(rng, a):
            finder = Finder.POOL
        elif state.race and happens(rng, g):
            finder = Finder.HONEST_ON_POOL
        else:
            finder = Finder.HONEST
        step = next_state(state, finder)
        pool += step.pool_settled
        honest += step.honest_settled
        pool_orphaned += step.pool_orphaned
        honest_orphaned += step.honest_orphaned
        state = step.after
    return SelfishMiningResult(pool, honest, pool_orphaned, honest_orphaned)
