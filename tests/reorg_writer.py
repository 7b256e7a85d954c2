"""Branches of real mined REGTEST blocks for the store's reorg tests, and the child process of the
reorg crash test.

Run as ``python -m tests.reorg_writer DB``: it creates a chain with a common prefix and branch A on
the main chain and branch B stored beside it, prints ``READY``, then switches the main chain
A -> B -> A -> ... with ``Store.reorganize``, printing ``ACK <branch>`` after each commit, until the
parent kills it with SIGKILL.  Everything is deterministic, so the parent rebuilds the same blocks.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from chain.adapters.storage import Store
from chain.consensus.block import Block
from chain.consensus.state import BlockEffects, ChainState
from chain.consensus.transition import process_block
from chain.consensus.undo import BlockUndo, compute_block_undo
from chain.ledger.transaction import Transfer, make_transfer
from chain.params import REGTEST
from tests.chainkit import genesis_block, key, mine, new_chain

CHAIN_ID = 78
ALICE = key("reorg-alice")
BOB = key("reorg-bob")


@dataclass
class Branch:
    """Blocks mined one on another, with their effects and undo records, and the state after them."""

    state: ChainState
    blocks: list[Block] = field(default_factory=list)
    effects: list[BlockEffects] = field(default_factory=list)
    undos: list[BlockUndo] = field(default_factory=list)

    @property
    def hashes(self) -> list[bytes]:
        return [b.hash() for b in self.blocks]

    @property
    def connect(self) -> list[tuple[Block, BlockEffects]]:
        return list(zip(self.blocks, self.effects, strict=True))


def replay(blocks: Sequence[Block], chain_id: int = CHAIN_ID) -> ChainState:
    """A fresh state with ``blocks`` (after genesis) applied: the state at a fork point."""
    state = new_chain(REGTEST, chain_id=chain_id)
    for block in blocks:
        state.apply(block, process_block(state, block, block.header.time))
    return state


def grow(
    state: ChainState, count: int, miner: bytes, transfers: dict[int, Sequence[Transfer]] | None = None,
    time_step: int = 0,
) -> Branch:
    """Mine ``count`` blocks on ``state`` (changed in place); ``transfers[i]`` go in the i-th block.
    ``time_step`` shifts the block times, so two branches by one miner still differ."""
    branch = Branch(state)
    for index in range(count):
        now = state.tip.time + state.params.target_spacing_s + time_step
        block = mine(state, miner, (transfers or {}).get(index, ()), time=now, apply=False)
        effects = process_block(state, block, block.header.time)
        branch.undos.append(compute_block_undo(state.ledger, effects, block.header.prev_hash))
        state.apply(block, effects)
        branch.blocks.append(block)
        branch.effects.append(effects)
    return branch


async def create_chain(store: Store, chain_id: int = CHAIN_ID) -> None:
    await store.create_chain(chain_id, REGTEST, genesis_block(REGTEST, chain_id), 0)


async def append(store: Store, branch: Branch, chain_id: int = CHAIN_ID) -> None:
    for block, effects in branch.connect:
        await store.append_block(chain_id, block, effects, [], 0)


def crash_branches() -> tuple[Branch, Branch, Branch]:
    """The crash test's prefix (2 blocks), branch A (3 blocks, a payment) and B (4 blocks, none)."""
    prefix = grow(new_chain(REGTEST, chain_id=CHAIN_ID), 2, ALICE.public_key)
    transfer = make_transfer(ALICE, BOB.public_key, 7, 1, 0, CHAIN_ID)
    a = grow(replay(prefix.blocks), 3, ALICE.public_key, {0: [transfer]})
    b = grow(replay(prefix.blocks), 4, BOB.public_key)
    return prefix, a, b


async def main(path: str) -> None:
    prefix, a, b = crash_branches()
    store = await Store.open(path)
    await create_chain(store)
    await append(store, prefix)
    await append(store, a)
    for block, undo in zip(b.blocks, b.undos, strict=True):
        await store.store_side_block(CHAIN_ID, block, undo)
    print("READY", flush=True)
    main_branch, side = a, b
    while True:
        await store.reorganize(CHAIN_ID, main_branch.hashes[::-1], side.connect, [], 0)
        main_branch, side = side, main_branch
        print(f"ACK {'A' if main_branch is a else 'B'}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
