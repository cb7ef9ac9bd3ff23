"""Operations that only shape the flow: ``noop`` and ``sleep``."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import Field

from operations.base import OperationContext, OperationParams
from operations.registry import operation


class NoopParams(OperationParams):
    """``value`` (optional) is passed through as the output."""

    value: Any = None


@operation("noop")
async def noop(ctx: OperationContext, params: NoopParams) -> Any:
    """Do nothing; return ``value`` (useful to join branches or to test a DAG)."""
    return params.value


class SleepParams(OperationParams):
    """How long to wait."""

    seconds: float = Field(ge=0, le=24 * 3600)


@operation("sleep", holds_worker=False)  # waiting needs no worker: a sleeping run never starves others
async def sleep(ctx: OperationContext, params: SleepParams) -> None:
    """Wait ``seconds``; no output (so no output file)."""
    await asyncio.sleep(params.seconds)
