"""Which game runs on which chain: one at a time per chain (issue 11, the games).

A double spend, a selfish-mining pool and a network split each take over how blocks are found on a
server's chain for a few minutes; two at once would mix their blocks and spoil both summaries. Every
game starts through ``GameSessions.start``, a check-then-act done under one lock, so two admins
starting games at the same moment get one game and one ``GameAlreadyRunningError``.

Sessions live in memory: a restart ends every game (its blocks stay on the chain; only the summary
is lost), as a game is minutes long and its state is the running tasks themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar, runtime_checkable

from chain.consensus.block import Block
from chain.errors import GameAlreadyRunningError, NoGameRunningError
from chain.ledger.transaction import Transfer
from chain.pos.operations import Operations

if TYPE_CHECKING:  # the node imports nothing from here; named for checkers only
    from chain.adapters.node import MiningResult
    from chain.consensus.block import Block

GameT = TypeVar("GameT")


@dataclass(frozen=True, slots=True)
class RunningGame(Generic[GameT]):
    """A started game: its kind (``double_spend``, ``selfish_mining``, ``network_split``) and its state."""

    chain_id: int
    kind: str
    game: GameT


@dataclass(frozen=True, slots=True)
class MinerRoute:
    """Where a member's ``/mine`` goes while a game runs: on ``parent_hash`` (a branch tip) instead of
    the main tip, with exactly ``transfers`` (None: the mempool's when the parent is the main tip, else
    none), published at once or kept by the game (``publish=False``: a private branch, a split's side).
    ``label`` says where, in the member's words ("the attackers' private branch"). ``private``: blocks the
    game holds unpublished on top of ``parent_hash``, oldest first (a private branch): the session mines
    on the last of them, checked on the branch's state (``Node.branch_template``). ``operations``: the
    game's own pool for that branch's block (a hybrid split's side: its validators' votes)."""

    parent_hash: bytes
    label: str
    publish: bool = True
    transfers: Sequence[Transfer] | None = None
    private: Sequence[Block] = ()
    operations: Operations | None = None


@runtime_checkable
class MinerRouter(Protocol):
    """A running game that decides where members mine (a network split's groups, an attacking team).

    ``Playground.mine`` asks ``route_miner`` before a member's session starts (None: the main tip, as
    usual) and hands the result to ``on_mined`` after it ends, found or not; the game keeps or publishes
    the block there. Both run on the event loop; a game's own check-then-act happens under its lock.
    """

    async def route_miner(self, owner: str) -> MinerRoute | None: ...

    async def on_mined(self, owner: str, route: MinerRoute, result: MiningResult) -> None: ...


class GameSessions:
    """The running game of each chain, started and ended under one lock."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._running: dict[int, RunningGame[object]] = {}

    async def start(self, chain_id: int, kind: str, game: GameT) -> RunningGame[GameT]:
        """Register ``game`` as the chain's running game, or ``GameAlreadyRunningError``."""
        async with self._lock:
            current = self._running.get(chain_id)
            if current is not None:
                raise GameAlreadyRunningError(chain_id, current.kind)
            running = RunningGame(chain_id, kind, game)
            self._running[chain_id] = running  # type: ignore[assignment]  # stored erased, returned typed
            return running

    async def end(self, chain_id: int, kind: str, game: object | None = None) -> object:
        """Remove the chain's running game of ``kind`` and return it, or ``NoGameRunningError``: of two
        calls at the same moment (an admin's stop and the game's own ending) exactly one gets it.

        ``game``: end it only if it is this very game. A game's own deadline passes itself, so that a
        deadline that fires after an admin stopped the game and started another ends nothing.
        """
        async with self._lock:
            current = self._running.get(chain_id)
            if current is None or current.kind != kind or (game is not None and current.game is not game):
                raise NoGameRunningError(chain_id, kind)
            del self._running[chain_id]
            return current.game

    def current(self, chain_id: int) -> RunningGame[object] | None:
        """The chain's running game, if any (a read: decisions go through ``start``/``end``)."""
        return self._running.get(chain_id)

    def get(self, chain_id: int, kind: str) -> object:
        """The chain's running game of ``kind``, or ``NoGameRunningError``."""
        current = self._running.get(chain_id)
        if current is None or current.kind != kind:
            raise NoGameRunningError(chain_id, kind)
        return current.game
