"""``shell``: a command with a timeout; refused unless the service was started with shell enabled."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

from pydantic import Field

from operations.base import OperationContext, OperationParams
from operations.errors import OperationError, PermanentOperationError
from operations.registry import operation

_MAX_CAPTURE = 1024 * 1024


class ShellParams(OperationParams):
    """A shell command run in the run folder."""

    command: str = Field(min_length=1)
    timeout: float = Field(default=60.0, gt=0, le=24 * 3600)
    env: dict[str, str] = Field(default_factory=dict)
    check: bool = True


@operation("shell")
async def shell(ctx: OperationContext, params: ShellParams) -> dict[str, object]:
    """Run a shell command; returns its exit code, stdout and stderr."""
    if not ctx.resources.allow_shell:
        raise PermanentOperationError("the shell operation is disabled (set TASKFLOW_ALLOW_SHELL=1)")
    ctx.logger.info("shell: %s", params.command)
    proc = await asyncio.create_subprocess_shell(
        params.command,
        cwd=ctx.folder,
        env={**os.environ, **params.env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # so a timeout can kill the whole process group
    )
    try:
        async with asyncio.timeout(params.timeout):
            assert proc.stdout is not None  # both piped above
            assert proc.stderr is not None
            out, err, _ = await asyncio.gather(_capture(proc.stdout), _capture(proc.stderr), proc.wait())
    except TimeoutError:
        _kill_group(proc.pid)
        await proc.wait()
        raise OperationError(f"command timed out after {params.timeout}s") from None
    except asyncio.CancelledError:
        _kill_group(proc.pid)
        raise
    result = {
        "exit_code": proc.returncode,
        "stdout": out.decode("utf-8", errors="replace"),
        "stderr": err.decode("utf-8", errors="replace"),
    }
    if params.check and proc.returncode != 0:
        tail = result["stderr"].strip().splitlines()[-3:]  # type: ignore[union-attr]
        raise OperationError(f"command exited with {proc.returncode}: {' | '.join(tail)}")
    return result


async def _capture(stream: asyncio.StreamReader) -> bytes:
    """The first ``_MAX_CAPTURE`` bytes of a stream; the rest is read and dropped, never held."""
    kept: list[bytes] = []
    size = 0
    while chunk := await stream.read(64 * 1024):
        if size < _MAX_CAPTURE:
            kept.append(chunk[: _MAX_CAPTURE - size])
            size += len(kept[-1])
    return b"".join(kept)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
