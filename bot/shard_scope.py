"""Which Discord servers one bot process serves: those of its shards.

Discord sends a server's events and interactions to shard ``(guild_id >> 22) % shard_count`` (the
server id's timestamp bits, so consecutive servers spread over the shards).  A process running
shards ``shard_ids`` of ``shard_count`` owns exactly those servers: it loads, mines, drives slots
for and announces only them.  The engine never sees this formula: it gets ``ShardScope.owns`` as a
plain predicate (``Node(owns=...)``), so chain/ stays free of Discord.

A single process (no ``SHARD_COUNT``) is ``ShardScope.everything()``: one shard of one, owning all.
"""

from __future__ import annotations

from dataclasses import dataclass

from chain.adapters.storage.lease import MAX_LAYOUT

# Discord snowflakes keep their creation time above bit 22: the shard formula uses those bits.
SNOWFLAKE_TIMESTAMP_SHIFT = 22
# Far above what Discord gives a bot; keeps a typo out, and the lease key (a shard count is a lease layout) in 32 bits.
MAX_SHARD_COUNT = MAX_LAYOUT


class ShardSpecError(ValueError):
    """A shard list that cannot be used: the message says which part and why."""


def shard_of(guild_id: int, shard_count: int) -> int:
    """The shard Discord routes this server to."""
    return (guild_id >> SNOWFLAKE_TIMESTAMP_SHIFT) % shard_count


def parse_shard_ids(text: str, shard_count: int) -> tuple[int, ...]:
    """``"0,2,5-7"`` -> (0, 2, 5, 6, 7): sorted, each below ``shard_count``, none twice."""
    ids: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            raise ShardSpecError("must list shard numbers like 0,1 or 0-3 (an empty item)")
        low, dash, high = part.partition("-")
        if not low.strip().isdigit() or (dash and not high.strip().isdigit()):
            raise ShardSpecError(f"must list shard numbers like 0,1 or 0-3 ({part!r} is not one)")
        first, last = int(low), int(high) if dash else int(low)
        if last < first:
            raise ShardSpecError(f"range {part} runs backwards")
        ids.extend(range(first, last + 1))
    if len(set(ids)) != len(ids):
        raise ShardSpecError("names a shard twice")
    too_high = [i for i in ids if i >= shard_count]
    if too_high:
        raise ShardSpecError(f"names shard {too_high[0]}, but shards are 0..{shard_count - 1} (SHARD_COUNT)")
    return tuple(sorted(ids))


def format_shard_ids(ids: tuple[int, ...]) -> str:
    """(0, 1, 2, 5) -> ``"0-2,5"``: the form ``parse_shard_ids`` reads, short enough for a log line."""
    parts: list[str] = []
    start = previous = None
    for i in (*ids, None):
        if i is not None and previous is not None and i == previous + 1:
            previous = i
            continue
        if start is not None:
            parts.append(str(start) if start == previous else f"{start}-{previous}")
        start = previous = i
    return ",".join(parts)


@dataclass(frozen=True, slots=True)
class ShardScope:
    """Shards ``shard_ids`` of ``shard_count``: the servers one process owns."""

    shard_count: int
    shard_ids: tuple[int, ...]

    def __post_init__(self) -> None:
        if not 1 <= self.shard_count <= MAX_SHARD_COUNT:
            raise ShardSpecError(f"shard count must be 1..{MAX_SHARD_COUNT}, got {self.shard_count}")
        if not self.shard_ids:
            raise ShardSpecError("a process needs at least one shard")
        if tuple(sorted(set(self.shard_ids))) != self.shard_ids:
            raise ShardSpecError("shard ids must be sorted and distinct")
        if self.shard_ids[-1] >= self.shard_count:
            raise ShardSpecError(f"shard {self.shard_ids[-1]} is not below the shard count {self.shard_count}")

    @classmethod
    def everything(cls) -> ShardScope:
        """One process serving every server (the default, unsharded bot)."""
        return cls(1, (0,))

    @property
    def owns_everything(self) -> bool:
        return len(self.shard_ids) == self.shard_count

    def shard_of(self, guild_id: int) -> int:
        return shard_of(guild_id, self.shard_count)

    def owns(self, guild_id: int) -> bool:
        """Whether this process serves the server (Discord routes its events to one of our shards)."""
        return self.owns_everything or self.shard_of(guild_id) in self.shard_ids

    def describe(self) -> str:
        """For log lines and refusals: ``shards 0-1 of 4``."""
        return f"shard{'s' if len(self.shard_ids) > 1 else ''} {format_shard_ids(self.shard_ids)} of {self.shard_count}"


def split_shards(shard_count: int, processes: int) -> list[tuple[int, ...]]:
    """Shards 0..shard_count-1 split into ``processes`` contiguous runs, the first ones one longer."""
    if not 1 <= processes <= shard_count:
        raise ShardSpecError(f"processes must be 1..{shard_count} (one shard each at least), got {processes}")
    base, extra = divmod(shard_count, processes)
    runs: list[tuple[int, ...]] = []
    start = 0
    for index in range(processes):
        size = base + (1 if index < extra else 0)
        runs.append(tuple(range(start, start + size)))
        start += size
    return runs


def split_workers(total: int, processes: int) -> list[int]:
    """``total`` hashing workers over ``processes`` processes, each at least one, the first ones one more."""
    base, extra = divmod(max(total, processes), processes)
    return [base + (1 if index < extra else 0) for index in range(processes)]
