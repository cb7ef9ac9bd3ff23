"""The ready tasks of every run, handed to workers fairly.

Higher priority first; at equal priority the run served least recently goes first (a run never
served before goes before any other), each run's tasks in the order they became ready. So runs take
turns (round-robin), and a run that becomes ready while another has a long backlog starts its first
task at the next free worker, not after the backlog. A run at its ``max_active_tasks`` is passed
over until one of its tasks ends (``wake``).
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import itertools
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

PRIORITY_LEVELS = 3  # Priority.rank: 0 (high) to 2 (low)
_RANKS = range(PRIORITY_LEVELS)


class Served(Protocol):
    """A run as the queue sees it: when it last had a task taken (-1: never)."""

    served: int


R = TypeVar("R", bound=Served)  # a run
S = TypeVar("S")  # one of its tasks


class ReadyQueue(Generic[R, S]):
    """``put(run, task, rank)``; workers ``take()`` (no wait) or ``await get()``.

    ``may_start(run)``: whether the run may start one more task now (its ``max_active_tasks``).
    """

    def __init__(self, may_start: Callable[[R], bool]) -> None:
        self._may_start = may_start
        # Per priority: each run's waiting tasks, and a heap of (served, tie, run) over those runs.
        self._waiting: list[dict[R, collections.deque[S]]] = [{} for _ in range(PRIORITY_LEVELS)]
        self._turns: list[list[tuple[int, int, R]]] = [[] for _ in range(PRIORITY_LEVELS)]
        self._tie = itertools.count()  # runs are not comparable: equal ``served`` keep their order
        self._clock = itertools.count()
        self._size = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def __len__(self) -> int:
        return self._size

    def put(self, run: R, task: S, rank: int) -> None:
        """A task became ready."""
        waiting = self._waiting[rank].get(run)
        if waiting is None:
            self._waiting[rank][run] = collections.deque((task,))
            heapq.heappush(self._turns[rank], (run.served, next(self._tie), run))
        else:
            waiting.append(task)
        self._size += 1
        self.wake()

    def take(self) -> tuple[R, S] | None:
        """The next task a worker should run, if any may start now."""
        if not self._size:
            return None
        for rank in _RANKS:
            if self._turns[rank]:
                item = self._take_at(self._turns[rank], self._waiting[rank])
                if item is not None:
                    self._size -= 1
                    return item
        return None

    def _take_at(self, turns: list[tuple[int, int, R]], waiting: dict[R, collections.deque[S]]) -> tuple[R, S] | None:
        """The next task of one priority: of the run first in turn, unless it is at its ``max_active_tasks``."""
        while turns and turns[0][2] not in waiting:
            heapq.heappop(turns)  # a run dropped
        if not turns:
            return None
        run = turns[0][2]
        on_heap = self._may_start(run)
        if not on_heap:
            found = self._first_that_may_start(turns, waiting)  # taken off the heap
            if found is None:
                return None
            run = found
        tasks = waiting[run]
        task = tasks.popleft()
        run.served = stamp = next(self._clock)  # unique: no tie to break past the first turn
        if on_heap and tasks:
            heapq.heapreplace(turns, (stamp, 0, run))  # to the end of the turn
        elif on_heap:
            heapq.heappop(turns)
        elif tasks:
            heapq.heappush(turns, (stamp, 0, run))
        if not tasks:
            del waiting[run]
        return run, task

    def _first_that_may_start(
        self, turns: list[tuple[int, int, R]], waiting: dict[R, collections.deque[S]]
    ) -> R | None:
        """The run next in turn among those below their ``max_active_tasks`` (taken off the heap), if any."""
        passed = []
        chosen = None
        while turns:
            entry = heapq.heappop(turns)
            run = entry[2]
            if run not in waiting:
                continue  # dropped
            if self._may_start(run):
                chosen = run
                break
            passed.append(entry)
        for entry in passed:
            heapq.heappush(turns, entry)
        return chosen

    async def get(self) -> tuple[R, S]:
        """Wait for a task that may start."""
        while True:
            item = self.take()
            if item is not None:
                return item
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self.wake()  # it was woken for a task: another worker takes it
                raise

    def wake(self) -> None:
        """Let a waiting worker look again (a task became ready, or a run may start one more)."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def drop(self, run: R) -> None:
        """Forget a run's waiting tasks (it was cancelled); its heap entries are skipped when met."""
        for waiting in self._waiting:
            tasks = waiting.pop(run, None)
            if tasks is not None:
                self._size -= len(tasks)
