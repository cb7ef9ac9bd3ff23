"""The data the page's script lays out and draws as the DAG's graph (``web/static/graph.js``, with ELK).

The server only reads the config: tasks, their operations and dependencies, and the positions a
4diac import kept, which the layout takes as hints for the order of tasks. Past
``MAX_DRAWN_TASKS`` the graph is not drawn at all (its layout would keep the browser busy for
seconds); the page says so and the task table lists every task.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.limits import MAX_POSITION

# Where the layout stops taking well under a second in Chromium: see bench/graph_layout.py.
MAX_DRAWN_TASKS = 1000


def graph_data(config: Mapping[str, Any]) -> dict[str, Any]:
    """The tasks of a stored config as the script wants them, read leniently (an old config must still draw)."""
    raw = config.get("tasks", [])
    tasks = [t for t in raw if isinstance(t, dict) and isinstance(t.get("id"), str)] if isinstance(raw, list) else []
    if len(tasks) > MAX_DRAWN_TASKS:
        return {"collapsed": True, "count": len(tasks), "limit": MAX_DRAWN_TASKS, "tasks": []}
    known = {t["id"] for t in tasks}
    out = []
    for t in tasks:
        deps = t.get("dependencies", [])
        item: dict[str, Any] = {
            "id": t["id"],
            "op": str(t.get("operation", "")),
            "deps": [d for d in deps if isinstance(d, str) and d in known and d != t["id"]]
            if isinstance(deps, list)
            else [],
        }
        position = _position(t.get("position"))
        if position is not None:
            item["pos"] = position
        out.append(item)
    return {"collapsed": False, "count": len(out), "limit": MAX_DRAWN_TASKS, "tasks": out}


def _position(value: Any) -> list[float] | None:
    if not isinstance(value, dict):
        return None
    x, y = value.get("x"), value.get("y")
    # A config stored before positions were checked may hold any number: such a task is placed by the layout.
    if isinstance(x, int | float) and isinstance(y, int | float) and abs(x) <= MAX_POSITION and abs(y) <= MAX_POSITION:
        return [float(x), float(y)]
    return None
