"""Events a state change emits; they go to the durable outbox with it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

BLOCK_MINED = "block_mined"
REWARD_PAID = "reward_paid"
DIFFICULTY_CHANGED = "difficulty_changed"
MILESTONE_REACHED = "milestone_reached"
PARAMS_CHANGED = "params_changed"

# Balances worth announcing, in points.
BALANCE_MILESTONES_POINTS = (100, 500, 1_000, 5_000, 10_000, 50_000, 100_000, 1_000_000)


def compute_crossed_milestone(before: int, after: int) -> int | None:
    """The highest milestone a balance crossed upward, if any."""
    crossed = [m for m in BALANCE_MILESTONES_POINTS if before < m <= after]
    return crossed[-1] if crossed else None


@dataclass(frozen=True, slots=True)
class ChainEvent:
    kind: str
    payload: dict[str, Any] = field(default_factory=dict)

    def payload_json(self) -> str:
        return json.dumps(self.payload, sort_keys=True, separators=(",", ":"))

# Proof of stake (chain/pos/beacon.py, chain/consensus/state.py).
VALIDATOR_ACTIVATED = "validator_activated"
VALIDATOR_EXITED = "validator_exited"
VALIDATOR_WITHDRAWABLE = "validator_withdrawable"
CHECKPOINT_JUSTIFIED = "checkpoint_justified"
CHECKPOINT_FINALIZED = "checkpoint_finalized"
EPOCH_REWARDS = "epoch_rewards"
VALIDATOR_SLASHED = "validator_slashed"
INACTIVITY_LEAK_STARTED = "inactivity_leak_started"
INACTIVITY_LEAK_ENDED = "inactivity_leak_ended"
THE_MERGE = "the_merge"
MERGE_SCHEDULED = "merge_scheduled"
# The block the Merge was scheduled after came, but no validator could propose yet: mining goes on.
MERGE_DELAYED = "merge_delayed"
STAKE_DEPOSITED = "stake_deposited"
STAKE_WITHDRAWN = "stake_withdrawn"
