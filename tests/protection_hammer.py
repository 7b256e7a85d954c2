"""Child process for the cross-process slashing protection test: one bot process's signer, hammering.

Run as ``python -m tests.protection_hammer URL ROLE ROUNDS``: its own connection pool and its own
``ValidatorSigner`` on the PostgreSQL database at URL, signing for the one validator (``alice`` of
``CHAIN``) the test created.  It prints ``READY``, waits for a line on stdin (so both processes start
together), then each round tries to sign messages that conflict with the other process's (ROLE ``A``
or ``B``) as fast as it can, and prints every signature it got (``ATT``/``BLK`` and the signed
message's bytes in hex) and every refusal (``REFUSED``).  The parent checks every pair.

Round r, with b = 4r (epochs only ever go up, so each round starts above the last):
- A votes b+1 -> b+2, B votes b -> b+3: B's vote surrounds A's; both pass a check against the
  record the round started from, so only the check-then-write under one lock keeps one out;
- both vote b+3 -> b+4 for different heads: a double vote;
- both propose a block for slot r with different bodies: a double proposal.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from chain.adapters.signer import ValidatorSigner
from chain.adapters.storage import Store
from chain.errors import SlashingProtectionError
from tests.chain.adapters.test_signer import CHAIN, MASTER, block, vote

OWNER = "alice"


def emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def main(url: str, role: str, rounds: int) -> None:
    store = await Store.open(url)
    signer = ValidatorSigner(store, clock=time.time, randomness=os.urandom, master_key=MASTER)
    pubkey = await signer.validator_key(CHAIN, OWNER)
    for r in range(rounds):
        emit("READY" if r == 0 else "ROUND")
        await asyncio.to_thread(sys.stdin.readline)
        b = 4 * r
        first = vote(b + 1, b + 2, "A") if role == "A" else vote(b, b + 3, "B")
        for data in (first, vote(b + 3, b + 4, role)):
            try:
                signed = await signer.sign_attestation(CHAIN, OWNER, data)
                emit(f"ATT {signed.serialize().hex()}")
            except SlashingProtectionError:
                emit("REFUSED")
        try:
            proposal = await signer.sign_proposal(CHAIN, OWNER, block(pubkey, r + 1, body=role))
            emit(f"BLK {proposal.serialize().hex()}")
        except SlashingProtectionError:
            emit("REFUSED")
    await store.close()
    emit("DONE")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
