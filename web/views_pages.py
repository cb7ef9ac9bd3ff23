"""The read-only pages: the status page, a run's page and the files it links to.

They stay open when ``TASKFLOW_API_TOKEN`` is set: they show, they never change anything.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import hdrs, web

from orchestrator.limits import MAX_ROW_ID
from orchestrator.progress import progress
from orchestrator.records import TaskRecord
from orchestrator.states import RUN_ACTIVE, RunState
from web.files import archive_path, archive_response, log_response, read_log_tail
from web.inputs import int_query, path_id
from web.keys import LIBRARY, SETTINGS, STORE
from web.render.base import Clock, html_response, render
from web.render.durations import run_elapsed
from web.render.run import PARTS, RunView, graph_drawn, page_context, parts_context
from web.serialize import json_response

RUNS_PER_PAGE = 30
MAX_COUNTED = 1000  # runs going, counted up to this ("1000+ runs going")


async def status(request: web.Request) -> web.Response:
    """``GET /[?dag=&state=&offset=]``: DAGs with their last run, runs (filtered, paged), schedules."""
    store = request.app[STORE]
    dags = await request.app[LIBRARY].list()
    newest = await store.last_runs()  # one query, however many DAGs
    last_runs = {dag.dag_id: newest.get(dag.dag_id) for dag in dags}
    schedules = await store.list_schedules()
    context = {
        **await runs_context(request),
        "dags": dags,
        "last_runs": last_runs,
        "schedules": schedules,
        "active_schedules": sum(not s.paused for s in schedules),
        "run_states": [s.value for s in RunState],
    }
    return html_response(render(request, "status.html", context))


async def status_runs(request: web.Request) -> web.Response:
    """``GET /parts/runs[?dag=&state=&offset=]``: the status page's runs and counters, for its script."""
    context = await runs_context(request)
    body = {"runs": render(request, "_runs.html", context), "going": render(request, "_going.html", context)}
    return json_response(body, headers={hdrs.CACHE_CONTROL: "no-store"})


async def runs_context(request: web.Request) -> dict[str, Any]:
    """One page of runs, filtered by the query, and how many runs are going."""
    store = request.app[STORE]
    dag_id = request.query.get("dag") or None
    state = request.query.get("state") or None
    states = [RunState(state)] if state in set(RunState) else None
    offset = int_query(request, "offset", 0, low=0, high=2**31)
    runs = await store.list_runs(dag_id=dag_id, states=states, limit=RUNS_PER_PAGE + 1, offset=offset)
    going = await store.list_runs(states=RUN_ACTIVE, limit=MAX_COUNTED)
    now = time.time()
    tz = request.app[SETTINGS].tz
    return {
        "tz": tz,
        "clock": Clock(tz, now),
        "runs": runs[:RUNS_PER_PAGE],
        "filters": {"dag": dag_id or "", "state": state if states else ""},
        "newer": max(0, offset - RUNS_PER_PAGE) if offset else None,
        "older": offset + RUNS_PER_PAGE if len(runs) > RUNS_PER_PAGE else None,
        "going": len(going),
        "going_more": len(going) == MAX_COUNTED,
        "progress_of": lambda run: progress(run.counts),
        "run_elapsed": lambda run: run_elapsed(run, now),
    }


async def load_run_view(app: web.Application, run_id: int, offset: int = 0) -> RunView:
    """Read a run, its tasks, journal, log tail and archive state (``NotFoundError`` if unknown)."""
    store = app[STORE]
    settings = app[SETTINGS]
    run = await store.get_run(run_id)
    archive = archive_path(settings, run)
    log, cut = await read_log_tail(settings, run_id)
    config = await store.run_config(run_id)
    return RunView(
        run=run,
        tasks=_in_config_order(await store.get_tasks(run_id), config),
        config=config,
        events=await store.get_events(run_id),
        log=log,
        log_cut=cut,
        has_archive=archive is not None and await asyncio.to_thread(archive.is_file),
        now=time.time(),
        offset=offset,
    )


def _in_config_order(tasks: list[TaskRecord], config: dict[str, Any]) -> list[TaskRecord]:
    # People read a DAG in the order its author wrote it, not sorted by id.
    order = {t.get("id"): i for i, t in enumerate(config.get("tasks", [])) if isinstance(t, dict)}
    return sorted(tasks, key=lambda t: order.get(t.task_id, len(order)))


async def run_view(request: web.Request) -> web.Response:
    """``GET /runs/<id>``: the run's graph, tasks, timeline and log; it updates itself live."""
    view = await load_run_view(request.app, path_id(request), _tasks_offset(request))
    return html_response(render(request, "run.html", page_context(view, request.app[SETTINGS].tz)))


def _tasks_offset(request: web.Request) -> int:
    return int_query(request, "tasks", 0, low=0, high=MAX_ROW_ID)


async def run_view_parts(request: web.Request) -> web.Response:
    """``GET /runs/<id>/parts``: the changing parts of the run page, for its script."""
    view = await load_run_view(request.app, path_id(request), _tasks_offset(request))
    context = parts_context(view, request.app[SETTINGS].tz)
    body = {
        "run_id": view.run.run_id,
        "state": view.run.state.value,
        "finished": view.settled,
        "states": view.shown_states(graph_drawn(view)),
        "parts": {name: render(request, f"run/_{name}.html", context) for name in PARTS},
    }
    return json_response(body, headers={hdrs.CACHE_CONTROL: "no-store"})


async def run_log(request: web.Request) -> web.FileResponse:
    """``GET /runs/<id>/log``: the whole ``run.log``."""
    run_id = path_id(request)
    await request.app[STORE].get_run(run_id)  # 404 for a run that does not exist
    return await log_response(request.app[SETTINGS], run_id)


async def run_archive(request: web.Request) -> web.FileResponse:
    """``GET /runs/<id>/archive.zip``: the run's ZIP, once it ended."""
    run = await request.app[STORE].get_run(path_id(request))
    return await archive_response(request.app[SETTINGS], run)
