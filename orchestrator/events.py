"""Live state changes for whoever watches (the status page, the bot's progress messages, the CLI)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

_QUEUE_SIZE = 1024


@dataclass(frozen=True, slots=True)
class RunEvent:
    """A task of a run (or the run itself, when ``task_id`` is None) entered ``state``."""

    run_id: int
    task_id: str | None
    state: str
    error: str | None = None


class Subscription:
    """Events of one run (or of all runs) in order. ``lagged`` says some were dropped."""

    def __init__(self, run_id: int | None) -> None:
        self.run_id = run_id
        self.queue: asyncio.Queue[RunEvent] = asyncio.Queue(_QUEUE_SIZE)
        self.lagged = False

    async def get(self) -> RunEvent:
        """The next event."""
        return await self.queue.get()


class EventBus:
    """Fan-out of ``RunEvent``s; a slow watcher loses events (and is told), never slows a run."""

    def __init__(self) -> None:
        self._subs: set[Subscription] = set()
        self._listeners: list[Callable[[RunEvent], None]] = []
        # Whether anyone is watching, so a publisher can skip building events nobody reads. An
        # attribute, kept current by ``subscribe``: it is read on every task transition.
        self.watched = False

    def publish(self, event: RunEvent) -> None:
        """Hand ``event`` to every listener and every matching subscription without waiting."""
        for listener in self._listeners:
            listener(event)
        for sub in self._subs:
            if sub.run_id is None or sub.run_id == event.run_id:
                try:
                    sub.queue.put_nowait(event)
                except asyncio.QueueFull:
                    sub.lagged = True  # the watcher re-reads the store when it sees this

    @contextlib.asynccontextmanager
    async def subscribe(self, run_id: int | None = None) -> AsyncIterator[Subscription]:
        """Watch one run's events (or every run's, with ``run_id=None``) inside the block."""
        sub = Subscription(run_id)
        self._subs.add(sub)
        self.watched = True
        try:
            yield sub
        finally:
            self._subs.discard(sub)
            self.watched = bool(self._subs or self._listeners)

    def listen(self, callback: Callable[[RunEvent], None]) -> None:
        """Call ``callback(event)`` for every event, in the publisher's call (it must be quick and never raise)."""
        self._listeners.append(callback)
        self.watched = True

    def unlisten(self, callback: Callable[[RunEvent], None]) -> None:
        """Stop calling ``callback``."""
        self._listeners.remove(callback)
        self.watched = bool(self._subs or self._listeners)
