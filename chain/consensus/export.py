"""A chain as a self-contained JSON document that verifies offline.

The genesis block commits to the chain id and parameters, so a document whose
parameters were edited fails verification at block 0.

A chain whose tree has blocks off the main chain (orphaned: late blocks, lost branches) carries
them too, under ``"orphans"`` after ``"blocks"``: each its height, its parent's hash (as shown) and
its bytes, by ascending height, so the verifier checks the whole tree.  A chain without orphans
exports exactly as before, and an export made before orphans were exported still verifies.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from chain.consensus.block import Block
from chain.consensus.verify import NO_ORPHANS, OrphanListing, Orphans
from chain.errors import EncodingError, ExportTooLargeError, ParamsError
from chain.hashing import HASH_SIZE_BYTES, hash_from_display, hash_to_display
from chain.params import ChainParams
from chain.pos.beacon import ConsensusConfig

EXPORT_FORMAT = "consensus-playground/chain/v1"
# Blocks per chunk ``encode_export`` yields: few writes, and never much more than one chunk in memory.
BLOCKS_PER_CHUNK = 256
_COMPACT = (",", ":")
# One orphan's entry around its height's digits and its bytes' hex (the parent's hash is 64 digits).
_ORPHAN_ENTRY_CHARS = len('{"height":,"parent":"","block":""}') + 2 * HASH_SIZE_BYTES
_ORPHANS_OPEN = ',"orphans":['


@dataclass(frozen=True, slots=True)
class OrphanRows:
    """The orphaned blocks an export streams: ``rows`` yields (height, parent hash, stored bytes) by
    ascending height; ``count``, ``raw_size`` (their bytes together) and ``height_digits`` (the
    decimal digits of their heights together) size the export before a row is read."""

    count: int
    raw_size: int
    height_digits: int
    rows: Iterable[tuple[int, bytes, bytes]]


NO_ORPHAN_ROWS = OrphanRows(0, 0, 0, ())


def _orphan_entry(height: int, parent_hash: bytes, raw: bytes) -> str:
    return f'{{"height":{height},"parent":"{hash_to_display(parent_hash)}","block":"{raw.hex()}"}}'


def export_chain(
    params: ChainParams,
    chain_id: int,
    blocks: list[Block],
    param_changes: Iterable[tuple[int, ChainParams]] = (),
    consensus: ConsensusConfig | None = None,
    consensus_changes: Iterable[tuple[int, ConsensusConfig]] = (),
    orphans: Sequence[tuple[int, Block]] = (),
) -> dict[str, Any]:
    """``params`` are the genesis rules; ``param_changes`` the committed changes since;
    ``consensus`` the chain's consensus config (omitted for a plain proof-of-work chain);
    ``orphans`` the blocks off the main chain as (height, block) (omitted when there are none)."""
    document: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "chain_id": chain_id,
        "params": params.to_json(),
        "param_changes": [{"height": h, "params": p.to_json()} for h, p in param_changes],
        "height": len(blocks) - 1,
        "tip": blocks[-1].header.hash_hex(),
        "blocks": [b.serialize().hex() for b in blocks],
    }
    if orphans:
        document["orphans"] = [
            json.loads(_orphan_entry(h, b.header.prev_hash, b.serialize()))
            for h, b in sorted(orphans, key=lambda item: item[0])
        ]
    if consensus is not None:
        document["consensus"] = consensus.to_json()
        document["consensus_changes"] = [{"height": h, "consensus": c.to_json()} for h, c in consensus_changes]
    return document


def encode_export(
    params: ChainParams,
    chain_id: int,
    height: int,
    tip_hex: str,
    raw_blocks: Iterable[bytes],
    raw_size: int,
    param_changes: Iterable[tuple[int, ChainParams]] = (),
    consensus: ConsensusConfig | None = None,
    consensus_changes: Iterable[tuple[int, ConsensusConfig]] = (),
    *,
    orphans: OrphanRows = NO_ORPHAN_ROWS,
    limit: int | None = None,
) -> Iterator[bytes]:
    """``export_chain``'s document as compact JSON, in chunks, from the blocks' stored bytes.

    The same bytes as ``json.dumps(export_chain(...), separators=(",", ":"))``
    without holding a ``Block``, the document or its text: blocks stream from
    ``raw_blocks`` (``height + 1`` of them, ``raw_size`` bytes together).  The
    size is known before the first block is read, so an export over ``limit``
    raises ``ExportTooLargeError`` before anything is built.  ``orphans`` stream the same way,
    after the blocks.
    """
    head = {
        "format": EXPORT_FORMAT,
        "chain_id": chain_id,
        "params": params.to_json(),
        "param_changes": [{"height": h, "params": p.to_json()} for h, p in param_changes],
        "height": height,
        "tip": tip_hex,
    }
    prefix = (json.dumps(head, separators=_COMPACT)[:-1] + ',"blocks":[').encode()
    tail: dict[str, object] = {}
    if consensus is not None:
        tail["consensus"] = consensus.to_json()
        tail["consensus_changes"] = [{"height": h, "consensus": c.to_json()} for h, c in consensus_changes]
    suffix = ("," + json.dumps(tail, separators=_COMPACT)[1:] if tail else "}").encode()
    count = height + 1
    # Each block is its bytes in hex between quotes, with a comma between blocks.
    size = len(prefix) + 2 * raw_size + 2 * count + (count - 1) + 1 + len(suffix)
    if orphans.count:
        size += len(_ORPHANS_OPEN) + 1 + (orphans.count - 1)
        size += orphans.count * _ORPHAN_ENTRY_CHARS + orphans.height_digits + 2 * orphans.raw_size
    if limit is not None and size > limit:
        raise ExportTooLargeError(size, limit)
    yield prefix
    written = yield from _stream_list(f'"{raw.hex()}"' for raw in raw_blocks)
    if written != count:
        raise EncodingError(f"the export was to hold {count} blocks, but {written} were read")
    yield b"]"
    if orphans.count:
        yield _ORPHANS_OPEN.encode()
        written = yield from _stream_list(_orphan_entry(*row) for row in orphans.rows)
        if written != orphans.count:
            raise EncodingError(f"the export was to hold {orphans.count} orphaned blocks, but {written} were read")
        yield b"]"
    yield suffix


def _stream_list(items: Iterable[str]) -> Generator[bytes, None, int]:
    """JSON list items (without the brackets), comma-separated, ``BLOCKS_PER_CHUNK`` to a chunk;
    returns how many there were."""
    written = 0
    chunk: list[str] = []
    for item in items:
        chunk.append(item)
        written += 1
        if len(chunk) == BLOCKS_PER_CHUNK:
            yield (("," if written > len(chunk) else "") + ",".join(chunk)).encode()
            chunk = []
    if chunk:
        yield (("," if written > len(chunk) else "") + ",".join(chunk)).encode()
    return written


def import_consensus_changes(document: Any) -> list[tuple[int, ConsensusConfig]]:
    """Merge schedules committed since genesis, by the height of the committing block."""
    raw = document.get("consensus_changes", []) if isinstance(document, dict) else []
    if not isinstance(raw, list):
        raise EncodingError("consensus_changes must be a list")
    changes = []
    for entry in raw:
        if not isinstance(entry, dict) or not isinstance(entry.get("height"), int) or not isinstance(
            entry.get("consensus"), str
        ):
            raise EncodingError("each Merge schedule needs an integer height and the config as a JSON string")
        changes.append((entry["height"], ConsensusConfig.from_json(entry["consensus"])))
    return changes


def import_consensus(document: Any) -> ConsensusConfig | None:
    """The exported consensus config; None for a chain without one (genesis commits to which)."""
    raw = document.get("consensus") if isinstance(document, dict) else None
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ParamsError("consensus must be the consensus config as a JSON string")
    return ConsensusConfig.from_json(raw)


def import_chain(document: Any) -> tuple[ChainParams, int, list[Block]]:
    """Genesis rules, chain id and blocks; ``import_param_changes`` gives the rule changes."""
    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        raise EncodingError(f"not a Consensus Playground chain export (expected format {EXPORT_FORMAT!r})")
    chain_id = document.get("chain_id")
    if not isinstance(chain_id, int) or isinstance(chain_id, bool):
        raise EncodingError("chain_id must be an integer")
    params_json = document.get("params")
    if not isinstance(params_json, str):
        raise ParamsError("params must be the chain parameters as a JSON string")
    params = ChainParams.from_json(params_json)
    raw_blocks = document.get("blocks")
    if not isinstance(raw_blocks, list) or not raw_blocks:
        raise EncodingError("blocks must be a non-empty list of hex strings")
    blocks = []
    for height, raw in enumerate(raw_blocks):
        try:
            blocks.append(Block.deserialize(bytes.fromhex(raw)))
        except (ValueError, TypeError) as exc:
            raise EncodingError(f"block {height} is not valid hex: {exc}") from exc
    return params, chain_id, blocks


def import_param_changes(document: Any) -> list[tuple[int, ChainParams]]:
    raw = document.get("param_changes", []) if isinstance(document, dict) else []
    if not isinstance(raw, list):
        raise EncodingError("param_changes must be a list")
    changes = []
    for entry in raw:
        if not isinstance(entry, dict) or not isinstance(entry.get("height"), int) or not isinstance(
            entry.get("params"), str
        ):
            raise EncodingError("each parameter change needs an integer height and params as a JSON string")
        changes.append((entry["height"], ChainParams.from_json(entry["params"])))
    return changes


def import_orphans(document: Any) -> Orphans:
    """The export's orphaned blocks, as listed (an export without any, or made before orphans were
    exported, has none); ``verify_chain`` checks that they are listed by height and each block
    matches its listing."""
    raw = document.get("orphans", []) if isinstance(document, dict) else []
    if not isinstance(raw, list):
        raise EncodingError("orphans must be a list")
    listings: list[OrphanListing] = []
    blocks: list[Block] = []
    for index, entry in enumerate(raw):
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("height"), int)
            or isinstance(entry.get("height"), bool)
            or not isinstance(entry.get("parent"), str)
            or not isinstance(entry.get("block"), str)
        ):
            raise EncodingError(
                f"orphan {index} needs an integer height, its parent's hash and the block, both as hex strings"
            )
        try:
            parent_hash = hash_from_display(entry["parent"])
            block = Block.deserialize(bytes.fromhex(entry["block"]))
        except (ValueError, TypeError) as exc:
            raise EncodingError(f"orphan {index} is not valid hex: {exc}") from exc
        listings.append(OrphanListing(block.hash(), parent_hash, entry["height"]))
        blocks.append(block)
    if not listings:
        return NO_ORPHANS
    return Orphans(listings, lambda: iter(blocks))
