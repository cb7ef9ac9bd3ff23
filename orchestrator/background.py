"""A set of named background tasks that are logged when they fail and all stopped together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("taskflow")


class TaskSet:
    """Keeps strong references to its tasks (the loop only keeps weak ones) and stops them on ``close``."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Start ``coro`` as a task called ``name``."""
        if self._closed:
            coro.close()
            raise RuntimeError(f"cannot start {name!r}: shutting down")
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("background task %s failed", task.get_name(), exc_info=exc)

    def __len__(self) -> int:
        return len(self._tasks)

    def names(self) -> list[str]:
        """Names of the tasks still going (for tests and logs)."""
        return sorted(t.get_name() for t in self._tasks)

    async def close(self, *, cancel: bool = True) -> None:
        """Cancel every task (or, with ``cancel=False``, let them finish) and wait for them to end."""
        self._closed = True
        tasks = list(self._tasks)
        if cancel:
            for task in tasks:
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
