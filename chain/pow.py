"""Proof of work and difficulty retargeting, as Bitcoin Core's src/pow.cpp.

``compute_next_work_required`` is ``CalculateNextWorkRequired`` and
``compute_expected_bits`` is ``GetNextWorkRequired`` without the testnet
min-difficulty exception.  Python integers do not wrap at 2^256 the way
``arith_uint256`` does; Core's own parameter sets never reach that wrap, and
ours cap the result at the proof-of-work limit just the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chain.compact import compute_target, compute_target_for_work, decode_compact, encode_compact
from chain.errors import BadDifficultyBitsError, CheckProofOfWorkError, CompactBitsError
from chain.hashing import hash_to_display, hash_to_int
from chain.header import BlockHeader
from chain.params import MEDIAN_TIME_SPAN_BLOCKS, ChainParams

# Core clamps the measured timespan to [timespan / 4, timespan * 4].
RETARGET_CLAMP_FACTOR = 4


def is_valid_proof_of_work(block_hash: bytes, bits: int, params: ChainParams) -> bool:
    try:
        check_proof_of_work(block_hash, bits, params)
    except CheckProofOfWorkError:
        return False
    return True


def check_proof_of_work(block_hash: bytes, bits: int, params: ChainParams) -> None:
    """Core's ``CheckProofOfWork``: a usable target, and the hash at or below it."""
    try:
        target = compute_target(bits, params.pow_limit)
    except CompactBitsError as exc:
        raise CheckProofOfWorkError(str(exc)) from exc
    if hash_to_int(block_hash) > target:
        raise CheckProofOfWorkError(
            f"hash {hash_to_display(block_hash)} is above the target "
            f"{target:064x} (bits {bits:#010x})"
        )


def compute_next_work_required(
    last_bits: int, first_block_time: int, last_block_time: int, params: ChainParams,
    target_timespan_s: int | None = None,
) -> int:
    """Core's ``CalculateNextWorkRequired``: scale the target by actual/target timespan.

    ``target_timespan_s`` is what the measured stretch should have taken (default: the
    window's, as Core compares it; see ``compute_retarget_timespan_s``)."""
    timespan = params.target_timespan_s if target_timespan_s is None else target_timespan_s
    actual = last_block_time - first_block_time
    actual = max(timespan // RETARGET_CLAMP_FACTOR, min(actual, timespan * RETARGET_CLAMP_FACTOR))
    target = decode_compact(last_bits).value
    target = target * actual // timespan
    target = min(target, params.pow_limit)
    return encode_compact(target)


def is_retarget_height(height: int, params: ChainParams) -> bool:
    return not params.no_retargeting and height % params.retarget_window_blocks == 0


def compute_retarget_window_start(height: int, params: ChainParams) -> int:
    """The height of the block a retarget at ``height`` measures from.

    Core: the window's first block, one interval short of the window (the historical
    off-by-one every Bitcoin node keeps).  With ``retarget_full_window``: the block before
    it, so every interval of the window counts (the first retarget has only the blocks
    since genesis)."""
    if params.retarget_full_window:
        return max(0, height - params.retarget_window_blocks - 1)
    return height - params.retarget_window_blocks


def compute_retarget_timespan_s(height: int, params: ChainParams) -> int:
    """How long the stretch a retarget at ``height`` measures should have taken."""
    if params.retarget_full_window:
        return params.target_spacing_s * (height - 1 - compute_retarget_window_start(height, params))
    return params.target_timespan_s


def compute_expected_bits(headers: Sequence[BlockHeader], params: ChainParams) -> int:
    """Core's ``GetNextWorkRequired`` for the block after ``headers[-1]``.

    ``headers`` is the main chain from genesis; the new block's height is
    ``len(headers)``.
    """
    height = len(headers)
    last = headers[-1]
    if not is_retarget_height(height, params):
        return last.bits
    first = headers[compute_retarget_window_start(height, params)]
    return compute_next_work_required(
        last.bits, first.time, last.time, params, compute_retarget_timespan_s(height, params)
    )


def check_expected_bits(header: BlockHeader, headers: Sequence[BlockHeader], params: ChainParams) -> None:
    expected = compute_expected_bits(headers, params)
    if header.bits != expected:
        raise BadDifficultyBitsError(
            f"bits {header.bits:#010x} at height {len(headers)} should be {expected:#010x}"
        )


def compute_median_time_past(headers: Sequence[BlockHeader]) -> int:
    """Median time of the last 11 blocks: a new block must be later than this."""
    times = sorted(h.time for h in headers[-MEDIAN_TIME_SPAN_BLOCKS:])
    return times[len(times) // 2]


@dataclass(frozen=True, slots=True)
class RetargetExplanation:
    height: int
    old_bits: int
    new_bits: int
    actual_timespan_s: int
    target_timespan_s: int

    @property
    def target_change_percent(self) -> int:
        old = decode_compact(self.old_bits).value
        new = decode_compact(self.new_bits).value
        if not old:
            return 0
        # Truncate toward zero so "shrank by 55%" and "grew by 55%" round alike.
        magnitude = abs(new - old) * 100 // old
        return magnitude if new >= old else -magnitude

    def sentence(self) -> str:
        gap_percent = (
            abs(self.actual_timespan_s - self.target_timespan_s) * 100 // self.target_timespan_s
        )
        if self.actual_timespan_s < self.target_timespan_s:
            pace = f"blocks came {gap_percent}% faster than the target"
        elif self.actual_timespan_s > self.target_timespan_s:
            pace = f"blocks came {gap_percent}% slower than the target"
        else:
            pace = "blocks came exactly on target"
        change = self.target_change_percent
        if change < 0:
            effect = f"so the target shrank by {-change}% (mining got harder)"
        elif change > 0:
            effect = f"so the target grew by {change}% (mining got easier)"
        else:
            effect = "so the target stayed the same"
        return f"At height {self.height}, {pace}, {effect}."


def explain_retarget(headers: Sequence[BlockHeader], params: ChainParams) -> RetargetExplanation | None:
    """Why the block after ``headers[-1]`` has the difficulty it has, if it retargets."""
    height = len(headers)
    if not is_retarget_height(height, params):
        return None
    return explain_retarget_between(height, headers[compute_retarget_window_start(height, params)], headers[-1], params)


def explain_retarget_between(
    height: int, first: BlockHeader, last: BlockHeader, params: ChainParams
) -> RetargetExplanation | None:
    """``explain_retarget`` for the block at ``height`` from the only two headers it reads: the
    one it measures from (``compute_retarget_window_start``) and the last (``height - 1``), so
    that an old retarget can be explained from two headers read from the store."""
    if not is_retarget_height(height, params):
        return None
    timespan = compute_retarget_timespan_s(height, params)
    return RetargetExplanation(
        height=height,
        old_bits=last.bits,
        new_bits=compute_next_work_required(last.bits, first.time, last.time, params, timespan),
        actual_timespan_s=last.time - first.time,
        target_timespan_s=timespan,
    )


def compute_calibrated_bits(hashes_per_s: int, params: ChainParams) -> int:
    """First difficulty of a new chain: one target spacing of the measured hash rate."""
    expected_hashes = max(1, hashes_per_s) * params.target_spacing_s
    return encode_compact(compute_target_for_work(expected_hashes, params.pow_limit))
