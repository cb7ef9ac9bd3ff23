"""A run's files over HTTP: its ZIP archive and its log."""

from __future__ import annotations

import asyncio
import os
import zipfile
from pathlib import Path

from aiohttp import hdrs, web

from orchestrator.records import RunRecord
from orchestrator.rundir import RunFolder
from orchestrator.settings import Settings
from web.middlewares import ApiError

LOG_TAIL_BYTES = 48 * 1024


def archive_path(settings: Settings, run: RunRecord) -> Path | None:
    """The run's ZIP once it is complete (the store learns of it only after it is written)."""
    if run.archive is None:
        return None
    return RunFolder(settings.runs_dir, run.run_id).archive


def log_path(settings: Settings, run_id: int) -> Path:
    """The run's ``run.log``."""
    return RunFolder(settings.runs_dir, run_id).path / "run.log"


def zip_response(path: Path, run: RunRecord) -> web.FileResponse:
    """The ZIP as a download named ``dag_<id>.zip``, with the run's id and state in headers."""
    headers = {
        hdrs.CONTENT_TYPE: "application/zip",
        hdrs.CONTENT_DISPOSITION: f'attachment; filename="dag_{run.run_id}.zip"',
        "X-TaskFlow-Run-Id": str(run.run_id),
        "X-TaskFlow-Run-State": run.state.value,
    }
    return web.FileResponse(path, headers=headers)


async def archive_response(settings: Settings, run: RunRecord) -> web.FileResponse:
    """The run's ZIP, or 409 while the run goes on, or 404 if it has none."""
    path = archive_path(settings, run)
    if path is None or not await asyncio.to_thread(path.is_file):
        if not run.finished:
            raise ApiError(409, "not_finished", f"run {run.run_id} is {run.state}; its ZIP is made when it ends")
        raise ApiError(404, "not_found", f"run {run.run_id} has no archive")
    return zip_response(path, run)


async def log_response(settings: Settings, run_id: int) -> web.FileResponse:
    """The whole ``run.log`` as text (404 before the run has logged anything)."""
    path = log_path(settings, run_id)
    if not await asyncio.to_thread(path.is_file):
        raise ApiError(404, "not_found", f"run {run_id} has no log yet")
    return web.FileResponse(path, headers={hdrs.CONTENT_TYPE: "text/plain; charset=utf-8"})


async def read_log_tail(settings: Settings, run_id: int, limit: int = LOG_TAIL_BYTES) -> tuple[str, bool]:
    """The end of the run's log (whole lines) and whether earlier lines were left out."""
    return await asyncio.to_thread(_tail, log_path(settings, run_id), limit)


def _tail(path: Path, limit: int) -> tuple[str, bool]:
    try:
        with path.open("rb") as f:
            size = f.seek(0, 2)
            f.seek(max(0, size - limit))
            data = f.read()
    except FileNotFoundError:
        return "", False
    cut = size > limit
    if cut:
        data = data.partition(b"\n")[2]  # start at a whole line
    return data.decode("utf-8", errors="replace"), cut


OUTPUT_PREVIEW_BYTES = 1024
TASK_LOG_BYTES = 1024 * 1024  # a task's lines are looked for in the log's last MiB


def _output_member(name: str) -> bool:
    # The store holds names the engine chose; refuse anything that could leave the run folder anyway.
    return bool(name) and "/" not in name and "\\" not in name and name not in (".", "..")


def read_output_preview(settings: Settings, run: RunRecord, name: str) -> tuple[bytes, int, str] | None:
    """The first ``OUTPUT_PREVIEW_BYTES`` of an output, its size, and whether it came from the folder or
    the ZIP (the folder may be gone once the ZIP is made); None if neither has it. Blocking."""
    if not _output_member(name):
        return None
    folder = RunFolder(settings.runs_dir, run.run_id)
    try:
        with (folder.path / name).open("rb") as f:
            return f.read(OUTPUT_PREVIEW_BYTES), os.fstat(f.fileno()).st_size, "folder"
    except FileNotFoundError:
        pass
    try:
        with zipfile.ZipFile(folder.archive) as zf, zf.open(name) as member:
            return member.read(OUTPUT_PREVIEW_BYTES), zf.getinfo(name).file_size, "zip"
    except (FileNotFoundError, KeyError, zipfile.BadZipFile):
        return None


async def output_response(request: web.Request, settings: Settings, run: RunRecord, name: str) -> web.StreamResponse:
    """A task's output file as a download, from the run folder or else from the run's ZIP."""
    folder = RunFolder(settings.runs_dir, run.run_id)
    if not _output_member(name):
        raise ApiError(404, "not_found", "this task has no output file")
    disposition = {hdrs.CONTENT_DISPOSITION: f'attachment; filename="{name}"'}
    path = folder.path / name
    if await asyncio.to_thread(path.is_file):
        return web.FileResponse(path, headers={hdrs.CONTENT_TYPE: "application/octet-stream", **disposition})
    try:
        zf = await asyncio.to_thread(zipfile.ZipFile, folder.archive)
    except (FileNotFoundError, zipfile.BadZipFile):
        raise ApiError(404, "not_found", f"the output {name} is in neither the run folder nor its ZIP") from None
    try:
        try:
            member = zf.open(name)
        except KeyError:
            raise ApiError(404, "not_found", f"the output {name} is in neither the run folder nor its ZIP") from None
        response = web.StreamResponse(headers={hdrs.CONTENT_TYPE: "application/octet-stream", **disposition})
        response.content_length = zf.getinfo(name).file_size
        await response.prepare(request)
        with member:
            while chunk := await asyncio.to_thread(member.read, 256 * 1024):
                await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        zf.close()
