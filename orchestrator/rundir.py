"""A run's folder ``dag/dag_<id>/``: its config, output files, ``run.log``, ``run.json``, and the ZIP."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import time
import zipfile
from pathlib import Path
from typing import Any

from orchestrator.errors import TaskFlowError
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
STREAM_CHUNK = 1024 * 1024
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a ZIP entry can hold
LOG_FORMAT = "%(asctime)s %(levelname)s %(task)s %(message)s"
# The key of what SQLite keeps instead of an output too large for it: {"$taskflow_output_file":
# {"file": name, "text": bool}}. An output that is itself a dict with this key is kept the same way,
# so a stored value with it is always a reference.
OUTPUT_REF = "$taskflow_output_file"


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

    def stored_output(self, name: str, output: Any, encoded: str, limit: int) -> str:
        """What the store keeps of an output written to ``name``: its JSON, or past ``limit`` bytes a reference."""
        if not _utf8_longer(encoded, limit) and not (isinstance(output, dict) and OUTPUT_REF in output):
            return encoded
        return output_json({OUTPUT_REF: {"file": name, "text": isinstance(output, str)}})

    def load_outputs(self, stored: dict[str, Any]) -> dict[str, Any]:
        """Outputs as the store gave them, with each reference replaced by its file's content (blocking)."""
        return {task_id: self._resolve(task_id, value) for task_id, value in stored.items()}

    def _resolve(self, task_id: str, value: Any) -> Any:
        if not is_reference(value):
            return value
        ref = value[OUTPUT_REF]
        file = self.path / str(ref["file"])
        if file.parent != self.path or not file.is_file() or file.is_symlink():
            raise TaskFlowError(
                f"the output of task {task_id!r} was kept in {ref['file']!r}, which is not in {self.path}"
            )
        text = file.read_text(encoding="utf-8")
        return text if ref.get("text") else json.loads(text)

    def open_log(self) -> logging.Handler:
        """A handler appending to ``run.log`` (the caller attaches and closes it)."""
        handler = logging.FileHandler(self.path / "run.log", encoding="utf-8", delay=True)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        return handler

    def write_report(self, run: RunRecord, tasks: list[TaskFields]) -> None:
        """Write ``run.json``."""
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
        """Zip the folder to ``dag_<id>.zip`` with a ``manifest.json`` of sha256 sums (blocking).

        Only regular files inside the folder go in: a symlink (a shell task's, or anyone's with access
        to the data dir) could otherwise put any file of the machine into an archive served over HTTP.
        """
        manifest: dict[str, Any] = {"run_id": self.run_id, "files": {}}
        tmp = self.archive.with_suffix(".zip.tmp")
        # Level 1: about twice as fast as the default on run data (JSON, logs), for a few % more bytes.
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            for file in self._files():
                arcname = file.relative_to(self.path).as_posix()
                entry = _add(zf, file, arcname)
                if entry is not None:
                    manifest["files"][arcname] = entry
            zf.writestr("manifest.json", dump_json(manifest, indent=True))
        os.replace(tmp, self.archive)
        return self.archive

    def _files(self) -> list[Path]:
        """The folder's files, in sub-folders too (never through a symlink), but half-written ones."""
        found = []
        for root, _, names in os.walk(self.path, followlinks=False):
            found += [Path(root, name) for name in names if not is_temporary(name)]
        return sorted(found)


def _add(zf: zipfile.ZipFile, file: Path, arcname: str) -> dict[str, Any] | None:
    """Put ``file`` in the archive (with its own time); its manifest entry, or None if it is no regular file.

    The file is opened without following a symlink and checked through that handle, so nothing can
    swap it for a link between the check and the read.
    """
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # O_NONBLOCK: a FIFO must not hang
    except OSError:  # a symlink (ELOOP), or gone
        return None
    with os.fdopen(fd, "rb") as src:
        st = os.fstat(fd)
        # A second hard link could be to a file outside the folder.
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            return None
        info = zipfile.ZipInfo(arcname, date_time=max(time.localtime(st.st_mtime)[:6], _ZIP_EPOCH))
        info.external_attr = (st.st_mode & 0xFFFF) << 16
        if st.st_size <= ONE_READ_MAX:
            # Read once, and deflated in one call: zipfile feeds a file to zlib 8 KiB at a time, at twice the cost.
            data = src.read()
            zf.writestr(info, data, zf.compression, zf.compresslevel)
            return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        info.compress_type = zf.compression
        info._compresslevel = zf.compresslevel  # type: ignore[attr-defined]  # zipfile's name for it up to 3.12
        digest = hashlib.sha256()
        size = 0
        with zf.open(info, "w", force_zip64=True) as dst:
            while chunk := src.read(STREAM_CHUNK):
                digest.update(chunk)
                dst.write(chunk)
                size += len(chunk)
        return {"sha256": digest.hexdigest(), "bytes": size}


def is_temporary(name: str) -> bool:
    """Whether ``name`` is one ``_atomic_write`` uses: a leading dot, which no output's filename may have."""
    return name.startswith(".") and name.endswith(".tmp")


def output_size(output: Any, encoded: str, limit: int) -> int:
    """The bytes of an output's file, exactly when it may pass ``limit`` (else a bound under it)."""
    text = output if isinstance(output, str) else encoded
    return len(text.encode()) if len(text) * 4 > limit else len(text)


def is_reference(value: Any) -> bool:
    """Whether a stored output is a reference to its file (see ``OUTPUT_REF``)."""
    return isinstance(value, dict) and isinstance(value.get(OUTPUT_REF), dict)


def _utf8_longer(text: str, limit: int) -> bool:
    # A character takes at most 4 bytes: most texts are judged without encoding them.
    return len(text) > limit or (len(text) * 4 > limit and len(text.encode()) > limit)


def _for_people(value: Any) -> bytes:
    """Indented JSON, unless it is bigger than ``PRETTY_MAX``."""
    compact = dump_json(value)
    return compact if len(compact) > PRETTY_MAX else dump_json(value, indent=True)


def _atomic_write(path: Path, data: bytes) -> None:
    # Filenames may not start with "." (``check_filename``): no output can be this temporary file.
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
