"""Run operation attempts on a Dask distributed cluster (``TASKFLOW_EXECUTOR=dask``).

The orchestrator keeps the queue, the dependencies, the retries and the SQLite state; Dask only runs
single attempts. Each attempt is submitted on its own (``pure=False``, a key unique per run, task and
attempt), its result fetched, and its future released at once: a result held on a worker would be
recomputed if that worker died, re-running the operation's side effects. Cancelling a Dask future does
not stop a coroutine already running on a worker, so an attempt this side gives up (the engine's
timeout, a cancelled run, the service stopping) is also stopped on the workers (``stop_remote``), and
the task's timeout (``OperationContext.timeout``) is enforced on the worker itself.

What runs where:

- On a worker: every operation with ``remote_ok=True`` except those in ``LOCAL_OPERATIONS``. The
  worker rebuilds an ``OperationContext`` there: a scratch folder of its own instead of the run
  folder (which is not on that machine), a logger whose lines come back with the result and are
  appended to ``run.log`` here, its own aiohttp session, no bot, ``local=False``. Params travel as
  plain JSON data and are validated again against the worker's registry.
- Here, through a ``LocalExecutor``: ``remote_ok=False`` operations (``telegram_send`` needs the
  service's bot) and ``read_file`` (it reads the run folder, which only exists here).

Failures: what the operation raises comes back inside the outcome (so its log lines survive) and is
raised here as the same kind of error. ``KilledWorker`` (the task's workers kept dying) is a failed
attempt; a lost scheduler connection is ``ExecutorUnavailableError``, which makes the engine run the
attempt again from its own state, while this executor reconnects.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import logging
import math
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from operations import destinations
from operations.base import Operation, OperationContext, OperationParams, Resources
from operations.destinations import DestinationPolicy
from operations.registry import get_operation
from orchestrator.background import TaskSet
from orchestrator.errors import (
    ExecutorUnavailableError,
    OperationError,
    PermanentOperationError,
    TaskFlowError,
    describe,
)
from orchestrator.executor import LocalExecutor, validate_params, with_timeout
from orchestrator.settings import Settings

try:
    import distributed
except ImportError:  # the optional extra is missing: DaskExecutor() says how to install it
    distributed = None  # type: ignore[assignment]

log = logging.getLogger("taskflow.dask")

MISSING_EXTRA = "TASKFLOW_EXECUTOR=dask needs the optional extra: pip install -r requirements-dask.txt"
# Operations that need the run folder, which only exists on the service's machine.
LOCAL_OPERATIONS = frozenset({"read_file"})
# How long the service waits for the scheduler when it starts, and when it connects again later
# (short, so an attempt is handed back to the engine quickly while the scheduler is down).
START_TIMEOUT_S = 30.0
RECONNECT_TIMEOUT_S = 5.0
# At most one new connection attempt per this many seconds, however many tasks are waiting.
RECONNECT_PAUSE_S = 1.0
# Where a LocalCluster's scheduler serves HTTP (the dashboard when bokeh is installed). Not the default
# (None binds 8787 anyway, and only warns and moves when that port is taken); a free port, on this host only.
LOCAL_CLUSTER_HTTP = "127.0.0.1:0"
# How long a request to stop an abandoned attempt on the workers may take.
STOP_TIMEOUT_S = 5.0

_TIMEOUT, _PERMANENT, _RETRYABLE = "timeout", "permanent", "retryable"


# -- what travels to the worker and back --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RemoteTask:
    """One attempt as plain, picklable data: what a worker needs to rebuild and run it."""

    key: str  # the Dask key, also used to stop the attempt on its worker
    operation: str
    module: str  # where the operation registers itself; imported on the worker if it is not known there
    params: dict[str, Any]
    run_id: int
    dag_id: str
    task_id: str
    attempt: int
    timeout: float | None
    allow_shell: bool
    max_output_bytes: int
    destinations: DestinationPolicy


@dataclass(frozen=True, slots=True)
class RemoteOutcome:
    """What a worker sends back: the output or the error, and the log lines written meanwhile."""

    output: Any = None
    error: str | None = None
    error_kind: str = ""
    lines: tuple[tuple[int, str], ...] = ()
    worker: str = ""
    duration_s: float = 0.0

    def unwrap(self, logger: logging.Logger | logging.LoggerAdapter[logging.Logger]) -> Any:
        """Append the worker's log lines to the run's log, then return the output or raise the error."""
        for level, line in self.lines:
            logger.log(level, "%s", line)
        logger.info("ran on Dask worker %s in %.3fs", self.worker, self.duration_s)
        if self.error is None:
            return self.output
        if self.error_kind == _TIMEOUT:
            raise TimeoutError(self.error)
        if self.error_kind == _PERMANENT:
            raise PermanentOperationError(self.error)
        raise OperationError(self.error)


# -- the worker side ----------------------------------------------------------------------------


# The attempts running on this worker, by key, so that ``stop_remote`` can reach them.
_running: dict[str, asyncio.Task[Any]] = {}


async def run_remote(task: RemoteTask) -> RemoteOutcome:
    """Run one attempt on a Dask worker (an ``async def``, so it runs on the worker's event loop)."""
    lines: list[tuple[int, str]] = []
    worker, scratch_root = _worker_place()
    started = time.perf_counter()
    # A task of its own, so that stop_remote can cancel the operation and nothing of Dask's.
    attempt = asyncio.create_task(
        _run_operation(task, _collecting_logger(task.task_id, lines), scratch_root), name=f"taskflow-{task.key}"
    )
    _running[task.key] = attempt
    try:
        output = await attempt
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # the worker itself is closing
        return _failed("stopped: the service abandoned the attempt", _RETRYABLE, lines, worker, started)
    except Exception as exc:  # returned, not raised: an exception would lose the log lines
        return _failed(*_error_kind(exc), lines, worker, started)
    finally:
        _running.pop(task.key, None)
    return RemoteOutcome(output, None, "", tuple(lines), worker, time.perf_counter() - started)


def stop_remote(key: str) -> bool:
    """Cancel attempt ``key`` if it runs here; called through ``Client.run``, so on the worker's event loop."""
    attempt = _running.get(key)
    if attempt is None:
        return False
    attempt.cancel()
    return True


def _failed(message: str, kind: str, lines: list[tuple[int, str]], worker: str, started: float) -> RemoteOutcome:
    return RemoteOutcome(None, message, kind, tuple(lines), worker, time.perf_counter() - started)


async def _run_operation(task: RemoteTask, logger: logging.Logger, scratch_root: str | None) -> Any:
    op = _lookup(task)
    params = validate_params(op, task.params, "on the Dask worker")
    scratch = Path(tempfile.mkdtemp(prefix=f"taskflow-{task.run_id}-{task.task_id}-", dir=scratch_root))
    try:
        async with destinations.session(task.destinations) as http:
            resources = Resources(
                http=http,
                allow_shell=task.allow_shell,
                max_output_bytes=task.max_output_bytes,
                destinations=task.destinations,
            )
            ctx = OperationContext(
                run_id=task.run_id,
                dag_id=task.dag_id,
                task_id=task.task_id,
                attempt=task.attempt,
                folder=scratch,
                logger=logger,
                resources=resources,
                local=False,
                timeout=task.timeout,
            )
            # The engine's timeout only abandons the future; this one stops the coroutine on the worker.
            return await with_timeout(op.fn(ctx, params), ctx.timeout)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _lookup(task: RemoteTask) -> Operation:
    op = get_operation(task.operation)
    if op is None and task.module:
        try:
            importlib.import_module(task.module)  # its decorators register the operation, as on the service
        except ImportError as exc:
            raise PermanentOperationError(f"the Dask worker cannot import {task.module!r}: {exc}") from None
        op = get_operation(task.operation)
    if op is None:
        raise PermanentOperationError(f"operation {task.operation!r} is not installed on the Dask worker")
    return op


def _worker_place() -> tuple[str, str | None]:
    """The worker's address, and its own directory to put scratch folders in."""
    try:
        worker = distributed.get_worker()
    except ValueError:  # not on a worker (called directly): the system's temp dir will do
        return "(not a worker)", None
    return str(worker.address), str(worker.local_directory)


class _Collector(logging.Handler):
    """Keeps each record's level and message, to be sent back with the outcome."""

    def __init__(self, lines: list[tuple[int, str]]) -> None:
        super().__init__(logging.INFO)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.levelno, record.getMessage()))


def _collecting_logger(task_id: str, lines: list[tuple[int, str]]) -> logging.Logger:
    # Built outside logging's registry (like the engine's run loggers) so it is freed with the task.
    logger = logging.Logger(f"taskflow.remote.{task_id}", logging.INFO)
    logger.addHandler(_Collector(lines))
    return logger


def _error_kind(exc: Exception) -> tuple[str, str]:
    """The error as (message, kind), worded as the engine words the same error from a local run."""
    if isinstance(exc, TimeoutError):
        return describe(exc), _TIMEOUT
    if isinstance(exc, PermanentOperationError):
        return describe(exc), _PERMANENT
    return describe(exc), _RETRYABLE


# -- the service side ---------------------------------------------------------------------------


def runs_remotely(op: Operation) -> bool:
    """Whether ``op`` is sent to the cluster (see the module docstring for what stays here)."""
    return op.remote_ok and op.name not in LOCAL_OPERATIONS


def local_cluster_shape(workers: int) -> tuple[int, int]:
    """(processes, slots per process) of the LocalCluster started when no address is set.

    One process per core, at most ``TASKFLOW_WORKERS`` of them, and ``TASKFLOW_WORKERS`` slots in all:
    Dask runs ``async def`` tasks on each worker's event loop, so its "threads" only bound how many run
    at once, and I/O-bound operations keep the concurrency they have locally.
    """
    processes = max(1, min(os.cpu_count() or 1, workers))
    return processes, max(1, math.ceil(workers / processes))


class DaskExecutor:
    """Sends attempts to the Dask scheduler at ``TASKFLOW_DASK_ADDRESS``, or to a LocalCluster it starts."""

    def __init__(self, settings: Settings) -> None:
        if distributed is None:
            raise TaskFlowError(MISSING_EXTRA)
        self._address = settings.dask_address or None
        self._workers = settings.workers
        self._cluster: Any = None  # distributed.LocalCluster, when no address is given
        self._client: Any = None  # distributed.Client
        self._local = LocalExecutor()
        self._token = uuid.uuid4().hex[:8]  # keeps the keys of two services sharing a cluster apart
        self._reconnecting = asyncio.Lock()
        self._next_connect = 0.0
        self._stopping = TaskSet()  # requests to stop abandoned attempts on the workers
        self._lost = False  # whether the loss of the scheduler has been logged

    @property
    def target(self) -> str:
        """Where attempts go, for messages."""
        return self._address or "a LocalCluster"

    async def start(self) -> None:
        """Start the LocalCluster if no address is set, and connect to the scheduler."""
        if self._address is None:
            processes, slots = local_cluster_shape(self._workers)
            # Processes, not threads: a CPU-bound operation in one worker does not stall the others.
            self._cluster = await distributed.LocalCluster(
                asynchronous=True,
                processes=True,
                n_workers=processes,
                threads_per_worker=slots,
                dashboard_address=LOCAL_CLUSTER_HTTP,
            )
        try:
            if self._address is not None:
                _check_address(self._address)
            self._client = await self._connect(START_TIMEOUT_S)
        except Exception as exc:  # a malformed address (ValueError), no scheduler, or not a Dask port at all
            await self.close()
            raise TaskFlowError(f"cannot reach the Dask scheduler at {self.target}: {describe(exc)}") from None
        log.info("Dask executor connected to %s", self._client.scheduler.address)

    async def execute(self, op: Operation, params: OperationParams, ctx: OperationContext) -> Any:
        """Run the attempt on a worker (or here, for the operations that must stay here)."""
        if not runs_remotely(op):
            return await self._local.execute(op, params, ctx)
        client = await self._ready_client()
        key = f"taskflow-{ctx.run_id}-{ctx.task_id}-{ctx.attempt}-{self._token}"
        future = client.submit(run_remote, _remote_task(key, op, params, ctx), key=key, pure=False)
        try:
            outcome: RemoteOutcome = await future
        except asyncio.CancelledError:  # the engine's timeout, a cancelled run, or the service stopping
            self._stop_remote(client, key)
            raise
        except Exception as exc:  # only Dask's own failures: the task's come back inside the outcome
            raise _dask_failure(exc, self.target) from exc
        finally:
            future.release()  # at once: a held result is recomputed (side effects again) if its worker dies
        return outcome.unwrap(ctx.logger)

    async def close(self) -> None:
        """Let pending stop requests go out, disconnect, then stop the LocalCluster this executor started."""
        await self._stopping.close(cancel=False)
        client, self._client = self._client, None
        if client is not None:
            await client.close()
        cluster, self._cluster = self._cluster, None
        if cluster is not None:
            await cluster.close()

    async def _connect(self, wait_s: float) -> Any:
        target = self._cluster if self._cluster is not None else self._address
        return await distributed.Client(target, asynchronous=True, timeout=wait_s, set_as_default=False)

    async def _ready_client(self) -> Any:
        """The connected client; or ExecutorUnavailableError at once while the scheduler is away."""
        client = self._client
        if client is not None and client.status == "running":
            return client
        if not self._lost:
            self._lost = True
            log.warning("lost the Dask scheduler at %s; tasks wait in the queue until it answers", self.target)
        # While the client reconnects by itself (for its connect timeout), or another attempt is
        # connecting, or the last try failed a moment ago: hand the attempt back to the engine.
        reconnecting = client is not None and client.status in ("connecting", "newly-created")
        if reconnecting or self._reconnecting.locked() or time.monotonic() < self._next_connect:
            raise ExecutorUnavailableError(f"lost the Dask scheduler at {self.target}; reconnecting", started=False)
        async with self._reconnecting:
            return await self._reconnect()

    async def _reconnect(self) -> Any:
        """A new client, once the old one gave up reconnecting."""
        old, self._client = self._client, None
        if old is not None:
            await old.close()
        try:
            self._client = await self._connect(RECONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            self._next_connect = time.monotonic() + RECONNECT_PAUSE_S
            message = f"the Dask scheduler at {self.target} is unreachable: {describe(exc)}"
            raise ExecutorUnavailableError(message, started=False) from None
        self._lost = False
        log.info("Dask executor reconnected to %s", self.target)
        return self._client

    def _stop_remote(self, client: Any, key: str) -> None:
        # Releasing the future does not stop a coroutine already running on a worker: ask them all
        # (the one running it is not known here), in the background, as this attempt is being cancelled.
        self._stopping.spawn(_broadcast_stop(client, key), name=f"dask-stop-{key}")


def _check_address(address: str) -> None:
    """``ValueError`` for a malformed scheduler address, before a client is made (one that fails half-built leaks)."""
    from distributed.comm.registry import get_backend

    scheme, location = distributed.comm.parse_address(address)
    get_backend(scheme)
    if scheme in ("tcp", "tls"):
        distributed.comm.parse_host_port(location)


async def _broadcast_stop(client: Any, key: str) -> None:
    try:
        async with asyncio.timeout(STOP_TIMEOUT_S):
            await client.run(stop_remote, key, on_error="ignore")
    except Exception as exc:  # the scheduler is gone too: the worker-side timeout is what is left
        log.warning("could not stop %s on the Dask workers: %s", key, exc)


def _remote_task(key: str, op: Operation, params: OperationParams, ctx: OperationContext) -> RemoteTask:
    module = op.fn.__module__
    return RemoteTask(
        key=key,
        operation=op.name,
        module="" if module == "__main__" else module,  # the worker's __main__ is not the service's
        # JSON-ready data, by alias (``http_request``'s ``json``); defaults are filled in on the worker.
        params=params.model_dump(mode="json", by_alias=True, exclude_unset=True),
        run_id=ctx.run_id,
        dag_id=ctx.dag_id,
        task_id=ctx.task_id,
        attempt=ctx.attempt,
        timeout=ctx.timeout,
        allow_shell=ctx.resources.allow_shell,
        max_output_bytes=ctx.resources.max_output_bytes,
        destinations=ctx.resources.destinations,
    )


def _dask_failure(exc: Exception, target: str) -> TaskFlowError:
    """What a failure of Dask itself means for the attempt."""
    summary = _summary(exc)
    if isinstance(exc, distributed.KilledWorker):  # its workers kept dying: blame the task, like Dask does
        return OperationError(f"the Dask workers running it died ({summary})")
    missing = _import_error_in(exc)
    if missing is not None:  # the scheduler or a worker cannot unpickle the task wrapper: no retry helps
        return PermanentOperationError(
            f"the Dask cluster at {target} cannot import TaskFlow ({_summary(missing)}); run its scheduler"
            " and workers with the same TaskFlow checkout on PYTHONPATH"
        )
    if isinstance(exc, concurrent.futures.CancelledError | OSError):
        # Not the task's fault (the scheduler went away; comm errors are OSErrors): the engine runs it again
        # without counting a failure.
        return ExecutorUnavailableError(f"the Dask cluster at {target} lost the attempt ({summary})")
    return OperationError(f"Dask failed to run it ({summary})")


def _summary(exc: BaseException) -> str:
    lines = str(exc).splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _import_error_in(exc: BaseException) -> ImportError | None:
    """An ImportError in ``exc``'s chain (Dask wraps it in a RuntimeError about deserialization)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ImportError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
