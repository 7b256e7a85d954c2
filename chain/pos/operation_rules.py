"""The rule of each block operation on the beacon state, as phase0's ``process_operations``:
deposits (wallet-signed), voluntary exits, attestations and both slashings; and the proposer
record a block leaves."""

from __future__ import annotations

from dataclasses import dataclass, replace

from chain.errors import (
    AttestationError,
    DuplicateAttestationError,
    ExitError,
    InsufficientBalanceError,
    InvalidAmountError,
    NonceGapError,
    NonceReplayError,
    OperationsError,
    UnknownAccountError,
    UnknownValidatorError,
    ValidatorStatusError,
    WrongChainError,
)
from chain.events import (
    ChainEvent,
    SlashedVotes,
    StakeDeposited,
    ValidatorSlashed,
)
from chain.hashing import hash_to_display
from chain.ledger.accounts import Account
from chain.pos.attestation import (
    AttestationData,
    AttesterSlashing,
    ProposerSlashing,
    SignedAttestation,
    check_attestation_signature,
    check_attester_slashing,
    check_proposer_slashing,
)
from chain.pos.beacon import (
    MIN_ATTESTATION_INCLUSION_DELAY,
    BeaconState,
    get_checkpoint_root,
    get_epoch_at_slot,
    get_epoch_length,
    get_start_slot_at_epoch,
)
from chain.pos.operations import (
    Deposit,
    VoluntaryExit,
    check_deposit_signatures,
    check_exit_signature,
)
from chain.pos.rewards import (
    is_plain_int,
    points_to_units,
)
from chain.pos.staking import (
    SlashingPenalty,
    apply_deposit,
    apply_voluntary_exit,
    is_active_validator,
    is_slashable_validator,
    slash_validator,
)

# --- operations ---------------------------------------------------------------


def process_deposit(
    state: BeaconState, wallet: Account | None, deposit: Deposit, chain_id: int, max_amount_points: int
) -> tuple[BeaconState, Account]:
    """A deposit: checks the signatures, nonce and balance, then locks the points (phase0 ``process_deposit``;
    ``chain.pos.staking.apply_deposit`` is the registry part).  Returns the state and the wallet after it."""
    paying = check_deposit(wallet, deposit, chain_id, max_amount_points)
    known = state.registry.index_of(deposit.validator)
    registry = apply_deposit(
        state.registry, deposit.validator, points_to_units(deposit.amount), state.epoch, state.config.staking_params()
    )
    addresses = state.withdrawal_addresses if known is not None else state.withdrawal_addresses + (deposit.wallet,)
    index = known if known is not None else len(registry.validators) - 1
    deposited, withdrawn = list(state.deposited_units), list(state.withdrawn_units)
    if known is None:
        deposited.append(0)
        withdrawn.append(0)
    deposited[index] += points_to_units(deposit.amount)
    new_state = replace(
        state, registry=registry, withdrawal_addresses=addresses,
        deposited_units=tuple(deposited), withdrawn_units=tuple(withdrawn),
    )
    new_state = new_state.with_events(compute_deposit_event(state, new_state, deposit))
    return new_state, Account(paying.balance - deposit.amount, paying.nonce + 1)


def check_deposit(wallet: Account | None, deposit: Deposit, chain_id: int, max_amount_points: int) -> Account:
    """A deposit's amount, signatures, nonce and the wallet's balance; returns the paying wallet."""
    if not is_plain_int(deposit.amount) or deposit.amount < 1:
        raise InvalidAmountError(f"a deposit is a positive whole number of points, got {deposit.amount!r}")
    if deposit.amount > max_amount_points:
        raise InvalidAmountError(f"deposit {deposit.amount} is beyond the supported maximum of {max_amount_points}")
    check_deposit_signatures(deposit, chain_id)
    if wallet is None:
        raise UnknownAccountError(f"wallet {deposit.wallet.hex()[:16]}… has never held any points")
    if deposit.nonce < wallet.nonce:
        raise NonceReplayError(f"deposit nonce {deposit.nonce} was already used; the next nonce is {wallet.nonce}")
    if deposit.nonce > wallet.nonce:
        raise NonceGapError(f"deposit nonce {deposit.nonce} is out of order; the next nonce is {wallet.nonce}")
    if deposit.amount > wallet.balance:
        raise InsufficientBalanceError(f"balance {wallet.balance} is less than the deposit of {deposit.amount}")
    return wallet


def compute_deposit_event(pre: BeaconState, post: BeaconState, deposit: Deposit) -> ChainEvent:
    """STAKE_DEPOSITED for ``deposit``, from the registry before (a top-up's validator was there)
    and after (a new validator is the last one)."""
    known = pre.registry.index_of(deposit.validator)
    index = known if known is not None else len(post.registry.validators) - 1
    return StakeDeposited(
        validator_index=index,
        pubkey=deposit.validator,
        wallet=deposit.wallet,
        amount=deposit.amount,
        top_up=known is not None,
        activation_epoch=post.registry.validators[index].activation_epoch,
    )


def process_voluntary_exit(state: BeaconState, exit_: VoluntaryExit, chain_id: int) -> BeaconState:
    """phase0's ``process_voluntary_exit``: signed by the validator, active, not exiting, epoch reached."""
    index = exit_.validator_index
    if index >= len(state.registry.validators):
        raise UnknownValidatorError(
            f"there is no validator {index} (the registry has {len(state.registry.validators)})"
        )
    if state.epoch < exit_.epoch:
        raise ExitError(f"the exit is valid from epoch {exit_.epoch}; the chain is at epoch {state.epoch}")
    check_exit_signature(exit_, state.registry.validators[index].pubkey, chain_id)
    registry = apply_voluntary_exit(state.registry, index, state.epoch, state.config.staking_params())
    return replace(state, registry=registry)


def process_attestation(
    state: BeaconState, attestation: SignedAttestation, block_slot: int, chain_id: int
) -> BeaconState:
    """phase0's ``process_attestation`` for one validator's vote, cheapest checks first.

    Unlike phase0, a vote whose target root is not this chain's checkpoint is
    refused rather than included unrewarded, and a second vote of the same
    validator for the same target is refused rather than ignored.  The head vote
    (``beacon_block_root``) is not checked here: it only feeds the fork choice
    (chain/pos/forkchoice.py), and may name a block that lost its slot.
    """
    data = attestation.data
    check_attestation_data_against_state(state, data, block_slot, chain_id)
    index = get_attesting_index(state, attestation)
    is_current = data.target.epoch == state.epoch
    voters = state.current_attesters if is_current else state.previous_attesters
    if index in voters:
        raise DuplicateAttestationError(f"validator {index}'s vote for epoch {data.target.epoch} is already counted")
    check_attestation_signature(attestation)
    if is_current:
        return replace(state, current_attesters=state.current_attesters | {index})
    return replace(state, previous_attesters=state.previous_attesters | {index})


def check_attestation_data_against_state(
    state: BeaconState, data: AttestationData, block_slot: int, chain_id: int
) -> None:
    """The vote itself: this chain, a target in the current or previous epoch matching its slot,
    included in time, from the justified checkpoint, to this chain's checkpoint."""
    if not state.ffg_enabled:
        raise OperationsError("this pow chain has not merged: its blocks carry no attestations")
    if data.chain_id != chain_id:
        raise WrongChainError(f"the attestation is for chain {data.chain_id}, not this chain ({chain_id})")
    previous_epoch = max(state.epoch - 1, 0)
    if data.target.epoch not in (previous_epoch, state.epoch):
        raise AttestationError(
            f"target epoch {data.target.epoch} is neither the current epoch {state.epoch} nor the previous one"
        )
    slot_epoch = get_epoch_at_slot(state, data.slot)
    if data.target.epoch != slot_epoch:
        raise AttestationError(f"target epoch {data.target.epoch} is not the epoch {slot_epoch} of slot {data.slot}")
    if not data.slot + MIN_ATTESTATION_INCLUSION_DELAY <= block_slot <= data.slot + get_epoch_length(state, slot_epoch):
        raise AttestationError(
            f"a vote for slot {data.slot} is included from slot {data.slot + MIN_ATTESTATION_INCLUSION_DELAY} to "
            f"{data.slot + get_epoch_length(state, slot_epoch)}; this block is at slot {block_slot}"
        )
    is_current = data.target.epoch == state.epoch
    expected_source = (
        state.finality.current_justified_checkpoint if is_current else state.finality.previous_justified_checkpoint
    )
    if data.source != expected_source:
        raise AttestationError(
            f"source checkpoint (epoch {data.source.epoch}) is not the justified checkpoint "
            f"(epoch {expected_source.epoch}, {hash_to_display(expected_source.root)[:16]}…)"
        )
    if data.target.root != get_checkpoint_root(state, data.target.epoch):
        raise AttestationError(f"target root is not this chain's checkpoint of epoch {data.target.epoch}")


def get_attesting_index(state: BeaconState, attestation: SignedAttestation) -> int:
    """The voter's validator index: a validator of this chain, active in the target epoch, not slashed."""
    index = state.registry.index_of(attestation.validator)
    if index is None:
        raise UnknownValidatorError(f"{attestation.validator.hex()[:16]}… is not a validator of this chain")
    validator = state.registry.validators[index]
    target_epoch = attestation.data.target.epoch
    if not is_active_validator(validator, target_epoch):
        raise ValidatorStatusError(f"validator {index} is not active in epoch {target_epoch}")
    if validator.slashed:
        raise ValidatorStatusError(f"validator {index} was slashed; its votes no longer count")
    return index


@dataclass(frozen=True, slots=True)
class SlashingDetail:
    """What a slashing announcement says of the evidence: the offence in words, and the slot of a
    double proposal or the ``(source, target)`` epochs of the two votes."""

    description: str
    slot: int | None = None
    votes: SlashedVotes | None = None


def _slash(
    state: BeaconState, pubkey: bytes, proposer_index: int | None, offence: str, detail: SlashingDetail
) -> BeaconState:
    index = state.registry.index_of(pubkey)
    if index is None:
        raise UnknownValidatorError(f"{pubkey.hex()[:16]}… is not a validator of this chain")
    validator = state.registry.validators[index]
    if not is_slashable_validator(validator, state.epoch):
        raise ValidatorStatusError(f"validator {index} is already slashed or no longer slashable")
    registry, outcome = slash_validator(
        state.registry, index, proposer_index, state.epoch, state.config.staking_params()
    )
    post = replace(state, registry=registry, burned_units=state.burned_units + outcome.burned)
    return post.with_events(compute_slashing_event(state, post, outcome, offence, detail))


def compute_slashing_event(
    pre: BeaconState, post: BeaconState, outcome: SlashingPenalty, offence: str, detail: SlashingDetail
) -> ChainEvent:
    """VALIDATOR_SLASHED: who (from ``pre``), what it cost (``outcome``) and when its stake unlocks (``post``)."""
    index = outcome.slashed_index
    return ValidatorSlashed(
        validator_index=index,
        pubkey=pre.registry.validators[index].pubkey,
        # The wallet its stake is paid back to: whose history shows the penalty.
        wallet=pre.withdrawal_addresses[index],
        offence=offence,
        description=detail.description,
        slot=detail.slot,
        votes=detail.votes,
        penalty_units=outcome.penalty,
        whistleblower_reward_units=outcome.whistleblower_reward,
        proposer_index=outcome.proposer_index,
        burned_units=outcome.burned,
        withdrawable_epoch=post.registry.validators[index].withdrawable_epoch,
    )


def process_attester_slashing(
    state: BeaconState, evidence: AttesterSlashing, chain_id: int, proposer_index: int | None
) -> BeaconState:
    verdict = check_attester_slashing(evidence, chain_id)
    d1, d2 = evidence.attestation_1.data, evidence.attestation_2.data
    detail = SlashingDetail(
        verdict.description, votes=((d1.source.epoch, d1.target.epoch), (d2.source.epoch, d2.target.epoch))
    )
    return _slash(state, verdict.validator, proposer_index, verdict.offence.value, detail)


def process_proposer_slashing(
    state: BeaconState, evidence: ProposerSlashing, chain_id: int, proposer_index: int | None
) -> BeaconState:
    verdict = check_proposer_slashing(evidence, chain_id)
    detail = SlashingDetail(verdict.description, slot=evidence.signed_header_1.header.slot)
    return _slash(state, verdict.validator, proposer_index, verdict.offence.value, detail)


def record_proposer(state: BeaconState, slot: int, proposer_index: int) -> BeaconState:
    """Note who filled ``slot`` of the current epoch (proposer rewards at the epoch's end)."""
    offset = slot - get_start_slot_at_epoch(state, state.epoch)
    proposers = list(state.epoch_proposers)
    proposers[offset] = proposer_index
    return replace(state, epoch_proposers=tuple(proposers))
