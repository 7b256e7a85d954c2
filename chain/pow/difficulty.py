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

from chain.errors import BadDifficultyBitsError, CheckProofOfWorkError, CompactBitsError
from chain.hashing import hash_to_display, hash_to_int
from chain.params import MEDIAN_TIME_SPAN_BLOCKS, ChainParams
from chain.pow.compact import (
    compute_block_work,
    compute_target,
    compute_target_for_work,
    decode_compact,
    encode_compact,
)
from chain.pow.header import BlockHeader

# Core clamps the measured timespan to [timespan / 4, timespan * 4].
RETARGET_CLAMP_FACTOR = 4
# Early retarget (``ChainParams.early_retarget``): a calibration stretch whose blocks came more than
# twice slower, or four times faster, than planned is retargeted at once, not at the window's end.
# Asymmetric on purpose: one solve time is an exponential draw, below half its mean 39% of the time
# but above twice its mean only 13.5%; a symmetric rule fires three times as often toward harder
# and left a correctly calibrated chain's first blocks at ~77 s, not 60 (benchmarks/bench_early_retarget.py).
# Slow blocks are what a class waits for; fast ones the regular retarget fixes.
EARLY_RETARGET_SLOW_FACTOR = 2
EARLY_RETARGET_FAST_FACTOR = 4

# Why a block's bits differ from its parent's (``RetargetExplanation.reason``).
REASON_RETARGET = "retarget"
REASON_EARLY = "early retarget"
REASON_BLOCK_TIME = "block time change"


@dataclass(frozen=True, slots=True)
class SpacingChange:
    """The latest change of the target spacing below a block: ``first_height`` is the first block
    the new spacing governs (the committing block's height + 1), ``old_spacing_s`` the spacing the
    blocks before it aimed for.  Derived from the chain's committed parameter changes."""

    first_height: int
    old_spacing_s: int


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


def compute_calibration_anchor(params: ChainParams, spacing_change: SpacingChange | None) -> int:
    """The block the current calibration stretch measures from: the block that committed the
    latest spacing change (with ``rescale_on_spacing_change``), else genesis (0)."""
    if spacing_change is None or not params.rescale_on_spacing_change or params.no_retargeting:
        return 0
    return spacing_change.first_height - 1


def compute_retarget_window_start(height: int, params: ChainParams, anchor: int = 0) -> int:
    """The height of the block a retarget at ``height`` measures from.

    Core: the window's first block, one interval short of the window (the historical
    off-by-one every Bitcoin node keeps).  With ``retarget_full_window``: the block before
    it, so every interval of the window counts (the first retarget has only the blocks
    since genesis).  Never before ``anchor`` (``compute_calibration_anchor``): blocks mined
    for an older block time would distort the measure of the new one."""
    if params.retarget_full_window:
        start = max(0, height - params.retarget_window_blocks - 1)
    else:
        start = height - params.retarget_window_blocks
    return max(start, anchor)


def compute_retarget_timespan_s(height: int, params: ChainParams, anchor: int = 0) -> int:
    """How long the stretch a retarget at ``height`` measures should have taken."""
    start = compute_retarget_window_start(height, params, anchor)
    if params.retarget_full_window or start == anchor > 0:
        return params.target_spacing_s * (height - 1 - start)
    return params.target_timespan_s


def compute_rescaled_bits(last_bits: int, old_spacing_s: int, new_spacing_s: int, params: ChainParams) -> int:
    """The block-time rule (``ChainParams.rescale_on_spacing_change``): the first block under a new
    target spacing gets the last target scaled by new/old spacing (capped at the proof-of-work
    limit), so the same hash rate finds it in the new time at once, not after the next retarget."""
    target = decode_compact(last_bits).value * new_spacing_s // old_spacing_s
    return encode_compact(max(1, min(target, params.pow_limit)))


def compute_measured_rate_bits(headers: Sequence[BlockHeader], start: int, params: ChainParams) -> int:
    """The bits one target spacing of the hash rate measured since block ``start`` asks for.

    The rate is the work of blocks ``start + 1 .. tip`` over the time they took, so blocks mined at
    different targets (an early retarget, a block time change) each count for what they cost.  The
    new target stays within Core's 4x of the last one, and at or below the proof-of-work limit."""
    last = headers[-1]
    work = sum(compute_block_work(decode_compact(headers[h].bits).value) for h in range(start + 1, len(headers)))
    elapsed = max(1, last.time - headers[start].time)
    target = compute_target_for_work(max(1, work * params.target_spacing_s // elapsed), params.pow_limit)
    last_target = decode_compact(last.bits).value
    target = max(last_target // RETARGET_CLAMP_FACTOR, min(target, last_target * RETARGET_CLAMP_FACTOR))
    return encode_compact(max(1, min(target, params.pow_limit)))


def is_rescale_height(height: int, params: ChainParams, spacing_change: SpacingChange | None) -> bool:
    """Whether the block at ``height`` is the first under a new target spacing, on a chain that
    rescales for it (``ChainParams.rescale_on_spacing_change``)."""
    return (
        params.rescale_on_spacing_change
        and not params.no_retargeting
        and spacing_change is not None
        and height == spacing_change.first_height
        and spacing_change.old_spacing_s != params.target_spacing_s
    )


def is_early_retarget_height(height: int, params: ChainParams, anchor: int) -> bool:
    """Whether the block at ``height`` is in a calibration stretch (``ChainParams.early_retarget``):
    after the first block since ``anchor`` and before the first regular retarget after it."""
    if not params.early_retarget or params.no_retargeting:
        return False
    window = params.retarget_window_blocks
    first_retarget = ((anchor + 1) // window + 1) * window
    return anchor + 1 < height < first_retarget


def is_far_off_target(elapsed_s: int, planned_s: int) -> bool:
    """More than twice slower, or four times faster, than planned (see ``EARLY_RETARGET_SLOW_FACTOR``)."""
    return elapsed_s > planned_s * EARLY_RETARGET_SLOW_FACTOR or elapsed_s * EARLY_RETARGET_FAST_FACTOR < planned_s


def compute_expected_bits(
    headers: Sequence[BlockHeader], params: ChainParams, spacing_change: SpacingChange | None = None
) -> int:
    """Core's ``GetNextWorkRequired`` for the block after ``headers[-1]``.

    ``headers`` is the main chain from genesis; the new block's height is
    ``len(headers)``.  ``spacing_change`` is the chain's latest change of target spacing
    below that block (``ChainState.spacing_change_at``); it matters only to chains with
    ``rescale_on_spacing_change``.  With ``early_retarget``, a calibration stretch (the first
    window of a chain or after a block time change) retargets as soon as its blocks are far off.
    """
    height = len(headers)
    last = headers[-1]
    if spacing_change is not None and is_rescale_height(height, params, spacing_change):
        return compute_rescaled_bits(last.bits, spacing_change.old_spacing_s, params.target_spacing_s, params)
    anchor = compute_calibration_anchor(params, spacing_change)
    if is_early_retarget_height(height, params, anchor):
        planned = (height - 1 - anchor) * params.target_spacing_s
        if is_far_off_target(last.time - headers[anchor].time, planned):
            return compute_measured_rate_bits(headers, anchor, params)
        return last.bits
    if not is_retarget_height(height, params):
        return last.bits
    start = compute_retarget_window_start(height, params, anchor)
    if params.early_retarget and any(headers[h].bits != last.bits for h in range(start + 1, height - 1)):
        # An early retarget inside the window: a time/timespan ratio would mix targets.
        return compute_measured_rate_bits(headers, start, params)
    first = headers[start]
    return compute_next_work_required(
        last.bits, first.time, last.time, params, compute_retarget_timespan_s(height, params, anchor)
    )


def check_expected_bits(
    header: BlockHeader, headers: Sequence[BlockHeader], params: ChainParams,
    spacing_change: SpacingChange | None = None,
) -> None:
    expected = compute_expected_bits(headers, params, spacing_change)
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
    # What the measured stretch took and should have taken; for a block time change, the old and
    # new target spacing.
    actual_timespan_s: int
    target_timespan_s: int
    reason: str = REASON_RETARGET

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
        change = self.target_change_percent
        if change < 0:
            effect = f"so the target shrank by {-change}% (mining got harder)"
        elif change > 0:
            effect = f"so the target grew by {change}% (mining got easier)"
        else:
            effect = "so the target stayed the same"
        if self.reason == REASON_BLOCK_TIME:
            return (
                f"At height {self.height}, the block time went from {self.actual_timespan_s} s to "
                f"{self.target_timespan_s} s, {effect}."
            )
        gap_percent = (
            abs(self.actual_timespan_s - self.target_timespan_s) * 100 // self.target_timespan_s
        )
        if self.actual_timespan_s < self.target_timespan_s:
            pace = f"blocks came {gap_percent}% faster than the target"
        elif self.actual_timespan_s > self.target_timespan_s:
            pace = f"blocks came {gap_percent}% slower than the target"
        else:
            pace = "blocks came exactly on target"
        early = " (early retarget)" if self.reason == REASON_EARLY else ""
        return f"At height {self.height}{early}, {pace}, {effect}."


def explain_retarget(
    headers: Sequence[BlockHeader], params: ChainParams, spacing_change: SpacingChange | None = None
) -> RetargetExplanation | None:
    """Why the block after ``headers[-1]`` has the difficulty it has, if a rule measured it (a
    retarget, an early retarget that fired) or rescaled it (a block time change)."""
    height = len(headers)
    last = headers[-1]
    new_bits = compute_expected_bits(headers, params, spacing_change)
    if spacing_change is not None and is_rescale_height(height, params, spacing_change):
        return RetargetExplanation(
            height, last.bits, new_bits, spacing_change.old_spacing_s, params.target_spacing_s, REASON_BLOCK_TIME
        )
    anchor = compute_calibration_anchor(params, spacing_change)
    if is_early_retarget_height(height, params, anchor):
        elapsed = last.time - headers[anchor].time
        planned = (height - 1 - anchor) * params.target_spacing_s
        if not is_far_off_target(elapsed, planned):
            return None
        return RetargetExplanation(height, last.bits, new_bits, elapsed, planned, REASON_EARLY)
    if not is_retarget_height(height, params):
        return None
    first = headers[compute_retarget_window_start(height, params, anchor)]
    return explain_retarget_between(height, first, last, params, new_bits, anchor)


def explain_retarget_between(
    height: int, first: BlockHeader, last: BlockHeader, params: ChainParams,
    new_bits: int | None = None, anchor: int = 0,
) -> RetargetExplanation | None:
    """``explain_retarget`` of a regular retarget at ``height`` from the only two headers it reads:
    the one it measures from (``compute_retarget_window_start``) and the last (``height - 1``), so
    that an old retarget can be explained from two headers read from the store.  ``new_bits``: the
    bits the block at ``height`` carries (default: what Core's formula gives from those two)."""
    if not is_retarget_height(height, params):
        return None
    timespan = compute_retarget_timespan_s(height, params, anchor)
    if new_bits is None:
        new_bits = compute_next_work_required(last.bits, first.time, last.time, params, timespan)
    return RetargetExplanation(
        height=height,
        old_bits=last.bits,
        new_bits=new_bits,
        actual_timespan_s=last.time - first.time,
        target_timespan_s=timespan,
    )


def compute_calibrated_bits(hashes_per_s: int, params: ChainParams) -> int:
    """First difficulty of a new chain: one target spacing of the measured hash rate."""
    expected_hashes = max(1, hashes_per_s) * params.target_spacing_s
    return encode_compact(compute_target_for_work(expected_hashes, params.pow_limit))
