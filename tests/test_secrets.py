"""Secrets: resolved only when an attempt starts, sent where the config says, and found nowhere else."""

from __future__ import annotations

import asyncio
import json
import shutil
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.engine import Orchestrator
from orchestrator.errors import ConfigError
from orchestrator.library import DagLibrary
from orchestrator.secrets import Masker, Secrets
from orchestrator.settings import Settings
from orchestrator.states import RunState, TaskState
from orchestrator.submission import prepare
from orchestrator.validation import parse_config
from tests.fake_telegram import ALICE, BotHarness
from web.app import create_app

SECRET = "tf-s3cr3t-7Qx9Lm2Vb8"  # pragma: allowlist secret
JSON = {"Content-Type": "application/json"}
SHIPPED_DAGS = Path(__file__).resolve().parents[1] / "dags"


@pytest.fixture
async def api_server() -> AsyncIterator[str]:
    """An API that wants ``Bearer SECRET`` and echoes what it was sent (as careless APIs do)."""

    async def data(request: web.Request) -> web.Response:
        sent = request.headers.get("Authorization", "")
        if sent != f"Bearer {SECRET}":
            return web.json_response({"error": "unauthorized"}, status=401)
        return web.json_response({"name": "cpython", "stars": 42, "echo": sent, "key": request.query.get("key")})

    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=503, text=f"upstream down for {request.headers.get('Authorization')}")

    app = web.Application()
    app.router.add_get("/data", data)
    app.router.add_get("/broken", broken)
    async with TestServer(app, host="127.0.0.1") as server:
        yield str(server.make_url("/"))


def pipeline(base: str) -> dict[str, Any]:
    """The seed's pipeline: an API with a token → text → Telegram."""
    return {
        "dag_name": "secret_pipeline",
        "params": {"who": ALICE["id"]},
        "tasks": [
            {
                "id": "fetch",
                "operation": "http_request",
                "independent_params": {
                    "url": base + "data?key={{ secrets.API_KEY }}",
                    "headers": {"Authorization": "Bearer {{ secrets.API_KEY }}"},
                },
            },
            {
                "id": "to_text",
                "operation": "json_to_string",
                "independent_params": {"template": "{name}: {stars} stars (sent {echo}, key {key})"},
                "dependent_params": {"data": "fetch"},
                "dependencies": ["fetch"],
            },
            {
                "id": "send",
                "operation": "telegram_send",
                "independent_params": {"chat_id": "{{ params.who }}"},
                "dependent_params": {"text": "to_text"},
                "dependencies": ["to_text"],
            },
            {
                "id": "broken",
                "operation": "http_request",
                "independent_params": {
                    "url": base + "broken?key={{ secrets.API_KEY }}",
                    "headers": {"Authorization": "Bearer {{ secrets.API_KEY }}"},
                },
            },
        ],
    }


def files_holding(root: Path, needle: bytes) -> list[str]:
    """Every file under ``root`` (and every member of every ZIP) whose bytes hold ``needle``."""
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        if needle in path.read_bytes():
            found.append(str(path))
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                found += [f"{path}:{m}" for m in archive.namelist() if needle in archive.read(m)]
    return found


async def test_a_secret_is_sent_and_found_nowhere_else(
    settings: Settings, orch: Orchestrator, library: DagLibrary, api_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKFLOW_SECRET_API_KEY", SECRET)
    await library.add_json(json.dumps(pipeline(api_server)), source="test")
    async with (
        BotHarness(settings, orch, library) as tg,
        TestClient(TestServer(create_app(settings, orch, library, orch.store))) as api,
    ):
        await tg.say("/run secret_pipeline")
        final = await tg.tg.expect(ALICE["id"], contains="Run <b>#1</b> of", where=lambda s: "Status page" in s.text)
        report = await orch.wait(1)
        assert report.state == RunState.FAILED  # "broken" fails; the rest went through with the secret
        assert report.tasks["send"].state == TaskState.SUCCESS, report.tasks["send"].error
        sent = [c for c in tg.tg.called("sendMessage") if "cpython" in str(c.get("text"))]
        assert [c["text"] for c in sent] == ["cpython: 42 stars (sent Bearer ***, key ***)"]
        error = report.tasks["broken"].error or ""
        assert "broken?key=***" in error
        assert "answered HTTP 503: upstream down for Bearer ***" in error
        stored = await orch.store.run_config(1)
        assert stored["tasks"][0]["independent_params"]["headers"] == {"Authorization": "Bearer {{ secrets.API_KEY }}"}

        await tg.say("/status 1")
        await tg.say("/archive 1", method="sendDocument")
        answers = [await (await api.get(path)).read() for path in (
            "/api/runs", "/api/runs/1", "/api/runs/1/events", "/api/runs/1/log", "/api/runs/1/archive",
            "/runs/1", "/runs/1/parts", "/runs/1/log", "/runs/1/archive.zip", "/", "/api/dags/secret_pipeline",
        )]  # fmt: skip
        assert "***" in (await (await api.get("/runs/1/log")).text())  # the URL it logged, masked
    assert final.text
    needle = SECRET.encode()
    assert files_holding(settings.data_dir, needle) == []
    for body in answers:
        assert needle not in body
    for path in (settings.data_dir / "dag").glob("*.zip"):
        with zipfile.ZipFile(path) as archive:
            assert all(needle not in archive.read(m) for m in archive.namelist())
    assert SECRET not in repr(tg.tg.calls)  # every message, edit and document the bot sent


async def test_a_missing_secret_is_refused_at_submission_by_name(
    orch: Orchestrator, api_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TASKFLOW_SECRET_API_KEY", raising=False)
    config = parse_config(pipeline(api_server))  # a DAG naming a secret loads without it
    with pytest.raises(ConfigError) as caught:
        await orch.submit(config)
    messages = [str(p) for p in caught.value.problems]
    assert any("secret 'API_KEY' is not set" in m and "TASKFLOW_SECRET_API_KEY" in m for m in messages)
    assert await orch.store.list_runs() == []


async def test_a_secret_removed_after_submission_fails_the_attempt_by_name(
    orch: Orchestrator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKFLOW_SECRET_TOKEN", "x")
    config = parse_config(
        {
            "dag_name": "later",
            "tasks": [
                {"id": "wait", "operation": "sleep", "independent_params": {"seconds": 0.2}},
                {"id": "use", "operation": "noop", "independent_params": {"value": "{{ secrets.TOKEN }}"},
                 "dependencies": ["wait"]},
            ],
        }
    )  # fmt: skip
    run_id = await orch.submit(config)
    monkeypatch.delenv("TASKFLOW_SECRET_TOKEN")
    report = await orch.wait(run_id)
    assert report.tasks["use"].state == TaskState.FAILED
    assert "secret 'TOKEN' is not set" in (report.tasks["use"].error or "")


def test_secrets_come_from_the_environment_dotenv_and_files(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TASKFLOW_SECRET_FROM_DOTENV=dot\n")
    folder = tmp_path / "run-secrets"
    folder.mkdir()
    (folder / "FROM_FILE").write_text("file-value\n")
    secrets = Secrets(folder, env_file=tmp_path / ".env", environ={"TASKFLOW_SECRET_FROM_ENV": "env"})
    assert [secrets.get(n) for n in ("FROM_ENV", "FROM_DOTENV", "FROM_FILE", "NONE")] == [
        "env",
        "dot",
        "file-value",
        None,
    ]
    assert secrets.missing(["FROM_FILE", "NONE", "NONE"]) == ["NONE"]


def test_masking_replaces_longer_values_first_in_text_and_values() -> None:
    masker = Masker()
    masker.add(["abc", "abcdef", ""])
    assert masker.text("x abcdef y abc") == "x *** y ***"
    assert masker.value({"abc": ["abcdef", 1, {"k": "abc!"}]}) == {"***": ["***", 1, {"k": "***!"}]}


async def test_the_shipped_example_loads_without_its_secret_and_runs_only_with_it(
    settings: Settings, orch: Orchestrator, library: DagLibrary, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TASKFLOW_SECRET_GITHUB_TOKEN", raising=False)
    await asyncio.to_thread(shutil.copytree, SHIPPED_DAGS, settings.dags_dir)  # as the service's dags/
    assert await library.sync_folder() == {}  # every shipped DAG loads, this one without its secret
    config = await library.get("github_digest")
    with pytest.raises(ConfigError) as caught:
        await orch.submit(config, params={"to": "@someone"})
    assert "secret 'GITHUB_TOKEN' is not set" in str(caught.value)
    with pytest.raises(ConfigError, match=r"params\.to: required"):
        await orch.submit(config)
    slot = 1_780_000_000.0  # 2026-05-28 UTC
    ready = prepare(
        config, {"to": "@someone"}, secrets=Secrets(environ={"TASKFLOW_SECRET_GITHUB_TOKEN": SECRET}),
        logical_date=slot, tz=settings.tz,
    )  # fmt: skip
    fetch, to_text, send = (t.independent_params for t in ready.config.tasks)
    assert fetch["url"] == "https://api.github.com/repos/python/cpython"
    assert fetch["headers"] == {"Authorization": "Bearer {{ secrets.GITHUB_TOKEN }}"}
    assert (fetch["filename"], to_text["filename"]) == ("repo_2026-05-28.json", "digest_2026-05-28.txt")
    assert to_text["template"] == "{full_name}: {stargazers_count} stars on 2026-05-28"
    assert send["username"] == "@someone"
    assert SECRET not in str(ready.text)
