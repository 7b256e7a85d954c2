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
