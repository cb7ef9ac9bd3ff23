"""The bot's start-up and its door: /start registers anyone, only allow-listed users get further."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator

import pytest

from bot import TaskFlowBot
from orchestrator.engine import Orchestrator
from orchestrator.library import DagLibrary
from orchestrator.scheduler import Scheduler
from orchestrator.settings import Settings
from tests.fake_telegram import ALICE, BOB, EVE, TOKEN, BotHarness, FakeTelegram

NOOP_DAG = b'{"dag_name": "hello", "tasks": [{"id": "a", "operation": "noop"}]}'


@pytest.fixture
async def tg(settings: Settings, orch: Orchestrator, library: DagLibrary) -> AsyncIterator[BotHarness]:
    """A running bot."""
    async with BotHarness(settings, orch, library) as harness:
        yield harness


async def test_start_up_deletes_the_webhook_and_registers_the_commands(tg: BotHarness) -> None:
    assert tg.tg.called("deleteWebhook"), "a webhook would stop long polling from getting updates"
    commands = {c["command"] for c in tg.tg.commands}
    assert {"dags", "run", "status", "runs", "cancel", "archive", "schedule", "schedules", "filename"} <= commands
    await tg.say("/help")
    assert all(int(call["timeout"]) > 0 for call in tg.tg.called("getUpdates")), "long polling, not busy polling"


async def test_start_registers_an_allowed_user_and_shows_help(tg: BotHarness, orch: Orchestrator) -> None:
    reply = await tg.say("/start")
    assert "Hi Alice" in reply.text
    assert "/run" in reply.text
    user = await orch.store.get_user(ALICE["id"])
    assert user is not None
    assert (user.username, user.chat_id) == ("alice", ALICE["id"])


async def test_a_stranger_is_registered_but_has_no_access(tg: BotHarness, orch: Orchestrator) -> None:
    reply = await tg.say("/start", EVE)
    assert "no access" in reply.text
    assert str(EVE["id"]) in reply.text, "the stranger needs their id to ask an admin"
    assert await orch.store.find_user("@Eve") is not None, "telegram_send may still address them"

    await tg.library.add_json(NOOP_DAG, source="test")
    reply = await tg.say("/run hello", EVE)
    assert "no access" in reply.text
    assert str(EVE["id"]) in reply.text
    assert await orch.store.list_runs() == [], "nothing runs for someone without access"


async def test_a_user_allowed_by_username_gets_in_whatever_the_case(tg: BotHarness) -> None:
    reply = await tg.say("/help", BOB)
    assert "/schedule" in reply.text
    assert "no access" not in reply.text


async def test_usernames_are_refreshed_on_every_message(tg: BotHarness, orch: Orchestrator) -> None:
    await tg.say("/start")
    renamed = {**ALICE, "username": "Alice_New"}
    await tg.say("/help", renamed)
    assert await orch.store.find_user("alice") is None
    user = await orch.store.find_user("@alice_new")
    assert user is not None
    assert user.user_id == ALICE["id"]


async def test_a_strangers_button_press_is_refused(tg: BotHarness) -> None:
    await tg.library.add_json(NOOP_DAG, source="test")
    listing = await tg.say("/dags")
    tg.tg.press(listing, "hello", EVE)
    answer = await tg.tg.expect(method="answerCallbackQuery")
    assert "no access" in answer.text
    assert answer.params.get("show_alert") == "true"
    assert await tg.orch.store.list_runs() == []


async def test_unknown_commands_and_plain_text_get_a_hint(tg: BotHarness) -> None:
    assert "don't know that command" in (await tg.say("/frobnicate")).text
    assert "/help" in (await tg.say("hello there")).text


async def test_no_dags_says_where_they_come_from(tg: BotHarness) -> None:
    reply = await tg.say("/dags")
    assert "No DAGs yet" in reply.text
    assert f"put it in <code>{tg.settings.dags_dir}</code> (TASKFLOW_DAGS_DIR)" in reply.text


class Heard(logging.Handler):
    """Sets ``event`` when the bot logs a message containing ``text``."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()


@contextlib.contextmanager
def listening(text: str) -> Iterator[asyncio.Event]:
    """An event set once the bot logs ``text``."""
    heard = Heard(text)
    logger = logging.getLogger("taskflow.bot")
    logger.addHandler(heard)
    try:
        yield heard.event
    finally:
        logger.removeHandler(heard)


async def test_a_rejected_token_turns_the_bot_off_and_the_rest_keeps_going(
    settings: Settings, orch: Orchestrator, library: DagLibrary, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeTelegram()
    await fake.start()
    try:
        wrong = settings.model_copy(update={"telegram_bot_token": "123:WRONG-token", "telegram_api_base": fake.url})
        bot = TaskFlowBot(wrong, orch, library, Scheduler(wrong, orch.store, orch, library), orch.store)
        await bot.start()
        assert bot.polling_task is not None
        await asyncio.wait_for(bot.polling_task, 10)  # it gives up instead of retrying for ever
        assert "refused TELEGRAM_BOT_TOKEN; the bot is off" in caplog.text
        assert not bot.ready.is_set()
        await bot.stop()
    finally:
        await fake.stop()


async def test_an_unreachable_api_is_retried_and_stop_still_works(
    settings: Settings, orch: Orchestrator, library: DagLibrary
) -> None:
    nowhere = settings.model_copy(update={"telegram_bot_token": TOKEN, "telegram_api_base": "http://127.0.0.1:9"})
    bot = TaskFlowBot(nowhere, orch, library, Scheduler(nowhere, orch.store, orch, library), orch.store)
    with listening("retrying in") as retrying:
        await bot.start()
        await asyncio.wait_for(retrying.wait(), 10)
    assert bot.task_names() == ["telegram-notifier", "telegram-polling"], "still trying, in the background"
    await bot.stop()
    assert bot.task_names() == []


def test_a_malformed_token_is_a_clear_error(settings: Settings, orch: Orchestrator, library: DagLibrary) -> None:
    bad = settings.model_copy(update={"telegram_bot_token": "not a token"})
    with pytest.raises(ValueError, match="does not look like a bot token"):
        TaskFlowBot(bad, orch, library, Scheduler(bad, orch.store, orch, library), orch.store)
