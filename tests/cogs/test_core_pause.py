"""The hashing core pauses for commands, and runs while a command only waits on a worker thread."""

from __future__ import annotations

import asyncio

import pytest

from cogs.core_pause import core_paused_for_command, core_runs_while_waiting


class Core:
    def __init__(self) -> None:
        self.holds = 0

    def hold(self) -> None:
        self.holds += 1

    def release(self) -> None:
        self.holds -= 1


async def test_the_core_runs_while_a_command_only_waits():
    core = Core()
    with core_paused_for_command(core):
        assert core.holds == 1
        async with core_runs_while_waiting():
            assert core.holds == 0  # other servers' mining goes on while the thread works
        assert core.holds == 1
    assert core.holds == 0


async def test_the_command_task_sees_the_hold_of_the_tree_that_started_it():
    core, inside = Core(), []

    async def command() -> None:
        async with core_runs_while_waiting():
            inside.append(core.holds)

    with core_paused_for_command(core):
        # The tree runs each command in a task of its own, started inside the hold.
        await asyncio.ensure_future(command())
    assert inside == [0] and core.holds == 0


async def test_a_command_cancelled_while_waiting_leaves_no_hold_behind():
    core, waiting = Core(), asyncio.Event()

    async def command() -> None:
        with core_paused_for_command(core):
            async with core_runs_while_waiting():
                waiting.set()
                await asyncio.Event().wait()

    task = asyncio.create_task(command())
    await waiting.wait()
    assert core.holds == 0
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert core.holds == 0


async def test_outside_a_command_waiting_changes_nothing():
    async with core_runs_while_waiting():
        pass
    with core_paused_for_command(None):
        async with core_runs_while_waiting():
            pass
