"""Fork choice between competing blocks for one slot, and slashing detection.

Fork choice (``ForkChoiceStore``)
---------------------------------
The chain (chain/consensus/state.py) is linear: every valid block builds on the tip.  Two
valid blocks for the same slot can only arise when that slot's one proposer
signs two blocks (which is itself slashable).  So the fork choice needs no block
tree: the store holds the *candidate* blocks for the slot being filled, all
children of the canonical tip, and the latest message of every validator (LMD,
as in consensus-specs phase0 ``fork-choice.md``: a validator's newer vote
replaces its older one, an older one never replaces a newer).  A candidate's
weight is the effective stake of the validators whose latest vote names it as
head (``get_weight``, restricted to one level of the tree, which is all there
is).  The most-backed candidate wins; a tie goes to the lowest root
(phase0 breaks ties by the lexicographically higher root; any fixed rule works,
the brief here asks for the lowest).  When the next slot starts, the Node
appends ``get_head()`` to the chain with ``process_block`` and opens a store for
the next slot on top of it (``advance``).

The finalized checkpoint is never reverted: a candidate whose parent is at or
below the finalized block's height, other than the tip itself, is refused with
``FinalizedConflictError`` (phase0 filters such branches out of
``get_filtered_block_tree``), and the linear chain refuses it anyway
(``StaleBlockError``).

How a node drives it, slot by slot:

1. at the start of slot ``s``: ``store = ForkChoiceStore(tip, height, s, finalized...)``
   (or ``previous.advance(...)``);
2. each block for ``s`` that ``process_block`` accepts: ``store = store.on_block(...)``, and
   its signed header goes to the ``SlashingDetector``;
3. each vote: the detector checks its signature (and may return evidence), then
   ``store = store.on_attestation(index, slot, head)``; ``admit_attestation`` (chain/consensus/duties.py)
   decides whether it also goes to the op pool;
4. at the start of ``s + 1``: ``process_block`` + ``apply`` the block ``get_head(weights)``
   names, with ``weights = get_fork_choice_weights(state.beacon)``.

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

from collections.abc import Sequence
from dataclasses import dataclass, replace

from chain.errors import FinalizedConflictError, ForkChoiceError, SlotError
from chain.hashing import hash_to_display
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


@dataclass(frozen=True, slots=True)
class Candidate:
    root: bytes
    slot: int
    proposer_index: int


@dataclass(frozen=True, slots=True)
class ForkChoiceStore:
    """Candidates for one slot on top of the canonical tip, and every validator's latest vote."""

    tip_root: bytes
    tip_height: int
    slot: int
    finalized_root: bytes
    finalized_height: int
    candidates: tuple[Candidate, ...] = ()
    # validator index -> (slot of its latest vote, head root it named)
    latest_messages: tuple[tuple[int, int, bytes], ...] = ()

    def on_block(
        self, root: bytes, slot: int, parent_root: bytes, parent_height: int, proposer_index: int
    ) -> ForkChoiceStore:
        """Hold a block (already checked by ``process_block``) as a candidate for this slot."""
        if parent_root != self.tip_root:
            if parent_height <= self.finalized_height:
                raise FinalizedConflictError(
                    f"block {hash_to_display(root)[:16]}… builds on height {parent_height}, at or before the "
                    f"finalized block {self.finalized_height}: finalized blocks are never reverted"
                )
            raise ForkChoiceError(
                f"block {hash_to_display(root)[:16]}… does not build on the tip {hash_to_display(self.tip_root)[:16]}…"
            )
        if slot != self.slot:
            raise SlotError(f"the store is choosing among blocks for slot {self.slot}, not slot {slot}")
        if any(c.root == root for c in self.candidates):
            return self
        return replace(self, candidates=self.candidates + (Candidate(root, slot, proposer_index),))

    def on_attestation(self, validator_index: int, slot: int, head_root: bytes) -> ForkChoiceStore:
        """phase0's ``update_latest_messages``: only a newer vote replaces a validator's latest."""
        messages = {index: (s, r) for index, s, r in self.latest_messages}
        previous = messages.get(validator_index)
        if previous is not None and previous[0] >= slot:
            return self
        messages[validator_index] = (slot, head_root)
        return replace(self, latest_messages=tuple(sorted((i, s, r) for i, (s, r) in messages.items())))

    def get_weight(self, root: bytes, effective_balances: Sequence[int]) -> int:
        return sum(
            effective_balances[index]
            for index, _, head in self.latest_messages
            if head == root and index < len(effective_balances)
        )

    def get_head(self, effective_balances: Sequence[int]) -> bytes | None:
        """The candidate with the most attesting stake; ties to the lowest root; None if none."""
        if not self.candidates:
            return None
        best = min(self.candidates, key=lambda c: (-self.get_weight(c.root, effective_balances), c.root))
        return best.root

    def advance(
        self, new_tip_root: bytes, new_tip_height: int, next_slot: int, finalized_root: bytes, finalized_height: int
    ) -> ForkChoiceStore:
        """The store for the next slot, once the winner is on the chain; votes carry over."""
        if finalized_height < self.finalized_height:
            raise FinalizedConflictError("finality never goes backwards")
        return ForkChoiceStore(
            new_tip_root, new_tip_height, next_slot, finalized_root, finalized_height, (), self.latest_messages
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
