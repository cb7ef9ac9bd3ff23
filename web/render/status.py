"""The status page: DAGs with their last run, recent runs, schedules."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import tzinfo

from orchestrator.records import DagRecord, RunRecord, ScheduleRecord
from orchestrator.states import RUN_ACTIVE, TASK_TERMINAL
from web.render.base import badge, duration_text, esc, page, time_html


@dataclass(frozen=True, slots=True)
class StatusView:
    """What the status page shows."""

    dags: list[DagRecord]
    last_runs: Mapping[str, RunRecord | None]
    runs: list[RunRecord]
    schedules: list[ScheduleRecord]
    now: float


def status_page(view: StatusView, tz: tzinfo) -> str:
    """The whole page."""
    going = sum(r.state in RUN_ACTIVE for r in view.runs)
    active_schedules = sum(not s.paused for s in view.schedules)
    body = f"""
<h1>Status</h1>
<ul class="counters">
  <li><strong>{len(view.dags)}</strong> DAGs</li>
  <li><strong>{going}</strong> runs going</li>
  <li><strong>{active_schedules}</strong> active schedules</li>
</ul>
<section class="card"><h2>DAGs</h2>{_dags(view, tz)}</section>
<section class="card"><h2>Recent runs</h2>{runs_table(view.runs, tz, view.now)}</section>
<section class="card"><h2>Schedules</h2>{_schedules(view, tz)}</section>"""
    return page("Status", body, tz=tz)


def run_link(run_id: int) -> str:
    """A link to a run's page."""
    return f'<a href="/runs/{run_id}">#{run_id}</a>'


def _dags(view: StatusView, tz: tzinfo) -> str:
    if not view.dags:
        return _empty("No DAGs yet: put JSON configs in <code>dags/</code>, or send one to the bot or the API.")
    rows = []
    for dag in view.dags:
        last = view.last_runs.get(dag.dag_id)
        last_cell = (
            f"{run_link(last.run_id)} {badge(last.state.value)} {time_html(last.created_at, tz, view.now)}"
            if last
            else '<span class="muted">never run</span>'
        )
        description = str(dag.config.get("description", ""))
        described = f'<span class="op">{esc(description)}</span>' if description else ""
        tasks = dag.config.get("tasks", [])
        rows.append(
            f'<tr><td><span class="tid">{esc(dag.dag_id)}</span>'
            f"{described}</td>"
            f'<td class="num">{len(tasks) if isinstance(tasks, list) else 0}</td>'
            f'<td class="opt">v{dag.version} · {esc(dag.source)}</td><td>{last_cell}</td></tr>'
        )
    return _table(["DAG", "Tasks", "Version", "Last run"], rows, numeric=frozenset({1}), optional=frozenset({2}))


def runs_table(runs: list[RunRecord], tz: tzinfo, now: float) -> str:
    """Runs, newest first, with state, duration and progress."""
    if not runs:
        return _empty("No runs yet.")
    rows = []
    for run in runs:
        total = sum(run.counts.values())
        done = sum(n for state, n in run.counts.items() if state in TASK_TERMINAL)
        duration = run.duration_s if run.finished else (now - run.started_at if run.started_at else None)
        rows.append(
            f'<tr><td>{run_link(run.run_id)}</td><td class="wrap">{esc(run.dag_id)}</td>'
            f"<td>{badge(run.state.value)}</td>"
            f'<td class="opt">{esc(run.trigger)}</td><td class="opt">{time_html(run.created_at, tz, now)}</td>'
            f'<td class="num opt">{esc(duration_text(duration))}</td>'
            f'<td class="num">{done}/{total} <progress max="{total}" value="{done}"></progress></td></tr>'
        )
    headers = ["Run", "DAG", "State", "Trigger", "Created", "Duration", "Tasks"]
    return _table(headers, rows, numeric=frozenset({5, 6}), optional=frozenset({3, 4, 5}))


def _schedules(view: StatusView, tz: tzinfo) -> str:
    if not view.schedules:
        return _empty("No schedules. Add one with the bot: <code>/schedule &lt;dag_id&gt; &lt;cron&gt;</code>.")
    rows = []
    for s in view.schedules:
        state = '<span class="badge" data-state="cancelled">paused</span>' if s.paused else ""
        last = run_link(s.last_run_id) if s.last_run_id else '<span class="muted">–</span>'
        rows.append(
            f'<tr><td>#{s.schedule_id}</td><td class="wrap">{esc(s.dag_id)}</td>'
            f"<td><code>{esc(s.expr)}</code> {state}</td><td class='opt'>{esc(s.kind)} · {esc(s.timezone)}</td>"
            f"<td>{time_html(s.next_fire_at, tz, view.now)}</td><td>{last}</td></tr>"
        )
    return _table(["#", "DAG", "When", "Kind", "Next", "Last run"], rows, optional=frozenset({3}))


def _empty(html: str) -> str:
    return f'<p class="muted">{html}</p>'


def _table(
    headers: list[str],
    rows: list[str],
    *,
    numeric: frozenset[int] = frozenset(),
    optional: frozenset[int] = frozenset(),
) -> str:
    cells = []
    for i, name in enumerate(headers):
        classes = " ".join(c for c, on in (("num", i in numeric), ("opt", i in optional)) if on)
        cells.append(f'<th class="{classes}">{esc(name)}</th>' if classes else f"<th>{esc(name)}</th>")
    head = "".join(cells)
    return f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
