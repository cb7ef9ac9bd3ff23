"""Typed keys of what the app factory injects, and the small state the views share."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from orchestrator.engine import Orchestrator
from orchestrator.library import DagLibrary
from orchestrator.metrics import Metrics
from orchestrator.settings import Settings
from orchestrator.store import Store


@dataclass(slots=True)
class WebState:
    """Mutable per-app state: the base of the links handed out, and the shutdown signal."""

    public_url: str
    # Set on shutdown: live streams and waiting /api/cli requests end instead of holding cleanup.
    closing: asyncio.Event = field(default_factory=asyncio.Event)

    def run_url(self, run_id: int) -> str:
        """The page of a run, as handed out to users."""
        return f"{self.public_url}/runs/{run_id}"


SETTINGS = web.AppKey("settings", Settings)
ORCH = web.AppKey("orchestrator", Orchestrator)
LIBRARY = web.AppKey("library", DagLibrary)
STORE = web.AppKey("store", Store)
STATE = web.AppKey("web_state", WebState)
METRICS = web.AppKey("metrics", Metrics)
# A health check: None when it passes, else what is wrong. GET /healthz runs each one by name.
Probe = Callable[[web.Application], Awaitable[str | None]]
PROBES = web.AppKey("probes", dict[str, Probe])
