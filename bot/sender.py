"""The ``MessageSender`` behind the ``telegram_send`` operation.

A ``@username`` is looked up among the users who have started the bot (Telegram gives bots no way
to find a user by name). The text goes as plain text, exactly as the task produced it, in pieces of
at most 4096 characters; a file goes as a document, with the text as its caption when it fits.
Telegram's refusals become clear task errors: a blocked bot or an unknown chat cannot be fixed by
retrying (``PermanentOperationError``). Rate limits are waited out by the bot's session
(``bot.ratelimit``), for this as for every other call; one that reaches the sender asked for a
longer wait than that allows, so it is left to the task's own retries (``OperationError``), rather
than waited out a second time here.

Delivery is at least once: a task attempt that fails after some pieces of a long text went out
sends them again when the task is retried (and Telegram has no idempotency key, so a request that
timed out after it arrived is sent twice as well).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramRetryAfter,
)
from aiogram.types import FSInputFile, Message

from bot.chat import split_text
from bot.texts import CAPTION_LIMIT, MESSAGE_LIMIT
from orchestrator.errors import OperationError, PermanentOperationError
from orchestrator.store import Store

log = logging.getLogger("taskflow.bot")

T = TypeVar("T")

MAX_FILE_BYTES = 50 * 1024 * 1024  # the Bot API's upload limit
SHUTDOWN_GRACE_S = 30.0


class TelegramSender:
    """Sends ``telegram_send``'s messages through the service's bot."""

    def __init__(self, bot: Bot, store: Store, *, shutdown_grace: float = SHUTDOWN_GRACE_S) -> None:
        self.bot = bot
        self.store = store
        self.shutdown_grace = shutdown_grace
        self.closed = False

    def close(self) -> None:
        """Take no more sends (the bot is stopping; its HTTP session is about to close)."""
        self.closed = True

    async def send(self, *, username: str | None, chat_id: int | None, text: str, file: Path | None) -> dict[str, Any]:
        """Send ``text`` (and ``file``) to a user who started the bot, or to a chat id."""
        if self.closed:
            # The service is shutting down: the engine is about to cancel this task, which then runs
            # again after the restart. Failing it now would record a failure that is not one.
            await asyncio.sleep(self.shutdown_grace)
            raise OperationError("the Telegram bot has stopped")
        target, who = await self._resolve(username, chat_id)
        if not text and file is None:
            raise PermanentOperationError("nothing to send: the text is empty and there is no file")
        if file is not None:
            _check_size(file)
        caption = text if file is not None and len(text) <= CAPTION_LIMIT else ""
        message_ids = []
        if text and not caption:
            for piece in split_text(text, MESSAGE_LIMIT, html=False):
                message = await self._call(who, lambda p=piece: self.bot.send_message(target, p, parse_mode=None))
                message_ids.append(message.message_id)
        if file is not None:
            message = await self._call(who, lambda: self._send_file(target, file, caption))
            message_ids.append(message.message_id)
        return {"chat_id": target, "message_ids": message_ids, "file": file.name if file else None}

    async def _resolve(self, username: str | None, chat_id: int | None) -> tuple[int, str]:
        if chat_id is not None:
            return chat_id, f"chat {chat_id}"
        if not username:
            raise PermanentOperationError("give a username or a chat id")
        name = username.lstrip("@")
        user = await self.store.find_user(name)
        if user is None:
            raise PermanentOperationError(f"user @{name} has not started the bot")
        return user.chat_id, f"@{name}"

    async def _send_file(self, chat_id: int, file: Path, caption: str) -> Message:
        document = FSInputFile(file, filename=file.name)
        return await self.bot.send_document(chat_id, document, caption=caption or None, parse_mode=None)

    async def _call(self, who: str, request: Callable[[], Awaitable[T]]) -> T:
        try:
            return await request()
        except TelegramRetryAfter as exc:  # the session has waited what it waits: the task's retries take over
            raise OperationError(f"Telegram rate limit for {who}: retry after {exc.retry_after}s") from None
        except TelegramForbiddenError as exc:
            raise PermanentOperationError(f"cannot send to {who}: {_reason(exc)}") from None
        except TelegramBadRequest as exc:
            raise PermanentOperationError(f"Telegram refused the message to {who}: {_reason(exc)}") from None
        except TelegramAPIError as exc:  # network trouble, server errors: worth the task's retries
            raise OperationError(f"could not reach Telegram to send to {who}: {exc.message}") from None


def _reason(exc: TelegramAPIError) -> str:
    message = exc.message
    if "blocked" in message:
        return f"the user has blocked the bot ({message})"
    if "chat not found" in message:
        return f"no such chat; the user must start the bot first ({message})"
    return message


def _check_size(file: Path) -> None:
    size = file.stat().st_size
    if size > MAX_FILE_BYTES:
        raise PermanentOperationError(f"{file.name} is {size // (1024 * 1024)} MiB; bots can send at most 50 MiB")
