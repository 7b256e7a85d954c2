"""One game per chain: ``GameSessions`` (chain/adapters/game_sessions.py)."""

from __future__ import annotations

import asyncio

import pytest

from chain.adapters.game_sessions import GameSessions
from chain.errors import GameAlreadyRunningError, NoGameRunningError


async def test_two_games_started_at_the_same_moment_on_one_chain_start_once() -> None:
    sessions = GameSessions()
    results = await asyncio.gather(
        sessions.start(1, "double_spend", "a"), sessions.start(1, "network_split", "b"), return_exceptions=True
    )
    started = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, GameAlreadyRunningError)]
    assert len(started) == 1 and len(refused) == 1
    assert refused[0].kind == started[0].kind
    current = sessions.current(1)
    assert current is not None and current.game == started[0].game


async def test_games_on_different_chains_run_side_by_side() -> None:
    sessions = GameSessions()
    await sessions.start(1, "double_spend", "a")
    await sessions.start(2, "double_spend", "b")
    assert sessions.get(1, "double_spend") == "a" and sessions.get(2, "double_spend") == "b"


async def test_an_ending_raced_by_a_stop_ends_the_game_once() -> None:
    sessions = GameSessions()
    await sessions.start(1, "selfish_mining", "pool")
    results = await asyncio.gather(
        sessions.end(1, "selfish_mining"), sessions.end(1, "selfish_mining"), return_exceptions=True
    )
    assert sorted(type(r).__name__ for r in results) == ["NoGameRunningError", "str"]
    assert sessions.current(1) is None
    await sessions.start(1, "network_split", "split")  # the chain is free again


async def test_invalid_end_of_another_kind_leaves_the_running_game() -> None:
    sessions = GameSessions()
    await sessions.start(1, "selfish_mining", "pool")
    with pytest.raises(NoGameRunningError, match="no double_spend game is running on chain 1"):
        await sessions.end(1, "double_spend")
    with pytest.raises(NoGameRunningError):
        sessions.get(1, "network_split")
    assert sessions.get(1, "selfish_mining") == "pool"


async def test_an_ending_for_a_game_that_is_no_longer_running_leaves_the_new_one() -> None:
    sessions = GameSessions()
    old, new = object(), object()
    await sessions.start(1, "selfish_mining", old)
    assert await sessions.end(1, "selfish_mining", old) is old
    await sessions.start(1, "selfish_mining", new)
    with pytest.raises(NoGameRunningError):
        await sessions.end(1, "selfish_mining", old)  # the old game's late deadline
    assert sessions.get(1, "selfish_mining") is new
    assert await sessions.end(1, "selfish_mining", new) is new
