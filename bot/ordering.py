"""One user's updates are handled one at a time, in the order Telegram sent them.

aiogram handles every update in a task of its own, so a document and the command sent right after
it race: ``/run newdag`` could answer "does not exist" before the upload of ``newdag.json`` was
saved. ``OrderedDispatcher`` takes a per-user lock around the whole of ``feed_update`` (error replies
included, which aiogram sends outside any middleware of ours); the polling loop starts the tasks in
update order and asyncio's locks are fair, so each user's updates run in that order while different
users still go in parallel. It also keeps the tasks handling updates, so ``stop()`` can let them
finish instead of leaking them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Hashable
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.dispatcher.middlewares.user_context import UserContextMiddleware
from aiogram.types import Update


class KeyedLocks:
    """A lock per key, made when first needed and dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: Hashable | None) -> AsyncIterator[None]:
        """Hold the lock of ``key`` (``None``: no lock at all)."""
        if key is None:
            yield
            return
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


class OrderedDispatcher(Dispatcher):
    """A ``Dispatcher`` that handles each user's updates in order and can drain the ones in progress."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.locks = KeyedLocks()
        self._handling: set[asyncio.Task[Any]] = set()

    async def feed_update(self, bot: Bot, update: Update, **kwargs: Any) -> Any:
        """Handle ``update`` once the same user's earlier updates are done."""
        task = asyncio.current_task()
        assert task is not None
        self._handling.add(task)
        try:
            # The task's first await: no later update of the same user can get to the lock before it.
            async with self.locks.hold(sender_of(update)):
                return await super().feed_update(bot, update, **kwargs)
        finally:
            self._handling.discard(task)

    async def drain(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for updates still being handled (or waiting their turn), then cancel them."""
        tasks = [t for t in self._handling if t is not asyncio.current_task()]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


def sender_of(update: Update) -> int | None:
    """Whose update it is: the user's id, else the chat's (a channel post), else nobody."""
    context = UserContextMiddleware.resolve_event_context(update)
    return context.user_id if context.user_id is not None else context.chat_id
