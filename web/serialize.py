"""Records as the JSON the API answers: one place decides the shape of a run, a task, a DAG."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from aiohttp import web

from orchestrator.records import DagRecord, EventRecord, RunRecord, ScheduleRecord, TaskRecord
from web.keys import WebState

dumps = partial(json.dumps, ensure_ascii=False)


def json_response(data: object, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """JSON with non-ASCII text kept readable."""
    return web.json_response(data, status=status, headers=headers, dumps=dumps)


def run_json(run: RunRecord, state: WebState) -> dict[str, Any]:
    """A run with its links; the archive's path on the server is replaced by its URL."""
    data = run.as_dict()
    data.pop("archive", None)
    data["finished"] = run.finished
    data["url"] = state.run_url(run.run_id)
    data["archive_url"] = f"{state.public_url}/api/runs/{run.run_id}/archive" if run.archive else None
    return data


def task_json(task: TaskRecord) -> dict[str, Any]:
    """A task of a run, with its duration."""
    return task.as_dict()


def event_json(event: EventRecord) -> dict[str, Any]:
    """One journal entry (``task_id`` is null for the run's own transitions)."""
    return {
        "task_id": event.task_id,
        "state": event.state,
        "attempt": event.attempt,
        "at": event.at,
        "error": event.error,
    }


def dag_json(dag: DagRecord, *, full: bool = False) -> dict[str, Any]:
    """A DAG's summary; with ``full``, its whole config too."""
    tasks = dag.config.get("tasks", [])
    data: dict[str, Any] = {
        "dag_id": dag.dag_id,
        "description": dag.config.get("description", ""),
        "tasks": len(tasks) if isinstance(tasks, list) else 0,
        "version": dag.version,
        "source": dag.source,
        "updated_at": dag.updated_at,
    }
    if full:
        data["config"] = dag.config
    return data


def schedule_json(schedule: ScheduleRecord) -> dict[str, Any]:
    """A schedule as stored."""
    return {
        "schedule_id": schedule.schedule_id,
        "dag_id": schedule.dag_id,
        "kind": schedule.kind,
        "expr": schedule.expr,
        "timezone": schedule.timezone,
        "paused": schedule.paused,
        "next_fire_at": schedule.next_fire_at,
        "last_fire_at": schedule.last_fire_at,
        "last_run_id": schedule.last_run_id,
        "created_at": schedule.created_at,
    }
