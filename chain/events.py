"""Events a state change emits; they go to the durable outbox with it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

BLOCK_MINED = "block_mined"
REWARD_PAID = "reward_paid"
DIFFICULTY_CHANGED = "difficulty_changed"


@dataclass(frozen=True, slots=True)
class ChainEvent:
    kind: str
    payload: dict[str, Any] = field(default_factory=dict)

    def payload_json(self) -> str:
        return json.dumps(self.payload, sort_keys=True, separators=(",", ":"))
