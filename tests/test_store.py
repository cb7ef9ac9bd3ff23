"""The SQLite store on a real file: one owner, current task rows, the journal, migrations."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from orchestrator import store as store_module
from orchestrator.errors import TaskFlowError
from orchestrator.ownership import DatabaseInUseError, OwnerLock, read_holder
from orchestrator.records import TaskRecord
from orchestrator.schema import TABLES_V1, VERSION
from orchestrator.states import RunState, TaskState
from orchestrator.store import Store

ROOT = Path(__file__).resolve().parents[1]


def _plain(path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """What another connection (another program) reads: only what is committed."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute(sql, args).fetchall()


async def test_every_transition_is_journalled_and_the_row_keeps_the_last(tmp_path: Path) -> None:
    async with Store(tmp_path / "t.db") as store:
        run_id = await store.create_run("d", '{"dag_name": "d"}', ["a", "b"], trigger="test")
        for state in (TaskState.QUEUED, TaskState.RUNNING, TaskState.SUCCESS):
            store.record_task(
                run_id, TaskRecord("a", state, attempts=1), output='{"n": 1}' if state == "success" else None
            )
        store.record_task(run_id, TaskRecord("b", TaskState.QUEUED))
        await store.flush()  # all four in one group
        events = [(e.task_id, e.state) for e in await store.get_events(run_id) if e.task_id]
        tasks = {t.task_id: t.state for t in await store.get_tasks(run_id)}
        outputs = await store.get_outputs(run_id)
    assert events == [("a", "queued"), ("a", "running"), ("a", "success"), ("b", "queued")]
    assert tasks == {"a": TaskState.SUCCESS, "b": TaskState.QUEUED}
    assert outputs == {"a": {"n": 1}}


async def test_after_each_commit_any_connection_sees_every_tasks_current_row(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    async with Store(db) as store:
        run_id = await store.create_run("d", "{}", ["a", "b"], trigger="test")
        assert _plain(db, "SELECT task_id, state FROM task_instances ORDER BY position") == [
            ("a", "pending"),
            ("b", "pending"),
        ]
        store.record_task(run_id, TaskRecord("a", TaskState.RUNNING, attempts=1, started_at=5.0))
        await store.flush()
        assert _plain(db, "SELECT state, attempts, started_at FROM task_instances WHERE task_id = 'a'") == [
            ("running", 1, 5.0)
        ]
        store.record_task(run_id, TaskRecord("a", TaskState.FAILED, attempts=1, failures=1, error="boom"))
        store.record_task(run_id, TaskRecord("b", TaskState.UPSTREAM_FAILED, error="upstream"))
        await store.flush()
        assert _plain(db, "SELECT task_id, state, failures, error FROM task_instances ORDER BY position") == [
            ("a", "failed", 1, "boom"),
            ("b", "upstream_failed", 0, "upstream"),
        ]


async def test_an_output_survives_a_later_row_of_the_same_group(tmp_path: Path) -> None:
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
        rows = _plain(
            tmp_path / "t.db", "SELECT task_id, state, attempt FROM events WHERE run_id = ? ORDER BY batch, seq", run_id
        )
    assert rows == [(None, "queued", None), ("a", "queued", 0), ("a", "running", 1)]


async def test_a_re_run_counts_only_the_time_spent_running(tmp_path: Path) -> None:
    async with Store(tmp_path / "t.db") as store:
        run_id = await store.create_run("d", "{}", ["a"], trigger="test")
        assert (await store.get_run(run_id)).duration_s is None  # not started
        await store.set_run_state(run_id, RunState.RUNNING, at=10.0)
        await store.set_run_state(run_id, RunState.FAILED, at=12.0)
        assert (await store.get_run(run_id)).duration_s == 2.0
        await store.set_run_state(run_id, RunState.QUEUED, at=20.0)  # re-run 8 s later
        await store.set_run_state(run_id, RunState.RUNNING, at=21.0)
        going = await store.get_run(run_id)
        assert (going.ran_s, going.running_since) == (2.0, 21.0)
        await store.set_run_state(run_id, RunState.SUCCESS, at=22.5)
        [listed] = await store.list_runs()
    assert listed.duration_s == 3.5  # 2 s, then 1.5 s: not the 12.5 s since the first start
    assert listed.started_at == 10.0
    assert "ran_s" not in listed.as_dict()


async def test_reads_never_write(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    async with Store(db) as store:
        run_id = await store.create_run("d", "{}", ["a"], trigger="test")
        await store.save_dag("d", {"dag_name": "d"}, source="api")
        with contextlib.closing(sqlite3.connect(db)) as watcher:
            before = watcher.execute("PRAGMA data_version").fetchone()
            await store.get_run(run_id)
            await store.list_runs()
            await store.last_runs()
            await store.get_tasks(run_id)
            await store.get_events(run_id)
            await store.get_outputs(run_id)
            await store.list_dags()
            await store.list_schedules()
            # data_version moves when another connection commits
            assert watcher.execute("PRAGMA data_version").fetchone() == before
            await store.set_run_state(run_id, RunState.RUNNING)
            assert watcher.execute("PRAGMA data_version").fetchone() != before


async def test_the_newest_run_of_each_dag_in_one_read(tmp_path: Path) -> None:
    async with Store(tmp_path / "t.db") as store:
        first = await store.create_run("a", "{}", ["x"], trigger="test")
        await store.create_run("b", "{}", ["x"], trigger="test")
        newest_a = await store.create_run("a", "{}", ["x", "y"], trigger="test")
        last = await store.last_runs()
    assert {dag: run.run_id for dag, run in last.items()} == {"a": newest_a, "b": first + 1}
    assert last["a"].counts == {"pending": 2}


# -- one owner ------------------------------------------------------------------------------


async def test_a_second_store_on_the_same_database_is_refused_naming_the_owner(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    async with Store(db, command="service") as store:
        store.owner.announce("http://127.0.0.1:5123")
        with pytest.raises(DatabaseInUseError) as refused:
            await Store(db, command="run").open()
        assert refused.value.holder is not None
        assert refused.value.holder.pid == os.getpid()
        assert "service" in str(refused.value)
        assert "http://127.0.0.1:5123" in str(refused.value)
    async with Store(db, command="run"):  # let go at close: the next process opens it
        holder = read_holder(db)
    assert holder is not None
    assert holder.command == "run"


_HOLD_AND_WAIT = """
import asyncio, sys
from pathlib import Path
from orchestrator.store import Store

async def main():
    store = Store(Path(sys.argv[1]), command="service")
    await store.open()
    print("open", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _HOLD_AND_WAIT, str(db), cwd=ROOT, stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        assert await proc.stdout.readline() == b"open\n"
        with pytest.raises(DatabaseInUseError, match=f"pid {proc.pid}"):
            await Store(db).open()
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    async with Store(db) as store:  # the kernel let go of the dead process's lock
        assert await store.list_runs() == []


async def test_a_lock_file_that_cannot_be_made_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "not_a_folder").write_text("")
    with pytest.raises(TaskFlowError, match=r"cannot create the lock file .*not_a_folder"):
        await Store(tmp_path / "not_a_folder" / "t.db").open()


# -- commits ------------------------------------------------------------------------------


def _disk_full(*args: Any, **kwargs: Any) -> Any:
    raise sqlite3.OperationalError("database or disk is full")


async def test_a_failed_commit_keeps_everything_for_the_next_try(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "FLUSH_RETRY_S", 0.01)
    async with Store(tmp_path / "t.db") as store:
        run_id = await store.create_run("d", "{}", ["a"], trigger="test")
        released: list[list[str]] = []
        with monkeypatch.context() as patch:
            patch.setattr(store_module, "_commit_tasks", _disk_full)
            store.record_task(run_id, TaskRecord("a", TaskState.SUCCESS, attempts=1), output='"out"')
            store.when_durable(released.append, "a")
            with pytest.raises(sqlite3.OperationalError, match="disk is full"):
                await store.flush()
            assert released == []  # nothing downstream goes on before the success is committed
        await store.flush()  # the next try commits what the failed one held
        assert released == [["a"]]
        assert await store.get_outputs(run_id) == {"a": "out"}


async def test_a_cancelled_flush_never_undoes_or_repeats_its_commit(tmp_path: Path) -> None:
    gate = threading.Event()
    async with Store(tmp_path / "t.db") as store:
        run_id = await store.create_run("d", "{}", ["a"], trigger="test")
        blocker = asyncio.ensure_future(store._in_writer(gate.wait, 5))  # the writer is busy a while
        store.record_task(run_id, TaskRecord("a", TaskState.SUCCESS, attempts=1), output='"x"')
        released: list[list[str]] = []
        store.when_durable(released.append, "a")
        waiter = asyncio.create_task(store.flush())
        await asyncio.sleep(0.01)
        waiter.cancel()
        gate.set()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await blocker
        await store.flush()
        events = [e for e in await store.get_events(run_id) if e.task_id == "a"]
    assert released == [["a"]]  # committed once, its callback called once
    assert [e.state for e in events] == ["success"]


async def test_a_big_run_is_created_while_the_event_loop_goes_on(tmp_path: Path) -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    async with Store(tmp_path / "t.db") as store:
        ticker = asyncio.create_task(tick())
        run_id = await store.create_run("d", "{}", [f"t{i}" for i in range(100_000)], trigger="test")
        ticker.cancel()
        assert len(await store.get_tasks(run_id)) == 100_000
    # In the event loop, the insert would have let nothing else run until it returned.
    assert ticks > 10


async def test_the_wal_stays_bounded_while_commits_go_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # SQLite's own checkpoints are off (they would run inside a commit, maybe in the event loop).
    monkeypatch.setattr(store_module, "CHECKPOINT_INTERVAL_S", 0.02)
    wal = tmp_path / "t.db-wal"
    async with Store(tmp_path / "t.db") as store:
        run_id = await store.create_run("d", "{}", [f"t{i}" for i in range(200)], trigger="test")
        sizes = []
        for _ in range(200):
            for i in range(200):
                store.record_task(run_id, TaskRecord(f"t{i}", TaskState.RUNNING, attempts=1), '"' + "x" * 500 + '"')
            await store.flush()
            sizes.append(wal.stat().st_size)
            await asyncio.sleep(0.001)
    # Each flush adds ~150 KB of pages: 200 of them without a checkpoint pass 25 MiB.
    assert max(sizes) < 12 * 1024 * 1024


async def test_another_programs_write_lock_never_stalls_the_event_loop(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    async with Store(db) as store:
        with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as shell:  # a user's sqlite3 shell
            shell.execute("BEGIN IMMEDIATE")
            ticks = 0

            async def tick() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0.01)

            ticker = asyncio.create_task(tick())
            writing = asyncio.create_task(store.upsert_user(1, "alice", 1, None))
            await asyncio.sleep(0.3)
            assert not writing.done()  # it waits for the lock, in the writer thread...
            assert ticks > 5  # ...while the event loop goes on
            shell.execute("COMMIT")
            await writing
            ticker.cancel()
        assert await store.find_user("alice") is not None


async def test_a_flush_after_close_says_so_instead_of_waiting_forever(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    await store.open()
    run_id = await store.create_run("d", "{}", ["a"], trigger="test")
    await store.close()
    store.record_task(run_id, TaskRecord("a", TaskState.RUNNING, attempts=1))
    with pytest.raises(RuntimeError, match="not open"):
        await asyncio.wait_for(store.flush(), 5)


async def test_close_commits_what_is_buffered(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    await store.open()
    run_id = await store.create_run("d", "{}", ["a"], trigger="test")
    store.record_task(run_id, TaskRecord("a", TaskState.RUNNING, attempts=1))
    await store.close()
    assert _plain(tmp_path / "t.db", "SELECT state FROM task_instances") == [("running",)]


# -- migrations ---------------------------------------------------------------------------

# The layout databases had before versions were numbered (user_version 0).
_UNVERSIONED_SCHEMA = """
CREATE TABLE IF NOT EXISTS dags (
    dag_id TEXT PRIMARY KEY, config TEXT NOT NULL, source TEXT NOT NULL,
    version INTEGER NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT, dag_id TEXT NOT NULL, state TEXT NOT NULL,
    trigger TEXT NOT NULL, owner TEXT, notify_chat INTEGER,
    created_at REAL NOT NULL, started_at REAL, ended_at REAL, error TEXT, archive TEXT);
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
CREATE TABLE IF NOT EXISTS journal (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER NOT NULL, entries TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS journal_by_run ON journal (run_id, id);
CREATE TABLE IF NOT EXISTS projection (id INTEGER PRIMARY KEY CHECK (id = 1), applied INTEGER NOT NULL);
DROP TRIGGER IF EXISTS journal_task_state;
CREATE TABLE IF NOT EXISTS schedules (
    schedule_id INTEGER PRIMARY KEY AUTOINCREMENT, dag_id TEXT NOT NULL, kind TEXT NOT NULL,
    expr TEXT NOT NULL, timezone TEXT NOT NULL, owner_id INTEGER, chat_id INTEGER,
    paused INTEGER NOT NULL DEFAULT 0, next_fire_at REAL, last_fire_at REAL, last_run_id INTEGER,
    created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    user_id INTEGER PRIMARY KEY, username TEXT, chat_id INTEGER NOT NULL, first_name TEXT,
    updated_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS users_by_name ON users (username);
"""
_OLD_RUNS = """
CREATE TABLE runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT, dag_id TEXT NOT NULL, state TEXT NOT NULL,
    trigger TEXT NOT NULL, owner TEXT, notify_chat INTEGER, config TEXT NOT NULL,
    created_at REAL NOT NULL, started_at REAL, ended_at REAL, error TEXT, archive TEXT);
"""


def _old_database(path: Path, *, extra_sql: str = "") -> None:
    """A database as an earlier version left it: a run whose config is in its row, with a task and its journal."""
    db = sqlite3.connect(path)
    schema = _UNVERSIONED_SCHEMA.replace("CREATE TABLE IF NOT EXISTS run_configs", "CREATE TEMP TABLE rc")
    db.executescript(_OLD_RUNS + schema)
    db.executescript(
        """
        INSERT INTO runs (dag_id, state, trigger, config, created_at) VALUES ('old', 'success', 'api', '{"v": 1}', 1.0);
        INSERT INTO task_instances (run_id, task_id, state, attempts, output) VALUES (1, 'a', 'success', 1, '[1]');
        INSERT INTO journal (run_id, entries) VALUES (1, '[["a", "success", 1, 2.0, null]]');
        INSERT INTO projection (id, applied) VALUES (1, 1);
        """
        + extra_sql
    )
    db.close()


def _columns(path: Path, table: str) -> list[str]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return [c[1] for c in db.execute(f"PRAGMA table_info({table})")]


async def test_a_new_database_is_at_the_current_layout(tmp_path: Path) -> None:
    async with Store(tmp_path / "t.db"):
        pass
    assert _plain(tmp_path / "t.db", "PRAGMA user_version") == [(VERSION,)]


async def test_an_older_runs_table_gives_its_configs_to_their_own_table(tmp_path: Path) -> None:
    _old_database(tmp_path / "t.db")
    async with Store(tmp_path / "t.db") as store:
        assert await store.run_config(1) == {"v": 1}
        assert (await store.get_run(1)).state == RunState.SUCCESS
        assert await store.get_outputs(1) == {"a": [1]}
        assert [(e.task_id, e.state) for e in await store.get_events(1)] == [("a", "success")]
        assert [(t.state, t.attempts) for t in await store.get_tasks(1)] == [("success", 1)]
        new_id = await store.create_run("d", '{"v": 2}', ["a"], trigger="test")  # the new layout takes new runs
        assert await store.run_config(new_id) == {"v": 2}
    assert "config" not in _columns(tmp_path / "t.db", "runs")
    assert _plain(tmp_path / "t.db", "PRAGMA user_version") == [(VERSION,)]


async def test_task_rows_an_older_version_left_behind_its_journal_are_brought_up_to_it(tmp_path: Path) -> None:
    # That layout updated task rows after the commits: a killed process left them behind ``projection``.
    journal = (
        # applied already (id 1, in _old_database); then a's retry and b's start, with every field
        "INSERT INTO task_instances (run_id, task_id, state, position) VALUES (1, 'b', 'pending', 1);"
        "INSERT INTO journal (run_id, entries) VALUES (1, "
        '\'[["a", "running", 2, 3.0, null, 1, 2.5, null, null], ["b", "queued", 0, 3.0, null, 0, null, null, null]]\');'
        "INSERT INTO journal (run_id, entries) VALUES (1, 'not json');"
        "INSERT INTO journal (run_id, entries) VALUES (1, "
        '\'[["a", "success", 2, 4.0, null, 1, 2.5, 4.0, "a.json"], '
        '["b", "bogus", 0, 4.0, null, 0, null, null, null]]\');'
    )
    _old_database(tmp_path / "t.db", extra_sql=journal)
    async with Store(tmp_path / "t.db") as store:
        tasks = {t.task_id: t for t in await store.get_tasks(1)}
    assert (tasks["a"].state, tasks["a"].attempts, tasks["a"].failures, tasks["a"].output_file) == (
        "success",
        2,
        1,
        "a.json",
    )
    assert tasks["b"].state == "queued"  # its malformed later entry is skipped
    assert "projection" not in {r[0] for r in _plain(tmp_path / "t.db", "SELECT name FROM sqlite_master")}


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


async def test_the_first_layout_opens_with_its_runs(tmp_path: Path) -> None:
    with contextlib.closing(sqlite3.connect(tmp_path / "t.db")) as db:
        db.executescript(
            _OLD_RUNS
            + """
            CREATE TABLE task_instances (
                run_id INTEGER NOT NULL, task_id TEXT NOT NULL, state TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0, started_at REAL,
                ended_at REAL, error TEXT, output TEXT, output_file TEXT,
                PRIMARY KEY (run_id, task_id)) WITHOUT ROWID;
            CREATE TABLE events (id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, task_id TEXT,
                state TEXT NOT NULL, attempt INTEGER, at REAL NOT NULL, error TEXT);
            INSERT INTO runs (dag_id, state, trigger, config, created_at) VALUES ('old', 'failed', 'api', '{}', 1.0);
            INSERT INTO task_instances (run_id, task_id, state, attempts) VALUES (1, 'a', 'failed', 1);
            INSERT INTO events (run_id, task_id, state, attempt, at) VALUES (1, 'a', 'failed', 1, 2.0);
            """
        )
    async with Store(tmp_path / "t.db") as store:
        assert [(t.task_id, t.state) for t in await store.get_tasks(1)] == [("a", "failed")]
        assert [(e.task_id, e.state) for e in await store.get_events(1)] == [("a", "failed")]
        new_id = await store.create_run("d", "{}", ["x", "y"], trigger="test")
        assert [t.task_id for t in await store.get_tasks(new_id)] == ["x", "y"]


async def test_a_migration_that_fails_changes_nothing_and_the_next_start_retries(tmp_path: Path) -> None:
    # A view someone added on runs.config: SQLite refuses to drop the column under it.
    _old_database(tmp_path / "t.db", extra_sql="CREATE VIEW configs AS SELECT run_id, config FROM runs;")
    with pytest.raises(sqlite3.Error, match="configs"):
        async with Store(tmp_path / "t.db"):
            pass
    assert "config" in _columns(tmp_path / "t.db", "runs")  # rolled back whole, nothing half-moved
    assert _plain(tmp_path / "t.db", "PRAGMA user_version") == [(0,)]
    assert "run_configs" not in {r[0] for r in _plain(tmp_path / "t.db", "SELECT name FROM sqlite_master")}
    with contextlib.closing(sqlite3.connect(tmp_path / "t.db")) as db:
        db.execute("DROP VIEW configs")
        db.commit()
    async with Store(tmp_path / "t.db") as store:  # once the obstacle is gone, the next start migrates
        assert await store.run_config(1) == {"v": 1}


async def test_a_database_of_a_newer_version_is_refused_and_left_alone(tmp_path: Path) -> None:
    with contextlib.closing(sqlite3.connect(tmp_path / "t.db")) as db:
        db.execute(f"PRAGMA user_version = {VERSION + 1}")
    with pytest.raises(sqlite3.DatabaseError, match="newer TaskFlow"):
        await Store(tmp_path / "t.db").open()
    lock = OwnerLock(tmp_path / "t.db")
    lock.acquire("x")  # the failed open let go of the lock
    lock.release()


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
    with contextlib.closing(sqlite3.connect(path)) as db:  # a database of layout 1, before the setting
        db.executescript(TABLES_V1 + "PRAGMA user_version = 1;")
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
