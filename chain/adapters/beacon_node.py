"""The proof-of-stake side of the node: validators, votes, slots, slashing and the Merge.

``BeaconNode`` sits beside ``chain.adapters.node.Node`` (which owns chains, wallets,
the mempool, the op pool and block persistence) and drives what a consensus
client does for the validators the bot custodies:

- staking: a deposit is signed by the member's wallet key and their validator
  key and waits in the op pool for the next block; an exit likewise;
- slots (pos, and after the Merge): ``on_slot`` settles the previous slot (the
  fork choice's winner among the slot's candidate blocks is appended to the
  chain), then has the slot's drawn proposer sign a block from the mempool and
  op pool, and lets validators with auto-attest on vote for it;
- votes: every signed vote and block header the node sees goes through the
  ``SlashingDetector``; evidence it finds goes into the op pool, so the next
  block slashes the offender;
- the Merge: ``schedule_merge`` has the next proof-of-work block commit to it.

Keys are custodied by ``chain.adapters.signer.ValidatorSigner``, which refuses to sign
anything slashable (EIP-3076) unless the server is in chaos mode and the
member asked for it.  Nothing here reads a clock: ``now`` is passed in.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace
from typing import Any

from chain.adapters.budget import DEFAULT_BLOCKS_PER_HOUR, BlockBudget, is_idle, should_skip_empty_slot
from chain.adapters.energy import EnergyReport, compute_energy_report
from chain.adapters.node import ChainRuntime, Node
from chain.adapters.signer import ValidatorSigner, measure_signature_costs_ns
from chain.adapters.storage.records import StoredKey
from chain.consensus.block import Block
from chain.consensus.consensus_block import compute_pre_block_beacon, process_block_operations
from chain.consensus.duties import compute_attestation_data
from chain.consensus.state import ChainState
from chain.consensus.templates import build_unsigned_pos_block, seal_pos_block
from chain.consensus.transition import process_block
from chain.errors import (
    ChainBeforeStakingError,
    ChainError,
    ChaosModeOffError,
    DepositError,
    EncodingError,
    ForkChoiceError,
    NotProposerError,
    NotStakingChainError,
    NoValidatorError,
    SlotError,
    StaleBlockError,
    ValidatorStatusError,
)
from chain.ledger.accounts import Account, LedgerView
from chain.mode import Mode
from chain.params import ChainParams
from chain.pos.attestation import (
    AttesterSlashing,
    ProposerSlashing,
    SignedAttestation,
    check_attestation_signature,
    check_attester_slashing,
    check_proposer_slashing,
)
from chain.pos.beacon import (
    BeaconState,
    ConsensusConfig,
    GenesisAllocation,
    GenesisValidator,
    check_slot_has_proposers,
    compute_slot_at_time,
    compute_slot_time,
    explain_beacon_proposer,
    get_epoch_at_slot,
    get_epoch_length,
    get_start_slot_at_epoch,
)
from chain.pos.forkchoice import ForkChoiceStore, SlashingDetector, get_fork_choice_weights
from chain.pos.op_pool import is_dead_operation
from chain.pos.operations import Deposit, Operations, VoluntaryExit
from chain.pos.proposer import ProposerDraw
from chain.pos.staking import FAR_FUTURE_EPOCH, ValidatorStatus, compute_validator_status, is_active_validator

log = logging.getLogger(__name__)


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


@dataclass(frozen=True, slots=True)
class VoteReceipt:
    attestation: SignedAttestation
    validator_index: int
    progress: VoteProgress
    # Slashing evidence this vote completed (chaos mode), already queued for the next block.
    evidence: AttesterSlashing | None = None


@dataclass(frozen=True, slots=True)
class SlotOutcome:
    """What one slot tick did, for the cog to post."""

    slot: int
    epoch: int
    # The previous slot settled: the block appended (None for an empty slot) and candidates that lost.
    settled: Block | None
    orphaned: tuple[bytes, ...]
    # This slot's proposal (None when the proposer's key is not ours or nothing could be proposed).
    proposer_index: int | None
    proposer_owner: str | None
    block: Block | None
    auto_votes: int
    progress: VoteProgress | None
    evidence: tuple[AttesterSlashing | ProposerSlashing, ...] = ()
    # The slot's block would have carried nothing and the chain is idle or over its budget.
    skipped: bool = False


@dataclass
class BeaconRuntime:
    """The per-chain state a consensus client keeps beside the chain itself (memory only)."""

    fork_choice: ForkChoiceStore | None = None
    # Candidate blocks of the slot being filled, by root.
    candidates: dict[bytes, Block] = field(default_factory=dict)
    detector: SlashingDetector = field(default_factory=SlashingDetector)
    last_slot: int = -1
    # Validator pubkey -> owner, for the keys the bot custodies on this chain.
    owners: dict[bytes, str] = field(default_factory=dict)
    auto_attest: set[str] = field(default_factory=set)
    # Validator index -> the latest target epoch it voted for (so auto-attest asks once an epoch).
    voted: dict[int, int] = field(default_factory=dict)


DEFAULT_MILLIWATTS_PER_CORE = 15_000

# Points a member gets at the genesis of a pos chain (nothing is mined there), so they can stake.
GENESIS_ALLOCATION_POINTS = 100


def _require_beacon(state: ChainState) -> BeaconState:
    """The chain's beacon state; a chain without one has no proof-of-stake side to act on."""
    if state.beacon is None:
        raise ChainBeforeStakingError(state.chain_id)
    return state.beacon


def _is_pos(beacon: BeaconState) -> bool:
    return beacon.merged or beacon.terminal is not None


class BeaconNode:
    def __init__(
        self, node: Node, signer: ValidatorSigner, *, milliwatts_per_core: int = DEFAULT_MILLIWATTS_PER_CORE,
        blocks_per_hour: int = DEFAULT_BLOCKS_PER_HOUR,
    ) -> None:
        if milliwatts_per_core < 1:
            raise ValueError(f"a core draws some power; got {milliwatts_per_core} mW")
        # Power of one busy core: what /chain energy multiplies CPU time by (the WATTS_PER_CORE setting).
        self.milliwatts_per_core = milliwatts_per_core
        self.node = node
        self.signer = signer
        self.store = node.store
        self._locks: dict[int, asyncio.Lock] = {}
        # Slot blocks each server may get (chain/adapters/budget.py): a token bucket per chain, in memory.
        self.blocks_per_hour = blocks_per_hour
        self._budgets: dict[int, BlockBudget] = {}
        # Measured once (chain/adapters/signer.py); what PoS signing and checking cost in CPU time.
        self._signature_costs_ns: tuple[int, int] | None = None

    # --- chains ----------------------------------------------------------------------

    def _chain(self, chain_id: int) -> ChainRuntime:
        runtime = self.node.chain(chain_id)
        _require_beacon(runtime.state)
        return runtime

    def _beacon(self, chain_id: int) -> BeaconState:
        return _require_beacon(self.node.chain(chain_id).state)

    async def _runtime(self, chain_id: int) -> BeaconRuntime:
        """This chain's consensus memory, kept in the node's runtime of the chain (one per server)."""
        runtime = self.node.chain(chain_id).consensus
        if runtime is None:
            runtime = BeaconRuntime()
            for stored in await self.store.validator_keys.all(chain_id):
                runtime.owners[stored.pubkey] = stored.owner
            runtime.auto_attest = set(await self.store.validator_settings.auto_attesters(chain_id))
            # Read again after the awaits: another caller may have built it first (keep theirs), or a
            # reset may have replaced the chain (the memory goes with the new one, read from the store).
            chain = self.node.chain(chain_id)
            if chain.consensus is None:
                chain.consensus = runtime
            runtime = chain.consensus
        return runtime

    @property
    def _runtimes(self) -> dict[int, BeaconRuntime]:
        """The consensus memory of every loaded chain that has one, by chain id: a read-only view
        (it lives in the node's runtimes; tests wait on a runtime's ``last_slot`` through it)."""
        return {
            chain_id: runtime for chain_id in self.node.chain_ids()
            if (runtime := self.node.chain(chain_id).consensus) is not None
        }

    def _lock(self, chain_id: int) -> asyncio.Lock:
        return self._locks.setdefault(chain_id, asyncio.Lock())

    async def load(self) -> None:
        """Read who owns which validator (and who auto-attests) for every consensus chain."""
        for chain_id in self.consensus_chain_ids():
            await self._runtime(chain_id)

    async def validator_owners(self, chain_id: int) -> dict[bytes, str]:
        """Validator public key -> owner, for the keys the bot custodies on this chain."""
        if not self.node.has_chain(chain_id):  # an offline chain's events still name their owners
            return {stored.pubkey: stored.owner for stored in await self.store.validator_keys.all(chain_id)}
        return dict((await self._runtime(chain_id)).owners)

    def forget(self, chain_id: int) -> None:
        """Drop the per-chain memory (after a reset): candidates, fork choice, detector, cached keys.
        A reset's new chain runtime starts without it anyway; this also covers a chain that stays."""
        if self.node.has_chain(chain_id):
            self.node.chain(chain_id).consensus = None
        self.signer.forget(chain_id)

    def consensus_chain_ids(self) -> list[int]:
        return [c for c in self.node.chain_ids() if self.node.chain(c).state.beacon is not None]

    def mode(self, chain_id: int) -> Mode | None:
        beacon = self.node.chain(chain_id).state.beacon
        return None if beacon is None else beacon.config.mode

    def is_merged(self, chain_id: int) -> bool:
        beacon = self.node.chain(chain_id).state.beacon
        return beacon is not None and _is_pos(beacon)

    def config(self, chain_id: int) -> ConsensusConfig:
        return self._beacon(chain_id).config

    def current_epoch(self, chain_id: int) -> int:
        return self._beacon(chain_id).epoch

    def finality(self, chain_id: int) -> FinalityView:
        """Justified and finalized epochs, the inactivity leak and how many validators were slashed."""
        beacon = self._beacon(chain_id)
        finality = beacon.finality
        return FinalityView(
            justified_epoch=finality.current_justified_checkpoint.epoch,
            finalized_epoch=finality.finalized_checkpoint.epoch,
            in_leak=beacon.in_leak,
            slashed_count=sum(1 for v in beacon.registry.validators if v.slashed),
        )

    def current_slot(self, chain_id: int, now: int) -> int:
        runtime = self._chain(chain_id)
        beacon = _require_beacon(runtime.state)
        if not _is_pos(beacon):
            return runtime.state.height
        return compute_slot_at_time(beacon, now)

    def slot_time(self, chain_id: int, slot: int) -> int:
        return compute_slot_time(self._beacon(chain_id), slot)

    # --- validators ----------------------------------------------------------------------

    async def _index_of(self, chain_id: int, owner: str) -> int | None:
        # Only looks: a member who never deposited gets no key from asking.
        pubkey = await self.signer.find_validator_key(chain_id, owner)
        if pubkey is None:
            return None
        (await self._runtime(chain_id)).owners[pubkey] = owner
        return self._beacon(chain_id).registry.index_of(pubkey)

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
        beacon = self._beacon(chain_id)
        runtime = self.node.chain(chain_id).consensus or BeaconRuntime()
        _, voters = self._running_voters(chain_id)
        return [self._view(beacon, i, runtime, voters) for i in range(len(beacon.registry.validators))]

    async def validator(self, chain_id: int, owner: str) -> ValidatorView | None:
        index = await self._index_of(chain_id, owner)
        if index is None:
            return None
        _, voters = self._running_voters(chain_id)
        return self._view(self._beacon(chain_id), index, await self._runtime(chain_id), voters)

    def pending_deposit_points(self, chain_id: int, wallet: bytes) -> int:
        return sum(d.amount for d in self.node.pending_deposits(chain_id, wallet))

    async def deposit(self, chain_id: int, owner: str, amount_points: int) -> ValidatorView | None:
        """Sign a deposit of ``amount_points`` into the owner's validator and queue it for the next block.

        Returns the validator as it is now (None when this deposit creates it: it
        appears with the block that includes the deposit).  Every check, the nonce
        and the admission happen under the chain's lock, the one payments take: a
        deposit and a payment (or two deposits) fired at once never share a nonce.

        A member's first deposit creates their validator key: made in memory, and stored in the
        same transaction as the pooled deposit, so a refused deposit leaves no key behind.
        """
        wallet_key = await self.node.wallet(chain_id, owner)
        wallet = wallet_key.public_key
        async with self.node.locked(chain_id) as runtime:
            beacon = self._beacon(chain_id)
            # Under the chain lock, the only place keys are made: no second deposit can make one meanwhile.
            validator_key = await self.signer.find_validator_key(chain_id, owner)
            new_key = None
            if validator_key is None:
                new_key = self.signer.new_validator_key(chain_id, owner)
                validator_key = new_key.pubkey
            if self.node.pending_deposits(chain_id, wallet):
                raise DepositError("you already have a deposit waiting for the next block; stake again once it is in")
            if runtime.mempool.pending_for(wallet):
                raise DepositError("you have a transfer waiting for the next block; stake once it is included")
            account = runtime.state.ledger.get(wallet)
            balance = 0 if account is None else account.balance
            if amount_points > balance:
                raise DepositError(f"you have {balance} points; you cannot stake {amount_points}")
            index = beacon.registry.index_of(validator_key)
            if index is None and amount_points < beacon.config.min_deposit_points:
                raise DepositError(
                    f"a new validator needs at least {beacon.config.min_deposit_points} points staked, "
                    f"not {amount_points}"
                )
            if index is not None and beacon.registry.validators[index].exit_epoch != FAR_FUTURE_EPOCH:
                raise ValidatorStatusError("your validator is exiting; wait until it is withdrawn to stake again")
            nonce = account.nonce if account is not None else 0
            deposit = await self.signer.sign_deposit(
                chain_id, owner, wallet_key, amount_points, nonce, new_key=new_key
            )
            await self._check_operation(chain_id, deposit)
            await self.node.add_operation(chain_id, deposit, validator_key=new_key)
            if new_key is not None:
                self.signer.adopt(chain_id, new_key)
            (await self._runtime(chain_id)).owners[validator_key] = owner
            self.node.note_activity(chain_id)
        return None if index is None else await self.validator(chain_id, owner)

    async def withdraw(self, chain_id: int, owner: str) -> ValidatorView:
        """Sign a voluntary exit for the owner's validator and queue it for the next block (the checks
        and the queueing under the chain's lock, like deposits)."""
        async with self.node.locked(chain_id):
            beacon = self._beacon(chain_id)
            index = await self._index_of(chain_id, owner)
            if index is None:
                raise NoValidatorError(chain_id, owner, "withdraw")
            validator = beacon.registry.validators[index]
            if validator.exit_epoch != FAR_FUTURE_EPOCH:
                raise ValidatorStatusError(f"your validator is already exiting (exit epoch {validator.exit_epoch})")
            if not is_active_validator(validator, beacon.epoch):
                raise ValidatorStatusError(
                    f"your validator is not active yet (it activates in epoch {validator.activation_epoch})"
                )
            pending = self._chain(chain_id).op_pool.pending(VoluntaryExit)
            if any(exit_.validator_index == index for exit_ in pending):
                raise ValidatorStatusError("your exit is already waiting for the next block")
            exit_ = await self.signer.sign_exit(chain_id, owner, index, beacon.epoch)
            await self._check_operation(chain_id, exit_)
            await self.node.add_operation(chain_id, exit_)
            self.node.note_activity(chain_id)
        view = await self.validator(chain_id, owner)
        assert view is not None
        return view

    async def _check_operation(self, chain_id: int, operation: Deposit | VoluntaryExit) -> None:
        """Would the next block take it?  Raises the block rule's own typed error if not."""
        state = self._chain(chain_id).state
        beacon = _require_beacon(state)
        is_pos = _is_pos(beacon)
        slot = max(compute_slot_at_time(beacon, self.node.now()) + 1, beacon.slot + 1) if is_pos else state.height + 1
        pre = compute_pre_block_beacon(state, slot, state.tip_hash, is_pos)
        operations = (
            Operations(deposits=(operation,)) if isinstance(operation, Deposit)
            else Operations(voluntary_exits=(operation,))
        )
        changes: dict[bytes, Account] = {}
        process_block_operations(
            pre, LedgerView(changes, state.ledger), changes, operations, state.chain_id, slot, None, state.params,
        )

    # --- votes -------------------------------------------------------------------------------

    async def set_auto_attest(self, chain_id: int, owner: str, on: bool) -> None:
        """Turn the owner's auto-attest on or off.  On needs a validator key (an accepted deposit,
        active or not yet: votes start once it is active); without one it is refused, unchanged."""
        self._chain(chain_id)
        if on and await self.signer.find_validator_key(chain_id, owner) is None:
            raise NoValidatorError(chain_id, owner, "auto_attest")
        await self.store.validator_settings.set_auto_attest(chain_id, owner, on)
        self.node.note_activity(chain_id)
        runtime = await self._runtime(chain_id)
        if on:
            runtime.auto_attest.add(owner)
        else:
            runtime.auto_attest.discard(owner)

    def progress(self, chain_id: int, now: int | None = None) -> VoteProgress:
        """Stake voting for the running epoch's checkpoint: counted by blocks, or pooled.

        The running epoch is the one of the slot at ``now`` (default: the node's clock); at an
        epoch's first slot that is ahead of the tip's epoch.
        """
        epoch, voters = self._running_voters(chain_id, now)
        weights = get_fork_choice_weights(self._beacon(chain_id))
        return VoteProgress(epoch, sum(weights[i] for i in voters), sum(weights))

    def _running_voters(self, chain_id: int, now: int | None = None) -> tuple[int, set[int]]:
        """The running epoch and the validators whose vote for it a block counted or the pool holds."""
        runtime = self._chain(chain_id)
        beacon = _require_beacon(runtime.state)
        epoch = beacon.epoch
        if _is_pos(beacon):
            slot = compute_slot_at_time(beacon, self.node.now() if now is None else now)
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

    def _vote_slot_and_head(self, chain_id: int, runtime: BeaconRuntime, now: int) -> tuple[int, bytes]:
        state = self.node.chain(chain_id).state
        beacon = _require_beacon(state)
        if not _is_pos(beacon):
            return state.height, state.tip_hash
        slot = max(compute_slot_at_time(beacon, now), beacon.slot)
        if runtime.fork_choice is not None and runtime.candidates:
            head = runtime.fork_choice.get_head(get_fork_choice_weights(beacon))
            if head is not None:
                return runtime.fork_choice.slot, head
        return slot, state.tip_hash

    async def _require_chaos(self, chain_id: int, what: str) -> None:
        """The one place chaos mode is checked: before anything deliberately slashable is signed."""
        if not await self.store.server_settings.get_chaos_mode(chain_id):
            raise ChaosModeOffError(chain_id, what)

    async def attest(
        self, chain_id: int, owner: str, *, head_root: bytes | None = None, double_vote: bool = False,
        now: int | None = None,
    ) -> VoteReceipt:
        """Sign the owner's vote (for ``head_root``, else the fork choice's head) and queue it.

        ``double_vote``: chaos mode only: also sign a conflicting vote for the same target.
        """
        now = self.node.now() if now is None else now
        self._chain(chain_id)
        if double_vote:
            await self._require_chaos(chain_id, "double_vote")
        runtime = await self._runtime(chain_id)
        index = await self._index_of(chain_id, owner)
        if index is None:
            raise NoValidatorError(chain_id, owner, "attest")
        beacon = self._beacon(chain_id)
        validator = beacon.registry.validators[index]
        if not is_active_validator(validator, beacon.epoch) or validator.slashed:
            raise ValidatorStatusError(
                f"your validator is {compute_validator_status(validator, beacon.epoch).value}; "
                "only active validators vote"
            )
        slot, head = self._vote_slot_and_head(chain_id, runtime, now)
        if head_root is not None:
            if runtime.fork_choice is not None and runtime.candidates and head_root in runtime.candidates:
                slot, head = runtime.fork_choice.slot, head_root
            elif head_root == self.node.chain(chain_id).state.tip_hash:
                head = head_root
            else:
                raise StaleBlockError("that block is no longer up for a vote; vote on the newest block")
        state = self.node.chain(chain_id).state
        data = compute_attestation_data(state, slot, head)
        evidence = None
        if double_vote:
            honest = await self.signer.sign_attestation(chain_id, owner, data, chaos=True)
            await self._accept_vote(chain_id, runtime, honest)
            twin = replace(data, beacon_block_root=bytes(32) if head != bytes(32) else b"\x01" * 32)
            signed = await self.signer.sign_attestation(chain_id, owner, twin, chaos=True)
            evidence = await self._accept_vote(chain_id, runtime, signed)
        else:
            signed = await self.signer.sign_attestation(chain_id, owner, data)
            evidence = await self._accept_vote(chain_id, runtime, signed)
        self.node.note_activity(chain_id)
        return VoteReceipt(signed, index, self.progress(chain_id), evidence)

    async def _accept_vote(
        self, chain_id: int, runtime: BeaconRuntime, attestation: SignedAttestation
    ) -> AttesterSlashing | None:
        """A vote the node sees: check it, look for slashable conflicts, feed the fork choice, pool it."""
        check_attestation_signature(attestation)
        evidence = runtime.detector.observe_attestation(attestation)
        beacon = self._beacon(chain_id)
        index = beacon.registry.index_of(attestation.validator)
        if runtime.fork_choice is not None and index is not None:
            runtime.fork_choice = runtime.fork_choice.on_attestation(
                index, attestation.data.slot, attestation.data.beacon_block_root
            )
        await self.node.add_operation(chain_id, attestation, verify_ops=1)
        if evidence is not None:
            log.warning("chain %d: validator %s voted twice in conflict; evidence queued", chain_id, index)
            await self.node.add_operation(chain_id, evidence)
        return evidence

    # --- slots ------------------------------------------------------------------------------

    async def on_slot(self, chain_id: int, now: int) -> SlotOutcome | None:
        """Run the slot that is due at ``now``; None if it already ran or the chain has not merged."""
        runtime = self.node.chain(chain_id)
        beacon = runtime.state.beacon
        if beacon is None:
            return None
        if not _is_pos(beacon):
            if beacon.ffg_enabled:
                return await self._hybrid_tick(chain_id)
            return None
        async with self._lock(chain_id):
            rt = await self._runtime(chain_id)
            beacon = self._beacon(chain_id)
            slot = compute_slot_at_time(beacon, now)
            if slot <= rt.last_slot or slot <= beacon.slot:
                return None
            settled, orphaned = await self._settle(chain_id, rt)
            rt.last_slot = slot
            state = self.node.chain(chain_id).state
            finalized = _require_beacon(state).finality.finalized_checkpoint
            rt.fork_choice = ForkChoiceStore(
                state.tip_hash, state.height, slot, finalized.root, state.height_of(finalized.root) or 0
            )
            rt.candidates = {}
            await self._prune_pool(chain_id)
            runtime = self.node.chain(chain_id)
            skipped = (len(runtime.mempool) == 0 and len(runtime.op_pool) == 0 and should_skip_empty_slot(
                last_activity=runtime.last_activity, now=now, slots_since_block=slot - _require_beacon(state).slot,
                slots_per_epoch=_require_beacon(state).config.slots_per_epoch, budget_left=self.budget(chain_id, now),
            ))
            if skipped:
                proposer_index, owner, block = None, None, None
            else:
                proposer_index, owner, block = await self._propose(chain_id, rt, slot, now)
                if block is not None:
                    self._budget(chain_id, now).spend(now)
            head = block.hash() if block is not None else state.tip_hash
            auto_votes, evidence = await self._auto_attest(chain_id, rt, slot, head)
            return SlotOutcome(
                slot=slot,
                epoch=get_epoch_at_slot(compute_pre_block_beacon(state, slot, head, True), slot),
                settled=settled,
                orphaned=orphaned,
                proposer_index=proposer_index,
                proposer_owner=owner,
                block=block,
                auto_votes=auto_votes,
                progress=self.progress(chain_id),
                evidence=tuple(evidence),
                skipped=skipped,
            )

    def _budget(self, chain_id: int, now: int) -> BlockBudget:
        budget = self._budgets.get(chain_id)
        if budget is None:
            budget = self._budgets[chain_id] = BlockBudget.full(self.blocks_per_hour, now)
        return budget

    def budget(self, chain_id: int, now: int) -> int:
        """Slot blocks this server may still get now (its budget refills by ``blocks_per_hour``)."""
        return self._budget(chain_id, now).available(now)

    def is_idle(self, chain_id: int, now: int) -> bool:
        return is_idle(self.node.chain(chain_id).last_activity, now)

    async def _hybrid_tick(self, chain_id: int) -> SlotOutcome | None:
        """Hybrid mode (Casper FFG over proof of work): a block's slot is its height; when a new
        block arrives, validators with auto-attest on vote for it, and miners include the votes."""
        async with self._lock(chain_id):
            rt = await self._runtime(chain_id)
            state = self.node.chain(chain_id).state
            if state.height <= rt.last_slot:
                return None
            rt.last_slot = state.height
            await self._prune_pool(chain_id)
            votes, evidence = await self._auto_attest(chain_id, rt, state.height, state.tip_hash)
            return SlotOutcome(
                slot=state.height, epoch=_require_beacon(state).epoch, settled=None, orphaned=(), proposer_index=None,
                proposer_owner=None, block=None, auto_votes=votes, progress=self.progress(chain_id),
                evidence=tuple(evidence),
            )

    async def _settle(self, chain_id: int, rt: BeaconRuntime) -> tuple[Block | None, tuple[bytes, ...]]:
        """Append the fork choice's winner among the last slot's candidates."""
        if not rt.candidates or rt.fork_choice is None:
            return None, ()
        beacon = self._beacon(chain_id)
        head = rt.fork_choice.get_head(get_fork_choice_weights(beacon))
        candidates, rt.candidates = rt.candidates, {}
        winner = candidates.get(head) if head is not None else None
        if winner is None:
            return None, tuple(candidates)
        try:
            await self.node.submit_block(chain_id, winner)
        except ChainError:
            log.exception("chain %d: the fork choice's block for slot %d no longer fits", chain_id, rt.fork_choice.slot)
            return None, tuple(candidates)
        # A proof-of-stake seal comes only with a version-2 block, which always has operations.
        if winner.operations is not None:
            await self.store.energy.add(chain_id, pos_verify_ops=1 + len(winner.operations.attestations))
        return winner, tuple(root for root in candidates if root != head)

    async def _propose(
        self, chain_id: int, rt: BeaconRuntime, slot: int, now: int, *, chaos: bool = False, message: bytes = b""
    ) -> tuple[int | None, str | None, Block | None]:
        runtime = self.node.chain(chain_id)
        state = runtime.state
        transfers = runtime.mempool.select(state.params.max_block_transfers)
        # Choosing the operations checks every pooled vote: in a thread, off the event loop.
        template, header, proposer_index = await asyncio.to_thread(
            build_unsigned_pos_block, state, slot, transfers, runtime.op_pool.operations(), None, message,
            None if message else runtime.proposed_params,
        )
        owner = rt.owners.get(header.proposer)
        if owner is None:
            for stored in await self.store.validator_keys.all(chain_id):
                rt.owners[stored.pubkey] = stored.owner
            owner = rt.owners.get(header.proposer)
        if owner is None:
            log.warning(
                "chain %d: slot %d's proposer %d has no key here; the slot stays empty", chain_id, slot, proposer_index
            )
            return proposer_index, None, None
        try:
            signed = await self.signer.sign_proposal(chain_id, owner, header, chaos=chaos)
        except ChainError as refusal:
            log.warning("chain %d: slot %d: no block from %s: %s", chain_id, slot, owner, refusal)
            return proposer_index, owner, None
        block = seal_pos_block(template, slot, proposer_index, signed.signature)
        try:
            await asyncio.to_thread(
                process_block, state, block, now, runtime.proposed_params, runtime.proposed_consensus
            )
        except ChainError as refusal:  # e.g. a slashed validator drawn before its exit: the slot stays empty
            log.warning("chain %d: slot %d: no block from %s: %s", chain_id, slot, owner, refusal)
            return proposer_index, owner, None
        root = block.hash()
        if rt.fork_choice is None:
            raise ForkChoiceError(f"chain {chain_id}: slot {slot}'s block has no fork choice to join (no slot started)")
        rt.fork_choice = rt.fork_choice.on_block(root, slot, state.tip_hash, state.height, proposer_index)
        rt.candidates[root] = block
        evidence = rt.detector.observe_proposal(signed)
        if evidence is not None:
            log.warning("chain %d: %s signed two blocks for slot %d; evidence queued", chain_id, owner, slot)
            await self.node.add_operation(chain_id, evidence)
        return proposer_index, owner, block

    async def _auto_attest(
        self, chain_id: int, rt: BeaconRuntime, slot: int, head: bytes
    ) -> tuple[int, list[AttesterSlashing]]:
        """Votes of the validators with auto-attest on, each once per epoch, spread over its slots.

        Validator ``i`` votes from the epoch's slot ``i mod slots_per_epoch`` on (phase0 spreads
        committees over the epoch the same way), so a thousand validators do not all sign and
        store their records in one slot.  The signer's protection would refuse a second vote for
        an epoch anyway; this just avoids asking.
        """
        state = self.node.chain(chain_id).state
        try:
            data = compute_attestation_data(state, slot, head)
        except ChainError:
            log.exception("chain %d: no vote possible at slot %d", chain_id, slot)
            return 0, []
        current = _require_beacon(state)
        beacon = compute_pre_block_beacon(state, slot, head, True) if _is_pos(current) else current
        epoch_length = get_epoch_length(beacon, data.target.epoch)
        slot_in_epoch = slot - get_start_slot_at_epoch(beacon, data.target.epoch)
        votes, evidence = 0, []
        for owner in sorted(rt.auto_attest):
            pubkey = await self.signer.find_validator_key(chain_id, owner)
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
                signed = await self.signer.sign_attestation(chain_id, owner, data)
            except ChainError as refusal:  # the protection record says it already voted: fine
                log.info("chain %d: auto-attest for %s skipped: %s", chain_id, owner, refusal)
                rt.voted[index] = data.target.epoch
                continue
            rt.voted[index] = data.target.epoch
            found = await self._accept_vote(chain_id, rt, signed)
            votes += 1
            if found is not None:
                evidence.append(found)
        return votes, evidence

    async def _prune_pool(self, chain_id: int) -> None:
        """Drop pooled operations no block can take any more (old votes, used nonces, done exits)."""
        runtime = self.node.chain(chain_id)
        beacon, ledger = runtime.state.beacon, runtime.state.ledger
        await self.node.drop_operations(
            chain_id, runtime.op_pool.select_ids(lambda e: is_dead_operation(e.operation, beacon, ledger))
        )

    async def equivocate(self, chain_id: int, owner: str, now: int) -> Block:
        """Chaos mode: the slot's proposer signs a second, different block for the same slot."""
        await self._require_chaos(chain_id, "equivocate")
        async with self._lock(chain_id):
            rt = await self._runtime(chain_id)
            if not rt.candidates or rt.fork_choice is None:
                raise NotProposerError("no block has been proposed in this slot yet; wait for the next one")
            first = next(iter(rt.candidates.values()))
            pubkey = await self.signer.find_validator_key(chain_id, owner)
            if pubkey is None or rt.owners.get(pubkey) != owner or first.seal is None or (
                self._beacon(chain_id).registry.index_of(pubkey) != first.seal.proposer_index
            ):
                raise NotProposerError(f"only slot {rt.fork_choice.slot}'s proposer can sign a second block for it")
            _, _, block = await self._propose(
                chain_id, rt, rt.fork_choice.slot, now, chaos=True, message=b"a second block for this slot"
            )
            if block is None:
                raise NotProposerError("the second block could not be made; see the bot's log")
            return block

    # --- evidence, records, draws, energy --------------------------------------------------

    async def report(self, chain_id: int, evidence_hex: str) -> AttesterSlashing | ProposerSlashing:
        """Queue slashing evidence anyone found (two conflicting signed votes or block headers)."""
        self._chain(chain_id)
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
        await self.node.add_operation(chain_id, evidence)
        self.node.note_activity(chain_id)
        return evidence

    async def protection(self, chain_id: int, owner: str) -> dict[str, Any]:
        state = self._chain(chain_id).state
        return await self.signer.export_protection(chain_id, owner, state.genesis_hash)

    def proposer_draw(self, chain_id: int, slot: int) -> ProposerDraw:
        state = self._chain(chain_id).state
        beacon = _require_beacon(state)
        if not _is_pos(beacon):
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

    async def schedule_merge(
        self, chain_id: int, *, at_height: int | None = None, at_total_difficulty: int | None = None
    ) -> ConsensusConfig:
        config = self._beacon(chain_id).config
        proposed = config.evolve(merge_at_height=at_height or 0, merge_at_total_difficulty=at_total_difficulty or 0)
        await self.node.propose_consensus(chain_id, proposed)
        return proposed

    async def switch_mode(
        self, chain_id: int, mode: Mode, admin_owner: str, now: int, *, base: ConsensusConfig | None = None,
        initial_bits: int | None = None,
    ) -> ConsensusConfig:
        """Start the chain over in ``mode``.  In pos the admin is the genesis validator and every
        member with a wallet gets ``GENESIS_ALLOCATION_POINTS`` (nothing is mined in pos).

        One atomic step (``Node.replace_chain``): the old chain is never missing, so no command
        can slip a default chain in between; the slot driver waits on this chain's lock.
        """
        async with self._lock(chain_id):
            old = self.node.chain(chain_id).state
            base = base or (old.beacon.config if old.beacon is not None else ConsensusConfig())
            bits = old.tip.bits if initial_bits is None else initial_bits
            owners = dict(await self.node.owners(chain_id))
            admin_wallet = await self.node.address(chain_id, admin_owner)  # wallets outlive the reset
            validators: tuple[GenesisValidator, ...] = ()
            allocations: tuple[GenesisAllocation, ...] = ()
            # Validator keys go with the old chain; the admin's is made anew, stored with the new chain.
            keys: tuple[StoredKey, ...] = ()
            if mode is Mode.POS:
                admin_key = self.signer.new_validator_key(chain_id, admin_owner)
                keys = (admin_key,)
                validators = (GenesisValidator(admin_key.pubkey, admin_wallet, base.min_deposit_points),)
                funded = {pubkey: GENESIS_ALLOCATION_POINTS for pubkey in owners}
                funded[admin_wallet] = GENESIS_ALLOCATION_POINTS
                allocations = tuple(GenesisAllocation(a, p) for a, p in sorted(funded.items()))
            config = replace(
                base, mode=mode, merge_at_height=0, merge_at_total_difficulty=0,
                genesis_validators=validators, genesis_allocations=allocations,
            )
            # The genesis validator auto-attests from the start: a new pos chain whose only validator
            # waits for someone to press Attest starts leaking its stake within minutes.
            await self.node.replace_chain(chain_id, old.params, initial_bits=bits, consensus=config,
                                          validator_keys=keys, auto_attest=tuple(k.owner for k in keys))
            # No await since the commit: nothing has read the old keys or candidates in between.
            self.forget(chain_id)
            for key in keys:
                self.signer.adopt(chain_id, key)
            await self._runtime(chain_id)  # owners known at once, for /validators
        return config

    async def reset(
        self, chain_id: int, params: ChainParams, *, initial_bits: int, consensus: ConsensusConfig | None,
        keep_rules: bool = False,
    ) -> None:
        """A plain reset (same mode): the chain starts over atomically, and its memory here with it.
        ``keep_rules``: as ``Node.replace_chain``."""
        async with self._lock(chain_id):
            await self.node.replace_chain(
                chain_id, params, initial_bits=initial_bits, consensus=consensus, keep_rules=keep_rules
            )
            self.forget(chain_id)

    async def energy(self, chain_id: int) -> EnergyReport:
        if self._signature_costs_ns is None:
            self._signature_costs_ns = await asyncio.to_thread(measure_signature_costs_ns)
        sign_ns, verify_ns = self._signature_costs_ns
        counters = await self.store.energy.counters(chain_id)
        return compute_energy_report(
            counters.pow_cpu_ns, counters.pos_sign_ops, counters.pos_verify_ops,
            sign_cost_ns=sign_ns, verify_cost_ns=verify_ns, milliwatts_per_core=self.milliwatts_per_core,
        )


# A server core under load, roughly (a 2-core VM's share of a ~30 W desktop CPU): the default of
# the WATTS_PER_CORE setting.  Only the ratio matters for the percentage saved.
