"""The operation pool: deposits, exits, votes and slashing evidence waiting for a block.

The proof-of-stake counterpart of chain/ledger/mempool.py.  Whatever a member did
(staked, asked to exit, voted, reported) is acknowledged once it is in the
pool, so the node persists the pool and restores it after a restart.  The pool
itself judges nothing: ``chain.consensus.templates.select_operations`` decides, against the
state the next block will see, which entries go into it, so an entry that has
become invalid (a vote too old to include, a deposit whose wallet nonce was
used) simply stops being chosen, and ``prune`` drops it.

Entries are keyed by the merkle leaf id a block would give them, so the same
operation offered twice is one entry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from chain.errors import EncodingError
from chain.hashing import sha256d
from chain.pos.attestation import AttesterSlashing, ProposerSlashing, SignedAttestation
from chain.pos.operations import (
    OP_ATTESTATION,
    OP_ATTESTER_SLASHING,
    OP_DEPOSIT,
    OP_PROPOSER_SLASHING,
    OP_VOLUNTARY_EXIT,
    Deposit,
    Operations,
    VoluntaryExit,
)
from chain.pos.staking import FAR_FUTURE_EPOCH

if TYPE_CHECKING:
    from chain.ledger.accounts import Account
    from chain.pos.beacon import BeaconState

Operation = Deposit | VoluntaryExit | SignedAttestation | AttesterSlashing | ProposerSlashing
_OperationT = TypeVar("_OperationT", bound=Operation)

# kind byte -> (Operations field, class); withdrawals are never pooled: the state dictates them.
POOLED_KINDS: dict[int, tuple[str, type[Operation]]] = {
    OP_PROPOSER_SLASHING: ("proposer_slashings", ProposerSlashing),
    OP_ATTESTER_SLASHING: ("attester_slashings", AttesterSlashing),
    OP_ATTESTATION: ("attestations", SignedAttestation),
    OP_DEPOSIT: ("deposits", Deposit),
    OP_VOLUNTARY_EXIT: ("voluntary_exits", VoluntaryExit),
}
_KIND_OF: dict[type, int] = {cls: kind for kind, (_, cls) in POOLED_KINDS.items()}
# Far above any block's caps: a flood of entries cannot grow the pool without bound.
MAX_POOL_ENTRIES = 20_000


@dataclass(frozen=True, slots=True)
class PooledOperation:
    op_id: bytes
    kind: int
    operation: Operation
    arrival: int

    def serialize(self) -> bytes:
        return self.operation.serialize()


def compute_operation_id(operation: Operation) -> bytes:
    """The merkle leaf a block gives this operation (``Operations.leaf_ids``)."""
    kind = kind_of(operation)
    return sha256d(bytes((kind,)) + operation.serialize())


def kind_of(operation: Operation) -> int:
    try:
        return _KIND_OF[type(operation)]
    except KeyError:
        raise EncodingError(f"{type(operation).__name__} is not an operation the pool keeps") from None


def is_dead_operation(
    operation: Operation, beacon: BeaconState | None, accounts: Mapping[bytes, Account]
) -> bool:
    """Whether no block on top of this state can ever include ``operation``, so the pool drops it.

    A vote for a target older than the previous epoch (phase0 includes votes up to
    one epoch late); a deposit whose wallet nonce a block already used (left in the
    pool it would hold the wallet's nonces for ever); an exit of a validator that is
    already exiting.  Anything else may still fit a later block.
    """
    if isinstance(operation, Deposit):
        account = accounts.get(operation.wallet)
        return account is not None and operation.nonce < account.nonce
    if beacon is None:
        return False
    if isinstance(operation, SignedAttestation):
        return operation.data.target.epoch < beacon.epoch - 1
    if isinstance(operation, VoluntaryExit):
        index = operation.validator_index
        return index < len(beacon.registry.validators) and (
            beacon.registry.validators[index].exit_epoch != FAR_FUTURE_EPOCH
        )
    return False


def deserialize_operation(kind: int, raw: bytes) -> Operation:
    try:
        _, cls = POOLED_KINDS[kind]
    except KeyError:
        raise EncodingError(f"unknown pooled operation kind {kind:#x}") from None
    return cls.deserialize(raw)


class OpPool:
    """Pending operations of one chain, in arrival order within each kind."""

    def __init__(self) -> None:
        self._entries: dict[bytes, PooledOperation] = {}
        self._next_arrival = 1

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, op_id: object) -> bool:
        return op_id in self._entries

    def __iter__(self) -> Iterator[PooledOperation]:
        return iter(sorted(self._entries.values(), key=lambda e: e.arrival))

    def prepare(self, operation: Operation) -> PooledOperation:
        """The entry ``operation`` would become; check it, persist it, then ``commit`` it."""
        if len(self._entries) >= MAX_POOL_ENTRIES:
            raise EncodingError(f"the operation pool is full ({MAX_POOL_ENTRIES} entries)")
        return PooledOperation(compute_operation_id(operation), kind_of(operation), operation, self._next_arrival)

    def commit(self, entry: PooledOperation) -> None:
        self._entries.setdefault(entry.op_id, entry)
        self._next_arrival = max(self._next_arrival, entry.arrival + 1)

    def restore(self, entries: Iterable[PooledOperation]) -> None:
        for entry in entries:
            self.commit(entry)

    def operations(self) -> Operations:
        """Every pending entry, grouped as a block would carry them (for ``select_operations``)."""
        lists: dict[str, list[Operation]] = {name: [] for name, _ in POOLED_KINDS.values()}
        for entry in self:
            lists[POOLED_KINDS[entry.kind][0]].append(entry.operation)
        # Any: each field wants its own item type; Operations checks every item's class when built.
        grouped: dict[str, Any] = {name: tuple(items) for name, items in lists.items()}
        return Operations(**grouped)

    def pending(self, cls: type[_OperationT]) -> list[_OperationT]:
        """The pending operations of one class (``Deposit``, ``VoluntaryExit``...), in arrival order,
        typed as that class.  A class has exactly one kind (``kind_of``)."""
        return [e.operation for e in self if isinstance(e.operation, cls)]

    def included_by(self, operations: Operations) -> list[bytes]:
        """Ids of pooled entries that a block carrying ``operations`` has included."""
        return [op_id for op_id in operations.leaf_ids() if op_id in self._entries]

    def discard(self, op_ids: Iterable[bytes]) -> None:
        for op_id in op_ids:
            self._entries.pop(op_id, None)

    def select_ids(self, predicate: Callable[[PooledOperation], bool]) -> list[bytes]:
        """Ids of the entries ``predicate`` picks (the node prunes with it: old votes, used nonces)."""
        return [e.op_id for e in self if predicate(e)]
