"""Requests a page of another site could make must change nothing: origin checks and JSON-only bodies."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.engine import Orchestrator
from orchestrator.library import DagLibrary
from orchestrator.settings import Settings
from orchestrator.validation import parse_config
from web import create_app

DATA = Path(__file__).parent / "data"
JSON = {"Content-Type": "application/json"}


def sleepy(name: str = "d", seconds: float = 5.0) -> dict[str, Any]:
    """A one-task DAG that runs for ``seconds``."""
    return {"dag_name": name, "tasks": [{"id": "a", "operation": "sleep", "independent_params": {"seconds": seconds}}]}


@pytest.fixture
async def client(settings: Settings, orch: Orchestrator, library: DagLibrary) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(create_app(settings, orch, library, orch.store))) as test_client:
        yield test_client


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",  # fetch(..., {mode: "no-cors"}) and <form enctype="text/plain">
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",  # a plain <form>, and curl -d
        "multipart/form-data; boundary=x",
        None,  # a Blob without a type
    ],
)
@pytest.mark.parametrize(("method", "path"), [("POST", "/api/web"), ("POST", "/api/dags"), ("PUT", "/api/dags/d")])
async def test_a_body_not_sent_as_json_is_415(
    client: TestClient[Any, Any], orch: Orchestrator, method: str, path: str, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    data = json.dumps(sleepy()).encode()
    resp = await client.request(method, path, data=data, headers=headers, skip_auto_headers=["Content-Type"])
    assert resp.status == 415
    body = await resp.json()
    assert body["error"] == "unsupported_media_type"
    assert "application/json" in body["message"]
    assert await orch.store.list_runs() == []
    assert await orch.store.list_dags() == []


async def test_json_types_are_taken(client: TestClient[Any, Any], orch: Orchestrator) -> None:
    for content_type in ("application/json", "application/json; charset=utf-8", "application/vnd.taskflow+json"):
        resp = await client.post("/api/web", data=json.dumps(sleepy(seconds=0)), headers={"Content-Type": content_type})
        assert resp.status == 201, content_type


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_the_4diac_route_refuses_text_and_forms(client: TestClient[Any, Any], content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    data = (DATA / "4diac" / "pipeline.sys").read_bytes()
    resp = await client.post("/api/import/4diac", data=data, headers=headers, skip_auto_headers=["Content-Type"])
    assert resp.status == 415
    ok = await client.post("/api/import/4diac?dry_run=1", data=data, headers={"Content-Type": "application/xml"})
    assert ok.status == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1.evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "http://other.localhost"},
        {"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"},
    ],
)
async def test_cross_site_requests_change_nothing(
    client: TestClient[Any, Any], orch: Orchestrator, settings: Settings, headers: dict[str, str]
) -> None:
    settings.api_token = "tok"  # the token does not make a cross-site request acceptable
    auth = {"Authorization": "Bearer tok", **headers}
    run_id = await orch.submit(parse_config(sleepy()))

    for method, path in [("POST", "/api/web"), ("POST", "/api/cli"), ("POST", "/api/dags"), ("PUT", "/api/dags/d")]:
        resp = await client.request(method, path, data=json.dumps(sleepy()), headers={**auth, **JSON})
        assert resp.status == 403, (method, path)
        assert (await resp.json())["error"] == "cross_site"
    cancel = await client.post(f"/api/runs/{run_id}/cancel", headers=auth)
    assert cancel.status == 403
    rerun = await client.post(f"/api/runs/{run_id}/rerun", headers=auth)
    assert rerun.status == 403
    assert [r.run_id for r in await orch.store.list_runs()] == [run_id]
    assert orch.is_active(run_id)
    assert await orch.store.list_dags() == []
    # Reading stays open to everyone (the pages link to each other across tabs).
    assert (await client.get(f"/api/runs/{run_id}", headers=auth)).status == 200
    await orch.cancel(run_id)


async def test_own_pages_and_scripts_may_act(client: TestClient[Any, Any], orch: Orchestrator) -> None:
    host = f"{client.host}:{client.port}"
    for headers in (
        {},  # curl, scripts
        {"Sec-Fetch-Site": "same-origin", "Origin": f"http://{host}"},
        {"Sec-Fetch-Site": "none"},  # typed by the user
        {"Origin": f"http://{host}"},  # a browser that sends no Sec-Fetch-Site
        {"Origin": orch.settings.public_url},
    ):
        resp = await client.post("/api/web", data=json.dumps(sleepy(seconds=0)), headers={**JSON, **headers})
        assert resp.status == 201, headers


async def test_the_public_url_is_an_own_origin(settings: Settings, orch: Orchestrator, library: DagLibrary) -> None:
    settings.public_url_setting = "https://taskflow.example.org/"
    async with TestClient(TestServer(create_app(settings, orch, library, orch.store))) as client:
        headers = {**JSON, "Origin": "https://taskflow.example.org", "Host": "10.0.0.5:5000"}
        resp = await client.post("/api/web", data=json.dumps(sleepy(seconds=0)), headers=headers)
        assert resp.status == 201
        headers["Origin"] = "http://taskflow.example.org"  # another scheme: another origin
        assert (await client.post("/api/web", data=json.dumps(sleepy()), headers=headers)).status == 403


async def test_bodyless_posts_need_no_content_type(client: TestClient[Any, Any], orch: Orchestrator) -> None:
    run_id = await orch.submit(parse_config(sleepy()))
    resp = await client.post(f"/api/runs/{run_id}/cancel", skip_auto_headers=["Content-Type"])
    assert resp.status == 202
    await orch.wait(run_id)
    resp = await client.post(f"/api/runs/{run_id}/rerun", skip_auto_headers=["Content-Type"])
    assert resp.status == 202
    await orch.cancel(run_id)
