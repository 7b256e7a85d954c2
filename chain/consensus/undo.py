"""Taking a block back: its undo record (``compute_block_undo``), the exact inverse of connecting it
(``process_disconnect_block``), and the transfers a reorg hands back to the mempool
(``compute_returned_transfers``).

A reorg disconnects the main chain's blocks back to the fork point, newest first, then connects the
other branch.  Connecting a block only writes the new values of the accounts it touched
(``BlockEffects.accounts``); to take it back the node needs the values they had before, which the
block itself does not carry.  Bitcoin Core keeps them in a ``CBlockUndo`` per block (src/undo.h:
one ``CTxUndo`` per transaction but the coinbase, holding every spent output with its height and
coinbase flag) written beside the block in ``rev?????.dat``, followed by a checksum over the
parent's hash and the undo data, so that a record read back for the wrong block fails its check;
``DisconnectBlock`` fails when a record and its block disagree, and reports an unclean disconnect
when the coins it removes are not the ones the block created.  An account
chain has no spent outputs: a ``BlockUndo`` holds, for every account the block touched, its value
before (or that it did not exist) and its value after, plus the header-chain facts the node must
restore (height, hash, parent hash, the points minted, a parameter change or a Merge schedule).

Byte layout (little-endian, fixed widths like chain/ledger/transaction.py, so it is easy to audit)::

    magic b"CPBU" | version u8 | height u32 | block hash 32 B | parent hash 32 B | minted u64
    | account count u32 | accounts, ascending by address:
        address 32 B | existed u8 (0 or 1) | [balance u64 | nonce u64 before, if it existed]
        | balance u64 | nonce u64 after
    | params flag u8 | [length u32 | ChainParams.to_bytes(), if 1]
    | Merge flag u8 | [sha256 of the ConsensusConfig's bytes (chain/pos/snapshot.py), if 1]
    | checksum: sha256d of everything before it (32 B; the parent hash is inside, as in Core's)

``BlockUndo.deserialize`` accepts only that canonical form (anything else is ``UndoEncodingError``):
one encoding per record, so a stored record and the one recomputed from the block are comparable
byte for byte.

Proof of stake: the beacon state is not in the record.  The store already keeps a snapshot of it
after every block (chain/pos/snapshot.py, the ``beacon_snapshots`` table), so a disconnect restores
the beacon state from the fork point's snapshot instead of stepping every epoch transition back.
A Merge schedule a block committed is named by its config digest, as snapshots name configs.

Pure: no clock, no storage; the caller stores the record with the block and applies the result.
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from chain.consensus.block import Block
from chain.consensus.state import BlockEffects
from chain.errors import (
    DisconnectOrderError,
    ParamsError,
    UndoEncodingError,
    UndoMismatchError,
    ValidationError,
)
from chain.hashing import hash_to_display, sha256d
from chain.ledger.accounts import Account, Ledger, LedgerView, process_transfer
from chain.ledger.transaction import Transfer
from chain.params import ChainParams
from chain.pos.snapshot import compute_config_digest

MAGIC = b"CPBU"
VERSION = 1
HASH_SIZE_BYTES = 32
ADDRESS_SIZE_BYTES = 32

_HEAD = struct.Struct(f"<4sBI{HASH_SIZE_BYTES}s{HASH_SIZE_BYTES}sQI")
_ACCOUNT = struct.Struct("<QQ")
_U32 = struct.Struct("<I")


@dataclass(frozen=True, slots=True)
class AccountUndo:
    """One account a block touched: its value before (None: the block created it) and after."""

    address: bytes
    before: Account | None
    after: Account


@dataclass(frozen=True, slots=True)
class BlockUndo:
    """What taking block ``height`` back must restore; ``accounts`` ascend by address."""

    height: int
    block_hash: bytes
    parent_hash: bytes
    # Points the block's subsidy minted (Ledger.minted grew by this much).
    minted: int
    accounts: tuple[AccountUndo, ...]
    # The rules the block committed to for the blocks after it, if any.
    params_change: ChainParams | None = None
    # sha256 of the Merge schedule (ConsensusConfig) the block committed to, if any.
    consensus_change_digest: bytes | None = None

    def serialize(self) -> bytes:
        try:
            parts = [
                _HEAD.pack(
                    MAGIC, VERSION, self.height, _fixed(self.block_hash, "block hash"),
                    _fixed(self.parent_hash, "parent hash"), self.minted, len(self.accounts),
                )
            ]
            for entry in self.accounts:
                parts.append(_fixed(entry.address, "account address"))
                if entry.before is None:
                    parts.append(b"\x00")
                else:
                    parts.append(b"\x01" + _ACCOUNT.pack(entry.before.balance, entry.before.nonce))
                parts.append(_ACCOUNT.pack(entry.after.balance, entry.after.nonce))
            if self.params_change is None:
                parts.append(b"\x00")
            else:
                params = self.params_change.to_bytes()
                parts.append(b"\x01" + _U32.pack(len(params)) + params)
            if self.consensus_change_digest is None:
                parts.append(b"\x00")
            else:
                parts.append(b"\x01" + _fixed(self.consensus_change_digest, "Merge schedule digest"))
        except struct.error as exc:
            raise UndoEncodingError(
                f"undo record of block {self.height}: a number does not fit its field ({exc})"
            ) from exc
        body = b"".join(parts)
        return body + sha256d(body)

    @classmethod
    def deserialize(cls, data: bytes) -> BlockUndo:
        """The record ``serialize`` wrote, or ``UndoEncodingError`` for anything else."""
        if len(data) < _HEAD.size + HASH_SIZE_BYTES:
            raise UndoEncodingError(f"an undo record is at least {_HEAD.size + HASH_SIZE_BYTES} bytes, got {len(data)}")
        body, checksum = data[:-HASH_SIZE_BYTES], data[-HASH_SIZE_BYTES:]
        magic, version, height, block_hash, parent_hash, minted, count = _HEAD.unpack_from(body)
        if magic != MAGIC:
            raise UndoEncodingError(f"an undo record starts with {MAGIC!r}, got {magic!r}")
        if version != VERSION:
            raise UndoEncodingError(f"undo record version {version} is unknown (this code reads version {VERSION})")
        if sha256d(body) != checksum:
            raise UndoEncodingError("undo record checksum does not match: the record is corrupt")
        reader = _Reader(body, _HEAD.size)
        # Every account takes at least 49 bytes: a larger count is corruption, not a loop to run.
        if count * (ADDRESS_SIZE_BYTES + 1 + _ACCOUNT.size) > reader.left:
            raise UndoEncodingError(f"undo record lists {count} accounts but has only {reader.left} bytes left")
        accounts: list[AccountUndo] = []
        for _ in range(count):
            address = reader.take(ADDRESS_SIZE_BYTES)
            if accounts and address <= accounts[-1].address:
                raise UndoEncodingError("undo record accounts are not in strictly ascending address order")
            before = reader.account() if reader.flag("account existed") else None
            accounts.append(AccountUndo(address, before, reader.account()))
        params_change = None
        if reader.flag("parameter change"):
            (size,) = _U32.unpack(reader.take(_U32.size))
            params_change = _decode_params(reader.take(size))
        digest = reader.take(HASH_SIZE_BYTES) if reader.flag("Merge schedule") else None
        if reader.left:
            raise UndoEncodingError(f"undo record has {reader.left} unexpected bytes before its checksum")
        return cls(height, block_hash, parent_hash, minted, tuple(accounts), params_change, digest)


class _Reader:
    """Fixed-width fields of a record body, each read refusing to run past its end."""

    def __init__(self, data: bytes, offset: int) -> None:
        self._data = data
        self._offset = offset

    @property
    def left(self) -> int:
        return len(self._data) - self._offset

    def take(self, size: int) -> bytes:
        if size > self.left:
            raise UndoEncodingError(f"undo record is truncated: {size} bytes wanted, {self.left} left")
        value = self._data[self._offset : self._offset + size]
        self._offset += size
        return value

    def flag(self, what: str) -> bool:
        value = self.take(1)[0]
        if value not in (0, 1):
            raise UndoEncodingError(f"undo record flag for {what} is 0 or 1, got {value}")
        return value == 1

    def account(self) -> Account:
        balance, nonce = _ACCOUNT.unpack(self.take(_ACCOUNT.size))
        return Account(balance, nonce)


def _fixed(value: bytes, what: str) -> bytes:
    if len(value) != HASH_SIZE_BYTES:
        raise UndoEncodingError(f"{what} must be {HASH_SIZE_BYTES} bytes, got {len(value)}")
    return value


def _decode_params(raw: bytes) -> ChainParams:
    try:
        params = ChainParams.from_json(raw.decode())
    except (UnicodeDecodeError, ParamsError, TypeError) as exc:
        raise UndoEncodingError(f"undo record parameter change does not decode: {exc}") from exc
    if params.to_bytes() != raw:
        raise UndoEncodingError("undo record parameter change is not in its canonical form")
    return params


def compute_block_undo(ledger_before: Mapping[bytes, Account], effects: BlockEffects, parent_hash: bytes) -> BlockUndo:
    """The record that takes back the block of ``effects``, connected on top of ``ledger_before``
    (the ledger at its parent) whose hash is ``parent_hash``.  Call it before ``ChainState.apply``."""
    accounts = tuple(
        AccountUndo(address, ledger_before.get(address), after)
        for address, after in sorted(effects.accounts.items())
    )
    digest = compute_config_digest(effects.consensus_change) if effects.consensus_change is not None else None
    return BlockUndo(
        effects.height, effects.block_hash, _fixed(parent_hash, "parent hash"), effects.subsidy, accounts,
        effects.params_change, digest,
    )


def process_disconnect_block(ledger_after: Ledger, undo: BlockUndo, *, tip_hash: bytes | None = None) -> Ledger:
    """The ledger before the block of ``undo``, from ``ledger_after`` (the ledger with it as the tip):
    every touched account back to its value before, the accounts it created gone, the points it
    minted unminted.  ``ledger_after`` is not changed.

    Refuses (``UndoMismatchError``) when the ledger does not hold what the block left behind, and,
    given the current ``tip_hash``, (``DisconnectOrderError``) a record that is not the tip's: a
    block whose accounts no later block touched would otherwise come off the middle of the chain.
    """
    if tip_hash is not None and tip_hash != undo.block_hash:
        raise DisconnectOrderError(
            f"block {undo.height} ({hash_to_display(undo.block_hash)[:16]}…) is not the tip "
            f"({hash_to_display(tip_hash)[:16]}…): blocks come off the tip first"
        )
    for entry in undo.accounts:
        found = ledger_after.get(entry.address)
        if found != entry.after:
            raise UndoMismatchError(
                f"account {entry.address.hex()[:16]}… holds {_describe(found)}, but block {undo.height} "
                f"left it at {_describe(entry.after)}"
            )
    if ledger_after.minted < undo.minted:
        raise UndoMismatchError(
            f"the ledger has minted {ledger_after.minted} points, fewer than the {undo.minted} block "
            f"{undo.height} minted"
        )
    accounts = dict(ledger_after.items())
    for entry in undo.accounts:
        if entry.before is None:
            del accounts[entry.address]
        else:
            accounts[entry.address] = entry.before
    return Ledger(accounts, ledger_after.minted - undo.minted)


def process_disconnect_blocks(
    ledger_after: Ledger, tip_hash: bytes, undos: Sequence[BlockUndo]
) -> tuple[Ledger, bytes]:
    """Disconnect ``undos`` (tip first) one after another; returns the ledger and hash of the block
    they lead back to (the fork point).  Each record must be the tip's when its turn comes and one
    height below the one before (``DisconnectOrderError``)."""
    ledger = ledger_after
    for index, undo in enumerate(undos):
        if index and undo.height != undos[index - 1].height - 1:
            raise DisconnectOrderError(
                f"after block {undos[index - 1].height} comes block {undos[index - 1].height - 1}, not {undo.height}"
            )
        ledger = process_disconnect_block(ledger, undo, tip_hash=tip_hash)
        tip_hash = undo.parent_hash
    return ledger, tip_hash


@dataclass(frozen=True, slots=True)
class DroppedTransfer:
    """A transfer of a disconnected block that the new branch makes invalid, with the ledger's
    own error: ``code`` (``nonce_replay`` for a double spend of the same nonce,
    ``insufficient_balance``, ``nonce_gap`` after a dropped earlier nonce, ``unknown_account``...)."""

    tx: Transfer
    txid: bytes
    code: str
    reason: str


def compute_returned_transfers(
    disconnected_blocks: Iterable[Block],
    ledger_at_new_tip: Mapping[bytes, Account],
    chain_id: int,
    params: ChainParams,
    confirmed_txids: Collection[bytes] = frozenset(),
) -> tuple[tuple[Transfer, ...], tuple[DroppedTransfer, ...]]:
    """Split the transfers (never the coinbases) of ``disconnected_blocks`` into those still valid on
    top of ``ledger_at_new_tip`` (returned to the mempool, in block order, so nonce order per sender)
    and those the new branch made invalid (dropped, each with the reason).

    Each transfer is judged by the ledger's own rule, ``process_transfer`` under ``params`` (the
    rules for the new tip's next block), after the earlier returned transfers of its sender, as the
    mempool admits them.  Like the mempool, a sender's budget is its balance at the new tip: a
    credit from another returned, still unconfirmed transfer is not counted, so a transfer that
    spent such a credit is dropped (its sender can send it again once the credit confirms).
    Transfers whose txid is in ``confirmed_txids`` (the new branch confirms them too) are in
    neither list: they were not reversed.  The mempool may still refuse a returned transfer for its
    own limits (per-sender pending count, a full pool); the caller records that as a drop.
    """
    returned: list[Transfer] = []
    dropped: list[DroppedTransfer] = []
    # The returned transfers' senders after them; only senders, since recipients' credits are pending.
    spent: dict[bytes, Account] = {}
    view = LedgerView(spent, ledger_at_new_tip)
    for block in sorted(disconnected_blocks, key=lambda b: b.height):
        for tx in block.transfers:
            txid = tx.txid()
            if txid in confirmed_txids:
                continue
            try:
                after = process_transfer(view, tx, chain_id, params)
            except ValidationError as exc:
                dropped.append(DroppedTransfer(tx, txid, exc.code, str(exc)))
                continue
            spent[tx.sender] = after[tx.sender]
            returned.append(tx)
    return tuple(returned), tuple(dropped)


def _describe(account: Account | None) -> str:
    if account is None:
        return "nothing (no such account)"
    return f"balance {account.balance}, nonce {account.nonce}"
