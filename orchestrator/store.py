"""All SQL lives here: DAGs, runs, task instances, the event journal, schedules and bot users.

Task transitions are buffered and committed in groups; the journal is their record. One transaction
appends a group's changes to the journal (one row per run, the changes in order, each with every
field of the task's row) and stores the outputs of its successes, and that is all a commit that
downstream tasks wait on writes. The ``events`` view shows the journal one change a row.
``when_durable(callback)`` runs the callback once everything recorded before it is committed: the
engine queues downstream tasks that way, and its workers go on meanwhile.

Each task's row in ``task_instances`` (its state now) is brought up to the journal behind the
commits (``_apply``, from a thread): by the process that journalled the changes, before it reads task
rows, once its commits pause for CHECKPOINT_INTERVAL_S (at most PROJECTION_LAG_S after a change
while they go on), and at its close; what a stopped process left is applied by the next store that
opens the database, or by any open one once it has lain there PROJECTION_LAG_S. So another
process's changes show in task rows within about that. A read with nothing of its own to apply
writes nothing, so it never waits for another process's write.
``projection.applied`` is the last journal row applied; applying takes the latest entry of each task
after it, so a task that moved three times costs one row update, and that update is off the path
of the run (it cost a 10,000-task DAG a quarter of its time when every commit made it).

Connections are in autocommit mode; every write in this process holds one lock, so a transaction
of several statements never takes in another coroutine's write, and they never wait on each other.

Runs take a short path: aiosqlite's hop to its thread costs ~340 µs a commit on this machine
against ~50 µs for the same statement run in place (bench/engine.py), and a chain of tasks pays
that on every step. So batches of task transitions, a run's creation and its state changes, and
applying the journal, are written by a second, plain sqlite3 connection (``_commit``): small
transactions in the event loop (WAL with synchronous=NORMAL does not fsync on commit), large ones
in a thread. Reads, and the writes of DAGs, schedules and users, go through aiosqlite.

SQLite's automatic checkpoints are off: one runs inside whichever commit crosses 1,000 WAL pages,
which would copy pages (and fsync) in the event loop. ``_checkpoint_loop`` checkpoints from threads
instead, every CHECKPOINT_INTERVAL_S while there are new commits (see ``checkpoint``).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from orchestrator.errors import NotFoundError
from orchestrator.jsontext import dump_json, load_own_json
from orchestrator.models import is_dag_id
from orchestrator.records import (
    DagRecord,
    EventRecord,
    RunRecord,
    ScheduleRecord,
    TaskFields,
    TaskRecord,
    UserRecord,
)
from orchestrator.states import RUN_ACTIVE, RunState, TaskState

log = logging.getLogger(__name__)
T = TypeVar("T")

# Transitions nobody waits on (a task queued or started) are committed this soon: a layer of tasks
# that started together is then committed while they run, and the commit their successes wait on
# carries only those (on the sleep benchmark, ~1 ms less per layer than at 20 ms).
FLUSH_INTERVAL_S = 0.005
CHECKPOINT_INTERVAL_S = 0.25
# Task rows lag the journal at most about this long while commits go on (see ``_projection_due``).
PROJECTION_LAG_S = 2.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS dags (
    dag_id TEXT PRIMARY KEY, config TEXT NOT NULL, source TEXT NOT NULL,
    version INTEGER NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT, dag_id TEXT NOT NULL, state TEXT NOT NULL,
    trigger TEXT NOT NULL, owner TEXT, notify_chat INTEGER,
    created_at REAL NOT NULL, started_at REAL, ended_at REAL, error TEXT, archive TEXT);
-- Apart from its run: SQLite rewrites a whole row on every update, and a run's state changes
-- would copy a config of thousands of tasks (its overflow pages) into the WAL each time.
CREATE TABLE IF NOT EXISTS run_configs (
    run_id INTEGER PRIMARY KEY REFERENCES runs (run_id) ON DELETE CASCADE, config TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS runs_by_dag ON runs (dag_id, run_id);
CREATE INDEX IF NOT EXISTS runs_by_state ON runs (state, run_id);
CREATE TABLE IF NOT EXISTS task_instances (
    run_id INTEGER NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE, task_id TEXT NOT NULL,
    state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0,
    started_at REAL, ended_at REAL, error TEXT, output TEXT, output_file TEXT, updated_at REAL,
    position INTEGER NOT NULL DEFAULT 0,  -- the task's place in its config, for listing
    PRIMARY KEY (run_id, task_id)) WITHOUT ROWID;
-- Every state change, a row per commit group and run: ``entries`` is a JSON array of [task_id (null:
-- the run itself), state, attempt, at, error, failures, started_at, ended_at, output_file] in the
-- order they happened (a run's own entries, and those of earlier versions, stop after error). One
-- row for a group, not one per change: binding six values a change cost more than the rest of a commit.
-- AUTOINCREMENT: an id is never used twice, even after the newest rows are deleted, as the
-- projection's watermark (below) needs.
CREATE TABLE IF NOT EXISTS journal (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER NOT NULL, entries TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS journal_by_run ON journal (run_id, id);
-- The last journal row whose task entries ``task_instances`` shows (one row; see the module docstring).
CREATE TABLE IF NOT EXISTS projection (id INTEGER PRIMARY KEY CHECK (id = 1), applied INTEGER NOT NULL);
-- Databases of earlier versions journalled task rows by trigger; the store writes the journal now.
DROP TRIGGER IF EXISTS journal_task_state;
CREATE TABLE IF NOT EXISTS schedules (
    schedule_id INTEGER PRIMARY KEY AUTOINCREMENT, dag_id TEXT NOT NULL, kind TEXT NOT NULL,
    expr TEXT NOT NULL, timezone TEXT NOT NULL, owner_id INTEGER, chat_id INTEGER,
    paused INTEGER NOT NULL DEFAULT 0, next_fire_at REAL, last_fire_at REAL, last_run_id INTEGER,
    created_at REAL NOT NULL, notify TEXT);
-- The bot's live status message of a run, so a run resumed after a restart goes on editing it.
CREATE TABLE IF NOT EXISTS status_messages (
    run_id INTEGER PRIMARY KEY REFERENCES runs (run_id) ON DELETE CASCADE, chat_id INTEGER NOT NULL,
    message_id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    user_id INTEGER PRIMARY KEY, username TEXT, chat_id INTEGER NOT NULL, first_name TEXT,
    updated_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS users_by_name ON users (username);
"""

# The journal one change a row, for people and ad-hoc SQL (``SELECT * FROM events WHERE ...``).
EVENTS_VIEW = """
CREATE VIEW IF NOT EXISTS events AS
SELECT journal.id AS batch, e.key AS seq, journal.run_id AS run_id,
       json_extract(e.value, '$[0]') AS task_id, json_extract(e.value, '$[1]') AS state,
       json_extract(e.value, '$[2]') AS attempt, json_extract(e.value, '$[3]') AS at,
       json_extract(e.value, '$[4]') AS error
FROM journal, json_each(journal.entries) AS e;
"""
# Steps that bring a database of an earlier version up to date: (whether it is needed, statements).
_MIGRATIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # An ``events`` table, one change a row: moved into the journal.
    (
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'",
        (
            "INSERT INTO journal (run_id, entries) SELECT run_id, "
            "json_array(json_array(task_id, state, attempt, at, error)) FROM events ORDER BY id",
            "DROP TABLE events",
        ),
    ),
    # A run's config in its row of ``runs``: moved into ``run_configs``.
    (
        "SELECT 1 FROM pragma_table_info('runs') WHERE name = 'config'",
        (
            "INSERT INTO run_configs (run_id, config) SELECT run_id, config FROM runs",
            "ALTER TABLE runs DROP COLUMN config",
        ),
    ),
    # Schedules without their notify setting (which runs are told about in the chat).
    (
        "SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM pragma_table_info('schedules') WHERE name = 'notify')",
        ("ALTER TABLE schedules ADD COLUMN notify TEXT",),
    ),
    # A journal whose ids could come again: rebuilt with AUTOINCREMENT (the view on it is made again at open).
    (
        "SELECT 1 FROM sqlite_master WHERE name = 'journal' AND sql NOT LIKE '%AUTOINCREMENT%'",
        (
            "DROP VIEW IF EXISTS events",
            "CREATE TABLE journal_v2 (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER NOT NULL, "
            "entries TEXT NOT NULL)",
            "INSERT INTO journal_v2 (id, run_id, entries) SELECT id, run_id, entries FROM journal",
            # Never an id task rows show already: the newest rows may have been deleted by hand.
            "DELETE FROM sqlite_sequence WHERE name = 'journal_v2'",
            "INSERT INTO sqlite_sequence (name, seq) SELECT 'journal_v2', "
            "MAX(COALESCE((SELECT MAX(id) FROM journal), 0), COALESCE((SELECT MAX(applied) FROM projection), 0))",
            "DROP TABLE journal",
            "ALTER TABLE journal_v2 RENAME TO journal",
            "CREATE INDEX journal_by_run ON journal (run_id, id)",
        ),
    ),
)

# Task rows brought up to the journal go in multi-row statements: one call into SQLite per chunk, not per row.
_UPSERT_TASKS = """
INSERT INTO task_instances (run_id, task_id, state, attempts, failures, started_at, ended_at,
                            error, output_file, updated_at)
VALUES {values}
ON CONFLICT (run_id, task_id) DO UPDATE SET state = excluded.state, attempts = excluded.attempts,
    failures = excluded.failures, started_at = excluded.started_at, ended_at = excluded.ended_at,
    error = excluded.error, output_file = excluded.output_file, updated_at = excluded.updated_at
"""
_ROW_PLACEHOLDERS = "(?,?,?,?,?,?,?,?,?,?)"
_SET_OUTPUT = "UPDATE task_instances SET output = ? WHERE run_id = ? AND task_id = ?"
_JOURNAL = "INSERT INTO journal (run_id, entries) VALUES (?, ?)"
# What one transaction applies at most (whole journal rows: at least one), so a backlog never has to
# fit in memory at once and the write lock is let go between chunks.
_APPLY_ROWS, _APPLY_ENTRIES = 500, 20_000
# The last journal row task rows show, and the journal's last row.
_WATERMARK = "SELECT applied, (SELECT COALESCE(MAX(id), 0) FROM journal) FROM projection"
_ROWS_PER_STATEMENT = 2000
_INLINE_ROWS = 1000  # larger batches are written from a thread so the event loop does not stall
_SET_UP_S = 5.0  # how long opening waits for another process setting up the same new file
_PRAGMAS = (
    "journal_mode=WAL",
    "synchronous=NORMAL",
    "foreign_keys=ON",
    "busy_timeout=5000",
    "wal_autocheckpoint=0",
    # A WAL that a burst grew is cut back to this once it starts over.
    f"journal_size_limit={64 * 1024 * 1024}",
)
_RUN_COLUMNS = "run_id, dag_id, state, trigger, owner, notify_chat, created_at, started_at, ended_at, error, archive"
_TASK_COLUMNS = "task_id, state, attempts, failures, started_at, ended_at, error, output_file"
_SCHEDULE_COLUMNS = (
    "schedule_id, dag_id, kind, expr, timezone, owner_id, chat_id, paused, next_fire_at, "
    "last_fire_at, last_run_id, created_at, notify"
)

# One journalled change: task_id, state, attempt, at, error, failures, started_at, ended_at, output_file.
Entry = tuple[str, str, int, float, str | None, int, float | None, float | None, str | None]
_ENTRY_LENGTH = 9


class Store:
    """The SQLite store. Open with ``async with Store(path) as store``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._plain_db: sqlite3.Connection | None = None
        self._rows: list[tuple[int, Entry]] = []  # (run_id, entry), in the order they happened
        self._outputs: list[tuple[str, int, str]] = []  # (output, run_id, task_id) of successes
        self._callbacks: dict[Callable[[list[Any]], None], list[Any]] = {}
        self._lock = asyncio.Lock()
        # The flusher commits when woken: at once when a commit is waited on (``when_durable``),
        # else FLUSH_INTERVAL_S after the first write it has not committed (``_timer``).
        self._wake = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._seq = 0  # writes recorded so far
        self._durable = 0  # writes committed so far
        self._commits = 0  # transactions committed so far, and how many of them are checkpointed
        self._checkpointed = 0
        # Commits of task transitions this store made, and how many of them task rows are known to
        # show; since when some have not, and when the last was (monotonic clock): see ``_projection_due``.
        self._journalled = 0
        self._applied_to = 0
        self._unapplied_since = 0.0
        self._journalled_at = 0.0
        self._looked_at = 0.0  # when ``_left_behind`` last looked, and the watermark it saw
        self._seen_applied = -1
        self._left_over = False  # what the journal held at open could not be applied then
        self._flusher: asyncio.Task[None] | None = None
        self._checkpointer: asyncio.Task[None] | None = None
        self._lifecycle = asyncio.Lock()  # opening and closing, one at a time and in the order called

    async def __aenter__(self) -> Store:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def db(self) -> aiosqlite.Connection:
        """The open connection."""
        if self._db is None:
            raise RuntimeError("store is not open")
        return self._db

    async def open(self) -> None:
        """Open the database (WAL), create the schema, start the background flusher."""
        async with self._lifecycle:
            if self._db is not None:
                raise RuntimeError("store is open already")
            await self._open()

    async def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Used only under the write lock, from the loop or from one thread at a time.
        self._plain_db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            # Once per database, at start: blocking the loop is fine here.
            _set_up(self._plain_db)
            _migrate(self._plain_db)
            committed, applied = _apply_left_over(self._plain_db)
            self._commits += committed
            self._left_over = not applied  # then reads apply first: the engine must not act on stale rows
            self._db = await aiosqlite.connect(self.path, isolation_level=None)
            for pragma in _PRAGMAS:
                await self._db.execute(f"PRAGMA {pragma}")
            await self._db.executescript(EVENTS_VIEW)
        except BaseException:
            # Closed, so that the process can exit (aiosqlite's thread would keep it alive).
            self._plain_db.close()
            self._plain_db = None
            if self._db is not None:
                await self._db.close()
                self._db = None
            raise
        self._flusher = asyncio.create_task(self._flush_loop(), name="store-flusher")
        self._checkpointer = asyncio.create_task(self._checkpoint_loop(), name="store-checkpointer")

    async def close(self) -> None:
        """Commit what is buffered, stop the flusher and close the connection."""
        async with self._lifecycle:  # a second close returns once the first is done
            if self._db is not None:
                await self._close()

    async def _close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        tasks = [task for task in (self._flusher, self._checkpointer) if task is not None]
        for task in tasks:
            task.cancel()
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
            try:  # from a thread: another process's write may hold SQLite's lock for a while
                await self.flush(in_thread=True)
            except sqlite3.Error as exc:
                log.error(
                    "%d task change(s) not committed at close (%s): their tasks run again at the next start",
                    len(self._rows),
                    exc,
                )
            try:
                await self._apply()
            except Exception as exc:  # the journal has every change: the next start applies them
                log.warning("task rows not brought up to the journal at close (%s); the next start does it", exc)
            await self.checkpoint()
        finally:
            if await self._close_connections():
                raise asyncio.CancelledError

    async def _close_connections(self) -> bool:
        """Close both connections, waiting through any cancellation: whether one came meanwhile.

        Reads go on until the lock is free; callers waiting for it then are told the store is not open.
        """
        cancelled = False
        db = self._db
        try:
            if self._plain_db is not None:
                # Not under a statement another caller runs on it from a thread: it holds the lock till then.
                while True:
                    try:
                        await self._lock.acquire()
                        break
                    except asyncio.CancelledError:
                        cancelled = True
                try:
                    self._plain_db.close()
                    self._plain_db = None
                finally:
                    self._db = None
                    self._lock.release()
        finally:
            self._db = None
            # stop(), not close(): it queues closing after what is queued already and returns a future,
            # not a coroutine, so nothing (not even asyncio.run's shutdown) can cancel it before it runs.
            stopped = db.stop() if db is not None else None
            if stopped is not None:
                cancelled = await _wait_out(stopped) or cancelled
        return cancelled

    # -- buffered task writes ---------------------------------------------------------------

    def record_task(self, run_id: int, task: TaskFields, output: str | None = None, at: float | None = None) -> None:
        """Buffer one task transition; ``output`` (JSON text), if given, becomes the task's output."""
        self._rows.append(
            (
                run_id,
                # The state as it is: a StrEnum is a str, and JSON and SQLite keep its text.
                (
                    task.task_id, task.state, task.attempts, time.time() if at is None else at, task.error,
                    task.failures, task.started_at, task.ended_at, task.output_file,
                ),
            )
        )  # fmt: skip
        if output is not None:
            self._outputs.append((output, run_id, task.task_id))
        self._seq += 1
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(FLUSH_INTERVAL_S, self._wake.set)

    def when_durable(self, callback: Callable[[list[T]], None], item: T) -> None:
        """Call ``callback(items)`` once everything recorded so far is committed (soon: it is urgent).

        The items given with one callback before one commit come in one call: the engine releases a
        commit's successes together.
        """
        items = self._callbacks.get(callback)
        if items is None:
            self._callbacks[callback] = [item]
            self._wake.set()
        else:
            items.append(item)

    async def flush(self, *, in_thread: bool = False) -> None:
        """Return once everything recorded before this call is committed (``in_thread``: even a small batch)."""
        target = self._seq
        callbacks: dict[Callable[[list[Any]], None], list[Any]] = {}
        committed = False

        def settle(_: object) -> None:  # as soon as the batch is committed, even if this call is cancelled
            nonlocal committed
            committed = True
            self._durable = seq
            if rows:
                self._journalled_at = time.monotonic()
                if not self._unapplied:
                    self._unapplied_since = self._journalled_at
                self._journalled += 1

        try:
            async with self._lock:
                if self._durable >= target and not self._callbacks:
                    return  # another caller's commit already covered ours
                rows, outputs, callbacks, seq = self._rows, self._outputs, self._callbacks, self._seq
                self._rows, self._outputs, self._callbacks = [], [], {}
                try:
                    work = functools.partial(_journal_tasks, rows=rows, outputs=outputs)
                    size = _INLINE_ROWS + 1 if in_thread else len(rows) + len(outputs)
                    await self._commit_locked(work, rows=size, settle=settle)
                except BaseException:
                    if not committed:  # put the batch back so a later flush retries it: nothing is dropped
                        self._rows, self._outputs = rows + self._rows, outputs + self._outputs
                        for callback, later in self._callbacks.items():
                            callbacks.setdefault(callback, []).extend(later)
                        self._callbacks = callbacks
                    raise
        finally:
            if committed:
                for callback, items in callbacks.items():
                    callback(items)

    async def _flush_loop(self) -> None:
        while True:
            await self._wake.wait()
            # One turn of the loop first: tasks already woken this turn (say, by timers that expired
            # together) record their transitions into this batch rather than each into one of its own.
            await asyncio.sleep(0)
            self._wake.clear()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            try:
                await self.flush()
            except Exception:
                log.exception("could not commit task states; will retry")
                await asyncio.sleep(FLUSH_INTERVAL_S)
                self._wake.set()

    async def checkpoint(self) -> tuple[int, int]:
        """Copy committed pages from the WAL into the database file (from threads, not the event loop).

        Returns the WAL's size and how much of it is now checkpointed, in pages. PASSIVE: it never
        waits for readers or writers, so it may leave some for the next time.
        """
        # Twice: the bulk while commits go on, then what they added under the write lock. SQLite starts
        # the WAL over only after a checkpoint no commit overlapped (else it grows forever), and the
        # second one is short, so commits wait little. It runs on the plain connection, which only
        # ever serves the lock's holder: on aiosqlite's it could queue behind a long read.
        await self.db.execute_fetchall("PRAGMA wal_checkpoint(PASSIVE)")
        async with self._lock:
            done = self._commits
            wal_pages, checkpointed = await self._on_plain(_checkpoint, in_thread=True)
        if checkpointed == wal_pages:
            self._checkpointed = done
        return wal_pages, checkpointed

    async def _checkpoint_loop(self) -> None:
        """Apply the journal to task rows when it is due, and checkpoint what was committed."""
        while True:
            await asyncio.sleep(CHECKPOINT_INTERVAL_S)
            # Each step on its own: the journal and the WAL keep everything meanwhile, so a failed
            # step is tried again next time, and never stops the other.
            await _logging_errors(self._apply_if_due(), "could not bring task rows up to the journal")
            if self._checkpointed != self._commits:
                await _logging_errors(self.checkpoint(), "could not checkpoint the database")

    async def _apply_if_due(self) -> None:
        if self._projection_due() or await self._left_behind():
            await self._apply()

    def _projection_due(self) -> bool:
        """Whether to apply the journal now: once commits pause, or when task rows lag too long.

        Not while commits go on, unless they have for PROJECTION_LAG_S: applying holds the write
        lock, and a commit that downstream tasks wait on would wait for it.
        """
        if not self._unapplied:
            return False
        now = time.monotonic()
        return now - self._journalled_at >= CHECKPOINT_INTERVAL_S or now - self._unapplied_since >= PROJECTION_LAG_S

    async def _left_behind(self) -> bool:
        """Whether the journal holds changes nobody has applied for a while (a process stopped since).

        Looked at every PROJECTION_LAG_S: true when the watermark has not moved since the last look
        and there is something past it. The process that wrote them would have applied them by then.
        """
        now = time.monotonic()
        if now - self._looked_at < PROJECTION_LAG_S:
            return False
        self._looked_at = now
        async with self._lock:  # the plain connection serves the lock's holder only
            applied, last = await self._on_plain(_watermark, in_thread=True)  # a read may wait (busy)
        stuck = last > applied and applied == self._seen_applied
        self._seen_applied = applied
        return stuck

    async def _catch_up(self) -> None:
        """Commit what is buffered and apply this store's changes to task rows: readers of task rows call this.

        Nothing is written for a read when there is nothing of this store's to apply.
        """
        await self.flush()
        if self._unapplied or self._left_over:
            await self._apply()

    @property
    def _unapplied(self) -> bool:
        """Whether task rows may not show all that this store journalled."""
        return self._journalled > self._applied_to

    async def _apply(self) -> None:
        """Bring task rows up to the journal as it is now (another process's changes too), from a thread.

        The write lock is taken for each chunk (``_apply_chunk``), so commits that downstream tasks
        wait on get in between. Up to the journal's end when it starts only, or commits that go on
        would keep it (and a reader waiting for it) going for as long as they do.
        """
        async with self._lock:  # the commits of this store that the journal's end covers
            covered = self._journalled
            applied, last = await self._on_plain(_watermark, in_thread=True)
        chunk = functools.partial(_apply_chunk, last=last)
        while applied < last:
            async with self._lock:
                applied = await self._on_plain(chunk, in_thread=True, settle=self._count_commit)
        self._applied_to = max(self._applied_to, covered)
        self._left_over = False
        if self._unapplied:  # committed meanwhile: its lag counts from now
            self._unapplied_since = time.monotonic()

    def _count_commit(self, applied: object) -> None:
        self._commits += 1  # one transaction per chunk, even one that found the rows applied already

    async def _commit(self, work: Callable[[sqlite3.Connection], T], *, rows: int = 0) -> T:
        """``work`` as one transaction on the plain connection, holding the write lock.

        In place when small (as most batches of transitions are, see the module's docstring: a few
        statements cost less than one hop to aiosqlite's thread), from a thread when it writes more
        than ``_INLINE_ROWS``.
        """
        async with self._lock:
            return await self._commit_locked(work, rows=rows)

    async def _commit_locked(
        self, work: Callable[[sqlite3.Connection], T], *, rows: int, settle: Callable[[T], None] | None = None
    ) -> T:
        self._commits += 1
        transaction = functools.partial(_in_transaction, work=work)
        return await self._on_plain(transaction, in_thread=rows > _INLINE_ROWS, settle=settle)

    async def _on_plain(
        self, work: Callable[[sqlite3.Connection], T], *, in_thread: bool, settle: Callable[[T], None] | None = None
    ) -> T:
        """``work(plain connection)``, in place or from a thread; the caller holds the write lock.

        ``settle(result)`` is called once the work has succeeded, before this returns, and also if
        the caller is cancelled meanwhile: a thread can't be stopped, so the caller waits for it
        (the connection, and so the lock, is the thread's until it ends), has its outcome recorded
        by ``settle``, and then gets its CancelledError.
        """
        if not in_thread:
            result = work(self._plain())
        else:
            # A future, not a task: nothing cancels it, not even asyncio.run's shutdown, so the
            # connection is never left to another caller while the thread still uses it.
            thread = asyncio.get_running_loop().run_in_executor(None, work, self._plain())
            if await _wait_out(thread):
                if thread.exception() is None and settle is not None:
                    settle(thread.result())
                raise asyncio.CancelledError from thread.exception()
            result = thread.result()
        if settle is not None:
            settle(result)
        return result

    def _plain(self) -> sqlite3.Connection:
        if self._plain_db is None:
            raise RuntimeError("store is not open")
        return self._plain_db

    async def _one(self, sql: str, args: Iterable[Any] = ()) -> Any:
        """The first row of a query, or None. Reads never leave a cursor (and its snapshot) open."""
        rows = await self.db.execute_fetchall(sql, tuple(args))
        return next(iter(rows), None)

    async def _all(self, sql: str, args: Iterable[Any] = ()) -> list[Any]:
        """Every row of a query."""
        return list(await self.db.execute_fetchall(sql, tuple(args)))

    async def _write(self, sql: str, args: Iterable[Any] = ()) -> aiosqlite.Cursor:
        """One statement (a transaction of its own), holding the write lock."""
        async with self._lock:
            self._commits += 1
            return await self.db.execute(sql, tuple(args))

    # -- runs -------------------------------------------------------------------------------

    async def create_run(
        self,
        dag_id: str,
        config_json: str,
        task_ids: Iterable[str],
        *,
        trigger: str,
        owner: str | None = None,
        notify_chat: int | None = None,
    ) -> int:
        """Insert a queued run and its pending tasks; returns the new run id."""
        now = time.time()
        ids = list(task_ids)
        ids_json = dump_json(ids).decode()

        def insert(db: sqlite3.Connection) -> int:
            cur = db.execute(
                "INSERT INTO runs (dag_id, state, trigger, owner, notify_chat, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (dag_id, RunState.QUEUED.value, trigger, owner, notify_chat, now),
            )
            run_id = cur.lastrowid
            assert run_id is not None
            db.execute("INSERT INTO run_configs (run_id, config) VALUES (?, ?)", (run_id, config_json))
            db.execute(  # one statement for every task: SQLite walks the list, not Python
                "INSERT INTO task_instances (run_id, task_id, state, updated_at, position) "
                "SELECT ?, value, ?, ?, key FROM json_each(?)",
                (run_id, TaskState.PENDING.value, now, ids_json),
            )
            _journal_run(db, run_id, RunState.QUEUED, now, None)
            return run_id

        return await self._commit(insert, rows=len(ids))

    async def set_run_state(
        self,
        run_id: int,
        state: RunState,
        *,
        error: str | None = None,
        archive: str | None = None,
        at: float | None = None,
    ) -> RunRecord:
        """Store a run transition (and its journal event), after flushing buffered task writes.

        Returns the run as stored now, without task counts (``get_run`` has them).
        """
        await self.flush()
        now = time.time() if at is None else at
        started = now if state == RunState.RUNNING else None
        ended = None if state in RUN_ACTIVE else now

        def update(db: sqlite3.Connection) -> Any:
            row = db.execute(
                # A run going again (a re-run) has no archive until it ends: the old ZIP is out of date.
                "UPDATE runs SET state = ?, started_at = COALESCE(started_at, ?), "
                "ended_at = CASE WHEN ? IS NULL THEN NULL ELSE ? END, error = ?, "
                "archive = CASE WHEN ? IS NULL THEN NULL ELSE COALESCE(?, archive) END WHERE run_id = ? "
                f"RETURNING {_RUN_COLUMNS}",
                (state.value, started, ended, ended, error, ended, archive, run_id),
            ).fetchone()
            if row is None:
                raise NotFoundError(f"run {run_id} does not exist")
            _journal_run(db, run_id, state, now, error)
            return row

        return _run(await self._commit(update), {})

    async def get_run(self, run_id: int) -> RunRecord:
        """One run with its task counts by state; ``NotFoundError`` if there is none."""
        await self._catch_up()
        row = await self._one(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,))
        if row is None:
            raise NotFoundError(f"run {run_id} does not exist")
        counts = await self._counts([run_id])
        return _run(row, counts.get(run_id, {}))

    async def list_runs(
        self,
        *,
        dag_id: str | None = None,
        states: Iterable[RunState] | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[RunRecord]:
        """Runs, newest first, optionally of one DAG and in some states."""
        await self._catch_up()
        where, args = ["1 = 1"], []
        if dag_id is not None:
            where.append("dag_id = ?")
            args.append(dag_id)
        if states is not None:
            wanted = [s.value for s in states]
            where.append(f"state IN ({','.join('?' * len(wanted))})")
            args += wanted
        rows = await self._all(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE {' AND '.join(where)} ORDER BY run_id DESC LIMIT ? OFFSET ?",
            (*args, limit, offset),
        )
        counts = await self._counts([r[0] for r in rows])
        return [_run(r, counts.get(r[0], {})) for r in rows]

    async def _counts(self, run_ids: list[int]) -> dict[int, dict[str, int]]:
        if not run_ids:
            return {}
        rows = await self._all(
            f"SELECT run_id, state, COUNT(*) FROM task_instances WHERE run_id IN ({','.join('?' * len(run_ids))}) "
            "GROUP BY run_id, state",
            run_ids,
        )
        out: dict[int, dict[str, int]] = {}
        for run_id, state, n in rows:
            out.setdefault(run_id, {})[state] = n
        return out

    async def run_config(self, run_id: int) -> dict[str, Any]:
        """The config a run was started with."""
        return json.loads(await self.run_config_json(run_id))  # type: ignore[no-any-return]

    async def run_config_json(self, run_id: int) -> str:
        """The config a run was started with, as the JSON text stored."""
        row = await self._one("SELECT config FROM run_configs WHERE run_id = ?", (run_id,))
        if row is None:
            raise NotFoundError(f"run {run_id} does not exist")
        return str(row[0])

    async def get_tasks(self, run_id: int) -> list[TaskRecord]:
        """The tasks of a run, in the order they were created."""
        await self._catch_up()
        rows = await self._all(
            f"SELECT {_TASK_COLUMNS} FROM task_instances WHERE run_id = ? ORDER BY position", (run_id,)
        )
        return [_task(r) for r in rows]

    async def get_outputs(self, run_id: int) -> dict[str, Any]:
        """The stored outputs of a run's succeeded tasks (to resume or re-run it)."""
        await self._catch_up()
        rows = await self._all(
            "SELECT task_id, output FROM task_instances WHERE run_id = ? AND state = ?",
            (run_id, TaskState.SUCCESS.value),
        )
        return {task_id: (None if out is None else json.loads(out)) for task_id, out in rows}

    async def get_events(self, run_id: int) -> list[EventRecord]:
        """The journal of a run's state changes, oldest first."""
        await self.flush()
        rows = await self._all("SELECT id, entries FROM journal WHERE run_id = ? ORDER BY id", (run_id,))
        return [
            EventRecord(run_id, *entry[:5])
            for journal_id, text in rows
            for entry in _entries(journal_id, text)  # an unreadable row (written by hand) is skipped, and logged
            if isinstance(entry, list) and len(entry) >= 5
        ]

    async def unfinished_run_ids(self) -> list[int]:
        """Runs that had not ended when the service stopped."""
        rows = await self._all(
            "SELECT run_id FROM runs WHERE state IN (?, ?) ORDER BY run_id",
            tuple(s.value for s in (RunState.QUEUED, RunState.RUNNING)),
        )
        return [r[0] for r in rows]

    # -- DAGs -------------------------------------------------------------------------------

    async def save_dag(self, dag_id: str, config: dict[str, Any], *, source: str) -> DagRecord:
        """Add a DAG or replace its config (its version goes up)."""
        now = time.time()
        await self._write(
            "INSERT INTO dags (dag_id, config, source, version, updated_at) VALUES (?, ?, ?, 1, ?) "
            "ON CONFLICT (dag_id) DO UPDATE SET config = excluded.config, source = excluded.source, "
            "version = dags.version + 1, updated_at = excluded.updated_at",
            (dag_id, json.dumps(config), source, now),
        )
        return await self.get_dag(dag_id)

    async def add_dag(self, dag_id: str, config: dict[str, Any], *, source: str) -> DagRecord | None:
        """Add a DAG unless one of that id exists (then None): never replaces, even when two race."""
        cur = await self._write(
            "INSERT INTO dags (dag_id, config, source, version, updated_at) VALUES (?, ?, ?, 1, ?) "
            "ON CONFLICT (dag_id) DO NOTHING",
            (dag_id, json.dumps(config), source, time.time()),
        )
        return await self.get_dag(dag_id) if cur.rowcount else None

    async def get_dag(self, dag_id: str) -> DagRecord:
        """A known DAG; ``NotFoundError`` if there is none."""
        if not is_dag_id(dag_id):  # e.g. text SQLite could not even take as a key
            raise NotFoundError(f"DAG {dag_id!r} does not exist")
        row = await self._one(
            "SELECT dag_id, config, source, version, updated_at FROM dags WHERE dag_id = ?", (dag_id,)
        )
        if row is None:
            raise NotFoundError(f"DAG {dag_id!r} does not exist")
        return DagRecord.from_row(row)

    async def list_dags(self) -> list[DagRecord]:
        """Every known DAG, by id."""
        rows = await self._all("SELECT dag_id, config, source, version, updated_at FROM dags ORDER BY dag_id")
        return [DagRecord.from_row(r) for r in rows]

    async def delete_dag(self, dag_id: str) -> None:
        """Forget a DAG (its runs stay)."""
        cur = await self._write("DELETE FROM dags WHERE dag_id = ?", (dag_id,))
        if cur.rowcount == 0:
            raise NotFoundError(f"DAG {dag_id!r} does not exist")

    # -- schedules --------------------------------------------------------------------------

    async def add_schedule(
        self,
        dag_id: str,
        kind: str,
        expr: str,
        timezone: str,
        *,
        owner_id: int | None,
        chat_id: int | None,
        next_fire_at: float | None,
        notify: str | None = None,
    ) -> ScheduleRecord:
        """Store a new schedule."""
        cur = await self._write(
            "INSERT INTO schedules (dag_id, kind, expr, timezone, owner_id, chat_id, next_fire_at, created_at, notify) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (dag_id, kind, expr, timezone, owner_id, chat_id, next_fire_at, time.time(), notify),
        )
        assert cur.lastrowid is not None
        return await self.get_schedule(cur.lastrowid)

    async def get_schedule(self, schedule_id: int) -> ScheduleRecord:
        """One schedule; ``NotFoundError`` if there is none."""
        row = await self._one(f"SELECT {_SCHEDULE_COLUMNS} FROM schedules WHERE schedule_id = ?", (schedule_id,))
        if row is None:
            raise NotFoundError(f"schedule {schedule_id} does not exist")
        return _schedule(row)

    async def list_schedules(self, *, owner_id: int | None = None) -> list[ScheduleRecord]:
        """Schedules (of one owner, if given), by id."""
        query = f"SELECT {_SCHEDULE_COLUMNS} FROM schedules"
        args: tuple[Any, ...] = ()
        if owner_id is not None:
            query, args = query + " WHERE owner_id = ?", (owner_id,)
        rows = await self._all(query + " ORDER BY schedule_id", args)
        return [_schedule(r) for r in rows]

    async def update_schedule(self, schedule_id: int, **fields: Any) -> ScheduleRecord:
        """Change some columns of a schedule (paused, next_fire_at, last_fire_at, last_run_id, notify)."""
        allowed = {"paused", "next_fire_at", "last_fire_at", "last_run_id", "notify"}
        if not fields or not set(fields) <= allowed:
            raise ValueError(f"can only update {sorted(allowed)}")
        sets = ", ".join(f"{name} = ?" for name in fields)
        cur = await self._write(f"UPDATE schedules SET {sets} WHERE schedule_id = ?", (*fields.values(), schedule_id))
        if cur.rowcount == 0:
            raise NotFoundError(f"schedule {schedule_id} does not exist")
        return await self.get_schedule(schedule_id)

    async def delete_schedule(self, schedule_id: int) -> None:
        """Remove a schedule."""
        cur = await self._write("DELETE FROM schedules WHERE schedule_id = ?", (schedule_id,))
        if cur.rowcount == 0:
            raise NotFoundError(f"schedule {schedule_id} does not exist")

    # -- status messages --------------------------------------------------------------------

    async def set_status_message(self, run_id: int, chat_id: int, message_id: int) -> None:
        """Remember the bot's live status message of a run (a later one replaces it)."""
        await self._write(
            "INSERT INTO status_messages (run_id, chat_id, message_id) VALUES (?, ?, ?) "
            "ON CONFLICT (run_id) DO UPDATE SET chat_id = excluded.chat_id, message_id = excluded.message_id",
            (run_id, chat_id, message_id),
        )

    async def get_status_message(self, run_id: int) -> tuple[int, int] | None:
        """(chat id, message id) of a run's live status message, if the bot posted one."""
        row = await self._one("SELECT chat_id, message_id FROM status_messages WHERE run_id = ?", (run_id,))
        return (row[0], row[1]) if row else None

    # -- bot users --------------------------------------------------------------------------

    async def upsert_user(self, user_id: int, username: str | None, chat_id: int, first_name: str | None) -> None:
        """Remember (or refresh) a Telegram user; usernames are kept lower-cased without '@'."""
        name = username.lstrip("@").lower() if username else None
        await self._write(
            "INSERT INTO users (user_id, username, chat_id, first_name, updated_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (user_id) DO UPDATE SET username = excluded.username, chat_id = excluded.chat_id, "
            "first_name = excluded.first_name, updated_at = excluded.updated_at",
            (user_id, name, chat_id, first_name, time.time()),
        )

    async def find_user(self, username: str) -> UserRecord | None:
        """The user with this @username (case-insensitive), if they have started the bot."""
        row = await self._one(
            "SELECT user_id, username, chat_id, first_name, updated_at FROM users WHERE username = ? "
            "ORDER BY updated_at DESC LIMIT 1",
            (username.lstrip("@").lower(),),
        )
        return UserRecord(*row) if row else None

    async def get_user(self, user_id: int) -> UserRecord | None:
        """A user by id, if known."""
        row = await self._one(
            "SELECT user_id, username, chat_id, first_name, updated_at FROM users WHERE user_id = ?",
            (user_id,),
        )
        return UserRecord(*row) if row else None


def _journal_tasks(db: sqlite3.Connection, rows: list[tuple[int, Entry]], outputs: list[tuple[str, int, str]]) -> None:
    """A batch of task transitions: the journal (a row per run) and the outputs of its successes."""
    entries: dict[int, list[Entry]] = {}
    for run_id, entry in rows:
        entries.setdefault(run_id, []).append(entry)
    db.executemany(_JOURNAL, [(run_id, dump_json(items).decode()) for run_id, items in entries.items()])
    if outputs:
        db.executemany(_SET_OUTPUT, outputs)


def _watermark(db: sqlite3.Connection) -> tuple[int, int]:
    applied, last = db.execute(_WATERMARK).fetchone()
    return applied, last


def _apply_chunk(db: sqlite3.Connection, *, last: int) -> int:
    """Apply up to _APPLY_ROWS journal rows that task rows do not show yet, towards ``last``: the
    watermark after, or ``last`` if there was none (applied by another process, or deleted by hand,
    meanwhile), so that applying ends."""
    after = _in_transaction(db, _apply_journal)
    return last if after is None else after


def _apply_left_over(db: sqlite3.Connection) -> tuple[int, bool]:
    """At open: apply what a process stopped before it applied its changes left.

    Returns the transactions committed, and whether it is all applied.
    """
    committed = 0
    try:
        applied, last = _watermark(db)
        while applied < last:
            applied = _apply_chunk(db, last=last)
            committed += 1
    except Exception as exc:  # e.g. another process holds the lock: the journal keeps it all meanwhile
        log.warning("task rows not brought up to the journal at start (%s); reads of them try again", exc)
        return committed, False
    if committed:
        log.info("task rows brought up to the journal a stopped process left")
    return committed, True


def _apply_journal(db: sqlite3.Connection) -> int | None:
    """Up to _APPLY_ROWS journal rows past ``projection.applied`` into task rows (each task's latest
    entry): the watermark after, or None if there were none."""
    (applied,) = db.execute("SELECT applied FROM projection").fetchone()
    journal = db.execute(
        "SELECT id, run_id, entries FROM journal WHERE id > ? ORDER BY id LIMIT ?", (applied, _APPLY_ROWS)
    )
    latest: dict[tuple[int, str], list[Any]] = {}
    last, count = None, 0
    for last, run_id, text in journal:
        entries = _entries(last, text)
        for entry in entries:
            # Entries without every field are a run's own, or an earlier version's (which updated task
            # rows itself); later versions may add fields after these.
            if isinstance(entry, list) and len(entry) >= _ENTRY_LENGTH and isinstance(entry[0], str):
                latest[run_id, entry[0]] = entry
        count += len(entries)
        if count >= _APPLY_ENTRIES:
            break
    journal.close()
    runs = list({run for run, _ in latest})
    # Only runs that still exist: a row for a run deleted meanwhile (by hand) would fail the whole batch.
    query = f"SELECT run_id FROM runs WHERE run_id IN ({','.join('?' * len(runs))})"
    kept = {row[0] for row in db.execute(query, runs)}
    rows = [row for (run, task), entry in latest.items() if run in kept and (row := _task_row(run, task, entry))]
    if len(rows) < len(latest):
        log.warning(
            "%d journalled change(s) of tasks not applied: their runs are gone, or they are malformed",
            len(latest) - len(rows),
        )
    _insert_many(db, _UPSERT_TASKS, _ROW_PLACEHOLDERS, rows)
    if last is None:
        return None
    db.execute("UPDATE projection SET applied = ?", (last,))
    return last


_TASK_STATES = frozenset(TaskState)
_OPTIONAL_TEXT = (str, type(None))


def _task_row(run_id: int, task_id: str, entry: list[Any]) -> tuple[Any, ...] | None:
    """A task row from its latest journal entry, or None if the entry is malformed (written by hand)."""
    state, attempt, at, error, failures, started_at, ended_at, output_file = entry[1:_ENTRY_LENGTH]
    well_formed = (
        isinstance(state, str)
        and state in _TASK_STATES
        and _is_int64(attempt)
        and _is_int64(failures)
        and _is_time(at)
        and (started_at is None or _is_time(started_at))
        and (ended_at is None or _is_time(ended_at))
        and isinstance(error, _OPTIONAL_TEXT)
        and isinstance(output_file, _OPTIONAL_TEXT)
    )
    if not well_formed:
        return None
    return (run_id, task_id, state, attempt, failures, started_at, ended_at, error, output_file, at)


def _is_int64(value: Any) -> bool:
    # SQLite's integers: a larger one (JSON has no limit) would fail to bind, and every apply with it.
    return type(value) is int and -(2**63) <= value < 2**63


def _is_time(value: Any) -> bool:
    return type(value) is float or _is_int64(value)


def _entries(journal_id: int, text: str) -> list[Any]:
    """A journal row's entries; none (and an error logged) if it is not readable, so it blocks nothing."""
    try:
        entries = load_own_json(text)
    except ValueError:
        entries = None
    if not isinstance(entries, list):
        log.error("journal row %d is not a JSON array of changes: task rows skip it", journal_id)
        return []
    return entries


def _journal_run(db: sqlite3.Connection, run_id: int, state: RunState, at: float, error: str | None) -> None:
    """A change of the run itself into the journal; task rows need nothing from it."""
    journal_id = db.execute(_JOURNAL, (run_id, _run_entry(state, at, error))).lastrowid
    # If task rows show every row before it, they show this one too: readers then find nothing to apply.
    db.execute("UPDATE projection SET applied = ?1 WHERE applied = ?1 - 1", (journal_id,))


async def _wait_out(future: asyncio.Future[Any]) -> bool:
    """Wait for ``future`` to end even if this task is cancelled meanwhile: whether it was."""
    cancelled = False
    while not future.done():
        try:
            await asyncio.wait([future])  # which, unlike awaiting it, never cancels it
        except asyncio.CancelledError:
            cancelled = True  # not uncancelled: the task is still being cancelled, and will be
    return cancelled


async def _logging_errors(step: Awaitable[Any], what: str) -> None:
    """Await a background step; log what it raises instead of ending the loop that runs it."""
    try:
        await step
    except sqlite3.Error as exc:
        log.warning("%s: %s", what, exc)
    except Exception:
        log.exception(what)


def _set_up(db: sqlite3.Connection) -> None:
    """The pragmas and the schema; retried while another process sets up the same new file.

    Two connections switching a new file to WAL at once: one fails at once, busy_timeout or not,
    and the switch is done a moment later.
    """
    deadline = time.monotonic() + _SET_UP_S
    while True:
        try:
            for pragma in _PRAGMAS:
                db.execute(f"PRAGMA {pragma}")
            db.executescript(SCHEMA)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _migrate(db: sqlite3.Connection) -> None:
    """Run the migrations a database needs, each in one transaction (all of it, or none of it).

    Each is checked again once the write lock is held: another process opening the same database
    (``main.py run`` beside the service) may have just done it.
    """
    for needed, statements in _MIGRATIONS:
        if db.execute(needed).fetchone() is None:
            continue
        if _in_transaction(db, functools.partial(_migration_step, needed=needed, statements=statements)):
            log.info("database %s updated to this version's layout", db.execute("PRAGMA database_list").fetchone()[2])
    # Earlier versions updated task rows with every commit: all they journalled is applied already.
    # Looked at first, as the row is there at every later start: a read needs no lock.
    if db.execute("SELECT 1 FROM projection").fetchone() is None:
        db.execute("INSERT OR IGNORE INTO projection (id, applied) SELECT 1, COALESCE(MAX(id), 0) FROM journal")


def _migration_step(db: sqlite3.Connection, *, needed: str, statements: tuple[str, ...]) -> bool:
    """One migration, if it is still needed: whether it ran."""
    if db.execute(needed).fetchone() is None:
        return False  # done meanwhile by another process
    for statement in statements:
        db.execute(statement)
    return True


def _checkpoint(db: sqlite3.Connection) -> tuple[int, int]:
    """``PRAGMA wal_checkpoint(PASSIVE)``: (WAL pages, pages checkpointed)."""
    _, wal_pages, checkpointed = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return wal_pages, checkpointed


def _in_transaction(db: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    db.execute("BEGIN IMMEDIATE")
    try:
        result = work(db)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return result


def _run_entry(state: RunState, at: float, error: str | None) -> str:
    """A journal row's entries for a change of the run itself."""
    return dump_json([[None, state, None, at, error]]).decode()


def _insert_many(db: sqlite3.Connection, sql: str, placeholders: str, rows: list[tuple[Any, ...]]) -> None:
    """``rows`` through multi-row statements: one call into SQLite per chunk, not per row."""
    for i in range(0, len(rows), _ROWS_PER_STATEMENT):
        chunk = rows[i : i + _ROWS_PER_STATEMENT]
        db.execute(sql.format(values=",".join([placeholders] * len(chunk))), [value for row in chunk for value in row])


def _run(row: Any, counts: dict[str, int]) -> RunRecord:
    return RunRecord(
        row[0],
        row[1],
        RunState(row[2]),
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        row[8],
        row[9],
        row[10],
        counts,
    )


def _task(row: Any) -> TaskRecord:
    return TaskRecord(row[0], TaskState(row[1]), row[2], row[3], row[4], row[5], row[6], row[7])


def _schedule(row: Any) -> ScheduleRecord:
    return ScheduleRecord(
        row[0], row[1], row[2], row[3], row[4], row[5], row[6], bool(row[7]), row[8], row[9], row[10], row[11], row[12]
    )
