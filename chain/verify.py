"""Replay a chain from genesis and check every rule again."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from chain.block import Block
from chain.errors import ChainError, VerificationError
from chain.hashing import hash_to_display
from chain.ledger import Account
from chain.params import ChainParams
from chain.state import ChainState, check_genesis_block, process_block


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

    def summary(self) -> str:
        return (
            f"verified {self.blocks} blocks: {self.proofs_of_work} proofs of work, "
            f"{self.retargets} retargets, {self.transfers} transfers ({self.signatures} signatures); "
            f"{self.accounts} accounts hold {self.supply} points, exactly what was minted; "
            f"tip {self.tip_hash}"
        )


def verify_chain(
    params: ChainParams,
    chain_id: int,
    blocks: Iterable[Block],
    now: int,
    expected_accounts: Mapping[bytes, Account] | None = None,
    param_changes: Iterable[tuple[int, ChainParams]] = (),
) -> tuple[ChainState, VerifyReport]:
    """Rebuild the state block by block; raise ``VerificationError`` at the first bad one.

    ``now`` bounds block times the way it did when each block arrived: a block
    is never from the future relative to the verifier's clock.  When
    ``expected_accounts`` is given (the stored balances), they must match the
    replayed ledger exactly.  ``param_changes`` lists rule changes by the
    height of the block that committed to them; each must be committed there,
    and no block may commit to an unlisted change.
    """
    changes = dict(param_changes)
    iterator = iter(blocks)
    try:
        genesis = next(iterator)
    except StopIteration:
        raise VerificationError(0, ChainError("the chain has no genesis block")) from None
    try:
        check_genesis_block(genesis, params, chain_id)
        state = ChainState(params, chain_id, genesis)
    except ChainError as exc:
        raise VerificationError(0, exc) from exc

    transfers = retargets = 0
    for block in iterator:
        height = state.height + 1
        try:
            effects = process_block(state, block, now, changes.get(height))
        except ChainError as exc:
            raise VerificationError(height, exc) from exc
        if height in changes and effects.params_change is None:
            raise VerificationError(height, ChainError("a listed parameter change is not committed in this block"))
        if block.header.bits != state.tip.bits:
            retargets += 1
        state.apply(block, effects)
        transfers += len(block.transfers)

    ledger = state.ledger
    if ledger.total_balance() != ledger.minted:
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
        signatures=transfers,
        proofs_of_work=state.height,
        retargets=retargets,
        accounts=len(ledger),
        supply=ledger.minted,
        tip_hash=hash_to_display(state.tip_hash),
    )
    return state, report
