"""Config validation: every problem reported at once, each with its location."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import ConfigError
from orchestrator.limits import DEFAULT_MAX_TASKS, MAX_CONFIG_BYTES
from orchestrator.models import DagConfig, TaskConfig, check_filename
from orchestrator.validation import check_config, checked_params, config_schema, parse_config


def dag(*tasks: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"dag_name": "d", "tasks": list(tasks), **extra}


def problems(raw: Any) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    return {p.location: p.message for p in info.value.problems}


def test_the_seed_example_is_valid() -> None:
    with open(Path(__file__).parents[1] / "dag_config_example.json", encoding="utf-8") as f:
        config = parse_config(f.read())
    assert config.dag_id == "github_stars_to_telegram"
    assert [t.id for t in config.tasks] == ["fetch", "to_text", "send"]
    assert config.retries_for(config.tasks[0]) == 2


def test_invalid_json_names_line_and_column() -> None:
    found = problems('{\n  "dag_name": "x",\n  "tasks": [,]\n}')
    assert list(found) == ["line 3, column 13"]
    assert "invalid JSON" in found["line 3, column 13"]


def test_every_problem_is_reported_at_once() -> None:
    found = problems(
        dag(
            {"id": "fetch", "operation": "http_request", "independent_params": {"url": "http://x", "bogus": 1}},
            {"id": "b", "operation": "noop", "dependencies": ["fecth"]},
            {"id": "b", "operation": "nope"},
            {"id": "c", "operation": "json_to_string", "dependent_params": {"data": "b"}},
        )
    )
    assert found["tasks[1].dependencies"] == "unknown task 'fecth'"
    assert "duplicate task id 'b'" in found["tasks[2].id"]
    assert "unknown operation 'nope'" in found["tasks[2].operation"]
    assert "has no param 'bogus'" in found["tasks[0].independent_params.bogus"]
    assert "not upstream of 'c'" in found["tasks[3].dependent_params.data"]


def test_shape_and_graph_problems_come_together() -> None:
    found = problems(
        dag(
            {"id": "a", "operation": "noop", "dependecies": []},
            {"id": "b", "operation": "noop", "dependencies": ["ghost"]},
            {"id": "c", "operation": "sleep"},
        )
    )
    assert found["tasks[0].dependecies"] == "unknown field (not allowed here)"
    assert found["tasks[1].dependencies"] == "unknown task 'ghost'"
    assert "needs this param" in found["tasks[2].independent_params.seconds"]


def test_a_cycle_names_its_tasks_in_order() -> None:
    found = problems(
        dag(
            {"id": "a", "operation": "noop", "dependencies": ["c"]},
            {"id": "b", "operation": "noop", "dependencies": ["a"]},
            {"id": "c", "operation": "noop", "dependencies": ["b"]},
            {"id": "free", "operation": "noop"},
        )
    )
    message = found["tasks"]
    assert "cycle" in message
    cycle = message.split(": ", 1)[1].split(" (")[0].split(" → ")
    assert cycle[0] == cycle[-1]
    assert sorted(cycle[:-1]) == ["a", "b", "c"]
    assert "free" not in message


def test_tasks_may_be_listed_in_any_order_and_a_cycle_is_found_wherever_it_is() -> None:
    # Listed downstream first: no shortcut applies, and the order alone is no cycle.
    parse_config(
        dag(
            {"id": "last", "operation": "noop", "dependencies": ["middle"]},
            {"id": "middle", "operation": "noop", "dependencies": ["first"]},
            {"id": "first", "operation": "noop"},
        )
    )
    # A duplicate id is reported, and the cycle behind it too.
    found = problems(
        dag(
            {"id": "a", "operation": "noop"},
            {"id": "b", "operation": "noop", "dependencies": ["a"]},
            {"id": "a", "operation": "noop", "dependencies": ["b"]},
        )
    )
    assert "duplicate task id 'a'" in found["tasks[2].id"]
    assert "cycle" in found["tasks"]


def test_self_dependency() -> None:
    assert (
        "depends on itself"
        in problems(dag({"id": "a", "operation": "noop", "dependencies": ["a"]}))["tasks[0].dependencies"]
    )


def test_references_must_be_upstream_transitively_allowed() -> None:
    config = parse_config(
        dag(
            {"id": "a", "operation": "noop", "independent_params": {"value": {"x": [1, 2]}}},
            {"id": "b", "operation": "noop", "dependencies": ["a"]},
            {"id": "c", "operation": "select", "dependencies": ["b"], "dependent_params": {"data": "a.x.1"}},
        )
    )
    assert config.task("c").dependent_params == {"data": "a.x.1"}
    found = problems(
        dag(
            {"id": "a", "operation": "noop"},
            {"id": "b", "operation": "select", "dependent_params": {"data": "a"}},
            {"id": "c", "operation": "select", "dependencies": ["b"], "dependent_params": {"data": "zzz.q"}},
        )
    )
    assert "'a' is not upstream of 'b'" in found["tasks[1].dependent_params.data"]
    assert "does not name a task" in found["tasks[2].dependent_params.data"]


def test_dependent_param_supplies_a_required_param() -> None:
    config = parse_config(
        dag(
            {"id": "a", "operation": "noop", "independent_params": {"value": 1}},
            {"id": "w", "operation": "write_file", "dependencies": ["a"], "dependent_params": {"content": "a"}},
        )
    )
    assert config.task("w").dependent_params["content"] == "a"
    found = problems(dag({"id": "w", "operation": "write_file", "dependent_params": {"nonsense": "w"}}))
    assert "has no param 'nonsense'" in found["tasks[0].dependent_params.nonsense"]


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "a/b", "a\\b", ".hidden", "bad\x07name", "x" * 129, "run.log"])
def test_unsafe_filenames_are_refused(name: str) -> None:
    found = problems(dag({"id": "a", "operation": "noop", "independent_params": {"filename": name}}))
    assert "tasks[0].independent_params.filename" in found


@pytest.mark.parametrize(
    "name",
    [
        "report\u202etxt.exe",  # right-to-left override: shown in chat as "reportexe.txt"
        "a\u200bb.txt",  # zero-width space (Cf)
        "a\ufeffb.txt",  # byte order mark (Cf)
        "a\u2028b.txt",  # line separator (Zl)
        "a\u2029b.txt",  # paragraph separator (Zp)
        "a\x85b.txt",  # next line (Cc, outside ASCII)
        "a\ud800b.txt",  # an unpaired surrogate (Cs)
    ],
)
def test_filenames_with_invisible_or_reordering_characters_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match=r"control, format or line-separator characters \(U\+"):
        check_filename(name)


def test_filenames_in_any_script_are_fine() -> None:
    for name in ("отчёт.txt", "報告.json", "café-ü.txt", "emoji-😀.txt"):
        assert check_filename(name) == name


def test_two_tasks_cannot_write_the_same_file() -> None:
    found = problems(
        dag(
            {"id": "a", "operation": "noop", "independent_params": {"filename": "out.json"}},
            {"id": "b", "operation": "noop", "independent_params": {"filename": "out.json"}},
        )
    )
    assert "also the output of tasks[0]" in found["tasks[1].independent_params.filename"]


@pytest.mark.parametrize("dag_name", ["", ".hidden", "has space", "x" * 65, "semi;colon"])
def test_bad_dag_names(dag_name: str) -> None:
    assert "dag_name" in problems({"dag_name": dag_name, "tasks": [{"id": "a", "operation": "noop"}]})


def test_limits_on_size_and_task_count() -> None:
    too_big = json.dumps(dag({"id": "a", "operation": "noop", "description": "x" * MAX_CONFIG_BYTES}))
    assert "the limit is" in next(iter(problems(too_big).values()))
    assert "at least" in problems(dag())["tasks"]


def test_the_task_count_follows_the_setting_and_so_does_the_size_limit() -> None:
    many = dag(*({"id": f"t{i}", "operation": "noop"} for i in range(11)))
    with pytest.raises(ConfigError) as refused:
        parse_config(many, max_tasks=10)
    assert str(refused.value.problems[0]) == "tasks: 11 tasks; the limit is 10 (the TASKFLOW_MAX_TASKS setting)"
    assert len(parse_config(many, max_tasks=11).tasks) == 11
    # 100,000 tasks fit the default limits, bytes included
    big = json.dumps(dag(*({"id": f"task_{i:06d}", "operation": "noop"} for i in range(DEFAULT_MAX_TASKS))))
    assert len(parse_config(big).tasks) == DEFAULT_MAX_TASKS


def test_bad_types_and_ranges() -> None:
    found = problems(dag({"id": "a", "operation": "noop", "timeout": -1, "priority": "urgent"}, max_retries="x"))
    assert set(found) >= {"max_retries", "tasks[0].timeout", "tasks[0].priority"}


def test_check_config_catches_configs_built_in_code() -> None:
    config = DagConfig(dag_name="d", tasks=[TaskConfig(id="a", operation="noop", dependencies=["ghost"])])
    with pytest.raises(ConfigError, match="unknown task 'ghost'"):
        check_config(config)


def test_non_utf8_bytes() -> None:
    found = problems(b'{"dag_name": "\xff"}')
    assert "not UTF-8" in next(iter(found.values()))


def test_report_and_json_form() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(dag({"id": "a", "operation": "nope"}), source="upload.json")
    assert info.value.report().startswith("upload.json is invalid (1 problem(s)):")
    body = info.value.as_dict()
    assert body["error"] == "invalid_config"
    assert body["problems"] == [
        {"location": "tasks[0].operation", "task_id": "a", "message": info.value.problems[0].message}
    ]
    assert "  - tasks[0].operation (a): unknown operation 'nope'" in info.value.report()


def test_schema_describes_the_config() -> None:
    schema = config_schema()
    assert schema["title"] == "TaskFlow DAG config"
    assert {"dag_name", "tasks"} <= set(schema["properties"])
    assert "dag_name" in schema["required"]


def test_params_problems_come_in_task_order_whichever_operation_they_belong_to() -> None:
    # Tasks of one operation are validated together; a failure must still name each task, in order.
    with pytest.raises(ConfigError) as info:
        parse_config(
            dag(
                {"id": "ok", "operation": "sleep", "independent_params": {"seconds": 0}},
                {"id": "odd", "operation": "no_such_op"},
                {"id": "bad", "operation": "sleep", "independent_params": {"seconds": "soon"}},
                {"id": "extra", "operation": "noop", "independent_params": {"bogus": 1}},
                {"id": "ok2", "operation": "sleep", "independent_params": {"seconds": 1}},
            )
        )
    assert [p.location for p in info.value.problems] == [
        "tasks[1].operation",
        "tasks[2].independent_params.seconds",
        "tasks[3].independent_params.bogus",
    ]


def test_a_checked_config_hands_back_the_validated_params_of_tasks_without_upstream_values() -> None:
    config = parse_config(
        dag(
            {"id": "a", "operation": "sleep", "independent_params": {"seconds": 0.5}},
            {"id": "b", "operation": "json_to_string", "dependent_params": {"data": "a"}, "dependencies": ["a"]},
        )
    )
    params = checked_params(config)
    assert set(params) == {"a"}  # b's params exist only once a has run
    assert params["a"].seconds == 0.5  # type: ignore[attr-defined]


def test_a_filename_clash_is_reported_in_task_order_among_params_problems() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(
            dag(
                {"id": "a", "operation": "noop"},
                {"id": "b", "operation": "noop", "independent_params": {"filename": "a.json"}},
                {"id": "c", "operation": "sleep", "independent_params": {"seconds": "soon"}},
            )
        )
    assert [p.location for p in info.value.problems] == [
        "tasks[1].independent_params.filename",
        "tasks[2].independent_params.seconds",
    ]
