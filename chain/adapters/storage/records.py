"""What the repositories return: plain frozen records, no database handle inside."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from chain.consensus.block import Block
from chain.events import ChainEvent
from chain.ledger.accounts import Account
from chain.ledger.mempool import PendingTransfer
from chain.params import ChainParams
from chain.pos.beacon import ConsensusConfig
from chain.pos.op_pool import PooledOperation
from chain.pow.header import BlockHeader


@dataclass(frozen=True, slots=True)
class StoredChain:
    chain_id: int
    params: ChainParams
    blocks: list[Block]
    accounts: dict[bytes, Account]
    mempool: list[PendingTransfer]
    param_changes: list[tuple[int, ChainParams]]
    proposed_params: ChainParams | None
    consensus: ConsensusConfig | None = None
    consensus_changes: list[tuple[int, ConsensusConfig]] = field(default_factory=list)
    proposed_consensus: ConsensusConfig | None = None
    operations: list[PooledOperation] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class StoredChainHead:
    """What startup reads of a chain: its current tables and recent end, never every block.

    ``recent`` is (header, hash) of the last ``compute_history_blocks`` blocks before and
    including the tip (from block 1 on), oldest first; ``snapshot`` the newest beacon-state
    snapshot as ``(height, blob)``; ``blocks_mined`` how many blocks each miner (or fee
    recipient) got, genesis left out.
    """

    chain_id: int
    params: ChainParams
    genesis: Block
    tip_height: int
    tip_block: Block
    recent: list[tuple[BlockHeader, bytes]]
    accounts: dict[bytes, Account]
    mempool: list[PendingTransfer]
    param_changes: list[tuple[int, ChainParams]]
    proposed_params: ChainParams | None
    consensus: ConsensusConfig | None
    consensus_changes: list[tuple[int, ConsensusConfig]]
    proposed_consensus: ConsensusConfig | None
    operations: list[PooledOperation]
    snapshot: tuple[int, bytes] | None
    blocks_mined: dict[bytes, int]


@dataclass(frozen=True, slots=True)
class StoredTreeEntry:
    """One ``block_tree`` row: what ``BlockTree.add_block`` needs, and where the block stands."""

    block_hash: bytes
    parent_hash: bytes
    height: int
    # The block's own proof (Core's GetBlockProof) and the sum down to genesis (nChainWork).
    work: int
    chain_work: int
    # First-seen order: lower was seen earlier (ties in work go to it).
    sequence: int
    on_main_chain: bool
    # False: no undo record is stored (genesis, or stored before migration 13); a reorg cannot disconnect it.
    has_undo: bool


@dataclass(frozen=True, slots=True)
class StoredTransaction:
    chain_id: int
    txid: bytes
    height: int
    position: int
    sender: bytes | None
    recipient: bytes
    amount: int
    fee: int


@dataclass(frozen=True, slots=True)
class StoredStakeEntry:
    """One ``stake_history`` row: an engine event (``chain/events.py``) that concerned a wallet."""

    height: int
    seq: int
    # A StakeDeposited, StakeWithdrawn or ValidatorSlashed; an UnknownEvent for a row this version cannot read.
    event: ChainEvent


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A custodied signing key: whose it is, its public key, and its private key sealed under the master key."""

    owner: str
    pubkey: bytes
    sealed_key: bytes


# Wallet keys and validator keys are stored alike (``KeyStore``), in tables of their own.
StoredWallet = StoredKey
StoredValidatorKey = StoredKey


@dataclass(frozen=True, slots=True)
class SealedSample:
    """One secret sealed under the master key, with what names it (its associated data)."""

    kind: str
    """``wallet``, ``validator key`` or ``webhook URL``."""
    chain_id: int
    owner: str | None
    sealed: bytes


@dataclass(frozen=True, slots=True)
class SealedSecrets:
    """What a database holds that only its master key opens, read without changing anything."""

    key_check: bytes | None
    sample: SealedSample | None

    @property
    def present(self) -> bool:
        return self.key_check is not None or self.sample is not None


@dataclass(frozen=True, slots=True)
class EnergyCounters:
    """Work done for one chain: CPU time of proof-of-work hashing, signatures made and checked."""

    pow_cpu_ns: int = 0
    pos_sign_ops: int = 0
    pos_verify_ops: int = 0


@dataclass(frozen=True, slots=True)
class StoredOrphan:
    """A block of the tree off the main chain, with where it stands (``/chain block``)."""

    block: Block
    height: int
    chain_work: int
    sequence: int
    # The main chain's block at the same height and its cumulative work; None above the main tip.
    main_hash: bytes | None
    main_chain_work: int | None


@dataclass(frozen=True, slots=True)
class StoredSideBranch:
    """A branch off the main chain, from the main-chain block it forks at up to its tip (a block
    off the main chain with no child); ``main_chain_work`` is the main chain's at the tip's height,
    or at the main tip if the branch is higher."""

    tip_hash: bytes
    tip_height: int
    fork_hash: bytes
    fork_height: int
    chain_work: int
    main_chain_work: int
    sequence: int

    @property
    def length(self) -> int:
        return self.tip_height - self.fork_height


# A switch of the main branch, or a heavier branch finality refused (``ReorgRecord.kind``).
ReorgKind = Literal["reorg", "refused"]


@dataclass(frozen=True, slots=True)
class ReorgRecord:
    """One reorg of a chain (``kind`` "reorg": the main chain switched to a heavier branch) or one
    heavier branch refused because it would take a finalized block off ("refused"), as the store logs
    it in the same transaction as the switch or the side block (``reorg_log``).

    ``height``: the new tip's (a reorg) or the refused tip's; ``depth``: blocks taken off (or that
    would have been). ``orphaned``: miners of the blocks taken off the main chain; ``branch``: miners
    of the blocks of the branch that took over, or of the refused one. ``seq``: 1, 2, ... per chain
    (0 before it is stored)."""

    kind: ReorgKind
    height: int
    depth: int
    orphaned: frozenset[bytes] = frozenset()
    branch: frozenset[bytes] = frozenset()
    seq: int = 0
