"""Bitcoin's merkle root over transaction ids (``ComputeMerkleRoot``)."""

from __future__ import annotations

from collections.abc import Sequence

from chain.hashing import sha256d


def compute_merkle_root(txids: Sequence[bytes]) -> bytes:
    """Pairwise double SHA-256, duplicating the last entry of an odd level.

    The duplication makes two different lists share a root (CVE-2012-2459);
    blocks therefore also reject duplicate transactions.
    """
    if not txids:
        raise ValueError("a merkle root needs at least one transaction")
    level = list(txids)
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]
