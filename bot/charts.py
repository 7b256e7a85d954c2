"""Chart rendering: PNGs drawn by matplotlib (Agg) in one warm worker process.

Drawing a chart costs tens to hundreds of milliseconds of CPU: far too long for
the event loop (the Discord heartbeat runs there), and the hashing core's
workers belong to mining.  So charts get their own single worker process,
started with the bot, which imports matplotlib once (the Agg backend: no
display) and runs at the lowest CPU priority, like the hashing workers.  The
bot's own process never imports matplotlib.

What a chart shows is a ``ChartSpec`` (``cogs/chart_spec.py``): small, frozen and
picklable, built by the cogs from the engine's data.  Three kinds: a line chart (optionally with
vertical markers), a bar chart (optionally with an expected-curve overlay), either with a
logarithmic y axis, and a tree (blocks on lanes by height, joined to their parents: the block tree
with its side branches).

Caps, so no request can tie the worker up: a spec with more than
``MAX_POINTS_PER_SERIES`` points in a series, more than ``MAX_SERIES`` series
or more than ``MAX_MARKERS`` markers is refused with ``ChartTooLarge`` (not
downsampled: only the caller knows which points matter, e.g. a difficulty
spike, so it downsamples); a render that takes longer than the timeout raises
``ChartTimeout`` and the worker is killed and replaced.

A chart rendered with a ``ChartKey`` (chain id, chart name, tip hash) is kept
in a small LRU cache: rendered once per chain change.  Requests for the same
key at the same moment share one render.
"""

from __future__ import annotations

import asyncio
import io
import logging
import multiprocessing
import os
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING

from chain.adapters.worker_lifeline import bind_to_owner
from cogs.chart_spec import (
    MAX_MARKERS,
    MAX_POINTS_PER_SERIES,
    MAX_SERIES,
    MAX_TEXT,
    ChartError,
    ChartKey,
    ChartSpec,
    ChartTooLarge,
    Marker,
    Series,
    check_spec,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

log = logging.getLogger(__name__)

# Discord's inline preview shows about this much without scaling text to illegibility.
WIDTH_IN = 8.0
HEIGHT_IN = 4.5
DPI = 100
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_CACHE_SIZE = 128
WORKER_NICENESS = 19

# Okabe–Ito: distinguishable with every common colour-vision deficiency (yellow last: faint on white).
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
MARKER_COLOUR = "#D55E00"
EXPECTED_COLOUR = "#000000"
# Tree charts: the main chain and the orphans differ in colour AND shape (circles, squares), so the
# picture reads without colour too; links are grey so the blocks stand out.
TREE_STYLES = {
    "main": {"color": "#0072B2", "marker": "o", "label": "main chain"},
    "side": {"color": "#E69F00", "marker": "s", "label": "orphaned (off the main chain)"},
}
TREE_LINK_COLOUR = "#555555"

# The spec's vocabulary, importable from here too (tests, benchmarks).
__all__ = [
    "MAX_MARKERS", "MAX_POINTS_PER_SERIES", "MAX_SERIES", "MAX_TEXT", "ChartError", "ChartKey", "ChartRenderer",
    "ChartSpec", "ChartTimeout", "ChartTooLarge", "Marker", "Series", "check_spec", "render_png",
]


class ChartTimeout(ChartError):
    """The worker did not finish in time; it was replaced."""


def _init_worker(niceness: int, owner_pid: int) -> None:
    """Worker initializer: die with the bot, step out of its way, import matplotlib once."""
    bind_to_owner(owner_pid)
    os.nice(niceness)
    if niceness > 0 and hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except OSError as exc:  # containers may forbid it; nice alone still helps
            log.warning("cannot put the chart worker under SCHED_IDLE: %s", exc)
    import matplotlib

    matplotlib.use("Agg")
    # Warm: the first chart should not pay for these imports.
    import matplotlib.backends.backend_agg
    import matplotlib.figure


def _ready() -> int:
    return os.getpid()


def render_png(spec: ChartSpec) -> bytes:
    """Runs in the worker: the chart as PNG bytes, ``WIDTH_IN × HEIGHT_IN`` inches at ``DPI``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # A Figure of its own (not pyplot): no global state carried from one chart to the next.
    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    handles_from = [axes]
    if spec.kind == "tree":
        _draw_tree(axes, spec)
    elif spec.kind == "line":
        for colour, series in zip(OKABE_ITO, spec.series, strict=False):
            xs = [x for x, _ in series.points]
            ys = [y for _, y in series.points]
            axes.plot(xs, ys, color=colour, linewidth=2, label=series.name, linestyle="--" if series.dashed else "-",
                      drawstyle="steps-post" if series.steps else "default")
        if spec.series2:
            right = axes.twinx()
            handles_from.append(right)
            colours = OKABE_ITO[len(spec.series):]
            for colour, series in zip(colours, spec.series2, strict=False):
                right.plot([x for x, _ in series.points], [y for _, y in series.points], color=colour,
                           linewidth=1.5, label=series.name, linestyle="--" if series.dashed else "-",
                           marker="o" if len(series.points) < 50 and not series.dashed else None,
                           drawstyle="steps-pre" if series.steps else "default")
            right.set_ylabel(spec.y2_label, fontsize=12)
            right.tick_params(labelsize=11)
    else:
        width = 0.8 / len(spec.series)
        for index, (colour, series) in enumerate(zip(OKABE_ITO, spec.series, strict=False)):
            offset = (index - (len(spec.series) - 1) / 2) * width
            axes.bar([x + offset for x, _ in series.points], [y for _, y in series.points],
                     width=width, color=colour, label=series.name)
        if spec.expected:
            axes.plot([x for x, _ in spec.expected], [y for _, y in spec.expected],
                      color=EXPECTED_COLOUR, linestyle="--", linewidth=2, label="expected")
    if spec.kind != "tree":
        _draw_markers(axes, spec)
    if spec.x_ticks:
        axes.set_xticks([x for x, _ in spec.x_ticks], [label for _, label in spec.x_ticks],
                        rotation=30 if len(spec.x_ticks) > 6 else 0, ha="right" if len(spec.x_ticks) > 6 else "center")
    if spec.log_y:
        axes.set_yscale("log")
    axes.set_title(spec.title, fontsize=14)
    axes.set_xlabel(spec.x_label, fontsize=12)
    axes.set_ylabel(spec.y_label, fontsize=12)
    axes.tick_params(labelsize=11)
    axes.grid(True, alpha=0.3)
    if spec.y_ticks:
        axes.set_yticks([y for y, _ in spec.y_ticks], [label for _, label in spec.y_ticks])
    if len(spec.series) + len(spec.series2) > 1 or spec.expected or spec.kind == "tree":
        handles, labels = [], []
        for ax in handles_from:
            more_handles, more_labels = ax.get_legend_handles_labels()
            handles += more_handles
            labels += more_labels
        if spec.kind == "tree":
            # One row under the axes: inside, it would cover blocks or the checkpoints' labels.
            figure.legend(handles, labels, fontsize=10, ncol=2, loc="outside lower center")
        else:
            axes.legend(handles, labels, fontsize=10)
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=DPI,
                   metadata={"Title": spec.title, "Description": spec.alt_text})
    return out.getvalue()


def _draw_markers(axes: Axes, spec: ChartSpec) -> None:
    """Vertical dotted lines (retargets, checkpoints), each labelled along its top."""
    for marker in spec.markers:
        axes.axvline(marker.x, color=MARKER_COLOUR, linestyle=":", linewidth=1.5)
        axes.annotate(marker.label, (marker.x, 1.0), xycoords=("data", "axes fraction"),
                      rotation=90, va="top", ha="right", fontsize=9, color=MARKER_COLOUR)


def _draw_tree(axes: Axes, spec: ChartSpec) -> None:
    """Blocks by height on their lanes, each joined to its parent; the markers before the blocks."""
    _draw_markers(axes, spec)
    for link in spec.links:
        axes.plot([link.x1, link.x2], [link.lane1, link.lane2], color=TREE_LINK_COLOUR, linewidth=1.2, zorder=1)
    xs = [node.x for node in spec.nodes]
    span = max(xs) - min(xs) + 1
    # About 11 px a height at sixty heights: the marker fills most of it, and grows for short windows.
    size = max(3.0, min(10.0, 420 / span))
    for style, look in TREE_STYLES.items():
        drawn = [node for node in spec.nodes if node.style == style]
        if drawn:
            axes.plot([n.x for n in drawn], [n.lane for n in drawn], linestyle="none", marker=look["marker"],
                      markersize=size, color=look["color"], markeredgecolor="#000000", markeredgewidth=0.6,
                      label=look["label"], zorder=2)
    lanes = [node.lane for node in spec.nodes]
    axes.set_ylim(min(lanes) - 0.6, max(lanes) + 0.9)
    axes.set_xlim(min(xs) - 0.8, max(xs) + 0.8)
    # Heights are whole numbers: no 12.5 on the axis.
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))


class ChartRenderer:
    """One warm chart worker, a render timeout and an LRU cache; ``start`` once, ``close`` at shutdown."""

    def __init__(
        self,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        cache_size: int = DEFAULT_CACHE_SIZE,
        mp_start_method: str = "forkserver",
        niceness: int = WORKER_NICENESS,
        render_fn: Callable[[ChartSpec], bytes] = render_png,
    ) -> None:
        """``render_fn``: what the worker runs (picklable); tests swap in one they can hold back."""
        self._timeout_s = timeout_s
        self._cache_size = cache_size
        self._mp_start_method = mp_start_method
        self._niceness = niceness
        self._render_fn = render_fn
        self._pool: ProcessPoolExecutor | None = None
        self._worker_pid: int | None = None
        self._closed = False
        self._cache: OrderedDict[ChartKey, bytes] = OrderedDict()
        self._in_flight: dict[ChartKey, asyncio.Task[bytes]] = {}
        self.renders = 0
        """Renders handed to the worker (cache hits and shared requests not counted)."""

    @property
    def worker_pid(self) -> int | None:
        return self._worker_pid

    async def start(self) -> None:
        if self._pool is not None or self._closed:
            raise RuntimeError("a chart renderer can be started only once")
        self._pool = await asyncio.to_thread(self._new_pool)
        log.info("chart worker started (pid %s)", self._worker_pid)

    def _new_pool(self) -> ProcessPoolExecutor:
        # Not fork: forking the bot's threaded process can deadlock the child on a held lock.
        pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context(self._mp_start_method),
            initializer=_init_worker,
            initargs=(self._niceness, os.getpid()),
        )
        try:
            # Starting the process (and importing matplotlib there) now, not on the first chart.
            self._worker_pid = pool.submit(_ready).result()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        return pool

    async def render(self, spec: ChartSpec, key: ChartKey | None = None) -> bytes:
        """The chart as PNG bytes, from the cache when ``key`` was rendered already."""
        check_spec(spec)
        if key is None:
            return await self._render_now(spec)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        # No await between the look-ups and this insert: simultaneous requests share one render.
        task = self._in_flight.get(key)
        if task is None:
            task = asyncio.create_task(self._render_and_keep(spec, key), name=f"chart-{key.chart}")
            self._in_flight[key] = task
        # Shielded: one requester giving up must not cancel the render the others wait for.
        return await asyncio.shield(task)

    async def _render_and_keep(self, spec: ChartSpec, key: ChartKey) -> bytes:
        try:
            png = await self._render_now(spec)
        finally:
            del self._in_flight[key]
        self._cache[key] = png
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return png

    async def _render_now(self, spec: ChartSpec) -> bytes:
        pool = self._pool
        if pool is None:
            raise RuntimeError("the chart renderer is not running")
        self.renders += 1
        future = asyncio.wrap_future(pool.submit(self._render_fn, spec))
        try:
            return await asyncio.wait_for(future, self._timeout_s)
        except TimeoutError:
            log.warning("chart %r took over %.1f s: replacing its worker", spec.title, self._timeout_s)
            await self._replace_worker(pool)
            raise ChartTimeout(f"the chart took longer than {self._timeout_s:.1f} s") from None

    async def _replace_worker(self, stuck: ProcessPoolExecutor) -> None:
        if self._pool is not stuck:
            return  # another timed-out render replaced it already
        self._pool = None
        await asyncio.to_thread(_kill, stuck)
        if not self._closed:
            self._pool = await asyncio.to_thread(self._new_pool)

    async def close(self) -> None:
        """Stop the worker and wait for it to exit; renders still queued fail."""
        if self._closed:
            return
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(_kill, pool)
        self._cache.clear()
        log.info("chart worker stopped after %d renders", self.renders)


def _kill(pool: ProcessPoolExecutor) -> None:
    """End the pool's worker even mid-render (``shutdown`` alone waits for the render to finish)."""
    # The executor exposes no other handle on its processes; a render has no state worth saving.
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        process.kill()
    pool.shutdown(wait=True, cancel_futures=True)
