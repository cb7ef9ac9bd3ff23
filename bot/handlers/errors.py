"""Errors become replies: a ``TaskFlowError`` says what went wrong, anything else is logged, never shown."""

from __future__ import annotations

import html
import logging
import re

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import ExceptionTypeFilter
from aiogram.types import BufferedInputFile, ErrorEvent

from bot import texts
from bot.chat import send_long
from bot.common import UsageError
from orchestrator.errors import ConfigError, TaskFlowError

log = logging.getLogger("taskflow.bot")

_ALERT_LIMIT = 200  # Telegram's limit for a callback answer
_TAGS = re.compile(r"<[^>]+>")


def router() -> Router:
    """Error handlers for every other router."""
    router = Router(name="errors")
    router.error.register(on_taskflow_error, ExceptionTypeFilter(TaskFlowError))
    router.error.register(on_unexpected)
    return router


def error_text(exc: TaskFlowError) -> str:
    """The reply (HTML) for an expected error."""
    if isinstance(exc, UsageError):
        return str(exc)
    if isinstance(exc, ConfigError):
        return texts.config_invalid(exc.report())
    return f"❌ {texts.esc(exc)}"


async def on_taskflow_error(event: ErrorEvent, bot: Bot) -> None:
    """Tell the user what is wrong with what they asked."""
    exc = event.exception
    assert isinstance(exc, TaskFlowError)
    try:
        await _reply(event, bot, error_text(exc), exc)
    except TelegramAPIError as sending:
        log.warning("could not report %r to the user: %s", exc, sending.message)


async def on_unexpected(event: ErrorEvent, bot: Bot) -> None:
    """A bug or an outage: log it with its traceback, tell the user only that it happened."""
    log.error("error handling update %s", event.update.update_id, exc_info=event.exception)
    try:
        await _reply(event, bot, texts.INTERNAL_ERROR, None)
    except TelegramAPIError as sending:
        log.warning("could not tell the user about an internal error: %s", sending.message)


async def _reply(event: ErrorEvent, bot: Bot, text: str, exc: TaskFlowError | None) -> None:
    update = event.update
    if update.callback_query is not None:
        plain = html.unescape(_TAGS.sub("", text))
        await update.callback_query.answer(texts.cut(plain, _ALERT_LIMIT), show_alert=True)
        return
    message = update.message
    if message is None:
        return
    if isinstance(exc, ConfigError) and len(text) > texts.MESSAGE_LIMIT:
        # A long validation report reads better as a file than as several messages.
        report = BufferedInputFile(exc.report().encode("utf-8"), filename="validation-report.txt")
        caption = texts.config_invalid_caption(exc.source, len(exc.problems))
        await bot.send_document(message.chat.id, report, caption=caption)
        return
    await send_long(bot, message.chat.id, text)
