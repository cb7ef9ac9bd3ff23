"""The read-only pages: the status page, a run's page and the files it links to.

They stay open when ``TASKFLOW_API_TOKEN`` is set: they show, they never change anything.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import hdrs, web

from orchestrator.progress import progress
from orchestrator.records import TaskRecord
from web.files import archive_path, archive_response, log_response, read_log_tail
from web.inputs import path_id
from web.keys import LIBRARY, ORCH, SETTINGS
from web.render.base import Clock, html_response, render
from web.render.durations import run_elapsed
from web.render.run import PARTS, RunView, page_context, parts_context
from web.serialize import json_response

RECENT_RUNS = 30


async def status(request: web.Request) -> web.Response:
    """``GET /``: DAGs with their last run, recent runs, schedules."""
    store = request.app[ORCH].store
    dags = await request.app[LIBRARY].list()
    last_runs = {}
    for dag in dags:
        latest = await store.list_runs(dag_id=dag.dag_id, limit=1)
        last_runs[dag.dag_id] = latest[0] if latest else None
    runs = await store.list_runs(limit=RECENT_RUNS)
    schedules = await store.list_schedules()
    now = time.time()
    tz = request.app[SETTINGS].tz
    context = {
        "tz": tz,
        "clock": Clock(tz, now),
        "dags": dags,
        "last_runs": last_runs,
        "runs": runs,
        "going": sum(not r.finished for r in runs),
        "schedules": schedules,
        "active_schedules": sum(not s.paused for s in schedules),
        "progress_of": lambda run: progress(run.counts),
        "run_elapsed": lambda run: run_elapsed(run, now),
    }
    return html_response(render(request, "status.html", context))


async def load_run_view(app: web.Application, run_id: int) -> RunView:
    """Read a run, its tasks, journal, log tail and archive state (``NotFoundError`` if unknown)."""
    store = app[ORCH].store
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
    )


def _in_config_order(tasks: list[TaskRecord], config: dict[str, Any]) -> list[TaskRecord]:
    # People read a DAG in the order its author wrote it, not sorted by id.
    order = {t.get("id"): i for i, t in enumerate(config.get("tasks", [])) if isinstance(t, dict)}
    return sorted(tasks, key=lambda t: order.get(t.task_id, len(order)))


async def run_view(request: web.Request) -> web.Response:
    """``GET /runs/<id>``: the run's graph, tasks, timeline and log; it updates itself live."""
    view = await load_run_view(request.app, path_id(request))
    return html_response(render(request, "run.html", page_context(view, request.app[SETTINGS].tz)))


async def run_view_parts(request: web.Request) -> web.Response:
    """``GET /runs/<id>/parts``: the changing parts of the run page, for its script."""
    view = await load_run_view(request.app, path_id(request))
    context = parts_context(view, request.app[SETTINGS].tz)
    body = {
        "run_id": view.run.run_id,
        "state": view.run.state.value,
        "finished": view.settled,
        "states": {t.task_id: t.state.value for t in view.tasks},
        "parts": {name: render(request, f"run/_{name}.html", context) for name in PARTS},
    }
    return json_response(body, headers={hdrs.CACHE_CONTROL: "no-store"})


async def run_log(request: web.Request) -> web.FileResponse:
    """``GET /runs/<id>/log``: the whole ``run.log``."""
    run_id = path_id(request)
    await request.app[ORCH].store.get_run(run_id)  # 404 for a run that does not exist
    return await log_response(request.app[SETTINGS], run_id)


async def run_archive(request: web.Request) -> web.FileResponse:
    """``GET /runs/<id>/archive.zip``: the run's ZIP, once it ended."""
    run = await request.app[ORCH].store.get_run(path_id(request))
    return await archive_response(request.app[SETTINGS], run)
