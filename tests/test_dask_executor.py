"""The Dask executor (issue #6) against real clusters.

A LocalCluster of worker processes for most tests; `dask scheduler` and `dask worker` run as subprocesses
for the tests that kill the scheduler or start one that cannot import TaskFlow.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

distributed = pytest.importorskip(
    "distributed", reason="the optional Dask extra is not installed (pip install -r requirements-dask.txt)"
)

import pytest_asyncio  # noqa: E402  (after the skip: nothing below matters without Dask)

from operations.base import OperationContext, Resources  # noqa: E402
from operations.registry import get_operation  # noqa: E402
from orchestrator import dask_executor  # noqa: E402
from orchestrator.dask_executor import MISSING_EXTRA, DaskExecutor, local_cluster_shape  # noqa: E402
from orchestrator.engine import RunReport, make_executor  # noqa: E402
from orchestrator.errors import TaskFlowError  # noqa: E402
from orchestrator.settings import Settings  # noqa: E402
from orchestrator.states import RunState, TaskState  # noqa: E402
from orchestrator.validation import parse_config  # noqa: E402
from tests.engine_harness import running  # noqa: E402

# One LocalCluster (2 worker processes, started once) serves the tests of this module that need one.
pytestmark = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(__file__).resolve().parents[1]

# Every built-in operation that can run on a worker, one that stays local (read_file), and a failure;
# ``fetch`` gets the URL of a test HTTP server.
SAME_RESULTS_DAG: dict[str, Any] = {
    "dag_name": "same_everywhere",
    "tasks": [
        {"id": "fetch", "operation": "http_request", "independent_params": {"filename": "repo.json"}},
        {"id": "data", "operation": "noop", "independent_params": {"value": {"repo": "taskflow", "stars": 42}}},
        {
            "id": "text",
            "operation": "json_to_string",
            "independent_params": {"template": "{repo}: {stars} stars", "filename": "message.txt"},
            "dependent_params": {"data": "data"},
            "dependencies": ["data"],
        },
        {
            "id": "stars",
            "operation": "select",
            "independent_params": {"path": "stars"},
            "dependent_params": {"data": "data"},
            "dependencies": ["data"],
        },
        {
            "id": "saved",
            "operation": "write_file",
            "independent_params": {"format": "text", "filename": "saved.json"},
            "dependent_params": {"content": "data"},
            "dependencies": ["data"],
        },
        {"id": "nap", "operation": "sleep", "independent_params": {"seconds": 0.05}},
        {
            "id": "cmd",
            "operation": "shell",
            "independent_params": {"command": "echo hello from $0 && echo oops >&2"},
        },
        {
            "id": "reread",
            "operation": "read_file",
            "independent_params": {"path": "message.txt"},
            "dependencies": ["text"],
        },
        {
            "id": "missing",
            "operation": "select",
            "independent_params": {"path": "forks"},
            "dependent_params": {"data": "data"},
            "dependencies": ["data"],
        },
    ],
}


# -- fixtures and helpers -------------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def cluster() -> AsyncIterator[Any]:
    """A LocalCluster of 2 single-threaded worker processes."""
    async with distributed.LocalCluster(
        asynchronous=True,
        processes=True,
        n_workers=2,
        threads_per_worker=1,
        dashboard_address=dask_executor.LOCAL_CLUSTER_HTTP,  # not 8787: a busy port there means a warning
    ) as local_cluster:
        yield local_cluster


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def probe(cluster: Any) -> AsyncIterator[Any]:
    """A client of the test's own, to look at the workers."""
    async with distributed.Client(cluster, asynchronous=True, set_as_default=False) as client:
        yield client


@pytest.fixture
def dask_settings(settings: Settings, cluster: Any) -> Settings:
    """Settings pointing TaskFlow at the module's cluster."""
    return settings.model_copy(update={"executor": "dask", "dask_address": cluster.scheduler_address})


async def busy_workers(probe: Any) -> dict[str, int]:
    """How many tasks each worker is executing right now."""
    counts = await probe.run(lambda dask_worker: len(dask_worker.active_keys))
    return {addr: n for addr, n in counts.items() if n}


async def wait_for(predicate: Any, within: float, what: str) -> Any:
    """Poll an async predicate until it returns something truthy."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if value := await predicate():
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def run_files(report: RunReport, settings: Settings) -> dict[str, bytes]:
    """The run folder's files the tasks wrote (not the log and report, which hold times)."""
    folder = settings.runs_dir / f"dag_{report.run.run_id}"
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.name not in ("run.log", "run.json")}


def run_log(report: RunReport, settings: Settings) -> str:
    """The run's ``run.log``."""
    return (settings.runs_dir / f"dag_{report.run.run_id}" / "run.log").read_text(encoding="utf-8")


# -- tests ----------------------------------------------------------------------------------


async def test_without_the_extra_the_error_names_it(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dask_executor, "distributed", None)  # as if `distributed` were not installed
    with pytest.raises(TaskFlowError) as caught:
        make_executor(settings.model_copy(update={"executor": "dask"}))
    assert str(caught.value) == MISSING_EXTRA
    assert "pip install -r requirements-dask.txt" in MISSING_EXTRA


async def test_the_own_local_cluster_has_as_many_slots_as_taskflow_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert local_cluster_shape(16) == (2, 8)  # a process per core, TASKFLOW_WORKERS slots in all
    assert local_cluster_shape(1) == (1, 1)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert local_cluster_shape(16) == (16, 1)  # never more processes than slots


async def test_an_unreachable_scheduler_fails_the_start_clearly(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dask_executor, "START_TIMEOUT_S", 1.0)
    address = f"tcp://127.0.0.1:{free_port()}"
    executor = DaskExecutor(settings.model_copy(update={"executor": "dask", "dask_address": address}))
    with pytest.raises(TaskFlowError, match=f"cannot reach the Dask scheduler at {address}"):
        await executor.start()


@pytest.mark.parametrize("address", ["foo", "bogus://127.0.0.1:1"])
async def test_a_malformed_address_fails_the_start_clearly(settings: Settings, address: str) -> None:
    executor = DaskExecutor(settings.model_copy(update={"executor": "dask", "dask_address": address}))
    with pytest.raises(TaskFlowError, match=f"cannot reach the Dask scheduler at {address}: ValueError"):
        await executor.start()


async def test_a_service_that_cannot_reach_its_scheduler_exits(tmp_path: Path) -> None:
    # The whole CLI, as a supervisor runs it: a clear line and an exit, not a hang on open resources.
    env = {
        **os.environ,
        "TASKFLOW_EXECUTOR": "dask",
        "TASKFLOW_DASK_ADDRESS": "not-an-address",
        "TASKFLOW_DATA_DIR": str(tmp_path),
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "main.py", "run", "dags/offline_report.json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "error: cannot reach the Dask scheduler at not-an-address" in done.stderr
    assert "Traceback" not in done.stderr


async def test_a_permanent_error_on_a_worker_is_not_retried(dask_settings: Settings) -> None:
    config = parse_config(
        {
            "dag_name": "no_key",
            "max_retries": 2,
            "tasks": [{"id": "pick", "operation": "select", "independent_params": {"data": {}, "path": "gone"}}],
        }
    )
    async with running(dask_settings) as orch:  # no such key: refused on the worker for good
        report = await asyncio.wait_for(orch.run(config), 30)
    assert report.state == RunState.FAILED
    assert report.tasks["pick"].attempts == 1
    assert "key 'gone' not found" in (report.tasks["pick"].error or "")
    assert "ran on Dask worker" in run_log(report, dask_settings)


async def test_a_dag_gives_the_same_results_on_a_local_cluster(settings: Settings, tmp_path: Path) -> None:
    reports: dict[str, RunReport] = {}
    runs: dict[str, Settings] = {}
    async with json_server({"repo": "taskflow", "stars": 42}) as url:
        fetch = {**SAME_RESULTS_DAG["tasks"][0], "independent_params": {"url": url, "filename": "repo.json"}}
        config = parse_config({**SAME_RESULTS_DAG, "tasks": [fetch, *SAME_RESULTS_DAG["tasks"][1:]]})
        for executor in ("local", "dask"):  # no address: the Dask executor starts a LocalCluster of its own
            runs[executor] = settings.model_copy(
                update={"executor": executor, "data_dir": tmp_path / executor, "allow_shell": True}
            )
            async with running(runs[executor]) as orch:
                reports[executor] = await orch.run(config)
    local, remote = reports["local"], reports["dask"]
    assert remote.state == local.state == RunState.FAILED  # `missing` fails, everywhere alike
    assert {t: (r.state, r.error, r.attempts) for t, r in remote.tasks.items()} == {
        t: (r.state, r.error, r.attempts) for t, r in local.tasks.items()
    }
    assert remote.tasks["missing"].error.startswith("path 'forks'")
    # Same output files, byte for byte.
    local_files, remote_files = run_files(local, runs["local"]), run_files(remote, runs["dask"])
    assert sorted(remote_files) == sorted(local_files)
    assert remote_files == local_files
    assert b'"stdout": "hello from /bin/sh\\n"' in remote_files["cmd.json"]
    # Remote tasks ran on workers, their log lines came back; read_file ran here.
    log = run_log(remote, runs["dask"])
    assert "cmd shell: echo hello" in log
    assert json.loads(remote_files["repo.json"]) == {"repo": "taskflow", "stars": 42}
    assert f"fetch GET {url}" in log
    for task_id in ("fetch", "data", "text", "stars", "saved", "nap", "cmd", "missing"):
        assert f" {task_id} ran on Dask worker tcp://127.0.0.1:" in log, task_id
    assert " reread ran on Dask worker" not in log


async def test_a_worker_killed_mid_task_does_not_fail_the_run(dask_settings: Settings, probe: Any) -> None:
    config = parse_config(
        {
            "dag_name": "survivor",
            "tasks": [
                {"id": "slow", "operation": "sleep", "independent_params": {"seconds": 1.5}},
                {"id": "after", "operation": "noop", "dependencies": ["slow"]},
            ],
        }
    )
    async with running(dask_settings) as orch:
        run_id = await orch.submit(config)
        victim = await kill_the_busy_worker(probe)
        report = await asyncio.wait_for(orch.wait(run_id), 30)
    assert report.state == RunState.SUCCESS
    assert report.tasks["slow"].attempts == 1  # Dask ran it again elsewhere; not a failed attempt
    ran_on = run_log(report, dask_settings).split(" slow ran on Dask worker ")[1].split()[0]
    assert ran_on != victim
    await probe.wait_for_workers(2, timeout=30)  # the nanny restarts it; the next tests get both back


async def test_a_task_whose_workers_keep_dying_is_a_failed_attempt(
    dask_settings: Settings, cluster: Any, probe: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cluster.scheduler, "allowed_failures", 0)  # one death is enough for KilledWorker
    config = parse_config(
        {
            "dag_name": "cursed",
            "tasks": [{"id": "slow", "operation": "sleep", "independent_params": {"seconds": 1}, "max_retries": 1}],
        }
    )
    async with running(dask_settings) as orch:
        run_id = await orch.submit(config)
        await kill_the_busy_worker(probe)
        report = await asyncio.wait_for(orch.wait(run_id), 30)
    assert report.state == RunState.SUCCESS
    assert report.tasks["slow"].attempts == 2  # the KilledWorker attempt failed, the retry succeeded
    assert "failed after" in run_log(report, dask_settings)
    assert "the Dask workers running it died (KilledWorker" in run_log(report, dask_settings)
    await probe.wait_for_workers(2, timeout=30)


async def test_a_hanging_task_is_timed_out_and_stopped_on_its_worker(dask_settings: Settings, probe: Any) -> None:
    config = parse_config(
        {
            "dag_name": "hang",
            "tasks": [
                {"id": "hang", "operation": "sleep", "independent_params": {"seconds": 60}, "timeout": 0.5},
                {"id": "fine", "operation": "noop", "independent_params": {"value": 1}},
            ],
        }
    )
    async with running(dask_settings) as orch:
        report = await asyncio.wait_for(orch.run(config), 20)
        assert report.tasks["hang"].state == TaskState.FAILED
        assert report.tasks["hang"].error == "timed out after 0.5s"
        assert report.tasks["fine"].state == TaskState.SUCCESS
        # The coroutine does not go on sleeping on the worker once the attempt is given up.
        await wait_for(lambda: _idle(probe), 5, "the worker to stop the abandoned task")


async def test_a_cancelled_run_stops_its_task_on_the_worker(dask_settings: Settings, probe: Any) -> None:
    config = parse_config(
        {"dag_name": "cancelme", "tasks": [{"id": "long", "operation": "sleep", "independent_params": {"seconds": 60}}]}
    )
    async with running(dask_settings) as orch:
        run_id = await orch.submit(config)
        await wait_for(lambda: busy_workers(probe), 10, "the task to start on a worker")
        await orch.cancel(run_id)
        report = await asyncio.wait_for(orch.wait(run_id), 10)
        assert report.state == RunState.CANCELLED
        await wait_for(lambda: _idle(probe), 5, "the worker to stop the cancelled task")


async def test_the_worker_enforces_the_task_timeout_itself(dask_settings: Settings, tmp_path: Path) -> None:
    # No engine around it here: only the worker-side timeout can end this attempt.
    executor = DaskExecutor(dask_settings)
    await executor.start()
    lines: list[str] = []
    logger = logging.Logger("test.remote")
    logger.addHandler(_ListHandler(lines))
    op = get_operation("sleep")
    assert op is not None
    ctx = OperationContext(1, "t", "hang", 1, tmp_path, logger, Resources(), timeout=0.5)
    started = time.perf_counter()
    try:
        # (The outer 10 s only keeps a broken executor from holding the test for a minute.)
        with pytest.raises(TimeoutError, match=r"^timed out after 0\.5s$"):
            async with asyncio.timeout(10):
                await executor.execute(op, op.params_model(seconds=60), ctx)
    finally:
        await executor.close()
    assert time.perf_counter() - started < 5
    assert any(line.startswith("ran on Dask worker tcp://") for line in lines)


async def test_a_killed_scheduler_does_not_lose_the_run(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A short connect timeout: the client gives up on the dead scheduler quickly and the executor
    # has to connect again by itself, which is the path a long outage takes.
    monkeypatch.setattr(dask_executor, "START_TIMEOUT_S", 2.0)
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    marker = tmp_path / "started"
    config = parse_config(
        {
            "dag_name": "outage",
            "tasks": [
                {"id": "work", "operation": "shell", "independent_params": {"command": f"touch {marker}; sleep 1"}},
                {"id": "after", "operation": "noop", "dependencies": ["work"]},
            ],
        }
    )
    update = {"executor": "dask", "dask_address": address, "allow_shell": True}
    with cluster_processes(tmp_path) as spawn:
        scheduler = spawn("scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard")
        spawn("worker", address, "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1")
        await wait_for(lambda: _listening(port), 20, "the scheduler to listen")
        async with running(settings.model_copy(update=update)) as orch:
            run_id = await orch.submit(config)
            await wait_for(lambda: _exists(marker), 20, "the task to start on the worker")
            scheduler.kill()  # SIGKILL, mid-task
            await asyncio.sleep(3)  # longer than the client's own reconnect window
            assert orch.is_active(run_id)
            assert (await orch.report(run_id)).tasks["work"].state != TaskState.FAILED
            spawn("scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard")
            spawn("worker", address, "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1")
            report = await asyncio.wait_for(orch.wait(run_id), 40)
    assert report.state == RunState.SUCCESS
    # The lost attempt and the one that ran; the refusals while no scheduler answered are no attempts.
    assert report.tasks["work"].attempts == 2
    assert report.tasks["work"].failures == 0
    log = run_log(report, settings.model_copy(update=update))
    assert "lost the attempt" in log


async def test_a_cluster_without_taskflow_fails_the_task_saying_so(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    config = parse_config({"dag_name": "alien", "tasks": [{"id": "t", "operation": "noop", "max_retries": 2}]})
    with cluster_processes(tmp_path) as spawn:
        # The scheduler already unpickles the task (no worker needed to see it fail).
        spawn("scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard", taskflow=False)
        await wait_for(lambda: _listening(port), 20, "the scheduler to listen")
        async with running(settings.model_copy(update={"executor": "dask", "dask_address": address})) as orch:
            report = await asyncio.wait_for(orch.run(config), 30)
    task = report.tasks["t"]
    assert task.state == TaskState.FAILED
    assert task.attempts == 1  # permanent: retrying cannot help
    assert "cannot import TaskFlow (ModuleNotFoundError: No module named 'orchestrator')" in task.error
    assert "PYTHONPATH" in task.error


# -- small helpers ----------------------------------------------------------------------------


class _ListHandler(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


async def kill_the_busy_worker(probe: Any) -> str:
    """SIGKILL the worker process running a task (once one does); its address."""
    busy = await wait_for(lambda: busy_workers(probe), 10, "a task to start on a worker")
    (victim,) = busy
    pids = await probe.run(os.getpid, workers=[victim])
    os.kill(pids[victim], signal.SIGKILL)
    return str(victim)


@contextlib.asynccontextmanager
async def json_server(payload: Any) -> AsyncIterator[str]:
    """An HTTP server on 127.0.0.1 answering ``payload`` as JSON; yields its URL."""

    async def answer(request: web.Request) -> web.Response:
        return web.json_response(payload)

    app = web.Application()
    app.router.add_get("/repo", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}/repo"
    finally:
        await runner.cleanup()


async def _idle(probe: Any) -> bool:
    return not await busy_workers(probe)


async def _exists(path: Path) -> bool:
    return await asyncio.to_thread(path.exists)


async def _listening(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class cluster_processes:
    """``with cluster_processes(tmp) as spawn: spawn("scheduler", ...)``: `dask` CLI processes, all ended on exit."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Any:
        return self.spawn

    def spawn(self, *args: str, taskflow: bool = True) -> subprocess.Popen[bytes]:
        """Start ``dask <args>``, with TaskFlow importable unless told not to.

        Both the scheduler and the workers unpickle TaskFlow's task wrapper.
        """
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        if taskflow:
            env["PYTHONPATH"] = str(ROOT)
        out = (self.log_dir / f"{args[0]}-{len(self.procs)}.log").open("wb")
        with out:
            proc = subprocess.Popen([sys.executable, "-m", "dask", *args], env=env, stdout=out, stderr=out)
        self.procs.append(proc)
        return proc

    def __exit__(self, *exc: object) -> None:
        for proc in reversed(self.procs):  # workers first, then schedulers
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def test_secrets_travel_with_the_attempt_and_come_back_masked(
    dask_settings: Settings, probe: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "dask-s3cr3t-value"  # pragma: allowlist secret
    monkeypatch.setenv("TASKFLOW_SECRET_K", secret)  # in this process only: the workers started before
    assert set((await probe.run(lambda: os.environ.get("TASKFLOW_SECRET_K"))).values()) == {None}
    config = parse_config(
        {
            "dag_name": "remote_secret",
            "tasks": [
                {"id": "echo", "operation": "noop", "independent_params": {"value": "key={{ secrets.K }}"}},
                {"id": "miss", "operation": "select", "independent_params": {"data": {}, "path": "{{ secrets.K }}"}},
            ],
        }
    )
    async with running(dask_settings) as orch:
        report = await asyncio.wait_for(orch.run(config), 30)
    assert report.tasks["echo"].state == TaskState.SUCCESS
    assert run_files(report, dask_settings)["echo.txt"] == b"key=***"  # resolved on the worker, masked back here
    assert "key '***' not found" in (report.tasks["miss"].error or "")
    log = run_log(report, dask_settings)
    assert "ran on Dask worker" in log
    assert secret not in log
