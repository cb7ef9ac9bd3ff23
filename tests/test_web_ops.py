"""``GET /healthz`` and ``GET /metrics`` against a real orchestrator, scraped and parsed as Prometheus would."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.engine import Orchestrator
from orchestrator.library import DagLibrary
from orchestrator.scheduler import Scheduler
from orchestrator.settings import Settings
from orchestrator.validation import parse_config
from tests.engine_harness import running
from web import create_app
from web.keys import PROBES

JSON = {"Content-Type": "application/json"}
FLAKY = {
    "dag_name": "flaky",
    "max_retries": 1,
    "retry_delay": 0,
    "tasks": [
        {"id": "ok", "operation": "noop"},
        # Nothing listens on port 1: a connection refused, which is worth a retry.
        {
            "id": "bad",
            "operation": "http_request",
            "independent_params": {"url": "http://127.0.0.1:1/"},
            "dependencies": ["ok"],
        },
    ],
}


@pytest.fixture
async def client(settings: Settings, orch: Orchestrator, library: DagLibrary) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(create_app(settings, orch, library, orch.store))) as test_client:
        yield test_client


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape by (name, labels), parsed by prometheus-client's own parser."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def labels(**items: str) -> frozenset[tuple[str, str]]:
    return frozenset(items.items())


async def test_healthz_is_ok_when_the_store_answers_and_the_workers_live(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok", "checks": {"store": {"ok": True}, "workers": {"ok": True}}}


async def test_healthz_is_503_and_says_what_failed(client: TestClient[Any, Any], orch: Orchestrator) -> None:
    await orch.store.close()  # the store stops answering
    resp = await client.get("/healthz")
    assert resp.status == 503
    body = await resp.json()
    assert body["status"] == "failing"
    assert body["checks"]["workers"] == {"ok": True}
    assert body["checks"]["store"]["ok"] is False
    assert "not open" in body["checks"]["store"]["problem"]


async def test_a_failing_probe_of_the_bot_makes_healthz_503(
    settings: Settings, orch: Orchestrator, library: DagLibrary
) -> None:
    app = create_app(settings, orch, library, orch.store)

    async def telegram(_: object) -> str | None:
        return "polling has stopped"

    app[PROBES]["telegram"] = telegram
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/healthz")
        assert resp.status == 503
        assert (await resp.json())["checks"]["telegram"] == {"ok": False, "problem": "polling has stopped"}


async def test_metrics_after_a_real_run(
    settings: Settings, orch: Orchestrator, library: DagLibrary, client: TestClient[Any, Any]
) -> None:
    resp = await client.post("/api/web", json=FLAKY, headers=JSON)
    assert resp.status == 201
    report = await orch.wait((await resp.json())["run_id"])
    assert report.state == "failed"
    scheduler = Scheduler(settings, orch.store, orch, library)
    await library.save(parse_config(FLAKY), source="test")
    await scheduler.add("flaky", "every 1h")
    paused = await scheduler.add("flaky", "every 2h")
    await scheduler.pause(paused.schedule_id)

    scrape = await client.get("/metrics")
    assert scrape.status == 200
    assert scrape.content_type == "text/plain"
    got = samples(await scrape.text())
    assert got["taskflow_runs_started_total", labels(dag_id="flaky")] == 1
    assert got["taskflow_runs_ended_total", labels(dag_id="flaky", state="failed")] == 1
    assert got["taskflow_task_attempts_total", labels(operation="noop", outcome="success")] == 1
    assert got["taskflow_task_attempts_total", labels(operation="http_request", outcome="retry")] == 1
    assert got["taskflow_task_attempts_total", labels(operation="http_request", outcome="failed")] == 1
    assert got["taskflow_task_duration_seconds_count", labels(operation="http_request")] == 2
    assert got["taskflow_task_duration_seconds_bucket", labels(operation="noop", le="+Inf")] == 1
    assert got["taskflow_ready_queue_depth", labels()] == 0
    assert got["taskflow_busy_workers", labels()] == 0
    assert got["taskflow_workers", labels()] == settings.workers
    assert got["taskflow_schedules", labels(state="active")] == 1
    assert got["taskflow_schedules", labels(state="paused")] == 1


async def test_metrics_need_the_token_and_healthz_does_not(settings: Settings) -> None:
    guarded = settings.model_copy(update={"api_token": "s3cret"})
    async with running(guarded) as orch:
        app = create_app(guarded, orch, DagLibrary(guarded, orch.store), orch.store)
        async with TestClient(TestServer(app)) as client:
            assert (await client.get("/metrics")).status == 401
            assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status == 401
            ok = await client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
            assert ok.status == 200
            assert "taskflow_workers" in await ok.text()
            assert (await client.get("/healthz")).status == 200


async def test_counts_go_to_the_apps_registry_not_the_global_one(
    orch: Orchestrator, client: TestClient[Any, Any]
) -> None:
    await orch.run(parse_config({"dag_name": "one", "tasks": [{"id": "a", "operation": "noop"}]}))
    got = samples(await (await client.get("/metrics")).text())
    assert got["taskflow_runs_started_total", labels(dag_id="one")] == 1
    assert REGISTRY.get_sample_value("taskflow_runs_started_total", {"dag_id": "one"}) is None
