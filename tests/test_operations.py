"""The built-in operations, mostly through the real engine, and the operation registry."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from operations import registry
from operations.base import Operation, OperationContext, OperationParams, Resources
from operations.files import ReadFileParams, read_file
from operations.http import HttpRequestParams, http_request
from operations.registry import all_operations, get_operation, operation
from orchestrator.engine import Orchestrator, RunReport
from orchestrator.errors import ConfigError, OperationError, PermanentOperationError
from orchestrator.settings import Settings
from orchestrator.states import RunState, TaskState
from orchestrator.validation import parse_config
from tests.engine_harness import running

# -- helpers ----------------------------------------------------------------------------------


async def run_dag(orch: Orchestrator, tasks: list[dict[str, Any]], **top: Any) -> RunReport:
    """Validate a DAG of ``tasks`` and run it to the end."""
    return await orch.run(parse_config({"dag_name": "ops", **top, "tasks": tasks}))


def folder_of(settings: Settings, report: RunReport) -> Path:
    """The run's data folder."""
    return settings.runs_dir / f"dag_{report.run.run_id}"


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def make_ctx(folder: Path, **resources: Any) -> OperationContext:
    """A context for calling an operation directly."""
    folder.mkdir(parents=True, exist_ok=True)
    return OperationContext(
        run_id=1,
        dag_id="d",
        task_id="t",
        attempt=1,
        folder=folder,
        logger=logging.getLogger("taskflow.test"),
        resources=Resources(**resources),
    )


def config_problems(raw: dict[str, Any]) -> list[str]:
    """The problems validation reports for ``raw`` (which must be invalid)."""
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    return [str(p) for p in info.value.problems]


# -- a local HTTP server ----------------------------------------------------------------------


BIG_JSON = {"items": ["x" * 100] * 20_000}  # about 2 MB
BIG_TEXT = "0123456789" * 200_000  # 2 MB


class LocalServer:
    """An aiohttp app on 127.0.0.1 that counts hits per path."""

    def __init__(self) -> None:
        self.base = ""
        self.hits: dict[str, int] = {}
        self.release = asyncio.Event()
        self.app = web.Application()
        for path, handler in {
            "/json": self.json_body,
            "/text": self.text_body,
            "/missing": self.missing,
            "/broken": self.broken,
            "/big": self.big,
            "/big.json": self.big_json,
            "/big.txt": self.big_text,
            "/slow": self.slow,
        }.items():
            self.app.router.add_get(path, handler)
        self.app.router.add_route("*", "/echo", self.echo)

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def _count(self, request: web.Request) -> None:
        self.hits[request.path] = self.hits.get(request.path, 0) + 1

    async def json_body(self, request: web.Request) -> web.Response:
        self._count(request)
        return web.json_response({"full_name": "python/cpython", "stars": 5, "tags": ["a", "b"]})

    async def text_body(self, request: web.Request) -> web.Response:
        return web.Response(text="plain hello", content_type="text/plain")

    async def echo(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        return web.json_response(
            {
                "method": request.method,
                "query": dict(request.query),
                "x_token": request.headers.get("X-Token"),
                "content_type": request.content_type,
                "body": body,
            }
        )

    async def missing(self, request: web.Request) -> web.Response:
        self._count(request)
        return web.Response(status=404, text="no such repository")

    async def broken(self, request: web.Request) -> web.Response:
        self._count(request)
        return web.Response(status=500, text="internal trouble")

    async def big(self, request: web.Request) -> web.Response:
        return web.Response(text="y" * 1000)

    async def big_json(self, request: web.Request) -> web.Response:
        return web.json_response(BIG_JSON)

    async def big_text(self, request: web.Request) -> web.Response:
        return web.Response(text=BIG_TEXT)

    async def slow(self, request: web.Request) -> web.Response:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.release.wait(), 5)
        return web.Response(text="late")


@pytest.fixture
async def server() -> AsyncIterator[LocalServer]:
    srv = LocalServer()
    runner = web.AppRunner(srv.app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    srv.base = f"http://{host}:{port}"
    try:
        yield srv
    finally:
        srv.release.set()
        await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- http_request -----------------------------------------------------------------------------


async def test_http_json_response_is_parsed_and_saved(orch: Orchestrator, settings: Settings, server: LocalServer):
    report = await run_dag(
        orch,
        [
            {
                "id": "fetch",
                "operation": "http_request",
                "independent_params": {"url": server.url("/json"), "filename": "repo.json"},
            },
            {
                "id": "to_text",
                "operation": "json_to_string",
                "independent_params": {"template": "{full_name}: {stars} stars, first tag {tags.0}"},
                "dependent_params": {"data": "fetch"},
                "dependencies": ["fetch"],
            },
        ],
    )
    assert report.state == RunState.SUCCESS
    folder = folder_of(settings, report)
    assert read_json(folder / "repo.json") == {"full_name": "python/cpython", "stars": 5, "tags": ["a", "b"]}
    assert report.tasks["fetch"].output_file == "repo.json"
    assert (folder / "to_text.txt").read_text(encoding="utf-8") == "python/cpython: 5 stars, first tag a"
    # The operation's logger writes into the run's log.
    assert f"GET {server.url('/json')}" in (folder / "run.log").read_text(encoding="utf-8")


async def test_http_text_response_is_text(orch: Orchestrator, settings: Settings, server: LocalServer):
    report = await run_dag(
        orch, [{"id": "page", "operation": "http_request", "independent_params": {"url": server.url("/text")}}]
    )
    assert report.state == RunState.SUCCESS
    assert report.tasks["page"].output_file == "page.txt"
    assert (folder_of(settings, report) / "page.txt").read_text(encoding="utf-8") == "plain hello"


async def test_http_query_headers_and_json_body_reach_the_server(tmp_path: Path, server: LocalServer, http):
    params = HttpRequestParams.model_validate(
        {
            "url": server.url("/echo"),
            "method": "POST",
            "query": {"q": "stars", "n": 3, "flag": True},
            "headers": {"X-Token": "abc"},
            "json": {"items": [1, 2], "name": "ü"},
        }
    )
    out = await http_request(make_ctx(tmp_path / "run", http=http), params)
    assert out == {
        "method": "POST",
        "query": {"q": "stars", "n": "3", "flag": "true"},
        "x_token": "abc",
        "content_type": "application/json",
        "body": {"items": [1, 2], "name": "ü"},
    }


async def test_http_404_fails_at_once_without_retries(orch: Orchestrator, server: LocalServer):
    report = await run_dag(
        orch,
        [{"id": "fetch", "operation": "http_request", "independent_params": {"url": server.url("/missing")}}],
        max_retries=3,
    )
    assert report.state == RunState.FAILED
    task = report.tasks["fetch"]
    assert task.state == TaskState.FAILED
    assert task.attempts == 1
    assert server.hits["/missing"] == 1
    assert "HTTP 404" in task.error
    assert "no such repository" in task.error


async def test_http_500_is_retried(orch: Orchestrator, server: LocalServer):
    report = await run_dag(
        orch,
        [{"id": "fetch", "operation": "http_request", "independent_params": {"url": server.url("/broken")}}],
        max_retries=2,
    )
    task = report.tasks["fetch"]
    assert task.state == TaskState.FAILED
    assert task.attempts == 3
    assert server.hits["/broken"] == 3
    assert "HTTP 500" in task.error
    assert "internal trouble" in task.error


async def test_http_expected_status_is_accepted(tmp_path: Path, server: LocalServer, http):
    params = HttpRequestParams.model_validate({"url": server.url("/missing"), "expect_status": [404]})
    assert await http_request(make_ctx(tmp_path / "run", http=http), params) == "no such repository"


async def test_http_connection_refused_is_a_clear_retryable_error(tmp_path: Path, http):
    port = free_port()
    params = HttpRequestParams.model_validate({"url": f"http://127.0.0.1:{port}/x", "timeout": 5})
    with pytest.raises(OperationError) as info:
        await http_request(make_ctx(tmp_path / "run", http=http), params)
    assert not isinstance(info.value, PermanentOperationError)
    message = str(info.value)
    assert message.startswith(f"GET http://127.0.0.1:{port}/x")
    assert "ClientConnectorError" in message


async def test_http_connection_refused_through_the_engine(orch: Orchestrator):
    port = free_port()
    report = await run_dag(
        orch,
        [{"id": "fetch", "operation": "http_request", "independent_params": {"url": f"http://127.0.0.1:{port}/"}}],
        max_retries=1,
    )
    task = report.tasks["fetch"]
    assert task.state == TaskState.FAILED
    assert task.attempts == 2  # a network error is worth a retry
    assert f"127.0.0.1:{port}" in task.error


async def test_http_timeout(tmp_path: Path, server: LocalServer, http):
    params = HttpRequestParams.model_validate({"url": server.url("/slow"), "timeout": 0.2})
    with pytest.raises(OperationError) as info:
        await http_request(make_ctx(tmp_path / "run", http=http), params)
    assert "TimeoutError" in str(info.value)
    assert not isinstance(info.value, PermanentOperationError)


async def test_http_max_bytes(tmp_path: Path, server: LocalServer, http):
    params = HttpRequestParams.model_validate({"url": server.url("/big"), "max_bytes": 100})
    with pytest.raises(PermanentOperationError, match="larger than max_bytes=100"):
        await http_request(make_ctx(tmp_path / "run", http=http), params)
    exact = HttpRequestParams.model_validate({"url": server.url("/big"), "max_bytes": 1000})
    assert await http_request(make_ctx(tmp_path / "run", http=http), exact) == "y" * 1000


async def test_http_large_json_response_is_read_whole(tmp_path: Path, server: LocalServer, http):
    params = HttpRequestParams.model_validate({"url": server.url("/big.json")})
    assert await http_request(make_ctx(tmp_path / "run", http=http), params) == BIG_JSON


@pytest.mark.parametrize("max_bytes", [None, 1_000_000])
async def test_http_large_text_response_is_whole_or_refused(
    tmp_path: Path, server: LocalServer, http, max_bytes: int | None
):
    raw: dict[str, Any] = {"url": server.url("/big.txt")}
    if max_bytes is not None:
        raw["max_bytes"] = max_bytes
    ctx = make_ctx(tmp_path / "run", http=http)
    if max_bytes is None:
        assert await http_request(ctx, HttpRequestParams.model_validate(raw)) == BIG_TEXT
    else:
        with pytest.raises(PermanentOperationError, match="max_bytes"):
            await http_request(ctx, HttpRequestParams.model_validate(raw))


def test_http_params_are_checked_at_validation() -> None:
    problems = config_problems(
        {
            "dag_name": "d",
            "tasks": [
                {"id": "a", "operation": "http_request", "independent_params": {"url": "not a url", "method": "FETCH"}},
                {"id": "b", "operation": "http_request", "independent_params": {}},
            ],
        }
    )
    assert any(p.startswith("tasks[0].independent_params.url:") for p in problems)
    assert any(p.startswith("tasks[0].independent_params.method:") for p in problems)
    assert "tasks[1].independent_params.url: operation 'http_request' needs this param" in problems


# -- json_to_string -----------------------------------------------------------------------------


async def test_json_to_string_pretty_prints(orch: Orchestrator, settings: Settings):
    data = {"name": "Grüße", "items": [1, {"b": None}]}
    report = await run_dag(
        orch,
        [
            {"id": "data", "operation": "noop", "independent_params": {"value": data}},
            {
                "id": "pretty",
                "operation": "json_to_string",
                "dependent_params": {"data": "data"},
                "dependencies": ["data"],
            },
        ],
    )
    assert report.state == RunState.SUCCESS
    text = (folder_of(settings, report) / "pretty.txt").read_text(encoding="utf-8")
    assert text == json.dumps(data, indent=2, ensure_ascii=False)
    assert "Grüße" in text  # not escaped


async def test_json_to_string_template_walks_nested_data(orch: Orchestrator, settings: Settings):
    data = {"a": {"b": ["first", "second"], "n": 42}, "name": "x"}
    report = await run_dag(
        orch,
        [
            {"id": "data", "operation": "noop", "independent_params": {"value": data}},
            {
                "id": "line",
                "operation": "json_to_string",
                "independent_params": {"template": "{a.b.0}/{a.b.-1} n={a.n:>4} {name!r} {{literal}}"},
                "dependent_params": {"data": "data"},
                "dependencies": ["data"],
            },
        ],
    )
    assert report.state == RunState.SUCCESS
    text = (folder_of(settings, report) / "line.txt").read_text(encoding="utf-8")
    assert text == "first/second n=  42 'x' {literal}"


async def test_json_to_string_missing_field_fails_naming_it(orch: Orchestrator):
    report = await run_dag(
        orch,
        [
            {
                "id": "line",
                "operation": "json_to_string",
                "independent_params": {"data": {"a": {"b": 1}}, "template": "value: {a.missing}"},
            }
        ],
        max_retries=2,
    )
    task = report.tasks["line"]
    assert task.state == TaskState.FAILED
    assert task.attempts == 1  # a template error does not heal on retry
    assert "{a.missing}" in task.error
    assert "'missing' not found" in task.error


def test_json_to_string_bad_template_is_refused_at_validation() -> None:
    problems = config_problems(
        {
            "dag_name": "d",
            "tasks": [{"id": "t", "operation": "json_to_string", "independent_params": {"template": "{oops"}}],
        }
    )
    assert len(problems) == 1
    assert problems[0].startswith("tasks[0].independent_params.template: bad template")


# -- select ------------------------------------------------------------------------------------

INVENTORY = {"store": "Riverside", "items": [{"name": "apples", "qty": 42}, {"name": "pears", "qty": 7}]}


def select_dag(path: str, **extra: Any) -> list[dict[str, Any]]:
    return [
        {"id": "inv", "operation": "noop", "independent_params": {"value": INVENTORY}},
        {
            "id": "pick",
            "operation": "select",
            "independent_params": {"path": path, **extra},
            "dependent_params": {"data": "inv"},
            "dependencies": ["inv"],
        },
    ]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("items.1.name", "pears"),
        ("items.-1.qty", 7),
        ("items.0", {"name": "apples", "qty": 42}),
        ("store", "Riverside"),
        ("", INVENTORY),
    ],
)
async def test_select_walks_dicts_and_lists(orch: Orchestrator, settings: Settings, path: str, expected: Any):
    report = await run_dag(orch, select_dag(path))
    assert report.state == RunState.SUCCESS
    name = report.tasks["pick"].output_file
    assert name == ("pick.txt" if isinstance(expected, str) else "pick.json")
    file = folder_of(settings, report) / name
    out = file.read_text(encoding="utf-8") if isinstance(expected, str) else read_json(file)
    assert out == expected


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("items.5", "index 5 out of range for 2 items"),
        ("owner", "key 'owner' not found"),
        ("items.first", "'first' is not a list index"),
        ("store.name", "cannot take 'name' of a str"),
    ],
)
async def test_select_missing_path_fails(orch: Orchestrator, path: str, reason: str):
    report = await run_dag(orch, select_dag(path), max_retries=2)
    task = report.tasks["pick"]
    assert task.state == TaskState.FAILED
    assert task.attempts == 1
    assert f"path {path!r}" in task.error
    assert reason in task.error


async def test_select_default_when_not_required(orch: Orchestrator, settings: Settings):
    report = await run_dag(orch, select_dag("items.9.name", required=False, default={"name": "none"}))
    assert report.state == RunState.SUCCESS
    assert read_json(folder_of(settings, report) / "pick.json") == {"name": "none"}


# -- write_file / read_file ------------------------------------------------------------------


async def test_write_and_read_json(orch: Orchestrator, settings: Settings):
    content = {"rows": [1, 2, 3], "title": "ü"}
    report = await run_dag(
        orch,
        [
            {
                "id": "write",
                "operation": "write_file",
                "independent_params": {"content": content, "filename": "d.json"},
            },
            {
                "id": "read",
                "operation": "read_file",
                "independent_params": {"path": "d.json"},
                "dependencies": ["write"],
            },
            {
                "id": "count",
                "operation": "select",
                "independent_params": {"path": "rows.2"},
                "dependent_params": {"data": "read"},
                "dependencies": ["read"],
            },
        ],
    )
    assert report.state == RunState.SUCCESS
    folder = folder_of(settings, report)
    assert read_json(folder / "d.json") == content
    assert read_json(folder / "read.json") == content  # read back parsed, saved as JSON
    assert read_json(folder / "count.json") == 3


async def test_write_and_read_text(orch: Orchestrator, settings: Settings):
    text = "line one\nline two ü\n"
    report = await run_dag(
        orch,
        [
            {"id": "write", "operation": "write_file", "independent_params": {"content": text, "filename": "n.txt"}},
            {
                "id": "read",
                "operation": "read_file",
                "independent_params": {"path": "n.txt"},
                "dependencies": ["write"],
            },
        ],
    )
    assert report.state == RunState.SUCCESS
    folder = folder_of(settings, report)
    assert (folder / "n.txt").read_bytes() == text.encode()
    assert (folder / "read.txt").read_text(encoding="utf-8") == text


async def test_write_file_formats(orch: Orchestrator, settings: Settings):
    report = await run_dag(
        orch,
        [
            {
                "id": "as_text",
                "operation": "write_file",
                "independent_params": {"content": {"a": [1]}, "format": "text", "filename": "t.txt"},
            },
            {
                "id": "as_json",
                "operation": "write_file",
                "independent_params": {"content": '{"b": 2}', "format": "json", "filename": "j.json"},
            },
            {
                "id": "json_as_text",
                "operation": "read_file",
                "independent_params": {"path": "j.json", "format": "text"},
                "dependencies": ["as_json"],
            },
            {
                "id": "text_as_json",
                "operation": "read_file",
                "independent_params": {"path": "t.txt", "format": "json"},
                "dependencies": ["as_text"],
            },
        ],
    )
    assert report.state == RunState.SUCCESS
    folder = folder_of(settings, report)
    assert (folder / "t.txt").read_text(encoding="utf-8") == json.dumps({"a": [1]}, indent=2)
    assert read_json(folder / "j.json") == {"b": 2}
    assert read_json(folder / "text_as_json.json") == {"a": [1]}
    assert report.tasks["json_as_text"].output_file == "json_as_text.txt"


async def test_write_file_invalid_json_fails(orch: Orchestrator):
    report = await run_dag(
        orch,
        [{"id": "w", "operation": "write_file", "independent_params": {"content": "{nope", "format": "json"}}],
        max_retries=2,
    )
    assert report.tasks["w"].state == TaskState.FAILED
    assert report.tasks["w"].attempts == 1
    assert "content is not valid JSON" in report.tasks["w"].error


async def test_read_file_of_an_upstream_output(orch: Orchestrator, settings: Settings):
    report = await run_dag(
        orch,
        [
            {"id": "inv", "operation": "noop", "independent_params": {"value": INVENTORY, "filename": "inv.json"}},
            {"id": "msg", "operation": "noop", "independent_params": {"value": "hello"}},
            {"id": "r1", "operation": "read_file", "independent_params": {"path": "inv.json"}, "dependencies": ["inv"]},
            {"id": "r2", "operation": "read_file", "independent_params": {"path": "msg.txt"}, "dependencies": ["msg"]},
        ],
    )
    assert report.state == RunState.SUCCESS
    folder = folder_of(settings, report)
    assert read_json(folder / "r1.json") == INVENTORY
    assert (folder / "r2.txt").read_text(encoding="utf-8") == "hello"


async def test_read_file_of_a_missing_file_fails(orch: Orchestrator):
    report = await run_dag(
        orch, [{"id": "r", "operation": "read_file", "independent_params": {"path": "ghost.json"}}], max_retries=1
    )
    assert report.tasks["r"].state == TaskState.FAILED
    assert report.tasks["r"].attempts == 1
    assert "'ghost.json' does not exist in the run folder" in report.tasks["r"].error


@pytest.mark.parametrize(
    ("operation", "param", "value"),
    [
        ("read_file", "path", "../x"),
        ("read_file", "path", "/etc/passwd"),
        ("read_file", "path", "run.log"),
        ("write_file", "filename", "../x"),
        ("write_file", "filename", "sub/x.json"),
    ],
)
def test_paths_outside_the_run_folder_are_refused_at_validation(operation: str, param: str, value: str) -> None:
    params: dict[str, Any] = {param: value}
    if operation == "read_file":
        params.setdefault("path", "ok.json")
    else:
        params["content"] = "x"
    problems = config_problems(
        {"dag_name": "d", "tasks": [{"id": "t", "operation": operation, "independent_params": params}]}
    )
    assert len(problems) == 1
    assert problems[0].startswith(f"tasks[0].independent_params.{param}: ")


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "..", "", "a/../../b"])
def test_context_path_refuses_to_leave_the_folder(tmp_path: Path, name: str) -> None:
    ctx = make_ctx(tmp_path / "run")
    with pytest.raises(PermanentOperationError, match="outside the run folder"):
        ctx.path(name)


def test_context_path_inside_the_folder(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path / "run")
    assert ctx.path("out.json") == (tmp_path / "run" / "out.json").resolve()
    assert ctx.path("a/./b.txt") == (tmp_path / "run" / "a" / "b.txt").resolve()


async def test_read_file_refuses_a_symlink_out_of_the_folder(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret", encoding="utf-8")
    ctx = make_ctx(tmp_path / "run")
    (tmp_path / "run" / "link.txt").symlink_to(secret)
    with pytest.raises(PermanentOperationError, match="outside the run folder"):
        await read_file(ctx, ReadFileParams(path="link.txt"))


async def test_read_file_max_bytes(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path / "run")
    (tmp_path / "run" / "big.txt").write_text("z" * 50, encoding="utf-8")
    with pytest.raises(PermanentOperationError, match="larger than 10 bytes"):
        await read_file(ctx, ReadFileParams(path="big.txt", max_bytes=10))
    assert await read_file(ctx, ReadFileParams(path="big.txt", max_bytes=50)) == "z" * 50


def test_a_filename_may_not_take_another_tasks_default_output() -> None:
    problems = config_problems(
        {
            "dag_name": "d",
            "tasks": [
                {"id": "report", "operation": "noop", "independent_params": {"value": "A"}},
                {"id": "other", "operation": "noop", "independent_params": {"value": "B", "filename": "report.txt"}},
            ],
        }
    )
    assert any("report.txt" in p for p in problems)


# -- shell ------------------------------------------------------------------------------------


@pytest.fixture
async def shell_orch(settings: Settings) -> AsyncIterator[Orchestrator]:
    async with running(settings.model_copy(update={"allow_shell": True})) as orchestrator:
        yield orchestrator


async def test_shell_is_refused_unless_enabled(orch: Orchestrator, settings: Settings, tmp_path: Path):
    tasks = [{"id": "sh", "operation": "shell", "independent_params": {"command": "touch pwned.txt"}}]
    with pytest.raises(ConfigError) as info:
        await run_dag(orch, tasks, max_retries=2)  # refused when submitted: nothing runs
    assert [str(p) for p in info.value.problems] == [
        "tasks[0].operation: the shell operation is disabled; set TASKFLOW_ALLOW_SHELL=1 to allow it"
    ]
    assert await orch.store.list_runs() == []
    # The operation refuses on its own too (a run saved while it was allowed, resumed after).
    shell = get_operation("shell")
    assert shell is not None
    ctx = make_ctx(tmp_path / "run")
    with pytest.raises(PermanentOperationError, match="TASKFLOW_ALLOW_SHELL"):
        await shell.fn(ctx, shell.params_model(command="touch pwned.txt"))
    assert not (tmp_path / "run" / "pwned.txt").exists()


async def test_shell_captures_stdout_stderr_and_exit_code(shell_orch: Orchestrator, settings: Settings):
    report = await run_dag(
        shell_orch,
        [
            {
                "id": "sh",
                "operation": "shell",
                "independent_params": {
                    "command": 'echo "out $GREETING"; echo err >&2; echo made > made.txt',
                    "env": {"GREETING": "hi"},
                },
            },
            {
                "id": "soft",
                "operation": "shell",
                "independent_params": {"command": "echo partial; exit 3", "check": False},
            },
        ],
    )
    assert report.state == RunState.SUCCESS
    folder = folder_of(settings, report)
    assert read_json(folder / "sh.json") == {"exit_code": 0, "stdout": "out hi\n", "stderr": "err\n"}
    assert (folder / "made.txt").read_text() == "made\n"  # it runs in the run folder
    assert read_json(folder / "soft.json") == {"exit_code": 3, "stdout": "partial\n", "stderr": ""}


async def test_shell_nonzero_exit_fails_with_stderr_tail(shell_orch: Orchestrator):
    command = "for i in 1 2 3 4 5; do echo line$i >&2; done; exit 7"
    report = await run_dag(shell_orch, [{"id": "sh", "operation": "shell", "independent_params": {"command": command}}])
    task = report.tasks["sh"]
    assert task.state == TaskState.FAILED
    assert task.error == "command exited with 7: line3 | line4 | line5"


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with contextlib.suppress(OSError):  # a zombie waiting for its reaper is dead too
        return "State:\tZ" in Path(f"/proc/{pid}/status").read_text()
    return True


async def test_shell_timeout_kills_the_command(shell_orch: Orchestrator, settings: Settings):
    report = await run_dag(
        shell_orch,
        [
            {
                "id": "sh",
                "operation": "shell",
                "independent_params": {"command": "sleep 30 & echo $! > child.pid; wait", "timeout": 0.3},
            }
        ],
    )
    task = report.tasks["sh"]
    assert task.state == TaskState.FAILED
    assert task.error == "command timed out after 0.3s"
    pid = int((folder_of(settings, report) / "child.pid").read_text())
    deadline = time.monotonic() + 5
    for _ in range(1000):
        if _pid_gone(pid) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    assert _pid_gone(pid), f"the command's child {pid} is still running"


# -- sleep and noop ---------------------------------------------------------------------------


async def test_sleep_and_noop(orch: Orchestrator, settings: Settings):
    report = await run_dag(
        orch,
        [
            {"id": "nap", "operation": "sleep", "independent_params": {"seconds": 0.05}},
            {"id": "pass", "operation": "noop", "independent_params": {"value": [1, "two"]}, "dependencies": ["nap"]},
            {"id": "join", "operation": "noop", "dependencies": ["nap", "pass"]},
        ],
    )
    assert report.state == RunState.SUCCESS
    folder = folder_of(settings, report)
    assert report.tasks["nap"].state == TaskState.SUCCESS
    assert report.tasks["nap"].output_file is None  # sleep has no output, so no file
    assert not (folder / "nap.json").exists()
    assert read_json(folder / "pass.json") == [1, "two"]
    assert report.tasks["join"].state == TaskState.SUCCESS
    assert report.tasks["join"].output_file is None  # no output, no file
    assert report.tasks["pass"].started_at >= report.tasks["nap"].ended_at


def test_sleep_seconds_are_checked() -> None:
    problems = config_problems(
        {
            "dag_name": "d",
            "tasks": [
                {"id": "a", "operation": "sleep", "independent_params": {"seconds": -1}},
                {"id": "b", "operation": "sleep"},
            ],
        }
    )
    assert any(p.startswith("tasks[0].independent_params.seconds:") for p in problems)
    assert "tasks[1].independent_params.seconds: operation 'sleep' needs this param" in problems


# -- telegram_send ----------------------------------------------------------------------------


async def test_telegram_send_without_a_bot_fails_clearly(orch: Orchestrator):
    report = await run_dag(
        orch,
        [{"id": "send", "operation": "telegram_send", "independent_params": {"username": "@someone", "text": "hi"}}],
        max_retries=2,
    )
    task = report.tasks["send"]
    assert task.state == TaskState.FAILED
    assert task.attempts == 1
    assert "bot is off" in task.error
    assert "TELEGRAM_BOT_TOKEN" in task.error


class FakeSender:
    """Records what telegram_send asks the bot to send."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, *, username: str | None, chat_id: int | None, text: str, file: Path | None) -> dict[str, Any]:
        self.sent.append({"username": username, "chat_id": chat_id, "text": text, "file": file})
        return {"delivered": True}


async def test_telegram_send_through_a_bot(settings: Settings):
    sender = FakeSender()
    async with running(settings, resources=Resources(sender=sender)) as orch:
        report = await run_dag(
            orch,
            [
                {"id": "msg", "operation": "noop", "independent_params": {"value": "report body", "filename": "r.txt"}},
                {
                    "id": "send",
                    "operation": "telegram_send",
                    "independent_params": {"username": "@someone", "file": "r.txt"},
                    "dependent_params": {"text": "msg"},
                    "dependencies": ["msg"],
                },
                {
                    "id": "send_data",
                    "operation": "telegram_send",
                    "independent_params": {"chat_id": 42, "text": {"n": 1}},
                },
            ],
        )
    assert report.state == RunState.SUCCESS
    by_target = {(s["username"], s["chat_id"]): s for s in sender.sent}
    assert by_target[("@someone", None)] == {
        "username": "@someone",
        "chat_id": None,
        "text": "report body",
        "file": (folder_of(settings, report) / "r.txt").resolve(),
    }
    assert by_target[(None, 42)]["text"] == json.dumps({"n": 1}, indent=2)
    assert read_json(folder_of(settings, report) / "send.json") == {"delivered": True}


def test_telegram_send_needs_exactly_one_recipient() -> None:
    for params in ({"text": "x"}, {"text": "x", "username": "@a_user", "chat_id": 1}):
        problems = config_problems(
            {"dag_name": "d", "tasks": [{"id": "s", "operation": "telegram_send", "independent_params": params}]}
        )
        assert problems == ["tasks[0].independent_params: give exactly one of 'username' and 'chat_id'"]


# -- the registry -----------------------------------------------------------------------------


class EchoParams(OperationParams):
    word: str
    times: int = 1


@pytest.fixture
def own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made in a test go into a copy of the registry (built-ins loaded first)."""
    monkeypatch.setattr(registry, "_registry", dict(all_operations()))


def test_builtin_operations_are_registered() -> None:
    names = set(all_operations())
    assert {
        "http_request",
        "json_to_string",
        "select",
        "write_file",
        "read_file",
        "telegram_send",
        "shell",
        "sleep",
        "noop",
    } <= names
    op = get_operation("select")
    assert op is not None
    assert op.description == "Pick one value out of JSON data."
    assert get_operation("telegram_send").remote_ok is False  # type: ignore[union-attr]
    assert get_operation("no_such_operation") is None


async def test_decorator_registers_an_operation(own_registry: None, orch: Orchestrator, settings: Settings):
    @operation("test_echo")
    async def echo(ctx: OperationContext, params: EchoParams) -> str:
        """Repeat a word.

        More text that is not the summary.
        """
        return " ".join([params.word] * params.times)

    op = get_operation("test_echo")
    assert op is not None
    assert op.fn is echo
    assert op.params_model is EchoParams
    assert op.description == "Repeat a word."
    report = await run_dag(
        orch, [{"id": "e", "operation": "test_echo", "independent_params": {"word": "hey", "times": 3}}]
    )
    assert report.state == RunState.SUCCESS
    assert (folder_of(settings, report) / "e.txt").read_text() == "hey hey hey"
    # Its params model is what validation checks.
    problems = config_problems(
        {"dag_name": "d", "tasks": [{"id": "e", "operation": "test_echo", "independent_params": {"times": 2}}]}
    )
    assert problems == ["tasks[0].independent_params.word: operation 'test_echo' needs this param"]


def test_decorator_refuses_a_sync_function(own_registry: None) -> None:
    def sync(ctx: OperationContext, params: EchoParams) -> str:
        return params.word

    with pytest.raises(TypeError, match="must be an async function"):
        operation("test_sync")(sync)  # type: ignore[arg-type]
    assert get_operation("test_sync") is None


def test_decorator_needs_a_params_model(own_registry: None) -> None:
    async def bare(ctx, params):  # type: ignore[no-untyped-def]
        return None

    async def wrong(ctx: OperationContext, params: dict) -> None:  # type: ignore[type-arg]
        return None

    for fn in (bare, wrong):
        with pytest.raises(TypeError, match="annotate 'params' with an OperationParams model"):
            operation("test_bad")(fn)
    assert get_operation("test_bad") is None


PLUGIN_MODULE = '''
from operations import OperationParams, operation


class ShoutParams(OperationParams):
    text: str


@operation("tf_demo_shout")
async def shout(ctx, params: ShoutParams) -> str:
    """Upper-case the text."""
    return params.text.upper() + "!"
'''

PLUGIN_OBJECT_MODULE = """
from operations import Operation, OperationParams


class PingParams(OperationParams):
    pass


async def _ping(ctx, params: PingParams) -> str:
    return "pong"


ping = Operation("tf_demo_ping", _ping, PingParams, "Answer pong.")
"""


def make_distribution(site: Path, name: str, modules: dict[str, str], entry_points: dict[str, str]) -> None:
    """A tiny installed distribution: module files plus ``<name>-0.1.dist-info``."""
    site.mkdir(exist_ok=True)
    for module, source in modules.items():
        (site / f"{module}.py").write_text(source, encoding="utf-8")
    info = site / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n", encoding="utf-8")
    lines = "".join(f"{key} = {value}\n" for key, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[taskflow.operations]\n{lines}", encoding="utf-8")


@pytest.fixture
def plugin_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, own_registry: None) -> Iterator[Path]:
    """A folder on sys.path for plug-in distributions, and a registry that loads entry points again."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(registry, "_loaded", False)
    before = set(sys.modules)
    yield site
    for module in set(sys.modules) - before:
        if module.startswith("tf_demo_"):
            del sys.modules[module]
    importlib.invalidate_caches()


async def test_entry_point_plugin_is_found(
    plugin_site: Path, orch: Orchestrator, settings: Settings, caplog: pytest.LogCaptureFixture
):
    make_distribution(
        plugin_site,
        "tf_demo_plugin",
        {"tf_demo_shout_mod": PLUGIN_MODULE, "tf_demo_broken_mod": "raise RuntimeError('plug-in is broken')\n"},
        {"shout": "tf_demo_shout_mod", "broken": "tf_demo_broken_mod"},
    )
    importlib.invalidate_caches()
    with caplog.at_level(logging.ERROR, logger="operations.registry"):
        op = get_operation("tf_demo_shout")
    assert op is not None
    assert op.description == "Upper-case the text."
    assert op.params_model.__name__ == "ShoutParams"
    # A broken plug-in is logged, and neither stops the others nor the built-ins.
    assert "could not load operation plug-in broken" in caplog.text
    assert get_operation("noop") is not None

    config = parse_config(
        {
            "dag_name": "plugged",
            "tasks": [
                {"id": "word", "operation": "noop", "independent_params": {"value": "hello"}},
                {
                    "id": "loud",
                    "operation": "tf_demo_shout",
                    "dependent_params": {"text": "word"},
                    "dependencies": ["word"],
                },
            ],
        }
    )
    report = await orch.run(config)
    assert report.state == RunState.SUCCESS
    assert (folder_of(settings, report) / "loud.txt").read_text() == "HELLO!"


def test_entry_point_naming_an_operation_object(plugin_site: Path) -> None:
    make_distribution(
        plugin_site,
        "tf_demo_objects",
        {"tf_demo_ping_mod": PLUGIN_OBJECT_MODULE},
        {"ping": "tf_demo_ping_mod:ping"},
    )
    importlib.invalidate_caches()
    op = get_operation("tf_demo_ping")
    assert isinstance(op, Operation)
    assert op.description == "Answer pong."
