"""Child process for the crash test: appends blocks and prints each acknowledgement.

Run as ``python -m tests.crash_writer DB [hybrid]``; the parent kills it with SIGKILL
at an arbitrary moment and checks that every acknowledged block survived (and, on a
hybrid chain, that the beacon snapshot stored is exactly the tip's).
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import time

from chain.adapters.node import Node
from chain.adapters.storage import Store
from chain.params import REGTEST
from chain.pos.beacon import ConsensusConfig
from tests.chainkit import solve

CHAIN_ID = 77
MASTER_KEY = bytes(32)


def counter_randomness():
    state = {"n": 0}

    def randomness(n: int) -> bytes:
        state["n"] += 1
        return hashlib.sha256(f"crash-{state['n']}-{time.time_ns()}".encode()).digest()[:n]

    return randomness


async def main(path: str, mode: str | None = None) -> None:
    store = await Store.open(path)
    node = Node(store, clock=time.time, randomness=counter_randomness(), master_key=MASTER_KEY)
    await node.load()
    if not node.has_chain(CHAIN_ID):
        consensus = None if mode is None else ConsensusConfig(mode=mode, checkpoint_interval_blocks=4)
        await node.create_chain(CHAIN_ID, REGTEST, initial_bits=0x207FFFFF, consensus=consensus)
    alice = await node.address(CHAIN_ID, "alice")
    bob = await node.address(CHAIN_ID, "bob")
    while True:
        if node.account(CHAIN_ID, alice).balance > 3:
            admission = await node.pay(CHAIN_ID, "alice", bob, 1, fee=1)
            print(f"ACK tx {admission.entry.txid.hex()}", flush=True)
        block = solve(node.template(CHAIN_ID, alice), REGTEST)
        effects = await node.submit_block(CHAIN_ID, block)
        print(f"ACK block {effects.height} {block.header.hash_hex()}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], *sys.argv[2:3]))
