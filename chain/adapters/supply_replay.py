"""The supply chart's history, replayed from the stored chain off the event loop (``SupplyReplays``).

No per-block supply totals are stored, so ``chain.consensus.supply_history.SupplyReplay`` replays the
blocks (every rule checked, like ``/chain verify``) in the whole-chain reader thread
(``ChainReads``: one at a time, never the default pool block checks use), from one read snapshot of
the store, so mining goes on meanwhile.

Bounded work per request:

* a chain's replay is kept (at most ``SUPPLY_REPLAYS_KEPT`` chains, the least recently asked for
  goes first), so the next request replays only the blocks that came since; a replay whose tip is
  no longer on the stored main chain (a reorg, a reset) or that predates a rule change is started
  again from genesis;
* requests for a chain at the same moment share one replay (looked up and started with no await
  in between);
* a request waits at most ``wait_s`` for it: a long chain's first replay goes on in the reader
  thread, and the request is refused with ``SupplyHistoryPendingError`` (saying how far it got),
  so a slash command can still answer within Discord's three seconds.  Asking again later
  gets the chart.

Memory: a kept replay holds a copy of the chain's state (its accounts, recent headers and beacon
state) and at most ``SUPPLY_MAX_POINTS`` samples.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import Any

from chain.adapters.storage import ChainSnapshot, Store
from chain.consensus.block import Block
from chain.consensus.supply_history import SupplyHistory, SupplyReplay
from chain.errors import SupplyHistoryPendingError

log = logging.getLogger(__name__)

SUPPLY_REPLAYS_KEPT = 4
# Under Discord's three seconds for a first answer, with room for the rest of the command.
SUPPLY_WAIT_S = 1.5

# ``ChainReads._bulk_read``: runs a function in the reader thread.
BulkRead = Callable[..., Coroutine[Any, Any, Any]]


class SupplyReplays:
    """Supply histories of stored chains; ``history`` on the event loop, the replays in ``bulk_read``'s thread."""

    def __init__(
        self, store: Store, bulk_read: BulkRead, *, kept: int = SUPPLY_REPLAYS_KEPT, wait_s: float = SUPPLY_WAIT_S
    ) -> None:
        self.store = store
        self._bulk_read = bulk_read
        self._kept = kept
        self.wait_s = wait_s
        # Touched only in the reader thread (one at a time): chain id -> its replay, most recent last.
        self._replays: OrderedDict[int, SupplyReplay] = OrderedDict()
        # Event loop only: the replay under way per chain, which requests at the same moment share.
        self._running: dict[int, asyncio.Task[SupplyHistory]] = {}
        # Written by the reader thread (one tuple, replaced whole), read by the loop: (height, tip).
        self._progress: dict[int, tuple[int, int]] = {}
        self.replays_started = 0
        """Replays handed to the reader thread (a request that joins one is not counted)."""

    async def history(self, chain_id: int, now: int, tip_height: int) -> SupplyHistory:
        """The chain's supply over height, sampled; ``SupplyHistoryPendingError`` while its replay
        takes longer than ``wait_s`` (it goes on: ask again).  ``tip_height``: the chain's height now,
        for the progress a refusal reports."""
        task = self._running.get(chain_id)
        if task is None:
            # No await between the look-up and this insert: simultaneous requests share one replay.
            task = asyncio.create_task(self._bulk_read(self._replay_to_tip, chain_id, now),
                                       name=f"supply-replay-{chain_id}")
            self._running[chain_id] = task
            self.replays_started += 1
            task.add_done_callback(lambda done: self._finished(chain_id, done))
        try:
            # Shielded: a request that stops waiting does not cancel the replay the others (and the
            # next request) will use.
            return await asyncio.wait_for(asyncio.shield(task), self.wait_s)
        except TimeoutError:
            height, tip = self._progress.get(chain_id, (0, tip_height))
            raise SupplyHistoryPendingError(
                f"the supply history is being replayed from the stored chain (block {height:,} of {tip:,} so "
                "far); ask again in a few seconds",
                replayed=height, height=tip,
            ) from None

    def _finished(self, chain_id: int, task: asyncio.Task[SupplyHistory]) -> None:
        if self._running.get(chain_id) is task:
            del self._running[chain_id]
        if not task.cancelled() and task.exception() is not None:
            # Retrieved here too: a replay whose requests all stopped waiting must not fail unseen.
            log.warning("supply replay of chain %d failed: %s", chain_id, task.exception())

    def _replay_to_tip(self, chain_id: int, now: int) -> SupplyHistory:
        """In the reader thread: the kept replay extended to the snapshot's tip (or a new one)."""
        with self.store.db.read_snapshot(chain_id) as snapshot:
            replay = self._replays.pop(chain_id, None)
            if replay is not None and not _still_on(replay, snapshot):
                log.info("supply replay of chain %d no longer matches the stored chain: replaying from genesis",
                         chain_id)
                replay = None
            if replay is None:
                genesis = Block.deserialize(snapshot.raw_block(0))
                replay = SupplyReplay(snapshot.params, chain_id, genesis, snapshot.consensus,
                                      [p for _, p in snapshot.param_changes])
            changes = dict(snapshot.param_changes)
            schedules = dict(snapshot.consensus_changes)
            self._progress[chain_id] = (replay.height, snapshot.height)
            try:
                for block in snapshot.blocks_from(replay.height + 1):
                    height = replay.height + 1
                    replay.extend(block, now, changes.get(height), schedules.get(height))
                    self._progress[chain_id] = (height, snapshot.height)
            finally:
                self._progress.pop(chain_id, None)
            # Kept only once it reached the snapshot's tip: a failed replay is not resumed.
            self._replays[chain_id] = replay
            while len(self._replays) > self._kept:
                self._replays.popitem(last=False)
            return replay.history()


def _still_on(replay: SupplyReplay, snapshot: ChainSnapshot) -> bool:
    """Whether the kept replay's tip is on the snapshot's main chain and its rules are all reserved."""
    if replay.height > snapshot.height or snapshot.block_hash(replay.height) != replay.tip_hash:
        return False
    if snapshot.block_hash(0) != replay.state.genesis_hash:
        return False
    return all(params in replay.reserved for _, params in snapshot.param_changes)
