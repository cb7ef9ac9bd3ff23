"""Disk used by 10,000 small runs, before and after a cleanup that keeps each DAG's newest run.

Run from the repo root: ``.venv/bin/python bench/retention.py`` (``--runs N`` to choose, ``--zip-only``
to remove each successful run's folder once its ZIP is written, as ``TASKFLOW_ZIP_ONLY`` does).

Each run is a two-task DAG (``noop`` then a small ``json_to_string``), run through the real
``Orchestrator`` on a fresh temporary data dir, 100 at a time. Disk is the database (with its WAL)
plus ``dag/`` (folders and ZIPs), in bytes actually allocated. The cleanup is the one
``main.py cleanup --older-than 0d`` does. SQLite keeps the pages it freed for later rows (the file
does not shrink), so the database's figure after cleanup is also shown after a ``VACUUM``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sqlite3
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from orchestrator.engine import Orchestrator  # noqa: E402
from orchestrator.retention import Retention, clean, limits_of  # noqa: E402
from orchestrator.settings import Settings  # noqa: E402
from orchestrator.store import Store  # noqa: E402
from orchestrator.validation import parse_config  # noqa: E402

RUNS = 10_000
BATCH = 100
CONFIG = {
    "dag_name": "small",
    "tasks": [
        {"id": "a", "operation": "noop", "independent_params": {"value": {"n": 1}}},
        {
            "id": "b",
            "operation": "json_to_string",
            "dependencies": ["a"],
            "independent_params": {"template": "n is {n}"},
            "dependent_params": {"data": "a"},
        },
    ],
}


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Orchestrator]:
    async with Store(settings.db_path) as store, Orchestrator(settings, store) as orch:
        yield orch


def allocated(path: Path) -> int:
    """Bytes the files under ``path`` (or ``path`` itself) take on disk."""
    files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
    return sum(f.stat().st_blocks * 512 for f in files)


def disk(settings: Settings) -> tuple[int, int]:
    """(database with its WAL, run folders and ZIPs) in bytes."""
    db = sum(allocated(p) for p in settings.data_dir.glob(settings.db_path.name + "*") if p.is_file())
    return db, allocated(settings.runs_dir) if settings.runs_dir.exists() else 0


def mib(n: int) -> str:
    return f"{n / 2**20:8.1f} MiB"


async def fill(settings: Settings, runs: int) -> float:
    config = parse_config(CONFIG)
    started = time.perf_counter()
    async with running(settings) as orch:
        retention = Retention(settings, orch, orch.store)
        retention.attach()
        for first in range(0, runs, BATCH):
            ids = [await orch.submit(config) for _ in range(min(BATCH, runs - first))]
            reports = [await orch.wait(run_id) for run_id in ids]
            assert all(r.state == "success" for r in reports), reports
        retention.detach()
        await retention.close()
    return time.perf_counter() - started


async def cleanup(settings: Settings) -> tuple[int, int, float]:
    started = time.perf_counter()
    async with running(settings) as orch:
        limits = await limits_of(settings, orch.store, keep_days=0.0)
        freed = await clean(settings, orch.store, limits)
    return len(freed.run_ids), freed.bytes, time.perf_counter() - started


def report(label: str, settings: Settings) -> None:
    db, files = disk(settings)
    print(f"{label:<26} database {mib(db)}   folders and ZIPs {mib(files)}   total {mib(db + files)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--zip-only", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="taskflow-retention-") as tmp:
        settings = Settings(data_dir=Path(tmp), port=0, zip_only=args.zip_only)
        took = asyncio.run(fill(settings, args.runs))
        print(f"{args.runs} runs of a 2-task DAG in {took:.1f} s (zip-only: {args.zip_only})")
        report("before cleanup", settings)
        deleted, freed, took = asyncio.run(cleanup(settings))
        print(f"cleanup deleted {deleted} runs in {took:.1f} s; it reports {mib(freed).strip()} freed")
        report("after cleanup", settings)
        with sqlite3.connect(settings.db_path) as db:
            db.execute("VACUUM")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        report("after cleanup and VACUUM", settings)


if __name__ == "__main__":
    main()
