"""The in-memory state of one active run: its tasks, what each waits for, and their outputs.

The engine owns the transitions; this module only holds state and answers questions about it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from operations.base import Operation, OperationParams
from operations.paths import PathError, split_reference, walk
from operations.registry import get_operation
from orchestrator.errors import PermanentOperationError
from orchestrator.graph import dependents
from orchestrator.models import DagConfig, TaskConfig
from orchestrator.records import RunRecord, RunReport, TaskRecord
from orchestrator.rundir import RunFolder
from orchestrator.secrets import Masker
from orchestrator.states import TASK_TERMINAL, TaskState
from orchestrator.templating import secret_template, strings


@dataclass(slots=True)
class TaskSlot:
    """One task of an active run."""

    config: TaskConfig
    # Read on every transition or attempt, so copied or looked up once: the config's id, the
    # operation (None if it is unknown) and the queue's sort key.
    task_id: str
    op: Operation | None
    rank: int
    params: OperationParams | None = None  # for the first attempt: validated at submission (no upstream values)
    state: TaskState = TaskState.PENDING
    attempts: int = 0
    failures: int = 0
    started_at: float | None = None
    ended_at: float | None = None
    error: str | None = None
    output_file: str | None = None
    waiting: int = 0  # dependencies not yet succeeded
    unavailable: int = 0  # times in a row the executor could not run it (see ExecutorUnavailableError)
    secrets: bool = False  # its params name secrets: resolved (and validated) when each attempt starts

    def record(self) -> TaskRecord:
        """A snapshot for the store."""
        return TaskRecord(
            self.task_id,
            self.state,
            self.attempts,
            self.failures,
            self.started_at,
            self.ended_at,
            self.error,
            self.output_file,
        )


@dataclass(eq=False)
class ActiveRun:
    """A run the engine is executing."""

    run_id: int
    config: DagConfig
    folder: RunFolder
    logger: logging.Logger
    slots: dict[str, TaskSlot]
    done: asyncio.Future[RunReport | None]  # the final report; None if the run could not be closed
    unfinished: int  # tasks not yet in a terminal state; the engine keeps it current
    outputs: dict[str, Any] = field(default_factory=dict)
    children: dict[str, list[str]] = field(default_factory=dict)
    running: dict[str, asyncio.Task[Any]] = field(default_factory=dict)  # task id → the worker running it
    timers: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    releasing: int = 0  # successes waiting for their commit before queuing downstream tasks
    served: int = -1  # when the ready queue last gave it a worker (-1: never), for taking turns
    starting: int = 0  # attempts handed to a task of their own that has not begun yet (see ``holds_worker``)
    record: RunRecord | None = None  # the run as stored when it started
    started: asyncio.Event = field(default_factory=asyncio.Event)  # set once its start has been stored (or failed)
    cancelled: bool = False
    cancelled_by: str | None = None  # who cancelled it, for the log: "API", "bot, @alice"
    finishing: bool = False
    masker: Masker = field(default_factory=Masker)  # the secret values its attempts have used

    @classmethod
    def build(
        cls,
        run_id: int,
        config: DagConfig,
        folder: RunFolder,
        logger: logging.Logger,
        records: dict[str, TaskRecord] | None = None,
        params: dict[str, OperationParams] | None = None,
        *,
        secrets: bool = True,
    ) -> ActiveRun:
        """Slots for every task: fresh, or from stored records (in-flight tasks start over).

        ``secrets=False``: the config names no secret (its tasks need not be looked at for them).
        """
        ops = {name: get_operation(name) for name in {t.operation for t in config.tasks}}
        checked = params or {}
        slots = {t.id: TaskSlot(t, t.id, ops[t.operation], t.priority.rank, checked.get(t.id)) for t in config.tasks}
        for slot in slots.values() if secrets else ():
            if any(secret_template(text) for _, text in strings(slot.config.independent_params, "")):
                slot.secrets, slot.params = True, None
        for task_id, rec in (records or {}).items():
            slot = slots[task_id]
            slot.attempts, slot.failures, slot.output_file = rec.attempts, rec.failures, rec.output_file
            slot.state, slot.started_at, slot.ended_at, slot.error = rec.state, rec.started_at, rec.ended_at, rec.error
        deps = {t.id: t.dependencies for t in config.tasks}
        for slot in slots.values():
            if records:
                slot.waiting = sum(slots[d].state != TaskState.SUCCESS for d in slot.config.dependencies)
            else:  # a fresh run: nothing has succeeded yet
                slot.waiting = len(slot.config.dependencies)
        done: asyncio.Future[RunReport | None] = asyncio.get_running_loop().create_future()
        unfinished = sum(s.state not in TASK_TERMINAL for s in slots.values()) if records else len(slots)
        return cls(run_id, config, folder, logger, slots, done, unfinished, children=dependents(deps))

    def ready(self) -> list[TaskSlot]:
        """Pending tasks whose dependencies have all succeeded."""
        return [s for s in self.slots.values() if s.state == TaskState.PENDING and s.waiting == 0]

    def failed_roots(self) -> list[str]:
        """Failed tasks, whose downstream must not run."""
        return [s.task_id for s in self.slots.values() if s.state == TaskState.FAILED]

    def resolve_params(self, task: TaskConfig, independent: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
        """Independent params (``independent``: with secrets filled in) overlaid with values from upstream outputs."""
        base = task.independent_params if independent is None else independent
        if not task.dependent_params:
            return base  # read only: no copy
        params = dict(base)
        for name, ref in task.dependent_params.items():
            split = split_reference(ref, self.slots)
            if split is None:  # validation makes this unreachable, but stay explicit
                raise PermanentOperationError(f"dependent_params.{name}: {ref!r} does not name a task")
            upstream, keys = split
            try:
                params[name] = walk(self.outputs.get(upstream), keys)
            except PathError as exc:
                raise PermanentOperationError(
                    f"dependent_params.{name}: {ref!r}: {exc} in the output of {upstream!r}"
                ) from None
        return params

    def retries_left(self, slot: TaskSlot) -> bool:
        """Whether a failed attempt may be tried again."""
        return slot.failures <= self.config.retries_for(slot.config)
