"""4diac projects: typed sub-apps expanded from a type library (--lib, a ZIP), maps beside the file, and
how each interface (CLI, API, bot) takes them and words its refusals."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.engine import Orchestrator
from orchestrator.errors import ConfigError
from orchestrator.fourdiac import TypeLibrary, import_4diac, import_upload
from orchestrator.library import DagLibrary
from orchestrator.limits import MAX_4DIAC_ZIP_MEMBERS, MAX_XML_BYTES
from orchestrator.models import DagConfig
from orchestrator.settings import Settings
from orchestrator.states import RunState
from tests.fake_telegram import ALICE, BotHarness

GREETINGS = Path(__file__).parent / "data" / "4diac" / "greetings"
MAP = {"MY_SAY": {"operation": "noop", "params": {"WHAT": "value"}}}
XML = {"Content-Type": "application/xml"}


def _system() -> bytes:
    return (GREETINGS / "Greetings.sys").read_bytes()


def _sub() -> bytes:
    return (GREETINGS / "Greeting.SUB").read_bytes()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _project() -> bytes:
    return _zip({"Greetings/Greetings.sys": _system(), "Greetings/Types/Greeting.SUB": _sub()})


def _with_say(system: bytes) -> bytes:
    """The system with one block of a type only a map knows (MY_SAY), fed by Both."""
    say = b"<FB Name='Say' Type='MY_SAY' x='1800' y='200'/>"
    wiring = b"<Connection Source='Both.OUT' Destination='Say.WHAT'/>"
    system = system.replace(b"<EventConnections>", say + b"<EventConnections>", 1)
    return system.replace(b"</DataConnections>", wiring + b"</DataConnections>", 1)


# -- typed sub-apps ----------------------------------------------------------------------------


def test_typed_sub_apps_are_expanded_and_wired_through_their_interface() -> None:
    result = import_4diac(_system(), filename="Greetings.sys", library=TypeLibrary.from_dir(GREETINGS))
    tasks = {t.id: t for t in result.config.tasks}
    assert list(tasks) == ["First.Wait", "First.Join", "Second.Wait", "Second.Join", "Both"]
    assert (tasks["First.Wait"].operation, tasks["First.Wait"].independent_params) == ("sleep", {"seconds": 0.01})
    # The instance's Parameter NAME reaches Join.IN2 through the type's interface pin.
    assert tasks["First.Join"].independent_params == {"IN1": "hello, ", "IN2": "Ada", "function": "CONCAT"}
    assert tasks["Second.Wait"].dependencies == ["First.Join"]  # First.CNF → Second.REQ, through the pins
    assert tasks["Both"].dependent_params == {"IN1": "First.Join", "IN3": "Second.Join"}
    assert "SubApp 'First' expanded from type Greeting (Greeting.SUB)" in result.notes
    first = tasks["First.Join"].position
    assert first is not None
    assert (first.x, first.y) == (500.0, 0.0)


def test_an_unwired_sub_app_input_is_named_as_a_value_to_fill_in() -> None:
    result = import_4diac(_system(), filename="Greetings.sys", library=TypeLibrary.from_dir(GREETINGS))
    second = next(t for t in result.config.tasks if t.id == "Second.Join")
    assert second.independent_params == {"IN1": "hello, ", "function": "CONCAT"}  # no IN2: nothing gives it
    assert (
        "FB 'Second.Join': data input 'IN2' comes from pin 'NAME' of sub-app 'Second', which nothing wires and "
        "no Parameter sets; TaskFlow has no run parameters yet: fill in the value of param 'IN2' before running "
        "(or give 'Second' a Parameter NAME)"
    ) in result.notes
    assert [(r.name, r.task, r.param, r.origin) for r in result.required] == [
        ("Second.NAME", "Second.Join", "IN2", "sub-app input")
    ]
    assert result.config.metadata["required_values"] == [
        {"name": "Second.NAME", "task": "Second.Join", "param": "IN2", "origin": "sub-app input"}
    ]


async def test_an_expanded_project_runs_once_its_missing_value_is_filled_in(orch: Orchestrator) -> None:
    result = import_4diac(_system(), filename="Greetings.sys", library=TypeLibrary.from_dir(GREETINGS))
    config = result.config.model_dump(mode="json")
    for task in config["tasks"]:
        if task["id"] == "Second.Join":
            task["independent_params"]["IN2"] = "Bob"
    report = await orch.run(DagConfig.model_validate(config))
    assert report.state == RunState.SUCCESS
    outputs = await orch.store.get_outputs(report.run.run_id)
    assert outputs["Both"] == "hello, Ada / hello, Bob"


def test_a_required_param_from_an_unwired_input_refuses_the_import_saying_why() -> None:
    library = TypeLibrary.from_files([("Greeting.SUB", _sub().replace(b' InitialValue="T#10ms"', b""))])
    with pytest.raises(ConfigError) as info:
        import_4diac(_system(), filename="Greetings.sys", library=library)
    messages = [str(p) for p in info.value.problems]
    assert messages[0] == (
        "FB 'First.Wait': param 'seconds': operation 'sleep' needs this param "
        "(it comes from pin 'DT' of sub-app 'First', which nothing wires: give 'First' a Parameter DT)"
    )


def test_a_type_that_contains_itself_is_refused() -> None:
    looping = _sub().replace(b'<FB Name="Wait"', b'<SubApp Name="Again" Type="Greeting" x="0" y="0"/><FB Name="Wait"')
    with pytest.raises(ConfigError) as info:
        import_4diac(_system(), filename="Greetings.sys", library=TypeLibrary.from_files([("G.sub", looping)]))
    assert "SubApp 'First.Again': type Greeting contains itself (Greeting → Greeting)" in info.value.report()


def test_a_library_skips_files_it_cannot_read_with_a_note(tmp_path: Path) -> None:
    (tmp_path / "Greeting.SUB").write_bytes(_sub())
    (tmp_path / "Broken.sub").write_bytes(b"<SubAppType Name='X'>")
    (tmp_path / "Counter.fbt").write_bytes(b"<FBType Name='Counter'><BasicFB/></FBType>")  # code: not expanded
    library = TypeLibrary.from_dir(tmp_path)
    assert list(library.types) == ["greeting"]
    assert library.notes == ["type file Broken.sub skipped: line 1, column 22: malformed XML: no element found"]


# -- project ZIPs ------------------------------------------------------------------------------


def test_a_project_zip_brings_its_types_and_its_map() -> None:
    data = _zip(
        {
            "Greetings/Greetings.sys": _with_say(_system()),
            "Greetings/Types/Greeting.SUB": _sub(),
            "taskflow-map.json": json.dumps(MAP).encode(),
        }
    )
    result = import_upload(data, filename="greetings.zip")
    tasks = {t.id: t for t in result.config.tasks}
    assert tasks["Say"].operation == "noop"
    assert tasks["Say"].dependent_params == {"value": "Both"}
    assert result.config.metadata["imported_from"]["file"] == "Greetings.sys"


def test_a_map_given_beside_the_zip_wins_over_the_one_inside() -> None:
    data = _zip({"G.sys": _with_say(_system()), "G.SUB": _sub(), "taskflow-map.json": b'{"MY_SAY": "noop"}'})
    result = import_upload(data, mapping=MAP)
    assert "taskflow-map.json in the ZIP ignored: the map given with it wins" in result.notes
    assert next(t for t in result.config.tasks if t.id == "Say").dependent_params == {"value": "Both"}


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"../evil.sub": b"x", "G.sys": b"<System/>"}, "member '../evil.sub': the name leaves the archive ('..')"),
        ({"/etc/x.sub": b"x", "G.sys": b"<System/>"}, "member '/etc/x.sub': the name is not a relative path"),
        ({"C:\\x.sub": b"x", "G.sys": b"<System/>"}, "the name is not a relative path inside the archive"),
        ({"A.sys": b"<System/>", "B.sys": b"<System/>"}, "the ZIP holds 2 system files ('A.sys', 'B.sys')"),
        ({"readme.txt": b"hi"}, "the ZIP holds no 4diac system file (.sys)"),
        ({"G.sys": b" " * (MAX_XML_BYTES + 1)}, f"member 'G.sys': unpacks to more than {MAX_XML_BYTES} bytes"),
        ({f"f{i}.txt": b"" for i in range(MAX_4DIAC_ZIP_MEMBERS + 1)}, "members; the limit is 1000"),
    ],
)
def test_unsafe_or_unusable_zips_are_refused(members: dict[str, bytes], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        import_upload(_zip(members), filename="p.zip")
    assert message in info.value.report()


def test_a_zip_whose_headers_understate_a_member_is_refused() -> None:
    data = bytearray(_zip({"G.sys": b"<System>" + b" " * (MAX_XML_BYTES + 10) + b"</System>"}))
    # The central directory claims a small member: the read stops there, and the CRC does not match.
    at = data.rfind(b"PK\x01\x02")
    data[at + 24 : at + 28] = (100).to_bytes(4, "little")
    with pytest.raises(ConfigError) as info:
        import_upload(bytes(data), filename="p.zip")
    assert "member 'G.sys'" in info.value.report()


# -- the CLI -----------------------------------------------------------------------------------

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TASKFLOW_DATA_DIR", str(tmp_path))

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main.main(["import-4diac", *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_cli_expands_typed_sub_apps_from_lib(cli: Cli) -> None:
    code, out, err = cli(str(GREETINGS / "Greetings.sys"))
    assert code == 1
    assert (
        "FB 'First': a typed sub-app of type 'Greeting', whose type file was not given; "
        "pass the folder that holds its .sub file with --lib DIR"
    ) in err
    code, out, err = cli(str(GREETINGS / "Greetings.sys"), "--lib", str(GREETINGS))
    assert code == 0, err
    assert [t["id"] for t in json.loads(out)["tasks"]][-1] == "Both"
    assert "fill in the value of param 'IN2'" in err


def test_cli_imports_a_project_zip_and_names_its_map_option(cli: Cli, tmp_path: Path) -> None:
    project = tmp_path / "greetings.zip"
    project.write_bytes(_zip({"G.sys": _with_say(_system()), "G.SUB": _sub()}))
    code, _, err = cli(str(project))
    assert code == 1
    assert "FB 'Say': type 'MY_SAY' has no operation mapping; add it to a type mapping (--map FILE.json)" in err
    (tmp_path / "map.json").write_text(json.dumps(MAP))
    code, out, err = cli(str(project), "--map", str(tmp_path / "map.json"))
    assert code == 0, err
    assert "Say" in [t["id"] for t in json.loads(out)["tasks"]]


# -- the API -----------------------------------------------------------------------------------


@pytest.fixture
async def client(settings: Settings, orch: Orchestrator, library: DagLibrary) -> AsyncIterator[TestClient[Any, Any]]:
    from web import create_app

    async with TestClient(TestServer(create_app(settings, orch, library, orch.store))) as test_client:
        yield test_client


def _multipart(
    file: bytes, file_type: str, mapping: bytes | None, filename: str | None = None
) -> aiohttp.MultipartWriter:
    writer = aiohttp.MultipartWriter("mixed")
    part = writer.append(file, {"Content-Type": file_type})
    if filename:
        part.set_content_disposition("attachment", filename=filename)
    if mapping is not None:
        writer.append(mapping, {"Content-Type": "application/json"})
    return writer


async def test_api_takes_a_project_zip(client: TestClient[Any, Any], library: DagLibrary) -> None:
    resp = await client.post("/api/import/4diac", data=_project(), headers={"Content-Type": "application/zip"})
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert body["config"]["tasks"][0]["id"] == "First.Wait"
    assert any("fill in the value of param 'IN2'" in note for note in body["notes"])
    assert (await library.get("Greet")).tasks[-1].id == "Both"


async def test_api_takes_a_map_part_and_names_it_in_refusals(client: TestClient[Any, Any]) -> None:
    system = _with_say(_system())
    zipped = _zip({"G.sys": system, "G.SUB": _sub()})
    refused = await client.post("/api/import/4diac?dry_run=1", data=zipped, headers={"Content-Type": "application/zip"})
    assert refused.status == 422
    messages = [p["message"] for p in (await refused.json())["problems"]]
    assert messages == [
        "type 'MY_SAY' has no operation mapping; add it to a type mapping: a JSON part (application/json) beside "
        "the XML in a multipart/mixed body, or taskflow-map.json inside a project ZIP"
    ]
    with_map = _multipart(zipped, "application/zip", json.dumps(MAP).encode())
    accepted = await client.post("/api/import/4diac?dry_run=1", data=with_map)
    assert accepted.status == 200, await accepted.text()
    assert "Say" in [t["id"] for t in (await accepted.json())["config"]["tasks"]]


async def test_api_map_part_beside_xml_and_a_bad_map_is_named(client: TestClient[Any, Any]) -> None:
    network = b"<FB Name='Say' Type='MY_SAY'><Parameter Name='WHAT' Value='1'/></FB>"
    xml = _system().replace(b'<FB Name="Both"', network + b'<FB Name="Both"').replace(b'Type="Greeting"', b"")
    xml = b"<?xml version='1.0'?><System Name='S'><Application Name='A'><SubAppNetwork>" + network
    xml += b"</SubAppNetwork></Application></System>"
    ok = await client.post(
        "/api/import/4diac?dry_run=1", data=_multipart(xml, "application/xml", json.dumps(MAP).encode())
    )
    assert ok.status == 200, await ok.text()
    assert (await ok.json())["config"]["tasks"][0]["independent_params"] == {"value": 1}
    bad = await client.post("/api/import/4diac?dry_run=1", data=_multipart(xml, "text/xml", b'{"MY_SAY": {"op": 1}}'))
    assert bad.status == 422
    report = await bad.json()
    assert report["message"] == "the map part is invalid"


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None]
)
async def test_api_refuses_types_a_browser_sends_across_sites(
    client: TestClient[Any, Any], content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    resp = await client.post("/api/import/4diac", data=_system(), headers=headers, skip_auto_headers={"Content-Type"})
    assert resp.status == 415
    body = await resp.json()
    assert body["error"] == "unsupported_media_type"
    assert "application/xml" in body["message"]


async def test_api_says_an_empty_body_is_empty(client: TestClient[Any, Any]) -> None:
    resp = await client.post("/api/import/4diac", data=b"", headers=XML)
    assert resp.status == 400
    assert (await resp.json())["message"].startswith("the request body is empty")


async def test_api_names_a_nameless_upload_for_what_it_holds(client: TestClient[Any, Any]) -> None:
    resp = await client.post("/api/import/4diac?dry_run=1", data=_sub(), headers=XML)
    assert resp.status == 200, await resp.text()
    config = (await resp.json())["config"]
    assert config["metadata"]["imported_from"]["file"] == "upload.sub"
    assert config["description"] == "Imported from 4diac sub-app type 'Greeting' (upload.sub)"


# -- the bot -----------------------------------------------------------------------------------


@pytest.fixture
async def tg(settings: Settings, orch: Orchestrator, library: DagLibrary) -> AsyncIterator[BotHarness]:
    async with BotHarness(settings, orch, library) as harness:
        yield harness


async def test_bot_takes_a_project_zip_with_its_map(tg: BotHarness, library: DagLibrary) -> None:
    system = _with_say(_system())
    tg.tg.send_document("greetings.zip", _zip({"G.sys": system, "G.SUB": _sub()}))
    refused = (await tg.tg.expect(ALICE["id"])).text
    assert "add it to a type mapping: send a .zip of the file with a taskflow-map.json beside it" in refused
    assert "--map" not in refused
    tg.tg.send_document(
        "greetings.zip", _zip({"G.sys": system, "G.SUB": _sub(), "taskflow-map.json": json.dumps(MAP).encode()})
    )
    added = (await tg.tg.expect(ALICE["id"])).text
    assert "DAG <code>Greet</code> added from greetings.zip: 6 task(s)" in added
    assert [t.id for t in (await library.get("Greet")).tasks][-1] == "Say"


def test_types_that_nest_many_copies_of_each_other_stop_at_the_node_limit() -> None:
    def level(name: str, inner: str) -> tuple[str, bytes]:
        blocks = "".join(f"<SubApp Name='S{i}' Type='{inner}'/>" for i in range(10))
        xml = f"<SubAppType Name='{name}'><SubAppNetwork>{blocks}</SubAppNetwork></SubAppType>"
        return f"{name}.sub", xml.encode()

    leaf = ("L0.sub", b"<SubAppType Name='L0'><SubAppNetwork><FB Name='A' Type='NOOP'/></SubAppNetwork></SubAppType>")
    files = [leaf, *(level(f"L{n}", f"L{n - 1}") for n in range(1, 8))]  # 10**7 copies of A, fully expanded
    system = b"<System Name='S'><Application Name='A'><SubAppNetwork><SubApp Name='Top' Type='L7'/>"
    system += b"</SubAppNetwork></Application></System>"
    with pytest.raises(ConfigError) as info:
        import_4diac(system, library=TypeLibrary.from_files(files))
    assert "makes more than 50000 blocks, pins and sub-apps; it stops" in info.value.report()


def test_a_zip_that_is_no_zip_is_called_so() -> None:
    with pytest.raises(ConfigError) as info:
        import_upload(b"<System/>", filename="project.zip")
    assert (
        info.value.report()
        == "project.zip is invalid (1 problem(s)):\n  - not a ZIP archive (a .zip file must start with PK)"
    )
