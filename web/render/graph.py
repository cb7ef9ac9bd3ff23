"""The DAG drawn as SVG: tasks as boxes coloured by state, dependencies as arrows.

Tasks are laid out in columns by dependency depth (``orchestrator.graph.depths``), each column
ordered by where its parents sit so edges cross less. When every task of the config has a
``position`` (a 4diac import keeps its block positions), those are used instead, scaled just
enough that no two boxes overlap. The SVG keeps its natural size inside a scrolling box, so a
50-task DAG stays readable on a phone (it scrolls) instead of shrinking to nothing.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from graphlib import CycleError
from typing import Any

from orchestrator.graph import depths
from orchestrator.limits import MAX_POSITION
from web.render.base import esc, state_label

NODE_W = 168.0
NODE_H = 42.0
COL_GAP = 64.0
ROW_GAP = 14.0
PAD = 12.0
LABEL_CHARS = 21
MAX_DRAWN_TASKS = 1000  # beyond this a drawing helps nobody; the table still lists every task
MAX_POSITION_TASKS = 300  # the overlap check is quadratic
MAX_POSITION_SCALE = 40.0


@dataclass(frozen=True, slots=True)
class GraphTask:
    """What the drawing needs of a task."""

    task_id: str
    operation: str
    dependencies: tuple[str, ...]
    position: tuple[float, float] | None = None


@dataclass(frozen=True, slots=True)
class Box:
    """A task's box: its top-left corner."""

    task: GraphTask
    x: float
    y: float


@dataclass(frozen=True, slots=True)
class Layout:
    """Where everything goes."""

    boxes: dict[str, Box]
    edges: list[tuple[str, str]]
    width: float
    height: float
    by_position: bool


def graph_tasks(config: Mapping[str, Any]) -> list[GraphTask]:
    """The tasks of a stored config, read leniently (an old config must still draw)."""
    tasks = [t for t in config.get("tasks", []) if isinstance(t, dict) and isinstance(t.get("id"), str)]
    known = {t["id"] for t in tasks}
    out = []
    for t in tasks:
        deps = tuple(d for d in t.get("dependencies", []) if isinstance(d, str) and d in known and d != t["id"])
        out.append(GraphTask(t["id"], str(t.get("operation", "")), deps, _position(t.get("position"))))
    return out


def _position(value: Any) -> tuple[float, float] | None:
    if not isinstance(value, dict):
        return None
    x, y = value.get("x"), value.get("y")
    # A config stored before positions were checked may hold any number: such a task is placed by depth.
    if isinstance(x, int | float) and isinstance(y, int | float) and abs(x) <= MAX_POSITION and abs(y) <= MAX_POSITION:
        return float(x), float(y)
    return None


def layout(tasks: list[GraphTask]) -> Layout:
    """Place every task: by the config's positions when all have one, else by dependency depth."""
    edges = [(dep, t.task_id) for t in tasks for dep in t.dependencies]
    points = _positioned(tasks) if tasks and all(t.position for t in tasks) else None
    by_position = points is not None
    if points is None:
        points = _by_depth(tasks)
    boxes = {t.task_id: Box(t, *points[t.task_id]) for t in tasks}
    width = max((b.x for b in boxes.values()), default=0) + NODE_W + PAD
    height = max((b.y for b in boxes.values()), default=0) + NODE_H + PAD
    return Layout(boxes, edges, width, height, by_position)


def _by_depth(tasks: list[GraphTask]) -> dict[str, tuple[float, float]]:
    deps = {t.task_id: list(t.dependencies) for t in tasks}
    order = {t.task_id: i for i, t in enumerate(tasks)}
    try:
        depth = depths(deps)
    except CycleError:  # only a corrupt stored config; draw it as one column
        depth = dict.fromkeys(deps, 0)
    columns: dict[int, list[str]] = {}
    for task_id in sorted(deps, key=order.__getitem__):
        columns.setdefault(depth[task_id], []).append(task_id)
    tallest = max((len(c) for c in columns.values()), default=0)
    row: dict[str, float] = {}
    for level in sorted(columns):
        ids = columns[level]
        # Barycentre ordering: a task sits near the mean row of its parents (fewer crossings).
        ids.sort(key=lambda t: (_mean(row[p] for p in deps[t]) if deps[t] else order[t], order[t]))
        offset = (tallest - len(ids)) / 2  # centre short columns
        for i, task_id in enumerate(ids):
            row[task_id] = offset + i
    return {t: (PAD + depth[t] * (NODE_W + COL_GAP), PAD + row[t] * (NODE_H + ROW_GAP)) for t in deps}


def _mean(values: Any) -> float:
    items = list(values)
    return sum(items) / len(items)


def _positioned(tasks: list[GraphTask]) -> dict[str, tuple[float, float]] | None:
    """The config's positions, scaled so no boxes overlap; None when they cannot be used."""
    if len(tasks) > MAX_POSITION_TASKS:
        return None
    points = {t.task_id: t.position for t in tasks if t.position is not None}
    scale = 0.0
    for (ax, ay), (bx, by) in itertools.combinations(points.values(), 2):
        dx, dy = abs(ax - bx), abs(ay - by)
        if dx == 0 and dy == 0:
            return None  # two tasks on one spot: the positions say nothing useful
        # The smallest scale that separates this pair along one axis or the other.
        need_x = (NODE_W + COL_GAP / 2) / dx if dx else math.inf
        need_y = (NODE_H + ROW_GAP) / dy if dy else math.inf
        scale = max(scale, min(need_x, need_y))
    scale = min(scale or 1.0, MAX_POSITION_SCALE)
    min_x = min(p[0] for p in points.values())
    min_y = min(p[1] for p in points.values())
    return {t: (PAD + (x - min_x) * scale, PAD + (y - min_y) * scale) for t, (x, y) in points.items()}


def graph_svg(plan: Layout, states: Mapping[str, str], *, title: str) -> str:
    """The SVG; each box carries ``data-task`` and ``data-state`` so the page can recolour it live."""
    if len(plan.boxes) > MAX_DRAWN_TASKS:
        return f'<p class="muted">This DAG has {len(plan.boxes)} tasks; too many to draw. The table lists them all.</p>'
    w, h = math.ceil(plan.width), math.ceil(plan.height)
    edges = "".join(_edge(plan.boxes[a], plan.boxes[b]) for a, b in plan.edges)
    nodes = "".join(_node(box, states.get(name, "pending")) for name, box in plan.boxes.items())
    return (
        f'<svg class="dag" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        f'role="img" aria-label="{esc(title)}">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker>'
        # One clip for every box: it applies in each box's own (translated) coordinates.
        f'<clipPath id="box-clip"><rect width="{NODE_W - 6:g}" height="{NODE_H:g}"/></clipPath></defs>'
        f'<g class="edges">{edges}</g><g class="nodes">{nodes}</g></svg>'
    )


def _edge(src: Box, dst: Box) -> str:
    x1, y1 = src.x + NODE_W, src.y + NODE_H / 2
    x2, y2 = dst.x, dst.y + NODE_H / 2
    bend = max(24.0, abs(x2 - x1) / 2)
    # Edges that skip columns pass behind boxes; drawing them fainter keeps the short ones legible.
    css = "edge long" if x2 - x1 > NODE_W + COL_GAP * 1.5 else "edge"
    path = f"M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} {x2 - 2:.1f},{y2:.1f}"
    return (
        f'<path class="{css}" data-from="{esc(src.task.task_id)}" data-to="{esc(dst.task.task_id)}" '
        f'd="{path}" marker-end="url(#arrow)"/>'
    )


def _node(box: Box, state: str) -> str:
    task = box.task
    name = task.task_id if len(task.task_id) <= LABEL_CHARS else task.task_id[: LABEL_CHARS - 1] + "…"
    return (
        f'<a href="#task-{esc(task.task_id)}">'
        f'<g class="node" data-task="{esc(task.task_id)}" data-state="{esc(state)}" '
        f'transform="translate({box.x:.1f},{box.y:.1f})">'
        f"<title>{esc(task.task_id)} · {esc(task.operation)}</title>"
        f'<rect width="{NODE_W:g}" height="{NODE_H:g}" rx="7"/>'
        f'<g clip-path="url(#box-clip)"><text class="name" x="10" y="18">{esc(name)}</text>'
        f'<text class="sub" x="10" y="33"><tspan class="state-label">{esc(state_label(state))}</tspan>'
        f" · {esc(task.operation[:LABEL_CHARS])}</text></g></g></a>"
    )
