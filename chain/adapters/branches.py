"""A block's own branch: the state it is checked against, and what switching to it takes off.

Issue 11, item 1. The node keeps every valid block in a tree (``chain.consensus.tree.BlockTree``), but
holds in memory the state of one branch only, the main chain's. A block that builds on any other
block is checked against the state of *its* branch: the main chain's state taken back to the fork
point with the undo records of the blocks above it (``process_disconnect_blocks``), the recent
headers read back from the store, and the branch's side blocks processed again on top. Nothing here
changes the node's state or the store; the node decides from the result whether the block stays a
side block or its branch becomes the main chain (a reorg, one store transaction).

The beacon state (chains with a consensus config) is not undone block by block: each block's beacon
state is a value of its own (``BlockEffects.beacon`` replaces, never mutates), so the node keeps the
last ``BEACON_STATES_KEPT`` of them by block hash (``BeaconStates``) and a branch forking further back
than that is refused with ``BranchStateUnavailableError``. A main chain whose blocks above the fork
committed a Merge schedule is refused too: the schedule is not part of an undo record.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass

from chain.adapters.storage import Store
from chain.consensus.block import Block
from chain.consensus.state import BlockEffects, ChainState, compute_history_blocks
from chain.consensus.transition import process_block
from chain.consensus.tree import BlockEntry, BlockTree, compute_fork_point
from chain.consensus.undo import BlockUndo, process_disconnect_blocks
from chain.errors import BranchStateUnavailableError, BranchTooDeepError, UndoRecordMissingError
from chain.hashing import hash_to_display
from chain.params import ChainParams
from chain.pos.beacon import BeaconState, ConsensusConfig

# How far below the main tip a branch may fork, and how long it may run above its fork point: checking
# one of its blocks reads and re-processes that many blocks under the chain's lock, which no member's
# block may hold for long. A day of Bitcoin's blocks; a game's branches are minutes long.
MAX_BRANCH_DEPTH_BLOCKS = 144

# Beacon states kept in memory by block hash (main and side blocks, newest kept): how far back a side
# branch of a chain with a consensus config may fork. A state is tens of kilobytes at 1,000 validators.
BEACON_STATES_KEPT = 64


class BeaconStates:
    """The beacon state after each of the last ``BEACON_STATES_KEPT`` blocks the node processed."""

    def __init__(self, limit: int = BEACON_STATES_KEPT) -> None:
        self._limit = limit
        self._states: OrderedDict[bytes, BeaconState] = OrderedDict()

    def keep(self, block_hash: bytes, beacon: BeaconState | None) -> None:
        if beacon is None:
            return
        self._states[block_hash] = beacon
        self._states.move_to_end(block_hash)
        while len(self._states) > self._limit:
            self._states.popitem(last=False)

    def get(self, block_hash: bytes) -> BeaconState | None:
        return self._states.get(block_hash)


@dataclass(frozen=True, slots=True)
class Branch:
    """The state with ``tip`` as its tip, and how it relates to the main chain.

    ``disconnected``: the main chain's blocks above ``fork``, newest first (what a switch to this
    branch takes off); ``connected``: this branch's blocks above ``fork``, oldest first, each with its
    effects (what a switch connects, before the new block). ``state`` is a fresh object: applying a
    block to it changes nothing the node holds.
    """

    state: ChainState
    tip: BlockEntry
    fork: BlockEntry
    disconnected: tuple[Block, ...]
    connected: tuple[tuple[Block, BlockEffects], ...]


def _short(block_hash: bytes) -> str:
    return hash_to_display(block_hash)[:16]


def _path_above(tree: BlockTree, tip: BlockEntry, fork: BlockEntry) -> list[BlockEntry]:
    """The entries from just above ``fork`` up to ``tip``, oldest first."""
    path: list[BlockEntry] = []
    cursor = tip
    while cursor.block_hash != fork.block_hash:
        path.append(cursor)
        cursor = tree.get(cursor.parent_hash)
    path.reverse()
    return path


def _process(
    state: ChainState, block: Block, now: int, params: ChainParams | None, consensus: ConsensusConfig | None
) -> BlockEffects:
    effects = process_block(state, block, now, params, consensus)
    state.apply(block, effects)
    return effects


async def load_branch(
    store: Store,
    chain_id: int,
    main: ChainState,
    tree: BlockTree,
    beacon_states: BeaconStates,
    genesis: Block,
    tip_hash: bytes,
    now: int,
) -> Branch:
    """The state of the branch ending at ``tip_hash`` (a block of ``tree``), from the main chain's
    ``main`` and the store. Refuses (``UndoRecordMissingError``) a fork below a block stored without an
    undo record, and (``BranchStateUnavailableError``) one whose beacon state is no longer kept or across
    a Merge schedule the main chain committed above the fork."""
    tip = tree.get(tip_hash)
    fork = compute_fork_point(tree, tip_hash, main.tip_hash)
    depth = max(main.height - fork.height, tip.height - fork.height)
    if depth > MAX_BRANCH_DEPTH_BLOCKS:
        raise BranchTooDeepError(
            f"block {_short(tip_hash)}'s branch leaves the main chain at block {fork.height}, "
            f"{main.height - fork.height} below its tip, and runs {tip.height - fork.height} blocks above it: "
            f"branches are checked up to {MAX_BRANCH_DEPTH_BLOCKS} blocks deep",
            depth=depth, limit=MAX_BRANCH_DEPTH_BLOCKS,
        )
    undos: list[BlockUndo] = []
    disconnected: list[Block] = []
    for height in range(main.height, fork.height, -1):
        block = await store.blocks.block_at(chain_id, height)
        undo = await store.tree.undo_record(chain_id, block.hash())
        if undo is None:
            raise UndoRecordMissingError(
                f"block {height} of chain {chain_id} was stored before undo records were kept: no branch can "
                f"fork below it",
                height=height,
            )
        if undo.consensus_change_digest is not None:
            raise BranchStateUnavailableError(
                f"main-chain block {height} committed a Merge schedule; a branch forking below it cannot be checked"
            )
        undos.append(undo)
        disconnected.append(block)
    ledger, _ = process_disconnect_blocks(main.ledger, main.tip_hash, undos)
    beacon = None
    if main.beacon is not None:
        beacon = main.beacon if fork.block_hash == main.tip_hash else beacon_states.get(fork.block_hash)
        if beacon is None:
            raise BranchStateUnavailableError(
                f"the beacon state of block {fork.height} ({_short(fork.block_hash)}), where this branch leaves "
                f"the main chain, is no longer kept (the last {BEACON_STATES_KEPT} blocks' are)"
            )
    param_changes = [(h, p) for h, p in main.param_changes if h <= fork.height]
    consensus_changes = [(h, c) for h, c in main.consensus_changes if h <= fork.height]
    capacity = compute_history_blocks(main.genesis_params, *(p for _, p in param_changes))
    recent = await store.blocks.headers_between(chain_id, max(1, fork.height - capacity + 1), fork.height + 1)
    state = ChainState.resume(
        main.genesis_params, chain_id, genesis, fork.height, recent, dict(ledger.items()), param_changes,
        main.consensus, consensus_changes, beacon,
    )
    connected: list[tuple[Block, BlockEffects]] = []
    for entry in _path_above(tree, tip, fork):
        block = await store.tree.side_block(chain_id, entry.block_hash)
        undo = await store.tree.undo_record(chain_id, entry.block_hash)
        params_change = None if undo is None else undo.params_change
        # In a thread: a proof-of-stake block checks every vote's signature.
        effects = await asyncio.to_thread(_process, state, block, now, params_change, None)
        beacon_states.keep(entry.block_hash, effects.beacon)
        connected.append((block, effects))
    return Branch(state, tip, fork, tuple(disconnected), tuple(connected))
