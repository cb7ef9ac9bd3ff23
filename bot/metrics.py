"""Counting the updates the bot handles, for ``GET /metrics``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.types import TelegramObject
from prometheus_client import Counter

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class CountUpdates(BaseMiddleware):
    """An outer middleware of ``dispatcher.update``: each update counted as handled, ignored or error."""

    def __init__(self, counter: Counter) -> None:
        self.counter = counter

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        """Pass the update on and count how it went."""
        try:
            result = await handler(event, data)
        except Exception:
            self.counter.labels(outcome="error").inc()
            raise
        self.counter.labels(outcome="ignored" if result is UNHANDLED else "handled").inc()
        return result
