"""Slashing evidence members hand in, and the slashing-protection record they can take out.

``report`` checks evidence anyone found (two conflicting signed votes, or two signed block headers
for one slot) and queues it in the op pool, so the next block slashes the offender; the node's own
``SlashingDetector`` (chain/adapters/votes.py, chain/adapters/slot_driver.py) queues what it sees
itself.  ``protection`` is the member's EIP-3076 interchange record, as the signer keeps it.
"""

from __future__ import annotations

from typing import Any

from chain.adapters.beacon_runtime import BeaconChains
from chain.errors import EncodingError
from chain.pos.attestation import (
    AttesterSlashing,
    ProposerSlashing,
    check_attester_slashing,
    check_proposer_slashing,
)


class SlashingReports:
    """Evidence reports into the op pool, and each member's slashing-protection export."""

    def __init__(self, chains: BeaconChains) -> None:
        self.chains = chains

    async def report(self, chain_id: int, evidence_hex: str) -> AttesterSlashing | ProposerSlashing:
        """Queue slashing evidence anyone found (two conflicting signed votes or block headers)."""
        self.chains.chain(chain_id)
        try:
            raw = bytes.fromhex(evidence_hex.strip())
        except ValueError:
            raise EncodingError(
                "evidence is hex: two signed votes (896 hex digits) or two signed blocks (704)"
            ) from None
        evidence: AttesterSlashing | ProposerSlashing
        if len(raw) == 2 * 224:
            evidence = AttesterSlashing.deserialize(raw)
            check_attester_slashing(evidence, chain_id)
        elif len(raw) == 2 * 176:
            evidence = ProposerSlashing.deserialize(raw)
            check_proposer_slashing(evidence, chain_id)
        else:
            raise EncodingError(
                f"evidence has {len(raw)} bytes; two signed votes have 448 and two signed block headers 352"
            )
        await self.chains.node.add_operation(chain_id, evidence)
        self.chains.node.note_activity(chain_id)
        return evidence

    async def protection(self, chain_id: int, owner: str) -> dict[str, Any]:
        state = self.chains.chain(chain_id).state
        return await self.chains.signer.export_protection(chain_id, owner, state.genesis_hash)
