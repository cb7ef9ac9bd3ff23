"""One task of a run, as its details panel shows it: attempts, params, output preview, log lines."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from orchestrator.records import EventRecord, TaskRecord
from orchestrator.states import TaskState
from web.render.durations import Elapsed

MAX_LOG_LINES = 200
_ATTEMPT_ENDS = frozenset({TaskState.SUCCESS, TaskState.FAILED, TaskState.UP_FOR_RETRY, TaskState.CANCELLED})


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of a task: when it started, how long it ran, how it ended (None while it runs)."""

    number: int
    started: float
    elapsed: Elapsed
    outcome: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class OutputPreview:
    """The start of a task's output file, and where it was read from."""

    name: str
    text: str
    size: int
    cut: bool
    source: str  # "folder" or "zip"


@dataclass(frozen=True, slots=True)
class TaskView:
    """Everything the details panel shows."""

    run_id: int
    task: TaskRecord
    config: dict[str, Any]
    attempts: list[Attempt]
    output: OutputPreview | None
    log_lines: list[str]
    log_cut: bool

    @property
    def params_json(self) -> str:
        """The task's config as stored: params with secret references as written, never their values."""
        shown = {k: v for k, v in self.config.items() if k not in ("id", "position")}
        return json.dumps(shown, indent=2, ensure_ascii=False)


def attempts(events: list[EventRecord], task_id: str, now: float) -> list[Attempt]:
    """The task's attempts from the run's journal, oldest first; the last one ticks while it runs."""
    out: list[Attempt] = []
    started: EventRecord | None = None
    for event in events:
        if event.task_id != task_id:
            continue
        if event.state == TaskState.RUNNING:
            started = event
        elif started is not None and event.state in _ATTEMPT_ENDS:
            number = started.attempt or len(out) + 1
            out.append(Attempt(number, started.at, Elapsed(event.at - started.at), event.state, event.error))
            started = None
    if started is not None:
        number = started.attempt or len(out) + 1
        out.append(Attempt(number, started.at, Elapsed(now - started.at, started.at), None, None))
    return out


def task_log_lines(log: str, task_id: str) -> tuple[list[str], bool]:
    """The lines ``run.log`` has about the task (with the lines that continue them, like a traceback's)."""
    lines: list[str] = []
    mine = False
    for line in log.splitlines():
        fields = line.split(" ", 4)
        if len(fields) >= 4 and fields[2].isupper() and line[:2].isdigit():
            mine = fields[3] == task_id  # "<date> <time> <LEVEL> <task> message"
        if mine:
            lines.append(line)
    cut = len(lines) > MAX_LOG_LINES
    return lines[-MAX_LOG_LINES:], cut
