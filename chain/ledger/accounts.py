"""Account balances and nonces, and the rules that move points between them.

``process_transfer`` checks every precondition before it returns the new
account states; nothing is mutated until ``Ledger.apply`` is given the result.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from chain.errors import InsufficientBalanceError, NonceGapError, NonceReplayError, UnknownAccountError
from chain.ledger.transaction import Transfer, check_transfer_fields, check_transfer_signature
from chain.params import ChainParams

# Each halving shifts the subsidy right; past 63 halvings it is zero anyway.
MAX_HALVINGS = 64


@dataclass(frozen=True, slots=True)
class Account:
    balance: int = 0
    nonce: int = 0


class Ledger(Mapping[bytes, Account]):
    """Every account that has ever held points, plus the total ever minted."""

    def __init__(self, accounts: Mapping[bytes, Account] | None = None, minted: int = 0) -> None:
        self._accounts: dict[bytes, Account] = dict(accounts or {})
        self.minted = minted

    def __getitem__(self, key: bytes) -> Account:
        return self._accounts[key]

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._accounts)

    def __len__(self) -> int:
        return len(self._accounts)

    def total_balance(self) -> int:
        return sum(a.balance for a in self._accounts.values())

    def apply(self, changes: Mapping[bytes, Account], minted: int) -> None:
        self._accounts.update(changes)
        self.minted += minted

    def copy(self) -> Ledger:
        """An independent ledger with the same accounts (one dict copy: ``Account`` is immutable)."""
        return Ledger(self._accounts, self.minted)


class LedgerView(Mapping[bytes, Account]):
    """A block's pending account changes read over the ledger: ``changes`` first, then ``ledger``.

    What ``ChainMap(changes, ledger)`` did, typed: ``ChainMap`` wants every map mutable, and a
    ``Ledger`` changes only through ``apply``.  Read-only: callers write into ``changes`` itself.
    """

    __slots__ = ("changes", "ledger")

    def __init__(self, changes: Mapping[bytes, Account], ledger: Mapping[bytes, Account]) -> None:
        self.changes = changes
        self.ledger = ledger

    def __getitem__(self, key: bytes) -> Account:
        try:
            return self.changes[key]
        except KeyError:
            return self.ledger[key]

    def __contains__(self, key: object) -> bool:
        return key in self.changes or key in self.ledger

    def __iter__(self) -> Iterator[bytes]:
        # ChainMap's order: the ledger's keys, then the accounts the changes add.
        return iter({**dict.fromkeys(self.ledger), **dict.fromkeys(self.changes)})

    def __len__(self) -> int:
        return len(self.ledger) + sum(1 for key in self.changes if key not in self.ledger)


def compute_block_subsidy(height: int, params: ChainParams) -> int:
    """New points a block at ``height`` mints; genesis mints none."""
    if height == 0:
        return 0
    halvings = (height - 1) // params.halving_interval_blocks
    if halvings >= MAX_HALVINGS:
        return 0
    return params.initial_subsidy_points >> halvings


def compute_subsidy_total(first_height: int, last_height: int, params: ChainParams) -> int:
    """``compute_block_subsidy`` summed over heights ``first_height..last_height`` under one set of
    rules, era by era (at most ``MAX_HALVINGS`` steps), so that startup needs no pass over the blocks."""
    first_height = max(first_height, 1)
    total = 0
    height = first_height
    while height <= last_height:
        halvings = (height - 1) // params.halving_interval_blocks
        subsidy = 0 if halvings >= MAX_HALVINGS else params.initial_subsidy_points >> halvings
        if subsidy == 0:
            break
        era_end = min(last_height, (halvings + 1) * params.halving_interval_blocks)
        total += subsidy * (era_end - height + 1)
        height = era_end + 1
    return total


def process_transfer(
    accounts: Mapping[bytes, Account], tx: Transfer, chain_id: int, params: ChainParams
) -> dict[bytes, Account]:
    """Apply one transfer to a view of the accounts; return the two new states."""
    check_transfer_fields(tx, params)
    check_transfer_signature(tx, chain_id)
    sender = accounts.get(tx.sender)
    if sender is None:
        raise UnknownAccountError(f"sender {tx.sender.hex()[:16]}… has never held any points")
    check_transfer_nonce(sender, tx)
    if tx.amount + tx.fee > sender.balance:
        raise InsufficientBalanceError(
            f"balance {sender.balance} is less than amount {tx.amount} plus fee {tx.fee}"
        )
    recipient = accounts.get(tx.recipient, Account())
    return {
        tx.sender: Account(sender.balance - tx.amount - tx.fee, sender.nonce + 1),
        tx.recipient: Account(recipient.balance + tx.amount, recipient.nonce),
    }


def check_transfer_nonce(sender: Account, tx: Transfer) -> None:
    if tx.nonce < sender.nonce:
        raise NonceReplayError(f"nonce {tx.nonce} was already used; the next nonce is {sender.nonce}")
    if tx.nonce > sender.nonce:
        raise NonceGapError(f"nonce {tx.nonce} is out of order; the next nonce is {sender.nonce}")
