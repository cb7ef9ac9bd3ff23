"""Outputs within TASKFLOW_MAX_OUTPUT_BYTES, and large ones kept in their files, not in SQLite."""

from __future__ import annotations

import json
import logging
import sqlite3
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from operations.base import OperationContext, Resources
from operations.registry import get_operation
from orchestrator.engine import Orchestrator
from orchestrator.errors import PermanentOperationError
from orchestrator.rundir import OUTPUT_REF
from orchestrator.settings import Settings
from orchestrator.states import RunState
from orchestrator.validation import parse_config
from tests.engine_harness import running

CAP = "TASKFLOW_MAX_OUTPUT_BYTES"


def dag(*tasks: dict[str, Any]) -> Any:
    return parse_config({"dag_name": "caps", "tasks": list(tasks)})


@pytest.fixture
async def small_orch(settings: Settings) -> AsyncIterator[Orchestrator]:
    """An orchestrator whose outputs may be 64 KiB at most, and are stored in SQLite up to 1,000 bytes."""
    settings.max_output_bytes = 64 * 1024
    settings.max_stored_output_bytes = 1000
    async with running(settings) as orchestrator:
        yield orchestrator


@pytest.mark.parametrize(
    "template",
    [
        "{v:>30000000}",  # 30 MB of padding from a 13-character template
        "{v:.2000000000f}",  # precision, past the cap long before it would be built
        "{v}" * 30_000,  # many small fields: counted as they come
    ],
)
async def test_a_template_cannot_build_an_output_over_the_cap(small_orch: Orchestrator, template: str) -> None:
    config = dag(
        {"id": "t", "operation": "json_to_string", "independent_params": {"data": {"v": 1.5}, "template": template}}
    )
    report = await small_orch.run(config)
    assert report.state == RunState.FAILED
    error = report.tasks["t"].error or ""
    assert CAP in error
    assert str(64 * 1024) in error
    assert not (small_orch.settings.runs_dir / "dag_1" / "t.txt").exists()


async def test_a_huge_width_fails_at_once_with_the_default_cap(orch: Orchestrator) -> None:
    params = {"data": {"v": 1}, "template": "{v:>2000000000}"}  # 2 GB: never allocated
    report = await orch.run(dag({"id": "t", "operation": "json_to_string", "independent_params": params}))
    assert report.state == RunState.FAILED
    assert CAP in (report.tasks["t"].error or "")


async def test_pretty_printing_stays_within_the_cap(small_orch: Orchestrator) -> None:
    nested: Any = [0] * 2000
    for _ in range(8):
        nested = [nested]  # 16 spaces a level: each 0 gets a line of 130 characters
    params = {"data": nested, "indent": 16}
    report = await small_orch.run(dag({"id": "t", "operation": "json_to_string", "independent_params": params}))
    assert report.state == RunState.FAILED
    assert CAP in (report.tasks["t"].error or "")


async def test_any_operation_output_over_the_cap_fails_the_task(small_orch: Orchestrator) -> None:
    report = await small_orch.run(
        dag(
            {"id": "big", "operation": "noop", "independent_params": {"value": "x" * 70_000}},
            {"id": "after", "operation": "noop", "dependencies": ["big"]},
        )
    )
    assert report.state == RunState.FAILED
    assert CAP in (report.tasks["big"].error or "")
    assert report.tasks["big"].attempts == 1  # no retry can make it smaller
    assert report.tasks["after"].state == "upstream_failed"


def stored_output(settings: Settings, run_id: int, task_id: str) -> Any:
    with sqlite3.connect(settings.db_path) as db:
        row = db.execute(
            "SELECT output FROM task_instances WHERE run_id = ? AND task_id = ?", (run_id, task_id)
        ).fetchone()
    return json.loads(row[0])


async def test_large_outputs_are_stored_as_references_and_read_back_on_rerun(small_orch: Orchestrator) -> None:
    text = "y" * 5000
    data = {"k": list(range(1000))}
    lookalike = {OUTPUT_REF: {"file": "../../../etc/hostname", "text": True}}  # a real output, not a reference
    config = dag(
        {"id": "text", "operation": "noop", "independent_params": {"value": text}},
        {"id": "data", "operation": "noop", "independent_params": {"value": data}},
        {"id": "odd", "operation": "noop", "independent_params": {"value": lookalike}},
        {"id": "small", "operation": "noop", "independent_params": {"value": [1, 2]}},
        {
            "id": "gate",
            "operation": "read_file",
            "independent_params": {"path": "later.txt"},
            "dependencies": ["text", "data", "odd", "small"],
        },
        {
            "id": "use",
            "operation": "noop",
            "dependent_params": {"value": "data.k.999"},
            "dependencies": ["gate"],
        },
        {"id": "use_text", "operation": "noop", "dependent_params": {"value": "text"}, "dependencies": ["gate"]},
        {"id": "use_odd", "operation": "noop", "dependent_params": {"value": "odd"}, "dependencies": ["gate"]},
    )
    first = await small_orch.run(config)
    assert first.state == RunState.FAILED  # later.txt is not there yet
    run_id = first.run.run_id
    settings = small_orch.settings
    assert stored_output(settings, run_id, "text") == {OUTPUT_REF: {"file": "text.txt", "text": True}}
    assert stored_output(settings, run_id, "data") == {OUTPUT_REF: {"file": "data.json", "text": False}}
    assert stored_output(settings, run_id, "odd") == {OUTPUT_REF: {"file": "odd.json", "text": False}}
    assert stored_output(settings, run_id, "small") == [1, 2]

    (settings.runs_dir / f"dag_{run_id}" / "later.txt").write_text("now")
    await small_orch.rerun(run_id)  # the outputs come back from the store: references read from files
    report = await small_orch.wait(run_id)
    assert report.state == RunState.SUCCESS
    folder = settings.runs_dir / f"dag_{run_id}"
    assert json.loads((folder / "use.json").read_text()) == 999
    assert (folder / "use_text.txt").read_text() == text
    assert json.loads((folder / "use_odd.json").read_text()) == lookalike


async def test_write_file_as_text_stays_within_the_cap(small_orch: Orchestrator) -> None:
    nested: Any = [0] * 2000
    for _ in range(30):
        nested = [nested]  # 4 KB compact; indented, each 0 gets a line of 60 spaces
    report = await small_orch.run(
        dag(
            {"id": "data", "operation": "noop", "independent_params": {"value": nested}},
            {
                "id": "text",
                "operation": "write_file",
                "independent_params": {"format": "text"},
                "dependent_params": {"content": "data"},
                "dependencies": ["data"],
            },
        )
    )
    assert report.tasks["data"].state == "success"
    assert report.tasks["text"].state == "failed"
    assert CAP in (report.tasks["text"].error or "")


def deeply_nested(depth: int, width: int) -> Any:
    value: Any = [0] * width
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("json_to_string", {"data": {"v": 1}, "template": "{v:>30000000}"}),
        ("json_to_string", {"data": deeply_nested(60, 20_000), "indent": 16}),
        ("write_file", {"content": deeply_nested(60, 20_000), "format": "text"}),
    ],
)
async def test_operations_stop_before_spending_the_memory(tmp_path: Path, name: str, params: dict[str, Any]) -> None:
    op = get_operation(name)
    assert op is not None
    ctx = OperationContext(1, "d", "t", 1, tmp_path, logging.getLogger("test"), Resources(max_output_bytes=64 * 1024))
    tracemalloc.start()
    try:
        with pytest.raises(PermanentOperationError, match=CAP):
            await op.fn(ctx, op.params_model.model_validate(params))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024  # the unbounded versions build 30 MB and more


async def test_shell_keeps_only_what_it_captures(tmp_path: Path) -> None:
    op = get_operation("shell")
    assert op is not None
    ctx = OperationContext(1, "d", "t", 1, tmp_path, logging.getLogger("test"), Resources(allow_shell=True))
    params = op.params_model.model_validate({"command": "head -c 50000000 /dev/zero; echo done >&2"})
    tracemalloc.start()
    try:
        result = await op.fn(ctx, params)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(result["stdout"]) == 1024 * 1024
    assert result["stderr"] == "done\n"
    assert peak < 8 * 1024 * 1024  # 50 MB came out; the first MiB was kept
