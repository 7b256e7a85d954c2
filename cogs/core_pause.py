"""Mining gives way to commands, except while a command only waits on a worker thread.

The bot's command tree holds the hashing core (no new chunks) while any command
is in flight: on two cores, hashing slows everything else.  A command that then
waits seconds for a worker thread (a replay, an export) does nothing on the
event loop meanwhile, and holding the core for it would pause every server's
mining for its sake, so it wraps the wait in ``core_runs_while_waiting()``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Protocol


class Pausable(Protocol):
    """Background work that gives way while commands run (the hashing core); holds nest."""

    def hold(self) -> None: ...

    def release(self) -> None: ...


class _Hold:
    def __init__(self, pausable: Pausable) -> None:
        self._pausable = pausable
        self.held = False

    def take(self) -> None:
        if not self.held:
            self._pausable.hold()
            self.held = True

    def give_back(self) -> None:
        if self.held:
            self.held = False
            self._pausable.release()


# The hold of the command running in this context: the tree sets it before it starts the
# command's task, which copies the context, so the command's callback sees it.
_current: ContextVar[_Hold | None] = ContextVar("core_hold", default=None)


@contextmanager
def core_paused_for_command(pausable: Pausable | None) -> Iterator[None]:
    """Hold ``pausable`` while the body (a whole command) runs, however it ends."""
    if pausable is None:
        yield
        return
    hold = _Hold(pausable)
    hold.take()
    token = _current.set(hold)
    try:
        yield
    finally:
        _current.reset(token)
        hold.give_back()


@asynccontextmanager
async def core_runs_while_waiting() -> AsyncIterator[None]:
    """Let the core run during the body (a wait on a worker thread), then hold it again."""
    hold = _current.get()
    if hold is None or not hold.held:
        yield
        return
    hold.give_back()
    try:
        yield
    finally:
        hold.take()
