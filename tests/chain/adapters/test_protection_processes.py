"""Two bot processes signing for one validator on one PostgreSQL database never produce a slashable
pair (issue 13, item 5).

Each process (tests/protection_hammer.py) has its own connection pool and its own ``ValidatorSigner``,
so nothing in Python orders them: only the database does (the chain's ``pg_advisory_xact_lock``
around the EIP-3076 read-modify-write).  Both sign conflicting votes and blocks for the same epochs
and slots as fast as they can; every pair of signatures they released is then put to the engine's
own slashing checks (``check_attester_slashing``, ``check_proposer_slashing``: the evidence a
``/report`` would file), and none may be evidence.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
from collections import Counter
from pathlib import Path

from chain.adapters.signer import ValidatorSigner
from chain.adapters.storage import Store
from chain.errors import ChainError
from chain.pos.attestation import (
    AttesterSlashing,
    ProposerSlashing,
    SignedAttestation,
    SignedProposalHeader,
    check_attester_slashing,
    check_proposer_slashing,
)
from tests.chain.adapters.test_signer import CHAIN, MASTER, FakeClock
from tests.protection_hammer import OWNER

ROOT = Path(__file__).resolve().parents[3]
ROUNDS = 150


def offence(check, evidence) -> str | None:
    """What the pair would get the validator slashed for, by the engine's own check; None if nothing."""
    try:
        verdict = check(evidence, CHAIN)
    except ChainError:
        return None
    return f"{verdict.offence}: {verdict.description}"


async def hammer(url: str) -> list[list[str]]:
    """Both processes' output lines.  Each round starts in both at once (see tests/protection_hammer.py)."""
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.protection_hammer", url, role, str(ROUNDS),
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )
        for role in ("A", "B")
    ]
    outputs: list[list[str]] = [[], []]

    async def until(process: asyncio.subprocess.Process, lines: list[str], marks: tuple[str, ...]) -> None:
        while (line := (await process.stdout.readline()).decode().strip()) not in marks:
            assert line, f"a signer process exited early: {lines[-3:]}"
            lines.append(line)

    try:
        for process, lines in zip(processes, outputs, strict=True):
            await until(process, lines, ("READY",))
        for _ in range(ROUNDS):
            for process in processes:
                process.stdin.write(b"go\n")
                await process.stdin.drain()
            await asyncio.gather(*(
                until(process, lines, ("ROUND", "DONE")) for process, lines in zip(processes, outputs, strict=True)
            ))
        for process in processes:
            await process.wait()
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert all(process.returncode == 0 for process in processes)
    return outputs


async def test_two_processes_hammering_one_validator_never_sign_a_slashable_pair(postgres_url):
    store = await Store.open(postgres_url)
    try:
        # The validator's key exists before either process starts: both sign with the same one.
        await ValidatorSigner(store, clock=FakeClock(), randomness=lambda n: bytes(n), master_key=MASTER).validator_key(
            CHAIN, OWNER
        )
    finally:
        await store.close()

    outputs = await hammer(postgres_url)

    attestations: list[SignedAttestation] = []
    proposals: list[SignedProposalHeader] = []
    refusals = 0
    for lines in outputs:
        for line in lines:
            kind, _, payload = line.partition(" ")
            if kind == "ATT":
                attestations.append(SignedAttestation.deserialize(bytes.fromhex(payload)))
            elif kind == "BLK":
                proposals.append(SignedProposalHeader.deserialize(bytes.fromhex(payload)))
            else:
                assert kind == "REFUSED", line
                refusals += 1
    # Both processes got signatures out, and they did conflict (or the test proved nothing).
    assert all(any(line.startswith("ATT") for line in lines) for lines in outputs)
    assert refusals >= ROUNDS
    offences = [
        offence(check_attester_slashing, AttesterSlashing(one, two))
        for one, two in itertools.combinations(attestations, 2)
    ] + [
        offence(check_proposer_slashing, ProposerSlashing(one, two))
        for one, two in itertools.combinations(proposals, 2)
    ]
    slashable = Counter(o.split(":")[0] for o in offences if o is not None)
    assert not slashable, f"slashable pairs signed: {dict(slashable)}; the first: {next(o for o in offences if o)}"
