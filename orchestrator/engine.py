"""The orchestrator: one priority queue of ready tasks shared by every run, and a pool of workers.

A run's tasks enter the queue the moment their last dependency succeeds; workers take the most
urgent one, run it through the executor inside its operation context, and store every transition.
A success is made durable before anything downstream of it is queued, so a crash never re-runs a
task whose output a later task has already used.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import time
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from operations import destinations
from operations.base import OperationParams, Resources, output_too_large
from orchestrator.background import TaskSet
from orchestrator.context import operation_context
from orchestrator.errors import (
    ConflictError,
    ExecutorUnavailableError,
    PermanentOperationError,
    TaskFlowError,
    describe,
)
from orchestrator.events import EventBus, RunEvent
from orchestrator.executor import Executor, LocalExecutor, validate_params, with_timeout
from orchestrator.graph import downstream
from orchestrator.jsontext import output_json
from orchestrator.models import DagConfig
from orchestrator.readyqueue import ReadyQueue
from orchestrator.records import RunRecord, RunReport, TaskRecord
from orchestrator.rundir import INLINE_WRITE_MAX, RunFolder, is_reference, output_size
from orchestrator.runstate import ActiveRun, TaskSlot
from orchestrator.secrets import MaskFilter, Secrets
from orchestrator.settings import Settings
from orchestrator.states import TASK_IN_FLIGHT, TASK_RERUNNABLE, TASK_TERMINAL, RunState, TaskState
from orchestrator.store import Store
from orchestrator.submission import prepare
from orchestrator.templating import fill_secrets, map_strings, secret_template
from orchestrator.validation import pydantic_problems

log = logging.getLogger("taskflow.engine")

# Pause before handing an attempt the executor lost back to it (see ExecutorUnavailableError).
EXECUTOR_RETRY_S = 1.0
EXECUTOR_RETRY_MAX_S = 15.0  # doubled each time in a row up to this: an outage costs a few lines, not one a second


class Orchestrator:
    """Runs DAGs over an open store: ``async with Orchestrator(settings, store) as orch: await orch.run(config)``."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        resources: Resources | None = None,
        executor: Executor | None = None,
        secrets: Secrets | None = None,
        resume: bool = True,
    ) -> None:
        self.settings = settings
        self.store = store
        self.secrets = secrets or Secrets(settings.secrets_dir)
        self.events = EventBus()
        self.resources = resources or Resources(allow_shell=settings.allow_shell)
        self.resources.max_output_bytes = settings.max_output_bytes
        self.resources.destinations = settings.destinations
        self.resumed: list[int] = []  # runs picked up again at start, for the admins' digest
        self._executor = executor or make_executor(settings)
        self._resume_on_start = resume
        self._queue: ReadyQueue[ActiveRun, TaskSlot] = ReadyQueue(_may_start)
        self._runs: dict[int, ActiveRun] = {}
        self._admitted: collections.Counter[str] = collections.Counter()  # runs going (or starting), by DAG
        self._held: dict[int, HeldRun] = {}  # runs waiting for their DAG's max_active_runs, oldest first
        self._workers: list[asyncio.Task[None]] = []
        self._waits = TaskSet()  # attempts of operations that only wait (sleep): they hold no worker
        self._background = TaskSet()  # runs being closed (report, archive), held runs being started
        self._owns_http = False
        self._closing = False
        self._activation = asyncio.Lock()  # resume and re-run check-then-start runs

    # -- life cycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Orchestrator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Start the workers, and resume runs a previous process left unfinished."""
        self._closing = False
        self.settings.runs_dir.mkdir(parents=True, exist_ok=True)
        if self.resources.http is None:
            self.resources.http = destinations.session(self.resources.destinations)
            self._owns_http = True
        try:
            await self._executor.start()
        except BaseException:
            await self.close()  # what was opened is closed again: the process can exit
            raise
        self._workers = [
            asyncio.create_task(self._worker(), name=f"taskflow-worker-{n}") for n in range(self.settings.workers)
        ]
        if self._resume_on_start:
            self.resumed = await self.resume_unfinished()

    async def close(self) -> None:
        """Stop the workers; runs still going stay stored as they are and resume at the next start."""
        self._closing = True  # held runs are not started any more: they start at the next start
        for run in self._runs.values():
            for timer in run.timers.values():
                timer.cancel()
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        await self._waits.close()
        await self._background.close()
        for held in self._held.values():  # they stay queued in the store and start at the next start
            held.started.cancel()
        self._held.clear()
        self._admitted.clear()
        for run in self._runs.values():
            _close_log(run)
            if not run.done.done():
                run.done.cancel()
        self._runs.clear()
        await self._executor.close()
        if self._owns_http:
            await self.resources.http.close()

    # -- public API -------------------------------------------------------------------------

    async def submit(
        self,
        config: DagConfig,
        *,
        trigger: str = "api",
        owner: str | None = None,
        notify_chat: int | None = None,
        params: Mapping[str, Any] | None = None,
        logical_date: float | None = None,
    ) -> int:
        """Validate and start a run of ``config``; return its id at once.

        ``params``: values for the config's declared params; ``logical_date``: the schedule's slot
        the run is for (else the time it is created), as ``{{ run.logical_date }}`` shows it.
        """
        now = time.time()
        when = now if logical_date is None else logical_date
        prepared = prepare(
            config,
            params,
            secrets=self.secrets,
            logical_date=when,
            tz=self.settings.tz,
            allow_shell=self.resources.allow_shell,
        )
        run_id = await self.store.create_run(
            config.dag_id,
            prepared.text,  # rendered once, for the store and config.json
            [t.id for t in config.tasks],
            trigger=trigger,
            owner=owner,
            notify_chat=notify_chat,
            params=prepared.params,
            logical_date=when,
            created_at=now,
        )
        if isinstance(prepared.text, str):
            config, text = prepared.config, prepared.text
        else:  # rendered with its run id as it was stored
            text = await self.store.run_config_json(run_id)
            config = DagConfig.model_validate_json(text)
        await self._start_or_fail(run_id, config, text, records=None, params=prepared.checked)
        return run_id

    async def run(self, config: DagConfig, **kwargs: Any) -> RunReport:
        """Start a run and wait for it to end."""
        return await self.wait(await self.submit(config, **kwargs))

    async def wait(self, run_id: int) -> RunReport:
        """Wait for a run to end (returns at once for an ended run)."""
        held = self._held.get(run_id)
        if held is not None:  # first for its turn to start
            await asyncio.shield(held.started)
        active = self._runs.get(run_id)
        if active is not None:
            final = await asyncio.shield(active.done)
            if final is not None:  # the report it ended with: what was just committed, without reading it back
                return final
        return await self.report(run_id)

    async def report(self, run_id: int) -> RunReport:
        """The run and its tasks as stored now."""
        run = await self.store.get_run(run_id)
        tasks = await self.store.get_tasks(run_id)
        return RunReport(run, {t.task_id: t for t in tasks})

    def is_active(self, run_id: int) -> bool:
        """Whether this process is executing the run (or holds it until its DAG may run one more)."""
        return run_id in self._runs or run_id in self._held

    def active_runs(self, dag_id: str) -> int:
        """Runs of a DAG going now or starting (not those held by its ``max_active_runs``)."""
        return self._admitted[dag_id]

    async def cancel(self, run_id: int, *, by: str | None = None) -> None:
        """Cancel a run: queued and waiting tasks are cancelled, running ones interrupted.

        ``by`` says who asked (``"API"``, ``"bot, @alice"``), for the run's log.
        """
        held = self._held.get(run_id)
        if held is not None and held.starting:
            await asyncio.shield(held.started)  # its turn came: it is cancelled as a run going
        elif held is not None:
            await self._cancel_held(run_id)
            return
        run = self._runs.get(run_id)
        if run is None:
            stored = await self.store.get_run(run_id)
            raise ConflictError(f"run {run_id} has already ended ({stored.state})")
        if run.cancelled or run.finishing:
            return
        run.cancelled, run.cancelled_by = True, by
        run.logger.warning("run cancelled%s", f" by {by}" if by else "", extra={"task": "-"})
        for task_id, timer in list(run.timers.items()):
            timer.cancel()
            del run.timers[task_id]
        for slot in run.slots.values():
            if slot.state not in TASK_TERMINAL and slot.task_id not in run.running:
                self._transition(run, slot, TaskState.CANCELLED, error="run cancelled")
        for attempt in run.running.values():
            attempt.cancel()
        self._queue.drop(run)
        self._maybe_finish(run)

    async def _cancel_held(self, run_id: int) -> None:
        """A run that never started: its tasks and itself are cancelled where they are stored."""
        held = self._held.pop(run_id)
        for task in await self.store.get_tasks(run_id):
            if task.state not in TASK_TERMINAL:
                cancelled = dataclasses.replace(task, state=TaskState.CANCELLED, error="run cancelled")
                self.store.record_task(run_id, cancelled)
        await self.store.set_run_state(run_id, RunState.CANCELLED, error="cancelled before it started")
        held.started.set_result(None)
        self.events.publish(RunEvent(run_id, None, RunState.CANCELLED.value))

    async def rerun(self, run_id: int) -> int:
        """Re-run a failed or cancelled run from its failure: succeeded tasks keep their outputs."""
        async with self._activation:  # two re-runs of one run at once must not both start it
            if run_id in self._runs:
                raise ConflictError(f"run {run_id} is still going")
            stored = await self.store.get_run(run_id)
            if stored.state not in (RunState.FAILED, RunState.CANCELLED):
                raise ConflictError(f"run {run_id} ended with {stored.state}; only failed or cancelled runs re-run")
            for task in await self.store.get_tasks(run_id):
                if task.state in TASK_RERUNNABLE:
                    self.store.record_task(run_id, TaskRecord(task.task_id, TaskState.PENDING, task.attempts, 0))
            await self.store.set_run_state(run_id, RunState.QUEUED)
            await self._resume(run_id)
        return run_id

    async def resume_unfinished(self) -> list[int]:
        """Pick up every run that had not ended when the last process stopped."""
        resumed = []
        async with self._activation:
            for run_id in await self.store.unfinished_run_ids():
                if run_id in self._runs:
                    continue
                try:
                    await self._resume(run_id)
                except Exception:  # the others go on; this one is failed if it could be
                    log.exception("run %d could not be resumed", run_id, extra={"run_id": run_id})
                    continue
                resumed.append(run_id)
        if resumed:
            log.info("resumed %d unfinished run(s): %s", len(resumed), resumed)
        return resumed

    # -- for health checks and metrics ------------------------------------------------------

    def workers_alive(self) -> int:
        """How many workers are running (a worker that died would leave the queue unserved)."""
        return sum(not task.done() for task in self._workers)

    def queue_depth(self) -> int:
        """Tasks waiting in the ready queue for a worker."""
        return len(self._queue)

    def busy_workers(self) -> int:
        """Workers executing a task attempt now."""
        return sum(len(run.running) for run in self._runs.values())

    def active_dag(self, run_id: int) -> str | None:
        """The DAG of a run this process executes (None once it has ended)."""
        run = self._runs.get(run_id)
        return run.config.dag_id if run is not None else None

    def task_operation(self, run_id: int, task_id: str) -> str | None:
        """The operation of a task of a run this process executes (None once the run has ended)."""
        run = self._runs.get(run_id)
        slot = run.slots.get(task_id) if run is not None else None
        return slot.config.operation if slot is not None else None

    # -- starting runs ----------------------------------------------------------------------

    async def _resume(self, run_id: int, *, admitted: bool = False) -> bool:
        """Start a stored run again; False if its stored config can no longer be read (it is failed)."""
        text = await self.store.run_config_json(run_id)
        try:
            config = DagConfig.model_validate_json(text)
        except ValidationError as exc:  # stored by an older version that accepted it
            problems = "; ".join(str(p) for p in pydantic_problems(exc))
            await self.store.set_run_state(run_id, RunState.FAILED, error=f"stored config is invalid: {problems}")
            return False
        records = {t.task_id: t for t in await self.store.get_tasks(run_id)}
        await self._start_or_fail(run_id, config, text, records=records, admitted=admitted)
        return True

    async def _start_or_fail(
        self,
        run_id: int,
        config: DagConfig,
        config_json: str,
        records: dict[str, TaskRecord] | None,
        params: dict[str, OperationParams] | None = None,
        *,
        admitted: bool = False,
    ) -> None:
        """Start the run; if that fails (its folder cannot be written, ...) store it as failed, not stuck.

        ``params``: tasks' params validated already (``checked_params``); the others are validated as they run.
        A run beyond its DAG's ``max_active_runs`` is held, queued, until a run of the DAG ends
        (``admitted``: it had its turn already).
        """
        dag_id, limit = config.dag_id, config.max_active_runs
        if not admitted:
            if limit is not None and self._admitted[dag_id] >= limit:
                self._held[run_id] = HeldRun(dag_id, asyncio.get_running_loop().create_future())
                log.info("run %d of %r waits: %d run(s) of it are going (max_active_runs)", run_id, dag_id, limit)
                return
            self._admitted[dag_id] += 1
        try:
            await self._activate(run_id, config, config_json, records, params)
        except Exception as exc:
            if not admitted:  # an admitted run's turn is passed on by whoever gave it (_start_held)
                self._release(dag_id)
            active = self._runs.pop(run_id, None)
            if active is not None:
                _close_log(active)
                active.started.set()  # a run cancelled meanwhile stops waiting to close (see _finish)
            log.exception("run %d could not start", run_id, extra={"run_id": run_id})
            await self.store.set_run_state(run_id, RunState.FAILED, error=f"could not start: {describe(exc)}")
            raise

    async def _activate(
        self,
        run_id: int,
        config: DagConfig,
        config_json: str,
        records: dict[str, TaskRecord] | None,
        params: dict[str, OperationParams] | None,
    ) -> None:
        folder = RunFolder(self.settings.runs_dir, run_id)
        if len(config_json) > INLINE_WRITE_MAX:
            await asyncio.to_thread(folder.create, config_json)
        else:
            folder.create(config_json)
        secrets = "{{" in config_json and "secrets" in config_json  # else no task need be looked at for them
        run = ActiveRun.build(run_id, config, folder, _run_logger(run_id, folder), records, params, secrets=secrets)
        run.logger.addFilter(MaskFilter(run.masker))  # before any attempt can log a secret's value
        outputs = await self.store.get_outputs(run_id) if records else {}
        if any(is_reference(value) for value in outputs.values()):  # large outputs stay in their files
            outputs = await asyncio.to_thread(folder.load_outputs, outputs)
        run.outputs = outputs
        self._runs[run_id] = run
        run.record = await self.store.set_run_state(run_id, RunState.RUNNING)
        run.started.set()
        self.events.publish(RunEvent(run_id, None, RunState.RUNNING.value))
        run.logger.info("run %d of %r started (%d tasks)", run_id, config.dag_id, len(run.slots), extra={"task": "-"})
        for slot in run.slots.values():
            if slot.state in TASK_IN_FLIGHT:  # the process stopped while it was queued or running
                self._transition(run, slot, TaskState.PENDING, error="interrupted by a restart; runs again")
        for failed in run.failed_roots():
            self._fail_downstream(run, failed)
        for slot in run.ready():
            self._enqueue(run, slot)
        self._maybe_finish(run)

    # -- the queue and the workers ----------------------------------------------------------

    def _enqueue(self, run: ActiveRun, slot: TaskSlot) -> None:
        self._transition(run, slot, TaskState.QUEUED)
        self._queue.put(run, slot, slot.rank)

    def _requeue(self, run: ActiveRun, task_id: str) -> None:
        run.timers.pop(task_id, None)
        if not run.cancelled:
            self._enqueue(run, run.slots[task_id])

    async def _worker(self) -> None:
        worker = asyncio.current_task()
        assert worker is not None
        queue = self._queue
        while True:
            # Taken at once when there is one: ``get`` would build a coroutine to find the same.
            run, slot = queue.take() or await queue.get()
            if slot.op is not None and not slot.op.holds_worker:
                # It only waits: it runs in a task of its own and the worker takes the next task.
                run.starting += 1
                self._waits.spawn(self._waiting_attempt(run, slot), name=f"taskflow-wait-{run.run_id}-{slot.task_id}")
                continue
            try:  # inline, not through _attempt_guarded: a coroutine less per task on the hot path
                await self._execute(run, slot, worker)
            except Exception:  # a bug in the engine must not kill the worker or hang the run
                self._internal_error(run, slot)
            if run.config.max_active_tasks is not None:
                queue.wake()  # one of its tasks ended: a waiting worker may start its next

    async def _waiting_attempt(self, run: ActiveRun, slot: TaskSlot) -> None:
        run.starting -= 1
        task = asyncio.current_task()
        assert task is not None
        await self._attempt_guarded(run, slot, task)

    async def _attempt_guarded(self, run: ActiveRun, slot: TaskSlot, worker: asyncio.Task[Any]) -> None:
        try:
            await self._execute(run, slot, worker)
        except Exception:  # a bug in the engine must not kill the waiting task or hang the run
            self._internal_error(run, slot)
        finally:
            if run.config.max_active_tasks is not None:
                self._queue.wake()  # one of its tasks ended: a waiting worker may start its next

    def _internal_error(self, run: ActiveRun, slot: TaskSlot) -> None:
        log.exception(
            "internal error running task %r of run %d",
            slot.task_id,
            run.run_id,
            extra={"run_id": run.run_id, "task_id": slot.task_id},
        )
        if slot.state not in TASK_TERMINAL:
            self._finish_failed(run, slot, "internal error in TaskFlow (see the service log)")

    async def _execute(self, run: ActiveRun, slot: TaskSlot, worker: asyncio.Task[None]) -> None:
        if run.cancelled or slot.state != TaskState.QUEUED:
            return  # cancelled while it waited in the queue
        slot.attempts += 1
        if slot.started_at is None:
            slot.started_at = time.time()
        self._transition(run, slot, TaskState.RUNNING)
        # The attempt runs in the worker's own task (no task per attempt: this is the hot path);
        # cancelling the run cancels the worker and ``_interrupted`` tells the two cancels apart.
        run.running[slot.task_id] = worker
        started = time.perf_counter()
        try:
            output = await self._attempt(run, slot)
        except Exception as exc:
            del run.running[slot.task_id]
            self._on_failure(run, slot, exc)
            return
        except asyncio.CancelledError:
            del run.running[slot.task_id]
            interrupted = _interrupted(run, worker)
            _log_cancelled(run, slot, time.perf_counter() - started, run.cancelled_by if interrupted else None)
            if not interrupted:
                raise  # the service is stopping: leave the task to be resumed
            self._transition(run, slot, TaskState.CANCELLED, error="run cancelled")
            self._maybe_finish(run)
            return
        del run.running[slot.task_id]
        if output is None:  # most operations return nothing: no file to write, no output to store
            self._succeed(run, slot, None, None)
        else:
            await self._on_success(run, slot, output)

    async def _attempt(self, run: ActiveRun, slot: TaskSlot) -> Any:
        task, op = slot.config, slot.op
        if op is None:
            raise PermanentOperationError(f"unknown operation {task.operation!r}")
        # Validated at submission for the first attempt; a retry gets a fresh object, so nothing the
        # first one did to its params carries over.
        params, slot.params = slot.params, None
        if params is None:  # a retry, a task with values from upstream or secrets, or a resumed run
            independent = self._with_secrets(run, task.independent_params) if slot.secrets else None
            params = validate_params(op, run.resolve_params(task, independent), "at run time")
        with operation_context(
            run_id=run.run_id,
            dag_id=run.config.dag_id,
            task_id=task.id,
            attempt=slot.attempts,
            folder=run.folder.path,
            run_logger=run.logger,
            resources=self.resources,
            timeout=task.timeout,
        ) as ctx:
            return await with_timeout(self._executor.execute(op, params, ctx), task.timeout)

    def _with_secrets(self, run: ActiveRun, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """``params`` with the values of the secrets they name, in memory only (masked from now on)."""

        def fill(text: str) -> str:
            template = secret_template(text)
            if template is None:
                return text
            values = {}
            for name in template.secrets:
                value = self.secrets.get(name)
                if value is None:
                    raise PermanentOperationError(f"secret {name!r} is not set ({self.secrets.where(name)})")
                values[name] = value
            run.masker.add(values.values())
            return fill_secrets(template, values)

        return map_strings(params, fill)  # type: ignore[no-any-return]

    # -- outcomes ---------------------------------------------------------------------------

    async def _on_success(self, run: ActiveRun, slot: TaskSlot, output: Any) -> None:
        if run.masker:  # an output that echoes a secret is stored masked
            output = run.masker.value(output)
        try:
            encoded = output_json(output)
        except UnicodeEncodeError:
            message = "output is not valid Unicode text (it holds an unpaired surrogate, \\ud800-\\udfff)"
            self._on_failure(run, slot, PermanentOperationError(message))
            return
        except (TypeError, ValueError, RecursionError) as exc:
            self._on_failure(run, slot, PermanentOperationError(f"output is not JSON-serialisable: {exc}"))
            return
        limit = self.settings.max_output_bytes
        size = output_size(output, encoded, limit)
        if size > limit:
            self._on_failure(run, slot, output_too_large(size, limit))
            return
        name = run.folder.output_name(slot.task_id, slot.config.filename, output)
        if len(encoded) > INLINE_WRITE_MAX:
            await asyncio.to_thread(run.folder.write_output, name, output, encoded)
        else:
            run.folder.write_output(name, output, encoded)
        slot.output_file = name
        self._succeed(
            run, slot, output, run.folder.stored_output(name, output, encoded, self.settings.max_stored_output_bytes)
        )

    def _succeed(self, run: ActiveRun, slot: TaskSlot, output: Any, encoded: str | None) -> None:
        run.outputs[slot.task_id] = output
        self._transition(run, slot, TaskState.SUCCESS, output=encoded)
        # Downstream tasks are queued only once this success is committed; the worker goes on.
        run.releasing += 1
        self.store.when_durable(self._release_children, (run, slot))

    def _release_children(self, succeeded: list[tuple[ActiveRun, TaskSlot]]) -> None:
        """Queue the tasks that waited only for these successes, now committed."""
        runs: dict[ActiveRun, None] = {}
        for run, slot in succeeded:
            run.releasing -= 1
            runs[run] = None
            slots = run.slots
            for child_id in run.children[slot.task_id]:
                child = slots[child_id]
                child.waiting -= 1
                if child.waiting == 0 and child.state == TaskState.PENDING and not run.cancelled:
                    self._enqueue(run, child)
        for run in runs:
            self._maybe_finish(run)

    def _on_failure(self, run: ActiveRun, slot: TaskSlot, exc: BaseException) -> None:
        message = run.masker.text(describe(exc))
        if isinstance(exc, ExecutorUnavailableError) and not run.cancelled:
            if not exc.started:
                slot.attempts -= 1  # it never reached the executor: not an attempt of the task's
            slot.unavailable += 1
            delay = min(EXECUTOR_RETRY_S * 2 ** (slot.unavailable - 1), EXECUTOR_RETRY_MAX_S)
            self._retry_later(run, slot, message, delay)
            return
        slot.unavailable = 0
        slot.failures += 1
        if not isinstance(exc, PermanentOperationError) and run.retries_left(slot) and not run.cancelled:
            self._retry_later(run, slot, message, run.config.retry_delay_for(slot.config))
            return
        self._finish_failed(run, slot, message)

    def _retry_later(self, run: ActiveRun, slot: TaskSlot, message: str, delay: float) -> None:
        self._transition(run, slot, TaskState.UP_FOR_RETRY, error=message)
        run.logger.info("retry in %.1fs", delay, extra={"task": slot.task_id})
        loop = asyncio.get_running_loop()
        run.timers[slot.task_id] = loop.call_later(delay, self._requeue, run, slot.task_id)

    def _finish_failed(self, run: ActiveRun, slot: TaskSlot, message: str) -> None:
        self._transition(run, slot, TaskState.FAILED, error=message)
        run.logger.error("failed: %s", message, extra={"task": slot.task_id})
        self._fail_downstream(run, slot.task_id)
        self._maybe_finish(run)

    def _fail_downstream(self, run: ActiveRun, failed_id: str) -> None:
        for task_id in downstream(failed_id, run.children):
            slot = run.slots[task_id]
            if slot.state == TaskState.PENDING:
                error = f"upstream task {failed_id!r} failed"
                self._transition(run, slot, TaskState.UPSTREAM_FAILED, error=error)

    def _transition(
        self,
        run: ActiveRun,
        slot: TaskSlot,
        state: TaskState,
        *,
        error: str | None = None,
        output: str | None = None,
    ) -> None:
        """Move a task to ``state``, buffer it for the store and tell the watchers."""
        now = time.time()
        if state in TASK_TERMINAL:
            if slot.state not in TASK_TERMINAL:
                run.unfinished -= 1
            slot.ended_at = now
        slot.state, slot.error = state, error
        self.store.record_task(run.run_id, slot, output, now)
        if self.events.watched:
            self.events.publish(RunEvent(run.run_id, slot.task_id, state.value, error))

    # -- ending runs ------------------------------------------------------------------------

    def _maybe_finish(self, run: ActiveRun) -> None:
        if run.finishing or run.running or run.timers or run.releasing or run.unfinished:
            return
        run.finishing = True
        self._background.spawn(self._finish(run), name=f"finish-run-{run.run_id}")

    async def _finish(self, run: ActiveRun) -> None:
        final, error = _outcome(run)
        run.logger.info("run ended: %s", final, extra={"task": "-"})
        _close_log(run)
        report = None
        await run.started.wait()  # a run cancelled while its start was being stored
        if self._runs.get(run.run_id) is not run:  # its start failed: stored as failed already
            run.done.set_result(None)
            return
        try:
            # The folder is archived before the end is stored: a crash in between leaves the run
            # unfinished in the store, so the next start finishes (and archives) it again.
            assert run.record is not None  # set with ``started``
            ended = dataclasses.replace(run.record, state=final, ended_at=time.time(), error=error)
            closed = await asyncio.to_thread(_close_folder, run, ended)
            await self.store.set_run_state(
                run.run_id, final, error=error, archive=closed.run.archive, at=ended.ended_at
            )
            report = closed
        except Exception:
            log.exception(
                "run %d could not be closed; it is finished again at the next start",
                run.run_id,
                extra={"run_id": run.run_id},
            )
        finally:
            del self._runs[run.run_id]
            self._release(run.config.dag_id)
            run.done.set_result(report)
        self.events.publish(RunEvent(run.run_id, None, final.value, error))
        log.info("run %d of %r ended: %s", run.run_id, run.config.dag_id, final, extra={"run_id": run.run_id})

    def _release(self, dag_id: str) -> None:
        """A run of ``dag_id`` ended (or failed to start): its turn goes to the oldest held run of the DAG."""
        if self._closing:
            return
        for run_id, held in self._held.items():
            if held.dag_id == dag_id and not held.starting:
                held.starting = True  # held still, so that waiting for it goes on until it has started
                self._background.spawn(self._start_held(run_id, held), name=f"start-held-run-{run_id}")
                return  # the turn passes on: the count of runs going stays
        self._admitted[dag_id] -= 1
        if self._admitted[dag_id] <= 0:
            del self._admitted[dag_id]

    async def _start_held(self, run_id: int, held: HeldRun) -> None:
        started = False
        try:
            started = await self._resume(run_id, admitted=True)
        except Exception:  # stored as failed by _start_or_fail if it could be
            log.exception("held run %d could not start", run_id)
        finally:
            if not started:
                self._release(held.dag_id)
            self._held.pop(run_id, None)
            if not held.started.done():
                held.started.set_result(None)


@dataclasses.dataclass(slots=True)
class HeldRun:
    """A run waiting for its DAG's ``max_active_runs``; ``started`` is set once it has started (or ended)."""

    dag_id: str
    started: asyncio.Future[None]
    starting: bool = False  # its turn has come


def _may_start(run: ActiveRun) -> bool:
    """Whether a run may start one more task now (its DAG's ``max_active_tasks``)."""
    limit = run.config.max_active_tasks
    return limit is None or len(run.running) + run.starting < limit


def make_executor(settings: Settings) -> Executor:
    """The executor ``TASKFLOW_EXECUTOR`` names: ``local`` (the default) or ``dask``."""
    if settings.executor == "local":
        return LocalExecutor()
    if settings.executor == "dask":
        from orchestrator.dask_executor import DaskExecutor  # optional extra, imported only when asked for

        return DaskExecutor(settings)
    raise TaskFlowError(f"TASKFLOW_EXECUTOR={settings.executor!r} is not known (use 'local' or 'dask')")


def _outcome(run: ActiveRun) -> tuple[RunState, str | None]:
    """The final state of a run whose tasks have all ended, and the first failure."""
    failed = next((s for s in run.slots.values() if s.state == TaskState.FAILED), None)
    error = f"task {failed.task_id!r} failed: {failed.error}" if failed else None
    if run.cancelled:
        return RunState.CANCELLED, error
    if all(s.state == TaskState.SUCCESS for s in run.slots.values()):
        return RunState.SUCCESS, None
    return RunState.FAILED, error


def _close_folder(run: ActiveRun, ended: RunRecord) -> RunReport:
    """Write ``run.json`` and the ZIP (blocking, so from a thread); the report the run ends with."""
    tasks = {slot.task_id: slot.record() for slot in run.slots.values()}
    counts = {state.value: n for state, n in collections.Counter(t.state for t in tasks.values()).items()}
    run.folder.write_report(ended, list(tasks.values()))
    archive = run.folder.make_archive()
    return RunReport(dataclasses.replace(ended, counts=counts, archive=str(archive)), tasks)


def _log_cancelled(run: ActiveRun, slot: TaskSlot, elapsed: float, by: str | None) -> None:
    if not run.cancelled:
        why = "the service is stopping (it runs again when it starts)"
    else:
        why = f"the run was cancelled by {by}" if by else "the run was cancelled"
    run.logger.warning(
        "attempt %d cancelled after %.3fs: %s", slot.attempts, elapsed, why, extra={"task": slot.task_id}
    )


def _interrupted(run: ActiveRun, worker: asyncio.Task[Any]) -> bool:
    """Whether a CancelledError in a worker came from cancelling its run (and only from that)."""
    return run.cancelled and worker.uncancel() == 0


def _run_logger(run_id: int, folder: RunFolder) -> logging.Logger:
    # Built outside logging's registry so loggers of ended runs are freed, not kept forever.
    logger = logging.Logger(f"taskflow.run.{run_id}", logging.INFO)
    logger.addHandler(folder.open_log())
    return logger


def _close_log(run: ActiveRun) -> None:
    for handler in list(run.logger.handlers):
        run.logger.removeHandler(handler)
        with contextlib.suppress(Exception):
            handler.close()
