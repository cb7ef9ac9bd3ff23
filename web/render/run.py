"""The page of one run: summary, graph, task table, timeline and log.

The parts that change while the run goes on are templates of their own (``run/_<part>.html``),
rendered for the first page and for ``/runs/<id>/parts``, which the page's script fetches to
update itself in place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from orchestrator.progress import count_states, progress
from orchestrator.records import EventRecord, RunRecord, TaskRecord
from orchestrator.states import TaskState
from web.render.base import Clock
from web.render.durations import run_elapsed, task_elapsed
from web.render.graph import MAX_DRAWN_TASKS, graph_data
from web.render.timeline import build_timeline, draw

ERROR_PREVIEW_CHARS = 160
ARCHIVE_GRACE_S = 10.0
PARTS = ("summary", "tasks", "timeline", "log")
TASKS_PER_PAGE = 200


@dataclass(frozen=True, slots=True)
class RunView:
    """Everything the run page shows, read from the store and the run folder at one moment."""

    run: RunRecord
    tasks: list[TaskRecord]
    config: dict[str, Any]
    events: list[EventRecord]
    log: str
    log_cut: bool
    has_archive: bool
    now: float
    offset: int = 0  # the first task the table shows

    @property
    def table(self) -> list[TaskRecord]:
        """The tasks on the table's page."""
        return self.tasks[self.offset : self.offset + TASKS_PER_PAGE]

    @property
    def pages(self) -> tuple[int | None, int | None]:
        """The offsets of the table's previous and next pages (None at either end)."""
        newer = max(0, self.offset - TASKS_PER_PAGE) if self.offset else None
        older = self.offset + TASKS_PER_PAGE if self.offset + TASKS_PER_PAGE < len(self.tasks) else None
        return newer, older

    def shown_states(self, graph_drawn: bool) -> dict[str, str]:
        """The states the page shows: every task's when the graph is drawn, else the table's."""
        return {t.task_id: t.state.value for t in (self.tasks if graph_drawn else self.table)}

    @property
    def settled(self) -> bool:
        """Whether nothing on the page will change any more: the run ended and its ZIP is made."""
        if not self.run.finished:
            return False
        # The run's state is stored a moment before its ZIP is; a ZIP that never comes (the
        # archiving failed) must not keep the page waiting forever.
        return self.has_archive or self.now - (self.run.ended_at or self.now) > ARCHIVE_GRACE_S


def parts_context(view: RunView, tz: tzinfo) -> dict[str, Any]:
    """What the changing parts of the page need."""
    operations = {t.get("id"): str(t.get("operation", "")) for t in view.config.get("tasks", []) if isinstance(t, dict)}
    task_ids = [t.task_id for t in view.tasks]
    return {
        "view": view,
        "run": view.run,
        "tz": tz,
        "clock": Clock(tz, view.now),
        "progress": progress(count_states(t.state.value for t in view.tasks)),
        "elapsed": run_elapsed(view.run, view.now, view.events),
        "task_elapsed": lambda task: task_elapsed(task, view.now),
        "operations": operations,
        "timeline": draw(build_timeline(view.events, task_ids, view.now)),
        "error_preview": ERROR_PREVIEW_CHARS,
    }


def page_context(view: RunView, tz: tzinfo) -> dict[str, Any]:
    """What the whole page needs: the parts, the graph's data and the legend."""
    graph = graph_data(view.config)
    return {
        **parts_context(view, tz),
        "graph": graph,
        "states": view.shown_states(not graph["collapsed"]),
        "legend": [s.value for s in TaskState],
    }


def graph_drawn(view: RunView) -> bool:
    """Whether the page draws the run's graph (small enough)."""
    return len(view.tasks) <= MAX_DRAWN_TASKS
