"""Retention: which ended runs go, and deleting them (rows, journal, folder and ZIP) with what it freed.

Nothing is deleted unless asked: ``TASKFLOW_KEEP_DAYS`` (runs that ended longer ago go),
``TASKFLOW_KEEP_RUNS`` (each DAG keeps its newest N ended runs) and a DAG's own ``keep_runs`` (which
wins over the global count for that DAG). Either limit alone deletes a run. Never deleted: a run
still going, and the newest ended run of each DAG. With ``TASKFLOW_ZIP_ONLY`` a successful run's
folder is removed once its ZIP is written (failed and cancelled runs keep theirs: a re-run goes on
in it). The service applies all this in its ``retention`` task; ``main.py cleanup`` by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.engine import Orchestrator
from orchestrator.events import RunEvent
from orchestrator.rundir import RunFolder
from orchestrator.settings import Settings
from orchestrator.states import RunState
from orchestrator.store import Store

log = logging.getLogger("taskflow.retention")

DAY_S = 86400.0
_AGE = re.compile(r"(\d+(?:\.\d+)?)\s*(d|days?|h|hours?|w|weeks?)", re.IGNORECASE)
_AGE_UNITS = {"d": 1.0, "h": 1 / 24, "w": 7.0}
INTERVAL_S = 3600.0  # how often the service applies the limits


@dataclass(frozen=True, slots=True)
class Limits:
    """What to keep: runs that ended within ``keep_days``, each DAG's newest ``keep_runs`` (its own first)."""

    keep_days: float | None = None
    keep_runs: int | None = None
    dag_keep_runs: dict[str, int] = field(default_factory=dict)

    @property
    def any(self) -> bool:
        """Whether any limit is set (with none, nothing is ever deleted)."""
        return self.keep_days is not None or self.keep_runs is not None or bool(self.dag_keep_runs)


@dataclass(frozen=True, slots=True)
class Freed:
    """What a cleanup deleted (or, in a dry run, would delete)."""

    run_ids: list[int]
    bytes: int
    dry_run: bool = False

    def describe(self) -> str:
        """One line for people."""
        verb = "would free" if self.dry_run else "freed"
        return f"{verb} {len(self.run_ids)} run(s), {_size(self.bytes)}"


def parse_age(text: str) -> float:
    """Days in ``30d``, ``12h``, ``2w`` (``ValueError`` if it is not one of those)."""
    match = _AGE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"cannot read the age {text!r}; write it like 30d, 12h or 2w")
    return float(match[1]) * _AGE_UNITS[match[2][0].lower()]


def choose(runs: Iterable[tuple[int, str, RunState, float]], limits: Limits, now: float) -> list[int]:
    """The ended runs (``Store.ended_runs``) the limits delete; each DAG's newest ended run is always kept."""
    by_dag: dict[str, list[tuple[int, float]]] = {}
    for run_id, dag_id, _, ended_at in runs:
        by_dag.setdefault(dag_id, []).append((run_id, ended_at))
    cutoff = None if limits.keep_days is None else now - limits.keep_days * DAY_S
    chosen = []
    for dag_id, dag_runs in by_dag.items():
        keep = limits.dag_keep_runs.get(dag_id, limits.keep_runs)
        newest_first = sorted(dag_runs, reverse=True)
        for index, (run_id, ended_at) in enumerate(newest_first[1:], start=1):
            if (keep is not None and index >= keep) or (cutoff is not None and ended_at < cutoff):
                chosen.append(run_id)
    return sorted(chosen)


async def limits_of(settings: Settings, store: Store, *, keep_days: float | None = None) -> Limits:
    """The limits in force: the settings', the DAGs' own ``keep_runs``, and ``keep_days`` if given (it wins)."""
    own = {}
    for dag in await store.list_dags():
        value = dag.config.get("keep_runs")
        if isinstance(value, int) and value >= 1:
            own[dag.dag_id] = value
    days = settings.keep_days if keep_days is None else keep_days
    return Limits(keep_days=days, keep_runs=settings.keep_runs, dag_keep_runs=own)


async def clean(
    settings: Settings,
    store: Store,
    limits: Limits,
    *,
    dry_run: bool = False,
    now: float | None = None,
) -> Freed:
    """Delete the runs the limits choose (a run re-run meanwhile is left: ``Store.delete_runs``)."""
    if not limits.any:
        return Freed([], 0, dry_run)
    chosen = choose(await store.ended_runs(), limits, time.time() if now is None else now)
    if dry_run:
        return Freed(chosen, await asyncio.to_thread(_sizes, settings.runs_dir, chosen), dry_run=True)
    # Rows first: a crash between the two leaves files nobody lists, never a listed run without them.
    deleted = await store.delete_runs(chosen)
    return Freed(deleted, await asyncio.to_thread(_remove, settings.runs_dir, deleted))


class Retention:
    """The service's retention: the limits applied every ``INTERVAL_S``, and ZIP-only folders removed at once."""

    def __init__(self, settings: Settings, orch: Orchestrator, store: Store, *, interval: float = INTERVAL_S) -> None:
        self.settings = settings
        self.orch = orch
        self.store = store
        self.interval = interval
        self._removing: set[asyncio.Task[None]] = set()

    def attach(self) -> None:
        """Remove each successful run's folder once it ends, when ``TASKFLOW_ZIP_ONLY`` is set."""
        if self.settings.zip_only:
            self.orch.events.listen(self._on_event)

    def detach(self) -> None:
        """Stop listening to runs ending."""
        if self.settings.zip_only:
            self.orch.events.unlisten(self._on_event)

    async def run_forever(self) -> None:
        """Apply the limits now and every ``interval`` until cancelled (a named task of the service)."""
        while True:
            try:
                await self.apply()
            except Exception:  # the database busy, a file that cannot go: try again next time
                log.exception("retention failed; it tries again in %.0f s", self.interval)
            await asyncio.sleep(self.interval)

    async def apply(self) -> Freed:
        """One pass: delete what the limits choose, and folders of successful runs when ZIP-only."""
        store = self.store
        freed = await clean(self.settings, store, await limits_of(self.settings, store))
        if freed.run_ids:
            log.info("retention: %s", freed.describe())
        if self.settings.zip_only:
            done = [r for r, _, state, _ in await store.ended_runs() if state == RunState.SUCCESS]
            folders = await asyncio.to_thread(_remove_folders, self.settings.runs_dir, done)
            if folders:
                log.info("retention: removed the folders of %d run(s) kept as ZIPs", folders)
        return freed

    def _on_event(self, event: RunEvent) -> None:
        if event.task_id is None and event.state == RunState.SUCCESS:
            # The ZIP is written before the end is stored and published.
            task = asyncio.create_task(
                asyncio.to_thread(_remove_folders, self.settings.runs_dir, [event.run_id]),
                name=f"zip-only-{event.run_id}",
            )
            self._removing.add(task)
            task.add_done_callback(self._removing.discard)

    async def close(self) -> None:
        """Wait for folders being removed."""
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._removing)


def _files(runs_dir: Path, run_id: int) -> list[Path]:
    folder = RunFolder(runs_dir, run_id)
    return [folder.path, folder.archive]


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"


def _bytes(path: Path) -> int:
    """Disk space the file or folder takes (blocks allocated: a small file takes a whole block)."""
    if path.is_dir():
        return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file())
    return path.stat().st_blocks * 512 if path.is_file() else 0


def _sizes(runs_dir: Path, run_ids: list[int]) -> int:
    return sum(_bytes(p) for run_id in run_ids for p in _files(runs_dir, run_id))


def _remove(runs_dir: Path, run_ids: list[int]) -> int:
    """Remove the runs' folders and ZIPs (blocking: call from a thread); the bytes freed."""
    freed = 0
    for run_id in run_ids:
        for path in _files(runs_dir, run_id):
            freed += _bytes(path)
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
    return freed


def _remove_folders(runs_dir: Path, run_ids: list[int]) -> int:
    """Remove the folders of runs whose ZIP exists (blocking); how many were removed."""
    removed = 0
    for run_id in run_ids:
        folder = RunFolder(runs_dir, run_id)
        if folder.archive.is_file() and folder.path.is_dir():
            shutil.rmtree(folder.path, ignore_errors=True)
            removed += 1
    return removed
