"""What ``python main.py run`` shows in a terminal: live per-task states, a progress bar, a report."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from orchestrator.progress import Progress, count_states, progress
from orchestrator.records import RunReport, TaskRecord
from orchestrator.states import RUN_TERMINAL, RunState, TaskState

STATE_STYLE = {
    TaskState.PENDING: "dim",
    TaskState.QUEUED: "cyan",
    TaskState.RUNNING: "bold blue",
    TaskState.UP_FOR_RETRY: "yellow",
    TaskState.SUCCESS: "green",
    TaskState.FAILED: "bold red",
    TaskState.UPSTREAM_FAILED: "red",
    TaskState.CANCELLED: "magenta",
}
PART_STYLE = {
    "success": "green",
    "failed": "red",
    "upstream_failed": "dark_orange",
    "cancelled": "magenta",
    "running": "blue",
    "waiting": "grey50",
}
BAR_CELLS = 40
RUN_STYLE = {RunState.SUCCESS: "bold green", RunState.FAILED: "bold red", RunState.CANCELLED: "magenta"}
_POLL_S = 0.2  # how often the run is read again
_MAX_LIVE_ROWS = 30  # beyond this the live view shows counts only; the report lists every task


async def watch(fetch: Callable[[int], Awaitable[RunReport]], run_id: int, console: Console) -> RunReport:
    """Show a run's progress live until it ends; return its report.

    ``fetch(run_id)`` reads the run as it stands: the local orchestrator's, or the service's API.
    """
    report = await fetch(run_id)
    with Live(_view(report), console=console, refresh_per_second=8, transient=False) as live:
        while not (report.state in RUN_TERMINAL and report.archive is not None):
            await asyncio.sleep(_POLL_S)
            report = await fetch(run_id)
            live.update(_view(report))
    if not console.is_terminal:  # rich ends its last view with a newline only on a terminal
        console.line()
    return report


def progress_bar(parts: Progress, cells: int = BAR_CELLS) -> Text:
    """A bar with a coloured stretch per outcome, then the same in words: a failed run never reads as done."""
    bar = Text()
    drawn = 0
    seen = 0
    for part in parts.shown:
        seen += part.count
        end = round(cells * seen / parts.total)  # cumulative, so the stretches always fill the bar exactly
        bar.append("━" * (end - drawn), PART_STYLE[part.key])
        drawn = end
    bar.append("━" * (cells - drawn), "grey23")
    bar.append(f" {parts.text()}")
    return bar


def _view(report: RunReport) -> Group:
    tasks = list(report.tasks.values())
    counts = count_states(t.state.value for t in tasks)
    header = Text(f"run {report.run.run_id} ").append_text(progress_bar(progress(counts)))
    if len(tasks) > _MAX_LIVE_ROWS:
        line = Text("  ".join(f"{state}: {n}" for state, n in sorted(counts.items())))
        return Group(header, line)
    lines = [Text.assemble((f"{t.state:<16}", STATE_STYLE[t.state]), t.task_id) for t in tasks]
    return Group(header, *lines)


def report_table(report: RunReport) -> Table:
    """The end-of-run report: task, state, attempts, duration, error."""
    table = Table(title=Text(f"run {report.run.run_id} of {report.run.dag_id}: {report.state}"))
    for column in ("task", "state", "attempts", "duration", "error"):
        table.add_column(column, overflow="fold")
    for task in report.tasks.values():
        table.add_row(  # Text cells: ids and errors are shown as they are, never read as markup
            Text(task.task_id),
            Text(task.state, STATE_STYLE[task.state]),
            str(task.attempts),
            _duration(task),
            Text(task.error or ""),
        )
    return table


def _duration(task: TaskRecord) -> str:
    return "" if task.duration_s is None else f"{task.duration_s:.3f}s"
