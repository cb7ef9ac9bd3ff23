"""Templates in task params: what validation accepts and refuses, and what a run renders and stores."""

from __future__ import annotations

import datetime
import json
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from orchestrator.engine import Orchestrator
from orchestrator.errors import ConfigError
from orchestrator.settings import Settings
from orchestrator.states import RunState
from orchestrator.templating import RunValues, fill_secrets, render, secret_template
from orchestrator.validation import parse_config
from tests.engine_harness import running


def dag(params: dict[str, Any], *tasks: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"dag_name": "tpl", "params": params, "tasks": list(tasks), **extra}


def noop(task_id: str, value: Any, **params: Any) -> dict[str, Any]:
    return {"id": task_id, "operation": "noop", "independent_params": {"value": value, **params}}


def problems(raw: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    return {p.location: p.message for p in caught.value.problems}


def test_each_bad_template_is_a_problem_at_its_place() -> None:
    found = problems(
        dag(
            {"city": "Paris"},
            noop(
                "a",
                {
                    "unknown": "{{ params.nope }}",
                    "filter": "{{ params.city | upper }}",
                    "call": "{{ params.city.upper() }}",
                    "operator": "{{ params.city ~ 'x' }}",
                    "index": "{{ params['city'] }}",
                    "mixed": "{{ params.city }} and {{ other }}",
                    "run": ["{{ run.tomorrow }}"],
                    "syntax": "{{ params.city",
                },
                filename="{{ secrets.TOKEN }}.txt",
            ),
            {"id": "b", "operation": "noop", "independent_params": {"value": 1}},
        )
        | {"params": {"city": "Paris", "9bad": 1}}
    )
    where = "tasks[0].independent_params"
    assert "unknown param 'nope'" in found[f"{where}.value.unknown"]
    for key in ("filter", "call", "operator", "index"):
        assert "only plain names" in found[f"{where}.value.{key}"], key
    assert 'write a literal "{{" as {{ "{{" }}' in found[f"{where}.value.mixed"]
    assert "unknown name run.tomorrow" in found[f"{where}.value.run[0]"]
    assert "template syntax error" in found[f"{where}.value.syntax"]
    assert "may not hold a secret" in found[f"{where}.filename"]
    assert "a param name must match" in found["params.9bad"]
    assert len(found) == 10


def test_text_that_is_not_ours_is_left_alone() -> None:
    texts = ["${#name} {% raw %} {# not a comment #}", "{{literal}}", '{"a": {{ x }}}', "{{ 1 + 1 }}", "{{ x"]
    config = parse_config(dag({}, noop("a", texts)))
    assert config.tasks[0].independent_params["value"] == texts


async def test_a_run_renders_once_and_keeps_json_types(orch: Orchestrator) -> None:
    config = parse_config(
        dag(
            {"city": "Paris", "days": 3, "tags": ["a"]},
            noop(
                "a",
                {
                    "days": "{{ params.days }}",
                    "tags": "{{ params.tags }}",
                    "line": "{{ dag.id }} #{{ run.id }}: {{ params.city }} for {{ params.days }} d {{ params.tags }}",
                    "escaped": '{{ "{{" }}literal}} {{ params.city }}',
                    "shell": "${#x} {{ params.city }}",
                    "crlf": "a\r\n{{ params.city }}\r",
                    "id": "{{ run.id }}",
                },
            ),
            {"id": "wait", "operation": "sleep", "independent_params": {"seconds": "{{ params.wait }}"}},
        )
        | {"params": {"city": "Paris", "days": 3, "tags": ["a"], "wait": 0.0}}
    )
    report = await orch.run(config, params={"city": "Lyon", "wait": 0})
    assert report.state == RunState.SUCCESS, report.tasks
    run_id = report.run.run_id
    value = json.loads((orch.settings.runs_dir / f"dag_{run_id}" / "a.json").read_text())
    assert value == {
        "days": 3,
        "tags": ["a"],
        "line": f'tpl #{run_id}: Lyon for 3 d ["a"]',
        "escaped": "{{literal}} Lyon",
        "shell": "${#x} Lyon",
        "crlf": "a\r\nLyon\r",
        "id": run_id,
    }
    stored = await orch.store.run_config(run_id)  # what was rendered is what is stored
    assert stored["tasks"][0]["independent_params"]["value"]["id"] == run_id
    assert report.run.params == {"city": "Lyon", "days": 3, "tags": ["a"], "wait": 0}


async def test_logical_date_names_a_file_and_defaults_to_the_creation_time(orch: Orchestrator) -> None:
    config = parse_config(dag({}, noop("a", "{{ run.logical_date }}", filename="report_{{ run.ds }}.json")))
    slot = datetime.datetime(2026, 3, 1, 6, 30, tzinfo=datetime.UTC).timestamp()
    report = await orch.run(config, logical_date=slot)
    assert report.tasks["a"].output_file == "report_2026-03-01.json"
    written = (orch.settings.runs_dir / f"dag_{report.run.run_id}" / "report_2026-03-01.json").read_text()
    assert written == "2026-03-01T06:30:00+00:00"  # a text output is written as text
    assert report.run.logical_date == slot
    plain = await orch.run(config)
    today = datetime.datetime.fromtimestamp(plain.run.created_at, datetime.UTC).date().isoformat()
    assert plain.tasks["a"].output_file == f"report_{today}.json"


async def test_a_rendered_filename_must_pass_the_filename_rules(orch: Orchestrator) -> None:
    config = parse_config(dag({"name": "out"}, noop("a", 1, filename="{{ params.name }}.json")))
    with pytest.raises(ConfigError) as caught:
        await orch.submit(config, params={"name": "../etc/x"})
    assert [p.location for p in caught.value.problems] == ["tasks[0].independent_params.filename"]
    assert await orch.store.list_runs() == []  # refused before any run exists


async def test_a_value_cannot_smuggle_a_reference_to_a_secret(settings: Settings) -> None:
    config = parse_config(dag({"q": "x"}, noop("a", "https://example.invalid/?q={{ params.q }}")))
    async with running(settings) as orch:
        with pytest.raises(ConfigError) as caught:
            await orch.submit(config, params={"q": "{{ secrets.API_KEY }}"})
    assert "may not name secrets" in str(caught.value)


def test_a_value_inside_a_string_with_a_secret_stays_text_when_the_secret_is_filled() -> None:
    values = RunValues({"q": "{{ secrets.OTHER }} {x}"}, 7, 0.0, "tpl", ZoneInfo("UTC"))
    stored = render("Bearer {{ secrets.KEY }} q={{ params.q }} {{ '{{' }}", values)
    assert "{{ secrets.KEY }}" in stored  # the reference is what is stored
    template = secret_template(stored)
    assert template is not None
    assert template.secrets == ["KEY"]  # the value's reference is text, not a second secret
    assert fill_secrets(template, {"KEY": "k"}) == "Bearer k q={{ secrets.OTHER }} {x} {{"
