"""The aggregate: one database, its repositories, and the writes that span several of them.

Every write that touches more than one repository commits in ONE transaction opened
here (``async with self.db.transaction(chain_id) as tx``), with each repository
writing through ``tx``.  Nothing else of the project opens a transaction across
repositories.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from chain.adapters.storage import protocols
from chain.adapters.storage.block_tree import BlockTreeRepository
from chain.adapters.storage.blocks import BlockRepository
from chain.adapters.storage.chains import ChainRepository
from chain.adapters.storage.chaos_mode import ChaosModeRepository
from chain.adapters.storage.database import Database, Transaction
from chain.adapters.storage.energy import EnergyRepository
from chain.adapters.storage.keys import KeyCheckRepository, KeyStore
from chain.adapters.storage.mempool import MempoolRepository
from chain.adapters.storage.operations import OperationRepository
from chain.adapters.storage.outbox import OutboxTableWriter, OutboxWriter
from chain.adapters.storage.protection import ProtectionRepository
from chain.adapters.storage.records import ReorgRecord, StoredChain, StoredChainHead, StoredKey, StoredTreeEntry
from chain.adapters.storage.reorg_log import ReorgLogRepository
from chain.adapters.storage.snapshots import SnapshotRepository
from chain.adapters.storage.validators import ValidatorSettingsRepository
from chain.consensus.block import Block
from chain.consensus.state import BlockEffects, compute_history_blocks
from chain.consensus.undo import BlockUndo, compute_block_undo
from chain.errors import ReorgTipMismatchError, StaleBlockError, UndoRecordMissingError
from chain.events import ChainEvent
from chain.hashing import hash_to_display
from chain.ledger.accounts import Account
from chain.ledger.mempool import PendingTransfer
from chain.params import ChainParams
from chain.pos.beacon import ConsensusConfig
from chain.pos.op_pool import PooledOperation
from chain.pos.slashing_protection import SlashingProtectionRecord


class Store:
    """One database and its repositories; open with ``await Store.open(path)``."""

    def __init__(self, db: Database, *, outbox: OutboxWriter | None = None) -> None:
        self.db = db
        self.chains: protocols.Chains = ChainRepository(db)
        self.blocks: protocols.Blocks = BlockRepository(db)
        self.tree: protocols.BlockTreeRows = BlockTreeRepository(db)
        self.mempool: protocols.Mempool = MempoolRepository(db)
        self.operations: protocols.Operations = OperationRepository(db)
        self.snapshots: protocols.Snapshots = SnapshotRepository(db)
        # One key store, two tables: wallet keys and validator keys are stored alike.
        self.wallets: protocols.Keys = KeyStore(db, "wallets")
        self.validator_keys: protocols.Keys = KeyStore(db, "validator_keys")
        self.key_checks: protocols.KeyChecks = KeyCheckRepository(db)
        self.protection: protocols.Protection = ProtectionRepository(db)
        self.validator_settings: protocols.ValidatorSettings = ValidatorSettingsRepository(db)
        self.energy: protocols.Energy = EnergyRepository(db)
        # Reorgs and finality's refusals, logged with them (what /learn's reorg lessons read).
        self.reorg_log: protocols.ReorgLog = ReorgLogRepository(db)
        # The engine's part of the server_settings table: chaos mode only (the other keys, and the
        # epoch message, are the bot's: bot/storage.py).  Named for the table it reads.
        self.chaos_mode: protocols.ChaosMode = ChaosModeRepository(db)
        self.outbox_writer: OutboxWriter = outbox or OutboxTableWriter()

    @classmethod
    async def open(cls, path: str | Path, *, outbox: OutboxWriter | None = None) -> Store:
        """``outbox``: writes the engine's events (the bot wraps the SQLite writer to feed its dashboard)."""
        return cls(await Database.open(path), outbox=outbox)

    async def close(self) -> None:
        await self.db.close()

    # --- chains ---------------------------------------------------------------

    async def _insert_chain(
        self, tx: Transaction, chain_id: int, params: ChainParams, genesis: Block, now: int,
        beacon_snapshot: bytes | None, consensus: ConsensusConfig | None, accounts: dict[bytes, Account] | None,
    ) -> None:
        await self.chains.insert(tx, chain_id, params, genesis.hash(), now, consensus)
        await self.blocks.insert_genesis(tx, chain_id, genesis, accounts)
        await self.tree.insert_genesis(tx, chain_id, genesis)
        if beacon_snapshot is not None:
            await self.snapshots.insert(tx, chain_id, 0, beacon_snapshot)

    async def create_chain(
        self,
        chain_id: int,
        params: ChainParams,
        genesis: Block,
        now: int,
        *,
        beacon_snapshot: bytes | None = None,
        consensus: ConsensusConfig | None = None,
        accounts: dict[bytes, Account] | None = None,
    ) -> None:
        """Create a chain with its genesis block (and, if given, the proof-of-stake state at genesis)."""
        async with self.db.transaction(chain_id) as tx:
            await self._insert_chain(tx, chain_id, params, genesis, now, beacon_snapshot, consensus, accounts)

    async def replace_chain(
        self,
        chain_id: int,
        params: ChainParams,
        genesis: Block,
        now: int,
        *,
        consensus: ConsensusConfig | None = None,
        accounts: dict[bytes, Account] | None = None,
        validator_keys: Sequence[StoredKey] = (),
        auto_attest: Sequence[str] = (),
    ) -> None:
        """A reset or a mode switch: delete the chain and create its successor in ONE transaction.

        Nothing can see (or create) a missing chain in between, and a crash leaves
        either the old chain or the new one.  ``validator_keys`` (new keys for the
        new chain's genesis validators) and their owners' auto-attest (``auto_attest``) are
        stored in the same transaction; the old chain's undelivered announcements are dropped.
        """
        async with self.db.transaction(chain_id) as tx:
            await self._delete_chain(tx, chain_id)
            # Announcements of the old chain not delivered yet would tell of blocks that no longer
            # exist (say, to a channel set up after the reset): they go with it.
            await self.outbox_writer.drop_undelivered(tx, chain_id)
            await self._insert_chain(tx, chain_id, params, genesis, now, None, consensus, accounts)
            await self.validator_keys.insert_new(tx, chain_id, list(validator_keys), now)
            await self.validator_settings.insert_auto_attesters(tx, chain_id, auto_attest)

    async def delete_chain(self, chain_id: int) -> None:
        """Remove a chain and everything of it except wallets, server settings and undelivered events.

        Validator keys, their slashing protection records and validator settings
        go too: a vote's signing root names the chain id, not the genesis, so a
        key that outlived a reset could have an old vote paired with a new one as
        evidence, or (with its record kept) be refused honest votes on the new
        chain until it passed the old epochs.  A new chain gets new keys.
        """
        async with self.db.transaction(chain_id) as tx:
            await self._delete_chain(tx, chain_id)

    async def _delete_chain(self, tx: Transaction, chain_id: int) -> None:
        await self.chains.delete(tx, chain_id)
        await self.energy.delete(tx, chain_id)
        await self.validator_keys.delete_all(tx, chain_id)
        await self.protection.delete_all(tx, chain_id)
        await self.validator_settings.delete_all(tx, chain_id)

    async def load_chain(self, chain_id: int) -> StoredChain:
        """The whole chain, every block included (tests and benchmarks; startup reads ``load_chain_head``)."""
        params, consensus, changes, proposed, schedules, proposed_consensus = await self.chains.rules(chain_id)
        blocks = [b async for b in self.blocks.iter_blocks(chain_id)]
        return StoredChain(
            chain_id, params, blocks, await self.blocks.accounts(chain_id), await self.mempool.entries(chain_id),
            changes, proposed, consensus, schedules, proposed_consensus, await self.operations.entries(chain_id),
        )

    async def load_chain_head(self, chain_id: int) -> StoredChainHead:
        """Everything startup needs of a chain, read in one transaction (one instant of the chain):
        current tables, the genesis and tip blocks, the recent headers, the newest beacon snapshot
        and the blocks mined per miner.  Reads a bounded number of blocks whatever the chain's length."""
        async with self.db.read_transaction(chain_id) as r:
            params, consensus, changes, proposed, schedules, proposed_consensus = await self.chains.rules(
                chain_id, within=r
            )
            tip_height = await self.blocks.tip_height(chain_id, within=r)
            genesis = await self.blocks.block_at(chain_id, 0, within=r)
            tip_block = genesis if tip_height == 0 else await self.blocks.block_at(chain_id, tip_height, within=r)
            count = compute_history_blocks(params, proposed, *(p for _, p in changes))
            recent = await self.blocks.headers_between(
                chain_id, max(1, tip_height - count + 1), tip_height + 1, within=r
            )
            return StoredChainHead(
                chain_id, params, genesis, tip_height, tip_block, recent,
                await self.blocks.accounts(chain_id, within=r), await self.mempool.entries(chain_id, within=r),
                changes, proposed, consensus, schedules, proposed_consensus,
                await self.operations.entries(chain_id, within=r), await self.snapshots.latest(chain_id, within=r),
                await self.blocks.blocks_mined(chain_id, within=r),
            )

    # --- blocks ---------------------------------------------------------------

    async def append_block(
        self,
        chain_id: int,
        block: Block,
        effects: BlockEffects,
        removed_from_mempool: Sequence[bytes],
        now: int,
        *,
        beacon_snapshot: bytes | None = None,
        included_operations: Sequence[bytes] = (),
    ) -> list[int]:
        """Block, balances, index, mempool clean-up, events and beacon snapshot: one transaction.

        Returns the outbox ids of the events.  Refuses if the stored tip is not
        the block's parent, so two writers can never both extend one tip.
        ``beacon_snapshot``, when given, is the proof-of-stake state after this
        block (opaque bytes); it commits with the block or not at all, and the
        chain's older snapshots are deleted in the same commit.
        """
        async with self.db.transaction(chain_id) as tx:
            await self._connect_block(tx, chain_id, block, effects)
            await self.mempool.remove(chain_id, removed_from_mempool, tx=tx)
            await self.operations.remove(chain_id, included_operations, tx=tx)
            if beacon_snapshot is not None:
                await self.snapshots.insert(tx, chain_id, effects.height, beacon_snapshot, only=True)
            return await self.outbox_writer.insert_events(tx, chain_id, effects.events, now)

    async def _connect_block(self, tx: Transaction, chain_id: int, block: Block, effects: BlockEffects) -> None:
        """The one path by which a block joins the main chain (appended, or connected by a reorg).

        Refuses unless the stored tip is its parent; writes the block, the balances it changed, its
        transactions' index and staking history, the rules it committed to, and its tree row with the
        undo record, computed here from the stored accounts it is about to change (so every block
        appended since migration 13 can be disconnected, whoever computed its effects).
        """
        await self.blocks.check_extends_tip(tx, chain_id, block, effects.height)
        before = await self.blocks.accounts_of(tx, chain_id, effects.accounts)
        undo = compute_block_undo(before, effects, block.header.prev_hash)
        await self.blocks.insert(tx, chain_id, block, effects)
        await self.tree.insert_main(tx, chain_id, block, effects.height, undo)
        await self.chains.commit_changes(tx, chain_id, effects.height, effects.params_change,
                                         effects.consensus_change)

    # --- the block tree ---------------------------------------------------------

    async def store_side_block(
        self, chain_id: int, block: Block, undo: BlockUndo, events: Sequence[ChainEvent] = (), now: int = 0,
        *, log: ReorgRecord | None = None,
    ) -> StoredTreeEntry:
        """Keep a valid block off the main chain: its tree row, bytes and undo record (computed by
        the caller against its own branch's state), and ``events`` (e.g. a heavier branch refused by
        finality) in the outbox, in one transaction; the main chain, accounts and index are untouched.
        Refuses a block whose parent is not stored (``UnknownParentError``), one already stored
        (``DuplicateBlockError``) and an undo record of another block (``SideBlockUndoError``).
        ``log``: the refusal to log in ``reorg_log`` with it (a heavier branch finality refused)."""
        async with self.db.transaction(chain_id) as tx:
            entry = await self.tree.insert_side(tx, chain_id, block, undo)
            await self.outbox_writer.insert_events(tx, chain_id, events, now)
            if log is not None:
                await self.reorg_log.add(tx, chain_id, log, now)
            return entry

    async def reorganize(
        self,
        chain_id: int,
        disconnect: Sequence[bytes],
        connect: Sequence[tuple[Block, BlockEffects]],
        events: Sequence[ChainEvent],
        now: int,
        *,
        removed_from_mempool: Sequence[bytes] = (),
        returned_to_mempool: Sequence[PendingTransfer] = (),
        included_operations: Sequence[bytes] = (),
        beacon_snapshot: bytes | None = None,
        log: ReorgRecord | None = None,
    ) -> list[int]:
        """Switch the main chain to another branch: ONE transaction, so a crash leaves the old branch
        or the new one, never a mix.  Returns the outbox ids of the events written.

        ``disconnect``: the hashes of the main chain's blocks to take off, newest first (the stored
        tip first: ``ReorgTipMismatchError`` otherwise, e.g. when another writer moved the tip).
        Each one's accounts go back to the values its undo record says (``UndoRecordMissingError``
        for a block without one: a reorg cannot go below it; ``UndoMismatchError`` when the stored
        accounts are not what it left), its ``transactions``, ``stake_history`` and ``epoch_participation``
        rows and the rules it committed to are deleted, its beacon snapshot too, and it stays in the tree
        as a side block.

        ``connect``: the new branch oldest first, each block with its effects computed on top of the
        one before (the first on the fork point); each joins the main chain through the same code as
        ``append_block``.  Then the mempool loses ``removed_from_mempool`` (transfers the new branch
        confirmed) and gains ``returned_to_mempool`` (transfers of disconnected blocks still valid),
        the op pool loses ``included_operations``, ``beacon_snapshot`` becomes the only snapshot (the
        state after the new tip), and the outbox gets ``events`` (the reorg's own) followed by each
        connected block's events, in order; ``log`` (the reorg, who took part) goes in ``reorg_log``.
        """
        async with self.db.transaction(chain_id) as tx:
            for expected in disconnect:
                height, tip_hash = await self.blocks.tip(tx, chain_id)
                if tip_hash != expected:
                    raise ReorgTipMismatchError(
                        f"the reorg would disconnect block {hash_to_display(expected)[:16]}, but chain {chain_id}'s "
                        f"stored tip is block {height} ({hash_to_display(tip_hash)[:16]})"
                    )
                undo = await self.tree.undo_record(chain_id, tip_hash, within=tx)
                if undo is None:
                    raise UndoRecordMissingError(
                        f"block {height} of chain {chain_id} has no undo record (the genesis block, or stored "
                        f"before undo records were kept): a reorg cannot go below it",
                        height=height,
                    )
                raw = await self.blocks.disconnect_tip(tx, chain_id, undo)
                await self.tree.move_off_main(tx, chain_id, tip_hash, raw)
                await self.chains.uncommit_changes(tx, chain_id, height)
                await self.snapshots.delete_from(tx, chain_id, height)
            for block, effects in connect:
                await self._connect_block(tx, chain_id, block, effects)
            await self.mempool.remove(chain_id, removed_from_mempool, tx=tx)
            await self.mempool.restore(tx, chain_id, returned_to_mempool)
            await self.operations.remove(chain_id, included_operations, tx=tx)
            if beacon_snapshot is not None and connect:
                await self.snapshots.insert(tx, chain_id, connect[-1][1].height, beacon_snapshot, only=True)
            ids = await self.outbox_writer.insert_events(tx, chain_id, events, now)
            for _, effects in connect:
                ids += await self.outbox_writer.insert_events(tx, chain_id, effects.events, now)
            if log is not None:
                await self.reorg_log.add(tx, chain_id, log, now)
            return ids

    async def write_events(self, chain_id: int, events: Sequence[ChainEvent], now: int) -> list[int]:
        """Events that no block or reorg carries (a branch the fork choice refused for finality), in one
        transaction of their own; their outbox ids."""
        async with self.db.transaction(chain_id) as tx:
            return await self.outbox_writer.insert_events(tx, chain_id, events, now)

    async def replace_beacon_snapshot(self, chain_id: int, height: int, blob: bytes) -> None:
        """Store the snapshot of block ``height`` as the chain's only one, if that block is still the tip
        (written after a replay rebuilt a state that had none)."""
        async with self.db.transaction(chain_id) as tx:
            if await self.blocks.tip_height(chain_id, within=tx) != height:
                raise StaleBlockError(f"block {height} is no longer the tip of chain {chain_id}")
            await self.snapshots.delete_all(tx, chain_id)
            await self.snapshots.insert(tx, chain_id, height, blob)

    # --- operation pool ---------------------------------------------------------

    async def add_operation(
        self, chain_id: int, entry: PooledOperation, *, verify_ops: int = 0,
        validator_key: StoredKey | None = None, now: int = 0,
    ) -> None:
        """Persist one pooled operation in one transaction (a repeat is a no-op), counting the
        signature checks it took for the energy figures in the same commit.

        ``validator_key``: a member's first deposit brings the new validator key it is signed
        with, stored (created at ``now``) in the same commit, so a deposit refused on the way
        leaves no key behind, and a pooled deposit never lacks its key.  A plain INSERT: if the
        owner somehow has a key already, nothing is committed (the deposit was signed by another).
        """
        async with self.db.transaction(chain_id) as tx:
            if validator_key is not None:
                await self.validator_keys.insert_new(tx, chain_id, [validator_key], now)
            await self.operations.add(tx, chain_id, entry)
            if verify_ops:
                await self.energy.add(chain_id, pos_verify_ops=verify_ops, tx=tx)

    # --- slashing protection ----------------------------------------------------

    async def save_protection_record(
        self, chain_id: int, record: SlashingProtectionRecord, now: int, *, sign_ops: int = 0
    ) -> None:
        """Store a validator's record durably (and count ``sign_ops`` signatures): one transaction.

        When this returns the record is on disk (WAL, ``synchronous=FULL``), so a
        signer may release the signatures the record covers.
        """
        async with self.db.transaction(chain_id) as tx:
            await self.protection.save(tx, chain_id, record, now)
            if sign_ops:
                await self.energy.add(chain_id, pos_sign_ops=sign_ops, tx=tx)

    async def update_protection_record(
        self,
        chain_id: int,
        pubkey: bytes,
        update: Callable[[SlashingProtectionRecord], SlashingProtectionRecord],
        now: int,
        *,
        sign_ops: int = 0,
    ) -> SlashingProtectionRecord:
        """Read a validator's record, apply ``update``, store the result: one write transaction.

        ``update`` gets the stored record (an empty one if none) and returns the
        new one, or raises to refuse; then nothing is written. The read happens
        under SQLite's write lock (``BEGIN IMMEDIATE``), so no other writer, in
        this process or another, can store a record between the check and the
        write. When this returns the result is durable.
        """
        async with self.db.transaction(chain_id) as tx:
            updated = await self.protection.update(tx, chain_id, pubkey, update, now)
            if sign_ops:
                await self.energy.add(chain_id, pos_sign_ops=sign_ops, tx=tx)
        return updated
