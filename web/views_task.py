"""A task of a run, for the run page's details panel: ``/runs/<id>/task?id=`` and its output file.

Read-only pages like the rest: open when ``TASKFLOW_API_TOKEN`` is set.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import hdrs, web

from orchestrator.records import TaskRecord
from web.files import TASK_LOG_BYTES, output_response, read_log_tail, read_output_preview
from web.inputs import path_id
from web.keys import SETTINGS, STORE
from web.middlewares import ApiError
from web.render.base import Clock, render
from web.render.task import OutputPreview, TaskView, attempts, task_log_lines
from web.serialize import json_response


async def task_details(request: web.Request) -> web.Response:
    """``GET /runs/<id>/task?id=<task_id>``: ``{"task_id", "state", "html"}`` of the details panel."""
    app = request.app
    store, settings = app[STORE], app[SETTINGS]
    run_id = path_id(request)
    task_id = request.query.get("id", "")
    run = await store.get_run(run_id)
    task = _find(await store.get_tasks(run_id), task_id, run_id)
    config = await store.run_config(run_id)
    task_config = next((t for t in config.get("tasks", []) if isinstance(t, dict) and t.get("id") == task_id), {})
    now = time.time()
    log, _ = await read_log_tail(settings, run_id, TASK_LOG_BYTES)
    lines, cut = task_log_lines(log, task_id)
    preview = None
    if task.output_file:
        found = await asyncio.to_thread(read_output_preview, settings, run, task.output_file)
        if found is not None:
            data, size, source = found
            text = data.decode("utf-8", errors="replace")
            preview = OutputPreview(task.output_file, text, size, size > len(data), source)
    view = TaskView(
        run_id=run_id,
        task=task,
        config=task_config,
        attempts=attempts(await store.get_events(run_id), task_id, now),
        output=preview,
        log_lines=lines,
        log_cut=cut,
    )
    context = {"t": view, "clock": Clock(settings.tz, now), "operation": str(task_config.get("operation", ""))}
    body = {"task_id": task_id, "state": task.state.value, "html": render(request, "run/_task.html", context)}
    return json_response(body, headers={hdrs.CACHE_CONTROL: "no-store"})


async def task_output(request: web.Request) -> web.StreamResponse:
    """``GET /runs/<id>/output?task=<task_id>``: the task's output file as a download."""
    store = request.app[STORE]
    run_id = path_id(request)
    run = await store.get_run(run_id)
    task = _find(await store.get_tasks(run_id), request.query.get("task", ""), run_id)
    if not task.output_file:
        raise ApiError(404, "not_found", f"task {task.task_id} has no output file")
    return await output_response(request, request.app[SETTINGS], run, task.output_file)


def _find(tasks: list[TaskRecord], task_id: str, run_id: int) -> TaskRecord:
    for task in tasks:
        if task.task_id == task_id:
            return task
    raise ApiError(404, "not_found", f"run {run_id} has no task {task_id!r}")
