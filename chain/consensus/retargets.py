"""The latest difficulty retargets of a chain, with why each changed the bits (/chain difficulty).

Read from the store's headers a batch at a time, never the whole chain: a long chain costs a few
small queries.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Protocol

from chain.consensus.state import ChainState
from chain.params import ChainParams
from chain.pow.difficulty import (
    RetargetExplanation,
    compute_calibration_anchor,
    compute_retarget_window_start,
    explain_retarget_between,
)
from chain.pow.header import BlockHeader

RECENT_RETARGETS_SHOWN = 5
# Bit changes are looked for among this many latest retargets, reading their headers
# RETARGET_BATCH retargets at a time (a chain stuck at its easiest target never changes bits).
RETARGETS_SEARCHED = 1_000
RETARGET_BATCH = 100


class HeaderSource(Protocol):
    async def headers_at(self, chain_id: int, heights: set[int]) -> dict[int, BlockHeader]: ...


def retarget_heights(state: ChainState) -> Iterator[tuple[int, ChainParams]]:
    """Every height at which a block retargeted, newest first, with the rules it was judged by
    (a rule change can move the window: each stretch of rules has its own multiples)."""
    height = state.height
    while height > 0:
        params = state.params_at(height)
        # The first block these rules governed: the one after the block that committed to them.
        stretch_start = max((at + 1 for at, _ in state.param_changes if at < height), default=1)
        retarget = height - height % params.retarget_window_blocks
        if not params.no_retargeting and retarget >= stretch_start:
            yield retarget, params
            height = retarget - 1
        else:
            height = stretch_start - 1


async def retarget_history(
    store: HeaderSource, chain_id: int, state: ChainState
) -> tuple[list[RetargetExplanation], RetargetExplanation | None]:
    """The latest retargets that changed the bits (among the last ``RETARGETS_SEARCHED``), newest
    first, and the latest retarget of all.  Each needs three headers (the retarget block, and the
    first and last of its window): read from the store a batch at a time, never the whole chain."""
    recent: list[RetargetExplanation] = []
    last: RetargetExplanation | None = None
    heights = islice(retarget_heights(state), RETARGETS_SEARCHED)
    while len(recent) < RECENT_RETARGETS_SHOWN:
        batch = list(islice(heights, RETARGET_BATCH))
        if not batch:
            break
        # A block time change restarts the window it falls in (chain/pow/difficulty.py).
        anchors = {
            height: compute_calibration_anchor(params, state.spacing_change_at(height)) for height, params in batch
        }
        starts = {height: compute_retarget_window_start(height, params, anchors[height]) for height, params in batch}
        wanted = {h for height, _ in batch for h in (height, height - 1, starts[height])}
        headers = await store.headers_at(chain_id, wanted)
        for height, params in batch:
            first, before, block = headers[starts[height]], headers[height - 1], headers[height]
            # The bits the block carries: an early retarget in the window measures work, not time alone.
            explanation = explain_retarget_between(height, first, before, params, block.bits, anchors[height])
            if explanation is None:
                continue
            if last is None:
                last = explanation
            if block.bits != before.bits and len(recent) < RECENT_RETARGETS_SHOWN:
                recent.append(explanation)
    return recent, last
