"""The supply over height: points minted, burned, staked and circulating, from a replay of the chain.

No per-block totals are stored (the beacon state is kept only at the tip), so the history comes
from replaying the stored blocks: ``SupplyReplay`` applies them one by one with ``process_block``
(every rule checked, as ``verify`` does) and samples the supply as it goes.  It can be extended
with the blocks that came since, so a chain is replayed once and then only its new blocks.

At every height, in nanopoints (``UNITS_PER_POINT`` to a point):

* **minted**: everything ever issued: the genesis allocations (the faucet's fund among them),
  proof-of-work block subsidies, validators' genesis stake and epoch rewards;
* **burned**: everything destroyed: penalties, slashings and the dust of full withdrawals
  (transfer fees are not burned: the block's coinbase pays them to its miner or proposer);
* **staked**: the validators' balances (deposits move points out of wallets into them,
  withdrawals back);
* **circulating**: the wallets' balances, summed from each block's account changes (not read from
  the same totals the other three come from).

minted − burned = staked + circulating at every height, exactly: ``compute_supply_point`` raises
``SupplyMismatchError`` otherwise.  There is nothing else: a deposit is in a validator's balance
in the block that carries it, and a withdrawal is in the wallet in the block that pays it.

Sampling keeps memory and the chart bounded however long the chain: heights that are multiples of
a stride (a power of two), at most ``max_points - 1`` of them plus the tip; when they would be
more, the stride doubles and every other sample goes.  Pure: no clock, no storage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chain.consensus.block import Block
from chain.consensus.state import ChainState
from chain.consensus.transition import process_block
from chain.errors import ChartEmptyInputError, ChartValueError, SupplyMismatchError
from chain.ledger.accounts import Account
from chain.params import ChainParams
from chain.pos.beacon import ConsensusConfig
from chain.pos.rewards import UNITS_PER_POINT

# The chart's cap on points per series (cogs/chart_spec.py MAX_POINTS_PER_SERIES).
SUPPLY_MAX_POINTS = 2_000


@dataclass(frozen=True, slots=True)
class SupplyPoint:
    """The supply after block ``height``, in nanopoints."""

    height: int
    minted_units: int
    burned_units: int
    staked_units: int
    circulating_units: int


@dataclass(frozen=True, slots=True)
class SupplyHistory:
    """Sampled points, genesis first and the tip last; ``stride`` blocks apart (but the last gap)."""

    points: tuple[SupplyPoint, ...]
    stride: int
    # Blocks replayed to produce it (the whole chain, or only the new blocks of a kept replay).
    replayed_blocks: int = 0


def compute_supply_point(state: ChainState, circulating_points: int) -> SupplyPoint:
    """The supply after ``state``'s tip; ``circulating_points``: the wallets' balances, summed
    separately by the caller, checked here against minted − burned − staked."""
    minted = state.ledger.minted * UNITS_PER_POINT
    burned = staked = 0
    beacon = state.beacon
    if beacon is not None:
        minted += beacon.minted_units
        burned = beacon.burned_units
        staked = beacon.registry.total_balance()
    circulating = circulating_points * UNITS_PER_POINT
    if minted - burned != staked + circulating:
        raise SupplyMismatchError(
            f"at height {state.height} minted {minted} − burned {burned} nanopoints is {minted - burned}, but "
            f"staked {staked} + circulating {circulating} is {staked + circulating}"
        )
    return SupplyPoint(state.height, minted, burned, staked, circulating)


def compute_balance_change(state: ChainState, accounts: dict[bytes, Account]) -> int:
    """How much a block's new account values (``BlockEffects.accounts``) change the wallets' total
    on ``state`` (points), before they are applied."""
    before = state.ledger
    return sum(after.balance - before.get(address, Account()).balance for address, after in accounts.items())


class SupplyReplay:
    """One chain replayed from genesis, its supply sampled; ``extend`` it with each next block."""

    def __init__(
        self,
        params: ChainParams,
        chain_id: int,
        genesis: Block,
        consensus: ConsensusConfig | None,
        param_changes: Sequence[ChainParams] = (),
        *,
        max_points: int = SUPPLY_MAX_POINTS,
    ) -> None:
        """``param_changes``: every rule change the chain commits to (its retarget window may need
        older headers, kept from the start as ``verify`` keeps them)."""
        if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 2:
            raise ChartValueError(f"max_points {max_points!r} must be a whole number, at least 2 (genesis and tip)")
        self.state = ChainState(params, chain_id, genesis, consensus)
        # A rule change to a longer retarget window reads headers from before it: kept from the start.
        self.reserved = tuple(param_changes)
        self.state.reserve_history(*self.reserved)
        self._max_kept = max_points - 1
        self._circulating = self.state.ledger.total_balance()
        self._stride = 1
        self._samples: list[SupplyPoint] = [compute_supply_point(self.state, self._circulating)]
        self.replayed_blocks = 0

    @property
    def height(self) -> int:
        return self.state.height

    @property
    def tip_hash(self) -> bytes:
        return self.state.tip_hash

    def extend(
        self,
        block: Block,
        now: int,
        proposed_params: ChainParams | None = None,
        proposed_consensus: ConsensusConfig | None = None,
    ) -> None:
        """Apply the next block (every rule checked; a bad block raises and changes nothing)."""
        effects = process_block(self.state, block, now, proposed_params, proposed_consensus)
        change = compute_balance_change(self.state, effects.accounts)
        self.state.apply(block, effects)
        self._circulating += change
        self.replayed_blocks += 1
        if self.state.height % self._stride == 0:
            self._samples.append(compute_supply_point(self.state, self._circulating))
            if len(self._samples) > self._max_kept:
                self._stride *= 2
                self._samples = [p for p in self._samples if p.height % self._stride == 0]

    def history(self) -> SupplyHistory:
        """The samples and the tip; ``ChartEmptyInputError`` while the chain is only its genesis."""
        if self.state.height == 0:
            raise ChartEmptyInputError(
                "the chain is only its genesis block: a supply over height needs a block after it"
            )
        points = list(self._samples)
        if points[-1].height != self.state.height:
            points.append(compute_supply_point(self.state, self._circulating))
        return SupplyHistory(tuple(points), self._stride, self.replayed_blocks)
