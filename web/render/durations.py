"""How long a run or a task has spent running, as pages show it (and keep ticking while it goes on)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from orchestrator.records import EventRecord, RunRecord, TaskRecord
from orchestrator.states import RUN_TERMINAL, TASK_TERMINAL, RunState, TaskState


@dataclass(frozen=True, slots=True)
class Elapsed:
    """``seconds`` spent so far; while it goes on, ``since`` is when the current stretch began and
    ``base`` the seconds spent before it (the page's script adds the time since ``since``)."""

    seconds: float | None
    since: float | None = None
    base: float = 0.0


def run_elapsed(run: RunRecord, now: float, events: Iterable[EventRecord] | None = None) -> Elapsed:
    """Time the run spent running; with its journal, a re-run counts only its running stretches."""
    if events is not None:
        return running_time(((e.state, e.at) for e in events if e.task_id is None), now, RunState.RUNNING)
    if run.ran_s is not None:  # its running stretches, read from its journal by the store
        if run.running_since is not None:
            return Elapsed(run.ran_s + now - run.running_since, run.running_since, run.ran_s)
        return Elapsed(run.ran_s)
    if run.started_at is None:
        return Elapsed(None)
    if run.state in RUN_TERMINAL:
        return Elapsed(run.duration_s)
    return Elapsed(now - run.started_at, run.started_at if run.state == RunState.RUNNING else None)


def task_elapsed(task: TaskRecord, now: float) -> Elapsed:
    """A task's time from its first start to its end, ticking while it runs."""
    if task.started_at is None:
        return Elapsed(None)
    if task.state in TASK_TERMINAL or task.ended_at is not None:
        return Elapsed(task.duration_s)
    live = task.state == TaskState.RUNNING
    return Elapsed(now - task.started_at, task.started_at if live else None)


def running_time(transitions: Iterable[tuple[str, float]], now: float, running: str) -> Elapsed:
    """The sum of the stretches spent in ``running`` (state, moment) pairs, oldest first."""
    total, since = 0.0, None
    seen = False
    for state, at in transitions:
        if since is not None:
            total += at - since
            since = None
        if state == running:
            since, seen = at, True
    if not seen:
        return Elapsed(None)
    if since is None:
        return Elapsed(total)
    return Elapsed(total + now - since, since, total)
