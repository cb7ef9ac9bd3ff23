"""Plain records read from the store; every view (web, bot, CLI) reads these."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from orchestrator.states import RUN_TERMINAL, RunState, TaskState


class TaskFields(Protocol):
    """What the store records of a task: a ``TaskRecord``, or the engine's live task state."""

    @property
    def task_id(self) -> str: ...

    state: TaskState
    attempts: int
    failures: int
    started_at: float | None
    ended_at: float | None
    error: str | None
    output_file: str | None


def duration_s(started_at: float | None, ended_at: float | None) -> float | None:
    """Seconds from ``started_at`` to ``ended_at``, if both are known."""
    if started_at is None or ended_at is None:
        return None
    return round(ended_at - started_at, 6)


# Not frozen, unlike the other records: a frozen dataclass's __init__ sets each field through
# object.__setattr__, 5x the cost, and a run's report and status page build one per task (10,000).
# Treat it as read-only all the same.
@dataclass(slots=True)
class TaskRecord:
    """One task of one run, as it stands."""

    task_id: str
    state: TaskState
    attempts: int = 0
    failures: int = 0
    started_at: float | None = None
    ended_at: float | None = None
    error: str | None = None
    output_file: str | None = None

    @property
    def duration_s(self) -> float | None:
        """Seconds from the first start to the end, if both are known."""
        return duration_s(self.started_at, self.ended_at)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with the duration."""
        return {**asdict(self), "duration_s": self.duration_s}


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run."""

    run_id: int
    dag_id: str
    state: RunState
    trigger: str
    owner: str | None
    notify_chat: int | None
    created_at: float
    started_at: float | None = None
    ended_at: float | None = None
    error: str | None = None
    archive: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    params: dict[str, Any] | None = None  # the values of the DAG's params this run used
    logical_date: float | None = None  # the schedule's slot, or the time the run was created
    # From its journal: seconds spent running in its ended stretches (a re-run adds one), and when the
    # stretch going on began; None when the store did not read them.
    ran_s: float | None = None
    running_since: float | None = None

    @property
    def finished(self) -> bool:
        """Whether the run has ended."""
        return self.state in RUN_TERMINAL

    @property
    def duration_s(self) -> float | None:
        """Seconds an ended run spent running (a re-run's wait in between not counted), else None."""
        if self.ran_s is not None and self.finished:
            return round(self.ran_s, 6)
        return duration_s(self.started_at, self.ended_at)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with the duration."""
        data = asdict(self)
        del data["ran_s"], data["running_since"]
        return {**data, "duration_s": self.duration_s}


@dataclass(frozen=True, slots=True)
class RunReport:
    """How a run ended (or stands): the run, its tasks by id, and its archive."""

    run: RunRecord
    tasks: dict[str, TaskRecord]

    @property
    def state(self) -> RunState:
        """The run's state."""
        return self.run.state

    @property
    def archive(self) -> Path | None:
        """The run's ZIP, once it exists."""
        return Path(self.run.archive) if self.run.archive else None


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One stored state change (a task's, or the run's when ``task_id`` is None)."""

    run_id: int
    task_id: str | None
    state: str
    attempt: int | None
    at: float
    error: str | None = None


@dataclass(frozen=True, slots=True)
class DagRecord:
    """A DAG the service knows, with its current config."""

    dag_id: str
    config: dict[str, Any]
    source: str
    version: int
    updated_at: float

    @classmethod
    def from_row(cls, row: Any) -> DagRecord:
        """Build from a ``dags`` row."""
        return cls(row[0], json.loads(row[1]), row[2], row[3], row[4])


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    """A schedule: cron, a fixed interval or one time."""

    schedule_id: int
    dag_id: str
    kind: str
    expr: str
    timezone: str
    owner_id: int | None
    chat_id: int | None
    paused: bool
    next_fire_at: float | None
    last_fire_at: float | None
    last_run_id: int | None
    created_at: float
    notify: str | None = None  # which runs the chat hears of: "every", "failures", "none" (None: the default)
    params: dict[str, Any] | None = None  # given to each run it starts


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A Telegram user who has talked to the bot."""

    user_id: int
    username: str | None
    chat_id: int
    first_name: str | None
    updated_at: float
