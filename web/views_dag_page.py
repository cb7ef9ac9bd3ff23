"""``GET /dags/<dag_id>``: a DAG's page: description, graph, config and its versions, schedules,
and a grid of its recent runs × tasks coloured by state. Read-only, like every page."""

from __future__ import annotations

import asyncio
import difflib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from orchestrator.records import DagRecord, RunRecord
from web.inputs import int_query
from web.keys import LIBRARY, SETTINGS, STORE
from web.render.base import Clock, html_response, render
from web.render.graph import graph_data

GRID_RUNS = 25
GRID_TASKS = 200  # rows of the grid; a bigger DAG's other tasks are on each run's page


@dataclass(frozen=True, slots=True)
class Version:
    """A saved config of the DAG: its number and text."""

    number: int
    text: str
    current: bool


@dataclass(frozen=True, slots=True)
class Grid:
    """Recent runs (oldest first) by task: ``states[task_id][i]`` is the task's state in ``runs[i]``."""

    runs: list[RunRecord]
    task_ids: list[str]
    states: dict[str, list[str | None]]
    left_out: int


async def dag_page(request: web.Request) -> web.Response:
    """The page; ``?a=&b=`` picks the two versions whose configs are compared."""
    app = request.app
    dag_id = request.match_info["dag_id"]
    store = app[STORE]
    record = await store.get_dag(dag_id)  # NotFoundError → 404 page
    versions = await asyncio.to_thread(_versions, app[LIBRARY].versions(dag_id), record)
    latest = versions[-1].number
    a = int_query(request, "a", max(1, latest - 1), low=1, high=latest)
    b = int_query(request, "b", latest, low=1, high=latest)
    grid = await _grid(store, dag_id)
    last = grid.runs[-1] if grid.runs else None
    states = {t.task_id: t.state.value for t in await store.get_tasks(last.run_id)} if last else {}
    now = time.time()
    tz = app[SETTINGS].tz
    context = {
        "tz": tz,
        "clock": Clock(tz, now),
        "dag": record,
        "description": str(record.config.get("description", "")),
        "config_text": json.dumps(record.config, indent=2, ensure_ascii=False),
        "versions": versions,
        "diff": _diff(versions, a, b),
        "a": a,
        "b": b,
        "schedules": [s for s in await store.list_schedules() if s.dag_id == dag_id],
        "grid": grid,
        "graph": graph_data(record.config),
        "states": states,
        "last_run": last,
    }
    return html_response(render(request, "dag.html", context))


def _versions(files: list[Path], record: DagRecord) -> list[Version]:
    # Earlier versions are the files config.v<N>.json; the current one is the store's.
    out = [Version(int(p.stem.split(".v")[-1]), p.read_text(encoding="utf-8"), False) for p in files]
    current = json.dumps(record.config, indent=2, ensure_ascii=False)
    out.append(Version(max(record.version, len(out) + 1), current, True))
    return out


def _diff(versions: list[Version], a: int, b: int) -> list[str]:
    texts = {v.number: v.text for v in versions}
    if a not in texts or b not in texts or a == b:
        return []
    return list(
        difflib.unified_diff(
            _normalised(texts[a]).splitlines(), _normalised(texts[b]).splitlines(), f"v{a}", f"v{b}", lineterm=""
        )
    )


def _normalised(text: str) -> str:
    # Files and the store may differ in key order or spacing; compare what they say.
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False, sort_keys=True)
    except ValueError:
        return text


async def _grid(store: Any, dag_id: str) -> Grid:
    runs = list(reversed(await store.list_runs(dag_id=dag_id, limit=GRID_RUNS)))
    config = (await store.get_dag(dag_id)).config
    task_ids = [t["id"] for t in config.get("tasks", []) if isinstance(t, dict) and isinstance(t.get("id"), str)]
    per_run = [{t.task_id: t.state.value for t in await store.get_tasks(run.run_id)} for run in runs]
    known = set(task_ids)
    for states in per_run:
        for task_id in states:
            if task_id not in known:  # a task an older version had
                known.add(task_id)
                task_ids.append(task_id)
    shown = task_ids[:GRID_TASKS]
    return Grid(runs, shown, {t: [s.get(t) for s in per_run] for t in shown}, len(task_ids) - len(shown))
