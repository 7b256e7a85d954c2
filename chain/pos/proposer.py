"""Who proposes each slot: phase0's ``compute_shuffled_index`` and ``compute_proposer_index``.

Both follow consensus-specs ``specs/phase0/beacon-chain.md`` byte for byte
(``hash`` is SHA-256, integers are little-endian), so a draw can be checked
against any Ethereum implementation given the same seed.

The seed.  Ethereum mixes RANDAO reveals into ``get_seed``; we have no RANDAO,
so the mix is the root of the *checkpoint block* of the epoch before: the block
at the first slot of epoch ``e - MIN_SEED_LOOKAHEAD_EPOCHS`` (or the latest block
before that slot), and the genesis block for epoch 0.  Anyone can recompute it from
the chain, and the proposers of a whole epoch are known one epoch ahead, as in
Ethereum.  The price: whoever proposes that checkpoint block can try many block
contents to steer the next epoch's draw (RANDAO's last revealer has a similar,
smaller lever).  For a playground that is an honest trade; a VRF or RANDAO would
close it.

Weighting.  phase0 accepts a candidate with probability ``(floor(eb * 255 /
MAX_EFFECTIVE_BALANCE) + 1) / 256``, which is exactly ``eb / MAX`` when ``eb`` is a
multiple of ``MAX / 256`` (so for every whole-point balance when MAX divides 256).
Candidates are visited in one shuffled order, so a validator early in the order
gets the first chance: when every candidate is at the cap the draw is uniform
(Ethereum's normal case, and exactly stake-proportional); when balances differ
and acceptance is likely, larger balances win *more* than their share (two
validators at MAX and MAX/2 propose 3:1, not 2:1).  ``tests/chain/pos/test_proposer.py``
measures both.  ``max_effective_balance`` is therefore a parameter: the default,
32 points, mirrors Ethereum's 32 ETH cap and the playground's default deposit.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from chain.errors import ProposerSelectionError
from chain.hashing import fast_sha256
from chain.pos.attestation import GENESIS_EPOCH, check_uint64, compute_epoch_at_slot

SHUFFLE_ROUND_COUNT = 90
MAX_RANDOM_BYTE = 2**8 - 1
MIN_SEED_LOOKAHEAD_EPOCHS = 1
DOMAIN_BEACON_PROPOSER = bytes.fromhex("00000000")
SEED_SIZE_BYTES = 32
# Ethereum's MAX_EFFECTIVE_BALANCE, 32 ETH, scaled to 32 points.
DEFAULT_MAX_EFFECTIVE_BALANCE_POINTS = 32
# One hash gives the random bytes of this many attempts.
_RANDOM_BYTES_PER_HASH = 32

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_ROUND_BYTES = tuple(bytes((r,)) for r in range(256))


_sha256_object = fast_sha256


def _sha256(data: bytes) -> bytes:
    return _sha256_object(data).digest()


def _check_seed(seed: bytes) -> None:
    if not isinstance(seed, bytes) or len(seed) != SEED_SIZE_BYTES:
        raise ProposerSelectionError(f"a seed has {SEED_SIZE_BYTES} bytes")


def compute_shuffled_index(index: int, index_count: int, seed: bytes) -> int:
    """Where ``index`` lands in the swap-or-not shuffle of ``range(index_count)``; the spec's text."""
    _check_seed(seed)
    if not 0 <= index < index_count:
        raise ProposerSelectionError(f"index {index} is outside 0..{index_count - 1}")
    for current_round in range(SHUFFLE_ROUND_COUNT):
        round_byte = _ROUND_BYTES[current_round]
        pivot = int.from_bytes(_sha256(seed + round_byte)[0:8], "little") % index_count
        flip = (pivot + index_count - index) % index_count
        position = max(index, flip)
        source = _sha256(seed + round_byte + _U32.pack(position // 256))
        byte = source[(position % 256) // 8]
        bit = (byte >> (position % 8)) % 2
        index = flip if bit else index
    return index


class _Shuffle:
    """``compute_shuffled_index`` for one seed and count, hashing each round once.

    A draw visits several positions of the same shuffle; the spec recomputes the
    90 pivot hashes (and source hashes) for each, which is nearly all the cost.
    """

    __slots__ = ("_count", "_pivots", "_seed", "_sources")

    def __init__(self, seed: bytes, count: int) -> None:
        sha = _sha256_object
        self._seed = seed
        self._count = count
        self._pivots = [
            int.from_bytes(sha(seed + round_byte).digest()[0:8], "little") % count
            for round_byte in _ROUND_BYTES[:SHUFFLE_ROUND_COUNT]
        ]
        # Below 256 validators every position's bit is in the first source hash of a round.
        first_block = _U32.pack(0)
        self._sources: dict[tuple[int, int], bytes] = {
            (r, 0): sha(seed + _ROUND_BYTES[r] + first_block).digest() for r in range(SHUFFLE_ROUND_COUNT)
        }

    def index(self, index: int) -> int:
        count = self._count
        sources = self._sources
        for current_round, pivot in enumerate(self._pivots):
            flip = (pivot + count - index) % count
            position = max(index, flip)
            key = (current_round, position >> 8)
            source = sources.get(key)
            if source is None:
                source = _sha256(self._seed + _ROUND_BYTES[current_round] + _U32.pack(key[1]))
                sources[key] = source
            if (source[(position & 0xFF) >> 3] >> (position & 7)) & 1:
                index = flip
        return index


@dataclass(frozen=True, slots=True)
class DrawAttempt:
    """One step of the rejection sampling: a candidate and the byte that judged it."""

    attempt: int
    candidate: int
    effective_balance: int
    random_byte: int
    accepted: bool


def _check_candidates(indices: Sequence[int], effective_balances: Sequence[int], max_effective_balance: int) -> None:
    if (
        isinstance(max_effective_balance, bool)
        or not isinstance(max_effective_balance, int)
        or max_effective_balance < 1
    ):
        raise ProposerSelectionError(f"the maximum effective balance must be at least 1, got {max_effective_balance!r}")
    if not indices:
        raise ProposerSelectionError("there are no active validators, so nobody can propose")
    for index in indices:
        if not 0 <= index < len(effective_balances):
            raise ProposerSelectionError(f"validator {index} is not in the registry of {len(effective_balances)}")
        balance = effective_balances[index]
        # A zero balance would still win on random byte 0; an active validator always has stake.
        if not 1 <= balance <= max_effective_balance:
            raise ProposerSelectionError(
                f"validator {index} has effective balance {balance}; an active validator has "
                f"1..{max_effective_balance}"
            )


def _proposer_attempts(
    indices: Sequence[int], effective_balances: Sequence[int], seed: bytes, max_effective_balance: int
) -> Iterator[DrawAttempt]:
    """phase0's ``compute_proposer_index`` loop, one attempt at a time.

    It ends: random byte 0 accepts any candidate, so each attempt succeeds with
    probability at least 1/256.
    """
    total = len(indices)
    shuffle = _Shuffle(seed, total)
    shuffled: dict[int, int] = {}
    random_bytes = b""
    i = 0
    while True:
        position = i % total
        if position not in shuffled:
            shuffled[position] = shuffle.index(position)
        candidate = indices[shuffled[position]]
        if i % _RANDOM_BYTES_PER_HASH == 0:
            random_bytes = _sha256(seed + _U64.pack(i // _RANDOM_BYTES_PER_HASH))
        random_byte = random_bytes[i % _RANDOM_BYTES_PER_HASH]
        effective_balance = effective_balances[candidate]
        accepted = effective_balance * MAX_RANDOM_BYTE >= max_effective_balance * random_byte
        yield DrawAttempt(i, candidate, effective_balance, random_byte, accepted)
        if accepted:
            return
        i += 1


def compute_proposer_index(
    indices: Sequence[int], effective_balances: Sequence[int], seed: bytes, max_effective_balance: int
) -> int:
    """A validator from ``indices`` sampled by effective balance, as phase0 does.

    ``effective_balances[i]`` is validator ``i``'s effective balance (the spec's
    ``state.validators[i].effective_balance``); ``indices`` are the active ones.
    """
    _check_seed(seed)
    _check_candidates(indices, effective_balances, max_effective_balance)
    # The attempts end with the accepted one.
    (last,) = deque(_proposer_attempts(indices, effective_balances, seed, max_effective_balance), maxlen=1)
    return last.candidate


def compute_seed_mix_epoch(epoch: int) -> int:
    """The epoch whose checkpoint block root seeds ``epoch``'s draws."""
    check_uint64("epoch", epoch)
    return max(epoch - MIN_SEED_LOOKAHEAD_EPOCHS, GENESIS_EPOCH)


def get_seed(epoch: int, mix: bytes, domain_type: bytes = DOMAIN_BEACON_PROPOSER) -> bytes:
    """phase0's ``get_seed`` with our mix (see the module docstring) in place of RANDAO's."""
    check_uint64("epoch", epoch)
    _check_seed(mix)
    return _sha256(domain_type + _U64.pack(epoch) + mix)


def compute_proposer_seed(epoch_seed: bytes, slot: int) -> bytes:
    """The per-slot seed of ``get_beacon_proposer_index``."""
    _check_seed(epoch_seed)
    check_uint64("slot", slot)
    return _sha256(epoch_seed + _U64.pack(slot))


def compute_proposer_index_at_slot(
    slot: int,
    slots_per_epoch: int,
    mix: bytes,
    indices: Sequence[int],
    effective_balances: Sequence[int],
    max_effective_balance: int,
) -> int:
    """The proposer of ``slot`` on a timeline of fixed ``slots_per_epoch``; ``mix`` is the root of
    ``compute_seed_mix_epoch``'s checkpoint block.  (chain/pos/beacon.py's ``get_beacon_proposer_index``
    is phase0's: it reads all of this from a beacon state.)"""
    epoch = compute_epoch_at_slot(slot, slots_per_epoch)
    seed = compute_proposer_seed(get_seed(epoch, mix), slot)
    return compute_proposer_index(indices, effective_balances, seed, max_effective_balance)


@dataclass(frozen=True, slots=True)
class ProposerDraw:
    """Everything that decided a slot's proposer, so anyone can redo the draw."""

    slot: int
    epoch: int
    mix_epoch: int
    mix: bytes
    epoch_seed: bytes
    seed: bytes
    candidates: tuple[int, ...]
    total_effective_balance: int
    max_effective_balance: int
    attempts: tuple[DrawAttempt, ...]

    @property
    def proposer(self) -> int:
        return self.attempts[-1].candidate


def explain_proposer_draw_at(
    slot: int,
    epoch: int,
    mix: bytes,
    indices: Sequence[int],
    effective_balances: Sequence[int],
    max_effective_balance: int,
) -> ProposerDraw:
    """``explain_proposer_draw`` for a chain whose epochs are not all ``slots_per_epoch`` long
    (a merged chain: its slot clock starts at the Merge), so the caller names the epoch."""
    epoch_seed = get_seed(epoch, mix)
    seed = compute_proposer_seed(epoch_seed, slot)
    _check_candidates(indices, effective_balances, max_effective_balance)
    attempts = tuple(_proposer_attempts(indices, effective_balances, seed, max_effective_balance))
    return ProposerDraw(
        slot=slot,
        epoch=epoch,
        mix_epoch=compute_seed_mix_epoch(epoch),
        mix=mix,
        epoch_seed=epoch_seed,
        seed=seed,
        candidates=tuple(indices),
        total_effective_balance=sum(effective_balances[i] for i in indices),
        max_effective_balance=max_effective_balance,
        attempts=attempts,
    )


def explain_proposer_draw(
    slot: int,
    slots_per_epoch: int,
    mix: bytes,
    indices: Sequence[int],
    effective_balances: Sequence[int],
    max_effective_balance: int,
) -> ProposerDraw:
    """``compute_proposer_index_at_slot`` with its inputs and every attempt kept."""
    epoch = compute_epoch_at_slot(slot, slots_per_epoch)
    return explain_proposer_draw_at(slot, epoch, mix, indices, effective_balances, max_effective_balance)
