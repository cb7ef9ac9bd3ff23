"""The page of one run: summary, graph, task table, timeline and log.

The parts that change while the run goes on (summary, table, timeline, log) are rendered by the
same functions for the first page and for ``/runs/<id>/parts``, which the page's script fetches to
update itself in place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from orchestrator.records import EventRecord, RunRecord, TaskRecord
from orchestrator.states import TASK_TERMINAL, TaskState
from web.render.base import badge, duration_text, esc, page, state_label, time_html
from web.render.graph import graph_svg, graph_tasks, layout
from web.render.timeline import build_timeline, timeline_html

ERROR_PREVIEW_CHARS = 160
ARCHIVE_GRACE_S = 10.0


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

    @property
    def settled(self) -> bool:
        """Whether nothing on the page will change any more: the run ended and its ZIP is made."""
        if not self.run.finished:
            return False
        # The run's state is stored a moment before its ZIP is; a ZIP that never comes (the
        # archiving failed) must not keep the page waiting forever.
        return self.has_archive or self.now - (self.run.ended_at or self.now) > ARCHIVE_GRACE_S


def run_page(view: RunView, tz: tzinfo) -> str:
    """The whole page."""
    run = view.run
    states = {t.task_id: t.state.value for t in view.tasks}
    svg = graph_svg(layout(graph_tasks(view.config)), states, title=f"graph of the DAG {run.dag_id}")
    parts = run_parts(view, tz)
    body = f"""
<div id="run" class="run" data-run-id="{run.run_id}" data-finished="{int(view.settled)}">
  <div class="run-title">
    <h1>Run #{run.run_id} <span class="dag-name">{esc(run.dag_id)}</span></h1>
    <span id="live-status" class="live" data-live="{"ended" if view.settled else "connecting"}">
      {"ended" if view.settled else "connecting…"}</span>
  </div>
  <section class="card" id="part-summary">{parts["summary"]}</section>
  <section class="card">
    <h2>Graph</h2>{legend()}
    <div class="graph-wrap">{svg}</div>
  </section>
  <section class="card"><h2>Tasks</h2><div id="part-tasks">{parts["tasks"]}</div></section>
  <section class="card"><h2>Timeline</h2><div id="part-timeline">{parts["timeline"]}</div></section>
  <section class="card"><h2>Log</h2><div id="part-log">{parts["log"]}</div></section>
</div>"""
    return page(f"Run #{run.run_id} · {run.dag_id}", body, tz=tz, scripts=["run.js"])


def run_parts(view: RunView, tz: tzinfo) -> dict[str, str]:
    """The parts of the page that change while the run goes on, as HTML."""
    task_ids = [t.task_id for t in view.tasks]
    return {
        "summary": summary_html(view, tz),
        "tasks": tasks_html(view.tasks, view.config, tz, view.now),
        "timeline": timeline_html(build_timeline(view.events, task_ids, view.now)),
        "log": log_html(view),
    }


def legend() -> str:
    """What each colour means."""
    items = "".join(
        f'<li><span class="swatch" data-state="{s.value}"></span>{esc(state_label(s.value))}</li>' for s in TaskState
    )
    return f'<ul class="legend" aria-label="state colours">{items}</ul>'


def summary_html(view: RunView, tz: tzinfo) -> str:
    """State, times, progress, error and downloads."""
    run, now = view.run, view.now
    total = len(view.tasks)
    done = sum(t.state in TASK_TERMINAL for t in view.tasks)
    duration = run.duration_s if run.finished else (now - run.started_at if run.started_at else None)
    facts = [
        ("State", badge(run.state.value)),
        ("Trigger", esc(run.trigger)),
        ("Created", time_html(run.created_at, tz, now)),
        ("Started", time_html(run.started_at, tz, now)),
        ("Ended", time_html(run.ended_at, tz, now)),
        ("Duration", esc(duration_text(duration))),
        ("Tasks", f'{done}/{total} done <progress max="{total}" value="{done}"></progress>'),
    ]
    if run.logical_date is not None and abs(run.logical_date - run.created_at) > 1:  # a schedule's slot
        facts.insert(2, ("Logical date", time_html(run.logical_date, tz, now)))
    if run.params:
        shown = ", ".join(f"{name}={json.dumps(value, ensure_ascii=False)}" for name, value in run.params.items())
        facts.insert(2, ("Params", f'<code class="run-params">{esc(shown)}</code>'))
    rows = "".join(f"<div><dt>{name}</dt><dd>{value}</dd></div>" for name, value in facts)
    error = f'<p class="run-error">{esc(run.error)}</p>' if run.error else ""
    zip_link = (
        f'<a id="zip-link" class="button" href="/runs/{run.run_id}/archive.zip" download>Download ZIP</a>'
        if view.has_archive
        else '<span class="muted">The ZIP is made when the run ends.</span>'
    )
    return (
        f'<dl class="facts">{rows}</dl>{error}'
        f'<p class="downloads">{zip_link} <a href="/runs/{run.run_id}/log">Full log</a></p>'
    )


def tasks_html(tasks: list[TaskRecord], config: dict[str, Any], tz: tzinfo, now: float) -> str:
    """The task table."""
    operations = {t.get("id"): t.get("operation", "") for t in config.get("tasks", []) if isinstance(t, dict)}
    rows = "".join(_task_row(t, str(operations.get(t.task_id, "")), tz, now) for t in tasks)
    return (
        '<div class="table-wrap"><table class="tasks"><thead><tr><th>Task</th><th>State</th>'
        '<th class="num">Attempts</th><th class="opt">Started</th><th class="num">Duration</th><th>Error</th>'
        f"</tr></thead><tbody>{rows}</tbody></table></div>"
    )


def _task_row(task: TaskRecord, operation: str, tz: tzinfo, now: float) -> str:
    if task.duration_s is None and task.started_at is not None and task.state not in TASK_TERMINAL:
        duration_cell = duration_text(now - task.started_at) + "…"  # still going
    else:
        duration_cell = duration_text(task.duration_s)
    attempts = str(task.attempts) + (f' <span class="muted">({task.failures} failed)</span>' if task.failures else "")
    meta = esc(operation) + (f" → {esc(task.output_file)}" if task.output_file else "")
    return (
        f'<tr id="task-{esc(task.task_id)}"><td><span class="tid">{esc(task.task_id)}</span>'
        f'<span class="op">{meta}</span></td>'
        f'<td><span class="badge" data-task="{esc(task.task_id)}" data-state="{task.state.value}">'
        f'<span class="state-label">{esc(state_label(task.state.value))}</span></span></td>'
        f'<td class="num" data-label="attempts">{attempts}</td>'
        f'<td class="opt">{time_html(task.started_at, tz, now)}</td>'
        f'<td class="num" data-label="took">{esc(duration_cell)}</td>'
        f'<td class="err">{_error_cell(task.error)}</td></tr>'
    )


def _error_cell(error: str | None) -> str:
    if not error:
        return ""
    if len(error) <= ERROR_PREVIEW_CHARS:
        return esc(error)
    return f"<details><summary>{esc(error[:ERROR_PREVIEW_CHARS])}…</summary>{esc(error)}</details>"


def log_html(view: RunView) -> str:
    """The end of ``run.log``."""
    if not view.log:
        return '<p class="muted">Nothing logged yet.</p>'
    note = (
        f'<p class="muted">Showing the last lines; <a href="/runs/{view.run.run_id}/log">open the full log</a>.</p>'
        if view.log_cut
        else ""
    )
    return f'{note}<pre class="log" id="log-text">{esc(view.log)}</pre>'
