"""The pages: status page, run page, its live stream and parts, and the graph and timeline drawings."""

from __future__ import annotations

import asyncio
import io
import json
import re
import shutil
import time
import zipfile
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.engine import Orchestrator
from orchestrator.library import DagLibrary
from orchestrator.progress import progress
from orchestrator.records import EventRecord
from orchestrator.settings import Settings
from orchestrator.validation import parse_config
from web import create_app, views_pages
from web.render import graph as graph_render
from web.render import run as run_render
from web.render.durations import Elapsed, running_time
from web.render.timeline import build_timeline, draw


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


def node_states(page: str) -> dict[str, str]:
    """Task id → state of every row of the task table on a page."""
    return dict(re.findall(r'<span class="badge" data-task="([^"]+)" data-state="([^"]+)"', page))


async def read_events(resp: aiohttp.ClientResponse) -> list[tuple[str, dict[str, Any]]]:
    """All events of an SSE response, until the server ends it."""
    events = []
    name = None
    async for raw in resp.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: ") and name:
            events.append((name, json.loads(line.removeprefix("data: "))))
    return events


# -- status page -----------------------------------------------------------------------------------


async def test_status_page_shows_dags_runs_and_schedules(
    client: TestClient[Any, Any], orch: Orchestrator, library: DagLibrary
) -> None:
    await library.save(parse_config({**dag("nightly", 0.0), "description": "<script>x()</script>"}), source="t")
    run_id = await orch.submit(parse_config(dag("nightly", 0.0)))
    await orch.wait(run_id)
    await orch.store.add_schedule("nightly", "cron", "0 3 * * *", "UTC", owner_id=1, chat_id=1, next_fire_at=None)

    resp = await client.get("/")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
    page = await resp.text()
    assert '<meta name="viewport"' in page
    assert "nightly" in page
    assert f'<a href="/runs/{run_id}">#{run_id}</a>' in page
    assert 'data-state="success"' in page
    assert "0 3 * * *" in page
    assert "<script>x()" not in page  # user text is escaped
    assert "&lt;script&gt;x()" in page


async def test_status_page_when_empty(client: TestClient[Any, Any], settings: Settings) -> None:
    settings.timezone = "Europe/Berlin"
    page = await (await client.get("/")).text()
    assert "times in Europe/Berlin" in page
    assert "No DAGs yet" in page
    assert "No runs yet" in page
    assert "No schedules" in page


# -- run page --------------------------------------------------------------------------------------


async def test_run_page_of_an_ended_run(client: TestClient[Any, Any], orch: Orchestrator) -> None:
    run_id = await orch.submit(parse_config(dag(seconds=0.05)))
    await orch.wait(run_id)
    resp = await client.get(f"/runs/{run_id}")
    assert resp.status == 200
    page = await resp.text()
    assert node_states(page) == {"a": "success", "b": "success"}
    graph = json.loads(re.search(r'<script type="application/json" class="graph-data">(.*?)</script>', page).group(1))
    assert graph["tasks"] == [{"id": "a", "op": "sleep", "deps": []}, {"id": "b", "op": "noop", "deps": ["a"]}]
    assert graph["states"] == {"a": "success", "b": "success"}
    assert 'data-finished="1"' in page
    assert f'href="/runs/{run_id}/archive.zip"' in page
    assert 'id="task-a"' in page
    assert 'id="task-b"' in page
    assert page.count('class="tl-row"') == 2
    assert "run ended: success" in page  # the log
    assert '<script src="/static/run.js' in page
    assert '<script src="/static/vendor/elk.bundled.js' in page

    archive = await client.get(f"/runs/{run_id}/archive.zip")
    assert archive.status == 200
    assert archive.content_type == "application/zip"
    assert "run.json" in zipfile.ZipFile(io.BytesIO(await archive.read())).namelist()
    log = await client.get(f"/runs/{run_id}/log")
    assert log.content_type == "text/plain"
    assert "run ended: success" in await log.text()


async def test_run_page_while_it_runs(client: TestClient[Any, Any], orch: Orchestrator) -> None:
    async with orch.events.subscribe() as events:
        run_id = await orch.submit(parse_config(dag(seconds=0.5)))
        while (await asyncio.wait_for(events.get(), 5)).state != "running":
            pass
    await orch.store.flush()  # pages show what is committed: the engine commits within milliseconds
    page = await (await client.get(f"/runs/{run_id}")).text()
    assert 'data-finished="0"' in page
    states = node_states(page)
    assert states["a"] in ("queued", "running")
    assert states["b"] == "pending"
    assert 'id="zip-link"' not in page
    assert "The ZIP is made when the run ends" in page
    await orch.wait(run_id)


async def test_parts_follow_the_run(client: TestClient[Any, Any], orch: Orchestrator) -> None:
    run_id = await orch.submit(parse_config(dag(seconds=0.05)))
    await orch.wait(run_id)
    parts = await (await client.get(f"/runs/{run_id}/parts")).json()
    assert parts["finished"] is True
    assert parts["states"] == {"a": "success", "b": "success"}
    assert set(parts["parts"]) == {"summary", "tasks", "timeline", "log"}
    assert 'id="zip-link"' in parts["parts"]["summary"]


async def test_errors_on_the_page_are_escaped(client: TestClient[Any, Any], orch: Orchestrator) -> None:
    config = {
        "dag_name": "x",
        "tasks": [{"id": "r", "operation": "read_file", "independent_params": {"path": "<img>.txt"}}],
    }
    run_id = await orch.submit(parse_config(config))
    await orch.wait(run_id)
    page = await (await client.get(f"/runs/{run_id}")).text()
    assert node_states(page) == {"r": "failed"}
    assert "<img>" not in page
    assert "&lt;img&gt;.txt" in page


async def test_unknown_run_is_a_404_page(client: TestClient[Any, Any]) -> None:
    for path in ("/runs/4242", "/runs/4242/parts", "/runs/4242/archive.zip", "/nowhere"):
        resp = await client.get(path)
        assert resp.status == 404, path
        assert resp.content_type == "text/html", path
        assert "404" in await resp.text()


async def test_pages_stay_open_with_a_token(
    client: TestClient[Any, Any], orch: Orchestrator, settings: Settings
) -> None:
    settings.api_token = "tok"
    run_id = await orch.submit(parse_config(dag(seconds=0.0)))
    await orch.wait(run_id)
    for path in (f"/runs/{run_id}", f"/runs/{run_id}/parts", f"/runs/{run_id}/archive.zip", "/static/run.js"):
        assert (await client.get(path)).status == 200, path
    assert (await client.get(f"/api/runs/{run_id}")).status == 401


async def test_static_files_are_served(client: TestClient[Any, Any]) -> None:
    css = await client.get("/static/style.css")
    assert css.status == 200
    assert '[data-state="success"]' in await css.text()
    js = await client.get("/static/run.js")
    assert "EventSource" in await js.text()


# -- live stream -----------------------------------------------------------------------------------


async def test_live_stream_follows_a_run_to_its_end(client: TestClient[Any, Any], orch: Orchestrator) -> None:
    run_id = await orch.submit(parse_config(dag(seconds=0.3)))
    resp = await client.get(f"/runs/{run_id}/live")
    assert resp.status == 200
    assert resp.content_type == "text/event-stream"
    events = await asyncio.wait_for(read_events(resp), 10)  # ends by itself after the run
    assert events[0][0] == "hello"
    b_states = [data["state"] for name, data in events if name == "task" and data["task_id"] == "b"]
    assert b_states == ["queued", "running", "success"]
    assert events[-1] == ("run", {"state": "success", "error": None, "final": True})


async def test_live_stream_of_an_ended_run_says_so_and_ends(client: TestClient[Any, Any], orch: Orchestrator) -> None:
    run_id = await orch.submit(parse_config(dag(seconds=0.0)))
    await orch.wait(run_id)
    resp = await client.get(f"/runs/{run_id}/live")
    events = await asyncio.wait_for(read_events(resp), 5)
    assert events == [("hello", {"run_id": run_id, "state": "success", "final": True})]
    assert (await client.get("/runs/4242/live")).status == 404


async def test_shutdown_ends_live_streams(settings: Settings, orch: Orchestrator, library: DagLibrary) -> None:
    run_id = await orch.submit(parse_config(dag(seconds=30)))
    server = TestServer(create_app(settings, orch, library, orch.store))
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        resp = await session.get(server.make_url(f"/runs/{run_id}/live"))
        assert (await resp.content.readline()).startswith(b"retry:")
        started = time.monotonic()
        await server.close()
        assert time.monotonic() - started < 3, "cleanup must not wait for the stream"
        await asyncio.wait_for(resp.read(), 3)  # the stream has ended
        resp.release()
    await orch.cancel(run_id)


# -- drawings --------------------------------------------------------------------------------------


def test_timeline_shows_waits_runs_and_retries() -> None:
    t0 = 1000.0
    events = [
        EventRecord(1, None, "queued", None, t0),
        EventRecord(1, None, "running", None, t0 + 0.1),
        EventRecord(1, "a", "queued", 0, t0 + 0.1),
        EventRecord(1, "a", "running", 1, t0 + 0.3),
        EventRecord(1, "a", "up_for_retry", 1, t0 + 1.0, "boom"),
        EventRecord(1, "a", "queued", 1, t0 + 2.0),
        EventRecord(1, "a", "running", 2, t0 + 2.1),
        EventRecord(1, "a", "success", 2, t0 + 3.0),
        EventRecord(1, "b", "queued", 0, t0 + 3.0),
        EventRecord(1, "b", "running", 1, t0 + 3.1),
    ]
    timeline = build_timeline(events, ["a", "b", "c"], now=t0 + 4.0)
    a = [(s.state, round(s.start - t0, 3), round(s.end - t0, 3)) for s in timeline.rows["a"]]
    assert a == [
        ("queued", 0.1, 0.3),
        ("running", 0.3, 1.0),
        ("up_for_retry", 1.0, 2.0),
        ("queued", 2.0, 2.1),
        ("running", 2.1, 3.0),
        ("success", 3.0, 3.0),
    ]
    assert timeline.rows["a"][2].error == "boom"
    assert timeline.rows["b"][-1].state == "running"
    assert timeline.rows["b"][-1].end == t0 + 4.0  # still running: up to now
    assert timeline.rows["c"] == []
    assert timeline.start == t0
    assert timeline.end == t0 + 4.0
    bars = draw(timeline).rows[0][1]
    assert [b.label for b in bars] == [
        "queued 0.20 s (attempt 1)",
        "running 0.70 s (attempt 1)",
        "up for retry 1.00 s (after attempt 1): boom",
        "queued 0.10 s (attempt 2)",  # waiting for the next attempt, not the one that failed
        "running 0.90 s (attempt 2)",
        "success (attempt 2)",
    ]
    # A finished attempt takes the colour of how it ended; only the attempt still going is "running".
    assert [b.state for b in bars] == ["queued", "up_for_retry", "up_for_retry", "queued", "success", "success"]
    assert draw(timeline).rows[1][1][-1].state == "running"


def test_timeline_of_a_short_run_counts_in_milliseconds() -> None:
    events = [EventRecord(1, None, "running", None, 50.0), EventRecord(1, "a", "running", 1, 50.0)]
    events.append(EventRecord(1, "a", "success", 1, 50.004))
    events.append(EventRecord(1, None, "success", None, 50.004))
    assert draw(build_timeline(events, ["a"], now=60.0)).ticks == ["0 ms", "1 ms", "2 ms", "3 ms", "4 ms"]


# -- honest numbers --------------------------------------------------------------------------------


def test_a_re_run_counts_only_its_running_time() -> None:
    run = [("queued", 0.0), ("running", 0.5), ("failed", 1.5), ("queued", 12.0), ("running", 12.1), ("success", 13.1)]
    assert running_time(run, now=99.0, running="running") == Elapsed(2.0)
    going = running_time(run[:5], now=13.0, running="running")
    assert going == Elapsed(pytest.approx(1.9), since=12.1, base=1.0)
    assert running_time([("queued", 0.0)], now=5.0, running="running") == Elapsed(None)


def test_progress_has_a_part_per_outcome() -> None:
    failed = progress({"failed": 1, "upstream_failed": 2})
    assert [(p.key, p.count) for p in failed.shown] == [("failed", 1), ("upstream_failed", 2)]
    assert failed.text() == "1 failed, 2 upstream failed of 3"
    going = progress({"success": 1, "running": 1, "queued": 1, "pending": 2, "cancelled": 1})
    assert going.text() == "1 succeeded, 1 cancelled, 1 running, 3 waiting of 6"


async def test_a_failed_run_does_not_read_as_done(client: TestClient[Any, Any], orch: Orchestrator) -> None:
    config = {
        "dag_name": "broken",
        "tasks": [
            {"id": "r", "operation": "read_file", "independent_params": {"path": "missing.txt"}},
            {"id": "s", "operation": "noop", "dependencies": ["r"]},
        ],
    }
    run_id = await orch.submit(parse_config(config))
    await orch.wait(run_id)
    for path in ("/", f"/runs/{run_id}"):
        page = await (await client.get(path)).text()
        assert "1 failed, 1 upstream failed of 2" in page, path
        parts = re.findall(r'<rect class="part" data-state="([a-z_]+)"', page)
        assert parts == ["failed", "upstream_failed"], path
    assert "1 run going" not in page
    status = await (await client.get("/")).text()
    assert "0 runs going" in status
    assert "0 DAGs" in status


async def test_status_page_filters_and_pages_its_runs(
    client: TestClient[Any, Any], orch: Orchestrator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(views_pages, "RUNS_PER_PAGE", 2)
    ids = []
    for name in ("one", "two", "one", "one"):
        ids.append(await orch.submit(parse_config(dag(name, 0.0))))
        await orch.wait(ids[-1])

    def shown(page: str) -> list[int]:
        return [int(n) for n in re.findall(r'<a href="/runs/(\d+)">#', page)]

    first = await (await client.get("/?dag=one")).text()
    assert shown(first) == [ids[3], ids[2]]
    assert 'href="/?dag=one&amp;state=&amp;offset=2" rel="next"' in first
    assert 'rel="prev"' not in first
    second = await (await client.get("/?dag=one&offset=2")).text()
    assert shown(second) == [ids[0]]
    assert 'href="/?dag=one&amp;state=&amp;offset=0" rel="prev"' in second
    assert shown(await (await client.get("/?state=failed")).text()) == []
    parts = await (await client.get("/parts/runs?dag=two")).json()
    assert shown(parts["runs"]) == [ids[1]]
    assert parts["going"].strip() == "0 runs going"


async def test_status_stream_says_when_something_changed(client: TestClient[Any, Any], orch: Orchestrator) -> None:
    resp = await client.get("/live")
    assert resp.content_type == "text/event-stream"
    assert (await resp.content.readline()).startswith(b"retry:")
    await resp.content.readline()
    run_id = await orch.submit(parse_config(dag(seconds=0.0)))
    assert await asyncio.wait_for(resp.content.readline(), 5) == b"event: change\n"
    await orch.wait(run_id)
    resp.close()


# -- task details ----------------------------------------------------------------------------------


async def test_task_details_read_the_output_from_the_zip_once_the_folder_is_gone(
    client: TestClient[Any, Any], orch: Orchestrator, settings: Settings
) -> None:
    config = {
        "dag_name": "out",
        "tasks": [
            {"id": "make", "operation": "noop", "independent_params": {"value": "hello <i>there</i>"}},
            {"id": "fail", "operation": "read_file", "independent_params": {"path": "missing.txt"}},
        ],
    }
    run_id = await orch.submit(parse_config(config))
    await orch.wait(run_id)
    details = await (await client.get(f"/runs/{run_id}/task?id=make")).json()
    assert details["state"] == "success"
    assert "hello &lt;i&gt;there&lt;/i&gt;" in details["html"]
    assert "from the run's ZIP" not in details["html"]
    assert f'href="/runs/{run_id}/output?task=make"' in details["html"]

    shutil.rmtree(settings.runs_dir / f"dag_{run_id}")
    details = await (await client.get(f"/runs/{run_id}/task?id=make")).json()
    assert "from the run's ZIP" in details["html"]
    output = await client.get(f"/runs/{run_id}/output?task=make")
    assert output.status == 200
    assert await output.text() == "hello <i>there</i>"
    assert output.headers["Content-Disposition"] == 'attachment; filename="make.txt"'

    failed = await (await client.get(f"/runs/{run_id}/task?id=fail")).json()
    assert failed["state"] == "failed"
    assert failed["html"].count('<span class="badge" data-state="failed">') >= 2  # the task and its attempt
    assert "No output file." in failed["html"]
    assert (await client.get(f"/runs/{run_id}/task?id=nope")).status == 404
    assert (await client.get(f"/runs/{run_id}/output?task=fail")).status == 404


async def test_the_task_table_comes_a_page_at_a_time(
    client: TestClient[Any, Any], orch: Orchestrator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_render, "TASKS_PER_PAGE", 2)
    monkeypatch.setattr(graph_render, "MAX_DRAWN_TASKS", 3)
    monkeypatch.setattr(run_render, "MAX_DRAWN_TASKS", 3)
    tasks = [{"id": f"t{i}", "operation": "noop"} for i in range(5)]
    run_id = await orch.submit(parse_config({"dag_name": "many", "tasks": tasks}))
    await orch.wait(run_id)
    page = await (await client.get(f"/runs/{run_id}")).text()
    assert list(node_states(page)) == ["t0", "t1"]
    assert "tasks 1–2 of 5" in page
    assert 'href="?tasks=2" rel="next"' in page
    # Past the size the page draws, it says the graph is collapsed and sends no graph data.
    assert "the graph is collapsed" in page
    assert 'class="graph-data"' not in page
    parts = await (await client.get(f"/runs/{run_id}/parts?tasks=4")).json()
    assert list(parts["states"]) == ["t4"]
    assert list(node_states(parts["parts"]["tasks"])) == ["t4"]
    assert 'href="?tasks=2" rel="prev"' in parts["parts"]["tasks"]


# -- the DAG page ----------------------------------------------------------------------------------


async def test_dag_page_shows_versions_schedules_and_a_grid_of_runs(
    client: TestClient[Any, Any], orch: Orchestrator, library: DagLibrary
) -> None:
    first = dag("nightly", 0.0)
    await library.save(parse_config({**first, "description": "Nightly <b>export</b>"}), source="t")
    second = {
        **first,
        "description": "Nightly <b>export</b>",
        "tasks": [*first["tasks"], {"id": "c", "operation": "noop"}],
    }
    await library.save(parse_config(second), source="t")
    runs = []
    for _ in range(2):
        runs.append(await orch.submit(await library.get("nightly")))
        await orch.wait(runs[-1])
    await orch.store.add_schedule("nightly", "cron", "0 3 * * *", "UTC", owner_id=1, chat_id=1, next_fire_at=4e9)

    resp = await client.get("/dags/nightly")
    assert resp.status == 200
    page = await resp.text()
    assert "Nightly &lt;b&gt;export&lt;/b&gt;" in page
    assert "0 3 * * *" in page
    assert '<time datetime="2096-' in page  # the next fire time
    cells = re.findall(r'<a class="cell" data-state="(\w+)" href="/runs/(\d+)#task-(\w+)"', page)
    assert sorted(cells) == sorted(
        (s, str(r), t) for r in runs for t, s in (("a", "success"), ("b", "success"), ("c", "success"))
    )
    assert '<option value="1" selected>v1</option>' in page
    assert '<option value="2" selected>v2 (current)</option>' in page
    assert '<span class="add">+      &#34;id&#34;: &#34;c&#34;,</span>' in page
    assert 'class="graph-data"' in page
    assert (await client.get("/dags/nowhere")).status == 404
