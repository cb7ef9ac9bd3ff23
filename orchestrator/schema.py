"""The database's layout, and the numbered migrations that bring older databases to it.

``PRAGMA user_version`` is the number of migrations a database has had; each migration runs in one
transaction with the version bump, so a database is at one version or the next, never between.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable

log = logging.getLogger(__name__)

# Version 1. Later versions append a migration; they never edit this text.
TABLES_V1 = """
CREATE TABLE IF NOT EXISTS dags (
    dag_id TEXT PRIMARY KEY, config TEXT NOT NULL, source TEXT NOT NULL,
    version INTEGER NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT, dag_id TEXT NOT NULL, state TEXT NOT NULL,
    trigger TEXT NOT NULL, owner TEXT, notify_chat INTEGER,
    created_at REAL NOT NULL, started_at REAL, ended_at REAL, error TEXT, archive TEXT);
-- Apart from its run: SQLite rewrites a whole row on update, and a run's state changes would copy
-- a config of thousands of tasks into the WAL each time.
CREATE TABLE IF NOT EXISTS run_configs (
    run_id INTEGER PRIMARY KEY REFERENCES runs (run_id) ON DELETE CASCADE, config TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS runs_by_dag ON runs (dag_id, run_id);
CREATE INDEX IF NOT EXISTS runs_by_state ON runs (state, run_id);
-- Each task's state now: every commit of transitions updates it.
CREATE TABLE IF NOT EXISTS task_instances (
    run_id INTEGER NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE, task_id TEXT NOT NULL,
    state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0,
    started_at REAL, ended_at REAL, error TEXT, output TEXT, output_file TEXT, updated_at REAL,
    position INTEGER NOT NULL DEFAULT 0,  -- the task's place in its config, for listing
    PRIMARY KEY (run_id, task_id)) WITHOUT ROWID;
-- The history: a row per commit and run, ``entries`` a JSON array of [task_id (null: the run
-- itself), state, attempt, at, error] in the order they happened. One row a group, not one a
-- change, keeps a commit's cost near one statement; the ``events`` view shows one change a row.
CREATE TABLE IF NOT EXISTS journal (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER NOT NULL, entries TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS journal_by_run ON journal (run_id, id);
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
EVENTS_VIEW_V1 = """
CREATE VIEW IF NOT EXISTS events AS
SELECT journal.id AS batch, e.key AS seq, journal.run_id AS run_id,
       json_extract(e.value, '$[0]') AS task_id, json_extract(e.value, '$[1]') AS state,
       json_extract(e.value, '$[2]') AS attempt, json_extract(e.value, '$[3]') AS at,
       json_extract(e.value, '$[4]') AS error
FROM journal, json_each(journal.entries) AS e;
"""

# Databases made before versions were numbered (user_version 0) may hold older layouts: each step
# is taken if its probe finds that layout.
_FROM_UNVERSIONED = (
    # The first layout's task rows, without their time of change and their place in the config.
    (
        "SELECT 1 FROM sqlite_master WHERE name = 'task_instances' "
        "AND NOT EXISTS (SELECT 1 FROM pragma_table_info('task_instances') WHERE name = 'updated_at')",
        "ALTER TABLE task_instances ADD COLUMN updated_at REAL;",
    ),
    (
        "SELECT 1 FROM sqlite_master WHERE name = 'task_instances' "
        "AND NOT EXISTS (SELECT 1 FROM pragma_table_info('task_instances') WHERE name = 'position')",
        "ALTER TABLE task_instances ADD COLUMN position INTEGER NOT NULL DEFAULT 0;",
    ),
    # An ``events`` table, one change a row: moved into the journal.
    (
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'",
        "INSERT INTO journal (run_id, entries) SELECT run_id, "
        "json_array(json_array(task_id, state, attempt, at, error)) FROM events ORDER BY id; "
        "DROP TABLE events;",
    ),
    # A run's config in its row of ``runs``: moved into ``run_configs``.
    (
        "SELECT 1 FROM pragma_table_info('runs') WHERE name = 'config'",
        "INSERT INTO run_configs (run_id, config) SELECT run_id, config FROM runs; "
        "ALTER TABLE runs DROP COLUMN config;",
    ),
    # Task rows that lagged the journal up to ``projection.applied``: brought up to it, then dropped.
    # Each task takes its latest entry past the mark (entries of that layout carry every field).
    (
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'projection'",
        """
        WITH entry AS (
            SELECT journal.run_id, e.value AS v, ROW_NUMBER() OVER (
                PARTITION BY journal.run_id, json_extract(e.value, '$[0]')
                ORDER BY journal.id DESC, e.key DESC) AS newest
            FROM journal, json_each(CASE WHEN json_valid(journal.entries) THEN journal.entries ELSE '[]' END) AS e
            WHERE journal.id > (SELECT applied FROM projection) AND json_type(e.value) = 'array'
              AND json_array_length(e.value) >= 9 AND json_type(e.value, '$[0]') = 'text'
              AND json_extract(e.value, '$[1]') IN ('pending', 'queued', 'running', 'up_for_retry',
                  'success', 'failed', 'upstream_failed', 'cancelled'))
        UPDATE task_instances SET state = json_extract(v, '$[1]'), attempts = json_extract(v, '$[2]'),
            updated_at = json_extract(v, '$[3]'), error = json_extract(v, '$[4]'),
            failures = json_extract(v, '$[5]'), started_at = json_extract(v, '$[6]'),
            ended_at = json_extract(v, '$[7]'), output_file = json_extract(v, '$[8]')
        FROM entry
        WHERE entry.newest = 1 AND entry.run_id = task_instances.run_id
          AND json_extract(entry.v, '$[0]') = task_instances.task_id;
        DROP TABLE projection;
        """,
    ),
)


def _to_v1(db: sqlite3.Connection) -> None:
    """Today's layout; an unversioned database of an older layout is converted to it."""
    old = [script for probe, script in _FROM_UNVERSIONED if db.execute(probe).fetchone()]
    _script(db, TABLES_V1)
    for script in old:
        _script(db, script)
    db.execute("DROP TRIGGER IF EXISTS journal_task_state")  # an older layout journalled by trigger
    _script(db, EVENTS_VIEW_V1)


def _to_v2(db: sqlite3.Connection) -> None:
    """A schedule's notify setting; the bot's live status message of each run (kept across restarts)."""
    _script(
        db,
        """
        ALTER TABLE schedules ADD COLUMN notify TEXT;
        CREATE TABLE status_messages (
            run_id INTEGER PRIMARY KEY REFERENCES runs (run_id) ON DELETE CASCADE, chat_id INTEGER NOT NULL,
            message_id INTEGER NOT NULL);
        """,
    )


def _to_v3(db: sqlite3.Connection) -> None:
    """A run's params (JSON) and logical date; a schedule's params for the runs it starts."""
    db.execute("ALTER TABLE runs ADD COLUMN params TEXT")
    db.execute("ALTER TABLE runs ADD COLUMN logical_date REAL")
    db.execute("ALTER TABLE schedules ADD COLUMN params TEXT")


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_to_v1, _to_v2, _to_v3)
VERSION = len(MIGRATIONS)


def migrate(db: sqlite3.Connection) -> None:
    """Bring the database to ``VERSION``, one migration a transaction (connection in autocommit mode)."""
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version > VERSION:
        raise sqlite3.DatabaseError(f"the database is of a newer TaskFlow (layout {version}, this one knows {VERSION})")
    for number in range(version, VERSION):
        db.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[number](db)
            db.execute(f"PRAGMA user_version = {number + 1}")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        if number:  # a new database's first layout is no news
            log.info("database updated to layout %d", number + 1)


def _script(db: sqlite3.Connection, script: str) -> None:
    """Statements separated by ';', inside the caller's transaction (``executescript`` would commit it)."""
    for statement in _statements(script):
        db.execute(statement)


def _statements(script: str) -> list[str]:
    statements, buffer = [], ""
    for part in script.split(";"):
        buffer += part + ";"
        if sqlite3.complete_statement(buffer):  # not a ';' inside a string or a trigger's body
            if buffer.strip(" \n;"):
                statements.append(buffer.strip())
            buffer = ""
    return statements
