"""The recent end of a chain: a bounded window of headers or hashes that still reads as the whole chain.

A ``ChainState`` needs only the last few blocks to judge the next one: the
retarget window (``headers[height - retarget_window_blocks]``) and the median
time of the last 11.  ``RecentWindow`` keeps the genesis item and at least the
last ``capacity`` items, while ``len()`` stays the chain's length, so
chain/pow/difficulty.py's functions, which take "the main chain from genesis" and index
it by height, work on it unchanged.  Asking for an item older than the window
raises ``HistoryUnavailableError`` (never an ``IndexError``: iteration would
take that for the end of the chain and stop silently); the store has every block.

Memory is bounded by ``2 * capacity`` items whatever the chain's length: items
are dropped in chunks, so that appending stays O(1) amortised and indexing O(1).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar, overload

from chain.errors import HistoryUnavailableError

T = TypeVar("T")


class RecentWindow(Sequence[T]):
    """Item 0 (genesis) and the newest items of a chain; indexed by height."""

    def __init__(self, first: T, capacity: int, recent: Iterable[T] = (), start: int = 1) -> None:
        """``recent`` holds the items at heights ``start``, ``start + 1``... (none below 1: item 0 is ``first``)."""
        if capacity < 1:
            raise ValueError(f"a window keeps at least one item, not {capacity}")
        if start < 1:
            raise ValueError(f"the window's recent items start at height 1 or later, not {start}")
        self._first = first
        self._items: list[T] = list(recent)
        self._start = start if self._items else 1
        self.capacity = capacity

    def __len__(self) -> int:
        return self._start + len(self._items)

    @property
    def oldest_kept(self) -> int:
        """The lowest height above 0 still in memory (every height from it to the tip is)."""
        return self._start

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        length = len(self)
        position = index + length if index < 0 else index
        if not 0 <= position < length:
            raise IndexError(f"height {index} is not in a chain of {length} blocks")
        if position == 0:
            return self._first
        if position < self._start:
            raise HistoryUnavailableError(
                f"block {position} is older than the {len(self._items)} recent blocks kept in memory "
                f"(from block {self._start}); read it from the store"
            )
        return self._items[position - self._start]

    def __iter__(self) -> Iterator[T]:
        # Sequence's default stops at the first IndexError; HistoryUnavailableError is not one, so a
        # trimmed window refuses to iterate instead of pretending the chain ends early.
        for position in range(len(self)):
            yield self[position]

    def __eq__(self, other: object) -> bool:
        # Equal to a list, tuple or window of the same items (every one must still be in memory).
        if not isinstance(other, (list, tuple, RecentWindow)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]  # mutable, like a list

    def __reversed__(self) -> Iterator[T]:
        for position in range(len(self) - 1, -1, -1):
            yield self[position]

    def append(self, item: T) -> list[T]:
        """Add the next height's item; return the items dropped to keep memory bounded (oldest first)."""
        self._items.append(item)
        if len(self._items) < 2 * self.capacity:
            return []
        drop = len(self._items) - self.capacity
        dropped = self._items[:drop]
        del self._items[:drop]
        self._start += drop
        return dropped

    def prepend(self, older: Sequence[T]) -> None:
        """Give back the items just below the window (read from the store), so that it reaches further."""
        if not older:
            return
        if len(older) > self._start - 1:
            raise ValueError(f"{len(older)} items do not fit below height {self._start}")
        self._items[:0] = list(older)
        self._start -= len(older)

    def copy(self) -> RecentWindow[T]:
        """The same window, on its own list: appending to one leaves the other as it was."""
        twin: RecentWindow[T] = RecentWindow(self._first, self.capacity, self._items, self._start)
        return twin

    def reserve(self, capacity: int) -> None:
        """Keep at least ``capacity`` recent items from now on (a longer retarget window needs more)."""
        self.capacity = max(self.capacity, capacity)
