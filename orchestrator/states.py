"""Task and run states, and the sets every view reads instead of re-spelling them."""

from __future__ import annotations

from enum import StrEnum


class TaskState(StrEnum):
    """Where one task of a run stands."""

    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    UP_FOR_RETRY = "up_for_retry"
    SUCCESS = "success"
    FAILED = "failed"
    UPSTREAM_FAILED = "upstream_failed"
    CANCELLED = "cancelled"


class RunState(StrEnum):
    """Where a run stands."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"


TASK_TERMINAL = frozenset(
    {
        TaskState.SUCCESS,
        TaskState.FAILED,
        TaskState.UPSTREAM_FAILED,
        TaskState.CANCELLED,
    }
)
# States a task may be in when its run stopped abruptly; on resume they start over.
TASK_IN_FLIGHT = frozenset({TaskState.QUEUED, TaskState.RUNNING, TaskState.UP_FOR_RETRY})
# A re-run from failure runs these again and keeps the rest.
TASK_RERUNNABLE = frozenset({TaskState.FAILED, TaskState.UPSTREAM_FAILED, TaskState.CANCELLED})

RUN_TERMINAL = frozenset({RunState.SUCCESS, RunState.FAILED, RunState.CANCELLED})
RUN_ACTIVE = frozenset({RunState.QUEUED, RunState.RUNNING})
