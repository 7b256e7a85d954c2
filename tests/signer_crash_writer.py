"""Child process for the signer crash test: signs votes and prints each signature it released.

Run as ``python -m tests.signer_crash_writer DB``; the parent kills it with
SIGKILL at an arbitrary moment and checks that the stored slashing protection
record covers every signature printed.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from chain.adapters.signer import ValidatorSigner
from chain.adapters.storage import Store
from tests.chain.adapters.test_signer import CHAIN, MASTER, vote


async def main(path: str) -> None:
    store = await Store.open(path)
    signer = ValidatorSigner(store, clock=time.time, randomness=os.urandom, master_key=MASTER)
    target = 1
    while True:
        signed = await signer.sign_attestation(CHAIN, "alice", vote(target - 1, target))
        sys.stdout.write(f"SIG {target} {signed.signature.hex()}\n")
        sys.stdout.flush()
        target += 1


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
