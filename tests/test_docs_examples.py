"""Every curl example of the README and web/API.md, run as written against a live server."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orchestrator.engine import Orchestrator
from orchestrator.library import DagLibrary
from orchestrator.settings import Settings
from orchestrator.validation import parse_config
from web import create_app, start_site
from web.app import bound_port

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "web" / "API.md"]
DOCUMENTED_BASE = "http://127.0.0.1:5000"
FENCE = re.compile(r"```(?:sh|bash)\n(.*?)```", re.DOTALL)
# Added to each example: a bound on its time, and its HTTP status on stderr (stdout is the example's).
PROBE = "curl -m 20 -w '%{stderr}HTTP %{http_code}\\n' "

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def curl_examples() -> list[str]:
    """Each ``curl ...`` command of the docs' shell blocks, continuation lines joined."""
    commands = []
    for doc in DOCS:
        for block in FENCE.findall(doc.read_text(encoding="utf-8")):
            for command in block.replace("\\\n", " ").splitlines():
                if command.strip().startswith("curl "):
                    commands.append(command.strip())
    return commands


def offline(name: str, seconds: float = 0.0) -> dict[str, object]:
    """A stand-in DAG that touches no network (the docs' own example calls GitHub and Telegram)."""
    return {"dag_name": name, "tasks": [{"id": "a", "operation": "sleep", "independent_params": {"seconds": seconds}}]}


@pytest.fixture
async def base_url(settings: Settings, orch: Orchestrator, library: DagLibrary) -> AsyncIterator[str]:
    runner = await start_site(create_app(settings, orch, library, orch.store), settings)
    try:
        yield f"http://127.0.0.1:{bound_port(runner)}"
    finally:
        await runner.cleanup()


def test_the_docs_have_curl_examples() -> None:
    examples = curl_examples()
    assert len(examples) > 10
    assert any("api/import/4diac" in e for e in examples)


async def test_every_documented_curl_example_works(
    base_url: str, orch: Orchestrator, library: DagLibrary, tmp_path: Path
) -> None:
    work = tmp_path / "cwd"
    (work / "dags").mkdir(parents=True)
    (work / "dag_config_example.json").write_text(json.dumps(offline("github_stars_to_telegram")))
    shutil.copy(ROOT / "dags" / "offline_report.json", work / "dags")
    shutil.copy(ROOT / "tests" / "data" / "4diac" / "pipeline.sys", work / "plant.sys")
    with zipfile.ZipFile(work / "project.zip", "w") as project:  # a .sys with the type files it uses
        for file in (ROOT / "tests" / "data" / "4diac" / "greetings").iterdir():
            project.write(file, file.name)
    for name in ("github_stars_to_telegram", "offline_report"):
        await library.save(parse_config(offline(name)), source="test")
    # The examples act on run 7: make it, still going when they start.
    for n in range(1, 8):
        assert await orch.submit(parse_config(offline("github_stars_to_telegram", 3.0 if n == 7 else 0.0))) == n
    env = {**os.environ, "TF": base_url, "AUTH": "Authorization: Bearer ", "TASKFLOW_API_TOKEN": ""}

    for example in curl_examples():
        command = PROBE + example.removeprefix("curl ").replace(DOCUMENTED_BASE, base_url)
        proc = await asyncio.create_subprocess_exec(
            "bash",
            "-o",
            "pipefail",
            "-c",
            command,
            cwd=work,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        assert proc.returncode == 0, (example, err.decode())
        status = int(re.findall(r"HTTP (\d{3})", err.decode())[-1])
        # 409: cancelling or re-running run 7 depends on where it is; anything else must succeed.
        assert 200 <= status < 300 or status == 409, (example, status, out[:500])
    assert (work / "run.zip").stat().st_size > 0
