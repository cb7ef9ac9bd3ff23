"""Sharing the workers: runs take turns, waits hold no worker, and each DAG's max_active_runs/tasks.

Orders and counts are asserted here; how long things take is measured in bench/fairness.py.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from operations import registry
from operations.base import OperationContext, OperationParams
from operations.registry import operation
from orchestrator.engine import Orchestrator
from orchestrator.library import DagLibrary
from orchestrator.records import TaskRecord
from orchestrator.scheduler import Scheduler
from orchestrator.settings import Settings
from orchestrator.states import RunState, TaskState
from orchestrator.validation import parse_config
from tests.engine_harness import running


class HoldParams(OperationParams):
    seconds: float = 0.05


started: list[str] = []
busy = {"now": 0, "most": 0}


@pytest.fixture(autouse=True)
def hold_operation(monkeypatch: pytest.MonkeyPatch) -> None:
    """``hold``: busy for a while and holding its worker (as real work does), counting who runs at once."""
    monkeypatch.setattr(registry, "_registry", dict(registry.all_operations()))
    started.clear()
    busy.update(now=0, most=0)

    @operation("hold")
    async def hold(ctx: OperationContext, params: HoldParams) -> None:
        started.append(f"{ctx.dag_id}.{ctx.task_id}")
        busy["now"] += 1
        busy["most"] = max(busy["most"], busy["now"])
        try:
            await asyncio.sleep(params.seconds)
        finally:
            busy["now"] -= 1


def dag(name: str, n: int, operation: str = "hold", seconds: float = 0.05, **extra: Any) -> Any:
    tasks = [{"id": f"t{i}", "operation": operation, "independent_params": {"seconds": seconds}} for i in range(n)]
    return parse_config({"dag_name": name, "tasks": tasks, **extra})


def most_at_once(tasks: list[TaskRecord]) -> int:
    edges = sorted([(t.started_at, 1) for t in tasks] + [(t.ended_at, -1) for t in tasks])
    now = most = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


async def test_runs_take_turns_at_equal_priority(settings: Settings) -> None:
    async with running(settings.model_copy(update={"workers": 1})) as orch:
        backlog = await orch.submit(dag("backlog", 6))
        await asyncio.sleep(0.01)  # its first task has the only worker
        small = await orch.submit(dag("small", 1))
        await orch.wait(backlog)
        await orch.wait(small)
    # A global first-in-first-out queue would start small.t0 last, after the whole backlog.
    assert started[:3] == ["backlog.t0", "small.t0", "backlog.t1"], started


async def test_sleeping_tasks_hold_no_worker(settings: Settings) -> None:
    async with running(settings.model_copy(update={"workers": 1})) as orch:
        sleepy = await orch.submit(dag("sleepy", 4, "sleep", 0.5))
        await asyncio.sleep(0.05)
        quick = await orch.run(dag("quick", 1))
        sleeps = await orch.wait(sleepy)
    assert sleeps.state == RunState.SUCCESS
    tasks = list(sleeps.tasks.values())
    assert most_at_once(tasks) == 4  # all four slept at once on one worker
    assert quick.run.ended_at is not None
    assert quick.run.ended_at < min(t.ended_at or 0 for t in tasks)  # it did not wait for them


@pytest.mark.parametrize("operation", ["hold", "sleep"])
async def test_max_active_tasks_bounds_one_runs_tasks(orch: Orchestrator, operation: str) -> None:
    report = await orch.run(dag("capped", 6, operation, 0.05, max_active_tasks=2))
    assert report.state == RunState.SUCCESS
    assert most_at_once(list(report.tasks.values())) == 2
    other = await orch.run(dag("free", 6, operation, 0.05))  # unlimited by default: the 4 workers
    assert most_at_once(list(other.tasks.values())) == (4 if operation == "hold" else 6)


async def test_max_active_runs_holds_triggers_as_queued(orch: Orchestrator) -> None:
    config = dag("one_at_a_time", 1, "hold", 0.2, max_active_runs=1)
    first, second, third = [await orch.submit(config) for _ in range(3)]
    assert (await orch.store.get_run(second)).state == RunState.QUEUED
    assert orch.active_runs("one_at_a_time") == 1
    await orch.cancel(third)  # a held run is cancelled without ever starting
    reports = [await orch.wait(run_id) for run_id in (first, second, third)]
    assert [r.state for r in reports] == [RunState.SUCCESS, RunState.SUCCESS, RunState.CANCELLED]
    assert reports[1].run.started_at >= reports[0].run.ended_at
    assert reports[2].run.started_at is None
    assert reports[2].tasks["t0"].state == TaskState.CANCELLED
    assert orch.active_runs("one_at_a_time") == 0


async def test_held_runs_start_in_turn_after_a_restart(settings: Settings) -> None:
    config = dag("serial", 1, "hold", 0.3, max_active_runs=1)
    async with running(settings) as orch:
        ids = [await orch.submit(config) for _ in range(3)]
    async with running(settings) as orch:  # all three were left unfinished
        reports = [await orch.wait(run_id) for run_id in ids]
    assert [r.state for r in reports] == [RunState.SUCCESS] * 3
    assert reports[1].run.started_at >= reports[0].run.ended_at
    assert reports[2].run.started_at >= reports[1].run.ended_at


async def test_a_schedule_slot_beyond_max_active_runs_is_skipped_and_logged(
    settings: Settings, orch: Orchestrator, library: DagLibrary, caplog: pytest.LogCaptureFixture
) -> None:
    raw = {"dag_name": "nightly", "max_active_runs": 1,
           "tasks": [{"id": "t", "operation": "sleep", "independent_params": {"seconds": 0.5}}]}  # fmt: skip
    await library.add_json(__import__("json").dumps(raw), source="test")
    now = [1_800_000_000.0]
    scheduler = Scheduler(settings, orch.store, orch, library, clock=lambda: now[0])
    await scheduler.add("nightly", "every 10s")
    going = await orch.submit(parse_config(raw), trigger="web")
    now[0] += 10
    with caplog.at_level(logging.WARNING, logger="taskflow"):
        assert await scheduler.tick() == []
    assert "max_active_runs" in caplog.text
    assert [r.run_id for r in await orch.store.list_runs()] == [going]
    await orch.wait(going)
    now[0] += 10
    assert len(await scheduler.tick()) == 1  # the next slot runs


@pytest.mark.parametrize("delay", [0, 0.002, 0.005, 0.01, 0.02])
async def test_a_stop_while_a_run_closes_leaves_its_held_successor_quietly(
    settings: Settings, caplog: pytest.LogCaptureFixture, delay: float
) -> None:
    config = parse_config({"dag_name": "s", "max_active_runs": 1, "tasks": [{"id": "a", "operation": "noop"}]})
    async with running(settings) as orch:
        await orch.submit(config)
        held = await orch.submit(config)
        await asyncio.sleep(delay)  # one of these stops comes while the first run is being closed
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    async with running(settings) as orch:
        assert (await orch.wait(held)).state == RunState.SUCCESS
