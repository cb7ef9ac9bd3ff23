"""Run params through each trigger (API, bot, schedule, CLI), their refusals, and re-runs keeping them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.engine import Orchestrator
from orchestrator.errors import ConfigError
from orchestrator.library import DagLibrary
from orchestrator.runparams import parse_assignments, split_assignments
from orchestrator.settings import Settings
from orchestrator.states import RunState
from orchestrator.validation import parse_config
from tests.fake_telegram import ALICE, BotHarness
from tests.test_cli import cli, last_json_line, write
from web.app import create_app

WEATHER = {
    "dag_name": "weather",
    "params": {"city": None, "days": 3, "ratio": 0.5},
    "tasks": [
        {
            "id": "ask",
            "operation": "noop",
            "independent_params": {"value": "{{ params.city }} for {{ params.days }} days", "filename": "ask.txt"},
        },
        {"id": "count", "operation": "noop", "independent_params": {"value": "{{ params.days }}"}},
    ],
}
JSON = {"Content-Type": "application/json"}


def output(settings: Settings, run_id: int, name: str) -> str:
    return (settings.runs_dir / f"dag_{run_id}" / name).read_text()


@pytest.fixture
async def api(settings: Settings, orch: Orchestrator, library: DagLibrary) -> AsyncIterator[TestClient[Any, Any]]:
    await library.add_json(json.dumps(WEATHER), source="test")
    async with TestClient(TestServer(create_app(settings, orch, library, orch.store))) as client:
        yield client


def test_assignments_are_json_when_they_parse() -> None:
    assert parse_assignments("city=Paris days=3 on=true tags='[\"a\"]' 'note=two words' nan=NaN e=") == {
        "city": "Paris", "days": 3, "on": True, "tags": ["a"], "note": "two words", "nan": "NaN", "e": "",
    }  # fmt: skip
    assert split_assignments("0 7 * * * city=Paris") == ("0 7 * * *", {"city": "Paris"})
    assert split_assignments("every 15m") == ("every 15m", {})
    with pytest.raises(ValueError, match="not NAME=value"):
        parse_assignments("city")


async def test_each_refusal_names_the_param(orch: Orchestrator) -> None:
    config = parse_config(WEATHER)
    cases = {
        "required: this DAG has no default": {},
        "must be an integer like its default 3, not 2.5": {"city": "Oslo", "days": 2.5},
        "must be an integer like its default 3, not true": {"city": "Oslo", "days": True},
        'must be a number like its default 0.5, not "x"': {"city": "Oslo", "ratio": "x"},
        "not a param of this DAG (its params: city, days, ratio)": {"city": "Oslo", "town": "x"},
    }
    for message, given in cases.items():
        with pytest.raises(ConfigError) as caught:
            await orch.submit(config, params=given)
        assert message in str(caught.value), given
    assert await orch.store.list_runs() == []
    report = await orch.run(config, params={"city": ["any", "type"], "ratio": 2})  # null default: any type
    assert report.state == RunState.SUCCESS
    assert output(orch.settings, report.run.run_id, "ask.txt") == '["any", "type"] for 3 days'


async def test_api_takes_params_with_a_dag_id_or_an_inline_config(
    api: TestClient[Any, Any], orch: Orchestrator, settings: Settings
) -> None:
    by_id = await api.post("/api/web", json={"dag_id": "weather", "params": {"city": "Paris"}}, headers=JSON)
    assert by_id.status == 201, await by_id.text()
    run_id = (await by_id.json())["run_id"]
    report = await orch.wait(run_id)
    assert output(settings, run_id, "ask.txt") == "Paris for 3 days"
    assert report.run.params == {"city": "Paris", "days": 3, "ratio": 0.5}
    shown = await (await api.get(f"/api/runs/{run_id}")).json()
    assert shown["params"] == {"city": "Paris", "days": 3, "ratio": 0.5}
    page = await (await api.get(f"/runs/{run_id}")).text()
    assert '<code class="run-params">city=&#34;Paris&#34;, days=3, ratio=0.5</code>' in page
    assert json.loads(output(settings, run_id, "run.json"))["params"]["city"] == "Paris"

    inline = await api.post("/api/cli", json={"config": WEATHER, "params": {"city": "Rome", "days": 1}}, headers=JSON)
    assert inline.status == 200, await inline.text()
    assert output(settings, run_id + 1, "ask.txt") == "Rome for 1 days"

    refused = await api.post("/api/web", json={"dag_id": "weather", "params": {"days": "3"}}, headers=JSON)
    assert refused.status == 422
    problems = {p["location"]: p["message"] for p in (await refused.json())["problems"]}
    assert set(problems) == {"params.city", "params.days"}
    bad_shape = await api.post("/api/web", json={"dag_id": "weather", "params": [1]}, headers=JSON)
    assert bad_shape.status == 400


async def test_a_rerun_from_failure_uses_the_same_values(orch: Orchestrator, settings: Settings) -> None:
    config = parse_config(
        {
            "dag_name": "reread",
            "params": {"name": "in.txt"},
            "tasks": [
                {"id": "read", "operation": "read_file", "independent_params": {"path": "{{ params.name }}"}},
            ],
        }
    )
    failed = await orch.run(config, params={"name": "given.txt"})
    assert failed.state == RunState.FAILED
    (settings.runs_dir / f"dag_{failed.run.run_id}" / "given.txt").write_text("now here")
    await orch.rerun(failed.run.run_id)
    again = await orch.wait(failed.run.run_id)
    assert again.state == RunState.SUCCESS, again.tasks
    assert again.run.params == {"name": "given.txt"}


async def test_bot_run_and_schedule_take_params(settings: Settings, orch: Orchestrator, library: DagLibrary) -> None:
    await library.add_json(json.dumps(WEATHER), source="test")
    dated = {
        "dag_name": "daily",
        "params": {"city": "Paris"},
        "tasks": [
            {"id": "r", "operation": "noop", "independent_params": {"value": "{{ params.city }}",
                                                                    "filename": "{{ params.city }}_{{ run.ds }}.txt"}},
        ],
    }  # fmt: skip
    await library.add_json(json.dumps(dated), source="test")
    start = datetime(2026, 6, 1, 0, 0, tzinfo=UTC).timestamp()
    async with BotHarness(settings, orch, library, clock=lambda: start) as tg:
        await tg.say('/run weather city="New York" days=2')
        final = await tg.tg.expect(ALICE["id"], contains="Run <b>#1</b> of", where=lambda s: "Status page" in s.text)
        assert "succeeded" in final.text
        assert output(settings, 1, "ask.txt") == "New York for 2 days"

        refused = await tg.say("/run weather days=two")
        assert "params.city" in refused.text
        assert "params.days" in refused.text
        assert "give params as" in (await tg.say('/run weather city="x')).text

        made = await tg.say("/schedule daily 30 6 * * * city=Oslo")
        assert "Schedule <b>#1</b>" in made.text
        assert (await orch.store.get_schedule(1)).params == {"city": "Oslo"}
        assert "not a param of this DAG" in (await tg.say("/schedule daily 30 6 * * * town=Oslo")).text
        slot = datetime(2026, 6, 1, 6, 30, tzinfo=UTC).timestamp()
        [run_id] = await tg.scheduler.tick(slot + 5)  # late by a few seconds: the slot is still the date
        report = await orch.wait(run_id)
    assert report.tasks["r"].output_file == "Oslo_2026-06-01.txt"
    assert report.run.logical_date == slot
    assert report.run.params == {"city": "Oslo"}


def test_cli_run_takes_params(tmp_path: Path) -> None:
    path = write(tmp_path / "weather.json", WEATHER)
    done = cli(tmp_path, "run", path, "--no-progress", "-p", "city=Lisbon", "-p", "days=4")
    assert done.returncode == 0, done.stderr
    run_id = last_json_line(done.stdout)["run_id"]
    assert (tmp_path / "dag" / f"dag_{run_id}" / "ask.txt").read_text() == "Lisbon for 4 days"
    refused = cli(tmp_path, "run", path, "--no-progress", "-p", "days=4")
    assert refused.returncode != 0
    assert "params.city: required" in refused.stderr
    assert "Traceback" not in refused.stderr
