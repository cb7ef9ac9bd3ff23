"""The engine: queue, workers, parameters, retries, timeouts, failures, cancel, outputs."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import sqlite3
import time
import zipfile
from typing import Any

import pytest
from pydantic import Field, model_validator

from operations import registry
from operations.base import OperationContext, OperationParams
from operations.registry import operation
from orchestrator.engine import Orchestrator
from orchestrator.errors import ConflictError, NotFoundError, PermanentOperationError
from orchestrator.rundir import RunFolder
from orchestrator.settings import Settings
from orchestrator.states import RunState, TaskState
from orchestrator.validation import parse_config
from tests.engine_harness import running


class FlakyParams(OperationParams):
    key: str
    fail_times: int = 0


class ProbeParams(OperationParams):
    upstream: str


class ScratchParams(OperationParams):
    items: list[str] = Field(default_factory=list)
    name: str = ""

    @model_validator(mode="after")
    def _lower(self) -> ScratchParams:
        self.name = self.name.lower()  # a plugin may normalise its params in place
        return self


calls: dict[str, int] = {}


@pytest.fixture(autouse=True)
def test_operations(monkeypatch: pytest.MonkeyPatch) -> None:
    """Operations only these tests use, registered in a copy of the registry."""
    monkeypatch.setattr(registry, "_registry", dict(registry.all_operations()))
    calls.clear()

    @operation("flaky")
    async def flaky(ctx: OperationContext, params: FlakyParams) -> str:
        calls[params.key] = calls.get(params.key, 0) + 1
        if calls[params.key] <= params.fail_times:
            raise ConnectionError(f"flaky failure {calls[params.key]}")
        return f"ok after {calls[params.key]}"

    @operation("boom")
    async def boom(ctx: OperationContext, params: OperationParams) -> None:
        raise ZeroDivisionError("division by zero")

    @operation("unserialisable")
    async def unserialisable(ctx: OperationContext, params: OperationParams) -> object:
        return object()

    @operation("surrogate")
    async def surrogate(ctx: OperationContext, params: OperationParams) -> str:
        raise ValueError("cannot parse '\ud800'")  # an error quoting text that is not valid Unicode

    @operation("surrogate_output")
    async def surrogate_output(ctx: OperationContext, params: OperationParams) -> dict[str, str]:
        return {"text": "\udc80"}

    @operation("escape")
    async def escape(ctx: OperationContext, params: OperationParams) -> str:
        return str(ctx.path("../../outside.txt"))

    @operation("probe_db")
    async def probe_db(ctx: OperationContext, params: ProbeParams) -> str:
        # Reads the database as another connection would: what is committed, nothing buffered.
        db = sqlite3.connect(ctx.resources.extra["db_path"])
        try:
            key = (ctx.run_id, params.upstream)
            state, output = db.execute(
                "SELECT state, output FROM task_instances WHERE run_id = ? AND task_id = ?", key
            ).fetchone()
        finally:
            db.close()
        return f"{state} {output}"


@pytest.fixture(autouse=True)
def output_operations(test_operations: None) -> None:
    """Operations whose params or outputs are unusual."""

    @operation("scratch")
    async def scratch(ctx: OperationContext, params: ScratchParams) -> list[str]:
        params.items.append(f"attempt {ctx.attempt} {params.name}")  # its own params as scratch space
        if ctx.attempt < 3:
            raise ConnectionError("flaky")
        return params.items

    @operation("odd_numbers")
    async def odd_numbers(ctx: OperationContext, params: OperationParams) -> dict[str, float]:
        return {"nan": float("nan"), "inf": float("inf")}

    @operation("a_date")
    async def a_date(ctx: OperationContext, params: OperationParams) -> object:
        return datetime.date(2026, 12, 2)


def dag(*tasks: dict[str, Any], **extra: Any) -> Any:
    return parse_config({"dag_name": "t", "tasks": list(tasks), **extra})


def overlap(a: Any, b: Any) -> bool:
    return a.started_at < b.ended_at and b.started_at < a.ended_at


async def test_independent_tasks_run_in_parallel(orch: Orchestrator) -> None:
    report = await orch.run(
        dag(
            {"id": "a", "operation": "sleep", "independent_params": {"seconds": 0.2}},
            {"id": "b", "operation": "sleep", "independent_params": {"seconds": 0.2}},
            {"id": "c", "operation": "noop", "dependencies": ["a", "b"]},
        )
    )
    assert report.state == RunState.SUCCESS
    a, b, c = (report.tasks[k] for k in "abc")
    assert overlap(a, b)
    assert c.started_at >= max(a.ended_at, b.ended_at)


async def test_priority_orders_ready_tasks(settings: Settings) -> None:
    async with running(settings.model_copy(update={"workers": 1})) as orch:
        report = await orch.run(
            dag(
                {"id": "root", "operation": "noop"},
                {"id": "low", "operation": "noop", "priority": "low", "dependencies": ["root"]},
                {"id": "mid", "operation": "noop", "dependencies": ["root"]},
                {"id": "high", "operation": "noop", "priority": "high", "dependencies": ["root"]},
            )
        )
        events = await orch.store.get_events(report.run.run_id)
    started = [e.task_id for e in events if e.task_id and e.state == TaskState.RUNNING]
    assert started == ["root", "high", "mid", "low"]


async def test_dependent_params_resolve_paths_and_override(orch: Orchestrator) -> None:
    report = await orch.run(
        dag(
            {"id": "src", "operation": "noop", "independent_params": {"value": {"items": [{"n": "x"}, {"n": "y"}]}}},
            {
                "id": "pick",
                "operation": "select",
                "independent_params": {"data": "overridden", "path": ""},
                "dependent_params": {"data": "src.items.-1.n"},
                "dependencies": ["src"],
            },
        )
    )
    assert report.state == RunState.SUCCESS
    folder = orch.settings.runs_dir / f"dag_{report.run.run_id}"
    assert (folder / "pick.txt").read_text() == "y"
    assert json.loads((folder / "src.json").read_text()) == {"items": [{"n": "x"}, {"n": "y"}]}


async def test_a_missing_path_fails_naming_the_place_without_retries(orch: Orchestrator) -> None:
    report = await orch.run(
        dag(
            {"id": "src", "operation": "noop", "independent_params": {"value": {"a": 1}}},
            {"id": "use", "operation": "select", "dependent_params": {"data": "src.b"}, "dependencies": ["src"]},
            max_retries=3,
        )
    )
    use = report.tasks["use"]
    assert use.state == TaskState.FAILED
    assert use.attempts == 1  # retrying cannot fix a missing key
    assert "dependent_params.data" in use.error
    assert "key 'b' not found" in use.error
    assert "output of 'src'" in use.error


async def test_retries_wait_retry_delay_then_succeed(orch: Orchestrator) -> None:
    report = (
        await orch.run(
            dag({"id": "f", "operation": "flaky", "independent_params": {"key": "f", "fail_times": 2}}),
            max_retries=0,
        )
        if False
        else await orch.run(
            dag(
                {"id": "f", "operation": "flaky", "independent_params": {"key": "f", "fail_times": 2}},
                max_retries=2,
                retry_delay=0.15,
            )
        )
    )
    task = report.tasks["f"]
    assert report.state == RunState.SUCCESS
    assert task.attempts == 3
    events = [e for e in await orch.store.get_events(report.run.run_id) if e.task_id == "f"]
    states = [e.state for e in events]
    assert states == [
        "queued",
        "running",
        "up_for_retry",
        "queued",
        "running",
        "up_for_retry",
        "queued",
        "running",
        "success",
    ]
    retry_at = [e.at for e in events if e.state == "up_for_retry"]
    restarted_at = [e.at for e in events if e.state == "running"][1:]
    assert all(start - failed >= 0.15 for failed, start in zip(retry_at, restarted_at, strict=True))
    assert "flaky failure 1" in (events[2].error or "")


async def test_a_failure_stops_its_downstream_only(orch: Orchestrator) -> None:
    report = await orch.run(
        dag(
            {"id": "bad", "operation": "flaky", "independent_params": {"key": "bad", "fail_times": 9}},
            {"id": "after_bad", "operation": "noop", "dependencies": ["bad"]},
            {"id": "further", "operation": "noop", "dependencies": ["after_bad"]},
            {"id": "good", "operation": "sleep", "independent_params": {"seconds": 0.1}},
            {"id": "after_good", "operation": "noop", "dependencies": ["good"]},
            max_retries=1,
        )
    )
    states = {k: t.state for k, t in report.tasks.items()}
    assert states == {
        "bad": TaskState.FAILED,
        "after_bad": TaskState.UPSTREAM_FAILED,
        "further": TaskState.UPSTREAM_FAILED,
        "good": TaskState.SUCCESS,
        "after_good": TaskState.SUCCESS,
    }
    assert report.tasks["bad"].attempts == 2
    assert report.tasks["further"].error == "upstream task 'bad' failed"
    assert report.state == RunState.FAILED
    assert report.run.error == "task 'bad' failed: ConnectionError: flaky failure 2"


async def test_timeout_fails_a_hanging_task(orch: Orchestrator) -> None:
    report = await orch.run(
        dag(
            {
                "id": "hang",
                "operation": "sleep",
                "independent_params": {"seconds": 30},
                "timeout": 0.1,
                "max_retries": 1,
            }
        )
    )
    hang = report.tasks["hang"]
    assert hang.state == TaskState.FAILED
    assert hang.error == "timed out after 0.1s"
    assert hang.attempts == 2


async def test_unexpected_exceptions_and_bad_outputs_fail_cleanly(orch: Orchestrator) -> None:
    report = await orch.run(
        dag(
            {"id": "boom", "operation": "boom"},
            {"id": "odd", "operation": "unserialisable"},
            {"id": "escape", "operation": "escape"},
            {"id": "bad_error", "operation": "surrogate"},
            {"id": "bad_output", "operation": "surrogate_output"},
        )
    )
    assert report.tasks["boom"].error == "ZeroDivisionError: division by zero"
    assert report.tasks["bad_error"].error == "ValueError: cannot parse '?'"
    assert "not valid Unicode" in report.tasks["bad_output"].error
    stored = {t.task_id: t.error for t in await orch.store.get_tasks(report.run.run_id)}
    assert stored["bad_error"] == "ValueError: cannot parse '?'"  # stored, and the run closed with its ZIP
    assert report.archive is not None
    assert report.archive.is_file()
    assert "not JSON-serialisable" in report.tasks["odd"].error
    assert "outside the run folder" in report.tasks["escape"].error
    assert not (orch.settings.runs_dir / "outside.txt").exists()


async def test_success_is_durable_before_downstream_starts(settings: Settings) -> None:
    async with running(settings) as orch:
        orch.resources.extra["db_path"] = str(settings.db_path)
        report = await orch.run(
            dag(
                {"id": "up", "operation": "noop", "independent_params": {"value": 1}},
                {
                    "id": "check",
                    "operation": "probe_db",
                    "independent_params": {"upstream": "up"},
                    "dependencies": ["up"],
                },
            )
        )
    folder = settings.runs_dir / f"dag_{report.run.run_id}"
    assert (folder / "check.txt").read_text() == "success 1"  # the state journalled, the output stored


async def test_run_folder_report_and_archive(orch: Orchestrator) -> None:
    report = await orch.run(
        dag(
            {"id": "data", "operation": "noop", "independent_params": {"value": [1, 2], "filename": "numbers.json"}},
            {
                "id": "text",
                "operation": "json_to_string",
                "dependent_params": {"data": "data"},
                "dependencies": ["data"],
            },
            {"id": "nothing", "operation": "noop"},
        )
    )
    folder = orch.settings.runs_dir / f"dag_{report.run.run_id}"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["config.json", "numbers.json", "run.json", "run.log", "text.txt"]
    run_json = json.loads((folder / "run.json").read_text())
    assert run_json["state"] == "success"
    assert run_json["dag_id"] == "t"
    assert run_json["tasks"]["data"]["output_file"] == "numbers.json"
    assert run_json["tasks"]["nothing"]["output_file"] is None
    assert set(run_json["tasks"]["text"]) == {
        "state",
        "attempts",
        "started_at",
        "ended_at",
        "duration_s",
        "error",
        "output_file",
    }
    assert report.archive == orch.settings.runs_dir / f"dag_{report.run.run_id}.zip"
    with zipfile.ZipFile(report.archive) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        assert set(manifest["files"]) == set(names)
        for name, entry in manifest["files"].items():
            assert hashlib.sha256(zf.read(name)).hexdigest() == entry["sha256"]
        # Each file keeps its own time, as a person unzipping it expects (not zipfile's 1980 default).
        assert all(info.date_time[0] >= 2020 for info in zf.infolist())
        assert all(info.compress_type == zipfile.ZIP_DEFLATED for info in zf.infolist())


async def test_every_transition_is_journaled(orch: Orchestrator) -> None:
    report = await orch.run(
        dag({"id": "a", "operation": "noop"}, {"id": "b", "operation": "noop", "dependencies": ["a"]})
    )
    events = await orch.store.get_events(report.run.run_id)
    assert [(e.task_id, e.state) for e in events] == [
        (None, "queued"),
        (None, "running"),
        ("a", "queued"),
        ("a", "running"),
        ("a", "success"),
        ("b", "queued"),
        ("b", "running"),
        ("b", "success"),
        (None, "success"),
    ]


async def test_cancel_a_running_run(orch: Orchestrator) -> None:
    run_id = await orch.submit(
        dag(
            {"id": "long", "operation": "sleep", "independent_params": {"seconds": 30}},
            {"id": "next", "operation": "noop", "dependencies": ["long"]},
            {"id": "quick", "operation": "noop"},
        )
    )
    async with asyncio.timeout(10):
        while (await orch.report(run_id)).tasks["long"].state != TaskState.RUNNING:
            await asyncio.sleep(0.01)
    await orch.cancel(run_id, by="API")
    report = await orch.wait(run_id)
    assert report.state == RunState.CANCELLED
    assert report.tasks["long"].state == TaskState.CANCELLED
    assert report.tasks["next"].state == TaskState.CANCELLED
    assert report.archive is not None
    assert report.archive.exists()
    with pytest.raises(ConflictError, match="already ended"):
        await orch.cancel(run_id)
    log = (orch.settings.runs_dir / f"dag_{run_id}" / "run.log").read_text(encoding="utf-8")
    assert "run cancelled by API" in log
    assert "long attempt 1 cancelled after " in log
    assert "s: the run was cancelled by API" in log
    assert "failed" not in log, "a cancelled attempt is not a failure"


async def test_an_attempt_stopped_with_the_service_says_so(settings: Settings) -> None:
    async with running(settings) as orch:
        run_id = await orch.submit(dag({"id": "long", "operation": "sleep", "independent_params": {"seconds": 30}}))
        async with asyncio.timeout(10):
            while (await orch.report(run_id)).tasks["long"].state != TaskState.RUNNING:
                await asyncio.sleep(0.01)
    log = (settings.runs_dir / f"dag_{run_id}" / "run.log").read_text(encoding="utf-8")
    assert "s: the service is stopping (it runs again when it starts)" in log
    assert "CancelledError" not in log


async def test_many_runs_share_the_pool(orch: Orchestrator) -> None:
    config = dag(*({"id": f"t{i}", "operation": "noop", "dependencies": [f"t{i - 1}"] if i else []} for i in range(10)))
    run_ids = await asyncio.gather(*(orch.submit(config) for _ in range(20)))
    reports = [await orch.wait(r) for r in run_ids]
    assert sorted(run_ids) == list(range(min(run_ids), min(run_ids) + 20))
    assert all(r.state == RunState.SUCCESS for r in reports)
    listed = await orch.store.list_runs(limit=100)
    assert len(listed) == 20
    assert all(r.counts == {"success": 10} for r in listed)


async def test_rerun_from_failure_keeps_what_succeeded(orch: Orchestrator) -> None:
    config = dag(
        {"id": "first", "operation": "flaky", "independent_params": {"key": "first"}},
        {
            "id": "read",
            "operation": "read_file",
            "independent_params": {"path": "input.txt"},
            "dependencies": ["first"],
        },
        {"id": "last", "operation": "noop", "dependencies": ["read"]},
    )
    failed = await orch.run(config)
    assert failed.state == RunState.FAILED
    assert "does not exist" in failed.tasks["read"].error
    run_id = failed.run.run_id
    (orch.settings.runs_dir / f"dag_{run_id}" / "input.txt").write_text("hello")
    assert await orch.rerun(run_id) == run_id
    report = await orch.wait(run_id)
    assert report.state == RunState.SUCCESS
    assert calls["first"] == 1  # not executed again
    assert report.tasks["read"].attempts == 2
    assert (orch.settings.runs_dir / f"dag_{run_id}" / "read.txt").read_text() == "hello"
    with pytest.raises(ConflictError, match="only failed or cancelled"):
        await orch.rerun(run_id)


async def test_unknown_runs(orch: Orchestrator) -> None:
    with pytest.raises(NotFoundError, match="run 999 does not exist"):
        await orch.wait(999)
    with pytest.raises(NotFoundError):
        await orch.cancel(999)


def test_permanent_errors_are_operation_errors() -> None:
    # The engine's retry rule depends on this relation.
    assert issubclass(PermanentOperationError, Exception)


async def test_two_reruns_at_once_start_the_run_once(orch: Orchestrator) -> None:
    failed = await orch.run(
        dag({"id": "f", "operation": "flaky", "independent_params": {"key": "twice", "fail_times": 1}})
    )
    assert failed.state == RunState.FAILED
    results = await asyncio.gather(*(orch.rerun(failed.run.run_id) for _ in range(2)), return_exceptions=True)
    assert sum(isinstance(r, ConflictError) for r in results) == 1
    report = await orch.wait(failed.run.run_id)
    assert report.state == RunState.SUCCESS
    assert calls["twice"] == 2


async def test_a_run_that_cannot_start_is_failed_not_left_queued(
    orch: Orchestrator, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_disk(self: RunFolder, config_json: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(RunFolder, "create", no_disk)
    with pytest.raises(OSError, match="No space left"):
        await orch.submit(dag({"id": "a", "operation": "noop"}))
    (run,) = await orch.store.list_runs()
    assert run.state == RunState.FAILED
    assert run.error == "could not start: OSError: [Errno 28] No space left on device"
    assert not orch.is_active(run.run_id)


async def test_each_attempt_gets_params_of_its_own(orch: Orchestrator) -> None:
    # The first attempt runs with the params validated at submission; a retry must not see what it did to them.
    report = await orch.run(
        dag({"id": "s", "operation": "scratch", "independent_params": {"name": "Bob"}, "max_retries": 2})
    )
    assert report.state == RunState.SUCCESS
    assert (await orch.store.get_outputs(report.run.run_id))["s"] == ["attempt 3 bob"]


async def test_outputs_are_stored_as_the_standard_json_encoder_writes_them(orch: Orchestrator) -> None:
    report = await orch.run(dag({"id": "n", "operation": "odd_numbers"}, {"id": "d", "operation": "a_date"}))
    stored = (await orch.store.get_outputs(report.run.run_id))["n"]
    assert stored["inf"] == float("inf")
    assert stored["nan"] != stored["nan"]  # NaN read back as NaN, not null
    assert "not JSON-serialisable" in (report.tasks["d"].error or "")


async def test_a_big_output_is_written_compact_and_a_small_one_indented(orch: Orchestrator) -> None:
    big = {"items": list(range(20_000))}  # ~120 KB of JSON
    report = await orch.run(
        dag(
            {"id": "big", "operation": "noop", "independent_params": {"value": big}},
            {"id": "small", "operation": "noop", "independent_params": {"value": {"a": 1}}},
        )
    )
    folder = orch.settings.runs_dir / f"dag_{report.run.run_id}"
    assert (folder / "big.json").read_text().count("\n") == 0
    assert json.loads((folder / "big.json").read_text()) == big
    assert (folder / "small.json").read_text() == '{\n  "a": 1\n}'


async def test_config_json_keeps_integers_past_64_bits(orch: Orchestrator) -> None:
    huge = 123456789012345678901234567890
    report = await orch.run(dag({"id": "a", "operation": "noop", "independent_params": {"value": huge}}))
    written = json.loads((orch.settings.runs_dir / f"dag_{report.run.run_id}" / "config.json").read_text())
    assert written["tasks"][0]["independent_params"]["value"] == huge


async def test_a_run_cancelled_while_its_start_waits_for_the_store_ends_cancelled(
    orch: Orchestrator, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, set_run_state = orch.store, orch.store.set_run_state

    async def slow_start(run_id: int, state: RunState, **kwargs: Any) -> Any:
        if state == RunState.RUNNING:  # another commit holds the write lock a while

            async def hold() -> None:
                await store._in_writer(time.sleep, 0.05)

            holder = asyncio.create_task(hold())
            await asyncio.sleep(0)
            result = await set_run_state(run_id, state, **kwargs)
            await holder
            return result
        return await set_run_state(run_id, state, **kwargs)

    monkeypatch.setattr(store, "set_run_state", slow_start)
    submitted = asyncio.create_task(orch.submit(dag({"id": "a", "operation": "noop"})))
    while not orch._runs:
        await asyncio.sleep(0)
    (run_id,) = orch._runs
    await orch.cancel(run_id)
    await submitted
    report = await orch.wait(run_id)
    stored = await store.get_run(run_id)
    assert report.state == stored.state == RunState.CANCELLED
    assert report.run.started_at == stored.started_at is not None  # the report waited for the start
    written = json.loads((orch.settings.runs_dir / f"dag_{run_id}" / "run.json").read_text())
    assert written["started_at"] == stored.started_at
