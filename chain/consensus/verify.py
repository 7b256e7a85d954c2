"""Replay a chain from genesis and check every rule again."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from chain.consensus.block import Block
from chain.consensus.genesis import check_genesis_block
from chain.consensus.state import ChainState
from chain.consensus.transition import process_block
from chain.errors import ChainError, VerificationError
from chain.hashing import hash_to_display
from chain.ledger.accounts import Account
from chain.mode import Mode
from chain.params import ChainParams
from chain.pos.beacon import ConsensusConfig


@dataclass(frozen=True, slots=True)
class VerifyReport:
    chain_id: int
    blocks: int
    transfers: int
    signatures: int
    proofs_of_work: int
    retargets: int
    accounts: int
    supply: int
    tip_hash: str
    # Chains with a consensus config only.
    mode: Mode | None = None
    pos_blocks: int = 0
    operations: int = 0
    epochs: int = 0
    validators: int = 0
    staked_units: int = 0
    finalized_epoch: int = 0
    merge_height: int | None = None

    def summary(self) -> str:
        if self.mode is None:
            return (
                f"verified {self.blocks} blocks: {self.proofs_of_work} proofs of work, "
                f"{self.retargets} retargets, {self.transfers} transfers ({self.signatures} signatures); "
                f"{self.accounts} accounts hold {self.supply} points, exactly what was minted; "
                f"tip {self.tip_hash}"
            )
        merge = f", the Merge at block {self.merge_height}" if self.merge_height is not None else ""
        return (
            f"verified {self.blocks} blocks of a {self.mode} chain: {self.proofs_of_work} proofs of work, "
            f"{self.pos_blocks} proof-of-stake blocks (proposers and signatures checked){merge}, "
            f"{self.retargets} retargets, {self.transfers} transfers, {self.operations} operations, "
            f"{self.signatures} signatures, {self.epochs} epoch transitions; finalized epoch "
            f"{self.finalized_epoch}; {self.accounts} accounts hold {self.supply} points and "
            f"{self.validators} validators {self.staked_units} nanopoints, exactly what was minted minus what "
            f"was burned; tip {self.tip_hash}"
        )


def verify_chain(
    params: ChainParams,
    chain_id: int,
    blocks: Iterable[Block],
    now: int,
    expected_accounts: Mapping[bytes, Account] | None = None,
    param_changes: Iterable[tuple[int, ChainParams]] = (),
    consensus: ConsensusConfig | None = None,
    consensus_changes: Iterable[tuple[int, ConsensusConfig]] = (),
) -> tuple[ChainState, VerifyReport]:
    """Rebuild the state block by block; raise ``VerificationError`` at the first bad one.

    ``now`` bounds block times the way it did when each block arrived: a block
    is never from the future relative to the verifier's clock.  When
    ``expected_accounts`` is given (the stored balances), they must match the
    replayed ledger exactly.  ``param_changes`` lists rule changes by the
    height of the block that committed to them; each must be committed there,
    and no block may commit to an unlisted change.  ``consensus`` is the
    chain's consensus config (the genesis block commits to it): proof-of-stake
    blocks, their proposers and signatures, every operation and every epoch
    transition are replayed, and the supply check counts stake in nanopoints.
    """
    changes = dict(param_changes)
    schedules = dict(consensus_changes)
    iterator = iter(blocks)
    try:
        genesis = next(iterator)
    except StopIteration:
        raise VerificationError(0, ChainError("the chain has no genesis block")) from None
    try:
        check_genesis_block(genesis, params, chain_id, consensus)
        state = ChainState(params, chain_id, genesis, consensus)
        # A listed change to a longer retarget window reads headers from before it: keep them.
        state.reserve_history(*changes.values())
    except ChainError as exc:
        raise VerificationError(0, exc) from exc

    transfers = retargets = pos_blocks = operations = signatures = 0
    merge_height = None
    for block in iterator:
        height = state.height + 1
        try:
            effects = process_block(state, block, now, changes.get(height), schedules.get(height))
        except ChainError as exc:
            raise VerificationError(height, exc) from exc
        if height in changes and effects.params_change is None:
            raise VerificationError(height, ChainError("a listed parameter change is not committed in this block"))
        if height in schedules and effects.consensus_change is None:
            raise VerificationError(height, ChainError("a listed Merge schedule is not committed in this block"))
        if block.seal is not None:
            pos_blocks += 1
            if merge_height is None and consensus is not None and consensus.mode is not Mode.POS:
                merge_height = height
        elif block.header.bits != state.tip.bits:
            retargets += 1
        if block.operations is not None:
            operations += sum(
                len(getattr(block.operations, name))
                for name in ("deposits", "voluntary_exits", "withdrawals", "attestations", "attester_slashings",
                             "proposer_slashings")
            )
        state.apply(block, effects)
        transfers += len(block.transfers)
        signatures += effects.signatures_checked

    ledger = state.ledger
    if state.beacon is not None and state.total_supply_units() != state.issued_supply_units():
        raise VerificationError(
            state.height,
            ChainError(
                f"ledger plus stake add up to {state.total_supply_units()} nanopoints, but minted minus burned "
                f"is {state.issued_supply_units()}"
            ),
        )
    if state.beacon is None and ledger.total_balance() != ledger.minted:
        raise VerificationError(
            state.height,
            ChainError(f"balances add up to {ledger.total_balance()}, but {ledger.minted} were minted"),
        )
    if expected_accounts is not None:
        replayed = dict(ledger.items())
        expected = dict(expected_accounts)
        differing = {k for k in replayed.keys() | expected.keys() if replayed.get(k) != expected.get(k)}
        if differing:
            raise VerificationError(
                state.height,
                ChainError(f"stored balances differ from the replay for {len(differing)} accounts"),
            )
    report = VerifyReport(
        chain_id=chain_id,
        blocks=state.height + 1,
        transfers=transfers,
        signatures=signatures,
        proofs_of_work=state.height - pos_blocks,
        retargets=retargets,
        accounts=len(ledger),
        supply=ledger.minted,
        tip_hash=hash_to_display(state.tip_hash),
    )
    beacon = state.beacon
    if beacon is not None and consensus is not None:
        report = replace(
            report,
            supply=ledger.total_balance(),
            mode=consensus.mode,
            pos_blocks=pos_blocks,
            operations=operations,
            epochs=beacon.epoch,
            validators=len(beacon.registry.validators),
            staked_units=beacon.registry.total_balance(),
            finalized_epoch=beacon.finality.finalized_checkpoint.epoch,
            merge_height=merge_height,
        )
    return state, report
