"""Adding and replacing DAGs by sending a document: a .json config, or a 4diac file."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orchestrator.engine import Orchestrator
from orchestrator.errors import NotFoundError
from orchestrator.library import DagLibrary
from orchestrator.limits import MAX_CONFIG_BYTES
from orchestrator.settings import Settings
from tests.fake_telegram import ALICE, EVE, WAIT_S, BotHarness

FOURDIAC = Path(__file__).parent / "data" / "4diac"
HELLO = {"dag_name": "hello", "tasks": [{"id": "a", "operation": "noop"}]}


@pytest.fixture
async def tg(settings: Settings, orch: Orchestrator, library: DagLibrary) -> AsyncIterator[BotHarness]:
    """A running bot."""
    async with BotHarness(settings, orch, library) as harness:
        yield harness


async def _upload(tg: BotHarness, name: str, data: bytes, **expect: object) -> str:
    tg.tg.send_document(name, data)
    return (await tg.tg.expect(ALICE["id"], **expect)).text  # type: ignore[arg-type]


async def test_a_json_config_adds_then_replaces_a_dag(tg: BotHarness, library: DagLibrary, settings: Settings) -> None:
    tg.tg.send_document("hello.json", json.dumps(HELLO).encode())
    reply = await tg.tg.expect(ALICE["id"])
    assert "DAG <code>hello</code> added from hello.json: 1 task(s)" in reply.text
    assert [label for label, _ in reply.buttons()] == ["hello"], "a button to run it at once"
    assert (await library.get("hello")).tasks[0].id == "a"

    two = {**HELLO, "tasks": [*HELLO["tasks"], {"id": "b", "operation": "noop", "dependencies": ["a"]}]}
    text = await _upload(tg, "hello.json", json.dumps(two).encode())
    assert "replaced (now version 2)" in text
    assert len((await library.get("hello")).tasks) == 2
    assert (settings.configs_dir / "hello" / "config.v1.json").is_file(), "the previous version is kept"
    record = await tg.orch.store.get_dag("hello")
    assert "@alice" in record.source
    assert "hello.json" in record.source


async def test_an_invalid_config_gets_the_validation_report_and_is_not_saved(
    tg: BotHarness, library: DagLibrary
) -> None:
    bad = {
        "dag_name": "bad",
        "tasks": [
            {"id": "a", "operation": "no_such_op"},
            {"id": "b", "operation": "noop", "dependencies": ["<missing>"]},
        ],
    }
    text = await _upload(tg, "bad.json", json.dumps(bad).encode())
    assert text.startswith("❌ <pre>")
    assert "no_such_op" in text
    assert "&lt;missing&gt;" in text, "names from the upload are escaped"
    assert "tasks[1].dependencies (b): unknown task" in text, "each problem says where it is, and in which task"
    with pytest.raises(NotFoundError):
        await library.get("bad")
    task = {"id": "alpha", "operation": "shell", "independent_params": {"command": "ls"}}
    shell = {"dag_name": "sh", "tasks": [task]}
    text = await _upload(tg, "sh.json", json.dumps(shell).encode())
    assert "tasks[0].operation (alpha): the shell operation is disabled; set TASKFLOW_ALLOW_SHELL=1" in text
    with pytest.raises(NotFoundError):
        await library.get("sh")


async def test_broken_json_says_where(tg: BotHarness) -> None:
    text = await _upload(tg, "broken.json", b'{"dag_name": "x",\n  "tasks": [}')
    assert "line 2" in text


async def test_a_very_long_report_comes_as_a_file(tg: BotHarness) -> None:
    tasks = [{"id": f"task_{n:03d}", "operation": "not_an_operation"} for n in range(200)]
    tg.tg.send_document("huge.json", json.dumps({"dag_name": "huge", "tasks": tasks}).encode())
    sent = await tg.tg.expect(ALICE["id"], method="sendDocument")
    assert sent.filename == "validation-report.txt"
    assert "huge.json is invalid: 200 problem(s)" in sent.text
    assert sent.document is not None
    assert b"tasks[199].operation" in sent.document


async def test_other_files_are_refused_with_a_hint(tg: BotHarness, library: DagLibrary) -> None:
    text = await _upload(tg, "notes.txt", b"hello")
    assert "I can't use notes.txt" in text
    assert ".json" in text
    assert await library.list() == []


async def test_a_stranger_cannot_upload(tg: BotHarness, library: DagLibrary) -> None:
    tg.tg.send_document("hello.json", json.dumps(HELLO).encode(), EVE)
    assert "no access" in (await tg.tg.expect(EVE["id"])).text
    assert await library.list() == []


@pytest.mark.skipif(importlib.util.find_spec("orchestrator.fourdiac") is None, reason="no 4diac importer")
async def test_a_4diac_system_becomes_a_dag(tg: BotHarness, library: DagLibrary) -> None:
    text = await _upload(tg, "cycle.sys", (FOURDIAC / "cycle.sys").read_bytes())
    assert "DAG <code>Poller</code> added from cycle.sys: 2 task(s)" in text
    assert "<code>/schedule Poller * * * * * */30</code>" in text, "the E_CYCLE period becomes a suggested schedule"
    assert len((await library.get("Poller")).tasks) == 2

    text = await _upload(tg, "broken.sys", (FOURDIAC / "broken.sys").read_bytes())
    assert "broken.sys is invalid" in text
    assert "E_SWITCH is branching" in text


async def test_an_oversized_file_is_refused_before_it_is_downloaded(tg: BotHarness, library: DagLibrary) -> None:
    text = await _upload(tg, "big.json", b" " * (MAX_CONFIG_BYTES + 1))
    assert "big.json is too big" in text
    assert tg.tg.called("getFile") == [], "not even fetched"
    assert await library.list() == []


async def test_a_users_updates_are_handled_in_the_order_sent(tg: BotHarness, orch: Orchestrator) -> None:
    new = {"dag_name": "newdag", "tasks": [{"id": "a", "operation": "noop"}]}
    tg.tg.send_document("new.json", json.dumps(new).encode())
    tg.tg.send_text("/run newdag")  # at once: both arrive in one getUpdates answer
    added = await tg.tg.expect(ALICE["id"])
    assert "DAG <code>newdag</code> added" in added.text
    status = await tg.tg.expect(ALICE["id"])
    assert "Run <b>#1</b> of <code>newdag</code>" in status.text, "the upload was saved before /run looked"

    assert "succeeded" in (await tg.tg.expect(ALICE["id"], contains="Status page")).text

    tg.tg.send_document("bad.json", b'{"dag_name": "bad", "tasks": []}')
    tg.tg.send_text("/help")
    report = await tg.tg.expect(ALICE["id"])
    assert "❌" in report.text, "an error's reply keeps its place too"
    assert "/dags" in (await tg.tg.expect(ALICE["id"])).text
    async with asyncio.timeout(WAIT_S):  # no lock is kept for a user with nothing being handled
        while len(tg.bot.dispatcher.locks):
            await asyncio.sleep(0.01)
