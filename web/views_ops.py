"""For operators and their tools: ``GET /healthz`` (open to all) and ``GET /metrics`` (Prometheus text format)."""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from web.keys import METRICS, ORCH, PROBES, SETTINGS, STORE, Probe
from web.openapi import openapi_document
from web.serialize import json_response

PROBE_TIMEOUT_S = 5.0  # a check that does not answer in this long has failed


async def store_probe(app: web.Application) -> str | None:
    """The store answers a read."""
    await app[STORE].list_runs(limit=1)
    return None


async def workers_probe(app: web.Application) -> str | None:
    """Every worker of the orchestrator is alive."""
    orch = app[ORCH]
    alive, wanted = orch.workers_alive(), orch.settings.workers
    return None if alive == wanted else f"{alive} of {wanted} workers are alive"


async def healthz(request: web.Request) -> web.Response:
    """``GET /healthz``: 200 when every check passes, else 503; each check's result as JSON."""
    checks = {name: await _check(probe, request.app) for name, probe in request.app[PROBES].items()}
    healthy = all(check["ok"] for check in checks.values())
    body = {"status": "ok" if healthy else "failing", "checks": checks}
    return json_response(body, status=200 if healthy else 503, headers={"Cache-Control": "no-store"})


async def _check(probe: Probe, app: web.Application) -> dict[str, object]:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            problem = await probe(app)
    except TimeoutError:
        problem = f"no answer within {PROBE_TIMEOUT_S:g} s"
    except Exception as exc:  # the check failed: say how, without a traceback
        problem = f"{type(exc).__name__}: {exc}"
    return {"ok": True} if problem is None else {"ok": False, "problem": problem}


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: the service's metrics in Prometheus' text format."""
    collected = request.app[METRICS]
    await collected.refresh()
    return web.Response(body=collected.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def openapi(request: web.Request) -> web.Response:
    """``GET /api/openapi.json``: the OpenAPI 3.1 document of every route."""
    return json_response(openapi_document(webhook_path=request.app[SETTINGS].webhook_path))
