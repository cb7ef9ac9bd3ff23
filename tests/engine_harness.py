"""An orchestrator over its own store, opened and closed together, as main.py wires them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from orchestrator.engine import Orchestrator
from orchestrator.settings import Settings
from orchestrator.store import Store


@contextlib.asynccontextmanager
async def running(settings: Settings, **kwargs: Any) -> AsyncIterator[Orchestrator]:
    """``Orchestrator(settings, store, **kwargs)`` started on a store of ``settings.db_path``."""
    async with Store(settings.db_path) as store, Orchestrator(settings, store, **kwargs) as orch:
        yield orch
