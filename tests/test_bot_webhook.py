"""Webhook mode: the fake Bot API posts updates to the service's own web server, through aiogram's handler."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest
from pydantic import ValidationError

from bot import TaskFlowBot
from orchestrator.engine import Orchestrator
from orchestrator.library import DagLibrary
from orchestrator.scheduler import Scheduler
from orchestrator.settings import Settings
from taskflow.cli import _watch_bot
from tests.fake_telegram import ALICE, ALLOWED, WAIT_S, FakeTelegram
from web import create_app, start_site

SECRET = "s3cret_Token-1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_updates_arrive_by_webhook_and_a_wrong_secret_is_refused(
    settings: Settings, orch: Orchestrator, library: DagLibrary
) -> None:
    tg = FakeTelegram()
    await tg.start()
    port = _free_port()
    hooked = Settings(
        data_dir=settings.data_dir,
        port=port,
        workers=2,
        api_token="api-token",  # the webhook route does not ask for it
        telegram_bot_token=tg.token,
        telegram_api_base=tg.url,
        telegram_allowed_users=ALLOWED,
        telegram_webhook_url=f"http://127.0.0.1:{port}/telegram/webhook",
        telegram_webhook_secret=SECRET,
    )
    bot = TaskFlowBot(hooked, orch, library, Scheduler(hooked, orch.store, orch, library), orch.store)
    app = create_app(hooked, orch, library, orch.store)
    _watch_bot(app, bot)
    runner = await start_site(app, hooked)
    try:
        await bot.start()
        async with asyncio.timeout(WAIT_S):
            await bot.ready.wait()
        assert tg.webhook is not None
        assert tg.webhook["url"] == hooked.telegram_webhook_url
        assert tg.webhook["secret_token"] == SECRET

        refused = await tg.post_webhook({"message": tg.user_message("/start", ALICE)}, secret="wrong")
        assert refused == 401
        assert await tg.post_webhook({"message": tg.user_message("/start", ALICE)}) == 200
        assert "Hi Alice" in (await tg.expect(ALICE["id"])).text
        assert len(tg.sent_to(ALICE["id"])) == 1, "the refused update was never handled"
        # The same-origin rule for writes is the browsers' business: the secret guards this route.
        cross = await tg.post_webhook({"message": tg.user_message("/help", ALICE)}, Origin="https://elsewhere.example")
        assert cross == 200
        await tg.expect(ALICE["id"])

        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz") as resp:
            assert (await resp.json())["checks"]["telegram"] == {"ok": True}
        assert not tg.called("getUpdates"), "no polling in webhook mode"
    finally:
        await bot.stop()
        await runner.cleanup()
        await tg.stop()
    assert tg.webhook is None, "the webhook is deleted at stop"


def test_a_webhook_needs_a_secret_and_a_path_under_telegram(settings: Settings) -> None:
    url = "https://bot.example.org/telegram/webhook"
    with pytest.raises(ValidationError, match="needs TELEGRAM_WEBHOOK_SECRET"):
        Settings(telegram_webhook_url=url)
    with pytest.raises(ValidationError, match="must start with /telegram/"):
        Settings(telegram_webhook_url="https://bot.example.org/hook", telegram_webhook_secret=SECRET)
    with pytest.raises(ValidationError, match="1-256 characters"):
        Settings(telegram_webhook_url=url, telegram_webhook_secret="no spaces allowed")
    assert Settings(telegram_webhook_url=url, telegram_webhook_secret=SECRET).webhook_path == "/telegram/webhook"
    assert Settings().webhook_path is None
