"""Load test of the web API: many concurrent ``POST /api/web`` against a real server, then every run to its end.

Run from the repo root: ``.venv/bin/python bench/web_load.py`` (``--requests 500``, ``--tasks 5``,
``--workers 32`` to change the load). Everything runs in this process on a fresh temporary data
dir: the ``Orchestrator``, ``create_app`` and ``start_site`` on 127.0.0.1 with a random port, and an
aiohttp client that fires all requests at once. It prints requests per second and the p50/p99
latency of the burst, then the time until every run has ended (polled through ``GET /api/runs``),
and checks that each run is listed exactly once and succeeded. The exit code is 1 if a check fails.

The baseline, measured in the same run with the same client: a bare aiohttp app whose ``POST
/api/web`` parses the JSON body and answers ``201 {"run_id", "url"}`` from a counter, with no
validation, no database and no run. The ratio says what TaskFlow adds on top of the HTTP round trip.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402 - after the path is set up
from aiohttp import web  # noqa: E402

from orchestrator.engine import Orchestrator  # noqa: E402
from orchestrator.library import DagLibrary  # noqa: E402
from orchestrator.settings import Settings  # noqa: E402
from orchestrator.store import Store  # noqa: E402
from web import create_app, start_site  # noqa: E402
from web.app import bound_port  # noqa: E402

POLL_S = 0.02
PAGE = 500


def small_dag(tasks: int) -> dict[str, Any]:
    """A chain of ``tasks`` noop tasks."""
    return {
        "dag_name": "web_load",
        "tasks": [
            {"id": f"t{i}", "operation": "noop", "dependencies": [f"t{i - 1}"] if i else []} for i in range(tasks)
        ],
    }


async def post_one(http: aiohttp.ClientSession, url: str, config: dict[str, Any]) -> tuple[float, int]:
    """One ``POST /api/web``: its latency in seconds and the run id."""
    started = time.perf_counter()
    async with http.post(url, json=config) as resp:
        body = await resp.json()
        if resp.status != 201:
            raise RuntimeError(f"POST /api/web answered {resp.status}: {body}")
    return time.perf_counter() - started, int(body["run_id"])


async def unfinished(http: aiohttp.ClientSession, base: str) -> int:
    """How many runs are still queued or running (first page is enough to know if any are)."""
    async with http.get(f"{base}/api/runs", params={"state": "queued,running", "limit": str(PAGE)}) as resp:
        return len((await resp.json())["runs"])


async def until_idle(http: aiohttp.ClientSession, base: str) -> None:
    """Return once no run is queued or running, asking the API as a client would."""
    while True:
        if not await unfinished(http, base):
            return
        await asyncio.sleep(POLL_S)


async def list_all(http: aiohttp.ClientSession, base: str) -> list[dict[str, Any]]:
    """Every run, following the pages of ``GET /api/runs``."""
    runs: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        async with http.get(f"{base}/api/runs", params={"limit": str(PAGE), "offset": str(offset)}) as resp:
            body = await resp.json()
        runs += body["runs"]
        offset = body["next_offset"]
    return runs


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


async def baseline(requests: int, tasks: int) -> tuple[float, list[float]]:
    """The same burst against a bare aiohttp handler: (burst seconds, latencies)."""
    counter = iter(range(1, 1 << 62))

    async def answer(request: web.Request) -> web.Response:
        await request.json()
        run_id = next(counter)
        return web.json_response({"run_id": run_id, "url": f"http://127.0.0.1/runs/{run_id}"}, status=201)

    app = web.Application()
    app.router.add_post("/api/web", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{bound_port(runner)}/api/web"
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            await post_one(http, url, small_dag(tasks))
            started = time.perf_counter()
            results = await asyncio.gather(*(post_one(http, url, small_dag(tasks)) for _ in range(requests)))
            return time.perf_counter() - started, [lat for lat, _ in results]
    finally:
        await runner.cleanup()


def latency_line(latencies: list[float]) -> str:
    """p50, p99, mean and max in milliseconds."""
    return (
        f"p50 {percentile(latencies, 50) * 1000:.0f} ms, p99 {percentile(latencies, 99) * 1000:.0f} ms, "
        f"mean {statistics.fmean(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms"
    )


async def bench(requests: int, tasks: int, workers: int) -> bool:
    """Run the load test; True when every check passed."""
    with tempfile.TemporaryDirectory(prefix="taskflow-web-load-") as tmp:
        settings = Settings(_env_file=None, data_dir=Path(tmp), host="127.0.0.1", port=0, workers=workers)
        async with Store(settings.db_path) as store, Orchestrator(settings, store) as orch:
            runner = await start_site(create_app(settings, orch, DagLibrary(settings, store), store), settings)
            try:
                base = f"http://127.0.0.1:{bound_port(runner)}"
                # No client-side cap on connections: all requests really are in flight at once.
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
                    return await measure(http, base, requests, tasks, workers)
            finally:
                await runner.cleanup()


async def measure(http: aiohttp.ClientSession, base: str, requests: int, tasks: int, workers: int) -> bool:
    """Fire the burst, wait for every run, print the figures and check the listing."""
    config = small_dag(tasks)
    url = f"{base}/api/web"
    _, warm_id = await post_one(http, url, config)  # imports and first-use costs stay out of the figures
    await until_idle(http, base)

    started = time.perf_counter()
    results = await asyncio.gather(*(post_one(http, url, config) for _ in range(requests)))
    burst_s = time.perf_counter() - started
    await until_idle(http, base)
    all_done_s = time.perf_counter() - started

    latencies = [lat for lat, _ in results]
    ids = [run_id for _, run_id in results]
    listed = [r for r in await list_all(http, base) if r["run_id"] != warm_id]
    listed_ids = [r["run_id"] for r in listed]
    once = sorted(listed_ids) == sorted(ids) and len(set(ids)) == len(ids)
    succeeded = all(r["state"] == "success" for r in listed)

    print(f"TaskFlow web load on {platform.python_implementation()} {platform.python_version()}, {workers} workers")
    print(f"  {requests} concurrent POST /api/web of a {tasks}-task DAG")
    print(f"  burst: {burst_s:.2f} s → {requests / burst_s:.0f} requests/s")
    print(f"  latency: {latency_line(latencies)}")
    print(f"  every run ended {all_done_s:.2f} s after the first request")
    base_s, base_latencies = await baseline(requests, tasks)
    print(f"  baseline (bare aiohttp handler, same client): {base_s:.2f} s → {requests / base_s:.0f} requests/s")
    print(f"  baseline latency: {latency_line(base_latencies)}")
    print(f"  ratio TaskFlow / baseline: {burst_s / base_s:.1f}x for the burst")
    print(f"  listed once each: {'PASS' if once else 'FAIL'}; all succeeded: {'PASS' if succeeded else 'FAIL'}")
    return once and succeeded


def main() -> int:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="concurrent POST /api/web (default 200)")
    parser.add_argument("--tasks", type=int, default=3, help="noop tasks in the DAG, chained (default 3)")
    parser.add_argument("--workers", type=int, default=16, help="orchestrator workers (default 16)")
    args = parser.parse_args()
    return 0 if asyncio.run(bench(args.requests, args.tasks, args.workers)) else 1


if __name__ == "__main__":
    sys.exit(main())
