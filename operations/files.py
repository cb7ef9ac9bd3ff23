"""``write_file`` and ``read_file``: files inside the run folder, never outside it."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

from pydantic import Field

from operations.base import OperationContext, OperationParams, dumps_within, output_too_large
from operations.errors import PermanentOperationError
from operations.filenames import Filename
from operations.registry import operation

Format = Literal["auto", "text", "json"]


class WriteFileParams(OperationParams):
    """``content`` saved as the task's output file (``filename``): text as text, the rest as JSON."""

    content: Any
    format: Format = "auto"


@operation("write_file")
async def write_file(ctx: OperationContext, params: WriteFileParams) -> Any:
    """Save ``content`` into the run folder under ``filename`` (the engine writes the output)."""
    content = params.content
    if params.format == "text" and not isinstance(content, str):
        return dumps_within(content, 2, ctx.resources.max_output_bytes)
    if params.format == "json" and isinstance(content, str):
        try:
            return json.loads(content)
        except ValueError as exc:
            raise PermanentOperationError(f"content is not valid JSON: {exc}") from None
    return content


class ReadFileParams(OperationParams):
    """A file of the run folder (usually an upstream task's output) to read."""

    path: Filename
    format: Format = "auto"
    max_bytes: int = Field(default=20 * 1024 * 1024, gt=0)


@operation("read_file")
async def read_file(ctx: OperationContext, params: ReadFileParams) -> Any:
    """Read a file of the run folder; JSON (by name or ``format``) comes back parsed."""
    target = ctx.path(params.path)
    if not target.is_file():
        raise PermanentOperationError(f"file {params.path!r} does not exist in the run folder")
    size = target.stat().st_size
    if size > params.max_bytes:
        raise PermanentOperationError(f"file {params.path!r} is larger than {params.max_bytes} bytes")
    if size > ctx.resources.max_output_bytes:
        raise output_too_large(size, ctx.resources.max_output_bytes)
    text = await asyncio.to_thread(target.read_text, encoding="utf-8", errors="replace")
    as_json = params.format == "json" or (params.format == "auto" and target.suffix == ".json")
    if not as_json:
        return text
    try:
        return json.loads(text)
    except ValueError as exc:
        raise PermanentOperationError(f"file {params.path!r} is not valid JSON: {exc}") from None
