"""Retention: which runs go, what deleting one removes (rows, journal, folder, ZIP), ZIP-only folders, the CLI."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from orchestrator.engine import Orchestrator
from orchestrator.library import DagLibrary
from orchestrator.retention import Limits, Retention, choose, clean, limits_of, parse_age
from orchestrator.rundir import RunFolder
from orchestrator.settings import Settings
from orchestrator.states import RunState
from orchestrator.validation import parse_config
from tests.engine_harness import running
from tests.test_cli import cli

DAY = 86400.0
NOW = 100 * DAY
OK = RunState.SUCCESS


def dag(name: str, seconds: float = 0.0, **extra: Any) -> Any:
    task = {"id": "t", "operation": "sleep", "independent_params": {"seconds": seconds}}
    return parse_config({"dag_name": name, "tasks": [task], **extra})


def test_nothing_goes_without_a_limit() -> None:
    runs = [(1, "a", OK, 0.0), (2, "a", OK, 1.0)]
    assert not Limits().any
    assert choose(runs, Limits(), NOW) == []


def test_each_dag_keeps_its_newest_runs_and_its_own_count_wins() -> None:
    runs = [(i, "a", OK, NOW) for i in range(1, 6)] + [(i, "b", OK, NOW) for i in range(6, 10)]
    assert choose(runs, Limits(keep_runs=2), NOW) == [1, 2, 3, 6, 7]
    assert choose(runs, Limits(keep_runs=2, dag_keep_runs={"b": 3}), NOW) == [1, 2, 3, 6]


def test_old_runs_go_but_never_the_newest_ended_run_of_a_dag() -> None:
    runs = [(1, "a", OK, NOW - 40 * DAY), (2, "a", OK, NOW - 31 * DAY), (3, "a", OK, NOW - DAY), (4, "b", OK, 0.0)]
    assert choose(runs, Limits(keep_days=30), NOW) == [1, 2]
    # Either limit deletes: run 3 is recent but beyond the count.
    assert choose(runs, Limits(keep_days=30, keep_runs=1), NOW) == [1, 2]
    assert choose([*runs[:3], (5, "a", OK, NOW)], Limits(keep_days=30, keep_runs=1), NOW) == [1, 2, 3]


def test_ages_are_read_in_days() -> None:
    assert parse_age("30d") == 30
    assert parse_age("12h") == 0.5
    assert parse_age("2w") == 14
    with pytest.raises(ValueError, match="30d, 12h or 2w"):
        parse_age("a month")


def _rows(db: Path, run_id: int) -> dict[str, int]:
    """How many rows of a run each table holds (read with a plain read-only connection)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return {
            table: conn.execute(f"SELECT COUNT(*) FROM {table} WHERE run_id = ?", (run_id,)).fetchone()[0]
            for table in ("runs", "run_configs", "task_instances", "journal")
        }


def _size(settings: Settings, run_id: int) -> int:
    folder = RunFolder(settings.runs_dir, run_id)
    files = [folder.archive, *(f for f in folder.path.rglob("*") if f.is_file())]
    return sum(f.stat().st_blocks * 512 for f in files)


async def test_deleting_runs_removes_rows_journal_folder_and_zip(
    settings: Settings, orch: Orchestrator, library: DagLibrary
) -> None:
    old = [(await orch.run(dag("a"))).run.run_id for _ in range(3)]
    other = (await orch.run(dag("b"))).run.run_id
    going = await orch.submit(dag("a", seconds=30))  # the newest run of "a", still going
    await library.save(dag("b", keep_runs=5), source="test")
    sizes = sum(_size(settings, run_id) for run_id in old[:2])

    limits = await limits_of(settings.model_copy(update={"keep_runs": 1}), orch.store)
    assert limits.dag_keep_runs == {"b": 5}
    dry = await clean(settings, orch.store, limits, dry_run=True)
    assert (dry.run_ids, dry.bytes) == (old[:2], sizes)
    assert RunFolder(settings.runs_dir, old[0]).archive.is_file(), "a dry run deletes nothing"

    freed = await clean(settings, orch.store, limits)
    assert (freed.run_ids, freed.bytes) == (old[:2], sizes)
    assert freed.describe().startswith("freed 2 run(s), ")
    await orch.store.flush()
    for run_id in old[:2]:
        assert _rows(settings.db_path, run_id) == {"runs": 0, "run_configs": 0, "task_instances": 0, "journal": 0}
        folder = RunFolder(settings.runs_dir, run_id)
        assert not folder.path.exists()
        assert not folder.archive.exists()
    for kept in (old[2], other, going):
        assert _rows(settings.db_path, kept)["runs"] == 1
        assert RunFolder(settings.runs_dir, kept).path.is_dir()
    assert orch.is_active(going)
    await orch.cancel(going)


async def test_a_run_going_again_is_not_deleted(settings: Settings, orch: Orchestrator) -> None:
    run_id = await orch.submit(dag("slow", seconds=30))
    await orch.cancel(run_id)
    assert (await orch.wait(run_id)).state == RunState.CANCELLED
    chosen = [run_id]  # chosen while it was cancelled ...
    await orch.rerun(run_id)  # ... and re-run before it was deleted
    assert await orch.store.delete_runs(chosen) == []
    assert (await orch.store.get_run(run_id)).state == RunState.RUNNING
    await orch.cancel(run_id)


async def test_zip_only_removes_a_successful_runs_folder_and_keeps_its_zip(settings: Settings) -> None:
    zipped = settings.model_copy(update={"zip_only": True})
    async with running(zipped) as orch:
        retention = Retention(zipped, orch, orch.store)
        retention.attach()
        try:
            ok = (await orch.run(dag("fine"))).run.run_id
            refused = {"url": "http://127.0.0.1:1/"}  # nothing listens on port 1
            bad_config = {
                "dag_name": "bad",
                "tasks": [{"id": "t", "operation": "http_request", "independent_params": refused}],
            }
            failed = (await orch.run(parse_config(bad_config))).run.run_id
            async with asyncio.timeout(10):
                while RunFolder(zipped.runs_dir, ok).path.exists():
                    await asyncio.sleep(0.01)
        finally:
            retention.detach()
            await retention.close()
    assert RunFolder(zipped.runs_dir, ok).archive.is_file()
    assert RunFolder(zipped.runs_dir, failed).archive.is_file()
    assert RunFolder(zipped.runs_dir, failed).path.is_dir(), "a failed run keeps its folder for a re-run"


def test_main_cleanup_reports_what_it_frees(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, port=0, workers=2)

    async def three_runs() -> None:
        async with running(settings) as orch:
            for _ in range(3):
                await orch.run(dag("a"))

    asyncio.run(three_runs())
    nothing = cli(tmp_path, "cleanup")
    assert nothing.returncode == 0, nothing.stderr
    assert "nothing to delete: no limit is set" in nothing.stdout

    dry = cli(tmp_path, "cleanup", "--older-than", "0d", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would free 2 run(s)" in dry.stdout
    assert "runs: 1 2" in dry.stdout
    assert RunFolder(settings.runs_dir, 1).archive.is_file()

    done = cli(tmp_path, "cleanup", "--older-than", "0d")
    assert done.returncode == 0, done.stderr
    assert "freed 2 run(s)" in done.stdout
    assert not RunFolder(settings.runs_dir, 1).archive.exists()
    assert RunFolder(settings.runs_dir, 3).archive.is_file(), "the newest run of the DAG stays"

    bad = cli(tmp_path, "cleanup", "--older-than", "soon")
    assert bad.returncode == 1
    assert "write it like 30d" in bad.stderr


async def test_the_service_task_applies_the_limits_in_the_background(settings: Settings) -> None:
    kept_one = settings.model_copy(update={"keep_runs": 1})
    async with running(kept_one) as orch:
        runs = [(await orch.run(dag("a"))).run.run_id for _ in range(3)]
        task = asyncio.create_task(Retention(kept_one, orch, orch.store, interval=0.05).run_forever(), name="retention")
        try:
            async with asyncio.timeout(10):
                while len(await orch.store.ended_runs()) > 1:
                    await asyncio.sleep(0.01)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert [r[0] for r in await orch.store.ended_runs()] == runs[-1:]
