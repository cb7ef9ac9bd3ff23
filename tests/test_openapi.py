"""``GET /api/openapi.json``: a valid OpenAPI 3.1 document of every route, that a live server keeps to."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path
from typing import Any

from aiohttp import hdrs
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate

from orchestrator.engine import Orchestrator
from orchestrator.library import DagLibrary
from orchestrator.settings import Settings
from tests.test_bot_service import _log_says, _serve, _stop, _url
from web import create_app
from web.openapi import openapi_document

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
FUZZ_S = 60.0  # the bound of the whole run (it takes a fraction of it)


async def test_the_document_is_valid_and_names_every_route(
    settings: Settings, orch: Orchestrator, library: DagLibrary
) -> None:
    app = create_app(settings, orch, library, orch.store)
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/api/openapi.json")
        assert resp.status == 200
        document: dict[str, Any] = await resp.json()
    validate(document)  # OpenAPI 3.1, as openapi-spec-validator reads it
    validate(openapi_document(webhook_path="/telegram/webhook"))  # with the bot's webhook route too
    assert document["openapi"] == "3.1.0"
    served = set()
    for route in app.router.routes():
        if route.method == hdrs.METH_HEAD:
            continue  # aiohttp adds one to each GET
        path = route.resource.canonical if route.resource else ""
        served.add((path + "/{filename}" if path == "/static" else path, route.method.lower()))
    described = {
        (path, method) for path, item in document["paths"].items() for method in item if method != "parameters"
    }
    assert served == described


async def test_schemathesis_finds_no_server_error_and_no_answer_off_the_document(tmp_path: Path) -> None:
    service = await _serve(tmp_path)
    try:
        url = _url(await _log_says(tmp_path, "TaskFlow is up"))
        fuzz = await asyncio.create_subprocess_exec(
            str(SCHEMATHESIS),
            "run",
            f"{url}/api/openapi.json",
            f"--checks={CHECKS}",
            "--max-examples=25",
            "--seed=1",
            "--generation-database=none",
            "--no-color",
            "--exclude-path=/live",  # the status page's event stream ends only when the server stops
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            async with asyncio.timeout(FUZZ_S):
                output, _ = await fuzz.communicate()
        finally:
            if fuzz.returncode is None:
                fuzz.kill()
                await fuzz.wait()
    finally:
        await _stop(service)
    report = output.decode(errors="replace")
    assert fuzz.returncode == 0, report
    selected = re.search(r"Selected: (\d+)/(\d+)", report)
    tested = re.search(r"Tested: (\d+)", report)
    assert selected, report
    assert tested, report
    assert selected[1] == tested[1], "every operation selected was tested"
    assert int(selected[2]) - int(selected[1]) == 1, "all but GET /live"
    log = (tmp_path / "service.log").read_text(encoding="utf-8")
    assert "internal error" not in log
