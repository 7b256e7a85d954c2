"""What a chart shows: a small, frozen, picklable ``ChartSpec``, and the caps every spec is held to.

The cogs build specs from the engine's data (``cogs/chart_book.py``); the bot renders them in its
chart worker (``bot/charts.py``), which imports this module (imports point bot -> cogs -> chain).
Floats are fine here: this is drawing, not consensus; the engine's series stay integers and
``Fraction``s until a builder divides them out for the picture.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

MAX_POINTS_PER_SERIES = 2_000
MAX_SERIES = 8
MAX_MARKERS = 50
MAX_TEXT = 200
# Discord's limit on an attachment's description, which carries the alt text.
MAX_ALT_TEXT = 1024
# Tree charts: blocks and links drawn, and lanes (the main chain's included).
MAX_TREE_NODES = 1_000
MAX_TREE_LANES = 12

ChartKind = Literal["line", "bar", "tree"]
TreeStyle = Literal["main", "side"]


class ChartError(Exception):
    """A chart could not be rendered."""


class ChartTooLarge(ChartError):
    """The spec exceeds a cap; the caller must downsample or shorten it."""


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    points: tuple[tuple[float, float], ...]
    """(x, y) pairs: the engine's integers, or a share already divided out for drawing."""
    dashed: bool = False
    """A reference line (a target, an expectation) rather than a measurement."""
    steps: bool = False
    """Line charts: the value holds until the next point (difficulty between retargets), not a ramp."""


@dataclass(frozen=True, slots=True)
class Marker:
    """A vertical line at ``x`` (line charts), e.g. a retarget or a reorg."""

    x: float
    label: str


@dataclass(frozen=True, slots=True)
class TreePoint:
    """Tree charts: a block at height ``x`` on ``lane`` (0 the main chain), drawn in its style."""

    x: int
    lane: int
    style: TreeStyle


@dataclass(frozen=True, slots=True)
class TreeLink:
    """Tree charts: a block joined to its parent, (height, lane) of each end."""

    x1: int
    lane1: int
    x2: int
    lane2: int


@dataclass(frozen=True, slots=True)
class ChartSpec:
    kind: ChartKind
    title: str
    x_label: str
    y_label: str
    alt_text: str
    """For the attachment's description (screen readers); also stored in the PNG."""
    series: tuple[Series, ...]
    markers: tuple[Marker, ...] = ()
    expected: tuple[tuple[float, float], ...] = ()
    """Bar charts: an expected curve drawn over the bars (dashed)."""
    series2: tuple[Series, ...] = ()
    """Line charts: series drawn against a second y axis on the right, labelled ``y2_label``."""
    y2_label: str = ""
    x_ticks: tuple[tuple[float, str], ...] = ()
    """Named positions on the x axis (a bar per miner), instead of numbers."""
    log_y: bool = False
    """A logarithmic y axis, for values orders of magnitude apart (proof of work's energy against
    proof of stake's); every y value must then be above 0."""
    nodes: tuple[TreePoint, ...] = ()
    """Tree charts: the blocks; ``series`` stays empty."""
    links: tuple[TreeLink, ...] = ()
    """Tree charts: each block to its parent."""
    y_ticks: tuple[tuple[float, str], ...] = ()
    """Named positions on the y axis (a tree's lanes)."""


class ChartKey(NamedTuple):
    chain_id: int
    chart: str
    tip: bytes


def check_spec(spec: ChartSpec) -> None:
    """Refuse a spec over a cap, saying which cap and by how much."""
    if spec.kind not in ("line", "bar", "tree"):
        raise ChartError(f"unknown chart kind {spec.kind!r} (line, bar or tree)")
    if spec.kind == "tree":
        _check_tree(spec)
    elif not spec.series:
        raise ChartError("a chart needs at least one series")
    if len(spec.series) + len(spec.series2) > MAX_SERIES:
        raise ChartTooLarge(f"{len(spec.series) + len(spec.series2)} series, at most {MAX_SERIES}")
    for series in spec.series + spec.series2:
        if len(series.points) > MAX_POINTS_PER_SERIES:
            raise ChartTooLarge(
                f"series {series.name!r} has {len(series.points)} points, "
                f"at most {MAX_POINTS_PER_SERIES}: downsample it"
            )
    if len(spec.expected) > MAX_POINTS_PER_SERIES:
        raise ChartTooLarge(f"expected curve has {len(spec.expected)} points, at most {MAX_POINTS_PER_SERIES}")
    if len(spec.markers) > MAX_MARKERS:
        raise ChartTooLarge(f"{len(spec.markers)} markers, at most {MAX_MARKERS}")
    if spec.log_y and any(y <= 0 for series in spec.series + spec.series2 for _, y in series.points):
        raise ChartError("a logarithmic axis cannot show a value of 0 or below: leave that bar out and say so")
    if not spec.alt_text.strip():
        raise ChartError("a chart needs alt text: say in words what it shows")
    if len(spec.alt_text) > MAX_ALT_TEXT:
        raise ChartTooLarge(f"alt text of {len(spec.alt_text)} characters, at most {MAX_ALT_TEXT} (Discord's limit)")
    texts = [spec.title, spec.x_label, spec.y_label]
    texts += [s.name for s in spec.series + spec.series2] + [spec.y2_label]
    texts += [m.label for m in spec.markers] + [t for _, t in spec.x_ticks] + [t for _, t in spec.y_ticks]
    if len(spec.x_ticks) > MAX_POINTS_PER_SERIES:
        raise ChartTooLarge(f"{len(spec.x_ticks)} x-axis labels, at most {MAX_POINTS_PER_SERIES}")
    if len(spec.y_ticks) > MAX_POINTS_PER_SERIES:
        raise ChartTooLarge(f"{len(spec.y_ticks)} y-axis labels, at most {MAX_POINTS_PER_SERIES}")
    if any(len(text) > MAX_TEXT for text in texts):
        raise ChartTooLarge(f"a title, label or name is longer than {MAX_TEXT} characters")




def _check_tree(spec: ChartSpec) -> None:
    """A tree chart draws blocks, not series: at least one, at most ``MAX_TREE_NODES``, on known lanes."""
    if spec.series or spec.series2 or spec.expected:
        raise ChartError("a tree chart draws nodes and links, not series")
    if not spec.nodes:
        raise ChartError("a tree chart needs at least one block")
    if len(spec.nodes) > MAX_TREE_NODES:
        raise ChartTooLarge(f"{len(spec.nodes)} blocks, at most {MAX_TREE_NODES}: show fewer heights")
    if len(spec.links) > MAX_TREE_NODES:
        raise ChartTooLarge(f"{len(spec.links)} links, at most {MAX_TREE_NODES}: show fewer heights")
    lanes = [n.lane for n in spec.nodes] + [lane for link in spec.links for lane in (link.lane1, link.lane2)]
    bad = next((lane for lane in lanes if not 0 <= lane < MAX_TREE_LANES), None)
    if bad is not None:
        raise ChartTooLarge(f"a block or link on lane {bad}: lanes run from 0 to {MAX_TREE_LANES - 1}")
    if any(n.style not in ("main", "side") for n in spec.nodes):
        raise ChartError("a tree's block is drawn as main or side")
