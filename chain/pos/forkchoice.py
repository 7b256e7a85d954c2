"""The fork choice's weights, and slashing detection.

Weights (``get_fork_choice_weights``)
-------------------------------------
Each validator's say in the fork choice (``chain.pos.lmd_ghost``, which the node runs over its block
tree: ``chain.adapters.head_choice``): its effective stake if active and not slashed.

Slashing detection (``SlashingDetector``)
-----------------------------------------
Every signed attestation and signed proposal header the node sees goes through
``observe_attestation`` / ``observe_proposal``; a message that conflicts with
one seen before from the same validator comes back as ready-made evidence
(``AttesterSlashing`` / ``ProposerSlashing``), which ``check_attester_slashing``
/ ``check_proposer_slashing`` accept: a double vote, a surround vote in either
direction (the surrounding vote is put first, as phase0 expects), or a double
proposal.  Signatures are checked first, so a forged message cannot frame anyone.
"""

from __future__ import annotations

from chain.pos.attestation import (
    AttesterSlashing,
    ProposerSlashing,
    SignedAttestation,
    SignedProposalHeader,
    check_attestation_signature,
    check_proposal_signature,
    is_slashable_attestation_data,
)
from chain.pos.beacon import BeaconState
from chain.pos.staking import is_active_validator


def get_fork_choice_weights(state: BeaconState) -> tuple[int, ...]:
    """Each validator's say in the fork choice: its effective stake if active and not slashed, else 0
    (phase0 counts active validators' latest messages; later forks also ignore equivocators)."""
    return tuple(
        v.effective_balance if is_active_validator(v, state.epoch) and not v.slashed else 0
        for v in state.registry.validators
    )


class SlashingDetector:
    """Every signed message seen, by validator; returns evidence when a new one conflicts."""

    def __init__(self) -> None:
        self._votes: dict[bytes, list[SignedAttestation]] = {}
        self._proposals: dict[tuple[bytes, int], SignedProposalHeader] = {}

    def observe_attestation(self, attestation: SignedAttestation) -> AttesterSlashing | None:
        """Record the vote; evidence if it is a double vote or a surround vote with an earlier one."""
        check_attestation_signature(attestation)
        seen = self._votes.setdefault(attestation.validator, [])
        new = attestation.data
        for old in seen:
            if old.data == new:
                return None
            if is_slashable_attestation_data(old.data, new):
                return AttesterSlashing(old, attestation)
            if is_slashable_attestation_data(new, old.data):
                return AttesterSlashing(attestation, old)
        seen.append(attestation)
        return None

    def observe_proposal(self, signed: SignedProposalHeader) -> ProposerSlashing | None:
        """Record the proposal; evidence if the proposer signed another block for the same slot."""
        check_proposal_signature(signed)
        key = (signed.header.proposer, signed.header.slot)
        old = self._proposals.get(key)
        if old is None:
            self._proposals[key] = signed
            return None
        if old.header == signed.header:
            return None
        return ProposerSlashing(old, signed)

    def forget_before(self, epoch: int, slot: int) -> None:
        """Drop proposals before ``slot`` and votes whose target is before ``epoch`` (weak subjectivity)."""
        self._proposals = {k: v for k, v in self._proposals.items() if k[1] >= slot}
        self._votes = {
            validator: [a for a in votes if a.data.target.epoch >= epoch] for validator, votes in self._votes.items()
        }
