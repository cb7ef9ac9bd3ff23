"""The context manager every operation attempt runs in (the seed's "context managers for isolation").

It hands the operation its run folder (``ctx.path`` refuses any path outside it), a logger into the
run's ``run.log`` and the shared resources, and records how the attempt ended, whatever happens.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

from operations.base import OperationContext, Resources


@contextlib.asynccontextmanager
async def operation_context(
    *,
    run_id: int,
    dag_id: str,
    task_id: str,
    attempt: int,
    folder: Path,
    run_logger: logging.Logger,
    resources: Resources,
) -> AsyncIterator[OperationContext]:
    """Yield the context of one attempt; log how it failed, if it did."""
    logger = logging.LoggerAdapter(run_logger, {"task": task_id})
    ctx = OperationContext(run_id, dag_id, task_id, attempt, folder, logger, resources)
    started = time.perf_counter()
    try:
        yield ctx
    except BaseException as exc:
        logger.warning("attempt %d failed after %.3fs: %s", attempt, time.perf_counter() - started, _brief(exc))
        raise


def _brief(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
