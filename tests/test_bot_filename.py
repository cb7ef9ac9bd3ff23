"""/filename: the one edit a chat user may make, by command or by buttons."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from orchestrator.engine import Orchestrator
from orchestrator.library import DagLibrary
from orchestrator.settings import Settings
from tests.fake_telegram import ALICE, BotHarness

EDIT = "editMessageText"
DAG = {
    "dag_name": "report",
    "tasks": [
        {"id": "fetch", "operation": "noop", "independent_params": {"value": {"n": 1}}},
        {"id": "pause", "operation": "sleep", "independent_params": {"seconds": 0}},
        {
            "id": "render",
            "operation": "json_to_string",
            "independent_params": {"filename": "old.txt"},
            "dependent_params": {"data": "fetch"},
            "dependencies": ["fetch"],
        },
    ],
}


@pytest.fixture
async def tg(settings: Settings, orch: Orchestrator, library: DagLibrary) -> AsyncIterator[BotHarness]:
    """A running bot that knows one DAG."""
    await library.add_json(json.dumps(DAG), source="test")
    async with BotHarness(settings, orch, library) as harness:
        yield harness


async def _filename(library: DagLibrary, task_id: str) -> str | None:
    return (await library.get("report")).task(task_id).filename


async def test_the_command_changes_the_filename_and_keeps_the_old_config(
    tg: BotHarness, library: DagLibrary, settings: Settings, orch: Orchestrator
) -> None:
    reply = await tg.say("/filename report render summary.md")
    assert (
        "Task <code>render</code> of <code>report</code> now saves its output as <code>summary.md</code>" in reply.text
    )
    assert await _filename(library, "render") == "summary.md"
    saved = json.loads((settings.configs_dir / "report" / "config.json").read_text(encoding="utf-8"))
    assert saved["tasks"][2]["independent_params"]["filename"] == "summary.md"
    assert (settings.configs_dir / "report" / "config.v1.json").is_file()

    report = await orch.run(await library.get("report"))
    assert report.tasks["render"].output_file == "summary.md", "the next runs use it"


async def test_a_name_the_core_refuses_is_explained(tg: BotHarness, library: DagLibrary) -> None:
    reply = await tg.say("/filename report render ../../etc/passwd")
    assert "must" in reply.text
    assert "'/'" in reply.text
    assert await _filename(library, "render") == "old.txt"
    assert "has no task 'nope'" in (await tg.say("/filename report nope x.txt")).text
    assert "DAG 'gone' does not exist" in (await tg.say("/filename gone render x.txt")).text


async def test_the_button_flow(tg: BotHarness, library: DagLibrary) -> None:
    pick_dag = await tg.say("/filename")
    assert [label for label, _ in pick_dag.buttons()] == ["report", "✖ Cancel"]
    pick_task = await tg.tap(pick_dag, "report", method=EDIT)
    assert pick_task.message_id == pick_dag.message_id, "each step edits the one message in place"
    # Only tasks that write a file, each with the file's name (the sleep task writes none).
    assert [label for label, _ in pick_task.buttons()] == ["fetch → fetch.json", "render → old.txt", "✖ Cancel"]
    question = await tg.tap(pick_task, "render", method=EDIT)
    assert question.message_id == pick_dag.message_id
    assert "saves its output as <code>old.txt</code>." in question.text

    refused = await tg.say("bad/name.txt")
    assert "'/'" in refused.text
    assert await _filename(library, "render") == "old.txt"
    done = await tg.say("new-name.txt")  # the question still stands after a refused name
    assert "now saves its output as <code>new-name.txt</code>" in done.text
    assert await _filename(library, "render") == "new-name.txt"
    answered = tg.tg.messages[(question.chat_id, question.message_id)]
    assert "saved as <code>new-name.txt</code>" in answered["text"]
    assert "reply_markup" not in answered, "the answered question has no Cancel button left"
    assert "Send a command" in (await tg.say("another.txt")).text, "the conversation is over"

    tg.tg.press_outdated(question, "Cancel")  # a client that still shows the button
    stale = await tg.tg.expect(method="answerCallbackQuery", contains="This question has ended already")
    assert stale.text
    assert "saved as" in tg.tg.messages[(question.chat_id, question.message_id)]["text"], "not 'nothing changed'"
    assert await _filename(library, "render") == "new-name.txt"


async def test_a_task_that_writes_no_file_has_no_filename(
    tg: BotHarness, library: DagLibrary, orch: Orchestrator
) -> None:
    refused = await tg.say("/filename report pause w.txt")
    assert "task 'pause' (sleep) writes no output file, so it has no filename to change" in refused.text
    assert "writes no output file" in (await tg.say("/filename report pause")).text
    assert await _filename(library, "pause") is None
    report = await orch.run(await library.get("report"))
    assert report.tasks["pause"].output_file is None


async def test_shortcuts_and_cancel(tg: BotHarness, library: DagLibrary) -> None:
    pick_task = await tg.say("/filename report")
    assert "pick the task" in pick_task.text
    question = await tg.say("/filename report fetch")
    assert "saves its output as <code>fetch.json</code> (the default)" in question.text
    tg.tg.press(question, "Cancel")
    edited = await tg.tg.expect(ALICE["id"], method="editMessageText")
    assert "nothing changed" in edited.text
    assert "Send a command" in (await tg.say("x.txt")).text
    assert await _filename(library, "fetch") is None


async def test_any_other_command_ends_the_wait_for_a_name(tg: BotHarness, library: DagLibrary) -> None:
    question = await tg.say("/filename report render")
    assert "tap Cancel (or send /cancel)" in question.text, "the question says how to leave"
    assert "<code>report</code>" in (await tg.say("/dags")).text
    ended = tg.tg.messages[(question.chat_id, question.message_id)]
    assert ended["text"] == "⏹ Ended by /dags: nothing changed. /filename to start again.", "visibly"
    assert "reply_markup" not in ended
    assert "No runs yet" in (await tg.say("/runs")).text
    assert "Send a command" in (await tg.say("notes for later")).text, "not taken for a name"
    assert await _filename(library, "render") == "old.txt"


async def test_a_bare_cancel_ends_the_wait_and_cancel_with_an_id_is_still_for_runs(
    tg: BotHarness, library: DagLibrary
) -> None:
    await tg.say("/filename report render")
    assert "nothing changed" in (await tg.say("/cancel")).text
    assert "Send a command" in (await tg.say("x.txt")).text
    assert "Give a run id" in (await tg.say("/cancel")).text, "outside the conversation /cancel is for runs"

    await tg.say("/filename report render")
    assert "run 7 does not exist" in (await tg.say("/cancel 7")).text, "a run id goes to /cancel as usual"
    assert "Send a command" in (await tg.say("y.txt")).text
    assert await _filename(library, "render") == "old.txt"


async def test_a_button_of_another_feature_ends_the_wait_for_a_name(tg: BotHarness, library: DagLibrary) -> None:
    listing = await tg.say("/dags")
    await tg.say("/filename report render")
    status = await tg.tap(listing, "report")
    assert "Run <b>#1</b> of <code>report</code>" in status.text
    assert "Send a command" in (await tg.say("late.txt", contains="Send a command")).text
    assert await _filename(library, "render") == "old.txt"
