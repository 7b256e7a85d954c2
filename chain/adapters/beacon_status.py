"""What a chain's proof-of-stake side looks like now, read-only: validators, votes, finality, slots.

The read models members see (``ValidatorView``, ``VoteProgress``, ``FinalityView``) and
``BeaconStatus``, which builds them from the chain's beacon state and the consensus memory
shared by the beacon node's parts (``chain.adapters.beacon_runtime.BeaconChains``).  Nothing
here changes a chain; what is read between two awaits is read again, never cached.
"""

from __future__ import annotations

from dataclasses import dataclass

from chain.adapters.beacon_runtime import BeaconChains, BeaconRuntime, is_pos, require_beacon
from chain.consensus.consensus_block import compute_pre_block_beacon
from chain.errors import NotStakingChainError, SlotError
from chain.mode import Mode
from chain.pos.attestation import SignedAttestation
from chain.pos.beacon import (
    BeaconState,
    ConsensusConfig,
    check_slot_has_proposers,
    compute_slot_at_time,
    compute_slot_time,
    explain_beacon_proposer,
    get_epoch_at_slot,
)
from chain.pos.forkchoice import get_fork_choice_weights
from chain.pos.proposer import ProposerDraw
from chain.pos.staking import FAR_FUTURE_EPOCH, ValidatorStatus, compute_validator_status


@dataclass(frozen=True, slots=True)
class ValidatorView:
    """One validator as members see it (amounts in nanopoints; ``rewards.UNITS_PER_POINT`` per point)."""

    index: int
    owner: str | None  # the member whose validator it is; None if the bot holds no key for it
    pubkey: bytes
    status: ValidatorStatus
    balance_units: int
    effective_balance_units: int
    deposited_units: int  # everything deposited into it
    withdrawn_units: int  # everything paid out of it
    activation_epoch: int
    exit_epoch: int | None  # None: not exiting
    withdrawable_epoch: int | None
    slashed: bool
    # Votes counted for the current and previous epoch (phase0's participation flags).
    voted_current_epoch: bool
    voted_previous_epoch: bool
    # Seconds until the stake unlocks (None: not exiting; 0: withdrawable now).
    unlock_in_s: int | None
    auto_attest: bool

    @property
    def net_rewards_units(self) -> int:
        """Rewards minus penalties so far: balance plus withdrawals minus deposits."""
        return self.balance_units + self.withdrawn_units - self.deposited_units


@dataclass(frozen=True, slots=True)
class VoteProgress:
    """Stake behind the current epoch's checkpoint, counted or waiting in the op pool."""

    epoch: int
    attesting_units: int
    total_active_units: int

    @property
    def percent(self) -> int:
        return 0 if self.total_active_units == 0 else self.attesting_units * 100 // self.total_active_units

    @property
    def justifies(self) -> bool:
        return self.total_active_units > 0 and self.attesting_units * 3 >= self.total_active_units * 2


@dataclass(frozen=True, slots=True)
class FinalityView:
    """What a chain's finality looks like after its latest block: the news members must see."""

    justified_epoch: int
    finalized_epoch: int
    in_leak: bool
    # Validators slashed so far (it only grows): a rise means a block slashed someone.
    slashed_count: int


class BeaconStatus:
    """Reads of a chain's proof-of-stake side: its mode and slots, validators, votes, finality, draws."""

    def __init__(self, chains: BeaconChains) -> None:
        self.chains = chains

    # --- the chain ---------------------------------------------------------------------------

    def mode(self, chain_id: int) -> Mode | None:
        beacon = self.chains.node.chain(chain_id).state.beacon
        return None if beacon is None else beacon.config.mode

    def is_merged(self, chain_id: int) -> bool:
        beacon = self.chains.node.chain(chain_id).state.beacon
        return beacon is not None and is_pos(beacon)

    def config(self, chain_id: int) -> ConsensusConfig:
        return self.chains.beacon(chain_id).config

    def current_epoch(self, chain_id: int) -> int:
        return self.chains.beacon(chain_id).epoch

    def finality(self, chain_id: int) -> FinalityView:
        """Justified and finalized epochs, the inactivity leak and how many validators were slashed."""
        beacon = self.chains.beacon(chain_id)
        finality = beacon.finality
        return FinalityView(
            justified_epoch=finality.current_justified_checkpoint.epoch,
            finalized_epoch=finality.finalized_checkpoint.epoch,
            in_leak=beacon.in_leak,
            slashed_count=sum(1 for v in beacon.registry.validators if v.slashed),
        )

    def current_slot(self, chain_id: int, now: int) -> int:
        runtime = self.chains.chain(chain_id)
        beacon = require_beacon(runtime.state)
        if not is_pos(beacon):
            return runtime.state.height
        return compute_slot_at_time(beacon, now)

    def slot_time(self, chain_id: int, slot: int) -> int:
        return compute_slot_time(self.chains.beacon(chain_id), slot)

    def proposer_draw(self, chain_id: int, slot: int) -> ProposerDraw:
        state = self.chains.chain(chain_id).state
        beacon = require_beacon(state)
        if not is_pos(beacon):
            raise NotStakingChainError("proposers are drawn once the chain has merged; it is still mined")
        pre = compute_pre_block_beacon(state, slot, state.tip_hash, True) if slot > beacon.slot else beacon
        epoch = get_epoch_at_slot(pre, slot)
        if epoch != pre.epoch:
            raise SlotError(
                f"slot {slot} is in epoch {epoch}; draws can be redone here for epoch {beacon.epoch} on "
                "(an earlier epoch's inputs are in the blocks, but the bot keeps only the recent state)"
            )
        check_slot_has_proposers(beacon, pre, slot)
        return explain_beacon_proposer(pre, slot)

    # --- validators ----------------------------------------------------------------------

    def _view(
        self, beacon: BeaconState, index: int, runtime: BeaconRuntime, voters: set[int] | None = None
    ) -> ValidatorView:
        """``voters``: who voted for the running epoch, pooled votes included (what ``progress``
        counts), so a status agrees with the vote just signed; default: votes blocks counted."""
        validator = beacon.registry.validators[index]
        owner = runtime.owners.get(validator.pubkey)
        status = compute_validator_status(validator, beacon.epoch)
        unlock_in_s = None
        if validator.withdrawable_epoch != FAR_FUTURE_EPOCH:
            epochs_left = max(0, validator.withdrawable_epoch - beacon.epoch)
            epoch_s = beacon.config.slot_duration_s * beacon.config.slots_per_epoch
            unlock_in_s = epochs_left * epoch_s
        return ValidatorView(
            index=index,
            owner=owner,
            pubkey=validator.pubkey,
            status=status,
            balance_units=beacon.registry.balances[index],
            effective_balance_units=validator.effective_balance,
            deposited_units=beacon.deposited_units[index],
            withdrawn_units=beacon.withdrawn_units[index],
            activation_epoch=validator.activation_epoch,
            exit_epoch=None if validator.exit_epoch == FAR_FUTURE_EPOCH else validator.exit_epoch,
            withdrawable_epoch=None
            if validator.withdrawable_epoch == FAR_FUTURE_EPOCH
            else validator.withdrawable_epoch,
            slashed=validator.slashed,
            voted_current_epoch=index in (beacon.current_attesters if voters is None else voters),
            voted_previous_epoch=index in beacon.previous_attesters,
            unlock_in_s=unlock_in_s,
            auto_attest=owner is not None and owner in runtime.auto_attest,
        )

    def validators(self, chain_id: int) -> list[ValidatorView]:
        beacon = self.chains.beacon(chain_id)
        runtime = self.chains.node.chain(chain_id).consensus or BeaconRuntime()
        _, voters = self._running_voters(chain_id)
        return [self._view(beacon, i, runtime, voters) for i in range(len(beacon.registry.validators))]

    async def validator(self, chain_id: int, owner: str) -> ValidatorView | None:
        index = await self.chains.index_of(chain_id, owner)
        if index is None:
            return None
        _, voters = self._running_voters(chain_id)
        return self._view(self.chains.beacon(chain_id), index, await self.chains.runtime(chain_id), voters)

    def pending_deposit_points(self, chain_id: int, wallet: bytes) -> int:
        return sum(d.amount for d in self.chains.node.pending_deposits(chain_id, wallet))

    # --- votes -------------------------------------------------------------------------------

    def progress(self, chain_id: int, now: int | None = None) -> VoteProgress:
        """Stake voting for the running epoch's checkpoint: counted by blocks, or pooled.

        The running epoch is the one of the slot at ``now`` (default: the node's clock); at an
        epoch's first slot that is ahead of the tip's epoch.
        """
        epoch, voters = self._running_voters(chain_id, now)
        weights = get_fork_choice_weights(self.chains.beacon(chain_id))
        return VoteProgress(epoch, sum(weights[i] for i in voters), sum(weights))

    def _running_voters(self, chain_id: int, now: int | None = None) -> tuple[int, set[int]]:
        """The running epoch and the validators whose vote for it a block counted or the pool holds."""
        runtime = self.chains.chain(chain_id)
        beacon = require_beacon(runtime.state)
        epoch = beacon.epoch
        if is_pos(beacon):
            slot = compute_slot_at_time(beacon, self.chains.node.now() if now is None else now)
            if slot > beacon.slot:
                epoch = get_epoch_at_slot(
                    compute_pre_block_beacon(runtime.state, slot, runtime.state.tip_hash, True), slot
                )
        voters = set(beacon.current_attesters) if epoch == beacon.epoch else set()
        for att in runtime.op_pool.pending(SignedAttestation):
            if att.data.target.epoch == epoch:
                index = beacon.registry.index_of(att.validator)
                if index is not None:
                    voters.add(index)
        return epoch, voters
