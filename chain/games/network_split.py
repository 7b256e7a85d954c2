"""A network split's rules (issue 11, games item 6): two groups, two branches, one winner.

An admin splits a server's miners into two groups for a few minutes. Each group mines its own branch
from the tip the chain had when the split began, and sees only its own blocks (as two halves of a
partitioned network would). When the split heals both branches are published and the node's fork
choice keeps the one with the most work; the other's blocks are orphaned and their payments
returned to the mempool or reversed.

This module keeps each side's bookkeeping and decides what the runner
(``chain.adapters.network_split``) asks:

- ``SplitBranch``: a side's blocks, its work, and the payments only its side heard of;
- ``compute_side_account`` / ``select_side_transfers``: what a side's next block can carry, from the
  balances and nonces at the split plus the side's own blocks (so the same payment can confirm on
  both sides, and two payments with one nonce, one per side, are a double spend across the split);
- ``compute_publish_order`` / ``predict_winner``: the rule the heal follows. The branch whose first
  block was found first is published first, so on equal work it stays (Bitcoin Core's first-seen
  rule, ``chain.consensus.tree.is_better``); otherwise the heavier branch wins.

Pure: integers and bytes only, no clock, randomness or I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from chain.errors import SplitBranchMismatchError
from chain.hashing import hash_to_display
from chain.ledger.accounts import Account
from chain.ledger.transaction import Transfer

SIDE_A = "A"
SIDE_B = "B"
SIDES = (SIDE_A, SIDE_B)


@dataclass(frozen=True, slots=True)
class SideBlock:
    """A block one side found, as the split's bookkeeping needs it (the body stays with the runner).

    ``found_order`` numbers the split's blocks in the order they were found, over both sides.
    """

    block_hash: bytes
    parent_hash: bytes
    height: int
    work: int
    miner: bytes
    reward: int
    transfers: tuple[Transfer, ...]
    found_order: int


@dataclass
class SplitBranch:
    """One side of the split: the blocks its group found on top of ``base_hash``, in order, and the
    payments only this side heard of (``pool``, in the order they were made)."""

    side: str
    base_hash: bytes
    base_height: int
    blocks: list[SideBlock] = field(default_factory=list)
    pool: list[Transfer] = field(default_factory=list)

    @property
    def tip_hash(self) -> bytes:
        return self.blocks[-1].block_hash if self.blocks else self.base_hash

    @property
    def height(self) -> int:
        return self.base_height + len(self.blocks)

    @property
    def work(self) -> int:
        """The work this side added on top of the split's base: what decides the heal."""
        return sum(block.work for block in self.blocks)

    @property
    def first_found(self) -> int | None:
        return self.blocks[0].found_order if self.blocks else None

    def txids(self) -> set[bytes]:
        """Every payment this side's blocks confirmed."""
        return {tx.txid() for block in self.blocks for tx in block.transfers}

    def append(self, block: SideBlock) -> None:
        """Add the side's next block; ``SplitBranchMismatchError`` if it does not build on the tip
        (another member of the group found this height first) or claims the wrong height."""
        if block.parent_hash != self.tip_hash or block.height != self.height + 1:
            raise SplitBranchMismatchError(
                f"block {block.height} ({hash_to_display(block.block_hash)[:16]}) does not extend side "
                f"{self.side}'s tip, block {self.height} ({hash_to_display(self.tip_hash)[:16]})"
            )
        self.blocks.append(block)
        confirmed = {tx.txid() for tx in block.transfers}
        self.pool = [tx for tx in self.pool if tx.txid() not in confirmed]


BaseAccounts = Callable[[bytes], Account]


def compute_side_account(branch: SplitBranch, base: BaseAccounts, address: bytes) -> Account:
    """``address``'s balance and nonce on ``branch``: its account at the split (``base``) plus the
    side's blocks (rewards in, payments in and out). The side's pool is not counted."""
    balance, nonce = base(address).balance, base(address).nonce
    for block in branch.blocks:
        if block.miner == address:
            balance += block.reward
        for tx in block.transfers:
            if tx.sender == address:
                balance -= tx.amount + tx.fee
                nonce = max(nonce, tx.nonce + 1)
            if tx.recipient == address:
                balance += tx.amount
    return Account(balance=balance, nonce=nonce)


def compute_side_next_nonce(branch: SplitBranch, base: BaseAccounts, address: bytes) -> int:
    """The nonce ``address``'s next side-only payment takes: after the side's blocks and its pool."""
    nonce = compute_side_account(branch, base, address).nonce
    for tx in branch.pool:
        if tx.sender == address:
            nonce = max(nonce, tx.nonce + 1)
    return nonce


def compute_side_spendable(branch: SplitBranch, base: BaseAccounts, address: bytes) -> int:
    """What ``address`` can still pay on this side: its balance there less its side-only payments waiting."""
    waiting = sum(tx.amount + tx.fee for tx in branch.pool if tx.sender == address)
    return compute_side_account(branch, base, address).balance - waiting


def select_side_transfers(
    branch: SplitBranch, base: BaseAccounts, mempool: Iterable[Transfer], limit: int
) -> list[Transfer]:
    """The payments the side's next block carries: the side's own first (they are what only this side
    heard of), then the mempool's (heard by both sides), each only if valid on this branch: its nonce
    the sender's next one there and its amount and fee covered. A payment the side already confirmed
    is skipped; one whose nonce the side used for another payment (a double spend across the split)
    never fits. At most ``limit``."""
    confirmed = branch.txids()
    accounts: dict[bytes, Account] = {}

    def account(address: bytes) -> Account:
        if address not in accounts:
            accounts[address] = compute_side_account(branch, base, address)
        return accounts[address]

    chosen: list[Transfer] = []
    waiting = [tx for tx in [*branch.pool, *mempool] if tx.txid() not in confirmed]
    # Passes until nothing more fits: a sender's next nonce may come after a later one in the list.
    progress = True
    while progress and len(chosen) < limit:
        progress = False
        for tx in waiting:
            if len(chosen) >= limit:
                break
            sender = account(tx.sender)
            if tx in chosen or tx.nonce != sender.nonce or tx.amount + tx.fee > sender.balance:
                continue
            chosen.append(tx)
            accounts[tx.sender] = Account(balance=sender.balance - tx.amount - tx.fee, nonce=sender.nonce + 1)
            recipient = account(tx.recipient)
            accounts[tx.recipient] = Account(balance=recipient.balance + tx.amount, nonce=recipient.nonce)
            progress = True
    return chosen


def compute_publish_order(a: SplitBranch, b: SplitBranch) -> tuple[SplitBranch, SplitBranch]:
    """The order the heal publishes the branches in: the one whose first block was found first goes
    first, so on equal work it is the one kept (first seen). A side with no block goes last; with
    none on either side, ``a`` first."""
    first_a, first_b = a.first_found, b.first_found
    if first_b is not None and (first_a is None or first_b < first_a):
        return b, a
    return a, b


def predict_winner(a: SplitBranch, b: SplitBranch) -> str | None:
    """The side whose branch the heal keeps, from the work each added: the heavier one, equal work
    going to the one published first; None when neither side found a block."""
    if not a.blocks and not b.blocks:
        return None
    if a.work != b.work:
        return a.side if a.work > b.work else b.side
    return compute_publish_order(a, b)[0].side


def confirmed_on_both(a: SplitBranch, b: SplitBranch) -> int:
    """Payments both sides confirmed (heard by both: from the mempool)."""
    return len(a.txids() & b.txids())


def count_double_spends(a: SplitBranch, b: SplitBranch) -> int:
    """Sender nonces used by a different payment on each side: the double spends across the split."""
    def by_nonce(branch: SplitBranch) -> dict[tuple[bytes, int], bytes]:
        return {(tx.sender, tx.nonce): tx.txid() for block in branch.blocks for tx in block.transfers}

    left, right = by_nonce(a), by_nonce(b)
    return sum(1 for key, txid in left.items() if key in right and right[key] != txid)


def side_label(side: str, group_name: str) -> str:
    """How a member reads where they mine: "group A (@north)'s side of the split"."""
    return f"group {side} ({group_name})'s side of the split"



def compute_stake_shares(
    validators: Iterable[tuple[bytes, int, bool]], side_of_key: Callable[[bytes], str | None]
) -> dict[str, tuple[int, int]]:
    """Each side's voting stake against the whole active stake, on a hybrid chain: ``validators`` are
    the active ones as (public key, effective balance, slashed); ``side_of_key`` names the side whose
    blocks a validator votes on (None: it votes on neither, e.g. nobody signs for it). A slashed
    validator's stake counts in the whole (as the chain weighs it) but votes for no side. Returns
    side -> (stake, total): a side justifies only with stake * 3 >= total * 2, the rule's two thirds."""
    total = 0
    stake = dict.fromkeys(SIDES, 0)
    for pubkey, balance, slashed in validators:
        total += balance
        side = None if slashed else side_of_key(pubkey)
        if side is not None:
            stake[side] += balance
    return {side: (stake[side], total) for side in SIDES}


def stake_percent(stake: int, total: int) -> int:
    """A stake as a whole percent of the total, rounded down (0 with no stake at all)."""
    return 0 if total <= 0 else stake * 100 // total
