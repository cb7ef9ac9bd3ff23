"""What ``python main.py run`` shows in a terminal: live per-task states, a progress bar, a report."""

from __future__ import annotations

import asyncio
import contextlib

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from orchestrator.engine import Orchestrator, RunReport
from orchestrator.records import TaskRecord
from orchestrator.states import RUN_TERMINAL, TASK_TERMINAL, RunState, TaskState

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
RUN_STYLE = {RunState.SUCCESS: "bold green", RunState.FAILED: "bold red", RunState.CANCELLED: "magenta"}
_MAX_LIVE_ROWS = 30  # beyond this the live view shows counts only; the report lists every task


async def watch(orch: Orchestrator, run_id: int, console: Console) -> RunReport:
    """Show a run's progress live until it ends; return its report."""
    async with orch.events.subscribe(run_id) as sub:
        report = await orch.report(run_id)
        total = len(report.tasks)
        bar = Progress(TextColumn("run {task.fields[run]}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        bar_id = bar.add_task("run", total=total, run=run_id)
        with Live(_view(bar, report), console=console, refresh_per_second=8, transient=False) as live:
            while report.state not in RUN_TERMINAL:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.25):
                        await sub.get()
                report = await orch.report(run_id)
                bar.update(bar_id, completed=sum(t.state in TASK_TERMINAL for t in report.tasks.values()))
                live.update(_view(bar, report))
    if not console.is_terminal:  # rich ends its last view with a newline only on a terminal
        console.line()
    return await orch.wait(run_id)


def _view(bar: Progress, report: RunReport) -> Group:
    tasks = list(report.tasks.values())
    if len(tasks) > _MAX_LIVE_ROWS:
        counts: dict[str, int] = {}
        for t in tasks:
            counts[t.state] = counts.get(t.state, 0) + 1
        line = Text("  ".join(f"{state}: {n}" for state, n in sorted(counts.items())))
        return Group(bar, line)
    lines = [Text.assemble((f"{t.state:<16}", STATE_STYLE[t.state]), t.task_id) for t in tasks]
    return Group(bar, *lines)


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
