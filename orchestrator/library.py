"""The DAGs the service knows: loaded from ``dags/``, added by users, saved under ``configs/<dag_id>/``.

The store holds each DAG's current config; ``configs/<dag_id>/config.json`` is its copy on disk,
with every earlier version kept beside it (``config.v<N>.json``). Files in ``dags/``
(``TASKFLOW_DAGS_DIR``) are loaded at start and watched: a changed file replaces its DAG, an invalid
one is reported and the previous version kept, a deleted one removes its DAG. The name and hash of
the file last loaded are kept beside the config (``loaded_from``): the file is the DAG's identity,
and an unchanged file never undoes a user's edit.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from operations.registry import get_operation
from orchestrator.errors import ConfigError, NotFoundError, Problem
from orchestrator.models import DagConfig, check_filename
from orchestrator.records import DagRecord
from orchestrator.settings import Settings
from orchestrator.store import Store
from orchestrator.validation import check_config, parse_config

log = logging.getLogger("taskflow.library")

WATCH_INTERVAL_S = 1.0


def output_names(config: DagConfig) -> dict[str, str]:
    """The file each task that writes one saves its output as: its ``filename``, or the default."""
    names = {}
    for task in config.tasks:
        op = get_operation(task.operation)
        if op is not None and not op.writes_output:
            continue
        text = op is not None and op.text_output
        names[task.id] = task.filename or f"{task.id}.{'txt' if text else 'json'}"
    return names


def output_name(config: DagConfig, task_id: str) -> str:
    """The file a task saves its output as; ``ConfigError`` if it writes none (no filename to change)."""
    name = output_names(config).get(task_id)
    if name is None:
        operation = config.task(task_id).operation
        message = f"task {task_id!r} ({operation}) writes no output file, so it has no filename to change"
        raise ConfigError([Problem(f"{task_id}.filename", message)], source="filename")
    return name


class DagLibrary:
    """Add, replace, edit and look up DAGs."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self._seen: dict[Path, tuple[int, int]] = {}  # file → (mtime ns, size) last looked at
        self._scanned = False  # the first scan logs where DAGs are read from

    async def get(self, dag_id: str) -> DagConfig:
        """The current config of a DAG (``NotFoundError`` if unknown)."""
        record = await self.store.get_dag(dag_id)
        return DagConfig.model_validate(record.config)

    async def list(self) -> list[DagRecord]:
        """Every known DAG."""
        return await self.store.list_dags()

    def parse(self, raw: str | bytes | dict[str, Any], *, source: str) -> DagConfig:
        """A config validated under this service's settings (task limit, shell allowed or not)."""
        return parse_config(
            raw, source=source, max_tasks=self.settings.max_tasks, allow_shell=self.settings.allow_shell
        )

    async def save(self, config: DagConfig, *, source: str) -> DagRecord:
        """Add or replace a DAG (already validated) and keep its config on disk."""
        check_config(config, allow_shell=self.settings.allow_shell)
        dumped = config.model_dump(mode="json", exclude_defaults=True)
        await asyncio.to_thread(self._write_versioned, config.dag_id, dumped)
        return await self.store.save_dag(config.dag_id, dumped, source=source)

    async def add_new(self, config: DagConfig, *, source: str) -> DagRecord | None:
        """Add a DAG (already validated) unless one of that id exists: then None, and nothing changes."""
        if await self._known(config.dag_id):
            return None  # the usual case, answered by a read (the insert below takes the write lock)
        dumped = config.model_dump(mode="json", exclude_defaults=True)
        record = await self.store.add_dag(config.dag_id, dumped, source=source)
        if record is not None:
            await asyncio.to_thread(self._write_versioned, config.dag_id, dumped)
        return record

    async def add_json(self, raw: str | bytes, *, source: str) -> DagRecord:
        """Validate JSON text (a user's upload) and save it as a DAG."""
        return await self.save(self.parse(raw, source=source), source=source)

    async def set_filename(self, dag_id: str, task_id: str, filename: str) -> DagConfig:
        """Change one task's ``filename`` param: the only edit a chat user may make."""
        config = await self.get(dag_id)
        try:
            task = config.task(task_id)
        except KeyError:
            raise NotFoundError(f"DAG {dag_id!r} has no task {task_id!r}") from None
        output_name(config, task_id)  # ConfigError for a task that writes no file
        try:
            check_filename(filename)
        except ValueError as exc:
            raise ConfigError([Problem(f"{task_id}.filename", str(exc))], source="filename") from None
        task.independent_params["filename"] = filename
        await self.save(config, source="filename edit")
        return config

    def versions(self, dag_id: str) -> list[Path]:
        """Earlier saved versions of a DAG's config, oldest first."""
        folder = self.settings.configs_dir / dag_id
        return sorted(folder.glob("config.v*.json"), key=lambda p: int(p.stem.split(".v")[-1]))

    def _write_versioned(self, dag_id: str, dumped: dict[str, object]) -> None:
        folder = self.settings.configs_dir / dag_id
        folder.mkdir(parents=True, exist_ok=True)
        current = folder / "config.json"
        if current.exists():
            n = len(self.versions(dag_id)) + 1
            os.replace(current, folder / f"config.v{n}.json")
        tmp = folder / "config.json.tmp"
        tmp.write_text(json.dumps(dumped, indent=2, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, current)

    # -- the dags/ folder -------------------------------------------------------------------

    async def sync_folder(self) -> dict[str, list[str]]:
        """Load new or changed files of ``dags/``, drop the DAGs of deleted ones; returns problems by file name.

        A file is its DAG's identity (``loaded_from`` names it): a file whose ``dag_name`` changed
        replaces its old DAG, a deleted file removes its DAG, and a file naming a DAG that another file
        or a user made is refused.
        """
        problems: dict[str, list[str]] = {}
        folder = self.settings.dags_dir
        files = sorted(folder.glob("*.json")) if folder.is_dir() else []
        for path in files:
            stat = path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            if self._seen.get(path) == stamp:
                continue
            self._seen[path] = stamp
            try:
                await self._load_file(path)
            except ConfigError as exc:
                problems[path.name] = [str(p) for p in exc.problems]
                log.warning("%s; keeping the previous version", exc.report())
        first = not self._scanned
        if folder.is_dir() and (first or set(self._seen) != set(files)):
            self._seen = {path: stamp for path, stamp in self._seen.items() if path in files}
            await self._drop_deleted({path.name for path in files})
        if first:
            self._scanned = True
            self._log_folder(folder, len(files) - len(problems))
        return problems

    def _log_folder(self, folder: Path, loaded: int) -> None:
        if folder.is_dir():
            log.info("reading DAGs from %s (TASKFLOW_DAGS_DIR): %d loaded", folder.resolve(), loaded)
        else:
            log.warning("no DAGs loaded from files: %s does not exist (TASKFLOW_DAGS_DIR)", folder.resolve())

    async def _load_file(self, path: Path) -> None:
        data = await asyncio.to_thread(path.read_bytes)
        digest = f"{path.name}#{hashlib.sha256(data).hexdigest()}"
        config = self.parse(data, source=path.name)
        owned = self._loaded_from()
        if owned.get(config.dag_id) == path.name and await self._known(config.dag_id):
            if self._marker(config.dag_id).read_text(encoding="utf-8") == digest:
                return  # same file as last time: keep any edits users made since
        elif await self._known(config.dag_id):
            maker = f"dags/{owned[config.dag_id]}" if config.dag_id in owned else "a user (API, bot or upload)"
            message = f"DAG {config.dag_id!r} exists already, made by {maker}; rename dag_name in this file"
            raise ConfigError([Problem("dag_name", message)], source=path.name)
        await self.save(config, source=f"file:{path.name}")
        self._marker(config.dag_id).write_text(digest, encoding="utf-8")
        log.info("loaded DAG %r from %s", config.dag_id, path.name)
        for old in sorted(dag_id for dag_id, name in owned.items() if name == path.name and dag_id != config.dag_id):
            await self._forget(old, f"{path.name} now holds DAG {config.dag_id!r}")

    async def _drop_deleted(self, present: set[str]) -> None:
        for dag_id, name in sorted(self._loaded_from().items()):
            if name not in present:
                await self._forget(dag_id, f"its file {name} was deleted")

    async def _forget(self, dag_id: str, why: str) -> None:
        """Remove a DAG that came from a file (its saved versions stay in configs/)."""
        self._marker(dag_id).unlink(missing_ok=True)
        try:
            await self.store.delete_dag(dag_id)
        except NotFoundError:
            return
        log.warning("DAG %r removed: %s", dag_id, why)

    def _marker(self, dag_id: str) -> Path:
        return self.settings.configs_dir / dag_id / "loaded_from"

    def _loaded_from(self) -> dict[str, str]:
        """The file each DAG loaded from ``dags/`` came from, by dag_id."""
        owners: dict[str, str] = {}
        for marker in self.settings.configs_dir.glob("*/loaded_from"):
            with contextlib.suppress(OSError):
                owners[marker.parent.name] = marker.read_text(encoding="utf-8").rpartition("#")[0]
        return owners

    async def _known(self, dag_id: str) -> bool:
        try:
            await self.store.get_dag(dag_id)
        except NotFoundError:
            return False  # e.g. a new database beside old configs/: load the file again
        return True

    async def watch(self) -> None:
        """Re-scan ``dags/`` forever (run it as a named background task)."""
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            try:
                await self.sync_folder()
            except OSError as exc:
                log.warning("could not scan %s: %s", self.settings.dags_dir, exc)
