"""A run's folder ``dag/dag_<id>/``: its config, output files, ``run.log``, ``run.json``, and the ZIP."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from pathlib import Path
from typing import Any

from orchestrator.jsontext import dump_json, output_json
from orchestrator.records import RunRecord, TaskFields, duration_s

# Files up to this size (as JSON) are written in the event loop: that costs less than the hop to a
# thread (~1 ms on a busy 2-core machine). Bigger ones are written from a thread, so the loop never
# waits long on disk.
INLINE_WRITE_MAX = 256 * 1024
# Run files bigger than this (compact) are left compact: they are read by programs, not people, and
# indenting nearly doubles what the ZIP has to deflate.
PRETTY_MAX = 64 * 1024
# Files up to this size are read whole to be archived (see ``_add``); bigger ones are streamed.
ONE_READ_MAX = 16 * 1024 * 1024
LOG_FORMAT = "%(asctime)s %(levelname)s %(task)s %(message)s"


class RunFolder:
    """Paths and files of one run; writing is done here only."""

    def __init__(self, runs_dir: Path, run_id: int) -> None:
        self.run_id = run_id
        self.path = runs_dir / f"dag_{run_id}"
        self.archive = runs_dir / f"dag_{run_id}.zip"

    def create(self, config_json: str) -> None:
        """Make the folder and write ``config.json`` from the config's JSON text (kept if it exists: a resumed run)."""
        self.path.mkdir(parents=True, exist_ok=True)
        config_file = self.path / "config.json"
        if not config_file.exists():
            big = len(config_json) > PRETTY_MAX
            # json, not orjson, reads it: orjson turns integers past 64 bits into floats.
            data = config_json.encode() if big else dump_json(json.loads(config_json), indent=True)
            _atomic_write(config_file, data)

    def output_name(self, task_id: str, filename: str | None, output: Any) -> str:
        """Where a task's output goes: its ``filename``, else ``<task_id>.txt`` or ``.json``."""
        return filename or f"{task_id}.{'txt' if isinstance(output, str) else 'json'}"

    def write_output(self, name: str, output: Any, encoded: str) -> None:
        """Write an output: text as text, anything else as JSON. Atomic, so a crash leaves no half file.

        ``encoded`` is the output's compact JSON (``output_json``), which the caller has made already:
        a big output is written as that, a small one indented for people.
        """
        if isinstance(output, str):
            data = output
        elif len(encoded) > PRETTY_MAX:
            data = encoded
        else:
            data = output_json(output, indent=True)
        _atomic_write(self.path / name, data.encode())

    def open_log(self) -> logging.Handler:
        """A handler appending to ``run.log`` (the caller attaches and closes it)."""
        handler = logging.FileHandler(self.path / "run.log", encoding="utf-8", delay=True)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        return handler

    def write_report(self, run: RunRecord, tasks: list[TaskFields]) -> None:
        """Write ``run.json`` (SPEC §2)."""
        report = {
            "run_id": run.run_id,
            "dag_id": run.dag_id,
            "state": run.state.value,
            "params": run.params,
            "logical_date": run.logical_date,
            "started_at": run.started_at,
            "ended_at": run.ended_at,
            "tasks": {
                t.task_id: {
                    "state": t.state,
                    "attempts": t.attempts,
                    "started_at": t.started_at,
                    "ended_at": t.ended_at,
                    "duration_s": duration_s(t.started_at, t.ended_at),
                    "error": t.error,
                    "output_file": t.output_file,
                }
                for t in tasks
            },
        }
        _atomic_write(self.path / "run.json", _for_people(report))

    def make_archive(self) -> Path:
        """Zip the folder to ``dag_<id>.zip`` with a ``manifest.json`` of sha256 sums (blocking)."""
        files = sorted(p for p in self.path.rglob("*") if p.is_file() and not p.name.endswith(".tmp"))
        manifest = {"run_id": self.run_id, "files": {}}
        tmp = self.archive.with_suffix(".zip.tmp")
        # Level 1: about twice as fast as the default on run data (JSON, logs), for a few % more bytes.
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            for file in files:
                arcname = file.relative_to(self.path).as_posix()
                manifest["files"][arcname] = _add(zf, file, arcname)
            zf.writestr("manifest.json", dump_json(manifest, indent=True))
        os.replace(tmp, self.archive)
        return self.archive


def _add(zf: zipfile.ZipFile, file: Path, arcname: str) -> dict[str, Any]:
    """Put ``file`` in the archive (with its own time); its manifest entry, sha256 and size."""
    size = file.stat().st_size
    if size > ONE_READ_MAX:  # read twice, in chunks: once into the ZIP, once for the sum
        zf.write(file, arcname)
        with file.open("rb") as src:
            return {"sha256": hashlib.file_digest(src, "sha256").hexdigest(), "bytes": size}
    # Read once, and deflated in one call: zipfile feeds a file to zlib 8 KiB at a time, at twice the cost.
    data = file.read_bytes()
    zf.writestr(zipfile.ZipInfo.from_file(file, arcname), data, zf.compression, zf.compresslevel)
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def _for_people(value: Any) -> bytes:
    """Indented JSON, unless it is bigger than ``PRETTY_MAX``."""
    compact = dump_json(value)
    return compact if len(compact) > PRETTY_MAX else dump_json(value, indent=True)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
