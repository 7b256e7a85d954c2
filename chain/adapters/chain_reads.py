"""Whole-chain reads, off the event loop: ``verify`` (replay from genesis), the export, and the
supply chart's history (``chain.adapters.supply_replay``).

Both cover the whole block tree: the orphaned (side) blocks are verified on their own branches
and exported after the main chain, streamed from the same snapshot.

Both read one snapshot of the store (``db.read_snapshot``: its own read-only connection, no store
lock held), so the writes of the chain go on meanwhile and the read sees one consistent chain.
They run in one thread of their own, one at a time: never in the default pool that block checks
use, and one CPU-bound thread is all the event loop has to share the GIL with.
"""

from __future__ import annotations

import asyncio
import functools
import io
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar

from chain.adapters.storage import Store
from chain.adapters.supply_replay import SupplyReplays
from chain.consensus.block import Block
from chain.consensus.export import encode_export
from chain.consensus.supply_history import SupplyHistory
from chain.consensus.verify import VerifyReport, verify_chain

T = TypeVar("T")

# Whole-chain reads (verify, export) run here, one at a time: never in the default pool that
# block checks use, and one CPU-bound thread is all the event loop has to share the GIL with.
BULK_READ_THREADS = 1


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What an export holds: blocks 0 to ``height`` and ``orphans`` blocks off the main chain,
    ``size`` bytes of JSON."""

    height: int
    tip: str
    size: int
    orphans: int = 0


class ChainReads:
    """Verify and export a stored chain in the reader thread (the caller checks the chain exists)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._bulk_reads = ThreadPoolExecutor(BULK_READ_THREADS, thread_name_prefix="chain-bulk-read")
        # The supply chart's replays run in the same thread, one at a time with verify and export.
        self.supply = SupplyReplays(store, self._bulk_read)

    def close(self) -> None:
        """Stop the whole-chain reader thread; a read under way finishes on its own connection."""
        self._bulk_reads.shutdown(wait=False, cancel_futures=True)

    async def _bulk_read(self, function: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._bulk_reads, functools.partial(function, *args))

    async def verify(self, chain_id: int, now: int) -> VerifyReport:
        """Replay the stored chain from genesis and compare with the stored balances; check every
        orphaned block of the tree on its own branch.

        Off the event loop and without the store's lock: blocks (and orphans) stream from one
        read snapshot into the replay, and the balances come from the same one.
        """
        return await self._bulk_read(self._verify_snapshot, chain_id, now)

    def _verify_snapshot(self, chain_id: int, now: int) -> VerifyReport:
        with self.store.db.read_snapshot(chain_id) as snapshot:
            _, report = verify_chain(
                snapshot.params, chain_id, snapshot.blocks(), now, snapshot.accounts(), snapshot.param_changes,
                snapshot.consensus, snapshot.consensus_changes, snapshot.orphans(),
            )
        return report

    async def supply_history(self, chain_id: int, now: int, tip_height: int) -> SupplyHistory:
        """Minted, burned, staked and circulating over height, sampled (``SupplyReplays.history``)."""
        return await self.supply.history(chain_id, now, tip_height)

    async def export_to(self, chain_id: int, out: BinaryIO, *, limit: int | None = None) -> ExportSummary:
        """Write the chain as compact JSON (``chain.consensus.export``'s format) to ``out``, off the event loop.

        Read from one snapshot and streamed block by block; over ``limit`` bytes it
        raises ``ExportTooLargeError`` before a block is read, having written nothing.
        """
        return await self._bulk_read(self._write_export, chain_id, out, limit)

    def _write_export(self, chain_id: int, out: BinaryIO, limit: int | None) -> ExportSummary:
        with self.store.db.read_snapshot(chain_id) as snapshot:
            tip = Block.deserialize(snapshot.raw_block(snapshot.height)).header.hash_hex()
            size = 0
            orphans = snapshot.orphan_rows()
            for chunk in encode_export(
                snapshot.params, chain_id, snapshot.height, tip, snapshot.raw_blocks(), snapshot.raw_size(),
                snapshot.param_changes, snapshot.consensus, snapshot.consensus_changes, orphans=orphans, limit=limit,
            ):
                out.write(chunk)
                size += len(chunk)
        return ExportSummary(snapshot.height, tip, size, orphans.count)

    async def export(self, chain_id: int) -> dict[str, Any]:
        """The export as a document (for callers that want one in memory; ``export_to`` streams)."""
        buffer = io.BytesIO()
        await self.export_to(chain_id, buffer)
        document: dict[str, Any] = json.loads(buffer.getvalue())
        return document
