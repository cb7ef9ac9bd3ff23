"""Where an operation attempt runs. The engine only knows this narrow interface."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from typing import Any, Protocol, TypeVar

from pydantic import ValidationError

from operations.base import Operation, OperationContext, OperationParams
from orchestrator.errors import PermanentOperationError
from orchestrator.validation import pydantic_problems

T = TypeVar("T")


class Executor(Protocol):
    """Runs one attempt of one operation and returns its output."""

    async def start(self) -> None:
        """Acquire what the executor needs (a cluster connection, ...)."""

    def execute(self, op: Operation, params: OperationParams, ctx: OperationContext) -> Awaitable[Any]:
        """Run ``op`` with ``params`` in ``ctx``; raise what the operation raises (an ``async def`` will do)."""

    async def close(self) -> None:
        """Release what ``start`` acquired."""


class LocalExecutor:
    """Runs operations in the service's own event loop, on the engine's worker pool."""

    async def start(self) -> None:
        """Nothing to acquire."""

    def execute(self, op: Operation, params: OperationParams, ctx: OperationContext) -> Awaitable[Any]:
        """The operation's own coroutine: no wrapper frame, as every attempt passes through here."""
        return op.fn(ctx, params)

    async def close(self) -> None:
        """Nothing to release."""


def validate_params(op: Operation, raw: Mapping[str, Any], where: str) -> OperationParams:
    """``raw`` as ``op``'s params model; a permanent failure naming each problem (``where``: when or where)."""
    try:
        return op.params_model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(str(p) for p in pydantic_problems(exc, "params"))
        raise PermanentOperationError(f"invalid params {where}: {problems}") from None


def with_timeout(attempt: Awaitable[T], seconds: float | None) -> Awaitable[T]:
    """``attempt``, failing with "timed out after Ns" after ``seconds`` (its own TimeoutError stays as is).

    Without a limit it is ``attempt`` itself, with no coroutine around it: most attempts have none.
    """
    return attempt if seconds is None else _limited(attempt, seconds)


async def _limited(attempt: Awaitable[T], seconds: float) -> T:
    limit = asyncio.timeout(seconds)
    try:
        async with limit:
            return await attempt
    except TimeoutError:
        if not limit.expired():
            raise
        raise TimeoutError(f"timed out after {seconds}s") from None
