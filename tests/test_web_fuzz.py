"""A bounded fuzz of every API route: malformed bodies, headers and queries never get a 5xx or a traceback.

The configs it sends use only operations that touch no network (``noop``, ``sleep``, ``write_file``),
and ``http_request`` may reach nothing but this machine anyway (the destination allow-list is set).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.engine import Orchestrator
from orchestrator.library import DagLibrary
from orchestrator.settings import Settings
from orchestrator.validation import parse_config
from web import create_app, start_site
from web.app import ROUTES, bound_port
from web.middlewares import is_api

API_ROUTES = sorted({(r.method, r.path) for r in ROUTES if isinstance(r, web.RouteDef) and is_api(r.path)})
ACTING_ROUTES = [(method, path) for method, path in API_ROUTES if method in ("POST", "PUT")]
PLACEHOLDER = re.compile(r"\{(\w+)(?::[^}]*)?\}")

texts = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF, exclude_categories=("Cs",)), max_size=40)
header_values = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=12,
)
task = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["a", "b", "c"]) | texts,
        "operation": st.sampled_from(["noop", "sleep", "write_file"]),
    },
    optional={
        "independent_params": st.fixed_dictionaries(
            {},
            optional={
                "seconds": st.floats(min_value=0, max_value=0.02),
                "value": json_values,
                "content": json_values,
                "filename": texts,
                "format": st.sampled_from(["auto", "text", "json"]) | texts,
            },
        ),
        "dependencies": st.lists(st.sampled_from(["a", "b", "c"]) | texts, max_size=3),
        "dependent_params": st.dictionaries(st.sampled_from(["value", "content"]), st.sampled_from(["a", "b.x"])),
        "position": st.fixed_dictionaries({"x": st.floats(), "y": st.floats()}),
        "priority": st.sampled_from(["high", "low"]) | texts,
        "timeout": st.floats(),
    },
)
configs = st.fixed_dictionaries(
    {"dag_name": st.sampled_from(["fuzz", "known"]) | texts, "tasks": st.lists(task, max_size=4)},
    optional={"max_retries": st.integers(-5, 200), "retry_delay": st.floats(), "unknown": json_values},
)
bodies = st.one_of(
    configs.map(lambda c: json.dumps(c).encode()),
    st.none(),
    st.binary(max_size=200),
    configs.map(lambda c: json.dumps(c).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.just(b'{"dag_id": "known"}'),
    st.just(b"<?xml version='1.0'?><System Name='x'><Application Name='a'/></System>"),
)
malformed_headers = st.fixed_dictionaries(
    {},
    optional={
        "Content-Type": st.sampled_from(
            ["application/json", "text/plain", "application/xml", "multipart/form-data", "application/zip"]
        )
        | header_values,
        "Content-Encoding": st.sampled_from(["gzip", "deflate", "br", "identity"]) | header_values,
        "Origin": st.sampled_from(["null", "http://evil.example"]) | header_values,
        "Sec-Fetch-Site": st.sampled_from(["same-origin", "cross-site", "none"]) | header_values,
        "Authorization": header_values,
        "Accept": header_values,
    },
)
# Half well-formed, so bodies get past the type and origin checks into the parsers and validation.
headers = st.just({"Content-Type": "application/json"}) | malformed_headers
queries = st.dictionaries(
    st.sampled_from(["timeout", "limit", "offset", "state", "dag", "app", "filename", "dry_run"]), texts, max_size=3
)
path_values = st.sampled_from(["1", "1", "0", "99999999999999999999", "known", "fuzz"]) | texts


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, dict[str, str], dict[str, str], bytes | None]:
    method, path = draw(st.sampled_from(ACTING_ROUTES) | st.sampled_from(API_ROUTES))
    method = draw(st.sampled_from([method] * 5 + ["DELETE", "PATCH"]))
    path = PLACEHOLDER.sub(lambda m: draw(path_values).replace("/", "%2F") or "x", path)
    return method, path, draw(queries), draw(headers), draw(bodies)


@pytest.fixture
async def fuzz_target(settings: Settings, orch: Orchestrator, library: DagLibrary) -> AsyncIterator[str]:
    settings.http_allowed_hosts = "127.0.0.1/32"
    await library.save(parse_config({"dag_name": "known", "tasks": [{"id": "a", "operation": "noop"}]}), source="test")
    await orch.wait(await orch.submit(parse_config({"dag_name": "one", "tasks": [{"id": "a", "operation": "noop"}]})))
    runner = await start_site(create_app(settings, orch, library, orch.store), settings)
    try:
        yield f"http://127.0.0.1:{bound_port(runner)}"
    finally:
        await runner.cleanup()


def test_every_api_route_is_fuzzed() -> None:
    assert len(API_ROUTES) >= 15
    assert ("POST", "/api/import/4diac") in API_ROUTES


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request=requests())
async def test_malformed_requests_get_no_5xx_and_no_traceback(
    fuzz_target: str, caplog: pytest.LogCaptureFixture, request: tuple[str, str, dict[str, str], dict[str, str], Any]
) -> None:
    method, path, query, header, body = request
    caplog.set_level(logging.ERROR)
    url = fuzz_target + path
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method, url, params=query, headers=header, data=body, skip_auto_headers=["Content-Type"], timeout=10
        ) as resp,
    ):
        text = await resp.text(errors="replace")
    assert resp.status < 500, (request, resp.status, text[:300])
    assert "Traceback" not in text
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
