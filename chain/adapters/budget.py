"""How much work one server's chain may make the bot do: slot blocks, idle chains, a budget.

A proof-of-stake chain gets a block every slot from the bot's slot driver, whether
anybody plays or not: each is signed, checked, stored and posted.  Three rules keep
that in proportion (the README's "Limits" section explains them to admins):

- ``MIN_SLOT_DURATION_S``: the shortest slot an admin can choose.  Discord lets a
  channel take about five messages in five seconds; a block post every few
  seconds already uses a good part of that.
- Idle chains: a slot whose block would carry nothing (no transfer, deposit,
  exit, vote or slashing; expected withdrawals alone do not count) is skipped
  while nobody has acted on the chain for ``IDLE_AFTER_S``, but a chain never goes
  a whole epoch without a block, so epochs are processed on time and the work of
  catching up to the current slot stays bounded.
- ``BlockBudget``: a token bucket of blocks per server.  When it is empty, empty
  slots are skipped even while members play (down to the one-a-epoch floor);
  blocks that carry members' transfers or operations always go ahead.

Everything here is pure integer arithmetic with the time passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

from chain.errors import ParamsError

# The shortest slot an admin can set; Ethereum's is 12 s.
MIN_SLOT_DURATION_S = 6
# Without a member's action for this long, a chain's empty slots are skipped.
IDLE_AFTER_S = 600
# Default budget: slot blocks a server may get per hour on average (one per 10 s), with an hour's burst.
DEFAULT_BLOCKS_PER_HOUR = 360
SECONDS_PER_HOUR = 3_600


@dataclass
class BlockBudget:
    """A token bucket: ``blocks_per_hour`` tokens an hour, at most ``blocks_per_hour`` saved up.

    Tokens are counted in block-seconds (one block = ``SECONDS_PER_HOUR`` units) so the
    refill stays exact in integers.
    """

    blocks_per_hour: int
    units: int
    updated_at: int

    @classmethod
    def full(cls, blocks_per_hour: int, now: int) -> BlockBudget:
        if blocks_per_hour < 1:
            raise ParamsError(f"a budget allows at least one block an hour, not {blocks_per_hour}")
        return cls(blocks_per_hour, blocks_per_hour * SECONDS_PER_HOUR, now)

    def _refill(self, now: int) -> None:
        elapsed = max(0, now - self.updated_at)
        capacity = self.blocks_per_hour * SECONDS_PER_HOUR
        self.units = min(capacity, self.units + elapsed * self.blocks_per_hour)
        self.updated_at = max(self.updated_at, now)

    def available(self, now: int) -> int:
        """Whole blocks the server may still make now."""
        self._refill(now)
        return max(0, self.units // SECONDS_PER_HOUR)

    def spend(self, now: int) -> None:
        """Count one block (a block with members' actions may overdraw: it goes ahead regardless)."""
        self._refill(now)
        self.units -= SECONDS_PER_HOUR


def is_idle(last_activity: int, now: int) -> bool:
    """Whether nobody has acted on the chain for ``IDLE_AFTER_S``."""
    return now - last_activity >= IDLE_AFTER_S


def should_skip_empty_slot(
    *, last_activity: int, now: int, slots_since_block: int, slots_per_epoch: int, budget_left: int
) -> bool:
    """Skip this slot's block, which would carry nothing?  Never for a whole epoch in a row."""
    if slots_since_block >= slots_per_epoch:
        return False
    return is_idle(last_activity, now) or budget_left < 1
