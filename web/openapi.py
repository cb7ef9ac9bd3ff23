"""The OpenAPI 3.1 document of every route the web server answers (``GET /api/openapi.json``).

Written out by hand, next to the routes it describes (``web.app.ROUTES``); the DAG config's schema
is pydantic's, so it never drifts from what the server validates. A test validates the document and
runs schemathesis against a live server with it.
"""

from __future__ import annotations

from typing import Any

from orchestrator.limits import MAX_ROW_ID
from orchestrator.models import DagConfig
from orchestrator.states import RunState, TaskState

Schema = dict[str, Any]

_NUMBER_OR_NULL: Schema = {"type": ["number", "null"]}
_STRING_OR_NULL: Schema = {"type": ["string", "null"]}
_INTEGER_OR_NULL: Schema = {"type": ["integer", "null"]}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(required: list[str], properties: dict[str, Schema], *, extra: bool = False) -> Schema:
    return {"type": "object", "required": required, "properties": properties, "additionalProperties": extra}


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _media(media: str, description: str) -> Schema:
    return {"description": description, "content": {media: {"schema": {"type": "string"}}}}


# Errors: under /api a JSON body (``Error``); elsewhere an HTML page.
_ERRORS = {
    400: "a bad query parameter, body shape, or body that is not JSON",
    401: "the API token is missing or wrong (only when TASKFLOW_API_TOKEN is set)",
    403: "a page of another site sent a request that would change something",
    404: "no such run, DAG or path",
    409: "the run is in a state that does not allow it",
    413: "the body is over the limit",
    415: "the body's Content-Type is not one this route takes",
    422: "the DAG config failed validation: `problems` is the full report",
    501: "this build cannot do it",
    503: "the service is shutting down",
}


def _api_errors(*codes: int) -> dict[str, Schema]:
    return {str(code): {"$ref": f"#/components/responses/E{code}"} for code in (401, *codes)}


def _page_errors(*codes: int) -> dict[str, Schema]:
    return {str(code): _media("text/html", _ERRORS[code]) for code in codes}


def _run_id() -> Schema:
    return {
        "name": "run_id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_ROW_ID},
    }


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _op(summary: str, responses: dict[str, Schema], **extra: Any) -> Schema:
    return {"summary": summary, "responses": responses, **extra}


def _body(schema: Schema, description: str) -> Schema:
    return {"required": True, "description": description, "content": {"application/json": {"schema": schema}}}


_OPEN: list[Schema] = []  # no security: open to all


def _schemas() -> dict[str, Schema]:
    config = DagConfig.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas: dict[str, Schema] = config.pop("$defs", {})
    schemas["DagConfig"] = config
    # PUT /api/dags/<dag_id> may leave dag_name out: the URL names the DAG.
    schemas["DagConfigNamedByUrl"] = {**config, "required": [r for r in config.get("required", []) if r != "dag_name"]}
    params = {"type": "object", "description": "values for the DAG's declared params"}
    schemas["DagRef"] = _object(["dag_id"], {"dag_id": {"type": "string", "minLength": 1}, "params": params})
    schemas["DagConfigWithParams"] = _object(["config"], {"config": _ref("DagConfig"), "params": params})
    schemas["Error"] = _object(
        ["error", "message"], {"error": {"type": "string"}, "message": {"type": "string"}}, extra=True
    )
    schemas["Task"] = _object(
        ["task_id", "state", "attempts", "failures", "started_at", "ended_at", "error", "output_file", "duration_s"],
        {
            "task_id": {"type": "string"},
            "state": {"enum": [s.value for s in TaskState]},
            "attempts": {"type": "integer"},
            "failures": {"type": "integer"},
            "started_at": _NUMBER_OR_NULL,
            "ended_at": _NUMBER_OR_NULL,
            "error": _STRING_OR_NULL,
            "output_file": _STRING_OR_NULL,
            "duration_s": _NUMBER_OR_NULL,
        },
    )
    run_fields: dict[str, Schema] = {
        "run_id": {"type": "integer"},
        "dag_id": {"type": "string"},
        "state": {"enum": [s.value for s in RunState]},
        "trigger": {"type": "string"},
        "owner": _STRING_OR_NULL,
        "notify_chat": _INTEGER_OR_NULL,
        "created_at": {"type": "number"},
        "started_at": _NUMBER_OR_NULL,
        "ended_at": _NUMBER_OR_NULL,
        "error": _STRING_OR_NULL,
        "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
        "duration_s": _NUMBER_OR_NULL,
        "finished": {"type": "boolean"},
        "url": {"type": "string"},
        "archive_url": _STRING_OR_NULL,
        "params": {"type": ["object", "null"]},
        "logical_date": _NUMBER_OR_NULL,
    }
    schemas["Run"] = _object(list(run_fields), run_fields)
    schemas["RunWithTasks"] = _object(
        [*run_fields, "tasks"], {**run_fields, "tasks": {"type": "array", "items": _ref("Task")}}
    )
    schemas["Event"] = _object(
        ["task_id", "state", "attempt", "at", "error"],
        {
            "task_id": _STRING_OR_NULL,
            "state": {"type": "string"},
            "attempt": _INTEGER_OR_NULL,
            "at": {"type": "number"},
            "error": _STRING_OR_NULL,
        },
    )
    dag_fields: dict[str, Schema] = {
        "dag_id": {"type": "string"},
        "description": {"type": "string"},
        "tasks": {"type": "integer"},
        "version": {"type": "integer"},
        "source": {"type": "string"},
        "updated_at": {"type": "number"},
    }
    schemas["Dag"] = _object(list(dag_fields), dag_fields)
    schemas["DagWithConfig"] = _object([*dag_fields, "config"], {**dag_fields, "config": {"type": "object"}})
    schemas["DagSaved"] = {
        **schemas["DagWithConfig"],
        "additionalProperties": True,  # the 4diac import adds saved, schedule and notes
    }
    schemas["Schedule"] = _object(
        ["schedule_id", "dag_id", "kind", "expr", "timezone", "paused", "next_fire_at", "last_fire_at", "last_run_id"],
        {
            "schedule_id": {"type": "integer"},
            "dag_id": {"type": "string"},
            "kind": {"enum": ["cron", "interval", "once"]},
            "expr": {"type": "string"},
            "timezone": {"type": "string"},
            "paused": {"type": "boolean"},
            "next_fire_at": _NUMBER_OR_NULL,
            "last_fire_at": _NUMBER_OR_NULL,
            "last_run_id": _INTEGER_OR_NULL,
            "created_at": {"type": "number"},
        },
    )
    schemas["Operation"] = _object(
        ["name", "description", "remote_ok", "params_schema"],
        {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "remote_ok": {"type": "boolean"},
            "params_schema": {"type": "object"},
        },
    )
    schemas["Started"] = _object(
        ["run_id", "url"], {"run_id": {"type": "integer"}, "url": {"type": "string"}, "dag_id": {"type": "string"}}
    )
    schemas["Health"] = _object(
        ["status", "checks"],
        {
            "status": {"enum": ["ok", "failing"]},
            "checks": {
                "type": "object",
                "additionalProperties": _object(["ok"], {"ok": {"type": "boolean"}, "problem": {"type": "string"}}),
            },
        },
    )
    return schemas


def _pages() -> dict[str, Schema]:
    html = _media("text/html", "the page")
    runs_query = [
        _query("dag", {"type": "string"}, "only this DAG's runs"),
        _query("state", {"type": "string"}, "only runs in this state"),
        _query("offset", {"type": "integer", "minimum": 0}, "runs to skip"),
    ]
    return {
        "/": {
            "get": _op(
                "The status page: DAGs, recent runs, schedules",
                {"200": html, **_page_errors(400)},
                security=_OPEN,
                parameters=runs_query,
            )
        },
        "/parts/runs": {
            "get": _op(
                "The status page's runs and counters, for its script",
                {"200": _json({"type": "object"}, "the parts"), **_page_errors(400)},
                security=_OPEN,
                parameters=runs_query,
            )
        },
        "/live": {
            "get": _op(
                "A `change` event whenever any run or task changes (server-sent events, until the server stops)",
                {"200": _media("text/event-stream", "the events")},
                security=_OPEN,
            )
        },
        "/dags/{dag_id}": {
            "parameters": [{"name": "dag_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "get": _op(
                "A DAG's page: graph, recent runs by task, schedules, config versions (?a=&b= compares two)",
                {"200": html, **_page_errors(400, 404)},
                security=_OPEN,
                parameters=[
                    _query("a", {"type": "integer", "minimum": 1}, "a config version"),
                    _query("b", {"type": "integer", "minimum": 1}, "another config version"),
                ],
            ),
        },
        "/runs/{run_id}/task": {
            "parameters": [_run_id()],
            "get": _op(
                "A task's details panel on a run's page",
                {"200": _json({"type": "object"}, "the panel"), **_page_errors(404)},
                security=_OPEN,
                parameters=[_query("id", {"type": "string"}, "the task's id")],
            ),
        },
        "/runs/{run_id}/output": {
            "parameters": [_run_id()],
            "get": _op(
                "A task's output file as a download",
                {"200": _media("*/*", "the file"), **_page_errors(404)},
                security=_OPEN,
                parameters=[_query("task", {"type": "string"}, "the task's id")],
            ),
        },
        "/runs/{run_id}": {
            "parameters": [_run_id()],
            "get": _op("A run's page", {"200": html, **_page_errors(404)}, security=_OPEN),
        },
        "/runs/{run_id}/parts": {
            "parameters": [_run_id()],
            "get": _op(
                "The changing parts of a run's page, for its script",
                {"200": _json({"type": "object"}, "the parts"), **_page_errors(404)},
                security=_OPEN,
            ),
        },
        "/runs/{run_id}/live": {
            "parameters": [_run_id()],
            "get": _op(
                "A run's state changes as server-sent events (hello, task, run, resync)",
                {"200": _media("text/event-stream", "the events, until the run ends"), **_page_errors(404)},
                security=_OPEN,
            ),
        },
        "/runs/{run_id}/log": {
            "parameters": [_run_id()],
            "get": _op("A run's log", {"200": _media("text/plain", "run.log"), **_page_errors(404)}, security=_OPEN),
        },
        "/runs/{run_id}/archive.zip": {
            "parameters": [_run_id()],
            "get": _op(
                "A run's ZIP, once it ended",
                {"200": _media("application/zip", "the archive"), **_page_errors(404, 409)},
                security=_OPEN,
            ),
        },
        "/static/{filename}": {
            "parameters": [{"name": "filename", "in": "path", "required": True, "schema": {"type": "string"}}],
            "get": _op(
                "The pages' scripts, styles and images",
                # aiohttp's static handler answers a missing file itself, with an empty body.
                {
                    "200": _media("*/*", "the file"),
                    "403": _media("*/*", "refused"),
                    "404": _media("*/*", "no such file"),
                },
                security=_OPEN,
            ),
        },
    }


def _operator() -> dict[str, Schema]:
    return {
        "/healthz": {
            "get": _op(
                "Health: the store answers, the workers live, the bot receives updates (when it is on)",
                {"200": _json(_ref("Health"), "every check passed"), "503": _json(_ref("Health"), "a check failed")},
                security=_OPEN,
            )
        },
        "/metrics": {
            "get": _op(
                "Metrics in Prometheus' text format",
                {"200": _media("text/plain", "the metrics"), **_page_errors(401)},
            )
        },
        "/api/openapi.json": {
            "get": _op("This document", {"200": _json({"type": "object"}, "OpenAPI 3.1"), **_api_errors()})
        },
    }


def _submit() -> dict[str, Schema]:
    body = _body(
        {"oneOf": [_ref("DagConfig"), _ref("DagRef"), _ref("DagConfigWithParams")]},
        "a DAG config, or the id of a DAG the service knows or a config, with values for its params",
    )
    return {
        "/api/web": {
            "post": _op(
                "Start a run and answer at once",
                {"201": _json(_ref("Started"), "the run started"), **_api_errors(400, 403, 404, 413, 415, 422)},
                requestBody=body,
            )
        },
        "/api/cli": {
            "post": _op(
                "Run to the end and answer with its ZIP (202 if it outlasts ?timeout)",
                {
                    "200": _media("application/zip", "the run's archive (X-TaskFlow-Run-State says how it ended)"),
                    "202": _json({"type": "object"}, "still going after the timeout"),
                    **_api_errors(400, 403, 404, 413, 415, 422, 503),
                },
                requestBody=body,
                parameters=[
                    _query(
                        "timeout",
                        {"type": "number", "exclusiveMinimum": 0, "maximum": 7 * 24 * 3600},
                        "seconds to wait for the end",
                    )
                ],
            )
        },
    }


def _runs() -> dict[str, Schema]:
    def one(summary: str, ok: Schema, *errors: int, method: str = "get") -> Schema:
        return {"parameters": [_run_id()], method: _op(summary, {**ok, **_api_errors(404, *errors)})}

    listing = _object(
        ["runs", "limit", "offset", "next_offset"],
        {
            "runs": {"type": "array", "items": _ref("Run")},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
            "next_offset": _INTEGER_OR_NULL,
        },
    )
    events = _object(
        ["run_id", "events"], {"run_id": {"type": "integer"}, "events": {"type": "array", "items": _ref("Event")}}
    )
    acted = _json({"type": "object", "required": ["run_id", "url"]}, "accepted")
    return {
        "/api/runs": {
            "get": _op(
                "Runs, newest first",
                {"200": _json(listing, "a page of runs"), **_api_errors(400)},
                parameters=[
                    _query("dag", {"type": "string"}, "only this DAG's runs"),
                    _query("dag_id", {"type": "string"}, "the same as dag"),
                    _query("state", {"type": "string"}, "states, comma-separated: " + ", ".join(RunState)),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "page size (50)"),
                    _query("offset", {"type": "integer", "minimum": 0, "maximum": 2**31}, "runs to skip"),
                ],
            )
        },
        "/api/runs/{run_id}": one("A run and its tasks", {"200": _json(_ref("RunWithTasks"), "the run")}),
        "/api/runs/{run_id}/events": one("The run's journal, oldest first", {"200": _json(events, "the journal")}),
        "/api/runs/{run_id}/archive": one("The run's ZIP", {"200": _media("application/zip", "the archive")}, 409),
        "/api/runs/{run_id}/log": one("The run's log", {"200": _media("text/plain", "run.log")}),
        "/api/runs/{run_id}/cancel": one("Cancel a run that goes on", {"202": acted}, 403, 409, method="post"),
        "/api/runs/{run_id}/rerun": one(
            "Re-run a failed or cancelled run from its failure", {"202": acted}, 403, 409, method="post"
        ),
    }


def _dags() -> dict[str, Schema]:
    dag_id = {"name": "dag_id", "in": "path", "required": True, "schema": {"type": "string"}}
    saved = {"200": _json(_ref("DagSaved"), "replaced"), "201": _json(_ref("DagSaved"), "added")}
    listing = _object(["dags"], {"dags": {"type": "array", "items": _ref("Dag")}})
    xml = {
        "required": True,
        "description": "a 4diac .sys, .fbt or .sub file, a project ZIP, or multipart/mixed with a JSON type map beside",
        "content": {
            "application/xml": {"schema": {"type": "string"}},
            "application/zip": {"schema": {"type": "string", "format": "binary"}},
        },
    }
    return {
        "/api/dags": {
            "get": _op("Every DAG the service knows", {"200": _json(listing, "the DAGs"), **_api_errors()}),
            "post": _op(
                "Add or replace the DAG the config names",
                {**saved, **_api_errors(400, 403, 413, 415, 422)},
                requestBody=_body(_ref("DagConfig"), "a DAG config"),
            ),
        },
        "/api/dags/{dag_id}": {
            "parameters": [dag_id],
            "get": _op("One DAG with its config", {"200": _json(_ref("DagWithConfig"), "the DAG"), **_api_errors(404)}),
            "put": _op(
                "Add or replace a DAG (its dag_name may be left out)",
                {**saved, **_api_errors(400, 403, 413, 415, 422)},
                requestBody=_body(_ref("DagConfigNamedByUrl"), "a DAG config"),
            ),
        },
        "/api/import/4diac": {
            "post": _op(
                "Turn a 4diac XML file into a DAG and save it (dry_run: only convert)",
                {**saved, **_api_errors(400, 403, 413, 415, 422, 501)},
                requestBody=xml,
                parameters=[
                    _query("app", {"type": "string"}, "the application to import when the file has several"),
                    _query("filename", {"type": "string"}, "the file's name, for the DAG's source"),
                    _query("dry_run", {"type": "string"}, "1, true or yes: convert only"),
                ],
            )
        },
    }


def _reference() -> dict[str, Schema]:
    schedules = _object(["schedules"], {"schedules": {"type": "array", "items": _ref("Schedule")}})
    operations = _object(["operations"], {"operations": {"type": "array", "items": _ref("Operation")}})
    return {
        "/api/schedules": {"get": _op("Every schedule", {"200": _json(schedules, "the schedules"), **_api_errors()})},
        "/api/operations": {
            "get": _op(
                "Every operation with its params' schema", {"200": _json(operations, "the operations"), **_api_errors()}
            )
        },
        "/api/schema": {
            "get": _op(
                "The JSON Schema of a DAG config", {"200": _json({"type": "object"}, "the schema"), **_api_errors()}
            )
        },
    }


def _webhook(path: str) -> dict[str, Schema]:
    update = {"type": "object", "required": ["update_id"], "properties": {"update_id": {"type": "integer"}}}
    secret = {
        "name": "X-Telegram-Bot-Api-Secret-Token",
        "in": "header",
        "required": True,
        "schema": {"type": "string"},
        "description": "TELEGRAM_WEBHOOK_SECRET, as Telegram sends it",
    }
    return {
        path: {
            "post": _op(
                "Telegram's updates for the bot (webhook mode); guarded by the secret header, not the API token",
                {"200": _json({"type": "object"}, "taken"), "401": _media("text/plain", "the secret header is wrong")},
                parameters=[secret],
                requestBody=_body(update, "a Telegram Update"),
                security=_OPEN,
            )
        }
    }


def openapi_document(*, webhook_path: str | None = None) -> Schema:
    """The document; ``webhook_path``: the bot's webhook route, when it is on."""
    responses = {f"E{code}": _json(_ref("Error"), text) for code, text in _ERRORS.items()}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "TaskFlow",
            "version": "1",
            "description": "Run JSON DAGs: the JSON API under /api, read-only pages, health and metrics.",
        },
        "paths": {
            **_pages(),
            **_operator(),
            **_submit(),
            **_runs(),
            **_dags(),
            **_reference(),
            **(_webhook(webhook_path) if webhook_path else {}),
        },
        "components": {
            "schemas": _schemas(),
            "responses": responses,
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer", "description": "TASKFLOW_API_TOKEN"}},
        },
        # The token when TASKFLOW_API_TOKEN is set, nothing otherwise; routes open to all have an empty list.
        "security": [{"token": []}, {}],
    }
