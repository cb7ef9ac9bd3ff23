"""``telegram_send`` through the real bot: by @username or chat id, with a file, and Telegram's refusals."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.engine import Orchestrator
from orchestrator.errors import OperationError, PermanentOperationError
from orchestrator.library import DagLibrary
from orchestrator.settings import Settings
from orchestrator.states import RunState, TaskState
from orchestrator.validation import parse_config
from tests.fake_telegram import ALICE, BotHarness


@pytest.fixture
async def tg(settings: Settings, orch: Orchestrator, library: DagLibrary) -> AsyncIterator[BotHarness]:
    """A running bot; Alice has started it."""
    async with BotHarness(settings, orch, library) as harness:
        await harness.say("/start")
        yield harness


def _dag(send: dict[str, Any], **extra: Any) -> Any:
    return parse_config(
        json.dumps(
            {
                "dag_name": "notify",
                "max_retries": 2,
                **extra,
                "tasks": [
                    {
                        "id": "write",
                        "operation": "write_file",
                        "independent_params": {"content": "Stars: 5 <b>&</b>", "filename": "msg.txt"},
                    },
                    {
                        "id": "send",
                        "operation": "telegram_send",
                        "independent_params": send,
                        "dependent_params": {"text": "write"},
                        "dependencies": ["write"],
                    },
                ],
            }
        )
    )


async def test_text_and_a_file_reach_a_user_by_username(tg: BotHarness, orch: Orchestrator) -> None:
    report = await orch.run(_dag({"username": "@ALICE", "file": "msg.txt"}))
    assert report.state == RunState.SUCCESS
    [sent] = tg.tg.sent_to(ALICE["id"], "sendDocument")
    assert sent.text == "Stars: 5 <b>&</b>", "the task's text arrives exactly as written"
    assert "parse_mode" not in sent.params, "plain text: nothing in it is taken for markup"
    assert (sent.filename, sent.document) == ("msg.txt", b"Stars: 5 <b>&</b>")
    output = json.loads((orch.settings.runs_dir / "dag_1" / "send.json").read_text(encoding="utf-8"))
    assert output["chat_id"] == ALICE["id"]


async def test_an_unknown_username_fails_the_task_at_once(tg: BotHarness, orch: Orchestrator) -> None:
    report = await orch.run(_dag({"username": "@ghost"}))
    task = report.tasks["send"]
    assert (task.state, task.error) == (TaskState.FAILED, "user @ghost has not started the bot")
    assert task.attempts == 1, "no retry can make the user start the bot"


async def test_a_blocked_bot_is_a_clear_permanent_failure(tg: BotHarness, orch: Orchestrator) -> None:
    tg.tg.block(ALICE["id"])
    report = await orch.run(_dag({"username": "alice"}))
    task = report.tasks["send"]
    assert task.state == TaskState.FAILED
    assert task.error is not None
    assert "@alice" in task.error
    assert "blocked the bot" in task.error
    assert task.attempts == 1


async def test_an_unknown_chat_id_is_a_clear_permanent_failure(tg: BotHarness, orch: Orchestrator) -> None:
    tg.tg.lose_chat(4242)
    report = await orch.run(_dag({"chat_id": 4242}))
    error = report.tasks["send"].error
    assert error is not None
    assert "chat 4242" in error
    assert "no such chat" in error


async def test_a_rate_limit_is_waited_out(tg: BotHarness) -> None:
    waits = tg.record_waits()
    tg.tg.rate_limit(ALICE["id"], retry_after=7, times=2)
    result = await tg.bot.sender.send(username="alice", chat_id=None, text="hi", file=None)
    assert waits == [7, 7]
    assert [s.text for s in tg.tg.sent_to(ALICE["id"])][-1] == "hi"
    assert len(result["message_ids"]) == 1


async def test_a_rate_limit_that_lasts_is_left_to_the_task_retries(tg: BotHarness) -> None:
    waits = tg.record_waits()
    tg.tg.rate_limit(ALICE["id"], retry_after=7, times=10)
    with pytest.raises(OperationError, match="rate limit") as info:
        await tg.bot.sender.send(username=None, chat_id=ALICE["id"], text="hi", file=None)
    assert not isinstance(info.value, PermanentOperationError), "worth a retry later"
    assert waits == [7, 7, 7, 7], "bounded: at most 30 s of waiting, and by the session only"

    waits.clear()
    tg.tg.rate_limits.clear()
    tg.tg.rate_limit(ALICE["id"], retry_after=20, times=2)
    with pytest.raises(OperationError, match="retry after 20s"):
        await tg.bot.sender.send(username=None, chat_id=ALICE["id"], text="hi", file=None)
    assert waits == [20], "20 s more would pass the bound; the sender does not wait again on its own"

    waits.clear()
    tg.tg.rate_limits.clear()
    tg.tg.rate_limit(ALICE["id"], retry_after=3600)
    with pytest.raises(OperationError, match="retry after 3600s"):
        await tg.bot.sender.send(username=None, chat_id=ALICE["id"], text="hi", file=None)
    assert waits == [], "a wait longer than the bound is left to the task's retries at once"


async def test_a_rate_limited_task_is_retried_and_then_sends(tg: BotHarness, orch: Orchestrator) -> None:
    tg.tg.rate_limit(ALICE["id"], retry_after=3600)
    report = await orch.run(_dag({"username": "alice"}, retry_delay=0))
    task = report.tasks["send"]
    assert (task.state, task.attempts) == (TaskState.SUCCESS, 2)
    assert [s.text for s in tg.tg.sent_to(ALICE["id"])][-1] == "Stars: 5 <b>&</b>"


async def test_a_long_text_is_split_and_a_long_caption_goes_separately(tg: BotHarness, tmp_path: Path) -> None:
    text = "\n".join(f"line {n:03d} " + "x" * 80 for n in range(200))  # ~18 000 characters
    result = await tg.bot.sender.send(username="alice", chat_id=None, text=text, file=None)
    pieces = [s.text for s in tg.tg.sent_to(ALICE["id"]) if s.text.startswith("line")]
    assert len(pieces) == len(result["message_ids"]) >= 5
    assert all(len(p) <= 4096 for p in pieces)
    assert "\n".join(pieces) == text

    file = tmp_path / "data.csv"
    file.write_text("a,b\n1,2\n", encoding="utf-8")
    await tg.bot.sender.send(username=None, chat_id=ALICE["id"], text="y" * 2000, file=file)
    [document] = tg.tg.sent_to(ALICE["id"], "sendDocument")
    assert document.text == ""
    assert document.document == b"a,b\n1,2\n"
    assert tg.tg.sent_to(ALICE["id"])[-1].text == "y" * 2000


async def test_nothing_to_send_and_a_stopped_bot(tg: BotHarness) -> None:
    with pytest.raises(PermanentOperationError, match="nothing to send"):
        await tg.bot.sender.send(username="alice", chat_id=None, text="", file=None)
    tg.bot.sender.close()
    tg.bot.sender.shutdown_grace = 0
    with pytest.raises(OperationError, match="has stopped"):
        await tg.bot.sender.send(username="alice", chat_id=None, text="hi", file=None)
