"""Notifications that outlive a restart: the admins' digest of resumed runs, and final messages of resumed runs."""

from __future__ import annotations

import itertools
import json

import pytest

from orchestrator.engine import Orchestrator
from orchestrator.library import DagLibrary
from orchestrator.settings import Settings
from orchestrator.validation import parse_config
from tests.engine_harness import running
from tests.fake_telegram import ALICE, BOB, EVE, BotHarness

SLOW = {"dag_name": "slow", "tasks": [{"id": "nap", "operation": "sleep", "independent_params": {"seconds": 60}}]}


@pytest.mark.parametrize("resume_before_the_bot", [True, False])
async def test_after_a_restart_admins_get_one_digest_and_the_chat_its_final_message(
    settings: Settings, resume_before_the_bot: bool
) -> None:
    async with running(settings) as before:
        run_id = await before.submit(parse_config(json.dumps(SLOW)), trigger="telegram", notify_chat=ALICE["id"])
        # Bob is allowed by @username: he can only be reached if he has talked to the bot.
        await before.store.upsert_user(BOB["id"], BOB["username"], BOB["id"], "Bob")
        await before.store.upsert_user(EVE["id"], EVE["username"], EVE["id"], "Eve")
    async with (
        running(settings, resume=resume_before_the_bot) as after,
        BotHarness(settings, after, DagLibrary(settings, after.store)) as tg,
    ):
        if not resume_before_the_bot:  # main.py's order: the bot first, so no message is missed
            after.resumed = await after.resume_unfinished()
            await tg.bot.notify_resumed(after.resumed)
        assert after.resumed == [run_id]
        assert after.resources.sender is tg.bot.sender, "resumed telegram_send tasks can send"
        for admin in (ALICE, BOB):
            digest = await tg.tg.expect(admin["id"], contains="resumed 1 unfinished run(s)")
            assert f"<b>#{run_id}</b> <code>slow</code>" in digest.text
        assert tg.tg.sent_to(EVE["id"]) == [], "only allow-listed users are admins"

        await after.cancel(run_id)
        final = await tg.tg.expect(ALICE["id"], contains=f"Run <b>#{run_id}</b>")
        assert "was cancelled" in final.text
        assert [label for label, _ in final.buttons()] == ["📦 Archive", "🔁 Re-run from failure"]
        await tg.bot.notify_resumed(after.resumed)
        assert "telegram-resume-digest" not in tg.bot.task_names(), "a resumed run is reported once"
        assert len(tg.tg.sent_to(ALICE["id"])) == 2, "one digest, one final message"


async def test_no_digest_without_resumed_runs(settings: Settings, orch: Orchestrator, library: DagLibrary) -> None:
    async with BotHarness(settings, orch, library) as tg:
        await tg.say("/help")
        assert [s for s in tg.tg.outbox if "resumed" in s.text] == []


async def test_stop_leaves_no_background_task(settings: Settings, orch: Orchestrator, library: DagLibrary) -> None:
    await library.add_json(json.dumps(SLOW), source="test")
    async with BotHarness(settings, orch, library) as tg:
        await tg.say("/run slow")
        names = tg.bot.task_names()
        assert "telegram-polling" in names
        assert "telegram-notifier" in names
        bot = tg.bot
    assert bot.task_names() == []
    assert orch.resources.sender is None, "a stopped bot is no longer the message sender"
    await orch.cancel(1)


async def test_a_resumed_run_goes_on_editing_its_status_message(settings: Settings) -> None:
    nap = {"dag_name": "nap", "tasks": [{"id": "nap", "operation": "sleep", "independent_params": {"seconds": 2}},
                                        {"id": "after", "operation": "noop", "dependencies": ["nap"]}]}  # fmt: skip
    async with running(settings) as before:
        library = DagLibrary(settings, before.store)
        await library.add_json(json.dumps(nap), source="test")
        async with BotHarness(settings, before, library) as tg:
            status = await tg.say("/run nap")  # the service stops while the run goes on
            shown = tg.tg.messages[(status.chat_id, status.message_id)]
    assert [label for label, _ in status.buttons()] == ["✖ Cancel run"]
    async with (
        running(settings, resume=False) as after,
        BotHarness(settings, after, DagLibrary(settings, after.store)) as tg,
    ):
        tg.tg.messages[(status.chat_id, status.message_id)] = shown  # Telegram still has it ...
        tg.tg._message_ids = itertools.count(status.message_id + 1)  # ... and numbers new messages after it
        after.resumed = await after.resume_unfinished()
        await tg.bot.notify_resumed(after.resumed)
        final = await tg.tg.expect(ALICE["id"], contains="Run <b>#1</b> of <code>nap</code> succeeded")
        assert "Status page" in final.text
        now = tg.tg.messages[(status.chat_id, status.message_id)]
        assert "2/2 task(s) done" in now["text"], "the resumed run's status message shows its end"
        assert "reply_markup" not in now, "and no Cancel button any more"
