"""The DAGs API: list, read, add or replace DAGs, import 4diac files; operations and the config schema."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from operations.registry import all_operations
from orchestrator.errors import ConfigError, Problem
from orchestrator.limits import MAX_REQUEST_BYTES
from orchestrator.records import DagRecord
from orchestrator.validation import config_schema, parse_config
from web.inputs import read_json
from web.keys import LIBRARY, SETTINGS, STATE, STORE
from web.middlewares import ApiError
from web.serialize import dag_json, json_response, schedule_json
from web.upload4diac import read_upload

SOURCE = "request body"
MAX_UPLOAD_NAME = 128
# XML (4diac's own files say application/xml or text/xml; tools often octet-stream), ZIP and multipart
# uploads; never text/plain or a urlencoded form, which another site's page could send unasked.
FOURDIAC_TYPES = frozenset(
    {
        "application/xml",
        "text/xml",
        "application/octet-stream",
        "application/zip",
        "application/x-zip-compressed",
        "multipart/form-data",
    }
)


async def list_dags(request: web.Request) -> web.Response:
    """``GET /api/dags``: every DAG the service knows."""
    return json_response({"dags": [dag_json(d) for d in await request.app[LIBRARY].list()]})


async def get_dag(request: web.Request) -> web.Response:
    """``GET /api/dags/<dag_id>``: one DAG with its config."""
    record = await request.app[STORE].get_dag(request.match_info["dag_id"])
    return json_response(dag_json(record, full=True))


async def put_dag(request: web.Request) -> web.Response:
    """``PUT /api/dags/<dag_id>``: add or replace a DAG (its ``dag_name`` may be left out)."""
    dag_id = request.match_info["dag_id"]
    data = await _config_object(request)
    data.setdefault("dag_name", dag_id)
    if data["dag_name"] != dag_id:
        message = f"the URL names {dag_id!r} but the config's dag_name is {data['dag_name']!r}"
        raise ApiError(400, "dag_id_mismatch", message)
    return await _save(request, data)


async def post_dag(request: web.Request) -> web.Response:
    """``POST /api/dags``: add or replace the DAG the config names."""
    return await _save(request, await _config_object(request))


async def _config_object(request: web.Request) -> dict[str, Any]:
    data = await read_json(request, MAX_REQUEST_BYTES)
    if not isinstance(data, dict):
        raise ConfigError([Problem("", "a DAG config must be a JSON object")], source=SOURCE)
    return data


async def _save(request: web.Request, data: dict[str, Any]) -> web.Response:
    config = parse_config(data, source=SOURCE, allow_shell=request.app[SETTINGS].allow_shell)
    record = await request.app[LIBRARY].save(config, source="web")
    return _saved(request, record, status=201 if record.version == 1 else 200)


def _saved(request: web.Request, record: DagRecord, *, status: int, **extra: Any) -> web.Response:
    location = f"{request.app[STATE].public_url}/api/dags/{record.dag_id}"
    return json_response({**dag_json(record, full=True), **extra}, status=status, headers={"Location": location})


async def import_4diac(request: web.Request) -> web.Response:
    """``POST /api/import/4diac[?app=NAME&filename=F&dry_run=1]``: turn a 4diac file or project ZIP into a DAG.

    The body is XML, a ZIP, or multipart/mixed with a JSON type map beside either (``web.upload4diac``).
    """
    try:  # optional: loaded on first use
        from orchestrator.fourdiac import API_HINTS, AppChoiceError, import_upload, load_mapping, summarised
    except ImportError:
        raise ApiError(501, "not_available", "4diac import is not available in this build") from None
    upload = await read_upload(request)
    filename = (request.query.get("filename") or upload.filename or "")[:MAX_UPLOAD_NAME] or None
    app_name = request.query.get("app") or None
    dry_run = _flag(request, "dry_run")
    mapping = load_mapping(upload.mapping, name="the map part") if upload.mapping is not None else None
    # Parsing XML is CPU work: keep it off the event loop.
    try:
        result = await asyncio.to_thread(
            import_upload, upload.data, filename=filename, app=app_name, mapping=mapping, hints=API_HINTS
        )
    except AppChoiceError as exc:
        raise exc.with_hint("add ?app=NAME to the URL") from None
    except ConfigError as exc:
        if _flag(request, "all_problems"):
            raise
        raise summarised(exc, "add ?all_problems=1 to the URL to list each one") from None
    extra = {"schedule": result.schedule, "notes": result.notes}
    if dry_run:
        dumped = result.config.model_dump(mode="json", exclude_defaults=True)
        return json_response({"dag_id": result.config.dag_id, "config": dumped, "saved": False, **extra})
    source = result.config.metadata["imported_from"]["file"]
    record = await request.app[LIBRARY].save(result.config, source=f"4diac:{source}")
    return _saved(request, record, status=201 if record.version == 1 else 200, saved=True, **extra)


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes")


async def list_schedules(request: web.Request) -> web.Response:
    """``GET /api/schedules``: every schedule."""
    schedules = await request.app[STORE].list_schedules()
    return json_response({"schedules": [schedule_json(s) for s in schedules]})


async def list_operations(request: web.Request) -> web.Response:
    """``GET /api/operations``: every operation with the JSON Schema of its params."""
    operations = [
        {
            "name": op.name,
            "description": op.description,
            "remote_ok": op.remote_ok,
            "params_schema": op.params_model.model_json_schema(),
        }
        for op in all_operations().values()
    ]
    return json_response({"operations": operations})


async def schema(request: web.Request) -> web.Response:
    """``GET /api/schema``: the JSON Schema of a DAG config."""
    return json_response(config_schema())
