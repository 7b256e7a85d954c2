"""Pending transfers of one chain, ordered by fee and then by arrival.

Rules (the README repeats them for players):

- A transfer is admitted only if it would be valid after the sender's pending
  transfers: good fields and signature, a known sender, the next free nonce,
  and a balance that covers every pending amount plus fee.
- Same sender and nonce as a pending transfer: it replaces that one only if
  its fee is higher by at least ``replacement_fee_bump_bp`` basis points
  (10% by default) and by at least one point; the balance check then counts
  the new transfer in place of the old.
- At most ``max_pending_per_account`` pending transfers per sender, except for the
  ``unlimited_senders`` the node names (its faucet, whose payouts one per member claim are
  already bounded by the claim cooldown: a class claiming at once must not wait for blocks).
- When ``mempool_max_transfers`` is reached, a newcomer must pay a strictly
  higher fee than the cheapest evictable transfer (the latest-nonce transfer
  of some sender, so no gap is left behind), which is then evicted.
- Blocks take transfers by fee, then arrival, in nonce order per sender.
- A caller may forbid replacing and evicting (``replace=False, evict=False``):
  the bot does for every payment it builds, since each pending transfer is one
  a member was told was sent, and must not vanish because another arrived.

``arrival`` numbers come from the caller, so the order survives a restart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from chain.errors import (
    AlreadyKnownError,
    InsufficientBalanceError,
    MempoolError,
    MempoolFullError,
    NonceGapError,
    NonceReplayError,
    ReplacementRejectedError,
    TooManyPendingError,
    UnknownAccountError,
    ValidationError,
)
from chain.ledger.accounts import Account
from chain.ledger.transaction import Transfer, check_transfer_fields, check_transfer_signature
from chain.params import ChainParams

BASIS_POINTS = 10_000


@dataclass(frozen=True, slots=True)
class PendingTransfer:
    tx: Transfer
    txid: bytes
    arrival: int


@dataclass(frozen=True, slots=True)
class Admission:
    """What admitting a transfer did: the entry, and what it pushed out."""

    entry: PendingTransfer
    replaced: PendingTransfer | None
    evicted: tuple[PendingTransfer, ...]


def compute_min_replacement_fee(old_fee: int, params: ChainParams) -> int:
    bump = old_fee * params.replacement_fee_bump_bp // BASIS_POINTS
    return old_fee + max(1, bump)


class Mempool:
    def __init__(
        self, params: ChainParams, chain_id: int, *, unlimited_senders: frozenset[bytes] = frozenset()
    ) -> None:
        self.params = params
        self.chain_id = chain_id
        self.unlimited_senders = unlimited_senders
        # sender -> nonce -> entry; nonces per sender are contiguous from the account's next nonce
        self._by_sender: dict[bytes, dict[int, PendingTransfer]] = {}
        self._by_txid: dict[bytes, PendingTransfer] = {}

    def __len__(self) -> int:
        return len(self._by_txid)

    def __contains__(self, txid: object) -> bool:
        return txid in self._by_txid

    def entries(self) -> list[PendingTransfer]:
        return sorted(self._by_txid.values(), key=lambda e: e.arrival)

    def pending_for(self, sender: bytes) -> list[PendingTransfer]:
        return [e for _, e in sorted(self._by_sender.get(sender, {}).items())]

    def next_nonce(self, sender: bytes, accounts: Mapping[bytes, Account]) -> int:
        account = accounts.get(sender, Account())
        return account.nonce + len(self._by_sender.get(sender, {}))

    def check_admission(
        self, tx: Transfer, accounts: Mapping[bytes, Account], arrival: int, *, replace: bool = True,
        evict: bool = True,
    ) -> Admission:
        """Every check for admitting ``tx``, without changing the pool.

        The caller persists the admission, then hands it to ``commit``.  With
        ``replace=False`` a transfer reusing a pending nonce is refused instead of
        bumping it; with ``evict=False`` a full pool refuses instead of evicting.
        """
        return self._admit(tx, accounts, arrival, replace=replace, evict=evict)

    def commit(self, admission: Admission) -> None:
        for gone in (admission.replaced, *admission.evicted):
            if gone is not None:
                self._drop(gone)
        entry = admission.entry
        self._by_sender.setdefault(entry.tx.sender, {})[entry.tx.nonce] = entry
        self._by_txid[entry.txid] = entry

    def add(self, tx: Transfer, accounts: Mapping[bytes, Account], arrival: int) -> Admission:
        admission = self._admit(tx, accounts, arrival)
        self.commit(admission)
        return admission

    def _admit(
        self, tx: Transfer, accounts: Mapping[bytes, Account], arrival: int, *, replace: bool = True,
        evict: bool = True,
    ) -> Admission:
        params = self.params
        check_transfer_fields(tx, params)
        txid = tx.txid() if len(tx.signature) == 64 else b""
        if txid in self._by_txid:
            raise AlreadyKnownError("this transfer is already waiting in the mempool")
        account = accounts.get(tx.sender)
        if account is None:
            raise UnknownAccountError(f"sender {tx.sender.hex()[:16]}… has never held any points")
        check_transfer_signature(tx, self.chain_id)
        pending = self._by_sender.get(tx.sender, {})
        next_free = account.nonce + len(pending)
        if tx.nonce < account.nonce:
            raise NonceReplayError(f"nonce {tx.nonce} was already used; the next nonce is {next_free}")
        if tx.nonce > next_free:
            raise NonceGapError(f"nonce {tx.nonce} is out of order; the next nonce is {next_free}")

        replaced = pending.get(tx.nonce)
        if replaced is not None and not replace:
            raise ReplacementRejectedError(
                f"a transfer with nonce {tx.nonce} is already pending; it is not replaced unless you ask to bump it"
            )
        if replaced is not None:
            minimum = compute_min_replacement_fee(replaced.tx.fee, params)
            if tx.fee < minimum:
                raise ReplacementRejectedError(
                    f"a transfer with nonce {tx.nonce} is already pending with fee {replaced.tx.fee}; "
                    f"a replacement must pay at least {minimum}"
                )
        elif len(pending) >= params.max_pending_per_account and tx.sender not in self.unlimited_senders:
            raise TooManyPendingError(
                f"sender already has {len(pending)} pending transfers (limit {params.max_pending_per_account})"
            )

        spend = tx.amount + tx.fee + sum(
            e.tx.amount + e.tx.fee for n, e in pending.items() if n != tx.nonce
        )
        if spend > account.balance:
            raise InsufficientBalanceError(
                f"balance {account.balance} does not cover amount {tx.amount} plus fee {tx.fee}"
                + (" on top of pending transfers" if len(pending) > (replaced is not None) else "")
            )

        evicted: tuple[PendingTransfer, ...] = ()
        if replaced is None and len(self._by_txid) >= params.mempool_max_transfers:
            victim = self._cheapest_evictable(exclude_sender=tx.sender) if evict else None
            if not evict:
                raise MempoolFullError(
                    f"the mempool is full ({len(self._by_txid):,} pending transfers); try again after the next block"
                )
            if victim is None or victim.tx.fee >= tx.fee:
                floor = victim.tx.fee + 1 if victim is not None else None
                raise MempoolFullError(
                    "the mempool is full"
                    + (f"; a fee of at least {floor} would get in" if floor is not None else "")
                )
            evicted = (victim,)
        return Admission(PendingTransfer(tx, txid, arrival), replaced, evicted)

    def _cheapest_evictable(self, exclude_sender: bytes) -> PendingTransfer | None:
        tails = [
            by_nonce[max(by_nonce)]
            for sender, by_nonce in self._by_sender.items()
            if by_nonce and sender != exclude_sender
        ]
        return min(tails, key=lambda e: (e.tx.fee, -e.arrival), default=None)

    def _drop(self, entry: PendingTransfer) -> None:
        self._by_txid.pop(entry.txid, None)
        by_nonce = self._by_sender.get(entry.tx.sender)
        if by_nonce is not None:
            by_nonce.pop(entry.tx.nonce, None)
            if not by_nonce:
                del self._by_sender[entry.tx.sender]

    def select(self, limit: int) -> list[Transfer]:
        """Transfers for the next block: highest fee first, then earliest, nonces in order."""
        heads = {sender: sorted(by_nonce) for sender, by_nonce in self._by_sender.items()}
        chosen: list[Transfer] = []
        while len(chosen) < limit:
            ready = [self._by_sender[s][nonces[0]] for s, nonces in heads.items() if nonces]
            if not ready:
                break
            best = min(ready, key=lambda e: (-e.tx.fee, e.arrival))
            chosen.append(best.tx)
            heads[best.tx.sender].pop(0)
        return chosen

    def invalidated_by(self, accounts: Mapping[bytes, Account]) -> list[PendingTransfer]:
        """Entries a new tip makes unusable: confirmed, replayed, or no longer affordable.

        Pure: the caller deletes the same rows from the store, then calls ``discard``.
        """
        removed: list[PendingTransfer] = []
        for sender, by_nonce in self._by_sender.items():
            account = accounts.get(sender, Account())
            budget = account.balance
            expected = account.nonce
            for nonce in sorted(by_nonce):
                entry = by_nonce[nonce]
                cost = entry.tx.amount + entry.tx.fee
                if nonce == expected and cost <= budget:
                    budget -= cost
                    expected += 1
                else:
                    removed.append(entry)
        return removed

    def discard(self, entries: Iterable[PendingTransfer]) -> None:
        for entry in entries:
            self._drop(entry)

    def restore(self, entries: Iterable[PendingTransfer], accounts: Mapping[bytes, Account]) -> list[PendingTransfer]:
        """Reload persisted entries in arrival order; returns the ones now invalid."""
        dropped = []
        for entry in sorted(entries, key=lambda e: e.arrival):
            try:
                self.add(entry.tx, accounts, entry.arrival)
            except (ValidationError, MempoolError):
                dropped.append(entry)
        return dropped
