"""The JSON API against a real orchestrator and SQLite file, through aiohttp's test server."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.engine import Orchestrator
from orchestrator.library import DagLibrary
from orchestrator.limits import MAX_REQUEST_BYTES
from orchestrator.settings import Settings
from orchestrator.validation import parse_config
from web import create_app, start_site
from web.app import bound_port, is_loopback

DATA = Path(__file__).parent / "data"

XML = {"Content-Type": "application/xml"}


def dag(name: str = "d", seconds: float = 0.2) -> dict[str, Any]:
    """A two-task DAG whose run takes about ``seconds``."""
    return {
        "dag_name": name,
        "tasks": [
            {"id": "a", "operation": "sleep", "independent_params": {"seconds": seconds}},
            {"id": "b", "operation": "noop", "dependencies": ["a"]},
        ],
    }


@pytest.fixture
async def client(settings: Settings, orch: Orchestrator, library: DagLibrary) -> AsyncIterator[TestClient[Any, Any]]:
    """A test client over the app; closed before the orchestrator."""
    async with TestClient(TestServer(create_app(settings, orch, library, orch.store))) as test_client:
        yield test_client


async def latest_run_id(orch: Orchestrator) -> int:
    """The id of the newest run."""
    runs = await orch.store.list_runs(limit=1)
    assert runs, "no run was started"
    return runs[0].run_id


# -- POST /api/web -------------------------------------------------------------------------------


async def test_web_starts_a_run_and_answers_at_once(client: TestClient[Any, Any], orch: Orchestrator) -> None:
    started = time.monotonic()
    resp = await client.post("/api/web", json=dag(seconds=0.5))
    elapsed = time.monotonic() - started
    assert resp.status == 201
    body = await resp.json()
    run_id = body["run_id"]
    assert isinstance(run_id, int)
    assert body["url"] == f"{orch.settings.public_url}/runs/{run_id}"
    assert elapsed < 0.5, "the answer must not wait for the run"
    assert orch.is_active(run_id)
    report = await orch.wait(run_id)
    assert report.state == "success"
    stored = await orch.store.get_run(run_id)
    assert stored.trigger == "web"


async def test_web_runs_a_known_dag_by_id(
    client: TestClient[Any, Any], orch: Orchestrator, library: DagLibrary
) -> None:
    await library.save(parse_config(dag("known", 0.01)), source="test")
    resp = await client.post("/api/web", json={"dag_id": "known"})
    assert resp.status == 201
    run_id = (await resp.json())["run_id"]
    assert (await orch.wait(run_id)).run.dag_id == "known"

    missing = await client.post("/api/web", json={"dag_id": "nope"})
    assert missing.status == 404
    assert (await missing.json())["error"] == "not_found"


async def test_the_documented_sequence_runs_a_posted_config_again_by_id(
    client: TestClient[Any, Any], orch: Orchestrator, library: DagLibrary, settings: Settings
) -> None:
    first = await client.post("/api/web", json=dag("posted", 0.01))  # web/API.md, first example
    assert first.status == 201
    assert (await first.json())["dag_added"] is True
    again = await client.post("/api/web", json={"dag_id": "posted"})  # ... and the second
    assert again.status == 201, await again.text()
    assert (await again.json())["dag_added"] is False
    for resp in (first, again):
        assert (await orch.wait((await resp.json())["run_id"])).state == "success"
    assert (await library.list())[0].source == "web"
    assert (settings.configs_dir / "posted" / "config.json").is_file()

    # A config naming a known DAG runs as sent, and the DAG stays as it was.
    changed = dag("posted", 0.01)
    changed["description"] = "sent inline"
    resp = await client.post("/api/cli", json=changed)
    assert resp.status == 200
    record = (await library.list())[0]
    assert (record.version, record.config.get("description")) == (1, None)
    assert library.versions("posted") == []


async def test_invalid_json_is_a_located_400(client: TestClient[Any, Any]) -> None:
    resp = await client.post(
        "/api/web", data=b'{"dag_name": "x",\n  "tasks": [}', headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    body = await resp.json()
    assert body["error"] == "invalid_json"
    assert body["problems"][0]["location"] == "line 2, column 13"


async def test_invalid_config_gets_the_full_report(client: TestClient[Any, Any], orch: Orchestrator) -> None:
    config = {
        "dag_name": "bad",
        "tasks": [
            {"id": "a", "operation": "nope"},
            {"id": "b", "operation": "noop", "dependencies": ["c"]},
            {"id": "c", "operation": "noop", "dependencies": ["b"]},
        ],
    }
    resp = await client.post("/api/web", json=config)
    assert resp.status == 422
    body = await resp.json()
    assert body["error"] == "invalid_config"
    messages = {p["location"]: p["message"] for p in body["problems"]}
    assert "unknown operation 'nope'" in messages["tasks[0].operation"]
    assert "cycle" in messages["tasks"]
    task_ids = {p["location"]: p["task_id"] for p in body["problems"]}
    assert (task_ids["tasks[0].operation"], task_ids["tasks"]) == ("a", None), "a problem in a task names it"
    assert await orch.store.list_runs() == []  # nothing ran

    shell = {"dag_name": "sh", "tasks": [{"id": "sh", "operation": "shell", "independent_params": {"command": "ls"}}]}
    for path in ("/api/web", "/api/cli", "/api/dags"):
        refused = await client.post(path, json=shell)
        assert refused.status == 422, path
        [problem] = (await refused.json())["problems"]
        assert "set TASKFLOW_ALLOW_SHELL=1" in problem["message"], path
    assert await orch.store.list_runs() == []

    not_object = await client.post("/api/web", json=[1, 2])
    assert not_object.status == 422


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),  # json.loads would overflow the stack
        (b'{"dag_name": "x", "max_retries": 1' + b"0" * 5000 + b"}", "invalid JSON"),  # past int's digit limit
    ],
)
async def test_json_that_python_cannot_take_is_a_400(client: TestClient[Any, Any], body: bytes, expected: str) -> None:
    resp = await client.post("/api/web", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 400
    reply = await resp.json()
    assert reply["error"] == "invalid_json"
    assert expected in reply["message"]


async def test_unstorable_text_is_refused_and_nothing_is_left_behind(
    client: TestClient[Any, Any], orch: Orchestrator, settings: Settings
) -> None:
    # Valid JSON, but "\ud800" is no Unicode character: SQLite and the run folder could not keep it.
    raw = b'{"dag_name": "s", "tasks": [{"id": "a", "operation": "noop", "independent_params": {"value": "\\ud800"}}]}'
    resp = await client.post("/api/web", data=raw, headers={"Content-Type": "application/json"})
    assert resp.status == 422
    problems = (await resp.json())["problems"]
    assert problems[0]["location"] == "tasks[0].independent_params.value"
    assert "unpaired surrogate" in problems[0]["message"]
    put = await client.put("/api/dags/s", data=raw, headers={"Content-Type": "application/json"})
    assert put.status == 422
    deep = {"dag_name": "deep", "tasks": [{"id": "a", "operation": "noop", "independent_params": {"value": []}}]}
    value: list[Any] = deep["tasks"][0]["independent_params"]["value"]
    for _ in range(100):
        value.append([])
        value = value[0]
    resp = await client.post("/api/web", data=json.dumps(deep), headers={"Content-Type": "application/json"})
    assert resp.status == 422
    assert "nested deeper than" in (await resp.json())["problems"][0]["message"]
    unknown = await client.post("/api/web", data=b'{"dag_id": "\\ud800"}', headers={"Content-Type": "application/json"})
    assert unknown.status == 404
    assert await orch.store.list_runs() == []
    assert not (settings.data_dir / "configs" / "s").exists()


async def test_a_token_of_stray_bytes_is_just_wrong(client: TestClient[Any, Any], settings: Settings) -> None:
    settings.api_token = "s3cret-token"
    # Raw bytes on the wire: an HTTP client library would encode the header as valid text first.
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(b"GET /api/dags HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n")
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    assert status_line.split()[1] == b"401"


async def test_oversized_body_is_413_json(client: TestClient[Any, Any]) -> None:
    size = MAX_REQUEST_BYTES + 1
    json_type = {"Content-Type": "application/json"}
    resp = await client.post("/api/web", data=io.BytesIO(b" " * size), headers=json_type)  # with a Content-Length
    assert resp.status == 413
    body = await resp.json()
    assert body["error"] == "payload_too_large"
    assert str(MAX_REQUEST_BYTES) in body["message"]

    async def chunks() -> AsyncIterator[bytes]:  # chunked: no length known in advance
        for _ in range(size // 65536 + 1):
            yield b" " * 65536

    resp = await client.post("/api/cli", data=chunks(), headers=json_type)
    assert resp.status == 413
    assert (await resp.json())["error"] == "payload_too_large"


async def test_wrong_method_and_unknown_path_are_json(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/api/web")
    assert resp.status == 405
    assert resp.headers["Allow"] == "POST"
    assert (await resp.json())["error"] == "method_not_allowed"

    resp = await client.get("/api/nothing-here")
    assert resp.status == 404
    assert resp.content_type == "application/json"
    assert (await resp.json())["error"] == "not_found"

    resp = await client.get("/api/runs/99999999999999999999")  # longer than any SQLite id
    assert resp.status == 404


async def test_unexpected_error_is_a_generic_500(
    client: TestClient[Any, Any], orch: Orchestrator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(**_: Any) -> None:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(orch.store, "list_runs", broken)
    with caplog.at_level(logging.ERROR, logger="taskflow.web"):
        resp = await client.get("/api/runs")
    assert resp.status == 500
    text = await resp.text()
    assert json.loads(text)["error"] == "internal_error"
    assert "secret" not in text
    assert "Traceback" not in text
    assert "secret detail" in caplog.text  # the details are in the service log


# -- access ----------------------------------------------------------------------------------------


async def test_token_guards_the_api_but_not_the_pages(client: TestClient[Any, Any], settings: Settings) -> None:
    settings.api_token = "s3cret-token"
    assert (await client.get("/api/dags")).status == 401
    wrong = await client.get("/api/dags", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401
    assert wrong.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await wrong.json())["error"] == "unauthorized"
    assert (await client.post("/api/web", json=dag())).status == 401
    right = await client.get("/api/dags", headers={"Authorization": "Bearer s3cret-token"})
    assert right.status == 200
    assert (await client.get("/")).status == 200


# -- POST /api/cli ---------------------------------------------------------------------------------


async def test_cli_answers_with_the_zip(client: TestClient[Any, Any]) -> None:
    resp = await client.post("/api/cli", json=dag(seconds=0.05))
    assert resp.status == 200
    assert resp.content_type == "application/zip"
    run_id = resp.headers["X-TaskFlow-Run-Id"]
    assert resp.headers["X-TaskFlow-Run-State"] == "success"
    assert f'filename="dag_{run_id}.zip"' in resp.headers["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(await resp.read()))
    names = set(archive.namelist())
    assert {"config.json", "run.json", "run.log", "manifest.json"} <= names
    report = json.loads(archive.read("run.json"))
    assert report["state"] == "success"
    assert report["tasks"]["b"]["state"] == "success"


async def test_cli_failed_run_still_gets_its_zip(client: TestClient[Any, Any]) -> None:
    config = {"dag_name": "f", "tasks": [{"id": "r", "operation": "read_file", "independent_params": {"path": "x"}}]}
    resp = await client.post("/api/cli", json=config)
    assert resp.status == 200
    assert resp.headers["X-TaskFlow-Run-State"] == "failed"
    assert zipfile.ZipFile(io.BytesIO(await resp.read())).testzip() is None


async def test_cli_timeout_answers_202_and_the_run_goes_on(client: TestClient[Any, Any], orch: Orchestrator) -> None:
    resp = await client.post("/api/cli?timeout=0.1", json=dag(seconds=0.6))
    assert resp.status == 202
    body = await resp.json()
    assert body["url"].endswith(f"/runs/{body['run_id']}")
    assert body["state"] == "running"
    assert (await orch.wait(body["run_id"])).state == "success"

    bad = await client.post("/api/cli?timeout=soon", json=dag())
    assert bad.status == 400
    assert (await bad.json())["error"] == "bad_query"


async def test_cli_client_that_leaves_does_not_stop_the_run(client: TestClient[Any, Any], orch: Orchestrator) -> None:
    with pytest.raises(TimeoutError):
        await client.post("/api/cli", json=dag(seconds=0.5), timeout=aiohttp.ClientTimeout(total=0.15))
    run_id = await latest_run_id(orch)
    report = await orch.wait(run_id)
    assert report.state == "success"
    assert report.archive is not None
    assert report.archive.is_file()


async def test_shutdown_ends_a_waiting_cli_request_promptly(
    settings: Settings, orch: Orchestrator, library: DagLibrary
) -> None:
    server = TestServer(create_app(settings, orch, library, orch.store))
    await server.start_server()
    async with aiohttp.ClientSession() as session, orch.events.subscribe() as events:
        request = asyncio.create_task(session.post(server.make_url("/api/cli"), json=dag(seconds=30)))
        await asyncio.wait_for(events.get(), 5)  # the run has started
        started = time.monotonic()
        await server.close()
        resp = await request
        assert time.monotonic() - started < 5
        assert resp.status == 503
        body = await resp.json()
        assert body["error"] == "shutting_down"
        assert orch.is_active(body["run_id"])  # the run itself goes on (and resumes after a restart)


# -- runs ------------------------------------------------------------------------------------------


async def test_runs_list_filters_and_pages(client: TestClient[Any, Any], orch: Orchestrator) -> None:
    ids = [await orch.submit(parse_config(dag("alpha", 0.0))) for _ in range(3)]
    other = await orch.submit(parse_config(dag("beta", 0.0)))
    for run_id in [*ids, other]:
        await orch.wait(run_id)

    resp = await client.get("/api/runs", params={"dag": "alpha"})
    body = await resp.json()
    assert [r["run_id"] for r in body["runs"]] == ids[::-1]  # newest first

    page1 = await (await client.get("/api/runs", params={"limit": "2"})).json()
    assert [r["run_id"] for r in page1["runs"]] == [other, ids[2]]
    assert page1["next_offset"] == 2
    page2 = await (await client.get("/api/runs", params={"limit": "2", "offset": "2"})).json()
    assert [r["run_id"] for r in page2["runs"]] == [ids[1], ids[0]]
    page3 = await (await client.get("/api/runs", params={"limit": "2", "offset": "4"})).json()
    assert page3["runs"] == []
    assert page3["next_offset"] is None

    done = await (await client.get("/api/runs", params={"state": "success,failed", "dag": "beta"})).json()
    assert [r["run_id"] for r in done["runs"]] == [other]
    none = await (await client.get("/api/runs", params={"state": "running"})).json()
    assert none["runs"] == []

    assert (await client.get("/api/runs", params={"state": "exploded"})).status == 400
    assert (await client.get("/api/runs", params={"limit": "0"})).status == 400
    assert (await client.get("/api/runs", params={"offset": "-1"})).status == 400


async def test_one_run_its_events_and_archive(client: TestClient[Any, Any], orch: Orchestrator) -> None:
    run_id = await orch.submit(parse_config(dag(seconds=0.3)))
    early = await client.get(f"/api/runs/{run_id}/archive")
    assert early.status == 409  # the ZIP is made when the run ends
    await orch.wait(run_id)

    body = await (await client.get(f"/api/runs/{run_id}")).json()
    assert body["state"] == "success"
    assert body["finished"] is True
    assert "archive" not in body  # the server's path stays on the server
    assert body["archive_url"].endswith(f"/api/runs/{run_id}/archive")
    tasks = {t["task_id"]: t for t in body["tasks"]}
    assert tasks["a"]["state"] == "success"
    assert tasks["a"]["attempts"] == 1
    assert tasks["a"]["duration_s"] >= 0.3
    assert body["tasks_total"] == 2
    assert body["tasks_next_offset"] is None

    # The tasks come a page at a time (a DAG may have 100,000).
    first = await (await client.get(f"/api/runs/{run_id}", params={"limit": "1"})).json()
    assert [t["task_id"] for t in first["tasks"]] == ["a"]
    assert first["tasks_next_offset"] == 1
    second = await (await client.get(f"/api/runs/{run_id}", params={"limit": "1", "offset": "1"})).json()
    assert [t["task_id"] for t in second["tasks"]] == ["b"]
    assert second["tasks_next_offset"] is None

    events = (await (await client.get(f"/api/runs/{run_id}/events")).json())["events"]
    a_states = [e["state"] for e in events if e["task_id"] == "a"]
    assert a_states == ["queued", "running", "success"]
    assert events[-1]["task_id"] is None
    assert events[-1]["state"] == "success"

    archive = await client.get(f"/api/runs/{run_id}/archive")
    assert archive.status == 200
    assert archive.content_type == "application/zip"
    assert "run.json" in zipfile.ZipFile(io.BytesIO(await archive.read())).namelist()
    log = await client.get(f"/api/runs/{run_id}/log")
    assert "run ended: success" in await log.text()

    for path in ("/api/runs/424242", "/api/runs/424242/events", "/api/runs/424242/archive"):
        assert (await client.get(path)).status == 404, path


async def test_cancel_a_running_run(client: TestClient[Any, Any], orch: Orchestrator) -> None:
    run_id = await orch.submit(parse_config(dag(seconds=30)))
    resp = await client.post(f"/api/runs/{run_id}/cancel")
    assert resp.status == 202
    report = await asyncio.wait_for(orch.wait(run_id), 5)
    assert report.state == "cancelled"
    log = (orch.settings.runs_dir / f"dag_{run_id}" / "run.log").read_text(encoding="utf-8")
    assert "run cancelled by API" in log
    again = await client.post(f"/api/runs/{run_id}/cancel")
    assert again.status == 409
    assert (await again.json())["error"] == "conflict"
    assert (await client.post("/api/runs/424242/cancel")).status == 404


async def test_rerun_from_failure(client: TestClient[Any, Any], orch: Orchestrator, settings: Settings) -> None:
    config = {
        "dag_name": "flaky",
        "tasks": [
            {"id": "first", "operation": "noop", "independent_params": {"value": 1}},
            {
                "id": "read",
                "operation": "read_file",
                "independent_params": {"path": "input.txt"},
                "dependencies": ["first"],
            },
        ],
    }
    run_id = await orch.submit(parse_config(config))
    assert (await orch.wait(run_id)).state == "failed"
    (settings.runs_dir / f"dag_{run_id}" / "input.txt").write_text("now here", encoding="utf-8")

    assert (await client.get(f"/api/runs/{run_id}/archive")).status == 200
    resp = await client.post(f"/api/runs/{run_id}/rerun")
    assert resp.status == 202
    assert (await resp.json())["run_id"] == run_id
    report = await orch.wait(run_id)
    assert report.state == "success"
    assert report.tasks["first"].attempts == 1  # kept, not run again
    assert report.tasks["read"].attempts == 2

    assert (await client.post(f"/api/runs/{run_id}/rerun")).status == 409  # a succeeded run does not re-run


# -- DAGs, operations, schema ----------------------------------------------------------------------


async def test_dags_add_replace_list_and_read(client: TestClient[Any, Any], settings: Settings) -> None:
    config = dag("mine")
    del config["dag_name"]  # the URL names it
    created = await client.put("/api/dags/mine", json=config)
    assert created.status == 201
    assert (await created.json())["version"] == 1
    replaced = await client.put("/api/dags/mine", json={**config, "description": "v2"})
    assert replaced.status == 200
    assert (await replaced.json())["version"] == 2
    assert (settings.configs_dir / "mine" / "config.json").is_file()

    posted = await client.post("/api/dags", json=dag("other"))
    assert posted.status == 201
    listing = await (await client.get("/api/dags")).json()
    assert {d["dag_id"]: d["tasks"] for d in listing["dags"]} == {"mine": 2, "other": 2}
    one = await (await client.get("/api/dags/mine")).json()
    assert one["description"] == "v2"
    assert one["config"]["tasks"][0]["id"] == "a"

    mismatch = await client.put("/api/dags/mine", json=dag("theirs"))
    assert mismatch.status == 400
    assert (await mismatch.json())["error"] == "dag_id_mismatch"
    invalid = await client.post("/api/dags", json={"dag_name": "x", "tasks": []})
    assert invalid.status == 422
    assert (await client.get("/api/dags/unknown")).status == 404


async def test_operations_schema_and_schedules(client: TestClient[Any, Any], orch: Orchestrator) -> None:
    ops = {o["name"]: o for o in (await (await client.get("/api/operations")).json())["operations"]}
    assert {"noop", "sleep", "read_file", "http_request"} <= set(ops)
    assert "seconds" in ops["sleep"]["params_schema"]["properties"]
    schema = await (await client.get("/api/schema")).json()
    assert schema["title"] == "TaskFlow DAG config"
    assert "dag_name" in schema["properties"]

    await orch.store.add_schedule("d", "cron", "*/5 * * * *", "UTC", owner_id=1, chat_id=1, next_fire_at=None)
    schedules = (await (await client.get("/api/schedules")).json())["schedules"]
    assert [(s["dag_id"], s["expr"]) for s in schedules] == [("d", "*/5 * * * *")]


async def test_import_4diac(client: TestClient[Any, Any], library: DagLibrary) -> None:
    pytest.importorskip("orchestrator.fourdiac", reason="orchestrator/fourdiac.py (4diac import) is not there yet")
    data = (DATA / "4diac" / "pipeline.sys").read_bytes()
    dry = await client.post("/api/import/4diac?dry_run=1&filename=pipeline.sys", data=data, headers=XML)
    assert dry.status == 200
    assert (await dry.json())["saved"] is False
    assert await library.list() == []

    resp = await client.post("/api/import/4diac?filename=pipeline.sys", data=data, headers=XML)
    assert resp.status == 201
    body = await resp.json()
    assert body["saved"] is True
    assert [t["id"] for t in body["config"]["tasks"]] == ["Fetch", "ToText", "Send"]
    assert (await library.get(body["dag_id"])).tasks[0].position is not None

    broken = await client.post(
        "/api/import/4diac?filename=broken.sys", data=(DATA / "4diac" / "broken.sys").read_bytes(), headers=XML
    )
    assert broken.status == 422
    report = await broken.json()
    assert report["error"] == "invalid_config"
    assert len(report["problems"]) > 1


# -- the site --------------------------------------------------------------------------------------


async def test_start_site_on_a_random_port(settings: Settings, orch: Orchestrator, library: DagLibrary) -> None:
    app = create_app(settings, orch, library, orch.store)
    runner = await start_site(app, settings)
    try:
        port = bound_port(runner)
        assert port > 0
        async with aiohttp.ClientSession() as session:
            resp = await session.post(f"http://127.0.0.1:{port}/api/web", json=dag(seconds=0.0))
            body = await resp.json()
        assert body["url"] == f"http://127.0.0.1:{port}/runs/{body['run_id']}"  # links name the real port
    finally:
        await runner.cleanup()
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as session:
            await session.get(f"http://127.0.0.1:{port}/")


async def test_start_site_warns_when_open_without_token(
    settings: Settings, orch: Orchestrator, library: DagLibrary, caplog: pytest.LogCaptureFixture
) -> None:
    settings.host = "0.0.0.0"
    with caplog.at_level(logging.WARNING, logger="taskflow.web"):
        runner = await start_site(create_app(settings, orch, library, orch.store), settings)
        await runner.cleanup()
    assert any(r.levelno == logging.WARNING and "TASKFLOW_API_TOKEN" in r.getMessage() for r in caplog.records)
    assert any(r.levelno == logging.WARNING and "TASKFLOW_PUBLIC_URL" in r.getMessage() for r in caplog.records)

    caplog.clear()
    settings.public_url_setting = "https://taskflow.example.org"  # links are fine: only the token is missing
    with caplog.at_level(logging.WARNING, logger="taskflow.web"):
        runner = await start_site(create_app(settings, orch, library, orch.store), settings)
        await runner.cleanup()
    assert not any("TASKFLOW_PUBLIC_URL" in r.getMessage() for r in caplog.records)

    caplog.clear()
    settings.public_url_setting = None
    settings.host = "127.0.0.1"
    with caplog.at_level(logging.WARNING, logger="taskflow.web"):
        runner = await start_site(create_app(settings, orch, library, orch.store), settings)
        await runner.cleanup()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False), ("", False), ("example.org", False)],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
