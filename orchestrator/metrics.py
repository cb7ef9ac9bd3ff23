"""What the service counts for Prometheus, in a registry of its own (never prometheus-client's global one).

Run and task counts come from the orchestrator's events as they are published; gauges (queue depth,
busy workers, schedules) are read when a scrape asks (``refresh``). The bot counts its updates into
``bot_updates``.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from orchestrator.engine import Orchestrator
from orchestrator.events import RunEvent
from orchestrator.states import RUN_TERMINAL, RunState, TaskState
from orchestrator.store import Store

# Attempts of a few milliseconds (noop, text) up to long downloads and shell jobs.
DURATION_BUCKETS = (0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0, 3600.0)
UNKNOWN = "unknown"
# How an attempt that was running ended, by the state its task moved to.
_OUTCOMES: dict[str, str] = {
    TaskState.SUCCESS: "success",
    TaskState.FAILED: "failed",
    TaskState.UP_FOR_RETRY: "retry",
    TaskState.CANCELLED: "cancelled",
}


class Metrics:
    """The service's metrics over one orchestrator; ``attach()`` starts counting, ``detach()`` stops."""

    def __init__(self, orch: Orchestrator, store: Store) -> None:
        self.orch = orch
        self.store = store
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.runs_started = Counter("taskflow_runs_started", "Runs started or resumed.", ["dag_id"], registry=reg)
        self.runs_ended = Counter("taskflow_runs_ended", "Runs ended.", ["dag_id", "state"], registry=reg)
        attempt_labels = ["operation", "outcome"]
        self.task_attempts = Counter("taskflow_task_attempts", "Task attempts ended.", attempt_labels, registry=reg)
        self.task_duration = Histogram(
            "taskflow_task_duration_seconds",
            "How long task attempts ran, by operation.",
            ["operation"],
            buckets=DURATION_BUCKETS,
            registry=reg,
        )
        self.ready_queue = Gauge("taskflow_ready_queue_depth", "Tasks waiting for a worker.", registry=reg)
        self.busy_workers = Gauge("taskflow_busy_workers", "Workers executing a task attempt.", registry=reg)
        self.workers = Gauge("taskflow_workers", "Workers running.", registry=reg)
        self.schedules = Gauge("taskflow_schedules", "Schedules, by state.", ["state"], registry=reg)
        self.bot_updates = Counter(
            "taskflow_bot_updates", "Telegram updates handled by the bot, by outcome.", ["outcome"], registry=reg
        )
        self._dags: dict[int, str] = {}  # runs going on: their DAG, for the end's label
        self._running: dict[tuple[int, str], tuple[float, str]] = {}  # attempts going on: (start, operation)
        self._children: dict[tuple[str, str], tuple[Any, Any]] = {}  # (operation, outcome) -> (histogram, counter)

    def attach(self) -> None:
        """Count the orchestrator's events from now on."""
        self.orch.events.listen(self._on_event)

    def detach(self) -> None:
        """Stop counting."""
        self.orch.events.unlisten(self._on_event)

    async def refresh(self) -> None:
        """Read the gauges' current values (called before each scrape)."""
        self.ready_queue.set(self.orch.queue_depth())
        self.busy_workers.set(self.orch.busy_workers())
        self.workers.set(self.orch.workers_alive())
        schedules = await self.store.list_schedules()
        paused = sum(1 for s in schedules if s.paused)
        self.schedules.labels(state="active").set(len(schedules) - paused)
        self.schedules.labels(state="paused").set(paused)

    def render(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)

    def _on_event(self, event: RunEvent) -> None:
        if event.task_id is None:
            self._on_run(event)
        else:
            self._on_task(event.run_id, event.task_id, event.state)

    def _on_run(self, event: RunEvent) -> None:
        if event.state == RunState.RUNNING:
            dag_id = self.orch.active_dag(event.run_id) or UNKNOWN
            self._dags[event.run_id] = dag_id
            self.runs_started.labels(dag_id=dag_id).inc()
        elif event.state in RUN_TERMINAL:
            dag_id = self._dags.pop(event.run_id, UNKNOWN)
            self.runs_ended.labels(dag_id=dag_id, state=event.state).inc()

    def _on_task(self, run_id: int, task_id: str, state: str) -> None:
        key = (run_id, task_id)
        if state == TaskState.RUNNING:
            self._running[key] = (time.monotonic(), self.orch.task_operation(run_id, task_id) or UNKNOWN)
            return
        started = self._running.pop(key, None)
        if started is None:
            return  # queued, pending, or cancelled before it ran: not an attempt
        at, operation = started
        outcome = _OUTCOMES.get(state, state)
        # The labelled children, looked up once: this runs for every attempt, on the engine's hot path.
        children = self._children.get((operation, outcome))
        if children is None:
            children = self.task_duration.labels(operation), self.task_attempts.labels(operation, outcome)
            self._children[operation, outcome] = children
        children[0].observe(time.monotonic() - at)
        children[1].inc()
