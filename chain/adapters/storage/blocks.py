"""Blocks and what they did: the ``blocks``, ``accounts``, ``transactions``, ``stake_history`` and
``epoch_participation`` tables."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

from chain.adapters.storage.database import Database, Reader, Transaction
from chain.adapters.storage.records import StoredStakeEntry, StoredTransaction
from chain.consensus.block import Block
from chain.consensus.stake_chart_data import EpochRecord, compute_epoch_records
from chain.consensus.state import BlockEffects
from chain.consensus.undo import BlockUndo
from chain.errors import (
    BlockNotFoundError,
    ChainNotFoundError,
    EncodingError,
    StaleBlockError,
    UndoMismatchError,
)
from chain.events import ChainEvent, StakeDeposited, StakeWithdrawn, ValidatorSlashed, decode_event
from chain.ledger.accounts import Account
from chain.pow.header import HEADER_SIZE_BYTES, BlockHeader


def stake_history_wallet(event: ChainEvent) -> bytes | None:
    """The wallet a ``stake_history`` row of ``event`` belongs to; None for an event not recorded there."""
    match event:
        case StakeDeposited(wallet=wallet) | ValidatorSlashed(wallet=wallet):
            return wallet
        case StakeWithdrawn(address=address):
            return address
    return None


# Bound parameters per statement, well under SQLite's smallest default limit (999).
_MAX_BOUND_PARAMETERS = 500

_TRANSACTION_COLUMNS = "chain_id, txid, height, position, sender, recipient, amount, fee"


def display_prefix_range(prefix: str) -> tuple[bytes, bytes | None]:
    """The display-order hashes that start with the hex ``prefix``: ``low <= h < high`` (no ``high``
    when every hash from ``low`` on matches).  An odd digit count covers the last byte's half."""
    digits = prefix.lower()
    if not digits or any(c not in "0123456789abcdef" for c in digits):
        raise ValueError(f"a hash prefix is hex digits, got {prefix!r}")
    low = bytes.fromhex(digits + "0" * (len(digits) % 2))
    value = int(digits, 16) + 1
    if value >> (4 * len(digits)):
        return low, None  # the prefix was all f: nothing above it
    high = bytes.fromhex(format(value, f"0{len(digits)}x") + "0" * (len(digits) % 2))
    return low, high


class BlockRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- writes -------------------------------------------------------------------

    async def insert_genesis(
        self, tx: Transaction, chain_id: int, genesis: Block, accounts: dict[bytes, Account] | None
    ) -> None:
        await tx.execute(
            "INSERT INTO blocks (chain_id, height, hash, display_hash, miner, time, raw) "
            "VALUES (?, 0, ?, ?, ?, ?, ?)",
            (chain_id, genesis.hash(), genesis.hash()[::-1], genesis.coinbase.miner, genesis.header.time,
             genesis.serialize()),
        )
        # Genesis allocations (a pos chain mints nothing by mining).
        await tx.executemany(
            "INSERT INTO accounts (chain_id, pubkey, balance, nonce) VALUES (?, ?, ?, ?)",
            [(chain_id, key, acc.balance, acc.nonce) for key, acc in (accounts or {}).items()],
        )

    async def check_extends_tip(self, tx: Transaction, chain_id: int, block: Block, height: int) -> None:
        """Refuse unless the stored tip is ``block``'s parent at ``height - 1`` (read under the write lock)."""
        row = await tx.fetchone(
            "SELECT height, hash FROM blocks WHERE chain_id = ? ORDER BY height DESC LIMIT 1", (chain_id,)
        )
        if row is None:
            raise ChainNotFoundError(f"there is no chain {chain_id}")
        if row[0] != height - 1 or row[1] != block.header.prev_hash:
            raise StaleBlockError(f"stored tip is block {row[0]}; block {height} does not extend it")

    async def insert(self, tx: Transaction, chain_id: int, block: Block, effects: BlockEffects) -> None:
        """The block, the balances it changed, its transactions' index and its staking history rows."""
        height = effects.height
        await tx.execute(
            "INSERT INTO blocks (chain_id, height, hash, display_hash, miner, time, raw) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (chain_id, height, effects.block_hash, effects.block_hash[::-1], block.coinbase.miner,
             block.header.time, block.serialize()),
        )
        await tx.executemany(
            "INSERT INTO accounts (chain_id, pubkey, balance, nonce) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (chain_id, pubkey) DO UPDATE SET balance = excluded.balance, nonce = excluded.nonce",
            [(chain_id, key, acc.balance, acc.nonce) for key, acc in effects.accounts.items()],
        )
        txids = block.txids()
        rows: list[tuple[Any, ...]] = [
            (chain_id, txids[0], txids[0][::-1], height, 0, None, block.coinbase.miner, block.coinbase.amount, 0)
        ]
        rows += [
            (chain_id, txids[i + 1], txids[i + 1][::-1], height, i + 1, t.sender, t.recipient, t.amount, t.fee)
            for i, t in enumerate(block.transfers)
        ]
        await tx.executemany(
            "INSERT INTO transactions (chain_id, txid, display_txid, height, position, sender, recipient, "
            "amount, fee) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        await tx.executemany(
            "INSERT INTO stake_history (chain_id, height, seq, wallet, kind, payload) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (chain_id, height, seq, wallet, e.kind, e.payload_json())
                for seq, e in enumerate(effects.events)
                if (wallet := stake_history_wallet(e)) is not None
            ],
        )
        # Upsert, not insert: a row the chart keeps must never be the reason a valid block is refused.
        await tx.executemany(
            "INSERT INTO epoch_participation (chain_id, epoch, height, active_units, attesting_units, "
            "finality_delay, in_leak, justified_epoch, finalized_epoch) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (chain_id, epoch) DO UPDATE SET height = excluded.height, "
            "active_units = excluded.active_units, attesting_units = excluded.attesting_units, "
            "finality_delay = excluded.finality_delay, in_leak = excluded.in_leak, "
            "justified_epoch = excluded.justified_epoch, finalized_epoch = excluded.finalized_epoch",
            [
                (chain_id, r.epoch, height, r.active_units, r.attesting_units, r.finality_delay, int(r.in_leak),
                 r.justified_epoch, r.finalized_epoch)
                for r in compute_epoch_records(effects.events)
            ],
        )

    async def accounts_of(self, tx: Transaction, chain_id: int, addresses: Iterable[bytes]) -> dict[bytes, Account]:
        """The stored accounts among ``addresses`` (read under the write lock, for a block's undo record)."""
        wanted = sorted(set(addresses))
        found: dict[bytes, Account] = {}
        for first in range(0, len(wanted), _MAX_BOUND_PARAMETERS):
            batch = wanted[first:first + _MAX_BOUND_PARAMETERS]
            rows = await tx.fetchall(
                f"SELECT pubkey, balance, nonce FROM accounts WHERE chain_id = ? AND pubkey IN "
                f"({', '.join('?' * len(batch))})",
                (chain_id, *batch),
            )
            found.update((bytes(r[0]), Account(r[1], r[2])) for r in rows)
        return found

    async def tip(self, tx: Transaction, chain_id: int) -> tuple[int, bytes]:
        """(height, hash) of the main chain's tip, read under the write lock."""
        row = await tx.fetchone(
            "SELECT height, hash FROM blocks WHERE chain_id = ? ORDER BY height DESC LIMIT 1", (chain_id,)
        )
        if row is None:
            raise ChainNotFoundError(f"there is no chain {chain_id}")
        return int(row[0]), bytes(row[1])

    async def disconnect_tip(self, tx: Transaction, chain_id: int, undo: BlockUndo) -> bytes:
        """Take the tip block ``undo`` describes off the main chain: its accounts back to their values
        before it (``UndoMismatchError`` if they do not hold what it left), its ``blocks``,
        ``transactions``, ``stake_history`` and ``epoch_participation`` rows deleted.  Returns the block's bytes."""
        found = await self.accounts_of(tx, chain_id, (entry.address for entry in undo.accounts))
        for entry in undo.accounts:
            if found.get(entry.address) != entry.after:
                raise UndoMismatchError(
                    f"account {entry.address.hex()[:16]}… of chain {chain_id} does not hold what block "
                    f"{undo.height} left it with: the stored accounts and the undo record disagree"
                )
        await tx.executemany(
            "DELETE FROM accounts WHERE chain_id = ? AND pubkey = ?",
            [(chain_id, e.address) for e in undo.accounts if e.before is None],
        )
        await tx.executemany(
            "UPDATE accounts SET balance = ?, nonce = ? WHERE chain_id = ? AND pubkey = ?",
            [(e.before.balance, e.before.nonce, chain_id, e.address) for e in undo.accounts if e.before is not None],
        )
        row = await tx.fetchone(
            "SELECT raw FROM blocks WHERE chain_id = ? AND height = ? AND hash = ?",
            (chain_id, undo.height, undo.block_hash),
        )
        if row is None:
            raise BlockNotFoundError(f"chain {chain_id} has no block {undo.height} with the undo record's hash")
        for table in ("blocks", "transactions", "stake_history", "epoch_participation"):
            await tx.execute(f"DELETE FROM {table} WHERE chain_id = ? AND height = ?", (chain_id, undo.height))
        return bytes(row[0])

    # --- blocks -------------------------------------------------------------------

    async def tip_height(self, chain_id: int, *, within: Reader | None = None) -> int:
        row = await (within or self._db).fetchone("SELECT MAX(height) FROM blocks WHERE chain_id = ?", (chain_id,))
        if row[0] is None:
            raise ChainNotFoundError(f"there is no chain {chain_id}")
        return int(row[0])

    async def latest_block_time(self, chain_id: int) -> int:
        """The latest time any stored block of the chain carries."""
        row = await self._db.fetchone("SELECT MAX(time) FROM blocks WHERE chain_id = ?", (chain_id,))
        if row[0] is None:
            raise ChainNotFoundError(f"there is no chain {chain_id}")
        return int(row[0])

    async def block_at(self, chain_id: int, height: int, *, within: Reader | None = None) -> Block:
        row = await (within or self._db).fetchone(
            "SELECT raw FROM blocks WHERE chain_id = ? AND height = ?", (chain_id, height)
        )
        if row is None:
            raise BlockNotFoundError(f"chain {chain_id} has no block {height}")
        return Block.deserialize(bytes(row[0]))

    async def get_block(self, chain_id: int, *, height: int | None = None, block_hash: bytes | None = None) -> Block:
        arg: int | bytes
        if height is not None:
            query, arg = "SELECT raw FROM blocks WHERE chain_id = ? AND height = ?", height
        elif block_hash is not None:
            query, arg = "SELECT raw FROM blocks WHERE chain_id = ? AND hash = ?", block_hash
        else:
            raise ValueError("give a height or a hash")
        row = await self._db.fetchone(query, (chain_id, arg))
        if row is None:
            raise BlockNotFoundError("no such block in this chain")
        return Block.deserialize(row[0])

    async def iter_blocks(self, chain_id: int, start: int = 0, stop: int | None = None) -> AsyncIterator[Block]:
        """Blocks ``start..stop - 1`` (to the tip without ``stop``), oldest first."""
        if stop is None:
            rows = self._db.rows(
                "SELECT raw FROM blocks WHERE chain_id = ? AND height >= ? ORDER BY height", (chain_id, start)
            )
        else:
            rows = self._db.rows(
                "SELECT raw FROM blocks WHERE chain_id = ? AND height >= ? AND height < ? ORDER BY height",
                (chain_id, start, stop),
            )
        async for row in rows:
            yield Block.deserialize(row[0])

    async def headers_between(
        self, chain_id: int, start: int, stop: int, *, within: Reader | None = None
    ) -> list[tuple[BlockHeader, bytes]]:
        """(header, hash) of blocks ``start..stop - 1``, oldest first (every one must exist)."""
        # The header is the first 80 bytes of a stored block: read those, not the transfers.
        rows = await (within or self._db).fetchall(
            "SELECT height, hash, substr(raw, 1, ?) FROM blocks WHERE chain_id = ? AND height >= ? "
            "AND height < ? ORDER BY height",
            (HEADER_SIZE_BYTES, chain_id, start, stop),
        )
        if len(rows) != max(0, stop - start):
            raise BlockNotFoundError(f"chain {chain_id} is missing blocks between {start} and {stop - 1}")
        headers = []
        for height, block_hash, raw in rows:
            header = BlockHeader.deserialize(bytes(raw))
            if header.hash() != block_hash:
                raise EncodingError(f"stored block {height} of chain {chain_id} does not match its hash")
            headers.append((header, bytes(block_hash)))
        return headers

    async def headers_at(self, chain_id: int, heights: Iterable[int]) -> dict[int, BlockHeader]:
        """The headers of the blocks at ``heights`` that exist."""
        wanted = sorted(set(heights))
        found: dict[int, BlockHeader] = {}
        for first in range(0, len(wanted), _MAX_BOUND_PARAMETERS):
            batch = wanted[first:first + _MAX_BOUND_PARAMETERS]
            rows = await self._db.fetchall(
                f"SELECT height, substr(raw, 1, ?) FROM blocks WHERE chain_id = ? AND height IN "
                f"({', '.join('?' * len(batch))})",
                (HEADER_SIZE_BYTES, chain_id, *batch),
            )
            found.update((r[0], BlockHeader.deserialize(bytes(r[1]))) for r in rows)
        return found

    async def block_hashes(self, chain_id: int, heights: Iterable[int]) -> dict[int, bytes]:
        """Height -> hash of the blocks at ``heights`` that exist."""
        wanted = sorted(set(heights))
        found: dict[int, bytes] = {}
        for first in range(0, len(wanted), _MAX_BOUND_PARAMETERS):
            batch = wanted[first:first + _MAX_BOUND_PARAMETERS]
            rows = await self._db.fetchall(
                f"SELECT height, hash FROM blocks WHERE chain_id = ? AND height IN ({', '.join('?' * len(batch))})",
                (chain_id, *batch),
            )
            found.update((r[0], bytes(r[1])) for r in rows)
        return found

    async def find_blocks_by_hash_prefix(
        self, chain_id: int, prefix: str, limit: int
    ) -> tuple[int, list[tuple[int, bytes]]]:
        """Blocks whose hash, as shown (``hash_to_display``), starts with the hex ``prefix``:
        how many there are, and up to ``limit`` of them as (height, hash), newest first.

        A range of the display-order hash column: the index finds it without reading the chain.
        """
        low, high = display_prefix_range(prefix)
        where = "chain_id = ? AND display_hash >= ?" + (" AND display_hash < ?" if high is not None else "")
        args: tuple[Any, ...] = (chain_id, low) if high is None else (chain_id, low, high)
        row = await self._db.fetchone(f"SELECT COUNT(*) FROM blocks WHERE {where}", args)
        rows = await self._db.fetchall(
            f"SELECT height, hash FROM blocks WHERE {where} ORDER BY height DESC LIMIT ?", (*args, limit)
        )
        return int(row[0]), [(r[0], bytes(r[1])) for r in rows]

    async def blocks_mined(self, chain_id: int, *, within: Reader | None = None) -> dict[bytes, int]:
        """How many blocks each miner (or fee recipient) got, genesis left out: one pass over an index."""
        rows = await (within or self._db).fetchall(
            "SELECT miner, COUNT(*) FROM blocks WHERE chain_id = ? AND height > 0 GROUP BY miner", (chain_id,)
        )
        return {r[0]: r[1] for r in rows}

    # --- balances -------------------------------------------------------------------

    async def accounts(self, chain_id: int, *, within: Reader | None = None) -> dict[bytes, Account]:
        rows = await (within or self._db).fetchall(
            "SELECT pubkey, balance, nonce FROM accounts WHERE chain_id = ?", (chain_id,)
        )
        return {r[0]: Account(r[1], r[2]) for r in rows}

    # --- transactions -----------------------------------------------------------------

    async def get_transaction(self, chain_id: int, txid: bytes) -> StoredTransaction | None:
        row = await self._db.fetchone(
            f"SELECT {_TRANSACTION_COLUMNS} FROM transactions WHERE chain_id = ? AND txid = ?", (chain_id, txid)
        )
        return StoredTransaction(*row) if row else None

    async def find_transactions_by_txid_prefix(
        self, chain_id: int, prefix: str, limit: int
    ) -> tuple[int, list[StoredTransaction]]:
        """Confirmed transactions whose id, as shown (``hash_to_display``), starts with the hex
        ``prefix``: how many there are, and up to ``limit`` of them, newest first (an index range)."""
        low, high = display_prefix_range(prefix)
        where = "chain_id = ? AND display_txid >= ?" + (" AND display_txid < ?" if high is not None else "")
        args: tuple[Any, ...] = (chain_id, low) if high is None else (chain_id, low, high)
        row = await self._db.fetchone(f"SELECT COUNT(*) FROM transactions WHERE {where}", args)
        rows = await self._db.fetchall(
            f"SELECT {_TRANSACTION_COLUMNS} FROM transactions "
            f"WHERE {where} ORDER BY height DESC, position DESC LIMIT ?",
            (*args, limit),
        )
        return int(row[0]), [StoredTransaction(*r) for r in rows]

    async def recent_transactions(self, chain_id: int, limit: int) -> list[StoredTransaction]:
        """The chain's newest confirmed transactions, newest first; coinbases that paid nothing (a
        proof-of-stake block's) are left out, as in ``history``."""
        rows = await self._db.fetchall(
            f"SELECT {_TRANSACTION_COLUMNS} FROM transactions "
            "WHERE chain_id = ? AND NOT (sender IS NULL AND amount = 0) "
            "ORDER BY height DESC, position DESC LIMIT ?",
            (chain_id, limit),
        )
        return [StoredTransaction(*r) for r in rows]

    async def history(self, chain_id: int, pubkey: bytes, limit: int) -> list[StoredTransaction]:
        """A wallet's newest transactions; coinbases that paid nothing (a proposed block without
        fees) are left out, so they cannot push real payments out of the last ``limit``."""
        rows = await self._db.fetchall(
            f"SELECT {_TRANSACTION_COLUMNS} FROM transactions "
            "WHERE chain_id = ? AND (sender = ? OR recipient = ?) AND (sender IS NOT NULL OR amount > 0) "
            "ORDER BY height DESC, position DESC LIMIT ?",
            (chain_id, pubkey, pubkey, limit),
        )
        return [StoredTransaction(*r) for r in rows]

    async def stake_history(self, chain_id: int, wallet: bytes, limit: int) -> list[StoredStakeEntry]:
        """What staking did to ``wallet``, newest first: deposits, stake paid back, slashing penalties."""
        rows = await self._db.fetchall(
            "SELECT height, seq, kind, payload FROM stake_history WHERE chain_id = ? AND wallet = ? "
            "ORDER BY height DESC, seq DESC LIMIT ?",
            (chain_id, wallet, limit),
        )
        return [StoredStakeEntry(r[0], r[1], decode_event(r[2], r[3])) for r in rows]

    # --- epochs -------------------------------------------------------------------------

    async def epoch_records(self, chain_id: int, last: int) -> list[EpochRecord]:
        """What the ends of the chain's last ``last`` recorded epochs recorded, oldest first."""
        rows = await self._db.fetchall(
            "SELECT epoch, active_units, attesting_units, finality_delay, in_leak, justified_epoch, finalized_epoch "
            "FROM epoch_participation WHERE chain_id = ? ORDER BY epoch DESC LIMIT ?",
            (chain_id, last),
        )
        return [EpochRecord(r[0], r[1], r[2], r[3], bool(r[4]), r[5], r[6]) for r in reversed(rows)]

    async def raw_blocks_between(self, chain_id: int, start: int, stop: int) -> list[bytes]:
        """The stored bytes of blocks ``start..stop - 1``, oldest first (to parse off the event loop:
        a proof-of-stake block's proposer sits after its transfers, where SQL cannot pick it out)."""
        rows = await self._db.fetchall(
            "SELECT raw FROM blocks WHERE chain_id = ? AND height >= ? AND height < ? ORDER BY height",
            (chain_id, start, stop),
        )
        return [bytes(r[0]) for r in rows]
