"""The DAG config as pydantic models: the shape of a config, before any graph checks."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from operations.filenames import Filename as Filename
from operations.filenames import check_filename as check_filename
from orchestrator.limits import (
    MAX_ID_LENGTH,
    MAX_POSITION,
    MAX_RETRIES,
    MAX_RETRY_DELAY_S,
    MAX_TIMEOUT_S,
)

_DAG_ID = rf"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]{{0,{MAX_ID_LENGTH - 1}}}$"
# Task ids may hold dots (4diac sub-apps flatten to "Sub.FB"); references resolve the longest
# matching task id first, so "Sub.FB.key" stays unambiguous.
_TASK_ID = rf"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]{{0,{MAX_ID_LENGTH - 1}}}$"


def is_dag_id(value: str) -> bool:
    """Whether ``value`` could name a DAG (a text that could not is simply not one)."""
    return _DAG_ID_RE.fullmatch(value) is not None


_DAG_ID_RE = re.compile(_DAG_ID)
DagId = Annotated[str, Field(pattern=_DAG_ID, description="1-64 of letters, digits, _ - .")]
TaskId = Annotated[str, Field(pattern=_TASK_ID, description="1-64 of letters, digits, _ - .")]


class Priority(StrEnum):
    """Ready tasks of higher priority start first."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        """Sort key for the ready queue: lower starts first."""
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {Priority.HIGH: 0, Priority.MEDIUM: 1, Priority.LOW: 2}


class Position(BaseModel):
    """Where a task is drawn on the status page (4diac keeps its block positions here)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    x: float = Field(ge=-MAX_POSITION, le=MAX_POSITION)
    y: float = Field(ge=-MAX_POSITION, le=MAX_POSITION)


class TaskConfig(BaseModel):
    """One task of a DAG."""

    model_config = ConfigDict(extra="forbid")

    id: TaskId
    operation: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    description: str = ""
    independent_params: dict[str, Any] = Field(default_factory=dict)
    dependent_params: dict[str, str] = Field(default_factory=dict)
    dependencies: list[str] = Field(default_factory=list)
    max_retries: int | None = Field(default=None, ge=0, le=MAX_RETRIES)
    retry_delay: float | None = Field(default=None, ge=0, le=MAX_RETRY_DELAY_S)
    timeout: float | None = Field(default=None, gt=0, le=MAX_TIMEOUT_S)
    priority: Priority = Priority.MEDIUM
    position: Position | None = None

    @property
    def filename(self) -> str | None:
        """The output file name the user chose, if any."""
        value = self.independent_params.get("filename")
        return value if isinstance(value, str) else None


class DagConfig(BaseModel):
    """A whole DAG config; graph-level rules are checked by ``orchestrator.validation``."""

    model_config = ConfigDict(extra="forbid")

    dag_name: DagId
    description: str = ""
    max_retries: int = Field(default=0, ge=0, le=MAX_RETRIES)
    retry_delay: float = Field(default=0.0, ge=0, le=MAX_RETRY_DELAY_S)
    tasks: list[TaskConfig] = Field(min_length=1)  # at most TASKFLOW_MAX_TASKS: see validation
    keep_runs: int | None = Field(
        default=None, ge=1, description="Keep this DAG's newest N ended runs (instead of TASKFLOW_KEEP_RUNS)."
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="Free-form data kept with the DAG (e.g. its origin).",
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Values a trigger may set, with their defaults (null: required). Tasks use {{ params.NAME }}.",
    )
    max_active_runs: int | None = Field(
        default=None, ge=1, description="Runs of this DAG going at once; more wait as queued. Unlimited if unset."
    )
    max_active_tasks: int | None = Field(
        default=None, ge=1, description="Tasks of one run of this DAG running at once. Unlimited if unset."
    )

    @property
    def dag_id(self) -> str:
        """The DAG's id is its name."""
        return self.dag_name

    def task(self, task_id: str) -> TaskConfig:
        """The task with this id (``KeyError`` if none)."""
        for task in self.tasks:
            if task.id == task_id:
                return task
        raise KeyError(task_id)

    def retries_for(self, task: TaskConfig) -> int:
        """The task's own ``max_retries`` or the DAG's."""
        return self.max_retries if task.max_retries is None else task.max_retries

    def retry_delay_for(self, task: TaskConfig) -> float:
        """The task's own ``retry_delay`` or the DAG's."""
        return self.retry_delay if task.retry_delay is None else task.retry_delay
