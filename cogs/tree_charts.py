"""The block tree chart: the main chain as a straight line of blocks, each side branch on a lane of its own.

``/chain chart kind:tree`` draws the last ``TREE_HEIGHTS`` heights; the games draw the heights they
forked (``game_tree_spec``).  The layout (which lane each branch gets) is the engine's
(``chain/consensus/tree_layout.py``, through ``Playground.block_tree_window``); this module turns it
into a ``ChartSpec`` whose alt text says how many blocks are on and off the main chain, where the
forks are, and which branch won each.
"""

from __future__ import annotations

from chain.playground import Playground, TreeWindow
from cogs.chart_book import OwnerNames
from cogs.chart_spec import MAX_ALT_TEXT, MAX_TREE_LANES, ChartSpec, Marker, TreeLink, TreePoint
from cogs.embeds import counted

# Heights drawn: about 11 px a block at Discord's preview width, still a readable circle.
TREE_HEIGHTS = 60
# Side lanes above the main chain; more branches than fit are left out and counted in the alt text.
TREE_SIDE_LANES = min(6, MAX_TREE_LANES - 1)
# Forks named one by one in the alt text; the rest are counted.
FORKS_LISTED = 8


def _span(first: int, last: int) -> str:
    return f"block {first}" if first == last else f"blocks {first}–{last}"


def fork_lines(window: TreeWindow) -> list[str]:
    """One sentence part per side branch: where it forks, how long it is, and that it lost."""
    lines = []
    for branch in window.layout.branches:
        where = (
            f"from below block {branch.first_height}" if branch.fork_lane is None
            else f"at block {branch.fork_height}" + ("" if branch.fork_lane == 0 else " of another side branch")
        )
        lines.append(
            f"{where} a {branch.blocks}-block branch ({_span(branch.first_height, branch.tip_height)}) "
            "lost to the main chain"
        )
    return lines


def tree_alt_text(window: TreeWindow) -> str:
    layout = window.layout
    rule = "the validators' votes" if window.by_votes else "the most work"
    head = (
        f"Block tree of heights {layout.first_height} to {layout.last_height}: "
        f"{counted(layout.main_blocks, 'main-chain block')} as blue circles on a straight line at the bottom, "
        f"and {counted(layout.side_blocks, 'orphaned block')} as orange squares on "
        f"{counted(len(layout.branches), 'side branch', 'side branches')} above it, each joined to the block it "
        "builds on."
    )
    tail = f" The main chain follows {rule}: it won every fork shown."
    marks = []
    if window.finalized_height is not None:
        marks.append(f"the finalized checkpoint at block {window.finalized_height}")
    if window.justified_height is not None and window.justified_height != window.finalized_height:
        marks.append(f"the justified checkpoint at block {window.justified_height}")
    if marks:
        tail += " Dotted lines mark " + " and ".join(marks) + "."
    if layout.left_out_branches:
        tail += (f" Not drawn, for lack of room: {counted(layout.left_out_branches, 'side branch', 'side branches')} "
                 f"({counted(layout.left_out_blocks, 'block')}).")
    forks = fork_lines(window)
    for listed in range(min(len(forks), FORKS_LISTED), -1, -1):
        more = len(forks) - listed
        middle = ""
        if listed:
            middle = " Forks: " + "; ".join(forks[:listed]) + (f"; and {more} more" if more else "") + "."
        elif forks:
            middle = f" {counted(len(forks), 'fork')}."
        text = head + middle + tail
        if len(text) <= MAX_ALT_TEXT:
            return text
    return (head + tail)[:MAX_ALT_TEXT]


def tree_spec(window: TreeWindow, title: str) -> ChartSpec:
    layout = window.layout
    markers = []
    if window.finalized_height is not None:
        markers.append(Marker(window.finalized_height, f"finalized {window.finalized_height}"))
    if window.justified_height is not None and window.justified_height != window.finalized_height:
        markers.append(Marker(window.justified_height, f"justified {window.justified_height}"))
    lanes = range(layout.lanes)
    return ChartSpec(
        kind="tree",
        title=title,
        x_label="block height",
        y_label="branch",
        alt_text=tree_alt_text(window),
        series=(),
        markers=tuple(markers),
        nodes=tuple(TreePoint(n.height, n.lane, "main" if n.on_main else "side") for n in layout.nodes),
        links=tuple(TreeLink(e.parent_height, e.parent_lane, e.height, e.lane) for e in layout.edges),
        y_ticks=tuple((lane, "main" if lane == 0 else f"side {lane}") for lane in lanes),
    )


async def tree_chart(playground: Playground, guild_id: int, names: OwnerNames) -> ChartSpec:
    window = playground.block_tree_window(guild_id, TREE_HEIGHTS, TREE_SIDE_LANES)
    layout = window.layout
    return tree_spec(window, f"Block tree, heights {layout.first_height}–{layout.last_height}")


def game_tree_spec(playground: Playground, guild_id: int, from_height: int, title: str) -> ChartSpec:
    """The tree from a game's fork point (``from_height``) on: the fork(s) the game made."""
    window = playground.block_tree_window(guild_id, TREE_HEIGHTS, TREE_SIDE_LANES, from_height)
    return tree_spec(window, title)
