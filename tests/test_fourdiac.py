"""Tests of the 4diac importer: hand-written files, real 4diac examples, and hostile XML."""

from __future__ import annotations

import json
import time
import zipfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.engine import Orchestrator
from orchestrator.errors import ConfigError, Problem
from orchestrator.fourdiac import AppChoiceError, ImportResult, iec_literal, import_4diac, load_mapping
from orchestrator.fourdiac.flow import Flow
from orchestrator.library import DagLibrary
from orchestrator.limits import MAX_XML_BYTES
from orchestrator.settings import Settings
from orchestrator.states import RunState, TaskState
from tests.fake_telegram import ALICE, BotHarness

DATA = Path(__file__).parent / "data" / "4diac"
# Real files from eclipse-4diac/4diac-examples (EPL-2.0); read where they are, never copied here.
FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "4diac"

XML = {"Content-Type": "application/xml"}


def _import(name: str, **kwargs: Any) -> ImportResult:
    return import_4diac((DATA / name).read_bytes(), filename=name, **kwargs)


def _problems(data: bytes, **kwargs: Any) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        import_4diac(data, **kwargs)
    return info.value.problems


def _messages(problems: list[Problem]) -> list[str]:
    return [str(p) for p in problems]


def _system(network: str, resource: str = "", app: str = "App") -> bytes:
    """A one-application system around ``network`` (the inside of a SubAppNetwork)."""
    res = f"<Device Name='PC'><Resource Name='Res'><FBNetwork>{resource}</FBNetwork></Resource></Device>"
    return (
        f"<?xml version='1.0'?><System Name='S'><Application Name='{app}'>"
        f"<SubAppNetwork>{network}</SubAppNetwork></Application>{res}</System>"
    ).encode()


def _fixture(name: str) -> bytes:
    if not FIXTURES.is_dir():
        pytest.skip(f"the 4diac example files are not at {FIXTURES}")
    return (FIXTURES / name).read_bytes()


# -- success paths -----------------------------------------------------------------------------


def test_pipeline_becomes_the_spec_example() -> None:
    result = _import("pipeline.sys")
    config = result.config
    assert config.dag_name == "GithubStars"
    assert [t.id for t in config.tasks] == ["Fetch", "ToText", "Send"]
    fetch, to_text, send = config.tasks
    # The package prefix is dropped, QI dropped, URL renamed, and HTTP_GET's method fixed.
    assert fetch.operation == "http_request"
    assert fetch.independent_params == {
        "url": "https://api.github.com/repos/python/cpython",
        "filename": "repo.json",
        "method": "GET",
    }
    assert fetch.dependencies == []
    assert fetch.description == "the repository as JSON"
    assert (to_text.operation, to_text.dependencies) == ("json_to_string", ["Fetch"])
    assert to_text.dependent_params == {"data": "Fetch"}  # the whole output of Fetch
    assert to_text.independent_params["filename"] == "message.txt"
    assert (send.operation, send.dependent_params, send.dependencies) == (
        "telegram_send",
        {"text": "ToText"},
        ["ToText"],
    )
    assert send.independent_params == {"username": "@someone"}
    assert send.position is not None
    assert (send.position.x, send.position.y) == (1700.0, -40.0)
    assert to_text.position is not None
    assert to_text.position.x == 900.5
    assert result.schedule is None
    assert config.metadata["imported_from"] == {
        "format": "4diac",
        "file": "pipeline.sys",
        "element": "Application 'GithubStars'",
    }
    assert any("entry tasks: Fetch" in note for note in result.notes)
    assert any("START.STOP" in note and "ignored" in note for note in result.notes)


def test_diamond_collapses_split_and_rend_into_edges() -> None:
    result = _import("diamond.sys")
    tasks = {t.id: t for t in result.config.tasks}
    assert list(tasks) == ["A", "B", "C", "D"]  # no task for Split1 / Join1
    assert tasks["A"].dependencies == []
    assert tasks["B"].dependencies == ["A"]
    assert tasks["C"].dependencies == ["A"]
    assert tasks["D"].dependencies == ["B", "C"]
    assert tasks["D"].dependent_params == {"value": "B"}
    assert tasks["C"].independent_params == {"seconds": 0.01}
    assert "E_SPLIT 'Split1' collapsed into edges" in result.notes
    assert "E_REND 'Join1' collapsed into edges" in result.notes


def test_subapp_blocks_are_flattened_and_wired_through_its_pins() -> None:
    result = _import("subapp.sys")
    tasks = {t.id: t for t in result.config.tasks}
    assert list(tasks) == ["Fetch", "Stage.Pick", "Stage.Keep", "Report"]
    assert tasks["Stage.Pick"].dependencies == ["Fetch"]
    assert tasks["Stage.Pick"].dependent_params == {"data": "Fetch"}  # Fetch.OUT → Stage.IN → Pick.DATA
    assert tasks["Stage.Keep"].dependencies == ["Stage.Pick"]
    assert tasks["Stage.Keep"].independent_params == {"value": 5}  # the sub-app's own Parameter LIMIT
    assert tasks["Report"].dependencies == ["Stage.Keep", "Stage.Pick"]  # event via CNF, data via OUT
    assert tasks["Report"].dependent_params == {"value": "Stage.Pick"}
    pick = tasks["Stage.Pick"].position
    assert pick is not None
    assert (pick.x, pick.y) == (1100.0, 550.0)


@pytest.fixture(scope="module")
def literals() -> dict[str, Any]:
    result = _import("literals.sys", mapping=load_mapping(DATA / "literals_map.json"))
    return {"notes": result.notes, **{t.id: t.independent_params.get("value", "<unset>") for t in result.config.tasks}}


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ("Int", 42),
        ("Negative", -7),
        ("Grouped", 1_000_000),
        ("Hex", 255),
        ("Binary", 0b1010_1010),
        ("Octal", 15),
        ("Real", 3.25),
        ("Exponent", 1500.0),
        ("True", True),
        ("False", False),
        ("TypedBool", True),
        ("TypedInt", 5),
        ("TypedHex", 16),
        ("TypedReal", 2.0),
        ("String", "hello, world"),
        ("Escapes", "it's $5\nnext\tA"),
        ("Wide", 'say "hi" é'),
        ("TypedString", "x"),
        ("BareString", "4"),
        ("Second", 1.0),
        ("Millis", 0.25),
        ("Compound", 90.0),
        ("LongTime", 3723.5),
        ("LowerTime", 2.0),
        ("Day", 86400.0),
        ("Date", "2024-01-31"),
        ("TimeOfDay", "12:30:15"),
        ("DateTime", "2024-01-31T12:30:00"),
        ("Array", [1, 2, 3]),
        ("Repeated", [0, 0, 1]),
        ("Struct", {"name": "a, b", "tags": ["x", "y"], "n": 2}),
        ("NotALiteral", "virtuals::local"),
        ("Empty", "<unset>"),
    ],
)
def test_parameter_literals_become_json(literals: dict[str, Any], block: str, expected: Any) -> None:
    value = literals[block]
    assert value == expected
    assert type(value) is type(expected)  # 1.0 is not 1, True is not 1


def test_a_value_that_is_no_literal_is_kept_as_text_with_a_note(literals: dict[str, Any]) -> None:
    assert any(
        note.startswith("FB 'NotALiteral': parameter 'V' = 'virtuals::local' kept as text: not an IEC 61131-3 literal")
        for note in literals["notes"]
    )


@pytest.mark.parametrize(
    "text",
    [
        "'unterminated",
        "'a'b'",
        "[1, 2",
        "T#5x",
        "T#",
        "16#XY",
        "INT#1.5",
        "Color#Red",
        "(a = 1)",
        "[100000000(0)]",
        "1e999",
        "16#1" + "0" * 16,  # 2**64: wider than any IEC 61131-3 integer
        "-18446744073709551616",
        "1" * 5000,
        '"$D800"',  # half of a UTF-16 pair: no character, and would make the text invalid Unicode
        '"a$DFFFb"',
    ],
)
def test_bad_literals_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        iec_literal(text)


def test_cycle_started_by_start_becomes_the_schedule() -> None:
    result = _import("cycle.sys")
    tasks = {t.id: t for t in result.config.tasks}
    assert list(tasks) == ["Poll", "Save"]  # E_CYCLE is no task
    assert tasks["Poll"].dependencies == []
    assert tasks["Save"].dependencies == ["Poll"]
    assert result.schedule == "* * * * * */30"
    assert result.config.metadata["suggested_schedule"] == "* * * * * */30"
    assert any("E_CYCLE 'Tick'" in note and "schedule" in note for note in result.notes)


def _cycle(dt: str) -> bytes:
    return _system(
        f"<FB Name='Tick' Type='E_CYCLE'><Parameter Name='DT' Value='{dt}'/></FB><FB Name='Job' Type='NOOP'/>"
        "<EventConnections><Connection Source='Tick.EO' Destination='Job.REQ'/></EventConnections>",
        "<EventConnections><Connection Source='START.WARM' Destination='App.Tick.START'/></EventConnections>",
    )


@pytest.mark.parametrize(
    ("dt", "cron"),
    [
        ("T#1s", "* * * * * *"),
        ("T#15s", "* * * * * */15"),
        ("T#1m", "* * * * *"),
        ("T#5m", "*/5 * * * *"),
        ("T#1h", "0 * * * *"),
        ("T#2h", "0 */2 * * *"),
        ("T#1d", "0 0 * * *"),
        ("T#90s", None),
        ("T#250ms", None),
    ],
)
def test_cycle_period_to_cron(dt: str, cron: str | None) -> None:
    result = import_4diac(_cycle(dt))
    assert result.schedule == cron
    assert result.config.tasks[0].dependencies == []
    if cron is None:
        assert any("no cron equivalent" in note for note in result.notes)


def test_cycle_started_by_a_task_is_refused() -> None:
    network = (
        "<FB Name='First' Type='NOOP'/><FB Name='Tick' Type='E_CYCLE'><Parameter Name='DT' Value='T#1s'/></FB>"
        "<FB Name='Job' Type='NOOP'/><EventConnections><Connection Source='First.CNF' Destination='Tick.START'/>"
        "<Connection Source='Tick.EO' Destination='Job.REQ'/></EventConnections>"
    )
    problems = _problems(_system(network))
    assert [p.location for p in problems] == ["FB 'Tick'"]
    assert "started by First" in problems[0].message


def test_cycles_with_different_periods_are_refused() -> None:
    network = (
        "<FB Name='Fast' Type='E_CYCLE'><Parameter Name='DT' Value='T#1s'/></FB>"
        "<FB Name='Slow' Type='E_CYCLE'><Parameter Name='DT' Value='T#1m'/></FB><FB Name='Job' Type='NOOP'/>"
        "<EventConnections><Connection Source='Fast.EO' Destination='Job.REQ'/>"
        "<Connection Source='Slow.EO' Destination='Job.REQ'/></EventConnections>"
    )
    starts = (
        "<EventConnections><Connection Source='START.COLD' Destination='App.Fast.START'/>"
        "<Connection Source='START.COLD' Destination='App.Slow.START'/></EventConnections>"
    )
    problems = _problems(_system(network, starts))
    assert len(problems) == 1
    assert "Fast" in problems[0].message
    assert "Slow" in problems[0].message


def test_cycle_nothing_starts_suggests_no_schedule() -> None:
    data = _cycle("T#1s").replace(b"START.WARM", b"START.STOP")
    result = import_4diac(data)
    assert result.schedule is None
    assert "nothing starts E_CYCLE 'Tick'; no schedule suggested" in result.notes


def test_composite_fb_type_starts_at_its_interface_events() -> None:
    result = _import("composite.fbt")
    tasks = {t.id: t for t in result.config.tasks}
    assert result.config.dag_name == "Fetch_And_Save"  # "Fetch And Save" sanitised to a dag id
    assert tasks["Pause"].operation == "sleep"  # E_DELAY
    assert tasks["Pause"].independent_params == {"seconds": 0.02}  # the interface's InitialValue T#20ms
    assert tasks["Pause"].dependencies == []
    assert tasks["Save"].dependencies == ["Pause"]
    assert any("'NOTE'" in note and "no value" in note for note in result.notes)


def test_several_applications_need_a_choice() -> None:
    data = (DATA / "multi_app.sys").read_bytes()
    problems = _problems(data, filename="multi_app.sys")
    # Worded for every interface: the CLI, the API and the bot each add how to choose there.
    assert _messages(problems) == ["System 'Plant': has 2 applications; choose one of: 'First', 'Second'"]
    result = import_4diac(data, app="Second")
    assert [t.id for t in result.config.tasks] == ["B", "C"]
    assert any("entry tasks: B" in note for note in result.notes)  # START into First.A is not this app's
    with pytest.raises(AppChoiceError) as choice:
        import_4diac(data, app="Third")
    assert choice.value.apps == ["First", "Second"]
    assert _messages(choice.value.with_hint("pass --app NAME").problems) == [
        "System 'Plant': has no application 'Third'; choose one of: 'First', 'Second' (pass --app NAME)"
    ]


def test_user_mapping_renames_fixes_and_points_into_outputs() -> None:
    network = (
        "<FB Name='Get' Type='FETCH'><Parameter Name='ADDR' Value='&apos;https://example.org&apos;'/>"
        "<Parameter Name='QI' Value='1'/></FB><FB Name='Say' Type='NOOP'/>"
        "<EventConnections><Connection Source='Get.CNF' Destination='Say.REQ'/></EventConnections>"
        "<DataConnections><Connection Source='Get.NAME' Destination='Say.V'/></DataConnections>"
    )
    mapping = load_mapping(DATA / "literals_map.json")
    result = import_4diac(_system(network), mapping=mapping, dag_name="custom")
    get, say = result.config.tasks
    assert result.config.dag_name == "custom"
    assert get.independent_params == {"url": "https://example.org", "method": "GET"}
    assert say.dependent_params == {"value": "Get.full_name"}  # the mapping's outputs: NAME → full_name
    bad = network.replace("Get.NAME", "Get.STATUS").replace("</FB>", "<Parameter Name='method' Value='1'/></FB>", 1)
    messages = _messages(_problems(_system(bad), mapping=mapping))
    assert any("Get.STATUS" in m and "known: BODY, NAME" in m for m in messages)
    assert "FB 'Get': param 'method' is fixed to 'GET' by the mapping of FETCH; drop pin 'method'" in messages


def test_params_the_operation_lacks_are_reported_by_the_validator() -> None:
    network = "<FB Name='Job' Type='MYTYPE'><Parameter Name='SPEED' Value='3'/></FB>"
    problems = _problems(_system(network), mapping={"MYTYPE": "noop"})
    assert _messages(problems) == ["FB 'Job': param 'SPEED': operation 'noop' has no param 'SPEED'"]


def test_validator_findings_name_the_block_not_the_task_index() -> None:
    network = (
        "<FB Name='My Block' Type='NOOP'/><FB Name='Switch' Type='E_SWITCH'/>"
        "<FB Name='Job' Type='MYTYPE'><Parameter Name='QI' Value='1'/></FB>"
        "<FB Name='Nap' Type='SLEEP'><Parameter Name='DT' Value='soon'/></FB>"
    )
    problems = _problems(_system(network), mapping={"MYTYPE": "noop"})
    assert not [p for p in problems if p.location.startswith("tasks")]
    by_location = {p.location: p.message for p in problems}
    assert by_location["FB 'My Block'"].startswith("its name cannot be a task id: a task id is 1-64 letters")
    assert by_location["FB 'Job'"] == "param 'QI': operation 'noop' has no param 'QI'"
    # The mapping renamed DT to seconds: the message says both.
    assert by_location["FB 'Nap'"].startswith("param 'seconds' (from DT): ")
    assert len(problems) == 4  # and the branch


def test_a_parameter_without_a_name_is_its_own_problem() -> None:
    problems = _problems(_system("<FB Name='A' Type='NOOP'><Parameter Value='1'/></FB>"))
    assert _messages(problems) == ["FB 'A': a Parameter (Value '1') has no Name"]


def test_a_parameter_given_twice_is_refused() -> None:
    network = "<FB Name='A' Type='NOOP'><Parameter Name='VALUE' Value='1'/><Parameter Name='VALUE' Value='2'/></FB>"
    problems = _problems(_system(network))
    assert _messages(problems) == ["FB 'A': parameter 'VALUE' is given twice (Values '1' and '2'); keep one"]
    sub = (
        "<SubApp Name='S'><Parameter Name='P' Value='1'/><Parameter Name='P' Value='1'/>"
        "<SubAppNetwork><FB Name='A' Type='NOOP'/></SubAppNetwork></SubApp>"
    )
    assert [p.location for p in _problems(_system(sub))] == ["SubApp 'S'"]


# -- what cannot be mapped -------------------------------------------------------------------


def test_everything_unmappable_is_reported_at_once() -> None:
    problems = _problems((DATA / "broken.sys").read_bytes(), filename="broken.sys")
    by_location = {p.location: p.message for p in problems}
    assert by_location["FB 'Switch1'"] == "E_SWITCH is branching; TaskFlow DAGs cannot branch"
    assert "any-of" in by_location["FB 'Any1'"]
    assert by_location["FB 'Client'"].startswith("CLIENT_1 is a communication block: ")
    assert "names no block" in by_location["event connection 'A.CNF' → 'Ghost.REQ'"]
    assert "adapter connections cannot be mapped" in by_location["adapter connection 'A.PLUG' → 'B.SOCKET'"]
    assert "'VALUE' has 2 sources (A.OUT, B.OUT)" in by_location["FB 'C'"]
    assert len(problems) == 6


def test_error_names_the_file() -> None:
    with pytest.raises(ConfigError) as info:
        import_4diac((DATA / "broken.sys").read_bytes(), filename="broken.sys")
    assert info.value.source == "broken.sys"
    assert info.value.report().startswith("broken.sys is invalid (6 problem(s)):")


def test_event_loop_names_the_blocks_on_it() -> None:
    network = (
        "<FB Name='A' Type='NOOP'/><FB Name='Fan' Type='E_SPLIT'/>"
        "<FB Name='B' Type='NOOP'/><FB Name='Off' Type='NOOP'/>"
        "<EventConnections><Connection Source='A.CNF' Destination='Fan.EI'/>"
        "<Connection Source='Fan.EO1' Destination='B.REQ'/><Connection Source='B.CNF' Destination='A.REQ'/>"
        "<Connection Source='Fan.EO2' Destination='Off.REQ'/></EventConnections>"
    )
    problems = _problems(_system(network))
    assert len(problems) == 1
    assert problems[0].location == "EventConnections"
    loop = problems[0].message.removeprefix("event loop: ").split(";")[0].split(" → ")
    assert loop[0] == loop[-1]
    assert sorted(loop[:-1]) == ["A", "B", "Fan"]  # Off hangs off the loop, it is not on it


def test_interface_pin_in_an_application_is_dangling() -> None:
    network = (
        "<FB Name='A' Type='NOOP'/><EventConnections><Connection Source='REQ' Destination='A.REQ'/></EventConnections>"
    )
    problems = _problems(_system(network))
    assert len(problems) == 1
    assert "'REQ' is not a pin of the interface" in problems[0].message


def test_duplicate_block_names_are_refused() -> None:
    problems = _problems(_system("<FB Name='A' Type='NOOP'/><FB Name='A' Type='SLEEP'/>"))
    assert _messages(problems) == ["FB 'A': another block of the network has this name"]


def test_empty_application_is_refused() -> None:
    problems = _problems(_system(""))
    assert _messages(problems) == ["Application 'App': the network has no function blocks"]


def test_basic_fb_type_is_refused() -> None:
    problems = _problems((DATA / "basic.fbt").read_bytes(), filename="basic.fbt")
    assert problems[0].location == "FB type 'Counter'"
    assert "basic function block" in problems[0].message


def test_sub_apps_nested_too_deep_are_refused() -> None:
    depth = 40
    inner = "<FB Name='Leaf' Type='NOOP'/>"
    for level in range(depth):
        inner = f"<SubApp Name='S{level}'><SubAppNetwork>{inner}</SubAppNetwork></SubApp>"
    problems = _problems(_system(inner))
    assert any("nest deeper than" in p.message for p in problems)


# -- one test per rule, so that dropping the rule fails it -------------------------------------


def _events(*pairs: str) -> str:
    return "<EventConnections>" + "".join(_connection(p) for p in pairs) + "</EventConnections>"


def _data(*pairs: str) -> str:
    return "<DataConnections>" + "".join(_connection(p) for p in pairs) + "</DataConnections>"


def _connection(pair: str) -> str:
    src, dst = pair.split(" > ")
    return f"<Connection Source='{src}' Destination='{dst}'/>"


def test_blocks_inside_groups_are_imported() -> None:
    network = (
        "<Group Name='Outer'><FB Name='A' Type='NOOP'/><Group Name='Inner'><FB Name='B' Type='NOOP'/></Group></Group>"
        + _events("A.CNF > B.REQ")
    )
    tasks = import_4diac(_system(network)).config.tasks
    assert [(t.id, t.dependencies) for t in tasks] == [("A", []), ("B", ["A"])]


def test_a_loop_through_a_data_connection_is_refused() -> None:
    network = (
        "<FB Name='A' Type='NOOP'/><FB Name='B' Type='NOOP'/>" + _events("A.CNF > B.REQ") + _data("B.OUT > A.VALUE")
    )
    problems = _problems(_system(network))
    assert [p.location for p in problems] == ["DataConnections"]
    assert problems[0].message.startswith("loop through data connections: ")
    assert {"A", "B"} <= set(problems[0].message.split(";")[0].split(": ")[1].split(" → "))


def test_a_connected_input_drops_its_parameter() -> None:
    network = "<FB Name='A' Type='NOOP'/><FB Name='B' Type='NOOP'><Parameter Name='VALUE' Value='1'/></FB>" + _data(
        "A.OUT > B.VALUE"
    )
    b = import_4diac(_system(network)).config.tasks[1]
    assert (b.independent_params, b.dependent_params, b.dependencies) == ({}, {"value": "A"}, ["A"])


def test_events_the_mapping_ignores_make_no_dependency() -> None:
    network = (
        "<FB Name='Go' Type='NOOP'/><FB Name='Halt' Type='NOOP'/>"
        "<FB Name='Wait' Type='E_DELAY'><Parameter Name='DT' Value='T#1s'/></FB>"
        + _events("Go.CNF > Wait.START", "Halt.CNF > Wait.STOP")
    )
    result = import_4diac(_system(network))
    wait = result.config.tasks[2]
    assert (wait.id, wait.dependencies) == ("Wait", ["Go"])  # E_DELAY's table entry ignores STOP
    assert any("ignored: the mapping of E_DELAY ignores event input STOP" in note for note in result.notes)


def test_resetting_an_e_rend_makes_no_dependency() -> None:
    network = (
        "<FB Name='A' Type='NOOP'/><FB Name='B' Type='NOOP'/><FB Name='Reset' Type='NOOP'/>"
        "<FB Name='Join' Type='E_REND'/><FB Name='D' Type='NOOP'/>"
        + _events("A.CNF > Join.EI1", "B.CNF > Join.EI2", "Reset.CNF > Join.R", "Join.EO > D.REQ")
    )
    result = import_4diac(_system(network))
    assert result.config.tasks[-1].dependencies == ["A", "B"]
    assert any("ignored: resetting an E_REND has no DAG equivalent" in note for note in result.notes)


def test_type_names_are_looked_up_ignoring_case() -> None:
    network = (
        "<FB Name='A' Type='iec61499::mine::Noop'/><FB Name='B' Type='sleep'><Parameter Name='DT' Value='T#1s'/></FB>"
    )
    tasks = import_4diac(_system(network)).config.tasks
    assert [t.operation for t in tasks] == ["noop", "sleep"]


def test_an_event_input_with_several_sources_gets_a_note() -> None:
    network = "<FB Name='A' Type='NOOP'/><FB Name='B' Type='NOOP'/><FB Name='C' Type='NOOP'/>" + _events(
        "A.CNF > C.REQ", "B.CNF > C.REQ"
    )
    result = import_4diac(_system(network))
    assert result.config.tasks[2].dependencies == ["A", "B"]
    assert any(note.startswith("event input 'C.REQ' has 2 sources (A.CNF, B.CNF)") for note in result.notes)


@pytest.mark.parametrize(("opening", "closing"), [("[", "]"), ("(a := ", ")")])
def test_literals_nest_at_most_16_deep(opening: str, closing: str) -> None:
    assert iec_literal(opening * 16 + "1" + closing * 16) is not None
    with pytest.raises(ValueError, match="nested deeper than 16"):
        iec_literal(opening * 17 + "1" + closing * 17)
    with pytest.raises(ValueError, match="nested deeper than 16"):  # not a RecursionError
        iec_literal(opening * 5000 + "1" + closing * 5000)


# -- hostile or broken XML -------------------------------------------------------------------


def test_malformed_xml_reports_line_and_column() -> None:
    data = b"<?xml version='1.0'?>\n<System Name='S'>\n  <Application Name='A'>\n  </System>\n"
    problems = _problems(data, filename="bad.sys")
    assert len(problems) == 1
    assert problems[0].location == "line 4, column 5"
    assert problems[0].message == "malformed XML: mismatched tag"


def test_entity_expansion_bomb_is_refused() -> None:
    lol = "".join(f"<!ENTITY lol{i} '{f'&lol{i - 1};' * 10}'>" for i in range(1, 10))
    data = f"<?xml version='1.0'?><!DOCTYPE System [<!ENTITY lol0 'lol'>{lol}]><System Name='&lol9;'/>".encode()
    problems = _problems(data)
    assert problems[0].location == "DOCTYPE"
    assert "entity declaration 'lol0' refused" in problems[0].message


def test_external_entity_is_refused() -> None:
    data = b"<?xml version='1.0'?><!DOCTYPE System [<!ENTITY x SYSTEM 'file:///etc/passwd'>]><System Name='&x;'/>"
    problems = _problems(data)
    assert problems[0].location == "DOCTYPE"
    assert "refused" in problems[0].message
    assert "root:" not in str(problems)


def test_external_dtd_is_not_fetched() -> None:
    # Real .fbt files name a DTD on the web; it is neither fetched nor needed.
    data = (
        b"<?xml version='1.0'?><!DOCTYPE System SYSTEM 'http://127.0.0.1:9/never.dtd'>"
        + _system("<FB Name='A' Type='NOOP'/>").split(b"?>", 1)[1]
    )
    assert [t.id for t in import_4diac(data).config.tasks] == ["A"]


def test_groups_nested_too_deep_are_refused_without_a_traceback() -> None:
    depth = 20_000  # deeper than Python's stack: the groups are read with a loop
    network = "<Group Name='G'>" * depth + "<FB Name='A' Type='NOOP'/>" + "</Group>" * depth
    problems = _problems(_system(network + "<FB Name='B' Type='NOOP'/>"))
    assert _messages(problems) == ["Group 'G': groups nest deeper than 32; the blocks in it were not read"]


def test_an_integer_too_wide_for_json_is_kept_as_text_with_a_short_note() -> None:
    huge = "16#" + "F" * 20_000
    result = import_4diac(_system(f"<FB Name='A' Type='NOOP'><Parameter Name='VALUE' Value='{huge}'/></FB>"))
    assert result.config.tasks[0].independent_params == {"value": huge}
    json.dumps(result.config.model_dump(mode="json"))  # an unbounded int failed here
    [note] = result.notes
    assert note.startswith("FB 'A': parameter 'VALUE' = '16#FFFF")
    assert "(20003 characters) kept as text: integer wider than 64 bits" in note
    assert len(note) < 300  # the value is not repeated in full


def test_the_widest_iec_integers_are_read() -> None:
    assert iec_literal("16#" + "F" * 16) == 2**64 - 1
    assert iec_literal("2#" + "0" * 100 + "1") == 1  # leading zeros add no width
    assert iec_literal("LINT#-9223372036854775808") == -(2**63)
    assert iec_literal("REAL#" + "1" + "0" * 30) == 1e30  # a REAL is no integer: not bound to 64 bits


def test_a_surrogate_escape_is_kept_as_text_with_a_note_naming_the_block() -> None:
    network = "<FB Name='A' Type='NOOP'><Parameter Name='VALUE' Value='&quot;x$D800&quot;'/></FB>"
    result = import_4diac(_system(network))
    value = result.config.tasks[0].independent_params["value"]
    assert value == '"x$D800"'
    value.encode("utf-8")  # valid Unicode, unlike chr(0xD800)
    assert result.notes == [
        "FB 'A': parameter 'VALUE' = '\"x$D800\"' kept as text: escape '$D800' is a UTF-16 surrogate, not a character"
    ]


def test_oversized_file_is_refused_before_parsing() -> None:
    data = b"<System>" + b" " * MAX_XML_BYTES + b"</System>"
    problems = _problems(data)
    assert f"the limit is {MAX_XML_BYTES}" in problems[0].message


def test_other_xml_is_refused() -> None:
    problems = _problems(b"<html><body/></html>")
    assert problems[0].location == "<html>"
    assert "not a 4diac system" in problems[0].message


# -- scale -----------------------------------------------------------------------------------


class _CountingDict(dict[Any, Any]):
    """A dict that counts lookups: how much walking an import did."""

    lookups = 0

    def get(self, key: Any, default: Any = None) -> Any:
        _CountingDict.lookups += 1
        return super().get(key, default)

    def __getitem__(self, key: Any) -> Any:
        _CountingDict.lookups += 1
        return super().__getitem__(key)


def _split_chain(length: int) -> bytes:
    """Head → E_SPLIT × ``length`` → ``length`` tasks, all hanging off the last E_SPLIT."""
    blocks = ["<FB Name='Head' Type='NOOP'/>"]
    blocks += [f"<FB Name='S{i}' Type='E_SPLIT'/>" for i in range(length)]
    blocks += [f"<FB Name='T{i}' Type='NOOP'/>" for i in range(length)]
    events = ["<Connection Source='Head.CNF' Destination='S0.EI'/>"]
    events += [f"<Connection Source='S{i}.EO1' Destination='S{i + 1}.EI'/>" for i in range(length - 1)]
    events += [f"<Connection Source='S{length - 1}.EO{i}' Destination='T{i}.REQ'/>" for i in range(length)]
    return _system("".join(blocks) + "<EventConnections>" + "".join(events) + "</EventConnections>")


def test_a_long_chain_of_splits_is_walked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    length = 3000
    original_init = Flow.__init__

    def counting_init(self: Flow, net: Any) -> None:
        original_init(self, net)
        self.ev_in = _CountingDict(self.ev_in)

    monkeypatch.setattr(Flow, "__init__", counting_init)
    monkeypatch.setattr(_CountingDict, "lookups", 0)
    started = time.perf_counter()
    result = import_4diac(_split_chain(length))
    elapsed = time.perf_counter() - started
    tasks = result.config.tasks
    assert len(tasks) == length + 1
    assert all(t.dependencies == ["Head"] for t in tasks[1:])
    assert "START" not in " ".join(result.notes)
    # Walking the chain again for each task (and again for START) looked edges up ~length² times.
    assert _CountingDict.lookups < 10 * length
    assert elapsed < 5  # a guard only: it takes well under a second


# -- the mapping file ------------------------------------------------------------------------


def test_load_mapping_accepts_the_shorthand_and_comments() -> None:
    assert load_mapping(b'{"$comment": "x", "MY_WAIT": "sleep"}') == {"MY_WAIT": {"operation": "sleep"}}


@pytest.mark.parametrize(
    ("raw", "location", "message"),
    [
        (b'{\n  "A": {"operation": "noop",}\n}', "line 2, column 29", "invalid JSON"),
        (b'{"A": {"operation": "noop", "rename": {}}}', "A.rename", "unknown field"),
        (b'{"A": {"operation": "no_such_op"}}', "A.operation", "unknown operation 'no_such_op'"),
        (b'{"A": {"operation": "noop", "params": {"X": 1}}}', "A.params.X", "valid string"),
        (b"[1, 2]", "", "JSON object"),
    ],
)
def test_load_mapping_reports_bad_entries(raw: bytes, location: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_mapping(raw)
    problem = info.value.problems[0]
    assert problem.location == location
    assert message in problem.message


def test_load_mapping_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_mapping(tmp_path / "nope.json")
    assert info.value.source == "nope.json"
    assert "cannot read" in info.value.problems[0].message


def test_a_bad_mapping_passed_to_the_importer_is_reported() -> None:
    with pytest.raises(ConfigError) as info:
        import_4diac(_system("<FB Name='A' Type='NOOP'/>"), mapping={"NOOP": {"operation": ""}})
    assert info.value.source == "mapping"
    assert info.value.problems[0].location == "NOOP.operation"


# -- the edges: CLI, API and bot ---------------------------------------------------------------


Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    """``main.py`` called in-process: its exit code, stdout and stderr."""
    import main

    monkeypatch.chdir(tmp_path)  # no stray .env is read
    monkeypatch.setenv("TASKFLOW_DATA_DIR", str(tmp_path))
    for name in ("TELEGRAM_BOT_TOKEN", "TASKFLOW_API_TOKEN", "TELEGRAM_ALLOWED_USERS"):
        monkeypatch.delenv(name, raising=False)

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main.main(["import-4diac", *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_cli_writes_the_config_of_the_chosen_app(cli: Cli, tmp_path: Path) -> None:
    out_file = tmp_path / "second.json"
    code, out, err = cli(str(DATA / "multi_app.sys"), "--app", "Second", "-o", str(out_file))
    assert code == 0, err
    assert out == f"wrote {out_file}: DAG 'Second' with 2 task(s)\n"
    config = json.loads(out_file.read_text(encoding="utf-8"))
    assert [t["id"] for t in config["tasks"]] == ["B", "C"]


def test_cli_says_how_to_choose_an_app(cli: Cli) -> None:
    code, out, err = cli(str(DATA / "multi_app.sys"))
    assert code == 1
    assert out == ""
    assert "System 'Plant': has 2 applications; choose one of: 'First', 'Second' (pass --app NAME)" in err


def test_cli_reads_a_mapping_file(cli: Cli) -> None:
    code, out, err = cli(str(DATA / "literals.sys"), "--map", str(DATA / "literals_map.json"))
    assert code == 0, err
    values = {t["id"]: t.get("independent_params", {}).get("value") for t in json.loads(out)["tasks"]}
    assert values["Compound"] == 90.0
    assert "note: FB 'NotALiteral'" in err
    code, _, err = cli(str(DATA / "literals.sys"))
    assert code == 1
    assert "type 'LIT' has no operation mapping" in err


def test_cli_output_into_a_missing_folder_is_one_line_of_error(cli: Cli, tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "x.json"
    code, out, err = cli(str(DATA / "pipeline.sys"), "-o", str(target))
    assert code == 1
    assert err == f"error: cannot write {target}: No such file or directory\n"
    assert out == ""


@pytest.fixture
async def client(settings: Settings, orch: Orchestrator, library: DagLibrary) -> AsyncIterator[TestClient[Any, Any]]:
    from web import create_app

    async with TestClient(TestServer(create_app(settings, orch, library, orch.store))) as test_client:
        yield test_client


async def test_api_says_how_to_choose_an_app(client: TestClient[Any, Any]) -> None:
    data = (DATA / "multi_app.sys").read_bytes()
    refused = await client.post("/api/import/4diac?filename=multi_app.sys", data=data, headers=XML)
    assert refused.status == 422
    [problem] = (await refused.json())["problems"]
    assert problem["message"].endswith("choose one of: 'First', 'Second' (add ?app=NAME to the URL)")
    chosen = await client.post("/api/import/4diac?filename=multi_app.sys&app=Second&dry_run=1", data=data, headers=XML)
    assert chosen.status == 200
    assert [t["id"] for t in (await chosen.json())["config"]["tasks"]] == ["B", "C"]


@pytest.fixture
async def tg(settings: Settings, orch: Orchestrator, library: DagLibrary) -> AsyncIterator[BotHarness]:
    async with BotHarness(settings, orch, library) as harness:
        yield harness


async def test_bot_caption_chooses_the_app(tg: BotHarness, library: DagLibrary) -> None:
    data = (DATA / "multi_app.sys").read_bytes()
    tg.tg.send_document("multi_app.sys", data)
    refused = (await tg.tg.expect(ALICE["id"])).text
    assert "choose one of: 'First', 'Second' (send the file again with the caption app=NAME)" in refused
    tg.tg.send_document("multi_app.sys", data, caption="app=Second")
    added = (await tg.tg.expect(ALICE["id"])).text
    assert "DAG <code>Second</code> added from multi_app.sys: 2 task(s)" in added
    assert [t.id for t in (await library.get("Second")).tasks] == ["B", "C"]


# -- the real 4diac examples -----------------------------------------------------------------


def test_xquery_event_cycle_names_the_blocks_on_it() -> None:
    problems = _problems(_fixture("Xquery.sys"), filename="Xquery.sys")
    loops = [p for p in problems if p.message.startswith("event loop:")]
    assert len(loops) == 1
    for block in ("FetchSpeed", "FetchSuccessor", "FetchPredecessor", "DummyRollgang"):
        assert block in loops[0].message
    assert any(p.location == "FB 'FetchSpeed'" and "CLIENT_1 is a communication block" in p.message for p in problems)


def test_blinky_reports_e_switch_as_branching() -> None:
    problems = _problems(_fixture("Blinky.fbt"), filename="Blinky.fbt")
    by_location = {p.location: p.message for p in problems}
    assert by_location["FB 'E_SWITCH'"] == "E_SWITCH is branching; TaskFlow DAGs cannot branch"
    assert "bistable" in by_location["FB 'E_SR'"]
    assert "FB 'E_CYCLE'" not in by_location  # started from the type's Start event: a schedule, no error


def test_wait_for_connection_e_switch_is_refused_and_e_delay_maps() -> None:
    data = _fixture("WaitForConnection.SUB")
    problems = _problems(data, filename="WaitForConnection.SUB")
    locations = {p.location for p in problems}
    assert locations == {"FB 'E_SWITCH_2'", "FB 'WaitForConnection'"}  # E_DELAY maps to sleep, STRING2STRING
    assert "SUBSCRIBE_1 is a communication block: PUBLISH/SUBSCRIBE" in str(problems)  # to the standard function
    # With the communication block mapped, only the branch (and noop's unknown params) is left.
    mapped = _problems(data, mapping={"SUBSCRIBE_1": "noop"})
    assert [p.location for p in mapped if "has no param" not in p.message] == ["FB 'E_SWITCH_2'"]
    assert all(p.location.startswith("FB '") for p in mapped)  # the validator's findings too, by block


# -- end to end ------------------------------------------------------------------------------


async def test_imported_diamond_runs_through_the_engine(orch: Orchestrator) -> None:
    report = await orch.run(_import("diamond.sys").config)
    assert report.state == RunState.SUCCESS
    assert {task_id: t.state for task_id, t in report.tasks.items()} == dict.fromkeys("ABCD", TaskState.SUCCESS)
    # D's value came from B's output through the imported data connection.
    output = report.tasks["D"].output_file
    assert report.archive is not None
    assert output is not None
    with zipfile.ZipFile(report.archive) as archive:
        name = next(n for n in archive.namelist() if n.endswith(output))
        assert archive.read(name).decode() == "b"  # a text output is saved as text


# -- eclipse-4diac's SystemTests: the standard function blocks, run for real ------------------

# The test-framework blocks are 4diac's, not the standard's: mapped here, as a user would with --map.
_TEST_BLOCKS = {"TEST_CONDITION": {"operation": "noop", "params": {"check": "value"}}, "STEST_END": "noop"}


def _system_test(app: str) -> ImportResult:
    return import_4diac(_fixture("SystemTests.sys"), filename="SystemTests.sys", app=app, mapping=_TEST_BLOCKS)


def _shape(result: ImportResult) -> list[tuple[str, str, dict[str, Any], dict[str, str], list[str]]]:
    return [(t.id, t.operation, t.independent_params, t.dependent_params, t.dependencies) for t in result.config.tasks]


async def test_system_tests_hard_pass_converts_and_checks_true(orch: Orchestrator) -> None:
    result = _system_test("Hard_Pass_Example")
    assert _shape(result) == [
        ("BOOL2BOOL", "iec_function", {"IN": True, "function": "BOOL_TO_BOOL"}, {}, []),
        ("SHOULD_NOT_FAIL", "noop", {}, {"value": "BOOL2BOOL"}, ["BOOL2BOOL"]),
        ("STEST_END", "noop", {}, {}, ["SHOULD_NOT_FAIL"]),
    ]
    # Only this application's START connections and notes: not those of the seven others' resources.
    assert result.notes == ["START.COLD/WARM mark the entry tasks: BOOL2BOOL"]
    report = await orch.run(result.config)
    assert report.state == RunState.SUCCESS
    outputs = await orch.store.get_outputs(report.run.run_id)
    assert outputs["BOOL2BOOL"] is True
    assert outputs["SHOULD_NOT_FAIL"] is True


async def test_system_tests_fail_example_computes_each_condition(orch: Orchestrator) -> None:
    result = _system_test("Fail_Example")
    # In dependency order, not the file's (which starts with the last block, STEST_END_0).
    assert [(t.id, t.dependencies) for t in result.config.tasks] == [
        ("BOOL2BOOL_1", []),
        ("SHOULD_FAIL_1", ["BOOL2BOOL_1"]),
        ("BOOL2BOOL_1_1", ["SHOULD_FAIL_1"]),
        ("SHOULD_NOT_FAIL", ["BOOL2BOOL_1_1"]),
        ("BOOL2BOOL_1_1_1", ["SHOULD_NOT_FAIL"]),
        ("SHOULD_FAIL_2", ["BOOL2BOOL_1_1_1"]),
        ("STEST_END_0", ["SHOULD_FAIL_2"]),
    ]
    report = await orch.run(result.config)
    assert report.state == RunState.SUCCESS
    outputs = await orch.store.get_outputs(report.run.run_id)
    assert (outputs["SHOULD_FAIL_1"], outputs["SHOULD_NOT_FAIL"], outputs["SHOULD_FAIL_2"]) == (False, True, False)


async def test_system_tests_soft_pass_fails_on_k_out_of_range(orch: Orchestrator) -> None:
    result = _system_test("Soft_Pass_Example")
    assert _shape(result) == [
        ("F_MUX_2", "iec_function", {"K": 2, "function": "MUX_2"}, {}, []),
        ("BOOL2BOOL", "iec_function", {"function": "BOOL_TO_BOOL"}, {"IN": "F_MUX_2"}, ["F_MUX_2"]),
        ("F_NOT", "iec_function", {"function": "NOT"}, {"IN": "BOOL2BOOL"}, ["BOOL2BOOL"]),
        ("NOT_ZERO", "noop", {}, {"value": "F_NOT"}, ["F_NOT"]),
        ("STEST_END_0_1", "noop", {}, {}, ["NOT_ZERO"]),
    ]
    report = await orch.run(result.config)
    assert report.state == RunState.FAILED
    mux = report.tasks["F_MUX_2"]
    assert mux.state == TaskState.FAILED
    assert mux.error == "K=2 is out of range: with 2 inputs (IN1..IN2) K must be 0..1"
    assert mux.attempts == 1  # a computation is not retried
    assert report.tasks["STEST_END_0_1"].state == TaskState.UPSTREAM_FAILED


def test_system_tests_communication_apps_are_refused_naming_publish_subscribe_and_e_cycle() -> None:
    with pytest.raises(ConfigError) as info:
        _system_test("simpleCommunicationTest")
    by_location = {p.location: p.message for p in info.value.problems}
    assert by_location["FB 'WaitServer'"].startswith(
        "event input 'START' is driven by SUBSCRIBE_1 (SUBSCRIBE_1) of resource 'Client.simpleClientTest', "
        "a communication block: PUBLISH/SUBSCRIBE"
    )
    assert all("communication block" in message for message in by_location.values())
    with pytest.raises(ConfigError) as info:
        _system_test("MultiDevice")
    by_location = {p.location: p.message for p in info.value.problems}
    assert "driven by PUBLISH_2 (PUBLISH_0)" in by_location["FB 'E_CYCLE'"]
    assert by_location["FB 'E_CYCLE'"].endswith("an E_CYCLE (every T#500ms) started at run time cannot be a schedule")
    assert "driven by SUBSCRIBE_1" in by_location["FB 'DINT2DINT_1'"]


def test_a_placeholder_value_is_named_as_a_value_to_fill_in() -> None:
    network = "<FB Name='Eq' Type='F_EQ'><Parameter Name='IN1' Value='5'/><Parameter Name='IN2' Value='%limit%'/></FB>"
    result = import_4diac(_system(network))
    assert result.config.tasks[0].independent_params == {"IN1": 5, "IN2": "%limit%", "function": "EQ"}
    assert result.notes == [
        "FB 'Eq': parameter 'IN2' = '%limit%' holds %limit%, which 4diac fills in when it deploys; "
        "TaskFlow has no run parameters yet: fill in the value of param 'IN2' before running"
    ]
    # The hook for run parameters: what a required run param will fill.
    assert result.config.metadata["required_values"] == [
        {"name": "limit", "task": "Eq", "param": "IN2", "origin": "placeholder"}
    ]


def test_e_default_permit_is_refused_like_e_permit() -> None:
    network = "<FB Name='P' Type='E_PERMIT'/><FB Name='D' Type='iec61499::events::E_DEFAULT_PERMIT'/>"
    by_location = {p.location: p.message for p in _problems(_system(network))}
    assert by_location["FB 'D'"] == by_location["FB 'P'"].replace("E_PERMIT", "E_DEFAULT_PERMIT")
    assert "branching" in by_location["FB 'D'"]


def test_standard_blocks_pins_other_than_out_are_refused() -> None:
    network = (
        "<FB Name='Add' Type='F_ADD'><Parameter Name='IN1' Value='1'/><Parameter Name='IN2' Value='2'/></FB>"
        "<FB Name='Show' Type='NOOP'/>" + _data("Add.QO > Show.VALUE")
    )
    [problem] = _problems(_system(network))
    assert problem.location == "FB 'Show'"
    assert "reads Add.QO, an output pin the mapping of F_ADD lacks (known: OUT)" in problem.message


# -- long refusals -----------------------------------------------------------------------------


def test_cli_summarises_a_long_refusal_by_kind_and_lists_all_on_request(cli: Cli) -> None:
    path = str(FIXTURES / "SystemTests.sys")
    _fixture("SystemTests.sys")
    code, _, err = cli(path, "--app", "CSVWriterTests")
    assert code == 1
    lines = err.splitlines()
    assert lines[0] == (
        "SystemTests.sys is invalid: 60 problems of 10 kinds, summarised; pass --all-problems to list each one"
    )
    assert (
        "  - 7 × (FB 'NormalExecution.E_SWITCH', FB 'DoubleInit.E_SWITCH_1', FB 'InitDeinitNoWrite.E_SWITCH' "
        "and 4 more): E_SWITCH is branching; TaskFlow DAGs cannot branch"
    ) in lines
    assert "  - 5 × EventConnections: event loop: …; a DAG cannot loop" in lines
    assert len(lines) == 11
    code, _, err = cli(path, "--app", "CSVWriterTests", "--all-problems")
    assert code == 1
    assert err.startswith("SystemTests.sys is invalid (60 problem(s)):")


async def test_api_summarises_a_long_refusal_unless_asked_for_all(client: TestClient[Any, Any]) -> None:
    data = _fixture("SystemTests.sys")
    url = "/api/import/4diac?filename=SystemTests.sys&app=CSVWriterTests"
    summary = await (await client.post(url, data=data, headers=XML)).json()
    assert summary["problems"][0]["message"] == (
        "60 problems of 10 kinds, summarised; add ?all_problems=1 to the URL to list each one"
    )
    full = await (await client.post(url + "&all_problems=1", data=data, headers=XML)).json()
    assert len(full["problems"]) == 60


def test_a_resources_own_subscribe_block_driving_the_application_is_refused() -> None:
    resource = "<FB Name='Rx' Type='SUBSCRIBE_1'/><FB Name='Tick' Type='E_CYCLE'/>" + _events(
        "Rx.IND > App.A.REQ", "Tick.EO > B.REQ", "Rx.IND > Tick.START"
    )
    problems = _problems(_system("<FB Name='A' Type='NOOP'/><FB Name='B' Type='NOOP'/>", resource))
    assert _messages(problems) == [
        "FB 'A': event input 'REQ' is driven by Rx (SUBSCRIBE_1) of resource 'PC.Res', a communication block: "
        "PUBLISH/SUBSCRIBE and CLIENT/SERVER exchange messages between devices while they run, "
        "and a TaskFlow run cannot wait for a message"
    ]
    # Tick → B is the resource's own block, not a communication one: a note, and no word on Rx → Tick.
    resource = "<FB Name='Tick' Type='E_CYCLE'/>" + _events("Tick.EO > B.REQ")
    result = import_4diac(_system("<FB Name='B' Type='NOOP'/>", resource))
    assert result.notes == [
        "FB 'B': event input 'REQ' is driven by Tick (E_CYCLE) of resource 'PC.Res', which is not in the "
        "application; ignored"
    ]


async def test_bot_summarises_a_long_refusal_unless_the_caption_asks_for_all(tg: BotHarness) -> None:
    data = _fixture("SystemTests.sys")
    tg.tg.send_document("SystemTests.sys", data, caption="app=CSVWriterTests")
    summary = await tg.tg.expect(ALICE["id"])
    assert "60 problems of 10 kinds, summarised; send the file again with the caption all-problems" in summary.text
    tg.tg.send_document("SystemTests.sys", data, caption="app=CSVWriterTests all-problems")
    full = await tg.tg.expect(ALICE["id"])
    assert "60 problem(s)" in full.text


@pytest.mark.parametrize("data", [b"", b"  \n\t"])
def test_an_empty_file_is_called_empty(data: bytes) -> None:
    assert _messages(_problems(data, filename="x.sys")) == ["the file is empty; send a 4diac .sys, .fbt or .sub file"]
