"""The context manager every operation attempt runs in (the seed's "context managers for isolation").

It hands the operation its run folder (``ctx.path`` refuses any path outside it), a logger into the
run's ``run.log`` and the shared resources, and records how the attempt ended, whatever happens.
A plain (not async) class: it is entered once per attempt, on the hot path, and waits for nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from types import TracebackType

from operations.base import OperationContext, Resources


class operation_context:
    """``with operation_context(...) as ctx``: the context of one attempt."""

    __slots__ = ("_ctx", "_started")

    def __init__(
        self,
        *,
        run_id: int,
        dag_id: str,
        task_id: str,
        attempt: int,
        folder: Path,
        run_logger: logging.Logger,
        resources: Resources,
        timeout: float | None = None,
    ) -> None:
        logger = logging.LoggerAdapter(run_logger, {"task": task_id})
        self._ctx = OperationContext(run_id, dag_id, task_id, attempt, folder, logger, resources, timeout=timeout)
        self._started = 0.0

    def __enter__(self) -> OperationContext:
        self._started = time.perf_counter()
        return self._ctx

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None and not isinstance(exc, asyncio.CancelledError):  # the engine logs who cancelled it
            elapsed = time.perf_counter() - self._started
            self._ctx.logger.warning("attempt %d failed after %.3fs: %s", self._ctx.attempt, elapsed, _brief(exc))


def _brief(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
