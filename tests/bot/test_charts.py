"""The chart renderer: real PNGs from a worker process, a cache, caps, a free event loop."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
import struct
import time
from dataclasses import replace
from pathlib import Path

import pytest

from bot.charts import (
    DEFAULT_TIMEOUT_S,
    MAX_POINTS_PER_SERIES,
    ChartError,
    ChartKey,
    ChartRenderer,
    ChartSpec,
    ChartTimeout,
    ChartTooLarge,
    Marker,
    Series,
    check_spec,
    render_png,
)
from cogs.chart_spec import MAX_TREE_LANES, MAX_TREE_NODES, TreeLink, TreePoint

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def line_spec(points: int = 50) -> ChartSpec:
    return ChartSpec(
        kind="line", title="Difficulty", x_label="height", y_label="difficulty",
        alt_text="Difficulty by height, one retarget at 20",
        series=(Series("difficulty", tuple((h, 1_000 + h * 7) for h in range(points))),),
        markers=(Marker(20, "retarget"),),
    )


def bar_spec() -> ChartSpec:
    return ChartSpec(
        kind="bar", title="Block intervals", x_label="seconds", y_label="blocks",
        alt_text="How many blocks took each interval, against the expected curve",
        series=(Series("blocks", tuple((s, 30 - s) for s in range(0, 30))),),
        expected=tuple((s, 28 - s) for s in range(0, 30)),
    )


def tree_spec(heights: int = 60, lane: int = 1) -> ChartSpec:
    """A main chain of ``heights`` blocks and a 2-block orphaned branch on ``lane`` forking at 10."""
    nodes = [TreePoint(x, 0, "main") for x in range(heights)]
    nodes += [TreePoint(11, lane, "side"), TreePoint(12, lane, "side")]
    links = [TreeLink(x - 1, 0, x, 0) for x in range(1, heights)]
    links += [TreeLink(10, 0, 11, lane), TreeLink(11, lane, 12, lane)]
    return ChartSpec(
        kind="tree", title="Block tree", x_label="block height", y_label="branch",
        alt_text="Block tree: a 2-block branch at block 10 lost to the main chain", series=(),
        markers=(Marker(5, "finalized 5"),), nodes=tuple(nodes), links=tuple(links),
        y_ticks=((0, "main"), (lane, f"side {lane}")),
    )


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == PNG_SIGNATURE
    length, chunk = struct.unpack(">I4s", png[8:16])
    assert chunk == b"IHDR" and length == 13
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def held_render(gate: str, spec: ChartSpec) -> bytes:
    """Runs in the worker: waits until the test creates ``gate``, then renders."""
    while not os.path.exists(gate):
        time.sleep(0.005)
    return render_png(spec)


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped) is gone for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
async def renderer():
    renderer = ChartRenderer()
    await renderer.start()
    yield renderer
    await renderer.close()


async def test_renders_a_real_png_of_the_preview_size(renderer: ChartRenderer) -> None:
    for spec in (line_spec(), bar_spec()):
        png = await renderer.render(spec)
        assert png_size(png) == (800, 450)


def test_a_logarithmic_axis_draws_values_orders_of_magnitude_apart_and_refuses_zero() -> None:
    spec = ChartSpec(
        kind="bar", title="Energy per block", x_label="", y_label="joules (log scale)",
        alt_text="Proof of work used 100,000 times the energy of proof of stake per block",
        series=(Series("proof of work", ((0, 50.0),)), Series("proof of stake", ((0, 0.0005),))),
        log_y=True,
    )
    linear = render_png(dataclasses.replace(spec, log_y=False))
    logarithmic = render_png(spec)
    assert png_size(logarithmic) == (800, 450) and logarithmic != linear
    with pytest.raises(ChartError, match="logarithmic axis cannot show a value of 0"):
        check_spec(dataclasses.replace(spec, series=(Series("proof of stake", ((0, 0.0),)),)))
async def test_a_tree_renders_as_a_png_of_the_preview_size(renderer: ChartRenderer) -> None:
    png = await renderer.render(tree_spec())
    assert png_size(png) == (800, 450)
    assert b"a 2-block branch at block 10 lost" in png  # the alt text, stored in the PNG


def test_a_tree_spec_over_a_cap_or_malformed_is_refused_in_words() -> None:
    check_spec(tree_spec(lane=MAX_TREE_LANES - 1))
    with pytest.raises(ChartTooLarge, match=f"lane {MAX_TREE_LANES}: lanes run from 0 to {MAX_TREE_LANES - 1}"):
        check_spec(tree_spec(lane=MAX_TREE_LANES))
    with pytest.raises(ChartTooLarge, match=f"at most {MAX_TREE_NODES}: show fewer heights"):
        check_spec(tree_spec(heights=MAX_TREE_NODES))
    with pytest.raises(ChartError, match="at least one block"):
        check_spec(replace(tree_spec(), nodes=(), links=()))
    with pytest.raises(ChartError, match="not series"):
        check_spec(replace(tree_spec(), series=line_spec().series))


async def test_the_cache_renders_a_chart_once_per_tip(renderer: ChartRenderer) -> None:
    key = ChartKey(chain_id=1, chart="difficulty", tip=b"\x01" * 32)
    first = await renderer.render(line_spec(), key)
    again = await renderer.render(line_spec(), key)
    assert again == first and renderer.renders == 1
    await renderer.render(line_spec(), key._replace(tip=b"\x02" * 32))  # the chain moved on
    assert renderer.renders == 2


async def test_requests_for_one_chart_at_the_same_moment_share_one_render(renderer: ChartRenderer) -> None:
    key = ChartKey(chain_id=1, chart="difficulty", tip=b"\x01" * 32)
    pngs = await asyncio.gather(*(renderer.render(line_spec(), key) for _ in range(5)))
    assert len(set(pngs)) == 1 and renderer.renders == 1


async def test_an_oversized_spec_is_refused_before_the_worker_sees_it(renderer: ChartRenderer) -> None:
    with pytest.raises(ChartTooLarge, match=f"at most {MAX_POINTS_PER_SERIES}"):
        await renderer.render(line_spec(points=MAX_POINTS_PER_SERIES + 1))
    assert renderer.renders == 0
    png = await renderer.render(line_spec(points=MAX_POINTS_PER_SERIES))
    assert png_size(png) == (800, 450)


async def test_the_event_loop_runs_while_a_chart_renders(tmp_path: Path) -> None:
    gate = tmp_path / "go"
    renderer = ChartRenderer(render_fn=functools.partial(held_render, str(gate)))
    await renderer.start()
    try:
        render = asyncio.create_task(renderer.render(line_spec()))
        other = asyncio.create_task(asyncio.sleep(0.01, result="done"))
        assert await other == "done"
        assert not render.done()  # the worker is still held back: the loop ran meanwhile
        gate.touch()
        assert png_size(await render) == (800, 450)
    finally:
        await renderer.close()


async def test_a_render_over_the_timeout_replaces_the_worker(tmp_path: Path) -> None:
    gate = tmp_path / "never"
    renderer = ChartRenderer(timeout_s=0.2, render_fn=functools.partial(held_render, str(gate)))
    await renderer.start()
    stuck = renderer.worker_pid
    try:
        with pytest.raises(ChartTimeout):
            await renderer.render(line_spec())
        assert stuck is not None and not pid_exists(stuck)
        assert renderer.worker_pid != stuck
        gate.touch()
        # The 0.2 s was there to catch the held render; the new worker's first render loads its fonts and,
        # on a loaded machine, can take longer: the recovery is checked under the default timeout.
        renderer._timeout_s = DEFAULT_TIMEOUT_S
        assert png_size(await renderer.render(line_spec())) == (800, 450)
    finally:
        await renderer.close()


async def test_close_leaves_no_worker_process() -> None:
    renderer = ChartRenderer()
    await renderer.start()
    pid = renderer.worker_pid
    assert pid is not None and pid_exists(pid)
    await renderer.render(bar_spec())
    await renderer.close()
    assert not pid_exists(pid)
    with pytest.raises(RuntimeError):
        await renderer.render(bar_spec())
