"""The SQLite store on a real file: the journal of task transitions and the runs' archives."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from orchestrator import store as store_module
from orchestrator.records import TaskRecord
from orchestrator.states import RunState, TaskState
from orchestrator.store import SCHEMA, Store


async def test_every_transition_is_journalled_and_the_row_keeps_the_last(tmp_path: Path) -> None:
    async with Store(tmp_path / "t.db") as store:
        run_id = await store.create_run("d", '{"dag_name": "d"}', ["a", "b"], trigger="test")
        for state in (TaskState.QUEUED, TaskState.RUNNING, TaskState.SUCCESS):
            store.record_task(
                run_id, TaskRecord("a", state, attempts=1), output='{"n": 1}' if state == "success" else None
            )
        store.record_task(run_id, TaskRecord("b", TaskState.QUEUED))
        await store.flush()  # all five in one batch
        events = [(e.task_id, e.state) for e in await store.get_events(run_id) if e.task_id]
        tasks = {t.task_id: t.state for t in await store.get_tasks(run_id)}
        outputs = await store.get_outputs(run_id)
    assert events == [("a", "queued"), ("a", "running"), ("a", "success"), ("b", "queued")]
    assert tasks == {"a": TaskState.SUCCESS, "b": TaskState.QUEUED}
    assert outputs == {"a": {"n": 1}}


async def test_an_output_survives_a_later_row_of_the_same_batch(tmp_path: Path) -> None:
    async with Store(tmp_path / "t.db") as store:
        run_id = await store.create_run("d", '{"dag_name": "d"}', ["a"], trigger="test")
        store.record_task(run_id, TaskRecord("a", TaskState.SUCCESS, attempts=1), output='"kept"')
        store.record_task(run_id, TaskRecord("a", TaskState.SUCCESS, attempts=1, error="noted"))
        await store.flush()
        assert (await store.get_outputs(run_id)) == {"a": "kept"}


async def test_a_run_going_again_has_no_archive_until_it_ends(tmp_path: Path) -> None:
    async with Store(tmp_path / "t.db") as store:
        run_id = await store.create_run("d", '{"dag_name": "d"}', ["a"], trigger="test")
        await store.set_run_state(run_id, RunState.FAILED, archive="dag/dag_1.zip")
        assert (await store.get_run(run_id)).archive == "dag/dag_1.zip"
        await store.set_run_state(run_id, RunState.QUEUED)  # a re-run: the old ZIP is out of date
        assert (await store.get_run(run_id)).archive is None
        await store.set_run_state(run_id, RunState.SUCCESS, archive="dag/dag_1.zip")
        assert (await store.get_run(run_id)).archive == "dag/dag_1.zip"


async def test_the_journal_reads_one_change_a_row_in_sql(tmp_path: Path) -> None:
    async with Store(tmp_path / "t.db") as store:
        run_id = await store.create_run("d", '{"dag_name": "d"}', ["a"], trigger="test")
        store.record_task(run_id, TaskRecord("a", TaskState.QUEUED))
        store.record_task(run_id, TaskRecord("a", TaskState.RUNNING, attempts=1))
        await store.flush()
        rows = await store.db.execute_fetchall(
            "SELECT task_id, state, attempt FROM events WHERE run_id = ? ORDER BY batch, seq", (run_id,)
        )
    assert [tuple(r) for r in rows] == [(None, "queued", None), ("a", "queued", 0), ("a", "running", 1)]


def _task_rows(path: Path) -> dict[str, tuple[Any, ...]]:
    """Task rows as another process reads them: (state, attempts, failures, error, output) by task id."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT task_id, state, attempts, failures, error, output FROM task_instances")
        return {r[0]: tuple(r[1:]) for r in rows}


async def test_task_rows_lag_the_journal_but_every_reader_sees_them_current(tmp_path: Path) -> None:
    async with Store(tmp_path / "t.db") as store:
        run_id = await store.create_run("d", "{}", ["a", "b"], trigger="test")
        store.record_task(run_id, TaskRecord("a", TaskState.SUCCESS, attempts=2, failures=1), output="[1]")
        store.record_task(run_id, TaskRecord("b", TaskState.UP_FOR_RETRY, attempts=1, failures=1, error="flaky"))
        await store.flush()
        # Committed: the journal has both changes, the output is stored; the rows are not updated yet.
        assert _task_rows(tmp_path / "t.db") == {
            "a": ("pending", 0, 0, None, "[1]"),
            "b": ("pending", 0, 0, None, None),
        }
        assert (await store.get_run(run_id)).counts == {"success": 1, "up_for_retry": 1}
        assert _task_rows(tmp_path / "t.db")["b"] == ("up_for_retry", 1, 1, "flaky", None)
        store.record_task(run_id, TaskRecord("b", TaskState.RUNNING, attempts=2, failures=1))
        tasks = {t.task_id: (t.state, t.attempts, t.failures, t.error) for t in await store.get_tasks(run_id)}
        assert tasks == {"a": ("success", 2, 1, None), "b": ("running", 2, 1, None)}
        assert [r.counts for r in await store.list_runs()] == [{"success": 1, "running": 1}]


async def test_what_a_killed_process_journalled_reaches_task_rows_at_the_next_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Store(tmp_path / "t.db") as store:
        run_id = await store.create_run("d", "{}", ["a"], trigger="test")
        store.record_task(run_id, TaskRecord("a", TaskState.RUNNING, attempts=1))
        store.record_task(run_id, TaskRecord("a", TaskState.SUCCESS, attempts=1), output='"out"')
        await store.flush()
        with monkeypatch.context() as patch:  # closed without applying, as by kill -9
            patch.setattr(Store, "_apply", _nothing)
            await store.close()
    assert _task_rows(tmp_path / "t.db")["a"][0] == "pending"
    async with Store(tmp_path / "t.db"):
        assert _task_rows(tmp_path / "t.db")["a"] == ("success", 1, 0, None, '"out"')  # applied by open itself


async def test_another_process_sees_a_writers_changes_once_its_commits_pause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "CHECKPOINT_INTERVAL_S", 0.05)
    async with Store(tmp_path / "t.db") as writer, Store(tmp_path / "t.db") as reader:
        run_id = await writer.create_run("d", "{}", ["a"], trigger="test")
        writer.record_task(run_id, TaskRecord("a", TaskState.FAILED, attempts=1, failures=1, error="boom"))
        await writer.flush()

        async def seen() -> list[tuple[str, str | None]]:
            return [(t.state, t.error) for t in await reader.get_tasks(run_id)]

        async with asyncio.timeout(5):
            while await seen() != [("failed", "boom")]:
                await asyncio.sleep(0.02)


async def test_a_read_with_nothing_of_its_own_to_apply_never_waits_for_another_processs_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "CHECKPOINT_INTERVAL_S", 60)  # nobody applies on their own
    async with Store(tmp_path / "t.db") as writer, Store(tmp_path / "t.db") as reader:
        run_id = await writer.create_run("d", "{}", ["a"], trigger="test")
        writer.record_task(run_id, TaskRecord("a", TaskState.SUCCESS, attempts=1))
        await writer.flush()  # journalled by the writer, not applied yet
        with contextlib.closing(sqlite3.connect(tmp_path / "t.db", isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")  # a third process in the middle of a write
            async with asyncio.timeout(2):  # the busy timeout is 5 s: a read that tried to write would wait
                assert (await reader.get_run(run_id)).counts == {"pending": 1}
                assert [t.state for t in await reader.get_tasks(run_id)] == ["pending"]
                assert await reader.list_runs()
            other.execute("ROLLBACK")


async def test_close_while_another_process_writes_leaves_the_changes_to_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(store_module, "_PRAGMAS", (*store_module._PRAGMAS, "busy_timeout=100"))
    async with Store(tmp_path / "t.db") as store:
        run_id = await store.create_run("d", "{}", ["a"], trigger="test")
        store.record_task(run_id, TaskRecord("a", TaskState.SUCCESS, attempts=1))
        await store.flush()
        with contextlib.closing(sqlite3.connect(tmp_path / "t.db", isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")
            await store.close()  # logs, and closes its connections all the same
            other.execute("ROLLBACK")
    assert "the next start does it" in caplog.text
    assert _task_rows(tmp_path / "t.db")["a"][0] == "pending"
    async with Store(tmp_path / "t.db"):
        assert _task_rows(tmp_path / "t.db")["a"][0] == "success"


async def test_unreadable_journal_rows_and_deleted_runs_block_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(store_module, "CHECKPOINT_INTERVAL_S", 0.02)
    async with Store(tmp_path / "t.db") as store:
        gone = await store.create_run("d", "{}", ["a"], trigger="test")
        kept = await store.create_run("d", "{}", ["a"], trigger="test")
        store.record_task(gone, TaskRecord("a", TaskState.RUNNING, attempts=1))
        await store.flush()
        with contextlib.closing(sqlite3.connect(tmp_path / "t.db", isolation_level=None)) as other:
            other.execute("PRAGMA foreign_keys=ON")
            other.execute("DELETE FROM runs WHERE run_id = ?", (gone,))  # by hand: its task rows go with it
            malformed = [
                "not json",
                '[[["x"], "running", 1, 1.0, null, 0, null, null, null]]',  # a list for a task id
                '[["m1", {"n": 1}, 1, 1.0, null, 0, null, null, null]]',  # not a state
                '[["m2", "sleeping", 1, 1.0, null, 0, null, null, null]]',  # not a state either
                '[["m3", "running", {"n": 1}, 1.0, null, 0, null, null, null]]',  # not an attempt number
                # Past SQLite's 64 bits (read as ints up to 2**64): binding them would fail every apply.
                f'[["m4", "running", {2**63}, 1.0, null, 0, null, null, null]]',
                f'[["m5", "running", 1, 1.0, null, 0, {2**64 - 1}, null, null]]',
            ]
            other.executemany("INSERT INTO journal (run_id, entries) VALUES (?, ?)", [(kept, m) for m in malformed])
        store.record_task(kept, TaskRecord("a", TaskState.SUCCESS, attempts=1))
        assert [t.state for t in await store.get_tasks(kept)] == ["success"]
        store.record_task(kept, TaskRecord("a", TaskState.SUCCESS, attempts=1, error="noted"))
        await store.flush()
        await _until(lambda: _task_rows(tmp_path / "t.db")["a"][3] == "noted")  # the background loop goes on
        # The run's page lists its changes: the unreadable ones are left out (the malformed ones are shown).
        assert [e.state for e in await store.get_events(kept) if e.task_id == "a"] == ["success", "success"]
    assert sorted(_task_rows(tmp_path / "t.db")) == ["a"]  # nothing of the malformed entries
    assert "is not a JSON array of changes" in caplog.text


async def test_a_failed_commit_or_apply_keeps_everything_for_the_next_try(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Store(tmp_path / "t.db") as store:
        run_id = await store.create_run("d", "{}", ["a"], trigger="test")
        store.record_task(run_id, TaskRecord("a", TaskState.SUCCESS, attempts=1), output='"out"')
        with monkeypatch.context() as patch:
            patch.setattr(store_module, "_journal_tasks", _disk_full)
            with pytest.raises(sqlite3.OperationalError):
                await store.flush()
        with monkeypatch.context() as patch:
            patch.setattr(store_module, "_apply_chunk", _disk_full)
            with pytest.raises(sqlite3.OperationalError):
                await store.get_tasks(run_id)  # committed now; only applying failed
        assert [t.state for t in await store.get_tasks(run_id)] == ["success"]
        assert await store.get_outputs(run_id) == {"a": "out"}


def _disk_full(*args: Any, **kwargs: Any) -> Any:
    raise sqlite3.OperationalError("database or disk is full")


def _slow_chunks(monkeypatch: pytest.MonkeyPatch, seconds: float) -> list[int]:
    """Each chunk of applying takes ``seconds`` longer, and one journal row; returns the watermarks they reach."""
    monkeypatch.setattr(store_module, "_APPLY_ROWS", 1)
    real, reached = store_module._apply_chunk, []

    def slow_chunk(db: sqlite3.Connection, *, last: int) -> int:
        time.sleep(seconds)
        reached.append(real(db, last=last))
        return reached[-1]

    monkeypatch.setattr(store_module, "_apply_chunk", slow_chunk)
    return reached


async def test_a_reader_while_a_backlog_is_applied_chunk_by_chunk_sees_current_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Store(tmp_path / "t.db") as store:
        run_id = await store.create_run("d", "{}", ["a", "b", "c"], trigger="test")
        for task_id in ("a", "b", "c"):  # three commits: three journal rows
            store.record_task(run_id, TaskRecord(task_id, TaskState.SUCCESS, attempts=1))
            await store.flush()
        _slow_chunks(monkeypatch, 0.05)
        applying = asyncio.create_task(store._apply())
        await asyncio.sleep(0.01)  # the first chunk is being applied; the reader gets the lock after it
        assert [t.state for t in await store.get_tasks(run_id)] == ["success"] * 3
        await applying


async def test_a_reader_returns_while_this_store_goes_on_committing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chunks = _slow_chunks(monkeypatch, 0.01)  # long enough for a commit to wait for every chunk
    async with Store(tmp_path / "t.db") as store:
        run_id = await store.create_run("d", "{}", ["a", "b"], trigger="test")
        for attempt in range(1, 6):
            store.record_task(run_id, TaskRecord("a", TaskState.RUNNING, attempts=attempt))
            await store.flush()
        going = True

        async def commit_on() -> None:  # as a busy engine does: a commit whenever the lock is free
            attempt = 0
            while going:
                attempt += 1
                store.record_task(run_id, TaskRecord("b", TaskState.RUNNING, attempts=attempt))
                await store.flush()
                await asyncio.sleep(0)  # a flush with the lock free need not let others run

        producer = asyncio.create_task(commit_on())
        await asyncio.sleep(0)
        try:
            async with asyncio.timeout(5):
                tasks = {t.task_id: t.attempts for t in await store.get_tasks(run_id)}
            applied_for_the_read = len(chunks)
        finally:
            going = False
            await producer
    assert tasks["a"] == 5
    # Up to where the journal ended (5 rows, and a commit or two), not on after each new end.
    assert applied_for_the_read <= 12


@pytest.mark.parametrize("when", ["reading", "opening"])
async def test_journal_rows_deleted_while_they_are_applied_end_the_applying(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    monkeypatch.setattr(store_module, "_APPLY_ROWS", 1)
    real = store_module._apply_chunk
    chunks = []

    def chunk_then_newest_deleted(db: sqlite3.Connection, *, last: int) -> int:
        chunks.append(1)
        after = real(db, last=last)
        if len(chunks) == 1:  # meanwhile, by hand
            with contextlib.closing(sqlite3.connect(tmp_path / "t.db", isolation_level=None)) as other:
                other.execute("DELETE FROM journal WHERE id > (SELECT MAX(id) - 2 FROM journal)")
        return after

    async with Store(tmp_path / "t.db") as store:
        run_id = await store.create_run("d", "{}", ["a"], trigger="test")
        for attempt in range(1, 5):
            store.record_task(run_id, TaskRecord("a", TaskState.RUNNING, attempts=attempt))
            await store.flush()
        if when == "opening":
            monkeypatch.setattr(Store, "_apply", _nothing)  # left to the next open
        else:
            monkeypatch.setattr(store_module, "_apply_chunk", chunk_then_newest_deleted)
            async with asyncio.timeout(5):
                assert [t.attempts for t in await store.get_tasks(run_id)] == [2]
    if when == "opening":
        monkeypatch.undo()
        monkeypatch.setattr(store_module, "_APPLY_ROWS", 1)
        monkeypatch.setattr(store_module, "_apply_chunk", chunk_then_newest_deleted)
        async with asyncio.timeout(5), Store(tmp_path / "t.db") as store:
            assert [t.attempts for t in await store.get_tasks(run_id)] == [2]
    assert len(chunks) < 10


async def test_unexpected_errors_applying_at_close_are_logged_and_the_connections_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(tmp_path / "t.db")
    await store.open()
    run_id = await store.create_run("d", "{}", ["a"], trigger="test")
    store.record_task(run_id, TaskRecord("a", TaskState.SUCCESS, attempts=1))
    monkeypatch.setattr(store_module, "_apply_chunk", _overflow)
    await store.close()
    assert (store._db, store._plain_db) == (None, None)
    assert "not brought up to the journal at close" in caplog.text
    monkeypatch.undo()
    async with Store(tmp_path / "t.db") as store:  # committed at close, applied at the next start
        assert [t.state for t in await store.get_tasks(run_id)] == ["success"]


def _overflow(*args: Any, **kwargs: Any) -> Any:
    raise OverflowError("Python int too large to convert to SQLite INTEGER")


async def test_a_failed_look_at_the_watermark_does_not_stop_the_background_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(store_module, "CHECKPOINT_INTERVAL_S", 0.02)
    monkeypatch.setattr(store_module, "PROJECTION_LAG_S", 0.05)
    real = store_module._watermark
    failures = []

    def busy_once(db: sqlite3.Connection) -> tuple[int, int]:
        if not failures:
            failures.append(1)
            raise sqlite3.OperationalError("database is locked")
        return real(db)

    async with Store(tmp_path / "t.db"):  # the service
        cli = Store(tmp_path / "t.db")
        await cli.open()
        run_id = await cli.create_run("d", "{}", ["a"], trigger="test")
        cli.record_task(run_id, TaskRecord("a", TaskState.SUCCESS, attempts=1))
        await cli.flush()
        with monkeypatch.context() as patch:  # the CLI stops before it applies
            patch.setattr(Store, "_apply", _nothing)
            await cli.close()
        monkeypatch.setattr(store_module, "_watermark", busy_once)  # the service's next look fails
        await _until(lambda: _task_rows(tmp_path / "t.db")["a"][0] == "success")  # and the one after applies
    assert failures == [1]
    assert "database is locked" in caplog.text


async def test_a_left_over_nobody_applies_is_applied_by_an_open_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "CHECKPOINT_INTERVAL_S", 0.02)
    monkeypatch.setattr(store_module, "PROJECTION_LAG_S", 0.1)
    async with Store(tmp_path / "t.db") as service:
        cli = Store(tmp_path / "t.db")
        await cli.open()
        run_id = await cli.create_run("d", "{}", ["a"], trigger="test")
        cli.record_task(run_id, TaskRecord("a", TaskState.SUCCESS, attempts=1))
        await cli.flush()
        with monkeypatch.context() as patch:  # the CLI stops before it applies (killed, say)
            patch.setattr(Store, "_apply", _nothing)
            await cli.close()
        await _until(lambda: _task_rows(tmp_path / "t.db")["a"][0] == "success")  # the service's loop did it
        assert (await service.get_run(run_id)).counts == {"success": 1}


async def test_reads_apply_first_what_could_not_be_applied_at_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "_PRAGMAS", (*store_module._PRAGMAS, "busy_timeout=100"))
    async with Store(tmp_path / "t.db") as store:
        run_id = await store.create_run("d", "{}", ["a"], trigger="test")
        store.record_task(run_id, TaskRecord("a", TaskState.SUCCESS, attempts=1), output='"out"')
        await store.flush()
        with monkeypatch.context() as patch:  # stopped before it applied
            patch.setattr(Store, "_apply", _nothing)
            await store.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "t.db", isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        async with Store(tmp_path / "t.db") as store:  # cannot apply at open: another process writes
            other.execute("ROLLBACK")
            # A resume reads these: it must not take the success for pending and run the task again.
            assert [t.state for t in await store.get_tasks(run_id)] == ["success"]
            assert await store.get_outputs(run_id) == {"a": "out"}


async def test_a_cancelled_caller_gets_its_cancellation_and_the_commit_in_a_thread_stands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = store_module._in_transaction

    def slow_disk(db: sqlite3.Connection, work: Any) -> Any:
        time.sleep(0.2)
        return real(db, work)

    def slow_full_disk(db: sqlite3.Connection, work: Any) -> Any:
        time.sleep(0.2)
        return _disk_full()

    async with Store(tmp_path / "t.db") as store:
        ids = [f"t{i}" for i in range(1500)]  # more than are committed in the event loop
        run_id = await store.create_run("d", "{}", ids, trigger="test")
        for task_id in ids:
            store.record_task(run_id, TaskRecord(task_id, TaskState.SUCCESS, attempts=1))
        monkeypatch.setattr(store_module, "_in_transaction", slow_disk)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await store.flush()
        await asyncio.sleep(0)  # no cancellation left over for the next wait
        monkeypatch.setattr(store_module, "_in_transaction", slow_full_disk)
        store.record_task(run_id, TaskRecord("t0", TaskState.SUCCESS, attempts=1, error="later"))
        with pytest.raises(TimeoutError):  # the thread fails too: still the timeout, not the thread's error
            async with asyncio.timeout(0.05):
                await store.flush(in_thread=True)
        await asyncio.sleep(0)
        monkeypatch.setattr(store_module, "_in_transaction", real)
        events = await store.get_events(run_id)
    assert sum(e.task_id == "t1" for e in events) == 1  # committed once, not put back and written again
    assert [e.error for e in events if e.task_id == "t0"] == [None, "later"]  # the failed one was put back


async def test_a_close_cancelled_at_once_still_closes_its_connections(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    await store.open()
    _current().cancel()
    with pytest.raises(asyncio.CancelledError):
        await store.close()
    db, plain = store._db, store._plain_db
    if db is not None:  # else aiosqlite's thread would keep the test process from exiting
        await db.close()
    if plain is not None:
        plain.close()
    assert (db, plain) == (None, None)


async def test_two_closes_at_once_both_return_once_it_is_closed(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    await store.open()
    run_id = await store.create_run("d", "{}", ["a"], trigger="test")
    store.record_task(run_id, TaskRecord("a", TaskState.SUCCESS, attempts=1))
    async with asyncio.timeout(5):  # a shutdown handler and a context manager's exit, say
        await asyncio.gather(store.close(), store.close())
    assert (store._db, store._plain_db) == (None, None)
    assert _task_rows(tmp_path / "t.db")["a"][0] == "success"


class _Reader:
    """A caller that takes the lock, for a statement of 0.5 s from a thread, right after close's last
    checkpoint: close then has to wait for it to close the connections."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.holding = asyncio.Event()  # set once it holds the lock
        self.read: list[Any] = []  # what its statement read, once it ran to its end
        self.task: asyncio.Task[None] | None = None
        self._store, self._checkpoint = store, store.checkpoint
        monkeypatch.setattr(store, "checkpoint", self._checkpoint_then_read)

    async def _checkpoint_then_read(self) -> tuple[int, int]:
        done = await self._checkpoint()
        if self.task is not None:  # once: later closes have no reader
            return done
        self.task = asyncio.create_task(self._read(), name="reader")
        await self.holding.wait()
        return done

    async def _read(self) -> None:
        async with self._store._lock:
            self.holding.set()
            await self._store._on_plain(self._statement, in_thread=True)

    def _statement(self, db: sqlite3.Connection) -> None:
        time.sleep(0.5)
        self.read.append(db.execute("SELECT 1").fetchone())


async def test_a_second_close_returns_only_once_the_first_has_closed_the_connections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path / "t.db")
    await store.open()
    db = store.db
    reader = _Reader(store, monkeypatch)
    first = asyncio.create_task(store.close())
    await reader.holding.wait()  # the first close waits for the reader
    assert await store.list_dags() == []  # reads go on meanwhile
    await store.close()
    assert first.done()
    with pytest.raises(ValueError, match="no active connection"):
        await db.execute("SELECT 1")


@pytest.mark.parametrize("turns", range(4))
def test_a_close_under_way_when_asyncio_run_ends_closes_everything_and_takes_no_ones_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, turns: int
) -> None:
    store = Store(tmp_path / "t.db")
    outcome: dict[str, Any] = {}

    async def main() -> None:
        await store.open()
        outcome["db"] = store.db
        outcome["reader"] = reader = _Reader(store, monkeypatch)
        outcome["close"] = asyncio.create_task(store.close(), name="close")
        await reader.holding.wait()
        if turns:  # else main returns while close waits for the reader
            while not reader.read:
                await asyncio.sleep(0)
            for _ in range(turns):  # ...or as close goes on to its last steps
                await asyncio.sleep(0)
        # asyncio.run cancels every task left

    thread = threading.Thread(target=asyncio.run, args=(main(),))  # a loop of its own, to end it
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert outcome["close"].cancelled()  # its cancellation, not "Lock is not acquired"
    assert outcome["reader"].task.cancelled() or turns  # its lock was its own till it let it go
    assert outcome["reader"].read == [(1,)]  # the connection was closed after its statement, not under it
    assert not store._lock.locked()
    assert (store._db, store._plain_db) == (None, None)
    assert not (tmp_path / "t.db-wal").exists()  # SQLite removes it once the last connection is closed


_SLOW_READ = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) SELECT count(*) FROM c"


async def test_a_close_cancelled_again_and_again_still_waits_for_aiosqlite_to_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path / "t.db")
    await store.open()
    checkpoint, reads = store.checkpoint, []

    async def checkpoint_then_a_long_read() -> tuple[int, int]:  # on aiosqlite's thread, ahead of its close
        done = await checkpoint()
        reads.append(asyncio.create_task(store._all(_SLOW_READ)))
        await asyncio.sleep(0.05)
        return done

    monkeypatch.setattr(store, "checkpoint", checkpoint_then_a_long_read)
    closer = asyncio.create_task(store.close())
    await _until(lambda: store._plain_db is None)  # closing aiosqlite's connection now
    for _ in range(3):
        closer.cancel()
        await asyncio.sleep(0.01)
    with pytest.raises(asyncio.CancelledError):
        await closer
    assert not (tmp_path / "t.db-wal").exists()  # closed by then, not left to a thread the loop may outlive
    assert await reads[0] == [(3_000_000,)]


async def test_opens_and_closes_take_turns_in_the_order_they_were_called(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path / "t.db")
    await store.open()
    reader = _Reader(store, monkeypatch)
    first_close = asyncio.create_task(store.close())
    await reader.holding.wait()  # the close waits for the reader: an open and a close are called meanwhile
    reopen, last_close = asyncio.create_task(store.open()), asyncio.create_task(store.close())
    await reopen  # a restart, say: after the first close, on connections of its own
    assert first_close.done()
    assert await store.list_dags() == []
    await last_close  # closes what the restart opened
    assert (store._db, store._plain_db) == (None, None)
    assert not (tmp_path / "t.db-wal").exists()


async def test_a_second_open_while_the_first_goes_on_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    results = await asyncio.gather(store.open(), store.open(), return_exceptions=True)
    assert [type(r) for r in results] == [type(None), RuntimeError]
    assert "open already" in str(results[1])
    await store.close()
    assert not (tmp_path / "t.db-wal").exists()  # the one open's connections, and no other


async def test_a_close_cancelled_while_a_reader_waits_in_sqlite_never_blocks_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "_PRAGMAS", (*store_module._PRAGMAS, "busy_timeout=500"))
    store = Store(tmp_path / "t.db")
    await store.open()
    run_id = await store.create_run("d", "{}", ["a"], trigger="test")
    store.record_task(run_id, TaskRecord("a", TaskState.SUCCESS, attempts=1))
    await store.flush()
    gaps: list[float] = []

    async def heartbeat() -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.01)
            gaps.append(loop.time() - before)

    with contextlib.closing(sqlite3.connect(tmp_path / "t.db", isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")  # the reader's apply waits for it in SQLite, from a thread
        reader = asyncio.create_task(store.get_tasks(run_id))
        await asyncio.sleep(0.05)
        closer = asyncio.create_task(store.close())
        await asyncio.sleep(0.05)
        beating = asyncio.create_task(heartbeat())
        db = store.db
        closer.cancel()  # a second Ctrl-C, say, and a third
        await asyncio.sleep(0.05)
        closer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await closer
        beating.cancel()
        other.execute("ROLLBACK")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        await reader
    assert (store._db, store._plain_db) == (None, None)
    with pytest.raises(ValueError, match="no active connection"):  # closed, not left to the garbage collector
        await db.execute("SELECT 1")
    assert max(gaps) < 0.2  # closing waited for the reader's statement off the loop, not in it


def _current() -> asyncio.Task[Any]:
    task = asyncio.current_task()
    assert task is not None
    return task


def _journal_without_autoincrement(path: Path, rows_sql: str) -> None:
    """A database whose journal's ids could come again, as earlier versions made it, with a run 1."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.executescript(
            SCHEMA.replace("id INTEGER PRIMARY KEY AUTOINCREMENT, run_id", "id INTEGER PRIMARY KEY, run_id")
            + "INSERT INTO runs (dag_id, state, trigger, created_at) VALUES ('old', 'running', 'api', 1.0);"
            + rows_sql
        )


async def test_an_older_journal_is_rebuilt_so_its_ids_never_come_again(tmp_path: Path) -> None:
    _journal_without_autoincrement(
        tmp_path / "t.db",
        """
        INSERT INTO task_instances (run_id, task_id, state) VALUES (1, 'a', 'running');
        INSERT INTO journal (run_id, entries) VALUES (1, '[["a", "running", 1, 2.0, null]]');
        """,
    )
    async with Store(tmp_path / "t.db") as store:
        assert [(e.task_id, e.state) for e in await store.get_events(1)] == [("a", "running")]
        store.record_task(1, TaskRecord("a", TaskState.SUCCESS, attempts=1))
        await store.flush()
        with contextlib.closing(sqlite3.connect(tmp_path / "t.db", isolation_level=None)) as other:
            other.execute("DELETE FROM journal WHERE id = (SELECT MAX(id) FROM journal)")  # by hand
        store.record_task(1, TaskRecord("a", TaskState.FAILED, attempts=1, error="boom"))
        assert [(t.state, t.error) for t in await store.get_tasks(1)] == [("failed", "boom")]
    assert "AUTOINCREMENT" in _table_sql(tmp_path / "t.db", "journal")


async def test_rebuilding_an_older_journal_gives_no_id_task_rows_show_already(tmp_path: Path) -> None:
    _journal_without_autoincrement(
        tmp_path / "t.db",
        """
        INSERT INTO task_instances (run_id, task_id, state, attempts) VALUES (1, 'a', 'running', 3);
        INSERT INTO journal (run_id, entries) VALUES (1, '[["a", "running", 1, 2.0, null]]'),
            (1, '[["a", "running", 2, 3.0, null]]'), (1, '[["a", "running", 3, 4.0, null]]');
        INSERT INTO projection (id, applied) VALUES (1, 3);
        DELETE FROM journal WHERE id > 1;  -- the newest rows, by hand, before the upgrade
        """,
    )
    async with Store(tmp_path / "t.db") as store:
        store.record_task(1, TaskRecord("a", TaskState.SUCCESS, attempts=4))
        assert [(t.state, t.attempts) for t in await store.get_tasks(1)] == [("success", 4)]
    with contextlib.closing(sqlite3.connect(tmp_path / "t.db")) as db:
        assert db.execute("SELECT MIN(id) FROM journal WHERE id > 1").fetchone()[0] > 3


def _table_sql(path: Path, table: str) -> str:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return str(db.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0])


async def test_task_rows_catch_up_when_commits_pause_and_while_they_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "CHECKPOINT_INTERVAL_S", 0.02)
    monkeypatch.setattr(store_module, "PROJECTION_LAG_S", 0.2)
    async with Store(tmp_path / "t.db") as store:
        run_id = await store.create_run("d", "{}", ["a", "b"], trigger="test")
        store.record_task(run_id, TaskRecord("a", TaskState.SUCCESS, attempts=1))
        await store.flush()
        await _until(lambda: _task_rows(tmp_path / "t.db")["a"][0] == "success")  # idle: applied soon
        # Commits every 5 ms never leave the store idle for an interval: applied within PROJECTION_LAG_S.
        seen = set()
        for attempt in range(1, 120):
            store.record_task(run_id, TaskRecord("b", TaskState.RUNNING, attempts=attempt))
            await store.flush()
            seen.add(_task_rows(tmp_path / "t.db")["b"][1])
            await asyncio.sleep(0.005)
        assert len(seen - {0}) >= 2  # applied more than once while commits went on


async def _nothing(self: Store) -> None:
    return None


async def _until(predicate: Any) -> None:
    async with asyncio.timeout(5):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_an_older_events_table_is_moved_into_the_journal(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "t.db")
    db.executescript(
        """
        CREATE TABLE events (id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, task_id TEXT, state TEXT NOT NULL,
                             attempt INTEGER, at REAL NOT NULL, error TEXT);
        INSERT INTO events (run_id, task_id, state, attempt, at, error) VALUES
            (1, NULL, 'queued', NULL, 1.0, NULL), (1, 'a', 'failed', 1, 2.0, 'boom');
        """
    )
    db.close()
    async with Store(tmp_path / "t.db") as store:
        events = await store.get_events(1)
    assert [(e.task_id, e.state, e.attempt, e.at, e.error) for e in events] == [
        (None, "queued", None, 1.0, None),
        ("a", "failed", 1, 2.0, "boom"),
    ]


_OLD_RUNS = """
CREATE TABLE runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT, dag_id TEXT NOT NULL, state TEXT NOT NULL,
    trigger TEXT NOT NULL, owner TEXT, notify_chat INTEGER, config TEXT NOT NULL,
    created_at REAL NOT NULL, started_at REAL, ended_at REAL, error TEXT, archive TEXT);
"""


def _old_database(path: Path, *, extra_sql: str = "") -> None:
    """A database as the version before ``run_configs`` left it: one run with a task and its journal."""
    db = sqlite3.connect(path)
    db.executescript(_OLD_RUNS + SCHEMA.replace("CREATE TABLE IF NOT EXISTS run_configs", "CREATE TEMP TABLE rc"))
    db.executescript(
        """
        INSERT INTO runs (dag_id, state, trigger, config, created_at) VALUES ('old', 'success', 'api', '{"v": 1}', 1.0);
        INSERT INTO task_instances (run_id, task_id, state, attempts, output) VALUES (1, 'a', 'success', 1, '[1]');
        INSERT INTO journal (run_id, entries) VALUES (1, '[["a", "success", 1, 2.0, null]]');
        """
        + extra_sql
    )
    db.close()


def _columns(path: Path, table: str) -> list[str]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return [c[1] for c in db.execute(f"PRAGMA table_info({table})")]


async def test_an_older_runs_table_gives_its_configs_to_their_own_table(tmp_path: Path) -> None:
    _old_database(tmp_path / "t.db")
    async with Store(tmp_path / "t.db") as store:
        assert await store.run_config(1) == {"v": 1}
        assert (await store.get_run(1)).state == RunState.SUCCESS
        assert await store.get_outputs(1) == {"a": [1]}
        assert [(e.task_id, e.state) for e in await store.get_events(1)] == [("a", "success")]
        assert [(t.state, t.attempts) for t in await store.get_tasks(1)] == [("success", 1)]  # its row, untouched
        new_id = await store.create_run("d", '{"v": 2}', ["a"], trigger="test")  # the new layout takes new runs
        assert await store.run_config(new_id) == {"v": 2}
    assert "config" not in _columns(tmp_path / "t.db", "runs")


async def test_a_migration_that_fails_changes_nothing_and_lets_the_process_go_on(tmp_path: Path) -> None:
    # A view someone added on runs.config: SQLite refuses to drop the column under it.
    _old_database(tmp_path / "t.db", extra_sql="CREATE VIEW configs AS SELECT run_id, config FROM runs;")
    with pytest.raises(sqlite3.Error, match="configs"):
        async with Store(tmp_path / "t.db"):
            pass
    assert "config" in _columns(tmp_path / "t.db", "runs")  # rolled back whole, nothing half-moved
    with contextlib.closing(sqlite3.connect(tmp_path / "t.db")) as db:
        assert db.execute("SELECT count(*) FROM run_configs").fetchone() == (0,)
        db.execute("DROP VIEW configs")
        db.commit()
    async with Store(tmp_path / "t.db") as store:  # once the obstacle is gone, the next start migrates
        assert await store.run_config(1) == {"v": 1}


# Pairs of processes, each opening a new file of its own the moment both are ready; prints what failed.
_OPEN_AT_ONCE = """
import asyncio, multiprocessing, sys
from pathlib import Path
from orchestrator.store import Store


def open_store(path, start, failures):
    async def opened():
        start.wait()
        async with Store(Path(path)):
            pass

    try:
        asyncio.run(opened())
    except Exception as exc:
        failures.put(repr(exc))


if __name__ == "__main__":
    forked = multiprocessing.get_context("fork")
    failures = forked.Queue()
    for pair in range(10):
        start = forked.Barrier(2)
        path = Path(sys.argv[1], f"{pair}.db")
        children = [forked.Process(target=open_store, args=(path, start, failures)) for _ in range(2)]
        for child in children:
            child.start()
        for child in children:
            child.join()
    while not failures.empty():
        print(failures.get())
"""


def test_processes_creating_the_same_new_database_at_once_all_open_it(tmp_path: Path) -> None:
    script = tmp_path / "open_at_once.py"
    script.write_text(_OPEN_AT_ONCE)
    out = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        cwd=Path(__file__).parents[1],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout == ""  # most pairs lost the race to switch their file to WAL: "database is locked"


def test_processes_opening_an_old_database_at_once_migrate_it_once(tmp_path: Path) -> None:
    _old_database(tmp_path / "t.db")
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def migrate() -> None:
        with contextlib.closing(sqlite3.connect(tmp_path / "t.db", isolation_level=None)) as db:
            db.execute("PRAGMA busy_timeout=5000")
            db.executescript(SCHEMA)  # as Store.open does first
            start.wait()
            try:
                store_module._migrate(db)
            except BaseException as exc:  # collected for the assertion below
                errors.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with contextlib.closing(sqlite3.connect(tmp_path / "t.db")) as db:
        assert db.execute("SELECT run_id, config FROM run_configs").fetchall() == [(1, '{"v": 1}')]


async def test_checkpoints_run_from_a_thread_not_inside_the_commit_that_fills_the_wal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "CHECKPOINT_INTERVAL_S", 0.05)
    db_file = tmp_path / "t.db"
    async with Store(db_file) as store:
        empty = db_file.stat().st_size
        # ~1,300 pages in one commit: past SQLite's automatic checkpoint, which would copy them at once.
        run_id = await store.create_run("d", "x" * 5_000_000, ["a"], trigger="test")
        assert db_file.stat().st_size == empty  # still only in the WAL
        for _ in range(100):
            if db_file.stat().st_size > 5_000_000:
                break
            await asyncio.sleep(0.02)
        assert db_file.stat().st_size > 5_000_000  # the checkpointer copied them
        assert (await store.get_run(run_id)).state == RunState.QUEUED


async def test_the_wal_stays_bounded_while_commits_go_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A checkpoint that commits overlap never lets SQLite start the WAL over: it would grow forever.
    monkeypatch.setattr(store_module, "CHECKPOINT_INTERVAL_S", 0.02)
    db_file = tmp_path / "t.db"
    wal = tmp_path / "t.db-wal"
    async with Store(db_file) as store:
        run_id = await store.create_run("d", "{}", [f"t{i}" for i in range(200)], trigger="test")
        sizes = []
        deadline = asyncio.get_running_loop().time() + 1.5
        while asyncio.get_running_loop().time() < deadline:
            for i in range(200):
                store.record_task(run_id, TaskRecord(f"t{i}", TaskState.RUNNING, attempts=1), '"' + "x" * 500 + '"')
            await store.flush()
            sizes.append(wal.stat().st_size)
            await asyncio.sleep(0)
    # Each flush adds ~150 KB of pages: 150 of them without the WAL starting over pass 16 MiB; with a
    # checkpoint every CHECKPOINT_INTERVAL_S it stays near 2 MB.
    assert len(sizes) > 150
    assert max(sizes) < 16 * 1024 * 1024


async def test_a_flush_cancelled_while_a_big_batch_commits_in_a_thread_loses_and_breaks_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = store_module._in_transaction

    def slow_disk(db: sqlite3.Connection, work: Any) -> Any:
        result = real(db, work)
        time.sleep(0.2)  # the commit's thread is still busy when its caller is cancelled
        return result

    async with Store(tmp_path / "t.db") as store:
        ids = [f"t{i}" for i in range(3000)]
        run_id = await store.create_run("d", "{}", ids, trigger="test")
        monkeypatch.setattr(store_module, "_in_transaction", slow_disk)
        for task_id in ids:  # more rows than are committed in the event loop: a thread writes them
            store.record_task(run_id, TaskRecord(task_id, TaskState.SUCCESS, attempts=1), '"done"')
        reader = asyncio.create_task(store.flush())
        await asyncio.sleep(0.05)
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        store.record_task(run_id, TaskRecord("t0", TaskState.SUCCESS, attempts=1, error="later"))
        await store.flush()  # the connection is free again: no "transaction within a transaction"
        events = await store.get_events(run_id)
        tasks = await store.get_tasks(run_id)
    assert sum(e.task_id == "t1" for e in events) == 1  # committed once, not put back and written again
    assert all(t.state == TaskState.SUCCESS for t in tasks)


async def test_add_dag_never_replaces_one_that_exists(tmp_path: Path) -> None:
    async with Store(tmp_path / "t.db") as store:
        first = await store.add_dag("d", {"dag_name": "d", "description": "first"}, source="web")
        assert first is not None
        assert (first.version, first.source) == (1, "web")
        raced = await asyncio.gather(*(store.add_dag("e", {"dag_name": "e", "n": n}, source="web") for n in range(5)))
        assert len([r for r in raced if r is not None]) == 1, "of several at once, one adds it"
        assert await store.add_dag("d", {"dag_name": "d", "description": "second"}, source="web") is None
        kept = await store.get_dag("d")
        assert (kept.config["description"], kept.version) == ("first", 1)


async def test_a_schedule_keeps_its_notify_setting_and_older_databases_gain_it(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    with contextlib.closing(sqlite3.connect(path)) as db:  # a database of the version before the setting
        db.executescript(SCHEMA.replace(", notify TEXT);", ");"))
        db.execute(
            "INSERT INTO schedules (dag_id, kind, expr, timezone, created_at) VALUES (?, ?, ?, ?, ?)",
            ("d", "cron", "* * * * *", "UTC", 1.0),
        )
        db.commit()
    async with Store(path) as store:
        [old] = await store.list_schedules()
        assert old.notify is None
        assert (await store.update_schedule(old.schedule_id, notify="none")).notify == "none"
        new = await store.add_schedule(
            "d", "interval", "1m", "UTC", owner_id=1, chat_id=1, next_fire_at=2.0, notify="failures"
        )
        assert (await store.get_schedule(new.schedule_id)).notify == "failures"


async def test_a_runs_status_message_is_remembered(tmp_path: Path) -> None:
    async with Store(tmp_path / "t.db") as store:
        run_id = await store.create_run("d", '{"dag_name": "d"}', ["a"], trigger="test")
        assert await store.get_status_message(run_id) is None
        await store.set_status_message(run_id, 111, 1000)
        await store.set_status_message(run_id, 111, 1005)  # a re-run posts a new one
    async with Store(tmp_path / "t.db") as store:
        assert await store.get_status_message(run_id) == (111, 1005)
