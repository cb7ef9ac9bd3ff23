"""``python main.py`` sub-commands, run as real processes on a temporary data dir."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
FOURDIAC = REPO / "tests" / "data" / "4diac"


def cli(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``main.py`` from the repo root with its data in ``data_dir`` and no bot or tokens."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "TASKFLOW_"))}
    clean.update({"TASKFLOW_DATA_DIR": str(data_dir), "COLUMNS": "250", "PYTHONIOENCODING": "utf-8", **env})
    return subprocess.run(
        [sys.executable, "main.py", *args],
        cwd=REPO,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def write(path: Path, content: str | dict[str, Any]) -> str:
    path.write_text(content if isinstance(content, str) else json.dumps(content, indent=2), encoding="utf-8")
    return str(path)


def last_json_line(stdout: str) -> dict[str, Any]:
    return json.loads(stdout.strip().splitlines()[-1])


# -- validate ---------------------------------------------------------------------------------


def test_validate_a_good_file(tmp_path: Path) -> None:
    result = cli(tmp_path, "validate", "dags/offline_report.json")
    assert result.returncode == 0, result.stderr
    assert "dags/offline_report.json is valid: DAG 'offline_report' with 5 task(s)" in result.stdout


BAD_FILES: dict[str, tuple[str | dict[str, Any], list[str]]] = {
    "invalid_json": (
        '{\n  "dag_name": "x",\n  "tasks": [,]\n}\n',
        ["line 3, column 13: invalid JSON"],
    ),
    "many_problems": (
        {
            "dag_name": "many",
            "tasks": [
                {"id": "fetch", "operation": "noop", "independent_params": {"filename": "../out.json"}},
                {"id": "use", "operation": "noop", "dependencies": ["fecth"]},
                {"id": "use", "operation": "teleport"},
                {"id": "pick", "operation": "select", "dependent_params": {"data": "fetch"}, "bogus": 1},
            ],
        },
        [
            "tasks[0].independent_params.filename (fetch): filename '../out.json' must be a plain name",
            "tasks[1].dependencies (use): unknown task 'fecth'",
            "tasks[2].id (use): duplicate task id 'use' (also tasks[1])",
            "tasks[2].operation (use): unknown operation 'teleport'",
            "tasks[3].bogus (pick): unknown field",
            "tasks[3].dependent_params.data (pick): task 'fetch' is not upstream of 'pick'",
        ],
    ),
    "cycle": (
        {
            "dag_name": "loop",
            "tasks": [
                {"id": "alpha", "operation": "noop", "dependencies": ["gamma"]},
                {"id": "beta", "operation": "noop", "dependencies": ["alpha"]},
                {"id": "gamma", "operation": "noop", "dependencies": ["beta"]},
                {"id": "free", "operation": "noop"},
            ],
        },
        ["tasks: dependency cycle: "],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_validate_bad_files_reports_every_problem(tmp_path: Path, case: str) -> None:
    content, expected = BAD_FILES[case]
    path = write(tmp_path / f"{case}.json", content)
    result = cli(tmp_path, "validate", path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"{path} is invalid")
    for line in expected:
        assert line in result.stderr, f"{line!r} missing from:\n{result.stderr}"
    if case == "many_problems":
        assert "(6 problem(s))" in result.stderr
    if case == "cycle":
        cycle_line = next(line for line in result.stderr.splitlines() if "dependency cycle" in line)
        for task in ("alpha", "beta", "gamma"):
            assert task in cycle_line
        assert "free" not in cycle_line


def test_validate_and_run_refuse_a_missing_file(tmp_path: Path) -> None:
    for command in ("validate", "run", "import-4diac"):
        result = cli(tmp_path, command, "no/such/file.json")
        assert result.returncode == 1, command
        assert result.stderr.strip() == "error: no/such/file.json: no such file"
    assert not (tmp_path / "dag").exists() or not any((tmp_path / "dag").iterdir())


# -- schema -----------------------------------------------------------------------------------


def test_schema_prints_the_json_schema(tmp_path: Path) -> None:
    result = cli(tmp_path, "schema")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert "tasks" in schema["properties"]
    assert {"dag_name", "tasks"} <= set(schema["required"])


# -- run --------------------------------------------------------------------------------------


def test_run_the_offline_report(tmp_path: Path) -> None:
    result = cli(tmp_path, "run", "dags/offline_report.json", "--no-progress")
    assert result.returncode == 0, result.stderr
    summary = last_json_line(result.stdout)
    assert summary["state"] == "success"
    run_id = summary["run_id"]
    assert isinstance(run_id, int)
    archive = Path(summary["archive"])
    assert archive == tmp_path / "dag" / f"dag_{run_id}.zip"
    assert archive.is_file()

    with zipfile.ZipFile(archive) as zf:
        assert zf.testzip() is None
        names = set(zf.namelist())
        manifest = json.loads(zf.read("manifest.json"))
        assert manifest["run_id"] == run_id
        assert set(manifest["files"]) == names - {"manifest.json"}
        assert {"config.json", "run.json", "run.log", "inventory.json", "summary.txt", "report.txt"} <= names
        for name, entry in manifest["files"].items():
            data = zf.read(name)
            assert hashlib.sha256(data).hexdigest() == entry["sha256"], name
            assert len(data) == entry["bytes"], name
        assert zf.read("report.txt").decode() == "apples: 42 in stock"
        run_json = json.loads(zf.read("run.json"))
    assert run_json["state"] == "success"
    assert {t["state"] for t in run_json["tasks"].values()} == {"success"}
    # The state lives on in the database under the data dir.
    assert (tmp_path / "taskflow.db").is_file()


FAILING_DAG = {
    "dag_name": "fails",
    "tasks": [
        {"id": "inv", "operation": "noop", "independent_params": {"value": {"items": [1, 2]}}},
        {
            "id": "pick",
            "operation": "select",
            "independent_params": {"path": "items.9"},
            "dependent_params": {"data": "inv"},
            "dependencies": ["inv"],
        },
        {"id": "after", "operation": "noop", "dependencies": ["pick"]},
    ],
}


def test_run_a_failing_dag(tmp_path: Path) -> None:
    path = write(tmp_path / "fails.json", FAILING_DAG)
    result = cli(tmp_path, "run", path, "--no-progress")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    summary = last_json_line(result.stdout)
    assert summary["state"] == "failed"
    assert Path(summary["archive"]).is_file()
    assert "error: task 'pick' failed: path 'items.9': index 9 out of range for 2 items" in result.stderr
    run_json = json.loads((tmp_path / "dag" / f"dag_{summary['run_id']}" / "run.json").read_text())
    assert run_json["tasks"]["after"]["state"] == "upstream_failed"


def test_run_an_invalid_file_runs_nothing(tmp_path: Path) -> None:
    content, _ = BAD_FILES["cycle"]
    result = cli(tmp_path, "run", write(tmp_path / "cycle.json", content), "--no-progress")
    assert result.returncode == 1
    assert "dependency cycle" in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "dag").exists() or not any((tmp_path / "dag").iterdir())


@pytest.mark.parametrize("key", ["[/x]", "[error]"])
def test_run_prints_errors_with_brackets_verbatim(tmp_path: Path, key: str) -> None:
    config = {
        "dag_name": "brackets",
        "tasks": [{"id": "pick", "operation": "select", "independent_params": {"data": {}, "path": key}}],
    }
    result = cli(tmp_path, "run", write(tmp_path / "brackets.json", config), "--no-progress")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"error: task 'pick' failed: path '{key}': key '{key}' not found" in result.stderr


# -- import-4diac -----------------------------------------------------------------------------


def test_import_4diac_prints_a_valid_config(tmp_path: Path) -> None:
    result = cli(tmp_path, "import-4diac", str(FOURDIAC / "pipeline.sys"))
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert config["dag_name"] == "GithubStars"
    assert [t["id"] for t in config["tasks"]] == ["Fetch", "ToText", "Send"]
    assert [t["operation"] for t in config["tasks"]] == ["http_request", "json_to_string", "telegram_send"]

    imported = write(tmp_path / "imported.json", result.stdout)
    check = cli(tmp_path, "validate", imported)
    assert check.returncode == 0, check.stderr
    assert "is valid: DAG 'GithubStars' with 3 task(s)" in check.stdout


def test_import_4diac_of_a_broken_file(tmp_path: Path) -> None:
    result = cli(tmp_path, "import-4diac", str(FOURDIAC / "broken.sys"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("broken.sys is invalid (6 problem(s)):")
    assert "FB 'Client': CLIENT_1 is a communication block" in result.stderr
    assert "'Ghost.REQ' names no block" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("run_id", ["99999999999999999999", "0", "-3"])
def test_rerun_of_an_impossible_run_id_says_it_does_not_exist(tmp_path: Path, run_id: str) -> None:
    result = cli(tmp_path, "rerun", "--", run_id)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == f"error: run {int(run_id)} does not exist"


def test_validate_refuses_shell_unless_it_is_allowed(tmp_path: Path) -> None:
    task = {"id": "alpha", "operation": "shell", "independent_params": {"command": "true"}}
    config = {"dag_name": "sh", "tasks": [task]}
    path = write(tmp_path / "sh.json", config)
    refused = cli(tmp_path, "validate", path)
    assert refused.returncode == 1
    assert (
        "tasks[0].operation (alpha): the shell operation is disabled; set TASKFLOW_ALLOW_SHELL=1 to allow it"
        in refused.stderr
    )
    allowed = cli(tmp_path, "validate", path, TASKFLOW_ALLOW_SHELL="1")
    assert allowed.returncode == 0, allowed.stderr


# -- the command line's manners ----------------------------------------------------------------


def test_the_report_starts_on_a_line_of_its_own_without_a_terminal(tmp_path: Path) -> None:
    result = cli(tmp_path, "run", "dags/offline_report.json")  # the live display on, stderr a pipe
    assert result.returncode == 0, result.stderr
    run_id = last_json_line(result.stdout)["run_id"]
    title = f"run {run_id} of offline_report: success"
    [line] = [line for line in result.stderr.splitlines() if title in line]
    assert line.strip() == title, "the table's title is not glued to the last progress line"


def test_a_reader_going_away_ends_a_command_quietly(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "TASKFLOW_"))}
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will ever read: the first write fails with EPIPE
    try:
        result = subprocess.run(
            [sys.executable, "main.py", "schema"],
            cwd=REPO,
            env={**clean, "TASKFLOW_DATA_DIR": str(tmp_path)},
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert result.stderr == ""
    assert result.returncode == 141  # as a command killed by SIGPIPE


def test_a_python_without_the_packages_says_which_command_to_use(tmp_path: Path) -> None:
    # -S: no site-packages, as a system Python outside .venv; -E -s: no environment variables or user site.
    result = subprocess.run(
        [sys.executable, "-E", "-s", "-S", "main.py", "schema"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.endswith(
        "is not installed for " + sys.executable + ": run `make run`, or `.venv/bin/python main.py ...`"
    )
