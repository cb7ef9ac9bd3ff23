"""The wheel: built from the checkout, installed into a fresh venv, run from outside the checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with TaskFlow's wheel installed; its dependencies come from the test environment."""
    root = tmp_path_factory.mktemp("packaging")
    leftovers = [REPO / "build", REPO / "taskflow.egg-info"]
    existed = {path for path in leftovers if path.exists()}
    built = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", root, REPO, cwd=root)
    for path in set(leftovers) - existed:  # setuptools builds inside the checkout: leave it as it was
        shutil.rmtree(path, ignore_errors=True)
    assert built.returncode == 0, built.stderr
    (wheel,) = root.glob("taskflow-*.whl")
    venv = root / "venv"
    assert _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=root).returncode == 0
    python = venv / "bin" / "python"
    installed = _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", wheel, cwd=root)
    assert installed.returncode == 0, installed.stderr
    # Like --system-site-packages, but onto this environment's packages (aiohttp, aiogram, ...).
    site = _run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=root).stdout.strip()
    Path(site, "test-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv


def test_the_installed_command_validates_and_runs_a_shipped_dag_outside_the_checkout(
    venv: Path, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKFLOW_", "TELEGRAM_", "PYTHON"))}
    env["TASKFLOW_DATA_DIR"] = str(tmp_path)
    taskflow = venv / "bin" / "taskflow"
    examples = _run(taskflow, "examples", cwd=tmp_path, env=env)
    assert examples.returncode == 0, examples.stderr
    shipped = Path(next(line for line in examples.stdout.splitlines() if line.endswith("offline_report.json")))
    assert shipped.is_relative_to(venv)  # the wheel's copy, not the checkout's
    where = _run(venv / "bin" / "python", "-c", "import web, orchestrator; print(web.__file__)", cwd=tmp_path, env=env)
    assert Path(where.stdout.strip()).is_relative_to(venv)

    validated = _run(taskflow, "validate", shipped, cwd=tmp_path, env=env)
    assert validated.returncode == 0, validated.stderr
    assert "is valid: DAG 'offline_report'" in validated.stdout
    ran = _run(taskflow, "run", shipped, "--no-progress", cwd=tmp_path, env=env)
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout.strip().splitlines()[-1])
    assert result["state"] == "success"
    assert (tmp_path / "dag" / f"dag_{result['run_id']}.zip").is_file()
