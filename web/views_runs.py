"""The runs API: list and read runs, their journal and archive; cancel and re-run them."""

from __future__ import annotations

from aiohttp import web

from orchestrator.states import RunState
from web.files import archive_response, log_response
from web.inputs import int_query, list_query, path_id
from web.keys import ORCH, SETTINGS, STATE, STORE
from web.middlewares import ApiError
from web.serialize import event_json, json_response, run_json, task_json

MAX_PAGE = 500
DEFAULT_PAGE = 50
MAX_TASK_PAGE = 10_000
DEFAULT_TASK_PAGE = 1000


def _states(request: web.Request) -> list[RunState] | None:
    names = list_query(request, "state")
    if not names:
        return None
    known = {s.value: s for s in RunState}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ApiError(400, "bad_query", f"unknown run state {unknown[0]!r}; one of: {', '.join(known)}")
    return [known[n] for n in names]


async def list_runs(request: web.Request) -> web.Response:
    """``GET /api/runs?dag=&state=&limit=&offset=``: runs, newest first."""
    limit = int_query(request, "limit", DEFAULT_PAGE, low=1, high=MAX_PAGE)
    offset = int_query(request, "offset", 0, low=0, high=2**31)
    dag_id = request.query.get("dag") or request.query.get("dag_id") or None
    runs = await request.app[STORE].list_runs(dag_id=dag_id, states=_states(request), limit=limit, offset=offset)
    state = request.app[STATE]
    return json_response(
        {
            "runs": [run_json(r, state) for r in runs],
            "limit": limit,
            "offset": offset,
            # A full page may have a next one; a short page is the last.
            "next_offset": offset + limit if len(runs) == limit else None,
        }
    )


async def get_run(request: web.Request) -> web.Response:
    """``GET /api/runs/<id>?limit=&offset=``: the run and a page of its tasks (a DAG may have 100,000)."""
    run_id = path_id(request)
    limit = int_query(request, "limit", DEFAULT_TASK_PAGE, low=1, high=MAX_TASK_PAGE)
    offset = int_query(request, "offset", 0, low=0, high=2**31)
    report = await request.app[ORCH].report(run_id)
    tasks = list(report.tasks.values())
    data = run_json(report.run, request.app[STATE])
    data["tasks"] = [task_json(t) for t in tasks[offset : offset + limit]]
    data["tasks_total"] = len(tasks)
    data["tasks_offset"] = offset
    data["tasks_next_offset"] = offset + limit if offset + limit < len(tasks) else None
    return json_response(data)


async def run_events(request: web.Request) -> web.Response:
    """``GET /api/runs/<id>/events``: the journal of every transition, oldest first."""
    run_id = path_id(request)
    store = request.app[STORE]
    await store.get_run(run_id)  # 404 for an unknown run rather than an empty list
    events = await store.get_events(run_id)
    return json_response({"run_id": run_id, "events": [event_json(e) for e in events]})


async def run_archive(request: web.Request) -> web.FileResponse:
    """``GET /api/runs/<id>/archive``: the run's ZIP (409 while it goes on)."""
    run = await request.app[STORE].get_run(path_id(request))
    return await archive_response(request.app[SETTINGS], run)


async def run_log(request: web.Request) -> web.FileResponse:
    """``GET /api/runs/<id>/log``: the run's log as text."""
    run_id = path_id(request)
    await request.app[STORE].get_run(run_id)
    return await log_response(request.app[SETTINGS], run_id)


async def cancel_run(request: web.Request) -> web.Response:
    """``POST /api/runs/<id>/cancel``: stop a run that goes on (409 if it has ended)."""
    run_id = path_id(request)
    await request.app[ORCH].cancel(run_id, by="API")
    url = request.app[STATE].run_url(run_id)
    return json_response({"run_id": run_id, "cancelling": True, "url": url}, status=202)


async def rerun(request: web.Request) -> web.Response:
    """``POST /api/runs/<id>/rerun``: run a failed or cancelled run again from its failure."""
    run_id = await request.app[ORCH].rerun(path_id(request))
    return json_response({"run_id": run_id, "url": request.app[STATE].run_url(run_id)}, status=202)
