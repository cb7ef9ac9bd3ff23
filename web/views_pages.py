"""The read-only pages: the status page, a run's page and the files it links to.

They stay open when ``TASKFLOW_API_TOKEN`` is set: they show, they never change anything.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import hdrs, web

from orchestrator.records import TaskRecord
from web.files import archive_path, archive_response, log_response, read_log_tail
from web.inputs import path_id
from web.keys import LIBRARY, ORCH, SETTINGS
from web.render.base import html_headers
from web.render.run import RunView, run_page, run_parts
from web.render.status import StatusView, status_page
from web.serialize import json_response

RECENT_RUNS = 30


def html_response(text: str, *, status: int = 200) -> web.Response:
    """An HTML page with the headers every page carries."""
    return web.Response(text=text, status=status, content_type="text/html", headers=html_headers())


async def status(request: web.Request) -> web.Response:
    """``GET /``: DAGs with their last run, recent runs, schedules."""
    store = request.app[ORCH].store
    dags = await request.app[LIBRARY].list()
    last_runs = {}
    for dag in dags:
        latest = await store.list_runs(dag_id=dag.dag_id, limit=1)
        last_runs[dag.dag_id] = latest[0] if latest else None
    view = StatusView(
        dags=dags,
        last_runs=last_runs,
        runs=await store.list_runs(limit=RECENT_RUNS),
        schedules=await store.list_schedules(),
        now=time.time(),
    )
    return html_response(status_page(view, request.app[SETTINGS].tz))


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
    return html_response(run_page(view, request.app[SETTINGS].tz))


async def run_view_parts(request: web.Request) -> web.Response:
    """``GET /runs/<id>/parts``: the changing parts of the run page, for its script."""
    view = await load_run_view(request.app, path_id(request))
    body = {
        "run_id": view.run.run_id,
        "state": view.run.state.value,
        "finished": view.settled,
        "states": {t.task_id: t.state.value for t in view.tasks},
        "parts": run_parts(view, request.app[SETTINGS].tz),
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
