"""A CPU-bound operation for ``bench/dask.py``.

It lives in a module of its own because Dask workers must import it: the worker-side wrapper looks the
operation up by name and, when its registry does not know it, imports the module the operation was
registered from (``bench.cpu_op``; the benchmark puts the repo root on the workers' ``PYTHONPATH``).
"""

from __future__ import annotations

import time

from pydantic import Field

from operations.base import OperationContext, OperationParams
from operations.registry import operation


class BurnParams(OperationParams):
    """How much work: iterations of a small arithmetic loop (calibrated by the benchmark)."""

    loops: int = Field(gt=0)


def burn(loops: int) -> int:
    """Pure-Python arithmetic that holds the GIL the whole time: no sleeping, no I/O."""
    total = 0
    for i in range(loops):
        total += i * i % 7
    return total


def loops_for(seconds: float) -> int:
    """How many ``burn`` loops take ``seconds`` on this machine (best of 5 short samples)."""
    sample = 200_000
    best = min(_timed(sample) for _ in range(5))
    return max(1, round(sample * seconds / best))


def _timed(loops: int) -> float:
    started = time.perf_counter()
    burn(loops)
    return time.perf_counter() - started


@operation("bench_cpu")
async def bench_cpu(ctx: OperationContext, params: BurnParams) -> int:
    """Spend CPU for a fixed amount of work (not a fixed time, so contention shows in the wall time)."""
    return burn(params.loops)
