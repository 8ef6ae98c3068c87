"""Drawing one flow as a left-to-right picture (.svg, .png with matplotlib's Agg) or as Graphviz .dot text."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import networkx as nx
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from bot.dialog.flows import Flow

FORMATS = (".svg", ".png", ".dot")

# Layout in inches: the axes are drawn 1:1 in inches, so font sizes in points stay readable
# whatever the size of the flow.
_LAYER_GAP = 3.4
_ROW_GAP = 1.5
_MARGIN = 1.2
_NODE_FONT = 10
_LABEL_FONT = 7.5
_OBSTACLE_MARGIN = 0.12  # an edge passing closer than this to another box is taken to cross it
# Where along an edge its label may sit, tried in turn until one overlaps no box or label.
_LABEL_SPOTS = (0.45, 0.35, 0.55, 0.25, 0.65, 0.2, 0.75, 0.15, 0.85)

_EDGE_STYLE = {  # kind -> (colour, line style)
    "transition": ("#333333", "-"),
    "trigger": ("#2e7d32", "--"),
    "global": ("#8e24aa", "--"),
    "fallback": ("#e65100", ":"),
}
_NODE_FILL = {"start": "#c8e6c9", "fallback": "#ffe0b2", "terminal": "#e3e8f0", "node": "#ffffff",
              "external": "#f5f5f5", "entry": "#ffffff", "any": "#ffffff"}


def draw_flow(flow: Flow, path: Path) -> None:
    """Write the flow to `path`; the suffix picks the format (.svg, .png or .dot)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"cannot draw to {path.name!r}: use one of {', '.join(FORMATS)}")
    if suffix == ".dot":
        path.write_text(to_dot(flow), encoding="utf-8")
        return
    figure = render(flow)
    # Text stays text in SVG (searchable, selectable); no date, so the same flow gives the same file.
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "tandem"}):
        metadata = {"Date": None} if suffix == ".svg" else {}
        figure.savefig(path, format=suffix[1:], dpi=110, metadata=metadata)


def render(flow: Flow) -> Figure:
    """The flow as a matplotlib Figure: node boxes in layers left to right, labelled arrows between."""
    graph = flow.graph
    shown = [n for n in graph if graph.nodes[n]["kind"] not in ("entry", "any") or graph.out_degree(n)]
    positions, width, height = _layout(flow, shown)

    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_xlim(0, width)
    axes.set_ylim(0, height)
    axes.set_axis_off()
    title = flow.id + (f": {flow.description}" if flow.description else "")
    axes.text(0.2, height - 0.3, title, fontsize=_NODE_FONT + 2, fontweight="bold", va="top")

    boxes = {n: _node_box(axes, graph.nodes[n], positions[n]) for n in shown}
    figure.canvas.draw()  # the boxes' sizes are known only once drawn; arrows end at their edges
    renderer = figure.canvas.get_renderer()
    extents = {n: _extent_in_data(axes, box) for n, box in boxes.items()}
    taken = [box.get_bbox_patch().get_window_extent(renderer) for box in boxes.values()]
    # Self-loops first: their labels have one place only, the others can move along their edge.
    for tail, head, data in sorted(graph.edges(data=True), key=lambda edge: edge[0] != edge[1]):
        if tail not in extents or head not in extents:
            continue
        obstacles = [box for node, box in extents.items() if node not in (tail, head)]
        _edge(axes, renderer, extents[tail], extents[head], data, _bends(graph, tail, head), obstacles, taken)
    return figure


def to_dot(flow: Flow) -> str:
    """Graphviz text of the flow (`dot -Tsvg`), for people who prefer Graphviz's layout."""
    lines = [f"digraph {_quoted(flow.id)} {{", "  rankdir=LR;", '  node [shape=box, style="rounded,filled"];']
    for node_id, data in flow.graph.nodes(data=True):
        kind = _node_kind(data)
        if data["kind"] in ("entry", "any") and not flow.graph.out_degree(node_id):
            continue
        extra = ', style="dashed,filled"' if kind in ("external", "entry", "any") else ""
        lines.append(f"  {_quoted(node_id)} [label={_quoted(_node_text(data))}, "
                     f'fillcolor="{_NODE_FILL[kind]}"{extra}];')
    for tail, head, data in flow.graph.edges(data=True):
        colour, line = _EDGE_STYLE[data["kind"]]
        style = {"-": "solid", "--": "dashed", ":": "dotted"}[line]
        lines.append(f"  {_quoted(tail)} -> {_quoted(head)} "
                     f'[label={_quoted(_edge_text(data))}, style={style}, color="{colour}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _layout(flow: Flow, shown: list[str]) -> tuple[dict[str, tuple[float, float]], float, float]:
    """Layer 0: the pseudo-nodes; then each node one layer right of its furthest parent, once the
    edges that close cycles are set aside (so every forward edge points right). Within a layer,
    nodes sit near the mean height of their parents, which keeps crossings down."""
    graph = flow.graph
    start = f"{flow.id}.{flow.start}"
    forward = _forward_edges(graph, [start] + shown, set(shown))
    layer: dict[str, int] = {}
    for node in nx.topological_sort(forward):
        parents = [layer[p] + 1 for p in forward.predecessors(node)]
        pseudo = graph.nodes[node]["kind"] in ("entry", "any")
        layer[node] = 0 if pseudo else max(parents + [1])

    columns: dict[int, list[str]] = {}
    for node in shown:
        columns.setdefault(layer[node], []).append(node)
    heights: dict[str, float] = {}
    for index in sorted(columns):
        _place_column(columns[index], index, forward, heights, start)
    top, bottom = max(heights.values()), min(heights.values())
    height = max(3.0, top - bottom + 2 * _MARGIN)
    width = max(4.0, (max(columns) + 1) * _LAYER_GAP + _MARGIN)
    positions = {
        node: (_MARGIN + layer[node] * _LAYER_GAP, y - bottom + _MARGIN - 0.2) for node, y in heights.items()
    }
    return positions, width, height


def _place_column(column: list[str], index: int, forward: nx.DiGraph, heights: dict[str, float], start: str) -> None:
    """Each node as near the mean height of its parents as the row gap allows (start on top).
    Odd columns shift a little, so that a chain of single nodes does not line up and hide edges."""
    wanted = {}
    for node in column:
        ys = [heights[p] for p in forward.predecessors(node) if p in heights]
        wanted[node] = (sum(ys) / len(ys) if ys else 0.0) + (_ROW_GAP * 0.3 if index % 2 else 0.0)
    column.sort(key=lambda n: (n != start, -wanted[n]))
    placed: list[float] = []
    for node in column:
        y = wanted[node] if not placed else min(wanted[node], placed[-1] - _ROW_GAP)
        placed.append(y)
    # Pushing rows apart moved them down only; move the whole column back by the mean shift.
    shift = sum(wanted[n] - y for n, y in zip(column, placed, strict=True)) / len(column)
    for node, y in zip(column, placed, strict=True):
        heights[node] = y + shift


def _forward_edges(graph: nx.DiGraph, roots: list[str], shown: set[str]) -> nx.DiGraph:
    """The graph without the edges that a depth-first walk from `roots` finds closing a cycle."""
    forward = nx.DiGraph()
    forward.add_nodes_from(shown)
    on_path: set[str] = set()
    done: set[str] = set()

    def visit(node: str) -> None:
        on_path.add(node)
        for head in graph.successors(node):
            if head in on_path or head not in shown:
                continue  # a back edge (or a self-loop): drawn, but not used for layering
            forward.add_edge(node, head)
            if head not in done:
                visit(head)
        on_path.discard(node)
        done.add(node)

    for root in roots:
        if root in shown and root not in done:
            visit(root)
    return forward


def _node_kind(data: dict) -> str:
    if data["kind"] != "node":
        return data["kind"]
    if data.get("start"):
        return "start"
    if data.get("fallback"):
        return "fallback"
    return "terminal" if data.get("end") or data.get("skill") else "node"


def _node_text(data: dict) -> str:
    kind = data["kind"]
    if kind == "entry":
        return "no flow active\n(triggers)"
    if kind == "any":
        return "any node\n(global, fallback)"
    if kind == "external":
        return f"{data['flow']}.{data['name']}"
    notes = [n for n in ("start", "fallback") if data.get(n)]
    notes += [f"skill: {data['skill']}"] if data.get("skill") else []
    notes += ["end"] if data.get("end") else []
    return data["name"] + (f"\n({', '.join(notes)})" if notes else "")


def _edge_text(data: dict) -> str:
    return data["label"] + (f"  [priority {data['priority']}]" if data["priority"] else "")


def _node_box(axes, data: dict, position: tuple[float, float]) -> Text:
    kind = _node_kind(data)
    dashed = kind in ("external", "entry", "any")
    return axes.text(
        *position, _node_text(data), ha="center", va="center", fontsize=_NODE_FONT, zorder=3,
        fontstyle="italic" if dashed else "normal",
        bbox={"boxstyle": "round,pad=0.45", "facecolor": _NODE_FILL[kind], "edgecolor": "#455a64",
              "linestyle": "--" if dashed else "-", "linewidth": 1.2},
    )


def _extent_in_data(axes, box: Text) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of a node's drawn box in data units (inches)."""
    extent = box.get_bbox_patch().get_window_extent()
    (x0, y0), (x1, y1) = axes.transData.inverted().transform([[extent.x0, extent.y0], [extent.x1, extent.y1]])
    return x0, y0, x1, y1


def _bends(graph: nx.DiGraph, tail: str, head: str) -> tuple[float, ...]:
    """Curvatures to try for an edge, straightest first."""
    if tail == head:
        return (-1.1,)  # an arc over the top of the box
    if graph.has_edge(head, tail):
        return (0.3, 0.5, 0.7)  # the same sign both ways puts the two edges on opposite sides
    return (0.0, 0.2, -0.2, 0.35, -0.35, 0.5, -0.5)


def _edge(axes, renderer, tail: tuple, head: tuple, data: dict, bends: tuple[float, ...], obstacles: list,
          taken: list) -> None:
    """An arrow from box to box, bent around other boxes, its label where it overlaps nothing drawn."""
    colour, line = _EDGE_STYLE[data["kind"]]
    loop = tail == head
    if loop:
        x0, _, x1, y1 = tail
        quarter = (x1 - x0) / 4
        start, end = (x0 + quarter, y1), (x1 - quarter, y1)
    else:
        start = _border_point(tail, _centre(head))
        end = _border_point(head, _centre(tail))
    # The first bend whose curve misses every other box, else the one that crosses the fewest.
    bend = min(bends, key=lambda b: (_boxes_crossed(axes, start, end, b, obstacles), bends.index(b)))
    arrow = FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14, color=colour, linestyle=line,
                            linewidth=1.2, connectionstyle=f"arc3,rad={bend}", shrinkA=1, shrinkB=1, zorder=2)
    axes.add_patch(arrow)
    label = axes.text(0, 0, _edge_text(data), fontsize=_LABEL_FONT, color=colour, ha="center", va="center",
                      zorder=4, bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none",
                                      "alpha": 0.85})
    spots = (0.5,) if loop else _LABEL_SPOTS
    # The first spot that overlaps nothing, else the one that overlaps least.
    tried: list[tuple[float, float, Bbox]] = []
    for t in spots:
        label.set_position(_along_arc(axes, start, end, bend, t))
        extent = label.get_window_extent(renderer)
        tried.append((sum(_area(Bbox.intersection(extent, other)) for other in taken), t, extent))
        if tried[-1][0] == 0:
            break
    _, t, extent = min(tried, key=lambda attempt: attempt[0])
    label.set_position(_along_arc(axes, start, end, bend, t))
    taken.append(extent)


def _area(box: Bbox | None) -> float:
    return box.width * box.height if box is not None else 0.0


def _boxes_crossed(axes, start: tuple, end: tuple, bend: float, obstacles: list) -> int:
    points = [_along_arc(axes, start, end, bend, i / 20) for i in range(1, 20)]
    near = _OBSTACLE_MARGIN
    return sum(
        any(x0 - near <= x <= x1 + near and y0 - near <= y <= y1 + near for x, y in points)
        for x0, y0, x1, y1 in obstacles
    )


def _centre(box: tuple) -> tuple[float, float]:
    x0, y0, x1, y1 = box
    return (x0 + x1) / 2, (y0 + y1) / 2


def _border_point(box: tuple, toward: tuple[float, float]) -> tuple[float, float]:
    """Where the line from the box's centre to `toward` leaves the box."""
    cx, cy = _centre(box)
    dx, dy = toward[0] - cx, toward[1] - cy
    half_w, half_h = (box[2] - box[0]) / 2, (box[3] - box[1]) / 2
    scale = min(half_w / abs(dx) if dx else math.inf, half_h / abs(dy) if dy else math.inf)
    return (cx + dx * scale, cy + dy * scale) if math.isfinite(scale) else (cx, cy)


def _along_arc(axes, start: tuple, end: tuple, bend: float, t: float) -> tuple[float, float]:
    """A point of matplotlib's arc3 curve (a quadratic Bézier built in display space)."""
    to_display = axes.transData
    (x1, y1), (x2, y2) = to_display.transform([start, end])
    control = ((x1 + x2) / 2 + bend * (y2 - y1), (y1 + y2) / 2 - bend * (x2 - x1))
    x = (1 - t) ** 2 * x1 + 2 * (1 - t) * t * control[0] + t**2 * x2
    y = (1 - t) ** 2 * y1 + 2 * (1 - t) * t * control[1] + t**2 * y2
    return tuple(to_display.inverted().transform((x, y)))


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
