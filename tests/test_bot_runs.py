"""Running DAGs from the chat: /dags, /run, the live status message, the final message and its buttons."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import AsyncIterator

import pytest

from orchestrator.engine import Orchestrator
from orchestrator.library import DagLibrary
from orchestrator.settings import Settings
from orchestrator.states import RunState
from tests.fake_telegram import ALICE, BotHarness, Sent

HELLO = {
    "dag_name": "hello",
    "tasks": [
        {"id": "first", "operation": "noop", "independent_params": {"value": 1}},
        {"id": "second", "operation": "noop", "dependencies": ["first"]},
        {"id": "third", "operation": "noop", "dependencies": ["second"]},
    ],
}
BROKEN = {
    "dag_name": "broken",
    "tasks": [
        {"id": "load", "operation": "read_file", "independent_params": {"path": "in<put>&.txt"}},
        {"id": "after", "operation": "noop", "dependencies": ["load"]},
    ],
}
SLOW = {"dag_name": "slow", "tasks": [{"id": "nap", "operation": "sleep", "independent_params": {"seconds": 60}}]}


@pytest.fixture
async def tg(settings: Settings, orch: Orchestrator, library: DagLibrary) -> AsyncIterator[BotHarness]:
    """A running bot that knows three DAGs."""
    for config in (HELLO, BROKEN, SLOW):
        await library.add_json(json.dumps(config), source="test")
    async with BotHarness(settings, orch, library) as harness:
        yield harness


async def _final(tg: BotHarness, run_id: int) -> Sent:
    return await tg.tg.expect(ALICE["id"], contains=f"Run <b>#{run_id}</b> of", where=lambda s: "Status page" in s.text)


async def test_dags_lists_them_with_buttons_and_a_tap_runs_one(tg: BotHarness, orch: Orchestrator) -> None:
    listing = await tg.say("/dags")
    assert "<code>hello</code> — 3 task(s)" in listing.text
    assert [label for label, _ in listing.buttons()] == ["broken", "hello", "slow"]

    status = await tg.tap(listing, "hello")
    assert "Run <b>#1</b> of <code>hello</code>" in status.text
    final = await _final(tg, 1)
    assert "succeeded" in final.text
    assert 'href="http://taskflow.test/runs/1"' in final.text
    assert [label for label, _ in final.buttons()] == ["📦 Archive"]

    run = (await orch.report(1)).run
    assert (run.state, run.trigger, run.owner, run.notify_chat) == (RunState.SUCCESS, "telegram", "@alice", ALICE["id"])
    shown = tg.tg.messages[(status.chat_id, status.message_id)]
    assert shown["text"].count("\n✅ ") == 3, "the status message ends showing every task done"
    assert shown["text"].endswith("\n<i>✅ done</i>"), "and a key to its icons"
    assert "reply_markup" not in shown, "no Cancel button on an ended run"


async def test_the_status_message_is_edited_in_place_as_tasks_finish(tg: BotHarness) -> None:
    status = await tg.say("/run hello")
    await _final(tg, 1)
    edits = [s for s in tg.tg.sent_to(ALICE["id"], "editMessageText") if s.message_id == status.message_id]
    assert edits, "progress is shown by editing the status message"
    assert "3/3 task(s) done" in edits[-1].text
    assert len(tg.tg.sent_to(ALICE["id"])) == 2, "one status message and one final message, no message per task"


async def test_edits_are_throttled(settings: Settings, orch: Orchestrator, library: DagLibrary) -> None:
    await library.add_json(json.dumps(HELLO), source="test")
    async with BotHarness(settings, orch, library, edit_interval=3600) as tg:
        status = await tg.say("/run hello")
        await _final(tg, 1)
        edits = [s for s in tg.tg.sent_to(ALICE["id"], "editMessageText") if s.message_id == status.message_id]
        assert len(edits) == 1, "within the interval only the final edit is made"
        assert "3/3 task(s) done" in edits[0].text


async def test_a_failed_run_says_what_failed_and_re_runs_from_the_failure(tg: BotHarness, orch: Orchestrator) -> None:
    await tg.say("/run broken")
    final = await _final(tg, 1)
    assert "failed" in final.text
    assert "Failed task: <code>load</code>" in final.text
    assert "in&lt;put&gt;&amp;.txt" in final.text, "the error is shown, escaped for HTML"
    assert [label for label, _ in final.buttons()] == ["📦 Archive", "🔁 Re-run from failure"]
    detail = await tg.say("/status 1")
    assert detail.text.endswith("\n<i>❌ failed · ⛔ upstream failed</i>"), "each icon shown is explained"

    (orch.settings.runs_dir / "dag_1" / "in<put>&.txt").write_text("fixed", encoding="utf-8")
    status = await tg.tap(final, "Re-run")
    assert "Run <b>#1</b>" in status.text
    answer = await tg.tg.expect(method="answerCallbackQuery", contains="Re-running run #1")
    assert answer.text
    again = await _final(tg, 1)
    assert "succeeded" in again.text
    report = await orch.report(1)
    assert report.state == RunState.SUCCESS
    assert report.tasks["load"].attempts == 2


async def test_archive_by_command_and_by_button(tg: BotHarness) -> None:
    await tg.say("/run hello")
    final = await _final(tg, 1)
    document = await tg.say("/archive 1", method="sendDocument")
    assert document.filename == "dag_1.zip"
    assert document.document is not None
    with zipfile.ZipFile(io.BytesIO(document.document)) as archive:
        names = archive.namelist()
        assert any(name.endswith("run.json") for name in names)
    pressed = await tg.tap(final, "Archive", method="sendDocument")
    assert pressed.document == document.document


async def test_archive_of_a_running_run_says_there_is_none_yet(tg: BotHarness, orch: Orchestrator) -> None:
    await tg.say("/run slow")
    reply = await tg.say("/archive 1")
    assert "no archive yet" in reply.text
    await orch.cancel(1)
    await _final(tg, 1)


async def test_cancel_by_button_and_by_command(tg: BotHarness, orch: Orchestrator) -> None:
    status = await tg.say("/run slow")
    tg.tg.press(status, "Cancel run")
    final = await _final(tg, 1)
    assert "was cancelled" in final.text
    assert (await orch.report(1)).state == RunState.CANCELLED

    await tg.say("/run slow")
    assert "Cancelling run <b>#2</b>" in (await tg.say("/cancel 2")).text
    assert "was cancelled" in (await _final(tg, 2)).text
    for run_id in (1, 2):
        log = (orch.settings.runs_dir / f"dag_{run_id}" / "run.log").read_text(encoding="utf-8")
        assert "run cancelled by bot, @alice" in log

    reply = await tg.say("/cancel 2")
    assert "has already ended" in reply.text
    assert "Traceback" not in reply.text


async def test_status_runs_and_their_mistakes(tg: BotHarness) -> None:
    await tg.say("/run hello")
    await _final(tg, 1)
    detail = await tg.say("/status 1")
    assert "Run <b>#1</b> of <code>hello</code> — success" in detail.text
    assert "✅ first" in detail.text
    assert "✅ third" in detail.text
    assert "Started by telegram (@alice)" in detail.text
    assert detail.text.endswith("\n<i>✅ done</i>")
    assert "<b>#1</b> <code>hello</code> — success" in (await tg.say("/status")).text
    assert "<b>#1</b> <code>hello</code> — success" in (await tg.say("/runs")).text
    assert "run 99 does not exist" in (await tg.say("/status 99")).text
    assert "Give a run id" in (await tg.say("/cancel soon")).text


async def test_running_an_unknown_dag_is_an_answer_not_a_crash(tg: BotHarness, orch: Orchestrator) -> None:
    assert "DAG 'nope' does not exist" in (await tg.say("/run nope")).text
    picker = await tg.say("/run")
    assert "Which DAG" in picker.text
    assert len(picker.buttons()) == 3
    assert await orch.store.list_runs() == []


async def test_a_long_answer_is_split_into_valid_messages(tg: BotHarness, library: DagLibrary) -> None:
    tasks = [{"id": f"a_rather_long_task_name_{n:04d}", "operation": "noop"} for n in range(400)]
    await library.add_json(json.dumps({"dag_name": "wide", "tasks": tasks}), source="test")
    await tg.say("/run wide")
    await _final(tg, 1)
    tg.tg.send_text("/status 1")
    pieces = [await tg.tg.expect(ALICE["id"]) for _ in range(3)]
    assert all(len(p.text) <= 4096 for p in pieces)
    shown = "\n".join(p.text for p in pieces)
    while "Status page" not in shown:  # as many pieces as it takes
        shown += "\n" + (await tg.tg.expect(ALICE["id"])).text
    assert all(f"a_rather_long_task_name_{n:04d}" in shown for n in range(400))


async def test_an_unexpected_error_is_logged_not_shown(
    tg: BotHarness, library: DagLibrary, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken() -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(library, "list", broken)
    reply = await tg.say("/dags")
    assert "Something went wrong" in reply.text
    assert "secret" not in reply.text
    assert "Traceback" not in reply.text
    assert "secret internals" in caplog.text


@pytest.mark.parametrize(
    ("code", "description"),
    [(500, "Internal Server Error"), (403, "Forbidden: bot was blocked by the user"), (0, "network")],
)
async def test_a_failed_last_edit_is_logged_and_the_final_message_still_sent(
    settings: Settings,
    orch: Orchestrator,
    library: DagLibrary,
    caplog: pytest.LogCaptureFixture,
    code: int,
    description: str,
) -> None:
    await library.add_json(json.dumps(SLOW), source="test")
    async with BotHarness(settings, orch, library, edit_interval=3600) as tg:  # only the last edit is made
        await tg.say("/run slow")
        tg.tg.fail_next("editMessageText", code, description)
        await orch.cancel(1)
        final = await _final(tg, 1)
        assert "was cancelled" in final.text
        assert "could not edit the status message of run 1" in caplog.text
        assert tg.tg.called("editMessageText"), "the edit was tried"


async def test_a_429_on_the_last_edit_is_waited_out_and_the_edit_made(
    settings: Settings, orch: Orchestrator, library: DagLibrary
) -> None:
    await library.add_json(json.dumps(SLOW), source="test")
    async with BotHarness(settings, orch, library, edit_interval=3600) as tg:
        waits = tg.record_waits()
        status = await tg.say("/run slow")
        tg.tg.fail_next("editMessageText", 429, "Too Many Requests: retry after 2", retry_after=2)
        await orch.cancel(1)
        await _final(tg, 1)
        assert waits == [2]
        shown = tg.tg.messages[(status.chat_id, status.message_id)]
        assert "— cancelled" in shown["text"], "the status message does not keep saying running"
        assert "reply_markup" not in shown


async def test_a_429_on_a_reply_is_waited_out_not_reported_as_a_failure(tg: BotHarness, orch: Orchestrator) -> None:
    waits = tg.record_waits()
    tg.tg.rate_limit(ALICE["id"], retry_after=3)
    status = await tg.say("/run hello")
    assert "Run <b>#1</b> of <code>hello</code>" in status.text, "the status message, not 'Something went wrong'"
    assert waits == [3]
    assert "succeeded" in (await _final(tg, 1)).text
    assert len(await orch.store.list_runs()) == 1
    assert [s.text for s in tg.tg.sent_to(ALICE["id"]) if "went wrong" in s.text] == []


async def test_a_status_message_that_cannot_be_sent_does_not_hold_up_the_final_message(
    tg: BotHarness, orch: Orchestrator
) -> None:
    tg.tg.rate_limit(ALICE["id"], retry_after=3600)  # more than the bot waits: the status message is lost
    tg.tg.send_text("/run hello")
    final = await _final(tg, 1)  # well before the 30 s the final message would wait for the status message
    assert "succeeded" in final.text


async def test_ids_must_be_plain_numbers_and_a_huge_one_does_not_exist(tg: BotHarness) -> None:
    assert "Give a run id" in (await tg.say("/status ²")).text
    assert "Give a run id" in (await tg.say("/cancel ٣")).text, "not read as run 3"
    assert "run 99999999999999999999 does not exist" in (await tg.say("/status 99999999999999999999")).text
    assert f"run {2**63 - 1} does not exist" in (await tg.say(f"/archive #{2**63 - 1}")).text
    assert "run 9223372036854775808 does not exist" in (await tg.say("/cancel 009223372036854775808")).text
    assert "schedule 99999999999999999999 does not exist" in (await tg.say("/pause 99999999999999999999")).text
    assert "Give a schedule id" in (await tg.say("/unschedule ²")).text
