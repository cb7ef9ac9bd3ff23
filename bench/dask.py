"""Benchmark: a 1,000-task DAG of 50 ms CPU-bound tasks, run locally and on a 2-worker Dask LocalCluster.

Run from the repo root: ``.venv/bin/python bench/dask.py`` (``--tasks``, ``--task-ms``, ``--workers`` to
change the shape). Needs the Dask extra (``pip install -r requirements-dask.txt``). Prints both wall times,
their ratio, and the ideal for the cluster (the CPU work divided by its workers).

The operation is ``bench_cpu`` (``bench/cpu_op.py``): a fixed amount of pure-Python arithmetic, calibrated
here to take ``--task-ms`` on one core, so tasks sharing a core take longer in wall time. Locally every
task runs on the service's event loop, one at a time whatever ``TASKFLOW_WORKERS`` is; on the cluster
each worker process runs one at a time, in parallel. The DAG is layered (layers of 100; each task after
the first layer depends on 2 random tasks of the layer before; seeded). Both runs go through the real
``Orchestrator`` with SQLite persistence; the timer wraps ``await orch.run(config)`` only, after a short
warm-up run on the same orchestrator (workers import TaskFlow on their first task).
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named dask.py: its own folder must not be on sys.path, or `import dask` would import it.
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

SEED = 20_240_601
LAYER_WIDTH = 100


def layered(n: int, width: int, rng: random.Random) -> dict[str, list[str]]:
    """Layers of ``width`` tasks; each task past the first layer depends on 2 random tasks of the layer before."""
    deps: dict[str, list[str]] = {}
    previous: list[str] = []
    for start in range(0, n, width):
        layer = [f"t{i:05d}" for i in range(start, min(start + width, n))]
        for task_id in layer:
            deps[task_id] = sorted(rng.sample(previous, min(2, len(previous)))) if previous else []
        previous = layer
    return deps


def make_config(name: str, n: int, loops: int) -> Any:
    """The benchmark DAG: ``n`` ``bench_cpu`` tasks of ``loops`` loops each."""
    from orchestrator.models import DagConfig, TaskConfig

    deps = layered(n, LAYER_WIDTH, random.Random(SEED + n))
    tasks = [
        TaskConfig(id=task_id, operation="bench_cpu", independent_params={"loops": loops}, dependencies=parents)
        for task_id, parents in deps.items()
    ]
    return DagConfig(dag_name=name, tasks=tasks)


async def timed_run(settings: Any, executor: Any, config: Any, warmup: Any) -> float:
    """Wall time of one run of ``config`` on a fresh orchestrator (after a warm-up run); fails loudly."""
    from orchestrator.engine import Orchestrator
    from orchestrator.states import RunState
    from orchestrator.store import Store

    async with Store(settings.db_path) as store, Orchestrator(settings, store, executor=executor) as orch:
        await orch.run(warmup)
        started = time.perf_counter()
        report = await orch.run(config)
        wall = time.perf_counter() - started
    if report.state != RunState.SUCCESS:
        raise SystemExit(f"the {settings.executor} run ended {report.state}: {report.run.error}")
    return wall


async def run_local(data_dir: Path, config: Any, warmup: Any) -> float:
    """The DAG on the default executor: in the service's own process."""
    from orchestrator.executor import LocalExecutor
    from orchestrator.settings import Settings

    settings = Settings(data_dir=data_dir / "local", executor="local")
    return await timed_run(settings, LocalExecutor(), config, warmup)


async def run_dask(data_dir: Path, config: Any, warmup: Any, workers: int) -> tuple[float, float]:
    """The DAG on a LocalCluster of ``workers`` single-threaded processes; (wall, cluster start) seconds."""
    import distributed

    from orchestrator.dask_executor import LOCAL_CLUSTER_HTTP, DaskExecutor
    from orchestrator.settings import Settings

    logging.getLogger("distributed").setLevel(logging.WARNING)  # its import sets INFO: too chatty here

    started = time.perf_counter()
    async with distributed.LocalCluster(
        asynchronous=True,
        processes=True,
        n_workers=workers,
        threads_per_worker=1,
        dashboard_address=LOCAL_CLUSTER_HTTP,
    ) as cluster:
        startup = time.perf_counter() - started
        address = cluster.scheduler_address
        settings = Settings(data_dir=data_dir / "dask", executor="dask", dask_address=address)
        wall = await timed_run(settings, DaskExecutor(settings), config, warmup)
    return wall, startup


def parse_args() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000, help="tasks in the DAG (default 1000)")
    parser.add_argument("--task-ms", type=float, default=50.0, help="CPU time of one task on one core (default 50)")
    parser.add_argument("--workers", type=int, default=2, help="Dask worker processes (default 2)")
    return parser.parse_args()


async def main() -> None:
    """Calibrate, run both ways, print the figures."""
    from bench import cpu_op  # registers bench_cpu here; the workers import it by name

    args = parse_args()
    loops = cpu_op.loops_for(args.task_ms / 1000)
    config = make_config("bench_dask", args.tasks, loops)
    warmup = make_config("bench_dask_warmup", min(args.tasks, 2 * args.workers), loops)
    cpu_s = args.tasks * args.task_ms / 1000
    load = os.getloadavg()[0]  # other work on the machine skews both figures: say how busy it was
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPU(s), load {load:.2f} before the start")
    print(f"{args.tasks} tasks of {args.task_ms:g} ms", end=" ")
    print(f"({loops:,} loops each); CPU work in all: {cpu_s:.1f} s\n")
    with tempfile.TemporaryDirectory(prefix="taskflow-bench-dask-") as tmp:
        local = await run_local(Path(tmp), config, warmup)
        print(f"local executor (one process)         {local:7.2f} s   ideal {cpu_s:6.2f} s")
        remote, startup = await run_dask(Path(tmp), config, warmup, args.workers)
    ideal = cpu_s / args.workers
    print(f"Dask, LocalCluster of {args.workers} processes      {remote:7.2f} s   ideal {ideal:6.2f} s")
    print(f"\nspeed-up local / Dask: {local / remote:.2f}x  (ideal {args.workers}x)")
    overhead_ms = (remote - ideal) / args.tasks * args.workers * 1000
    print(f"Dask time over its ideal, per task and worker: {overhead_ms:.1f} ms; cluster start {startup:.1f} s")


if __name__ == "__main__":  # LocalCluster spawns worker processes, which import this module again
    # The workers are new processes: give them the repo root so they import TaskFlow and bench.cpu_op.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main())
