"""All SQL lives here: DAGs, runs, task instances, the journal, schedules and bot users.

One process owns a database (``OwnerLock``), and one connection writes it: each write is one
synchronous transaction, with no await inside, so nothing interleaves with it or cancels it half
way. Small ones run in the event loop when the writer thread is idle (a hop to a thread costs more
than the commit itself, and a chain of tasks waits for a commit at every step); large ones, and any
sent while the writer thread has work, are queued to that thread, which runs them in order.
Checkpoints run in the writer thread too. Reads go through aiosqlite's connection (a thread of its
own) and never write.

Task transitions are buffered and committed in groups by the flusher: one transaction appends the
group to the journal (the history) and updates each task's row in ``task_instances`` (its state
now), so any reader sees every committed state. ``when_durable(callback)`` runs the callback once
everything recorded before it is committed: the engine queues downstream tasks that way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from orchestrator.errors import NotFoundError
from orchestrator.jsontext import dump_json, load_own_json
from orchestrator.models import is_dag_id
from orchestrator.ownership import OwnerLock
from orchestrator.records import (
    DagRecord,
    EventRecord,
    RunRecord,
    ScheduleRecord,
    TaskFields,
    TaskRecord,
    UserRecord,
)
from orchestrator.schema import migrate
from orchestrator.states import RUN_ACTIVE, RUN_TERMINAL, RunState, TaskState

log = logging.getLogger(__name__)
T = TypeVar("T")

# Transitions nobody waits on (a task queued or started) are committed this soon; a success that
# downstream tasks wait on is committed at once, with whatever else is buffered.
FLUSH_INTERVAL_S = 0.005
FLUSH_RETRY_S = 1.0  # after a failed commit (a full disk...): the batch stays buffered meanwhile
INLINE_ROWS = 1000  # a write of more rows than this goes to the writer thread, off the event loop
BUSY_WAIT_S = 5.0  # how long the writer thread waits for another program's write lock
CHECKPOINT_INTERVAL_S = 1.0  # at most this long between checkpoints while commits go on

_PRAGMAS = (
    "journal_mode=WAL",
    "synchronous=NORMAL",
    "foreign_keys=ON",
    # SQLite's own checkpoints would run inside whichever commit crosses 1,000 pages, maybe in the
    # event loop: the writer thread runs them instead (``_checkpoint_if_due``).
    "wal_autocheckpoint=0",
    # A WAL that a burst grew is cut back to this once it starts over.
    f"journal_size_limit={64 * 1024 * 1024}",
)
_JOURNAL = "INSERT INTO journal (run_id, entries) VALUES (?, ?)"
# Numbered in the order of an ``Entry`` and then the run id, so an entry is bound as it is.
_UPDATE_TASK = (
    "UPDATE task_instances SET state = ?2, attempts = ?3, updated_at = ?4, error = ?5, failures = ?6, "
    "started_at = ?7, ended_at = ?8, output_file = ?9 WHERE run_id = ?10 AND task_id = ?1"
)
_SET_OUTPUT = "UPDATE task_instances SET output = ? WHERE run_id = ? AND task_id = ?"
_RUN_COLUMNS = (
    "run_id, dag_id, state, trigger, owner, notify_chat, created_at, started_at, ended_at, error, archive, "
    "params, logical_date"
)
_TASK_COLUMNS = "task_id, state, attempts, failures, started_at, ended_at, error, output_file"
_DAG_COLUMNS = "dag_id, config, source, version, updated_at"
_USER_COLUMNS = "user_id, username, chat_id, first_name, updated_at"
_SCHEDULE_COLUMNS = (
    "schedule_id, dag_id, kind, expr, timezone, owner_id, chat_id, paused, next_fire_at, "
    "last_fire_at, last_run_id, created_at, notify, params"
)

# One recorded transition: task_id, state, attempt, at, error (what the journal keeps), then
# failures, started_at, ended_at, output_file (the rest of the task's row).
Entry = tuple[str, str, int, float, str | None, int, float | None, float | None, str | None]


class Store:
    """The SQLite store. ``async with Store(path) as store``; ``command`` says who holds it."""

    def __init__(self, path: Path, *, command: str = "service") -> None:
        self.path = path
        self.owner = OwnerLock(path)
        self._command = command
        self._writer: ThreadPoolExecutor | None = None
        self._wdb: sqlite3.Connection | None = None  # by the writer thread, or the loop while it is idle
        self._jobs = 0  # writer-thread jobs sent and not yet finished, counted in the event loop
        self._dirty = False  # committed since the last checkpoint
        self._checkpointed_at = 0.0
        self._rdb: aiosqlite.Connection | None = None
        self._rows: list[tuple[int, Entry]] = []  # (run_id, entry), in the order they happened
        self._outputs: list[tuple[str, int, str]] = []  # (output, run_id, task_id) of successes
        self._callbacks: dict[Callable[[list[Any]], None], list[Any]] = {}
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []  # flush() calls: (seq, future)
        self._seq = 0  # transitions recorded so far
        self._committed = 0  # ... and committed
        self._wake = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._closing = False
        self._flusher: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Store:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Take the database's lock, bring its layout up to date and start the flusher."""
        self.owner.acquire(self._command)
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="taskflow-store-writer")
        try:
            self._wdb = await self._in_writer(_connect, self.path)
            self._rdb = await aiosqlite.connect(self.path, isolation_level=None)
            await self._rdb.execute("PRAGMA query_only = ON")
        except BaseException:
            await self._close_connections()
            raise
        self._closing = False
        self._flusher = asyncio.create_task(self._flush_loop(), name="store-flusher")

    async def close(self) -> None:
        """Commit what is buffered, stop the flusher, close the connections and let go of the lock."""
        if self._flusher is None:
            return
        self._closing = True
        self._wake.set()
        await self._flusher
        self._flusher = None
        await self._close_connections()

    async def _close_connections(self) -> None:
        try:
            try:
                if self._rdb is not None:
                    await self._rdb.close()
            finally:
                if self._wdb is not None:
                    await self._in_writer(self._wdb.close)
        finally:
            self._rdb = self._wdb = None
            if self._writer is not None:
                self._writer.shutdown(wait=False)  # its queue is empty: the thread ends now
                self._writer = None
            self.owner.release()

    # -- the writer thread ------------------------------------------------------------------

    async def _in_writer(self, work: Callable[..., T], *args: Any) -> T:
        return await asyncio.wrap_future(self._submit(work, *args))

    def _submit(self, work: Callable[..., T], *args: Any) -> Future[T]:
        """Queue ``work(*args)`` to the writer thread."""
        if self._writer is None:
            raise RuntimeError("store is not open")
        loop = asyncio.get_running_loop()
        job = self._writer.submit(work, *args)
        self._jobs += 1
        # Counted down once the thread is done with it, not when a caller stops waiting.
        job.add_done_callback(lambda _: loop.call_soon_threadsafe(self._job_done))
        return job

    def _job_done(self) -> None:
        self._jobs -= 1

    async def _write(self, work: Callable[[sqlite3.Connection], T], *, rows: int = 1) -> T:
        """``work(connection)`` as one transaction: in the loop if small and the writer thread is idle."""
        result: T | None = None
        inline = rows <= INLINE_ROWS and self._jobs == 0 and self._wdb is not None
        try:
            if inline:
                result = _transaction(self._wdb, work, wait=0.0)
        except _Busy:  # another program holds the write lock: nothing ran; the thread waits for it
            inline = False
        if not inline:
            result = await self._in_writer(_transaction, self._wdb, work, BUSY_WAIT_S)
        self._dirty = True
        self._checkpoint_if_due()
        return result

    def _checkpoint_if_due(self) -> None:
        """Queue a checkpoint to the writer thread, at most every CHECKPOINT_INTERVAL_S while commits go on."""
        now = time.monotonic()
        if self._dirty and now - self._checkpointed_at >= CHECKPOINT_INTERVAL_S and self._writer is not None:
            self._dirty, self._checkpointed_at = False, now
            self._submit(_checkpoint, self._wdb)

    async def _execute(self, sql: str, args: Iterable[Any] = ()) -> tuple[int, int | None]:
        """One statement as a transaction: (rows changed, last row id)."""

        def run(db: sqlite3.Connection) -> tuple[int, int | None]:
            cur = db.execute(sql, tuple(args))
            return cur.rowcount, cur.lastrowid

        return await self._write(run)

    # -- buffered task transitions ----------------------------------------------------------

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

        The items given with one callback before one commit come in one call.
        """
        items = self._callbacks.get(callback)
        if items is None:
            self._callbacks[callback] = [item]
            self._wake.set()
        else:
            items.append(item)

    async def flush(self) -> None:
        """Return once everything recorded before this call is committed.

        If a commit fails, this raises its error; what it held stays buffered and a later commit
        (the flusher tries again) writes it.
        """
        if self._committed >= self._seq:
            return
        if self._flusher is None or self._flusher.done():
            raise RuntimeError("store is not open: task changes recorded after it closed are not committed")
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((self._seq, waiter))
        self._wake.set()
        await waiter

    async def _flush_loop(self) -> None:
        """Commit buffered transitions, a group at a time, until the store closes."""
        while not self._closing or self._rows or self._callbacks:
            await self._wake.wait()
            # One turn of the loop first: tasks woken together record into this group.
            await asyncio.sleep(0)
            self._wake.clear()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            try:
                await self._commit_group()
            except Exception as exc:
                if self._closing:
                    log.error("%d task change(s) not committed at close (%s): they run again", len(self._rows), exc)
                    self._settle(self._seq, exc)
                    return
                log.error("could not commit task states (%s); trying again", exc)
                await asyncio.sleep(FLUSH_RETRY_S)
                self._wake.set()

    async def _commit_group(self) -> None:
        rows, outputs, callbacks, seq = self._rows, self._outputs, self._callbacks, self._seq
        self._rows, self._outputs, self._callbacks = [], [], {}
        if rows:
            try:
                await self._write(lambda db: _commit_tasks(db, rows, outputs), rows=len(rows) + len(outputs))
            except Exception as exc:  # kept for the next try: nothing is dropped
                self._rows, self._outputs = rows + self._rows, outputs + self._outputs
                for callback, later in self._callbacks.items():
                    callbacks.setdefault(callback, []).extend(later)
                self._callbacks = callbacks
                self._settle(seq, exc)
                raise
        self._committed = seq
        for callback, items in callbacks.items():
            try:
                callback(items)
            except Exception:
                log.exception("a callback of committed task changes failed")
        self._settle(seq, None)

    def _settle(self, seq: int, error: Exception | None) -> None:
        """Answer the flush() calls this commit (or its failure) covers."""
        waiting = []
        for target, waiter in self._waiters:
            if target > seq:
                waiting.append((target, waiter))
            elif waiter.done():
                continue
            elif error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)
        self._waiters = waiting

    # -- runs -------------------------------------------------------------------------------

    async def create_run(
        self,
        dag_id: str,
        config_json: str | Callable[[int], str],
        task_ids: Iterable[str],
        *,
        trigger: str,
        owner: str | None = None,
        notify_chat: int | None = None,
        params: dict[str, Any] | None = None,
        logical_date: float | None = None,
        created_at: float | None = None,
    ) -> int:
        """Insert a queued run and its pending tasks; returns the new run id.

        ``config_json`` may be a function of the new run id (a config naming its own run); if it
        raises, nothing is inserted.
        """
        now = time.time() if created_at is None else created_at
        ids = list(task_ids)
        ids_json = dump_json(ids).decode()
        params_json = None if params is None else json.dumps(params, ensure_ascii=False)  # any int: not orjson

        def insert(db: sqlite3.Connection) -> int:
            cur = db.execute(
                "INSERT INTO runs (dag_id, state, trigger, owner, notify_chat, created_at, params, logical_date) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (dag_id, RunState.QUEUED.value, trigger, owner, notify_chat, now, params_json, logical_date),
            )
            run_id = cur.lastrowid
            assert run_id is not None
            text = config_json if isinstance(config_json, str) else config_json(run_id)
            db.execute("INSERT INTO run_configs (run_id, config) VALUES (?, ?)", (run_id, text))
            db.execute(  # one statement for every task: SQLite walks the list, not Python
                "INSERT INTO task_instances (run_id, task_id, state, updated_at, position) "
                "SELECT ?, value, ?, ?, key FROM json_each(?)",
                (run_id, TaskState.PENDING.value, now, ids_json),
            )
            db.execute(_JOURNAL, (run_id, _run_entry(RunState.QUEUED, now, None)))
            return run_id

        return await self._write(insert, rows=len(ids))

    async def set_run_state(
        self,
        run_id: int,
        state: RunState,
        *,
        error: str | None = None,
        archive: str | None = None,
        at: float | None = None,
    ) -> RunRecord:
        """Store a run transition (and journal it), after the task transitions recorded before it.

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
            db.execute(_JOURNAL, (run_id, _run_entry(state, now, error)))
            return row

        return _run(await self._write(update), {})

    async def get_run(self, run_id: int) -> RunRecord:
        """One run with its task counts by state; ``NotFoundError`` if there is none."""
        row = await self._one(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (_row_id(run_id),))
        if row is None:
            raise NotFoundError(f"run {run_id} does not exist")
        counts, spans = await self._counts([run_id]), await self._spans([run_id])
        return _run(row, counts.get(run_id, {}), spans.get(run_id))

    async def list_runs(
        self,
        *,
        dag_id: str | None = None,
        states: Iterable[RunState] | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[RunRecord]:
        """Runs, newest first, optionally of one DAG and in some states."""
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
        ids = [r[0] for r in rows]
        counts, spans = await self._counts(ids), await self._spans(ids)
        return [_run(r, counts.get(r[0], {}), spans.get(r[0])) for r in rows]

    async def last_runs(self) -> dict[str, RunRecord]:
        """Each DAG's newest run, by DAG id (one query, whatever the number of DAGs)."""
        rows = await self._all(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id IN (SELECT MAX(run_id) FROM runs GROUP BY dag_id)"
        )
        ids = [r[0] for r in rows]
        counts, spans = await self._counts(ids), await self._spans(ids)
        return {r[1]: _run(r, counts.get(r[0], {}), spans.get(r[0])) for r in rows}

    async def _spans(self, run_ids: list[int]) -> dict[int, tuple[float, float | None]]:
        """Each run's seconds spent running in ended stretches, and when the one going on began.

        From the run's own journal rows (one entry each, ``[null, state, ...]``), not its tasks'.
        """
        if not run_ids:
            return {}
        rows = await self._all(
            f"SELECT id, run_id, entries FROM journal WHERE run_id IN ({','.join('?' * len(run_ids))}) "
            "AND entries LIKE '[[null,%' ORDER BY id",
            run_ids,
        )
        spans: dict[int, tuple[float, float | None]] = {}
        for journal_id, run_id, text in rows:
            for entry in _entries(journal_id, text):
                if not (isinstance(entry, list) and len(entry) >= 4 and isinstance(entry[3], int | float)):
                    continue
                span = spans.get(run_id)
                if span is None and entry[1] != RunState.RUNNING:
                    continue  # not started yet
                ran, since = span or (0.0, None)
                if since is not None:
                    ran, since = ran + entry[3] - since, None
                spans[run_id] = (ran, entry[3] if entry[1] == RunState.RUNNING else since)
        return spans

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

    async def ended_runs(self) -> list[tuple[int, str, RunState, float]]:
        """Every ended run as (run_id, dag_id, state, ended_at), by id: what retention chooses from."""
        ended = [s.value for s in RUN_TERMINAL]
        rows = await self._all(
            "SELECT run_id, dag_id, state, COALESCE(ended_at, created_at) FROM runs "
            f"WHERE state IN ({','.join('?' * len(ended))}) ORDER BY run_id",
            ended,
        )
        return [(r[0], r[1], RunState(r[2]), r[3]) for r in rows]

    async def delete_runs(self, run_ids: list[int]) -> list[int]:
        """Delete ended runs with their config, tasks and journal, in one transaction; the ids deleted.

        A run that is going again (a re-run started since it was chosen) is left as it is.
        """
        ended = [s.value for s in RUN_TERMINAL]

        def delete(db: sqlite3.Connection) -> list[int]:
            # run_configs and task_instances follow by ON DELETE CASCADE; the journal has no key to follow.
            rows = db.execute(
                "DELETE FROM runs WHERE run_id IN (SELECT value FROM json_each(?)) "
                f"AND state IN ({','.join('?' * len(ended))}) RETURNING run_id",
                (dump_json(run_ids).decode(), *ended),
            ).fetchall()
            deleted = sorted(r[0] for r in rows)
            db.execute(
                "DELETE FROM journal WHERE run_id IN (SELECT value FROM json_each(?))", (dump_json(deleted).decode(),)
            )
            return deleted

        if not run_ids:
            return []
        # Always the writer thread: a run's task and journal rows are not counted here, and it is never urgent.
        return await self._write(delete, rows=INLINE_ROWS + len(run_ids))

    async def run_config(self, run_id: int) -> dict[str, Any]:
        """The config a run was started with."""
        return json.loads(await self.run_config_json(run_id))  # type: ignore[no-any-return]

    async def run_config_json(self, run_id: int) -> str:
        """The config a run was started with, as the JSON text stored."""
        row = await self._one("SELECT config FROM run_configs WHERE run_id = ?", (_row_id(run_id),))
        if row is None:
            raise NotFoundError(f"run {run_id} does not exist")
        return str(row[0])

    async def get_tasks(self, run_id: int) -> list[TaskRecord]:
        """The tasks of a run, in the order of its config."""
        rows = await self._all(
            f"SELECT {_TASK_COLUMNS} FROM task_instances WHERE run_id = ? ORDER BY position", (_row_id(run_id),)
        )
        return [TaskRecord(r[0], TaskState(r[1]), *r[2:]) for r in rows]

    async def get_outputs(self, run_id: int) -> dict[str, Any]:
        """The stored outputs of a run's succeeded tasks (to resume or re-run it)."""
        rows = await self._all(
            "SELECT task_id, output FROM task_instances WHERE run_id = ? AND state = ?",
            (run_id, TaskState.SUCCESS.value),
        )
        return {task_id: (None if out is None else json.loads(out)) for task_id, out in rows}

    async def get_events(self, run_id: int) -> list[EventRecord]:
        """The journal of a run's state changes, oldest first."""
        rows = await self._all("SELECT id, entries FROM journal WHERE run_id = ? ORDER BY id", (_row_id(run_id),))
        return [
            EventRecord(run_id, *entry[:5])
            for journal_id, text in rows
            for entry in _entries(journal_id, text)
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
        await self._execute(
            "INSERT INTO dags (dag_id, config, source, version, updated_at) VALUES (?, ?, ?, 1, ?) "
            "ON CONFLICT (dag_id) DO UPDATE SET config = excluded.config, source = excluded.source, "
            "version = dags.version + 1, updated_at = excluded.updated_at",
            (dag_id, json.dumps(config), source, time.time()),
        )
        return await self.get_dag(dag_id)

    async def add_dag(self, dag_id: str, config: dict[str, Any], *, source: str) -> DagRecord | None:
        """Add a DAG unless one of that id exists (then None): never replaces, even when two race."""
        changed, _ = await self._execute(
            "INSERT INTO dags (dag_id, config, source, version, updated_at) VALUES (?, ?, ?, 1, ?) "
            "ON CONFLICT (dag_id) DO NOTHING",
            (dag_id, json.dumps(config), source, time.time()),
        )
        return await self.get_dag(dag_id) if changed else None

    async def get_dag(self, dag_id: str) -> DagRecord:
        """A known DAG; ``NotFoundError`` if there is none."""
        if not is_dag_id(dag_id):  # e.g. text SQLite could not even take as a key
            raise NotFoundError(f"DAG {dag_id!r} does not exist")
        row = await self._one(f"SELECT {_DAG_COLUMNS} FROM dags WHERE dag_id = ?", (dag_id,))
        if row is None:
            raise NotFoundError(f"DAG {dag_id!r} does not exist")
        return DagRecord.from_row(row)

    async def list_dags(self) -> list[DagRecord]:
        """Every known DAG, by id."""
        rows = await self._all(f"SELECT {_DAG_COLUMNS} FROM dags ORDER BY dag_id")
        return [DagRecord.from_row(r) for r in rows]

    async def delete_dag(self, dag_id: str) -> None:
        """Forget a DAG (its runs stay)."""
        changed, _ = await self._execute("DELETE FROM dags WHERE dag_id = ?", (dag_id,))
        if changed == 0:
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
        params: dict[str, Any] | None = None,
    ) -> ScheduleRecord:
        """Store a new schedule (``params``: given to each run it starts)."""
        params_json = json.dumps(params, ensure_ascii=False) if params else None
        _, schedule_id = await self._execute(
            "INSERT INTO schedules (dag_id, kind, expr, timezone, owner_id, chat_id, next_fire_at, created_at, notify, "
            "params) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (dag_id, kind, expr, timezone, owner_id, chat_id, next_fire_at, time.time(), notify, params_json),
        )
        assert schedule_id is not None
        return await self.get_schedule(schedule_id)

    async def get_schedule(self, schedule_id: int) -> ScheduleRecord:
        """One schedule; ``NotFoundError`` if there is none."""
        row = await self._one(
            f"SELECT {_SCHEDULE_COLUMNS} FROM schedules WHERE schedule_id = ?", (_row_id(schedule_id),)
        )
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
        changed, _ = await self._execute(
            f"UPDATE schedules SET {sets} WHERE schedule_id = ?", (*fields.values(), _row_id(schedule_id))
        )
        if changed == 0:
            raise NotFoundError(f"schedule {schedule_id} does not exist")
        return await self.get_schedule(schedule_id)

    async def delete_schedule(self, schedule_id: int) -> None:
        """Remove a schedule."""
        changed, _ = await self._execute("DELETE FROM schedules WHERE schedule_id = ?", (_row_id(schedule_id),))
        if changed == 0:
            raise NotFoundError(f"schedule {schedule_id} does not exist")

    # -- the bot's status messages ------------------------------------------------------------

    async def set_status_message(self, run_id: int, chat_id: int, message_id: int) -> None:
        """Remember the bot's live status message of a run (a later one replaces it)."""
        await self._execute(
            "INSERT INTO status_messages (run_id, chat_id, message_id) VALUES (?, ?, ?) "
            "ON CONFLICT (run_id) DO UPDATE SET chat_id = excluded.chat_id, message_id = excluded.message_id",
            (run_id, chat_id, message_id),
        )

    async def get_status_message(self, run_id: int) -> tuple[int, int] | None:
        """(chat id, message id) of a run's live status message, if the bot posted one."""
        row = await self._one("SELECT chat_id, message_id FROM status_messages WHERE run_id = ?", (_row_id(run_id),))
        return (row[0], row[1]) if row else None

    # -- bot users --------------------------------------------------------------------------

    async def upsert_user(self, user_id: int, username: str | None, chat_id: int, first_name: str | None) -> None:
        """Remember (or refresh) a Telegram user; usernames are kept lower-cased without '@'."""
        name = username.lstrip("@").lower() if username else None
        await self._execute(
            "INSERT INTO users (user_id, username, chat_id, first_name, updated_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (user_id) DO UPDATE SET username = excluded.username, chat_id = excluded.chat_id, "
            "first_name = excluded.first_name, updated_at = excluded.updated_at",
            (user_id, name, chat_id, first_name, time.time()),
        )

    async def find_user(self, username: str) -> UserRecord | None:
        """The user with this @username (case-insensitive), if they have started the bot."""
        row = await self._one(
            f"SELECT {_USER_COLUMNS} FROM users WHERE username = ? ORDER BY updated_at DESC LIMIT 1",
            (username.lstrip("@").lower(),),
        )
        return UserRecord(*row) if row else None

    async def get_user(self, user_id: int) -> UserRecord | None:
        """A user by id, if known."""
        row = await self._one(f"SELECT {_USER_COLUMNS} FROM users WHERE user_id = ?", (user_id,))
        return UserRecord(*row) if row else None

    # -- reads ------------------------------------------------------------------------------

    async def _one(self, sql: str, args: Iterable[Any] = ()) -> Any:
        """The first row of a query, or None."""
        return next(iter(await self._all(sql, args)), None)

    async def _all(self, sql: str, args: Iterable[Any] = ()) -> list[Any]:
        """Every row of a query."""
        if self._rdb is None:
            raise RuntimeError("store is not open")
        return list(await self._rdb.execute_fetchall(sql, tuple(args)))


def _connect(path: Path) -> sqlite3.Connection:
    """The write connection, in the writer thread: pragmas, then the migrations it needs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)  # the loop uses it too
    try:
        db.execute(f"PRAGMA busy_timeout = {int(BUSY_WAIT_S * 1000)}")  # opening may wait, in this thread
        for pragma in _PRAGMAS:
            db.execute(f"PRAGMA {pragma}")
        migrate(db)
        # From now on no statement waits for another program's lock (a user's sqlite3 shell, say): in the
        # event loop that would stall everything. ``_begin`` waits instead, in the writer thread.
        db.execute("PRAGMA busy_timeout = 0")
    except BaseException:
        db.close()
        raise
    return db


def _checkpoint(db: sqlite3.Connection | None) -> None:
    """Copy committed pages from the WAL into the database (PASSIVE: it waits for no reader)."""
    try:
        if db is not None:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")
    except sqlite3.Error as exc:  # the WAL keeps everything meanwhile: the next one tries again
        log.warning("could not checkpoint the database: %s", exc)


class _Busy(sqlite3.OperationalError):
    """Another connection holds the write lock."""


def _transaction(db: sqlite3.Connection | None, work: Callable[[sqlite3.Connection], T], wait: float) -> T:
    """``work(db)`` in one transaction, waiting up to ``wait`` seconds for the write lock."""
    if db is None:
        raise RuntimeError("store is not open")
    _begin(db, wait)
    try:
        result = work(db)
    except BaseException:
        if db.in_transaction:  # SQLite rolls back by itself on some errors (a full disk)
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return result


def _begin(db: sqlite3.Connection, wait: float) -> None:
    deadline = time.monotonic() + wait
    while True:
        try:
            db.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() >= deadline:
                raise _Busy(str(exc)) from None
        time.sleep(0.01)


def _commit_tasks(db: sqlite3.Connection, rows: list[tuple[int, Entry]], outputs: list[tuple[str, int, str]]) -> None:
    """A group of task transitions: the journal (a row per run), each task's latest state, the outputs."""
    entries: dict[int, list[tuple[Any, ...]]] = {}
    latest: dict[tuple[int, str], Entry] = {}
    for run_id, entry in rows:
        entries.setdefault(run_id, []).append(entry[:5])
        latest[run_id, entry[0]] = entry
    db.executemany(_JOURNAL, [(run_id, dump_json(items).decode()) for run_id, items in entries.items()])
    db.executemany(_UPDATE_TASK, [(*entry, run_id) for (run_id, _), entry in latest.items()])
    if outputs:
        db.executemany(_SET_OUTPUT, outputs)


def _entries(journal_id: int, text: str) -> list[Any]:
    """A journal row's entries; none (and an error logged) if it is not readable."""
    try:
        entries = load_own_json(text)
    except ValueError:
        entries = None
    if not isinstance(entries, list):
        log.error("journal row %d is not a JSON array of changes: skipped", journal_id)
        return []
    return entries


def _run_entry(state: RunState, at: float, error: str | None) -> str:
    """A journal row's entries for a change of the run itself."""
    return dump_json([[None, state, None, at, error]]).decode()


def _row_id(value: int) -> int:
    """An id as SQLite can take it: one past its range matches no row (rather than failing to bind)."""
    return value if -(2**63) <= value < 2**63 else 0


def _run(row: Any, counts: dict[str, int], span: tuple[float, float | None] | None = None) -> RunRecord:
    params = None if row[11] is None else json.loads(row[11])
    ran, since = span if span is not None else (None, None)
    return RunRecord(row[0], row[1], RunState(row[2]), *row[3:11], counts, params, row[12], ran, since)


def _schedule(row: Any) -> ScheduleRecord:
    params = None if row[13] is None else json.loads(row[13])
    return ScheduleRecord(*row[:7], bool(row[7]), *row[8:13], params)
