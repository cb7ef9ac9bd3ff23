"""How long a one-task run waits while another DAG's run keeps every worker's worth of work going.

Cases, each on a fresh data dir with default settings (16 workers), with real sleeps:

- **sleep backlog**: a run of 16 ``sleep 8`` tasks starts; 0.5 s later a one-task ``noop`` run is
  submitted. Target: it ends within 1 s of its submission (``sleep`` holds no worker).
- **busy backlog**: a run of 64 tasks that each hold a worker for 0.5 s (an operation registered
  here, as real work does) starts; 0.2 s later the one-task run. Fair turns start it at the next free
  worker: target within 1 s, where a first-in-first-out queue would take about 2 s (64 / 16 x 0.5 s).
- **max_active_tasks=4** on the busy backlog: the backlog may hold only 4 workers, so the one-task
  run needs no turn at all; and the backlog's most tasks at once must be 4.

Run: ``.venv/bin/python bench/fairness.py`` (about 20 s).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pydantic import Field

from operations.base import OperationContext, OperationParams
from operations.registry import operation
from orchestrator.engine import Orchestrator
from orchestrator.models import DagConfig
from orchestrator.settings import Settings
from orchestrator.store import Store

TARGET_S = 1.0


class BusyParams(OperationParams):
    seconds: float = Field(gt=0)


@operation("bench_busy")
async def busy(ctx: OperationContext, params: BusyParams) -> None:
    """Holds its worker for ``seconds`` (as CPU or blocking I/O would)."""
    await asyncio.sleep(params.seconds)


def config(name: str, n: int, op: str, params: dict[str, Any], **extra: Any) -> DagConfig:
    tasks = [{"id": f"t{i}", "operation": op, "independent_params": params} for i in range(n)]
    return DagConfig.model_validate({"dag_name": name, "tasks": tasks, **extra})


async def case(backlog: DagConfig, delay: float) -> tuple[float, float, int]:
    """(the one-task run's wall from submission, the backlog's wall, the backlog's most tasks at once)."""
    with tempfile.TemporaryDirectory(prefix="taskflow-fair-") as tmp:
        settings = Settings(data_dir=Path(tmp), port=0)  # default workers
        async with Store(settings.db_path) as store, Orchestrator(settings, store) as orch:
            started = time.perf_counter()
            big = await orch.submit(backlog)
            await asyncio.sleep(delay)
            submitted = time.perf_counter()
            await orch.run(config("one_task", 1, "noop", {}))
            small_wall = time.perf_counter() - submitted
            report = await orch.wait(big)
            big_wall = time.perf_counter() - started
    edges = sorted(
        [(t.started_at, 1) for t in report.tasks.values()] + [(t.ended_at, -1) for t in report.tasks.values()]
    )
    now = most = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return small_wall, big_wall, most


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


async def main() -> None:
    cases = [
        ("sleep backlog: 16 x sleep 8", config("sleepers", 16, "sleep", {"seconds": 8}), 0.5, None),
        ("busy backlog: 64 x 0.5 s holding a worker", config("busy", 64, "bench_busy", {"seconds": 0.5}), 0.2, None),
        ("busy backlog, max_active_tasks=4", config("capped", 64, "bench_busy", {"seconds": 0.5},
                                                    max_active_tasks=4), 0.2, 4),
    ]  # fmt: skip
    for title, backlog, delay, cap in cases:
        small, big, most = await case(backlog, delay)
        extra = f"; backlog's most at once {most} (cap {cap}: {verdict(most <= cap)})" if cap else ""
        print(
            f"{title}: one-task run ended {small:.3f} s after submission "
            f"(target < {TARGET_S:g} s: {verdict(small < TARGET_S)}); backlog took {big:.2f} s{extra}"
        )


if __name__ == "__main__":
    asyncio.run(main())
