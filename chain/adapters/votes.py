"""Votes (attestations) of the validators the bot custodies: asked for, automatic, and seen.

A member's vote comes from ``/stake attest`` or the Attest button; members with auto-attest on
vote once an epoch, spread over its slots (the slot driver asks at each slot).  Every signed vote
the node sees goes through ``Votes.accept``: its signature is checked, the ``SlashingDetector``
looks for a conflict (evidence it finds goes into the op pool, so the next block slashes the
offender), the fork choice counts it and the op pool keeps it for the next block.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from chain.adapters.beacon_runtime import BeaconChains, BeaconRuntime, is_pos, require_beacon
from chain.adapters.beacon_status import BeaconStatus, VoteProgress
from chain.adapters.head_choice import HeadChoice
from chain.consensus.consensus_block import compute_pre_block_beacon
from chain.consensus.duties import compute_attestation_data
from chain.errors import ChainError, NoValidatorError, StaleBlockError, ValidatorStatusError
from chain.pos.attestation import AttesterSlashing, SignedAttestation, check_attestation_signature
from chain.pos.beacon import compute_slot_at_time, get_epoch_length, get_start_slot_at_epoch
from chain.pos.staking import compute_validator_status, is_active_validator

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class VoteReceipt:
    attestation: SignedAttestation
    validator_index: int
    progress: VoteProgress
    # Slashing evidence this vote completed (chaos mode), already queued for the next block.
    evidence: AttesterSlashing | None = None


class Votes:
    """Signing, checking and pooling votes; the auto-attest setting and its votes."""

    def __init__(self, chains: BeaconChains, status: BeaconStatus, heads: HeadChoice) -> None:
        self.chains = chains
        self.status = status
        self.heads = heads

    async def set_auto_attest(self, chain_id: int, owner: str, on: bool) -> None:
        """Turn the owner's auto-attest on or off.  On needs a validator key (an accepted deposit,
        active or not yet: votes start once it is active); without one it is refused, unchanged."""
        self.chains.chain(chain_id)
        if on and await self.chains.signer.find_validator_key(chain_id, owner) is None:
            raise NoValidatorError(chain_id, owner, "auto_attest")
        await self.chains.store.validator_settings.set_auto_attest(chain_id, owner, on)
        self.chains.node.note_activity(chain_id)
        runtime = await self.chains.runtime(chain_id)
        if on:
            runtime.auto_attest.add(owner)
        else:
            runtime.auto_attest.discard(owner)

    def _vote_slot_and_head(self, chain_id: int, runtime: BeaconRuntime, now: int) -> tuple[int, bytes]:
        state = self.chains.node.chain(chain_id).state
        beacon = require_beacon(state)
        if not is_pos(beacon):
            return state.height, state.tip_hash
        # The main tip is the fork choice's head (HeadChoice.decide moves it at each slot's start).
        return max(compute_slot_at_time(beacon, now), beacon.slot), state.tip_hash

    async def attest(
        self, chain_id: int, owner: str, *, head_root: bytes | None = None, double_vote: bool = False,
        now: int | None = None,
    ) -> VoteReceipt:
        """Sign the owner's vote (for ``head_root``, else the fork choice's head) and queue it.

        ``double_vote``: chaos mode only: also sign a conflicting vote for the same target.
        """
        node, signer = self.chains.node, self.chains.signer
        now = node.now() if now is None else now
        self.chains.chain(chain_id)
        if double_vote:
            await self.chains.require_chaos(chain_id, "double_vote")
        runtime = await self.chains.runtime(chain_id)
        index = await self.chains.index_of(chain_id, owner)
        if index is None:
            raise NoValidatorError(chain_id, owner, "attest")
        beacon = self.chains.beacon(chain_id)
        validator = beacon.registry.validators[index]
        if not is_active_validator(validator, beacon.epoch) or validator.slashed:
            raise ValidatorStatusError(
                f"your validator is {compute_validator_status(validator, beacon.epoch).value}; "
                "only active validators vote"
            )
        slot, head = self._vote_slot_and_head(chain_id, runtime, now)
        if head_root is not None:
            if head_root in runtime.proposed or head_root == node.chain(chain_id).state.tip_hash:
                head = head_root  # this slot's blocks: the head, or a second one a proposer signed
            else:
                raise StaleBlockError("that block is no longer up for a vote; vote on the newest block")
        state = node.chain(chain_id).state
        data = compute_attestation_data(state, slot, head)
        evidence = None
        if double_vote:
            honest = await signer.sign_attestation(chain_id, owner, data, chaos=True)
            await self.accept(chain_id, runtime, honest)
            twin = replace(data, beacon_block_root=bytes(32) if head != bytes(32) else b"\x01" * 32)
            signed = await signer.sign_attestation(chain_id, owner, twin, chaos=True)
            evidence = await self.accept(chain_id, runtime, signed)
        else:
            signed = await signer.sign_attestation(chain_id, owner, data)
            evidence = await self.accept(chain_id, runtime, signed)
        node.note_activity(chain_id)
        return VoteReceipt(signed, index, self.status.progress(chain_id), evidence)

    async def accept(
        self, chain_id: int, runtime: BeaconRuntime, attestation: SignedAttestation
    ) -> AttesterSlashing | None:
        """A vote the node sees: check it, look for slashable conflicts, feed the fork choice, pool it."""
        check_attestation_signature(attestation)
        evidence = runtime.detector.observe_attestation(attestation)
        beacon = self.chains.beacon(chain_id)
        index = beacon.registry.index_of(attestation.validator)
        if index is not None and is_pos(beacon):
            self.heads.on_vote(chain_id, runtime, index, attestation.data)
        await self.chains.node.add_operation(chain_id, attestation, verify_ops=1)
        if evidence is not None:
            log.warning("chain %d: validator %s voted twice in conflict; evidence queued", chain_id, index)
            await self.chains.node.add_operation(chain_id, evidence)
        return evidence

    async def auto_attest(
        self, chain_id: int, rt: BeaconRuntime, slot: int, head: bytes
    ) -> tuple[int, list[AttesterSlashing]]:
        """Votes of the validators with auto-attest on, each once per epoch, spread over its slots.

        Validator ``i`` votes from the epoch's slot ``i mod slots_per_epoch`` on (phase0 spreads
        committees over the epoch the same way), so a thousand validators do not all sign and
        store their records in one slot.  The signer's protection would refuse a second vote for
        an epoch anyway; this just avoids asking.  The slot driver calls it under the slot lock.
        """
        signer = self.chains.signer
        state = self.chains.node.chain(chain_id).state
        try:
            data = compute_attestation_data(state, slot, head)
        except ChainError:
            log.exception("chain %d: no vote possible at slot %d", chain_id, slot)
            return 0, []
        current = require_beacon(state)
        beacon = compute_pre_block_beacon(state, slot, head, True) if is_pos(current) else current
        epoch_length = get_epoch_length(beacon, data.target.epoch)
        slot_in_epoch = slot - get_start_slot_at_epoch(beacon, data.target.epoch)
        votes, evidence = 0, []
        for owner in sorted(rt.auto_attest):
            pubkey = await signer.find_validator_key(chain_id, owner)
            index = None if pubkey is None else beacon.registry.index_of(pubkey)
            if index is None:
                continue
            validator = beacon.registry.validators[index]
            if not is_active_validator(validator, data.target.epoch) or validator.slashed:
                continue
            if rt.voted.get(index, -1) >= data.target.epoch:
                continue
            if index % epoch_length > slot_in_epoch:
                continue
            try:
                signed = await signer.sign_attestation(chain_id, owner, data)
            except ChainError as refusal:  # the protection record says it already voted: fine
                log.info("chain %d: auto-attest for %s skipped: %s", chain_id, owner, refusal)
                rt.voted[index] = data.target.epoch
                continue
            rt.voted[index] = data.target.epoch
            found = await self.accept(chain_id, rt, signed)
            votes += 1
            if found is not None:
                evidence.append(found)
        return votes, evidence
