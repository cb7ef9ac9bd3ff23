"""Crash recovery and re-run with real processes: SIGKILL mid-run, then resume; re-run from failure."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def cli(data_dir: Path, *args: str, env_extra: dict[str, str] | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKFLOW_", "TELEGRAM_"))}
    env["TASKFLOW_DATA_DIR"] = str(data_dir)
    env.update(env_extra or {})
    return subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), *args],
        cwd=data_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def query(data_dir: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(data_dir / "taskflow.db")
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except sqlite3.OperationalError:
            pass  # the database or its tables do not exist yet
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def runs_started(data_dir: Path, task_id: str) -> int:
    rows = query(data_dir, "SELECT COUNT(*) FROM events WHERE task_id = ? AND state = 'running'", task_id)
    return int(rows[0][0])


def write_dag(data_dir: Path, config: dict[str, Any]) -> Path:
    path = data_dir / "dag.json"
    path.write_text(json.dumps(config))
    return path


def test_sigkill_mid_run_then_resume_finishes_without_redoing_successes(tmp_path: Path) -> None:
    dag = write_dag(
        tmp_path,
        {
            "dag_name": "crashy",
            "tasks": [
                {"id": "first", "operation": "noop", "independent_params": {"value": {"n": 41}}},
                {"id": "slow", "operation": "sleep", "independent_params": {"seconds": 1.5}, "dependencies": ["first"]},
                {
                    "id": "last",
                    "operation": "select",
                    "independent_params": {"path": "n"},
                    "dependent_params": {"data": "first"},
                    "dependencies": ["slow"],
                },
            ],
        },
    )
    proc = cli(tmp_path, "run", str(dag), "--no-progress")
    try:
        wait_for(lambda: runs_started(tmp_path, "slow") == 1)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert query(tmp_path, "SELECT state FROM runs WHERE run_id = 1") == [("running",)]
    assert query(tmp_path, "SELECT state FROM task_instances WHERE task_id = 'first'") == [("success",)]

    resume = cli(tmp_path, "resume")
    out, err = resume.communicate(timeout=30)
    assert resume.returncode == 0, err
    assert "run 1 (crashy): success" in out
    assert runs_started(tmp_path, "first") == 1  # its success was kept, not executed again
    assert runs_started(tmp_path, "slow") == 2  # it was in flight: run again
    assert query(tmp_path, "SELECT state FROM task_instances ORDER BY position") == [("success",)] * 3
    interrupted = query(tmp_path, "SELECT error FROM events WHERE task_id = 'slow' AND state = 'pending'")
    assert interrupted == [("interrupted by a restart; runs again",)]
    folder = tmp_path / "dag" / "dag_1"
    assert json.loads((folder / "last.json").read_text()) == 41
    assert json.loads((folder / "run.json").read_text())["state"] == "success"
    with zipfile.ZipFile(tmp_path / "dag" / "dag_1.zip") as zf:
        assert {"config.json", "first.json", "last.json", "run.json", "run.log", "manifest.json"} <= set(zf.namelist())


def test_resume_with_nothing_to_do(tmp_path: Path) -> None:
    proc = cli(tmp_path, "resume")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "no unfinished runs" in out


def test_rerun_from_failure_keeps_successes(tmp_path: Path) -> None:
    dag = write_dag(
        tmp_path,
        {
            "dag_name": "needs_input",
            "tasks": [
                {"id": "first", "operation": "noop", "independent_params": {"value": "kept"}},
                {
                    "id": "read",
                    "operation": "read_file",
                    "independent_params": {"path": "input.txt"},
                    "dependencies": ["first"],
                },
                {"id": "after", "operation": "noop", "dependencies": ["read"]},
            ],
        },
    )
    failed = cli(tmp_path, "run", str(dag), "--no-progress")
    out, err = failed.communicate(timeout=30)
    assert failed.returncode == 1
    assert json.loads(out.strip().splitlines()[-1])["state"] == "failed"
    assert "file 'input.txt' does not exist in the run folder" in err

    (tmp_path / "dag" / "dag_1" / "input.txt").write_text("now it exists")
    rerun = cli(tmp_path, "rerun", "1")
    out, err = rerun.communicate(timeout=30)
    assert rerun.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1]) == {
        "run_id": 1,
        "state": "success",
        "archive": str(tmp_path / "dag" / "dag_1.zip"),
    }
    assert runs_started(tmp_path, "first") == 1
    assert runs_started(tmp_path, "read") == 2
    assert (tmp_path / "dag" / "dag_1" / "read.txt").read_text() == "now it exists"


@pytest.mark.parametrize("run_id", ["1", "abc"])
def test_rerun_refuses_what_it_cannot_rerun(tmp_path: Path, run_id: str) -> None:
    proc = cli(tmp_path, "rerun", run_id)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert "Traceback" not in err
    assert ("run 1 does not exist" in err) if run_id == "1" else ("invalid int value" in err)


def start_service(data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    """``python main.py`` on a random port; returns the process and its base URL once it listens."""
    proc = cli(data_dir, env_extra={"TASKFLOW_PORT": "0"})
    assert proc.stderr is not None
    for line in proc.stderr:
        if "web server listening on" in line:
            address = line.split("listening on ")[1].split()[0]
            return proc, f"http://{address}"
    raise AssertionError(f"the service did not start: {proc.communicate(timeout=5)}")


def post_json(url: str, body: dict[str, Any]) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def test_the_service_resumes_runs_after_sigkill(tmp_path: Path) -> None:
    config = {
        "dag_name": "served",
        "tasks": [
            {"id": "first", "operation": "noop", "independent_params": {"value": 1}},
            {"id": "slow", "operation": "sleep", "independent_params": {"seconds": 1.0}, "dependencies": ["first"]},
            {"id": "last", "operation": "noop", "independent_params": {"value": "done"}, "dependencies": ["slow"]},
        ],
    }
    service, base = start_service(tmp_path)
    try:
        answer = post_json(f"{base}/api/web", config)
        assert answer["url"].endswith(f"/runs/{answer['run_id']}")
        wait_for(lambda: runs_started(tmp_path, "slow") == 1)
        service.send_signal(signal.SIGKILL)
    finally:
        service.communicate(timeout=10)

    service, base = start_service(tmp_path)  # the next start finishes the run
    try:
        wait_for(lambda: query(tmp_path, "SELECT state FROM runs WHERE run_id = 1") == [("success",)])
        with urllib.request.urlopen(f"{base}/api/runs/1", timeout=10) as response:
            run = json.loads(response.read())
    finally:
        service.send_signal(signal.SIGTERM)
        _, err = service.communicate(timeout=20)
    assert service.returncode == 0, err
    assert "Traceback" not in err
    assert run["state"] == "success"
    assert [t["state"] for t in run["tasks"]] == ["success"] * 3
    assert runs_started(tmp_path, "first") == 1
    assert runs_started(tmp_path, "slow") == 2
    assert (tmp_path / "dag" / "dag_1.zip").is_file()


def stop(service: subprocess.Popen[str]) -> str:
    """SIGTERM the service; what it logged."""
    service.send_signal(signal.SIGTERM)
    _, err = service.communicate(timeout=20)
    assert service.returncode == 0, err
    return err


def test_commands_hand_their_runs_to_the_service_that_owns_the_database(tmp_path: Path) -> None:
    good = write_dag(tmp_path, {"dag_name": "handed", "tasks": [{"id": "a", "operation": "noop"}]})
    greet = tmp_path / "greet.json"
    greet.write_text(
        json.dumps(
            {
                "dag_name": "greet",
                "params": {"who": None},
                "tasks": [{"id": "a", "operation": "noop", "independent_params": {"value": "hello {{ params.who }}"}}],
            }
        )
    )
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "dag_name": "broken",
                "tasks": [{"id": "a", "operation": "read_file", "independent_params": {"path": "nope.txt"}}],
            }
        )
    )
    service, base = start_service(tmp_path)
    try:
        run = cli(tmp_path, "run", str(good))
        out, err = run.communicate(timeout=60)
        assert run.returncode == 0, err
        assert f"the service at {base} owns" in err
        assert json.loads(out.strip().splitlines()[-1])["state"] == "success"
        assert "run 1 of handed: success" in err  # the same report table as a local run
        failing = cli(tmp_path, "run", str(bad), "--no-progress")
        out, err = failing.communicate(timeout=60)
        assert failing.returncode == 1, err
        assert json.loads(out.strip().splitlines()[-1])["state"] == "failed"
        rerun = cli(tmp_path, "rerun", "2")
        out, err = rerun.communicate(timeout=60)
        assert rerun.returncode == 1, err  # it fails again, run by the service
        assert json.loads(out.strip().splitlines()[-1])["run_id"] == 2
        resume = cli(tmp_path, "resume")
        out, _ = resume.communicate(timeout=60)
        assert resume.returncode == 0
        assert "resumes unfinished runs itself" in out
        with_params = cli(tmp_path, "run", str(greet), "--no-progress", "-p", "who=Ada")
        out, err = with_params.communicate(timeout=60)
        assert with_params.returncode == 0, err
    finally:
        err = stop(service)
    assert "Traceback" not in err
    assert query(tmp_path, "SELECT run_id, state, params FROM runs ORDER BY run_id") == [
        (1, "success", None), (2, "failed", None), (3, "success", '{"who": "Ada"}'),
    ]  # fmt: skip
    assert (tmp_path / "dag" / "dag_3" / "a.txt").read_text() == "hello Ada"
    assert (tmp_path / "dag" / "dag_1.zip").is_file()


def test_a_second_service_on_the_same_database_refuses_to_start(tmp_path: Path) -> None:
    service, base = start_service(tmp_path)
    try:
        second = cli(tmp_path, env_extra={"TASKFLOW_PORT": "0"})
        _, err = second.communicate(timeout=30)
    finally:
        stop(service)
    assert second.returncode == 1
    assert f"is in use by the TaskFlow service (pid {service.pid}) at {base}" in err
    assert "Traceback" not in err


def _layered(count: int, width: int, seconds: float) -> dict[str, Any]:
    tasks = []
    for i in range(count):
        layer_start = (i // width - 1) * width
        deps = [f"t{layer_start + (i + k) % width:03d}" for k in (0, 1)] if i >= width else []
        tasks.append(
            {"id": f"t{i:03d}", "operation": "sleep", "independent_params": {"seconds": seconds}, "dependencies": deps}
        )
    return {"dag_name": "kill_loop", "tasks": tasks}


def test_a_service_killed_ten_times_during_a_run_finishes_it_without_repeating_a_success(tmp_path: Path) -> None:
    rng = random.Random(7)
    service, base = start_service(tmp_path)
    post_json(f"{base}/api/web", _layered(300, 30, 0.05))
    for _ in range(10):
        time.sleep(rng.uniform(0.05, 0.4))
        service.send_signal(signal.SIGKILL)
        service.communicate(timeout=10)
        service, base = start_service(tmp_path)
    try:
        wait_for(lambda: query(tmp_path, "SELECT state FROM runs WHERE run_id = 1") == [("success",)], 60)
    finally:
        stop(service)
    # A success committed is never followed by another start of the same task.
    events = query(tmp_path, "SELECT task_id, state FROM events WHERE task_id IS NOT NULL ORDER BY batch, seq")
    succeeded: set[str] = set()
    for task_id, state in events:
        assert task_id not in succeeded, f"{task_id} went {state} after its success"
        if state == "success":
            succeeded.add(task_id)
    assert len(succeeded) == 300
    assert query(tmp_path, "SELECT COUNT(*) FROM task_instances WHERE state = 'success'") == [(300,)]
    kills = query(tmp_path, "SELECT COUNT(*) FROM events WHERE task_id IS NULL AND state = 'running'")[0][0]
    assert kills > 1  # the run was really interrupted (started again after kills)
    with zipfile.ZipFile(tmp_path / "dag" / "dag_1.zip") as zf:
        files = json.loads(zf.read("manifest.json"))["files"]
        assert set(files) == set(zf.namelist()) - {"manifest.json"}
        for name, entry in files.items():
            assert hashlib.sha256(zf.read(name)).hexdigest() == entry["sha256"], name
