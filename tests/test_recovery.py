"""Crash recovery and re-run with real processes: SIGKILL mid-run, then resume; re-run from failure."""

from __future__ import annotations

import json
import os
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
    # Its success is in the journal, the record of transitions (task rows are brought up to it later).
    assert ("success",) in query(tmp_path, "SELECT state FROM events WHERE task_id = 'first'")

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
