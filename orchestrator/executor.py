"""Where an operation attempt runs. The engine only knows this narrow interface."""

from __future__ import annotations

from typing import Any, Protocol

from operations.base import Operation, OperationContext, OperationParams
from orchestrator.errors import TaskFlowError
from orchestrator.settings import Settings


class Executor(Protocol):
    """Runs one attempt of one operation and returns its output."""

    async def start(self) -> None:
        """Acquire what the executor needs (a cluster connection, ...)."""

    async def execute(self, op: Operation, params: OperationParams, ctx: OperationContext) -> Any:
        """Run ``op`` with ``params`` in ``ctx``; raise what the operation raises."""

    async def close(self) -> None:
        """Release what ``start`` acquired."""


class LocalExecutor:
    """Runs operations in the service's own event loop, on the engine's worker pool."""

    async def start(self) -> None:
        """Nothing to acquire."""

    async def execute(self, op: Operation, params: OperationParams, ctx: OperationContext) -> Any:
        """Await the operation directly."""
        return await op.fn(ctx, params)

    async def close(self) -> None:
        """Nothing to release."""


def make_executor(settings: Settings) -> Executor:
    """The executor ``TASKFLOW_EXECUTOR`` names: ``local`` (the default) or ``dask``."""
    if settings.executor == "local":
        return LocalExecutor()
    if settings.executor == "dask":
        from orchestrator.dask_executor import DaskExecutor  # optional extra, imported only when asked for

        return DaskExecutor(settings)
    raise TaskFlowError(f"TASKFLOW_EXECUTOR={settings.executor!r} is not known (use 'local' or 'dask')")
