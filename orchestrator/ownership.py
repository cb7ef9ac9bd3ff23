"""One process owns a database: an exclusive lock on a file beside it, recording who holds it.

The kernel lets go of a ``flock`` when its process dies, however it dies, so a lock file left by a
killed process is simply taken over by the next one. The file's text says who holds it (pid,
command, since when, and the service's URL once it listens) so that others can say so, or hand
their work to that service.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from orchestrator.errors import TaskFlowError


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a database."""

    pid: int
    command: str  # "service", "run", "resume", ...
    since: float
    url: str | None = None  # where the service's API answers, once it does

    def describe(self) -> str:
        """One line for people."""
        where = f" at {self.url}" if self.url else ""
        return f"the TaskFlow {self.command} (pid {self.pid}){where}"


class DatabaseInUseError(TaskFlowError):
    """Another process owns the database."""

    def __init__(self, db: Path, holder: Holder | None) -> None:
        self.db = db
        self.holder = holder
        who = holder.describe() if holder else "another TaskFlow process"
        super().__init__(f"{db} is in use by {who}; stop it first, or use another TASKFLOW_DB")


def lock_path(db: Path) -> Path:
    """The lock file of a database."""
    return db.with_name(db.name + ".lock")


class OwnerLock:
    """The lock of one database; ``acquire`` it before opening the database, ``release`` after closing."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.path = lock_path(db)
        self._fd: int | None = None
        self._holder: Holder | None = None

    def acquire(self, command: str) -> None:
        """Take the lock, or raise ``DatabaseInUseError`` naming who has it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # a read-only data dir, a folder where the file should be...
            raise TaskFlowError(f"cannot create the lock file {self.path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DatabaseInUseError(self.db, read_holder(self.db)) from None
        self._fd = fd
        self._write(Holder(os.getpid(), command, time.time()))

    def announce(self, url: str | None) -> None:
        """Record where the holder's API answers (None: it no longer does, as it stops)."""
        if self._holder is not None:
            self._write(Holder(self._holder.pid, self._holder.command, self._holder.since, url))

    def release(self) -> None:
        """Let go of the lock (the file stays: removing it would race with the next taker)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing the only descriptor releases the flock
        self._fd = None
        self._holder = None

    def _write(self, holder: Holder) -> None:
        assert self._fd is not None
        data = json.dumps(asdict(holder)).encode()
        os.pwrite(self._fd, data, 0)  # then cut to length: a reader never sees the file empty
        os.ftruncate(self._fd, len(data))
        self._holder = holder


def read_holder(db: Path) -> Holder | None:
    """Who the lock file says holds the database, if it says anything readable."""
    try:
        data = json.loads(lock_path(db).read_text(encoding="utf-8"))
        return Holder(int(data["pid"]), str(data["command"]), float(data["since"]), data.get("url"))
    except (OSError, ValueError, KeyError, TypeError):
        return None
