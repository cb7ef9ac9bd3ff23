"""Telegram's rate limits, waited out in one place: a request middleware on the bot's HTTP session.

A 429 answer carries ``retry_after``; every call the bot makes (handler replies, status edits,
notifications, ``telegram_send``) goes through this middleware, which waits that long and sends the
same request again. The waits are bounded: once they would add up to more than ``budget`` seconds
the ``TelegramRetryAfter`` reaches the caller, which decides (a background task may retry later; a
reply gives up). Other errors are never retried here: a request that timed out may have arrived,
and sending it again could post a message twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods.base import TelegramType

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.methods import Response, TelegramMethod

log = logging.getLogger("taskflow.bot")

RETRY_BUDGET_S = 30.0  # longer than a person waits for a reply; a longer limit is the caller's to handle
MAX_ATTEMPTS = 5

Sleep = Callable[[float], Awaitable[Any]]


class RetryAfter(BaseRequestMiddleware):
    """Waits out ``retry_after`` and repeats the request, within ``budget`` seconds of waiting in all."""

    def __init__(
        self, *, budget: float = RETRY_BUDGET_S, max_attempts: int = MAX_ATTEMPTS, sleep: Sleep = asyncio.sleep
    ) -> None:
        self.budget = budget
        self.max_attempts = max_attempts
        self.sleep = sleep  # tests replace it to see the waits without making them

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        """Make the request; on a 429 wait as asked and make it again, until it passes or the budget is spent."""
        waited = 0.0
        attempt = 1
        while True:
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                if attempt >= self.max_attempts or waited + exc.retry_after > self.budget:
                    raise
                log.info("Telegram asks to wait %ss before %s; waiting", exc.retry_after, method.__api_method__)
                await self.sleep(exc.retry_after)
                waited += exc.retry_after
                attempt += 1
