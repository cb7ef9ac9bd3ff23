"""Shared fixtures: settings on a temporary data dir, and a running orchestrator over a real SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orchestrator.engine import Orchestrator
from orchestrator.library import DagLibrary
from orchestrator.settings import Settings
from tests.engine_harness import running


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings isolated from the developer's environment and ``.env``."""
    monkeypatch.chdir(tmp_path)  # no stray .env is read
    for name in ("TELEGRAM_BOT_TOKEN", "TASKFLOW_API_TOKEN", "TELEGRAM_ALLOWED_USERS", "TASKFLOW_ALLOW_SHELL"):
        monkeypatch.delenv(name, raising=False)
    return Settings(data_dir=tmp_path, workers=4, port=0)


@pytest.fixture
async def orch(settings: Settings) -> AsyncIterator[Orchestrator]:
    """A started orchestrator; closed after the test."""
    async with running(settings) as orchestrator:
        yield orchestrator


@pytest.fixture
def library(settings: Settings, orch: Orchestrator) -> DagLibrary:
    """The DAG library over the orchestrator's store."""
    return DagLibrary(settings, orch.store)
