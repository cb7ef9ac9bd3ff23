"""Starting runs over HTTP: ``POST /api/web`` answers at once, ``POST /api/cli`` answers with the ZIP.

The body is a DAG config, ``{"dag_id": "..."}`` for a DAG the service knows, or
``{"config": {...}}``; the last two may add ``"params": {...}`` for the DAG's params. A config whose
``dag_name`` the service does not know yet is also added as a DAG, so it can be run by id later;
one that names a known DAG runs as sent and leaves that DAG as it is. A run belongs to the
orchestrator, not to the request: a client that goes away, or a request that stops waiting, never
stops the run.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from orchestrator.engine import Orchestrator, RunReport
from orchestrator.errors import ConfigError, Problem
from orchestrator.limits import MAX_REQUEST_BYTES
from orchestrator.models import DagConfig
from orchestrator.validation import parse_config
from web.files import archive_response
from web.inputs import float_query, read_json
from web.keys import LIBRARY, ORCH, SETTINGS, STATE, STORE
from web.middlewares import ApiError
from web.serialize import json_response

MAX_WAIT_S = 7 * 24 * 3600.0
SOURCE = "request body"


async def config_from_body(request: web.Request) -> tuple[DagConfig, bool, dict[str, Any] | None]:
    """The validated config the body holds or names (422 with the full report if it is invalid), whether
    it was added as a new DAG, and the params the body gives."""
    data = await read_json(request, MAX_REQUEST_BYTES)
    if not isinstance(data, dict):
        raise ConfigError([Problem("", "a DAG config must be a JSON object")], source=SOURCE)
    if "dag_id" in data and "tasks" not in data:
        return await _known_dag(request, data), False, _params(data)
    params = None
    if "config" in data and "tasks" not in data:
        params = _params(data)
        data = _inline(data)
    config = parse_config(data, source=SOURCE, allow_shell=request.app[SETTINGS].allow_shell)
    added = await request.app[LIBRARY].add_new(config, source="web")
    return config, added is not None, params


async def _known_dag(request: web.Request, data: dict[str, object]) -> DagConfig:
    dag_id = data["dag_id"]
    _only(data, "dag_id")
    if not isinstance(dag_id, str) or not dag_id:
        raise ApiError(400, "bad_request", '"dag_id" must be a non-empty string')
    return await request.app[LIBRARY].get(dag_id)  # NotFoundError → 404


def _inline(data: dict[str, Any]) -> dict[str, Any]:
    _only(data, "config")
    if not isinstance(data["config"], dict):
        raise ConfigError([Problem("config", "a DAG config must be a JSON object")], source=SOURCE)
    return data["config"]


def _only(data: dict[str, Any], key: str) -> None:
    extra = sorted(set(data) - {key, "params"})
    if extra:
        raise ApiError(400, "bad_request", f'with "{key}" the body takes only "params" (got {", ".join(extra)})')


def _params(data: dict[str, Any]) -> dict[str, Any] | None:
    params = data.get("params")
    if params is not None and not isinstance(params, dict):
        raise ApiError(400, "bad_request", '"params" must be an object of NAME: value')
    return params


async def submit_web(request: web.Request) -> web.Response:
    """``POST /api/web``: start a run and answer ``201 {"run_id", "url"}`` at once."""
    config, added, params = await config_from_body(request)
    run_id = await request.app[ORCH].submit(config, trigger="web", params=params)
    url = request.app[STATE].run_url(run_id)
    body = {"run_id": run_id, "url": url, "dag_id": config.dag_id, "dag_added": added}
    return json_response(body, status=201, headers={"Location": url})


async def submit_cli(request: web.Request) -> web.StreamResponse:
    """``POST /api/cli[?timeout=s]``: run to the end and answer with its ZIP; 202 if it outlasts the timeout."""
    timeout = float_query(request, "timeout", low=0.0, high=MAX_WAIT_S)
    config, _, params = await config_from_body(request)
    orch = request.app[ORCH]
    state = request.app[STATE]
    run_id = await orch.submit(config, trigger="cli", params=params)
    report = await wait_for_run(orch, run_id, state.closing, limit_s=timeout)
    if report is not None:
        return await archive_response(request.app[SETTINGS], report.run)
    run = await request.app[STORE].get_run(run_id)
    url = state.run_url(run_id)
    headers = {"X-TaskFlow-Run-Id": str(run_id), "X-TaskFlow-Run-State": run.state.value, "Location": url}
    if state.closing.is_set():
        raise ApiError(
            503,
            "shutting_down",
            f"the service is shutting down; run {run_id} goes on when it starts again",
            headers=headers,
            run_id=run_id,
            url=url,
        )
    message = f"run {run_id} is still going after {timeout:g} s; follow it at {url}"
    body = {"run_id": run_id, "url": url, "state": run.state.value, "message": message}
    return json_response(body, status=202, headers=headers)


async def wait_for_run(
    orch: Orchestrator, run_id: int, closing: asyncio.Event, *, limit_s: float | None
) -> RunReport | None:
    """The run's final report; None if ``limit_s`` passes or the server starts shutting down first."""
    waiter = asyncio.ensure_future(orch.wait(run_id))
    stop = asyncio.ensure_future(closing.wait())
    try:
        await asyncio.wait({waiter, stop}, timeout=limit_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        if not waiter.done():
            waiter.cancel()  # stops the waiting only: orch.wait shields the run itself
    if waiter.done() and not waiter.cancelled():
        return waiter.result()
    return None
