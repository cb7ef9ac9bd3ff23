"""What an operation is: an async function, a pydantic model of its params, and the context it runs in."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from operations.destinations import DestinationPolicy
from operations.errors import PermanentOperationError
from operations.filenames import Filename

# The largest output an operation may produce (TASKFLOW_MAX_OUTPUT_BYTES's default): its file's size.
DEFAULT_MAX_OUTPUT_BYTES = 64 * 1024 * 1024


class OperationParams(BaseModel):
    """Base of every operation's params model.

    ``filename`` belongs to every operation: the engine saves the operation's output under that
    name in the run folder. Unknown params are refused so a typo is caught before a run starts.
    """

    model_config = ConfigDict(extra="forbid")

    filename: Filename | None = None


class MessageSender(Protocol):
    """What ``telegram_send`` needs from the bot; the bot issue provides the real one."""

    async def send(self, *, username: str | None, chat_id: int | None, text: str, file: Path | None) -> dict[str, Any]:
        """Send ``text`` (and ``file``) and return a summary of what was sent."""
        ...


@dataclass(slots=True)
class Resources:
    """Shared resources an operation may use; created once by the service and injected."""

    http: Any = None  # aiohttp.ClientSession, created lazily by the orchestrator
    sender: MessageSender | None = None
    allow_shell: bool = False
    # TASKFLOW_MAX_OUTPUT_BYTES: operations that can tell refuse to build a larger output.
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
    # Where ``http_request`` may go (TASKFLOW_HTTP_ALLOWED_HOSTS, TASKFLOW_HTTP_BLOCK_PRIVATE); ``http`` obeys it.
    destinations: DestinationPolicy = field(default_factory=DestinationPolicy)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class OperationContext:
    """What a running operation gets: its run folder, a logger into the run's log, resources."""

    run_id: int
    dag_id: str
    task_id: str
    attempt: int
    folder: Path
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger]
    resources: Resources
    # False when the task runs away from the service (e.g. on a Dask worker): no bot there.
    local: bool = True
    # The task's timeout (seconds), for executors that must also enforce it where the task runs (Dask).
    timeout: float | None = None

    def path(self, name: str) -> Path:
        """Resolve ``name`` inside the run folder, refusing anything that would leave it."""
        root = self.folder.resolve()
        target = (root / name).resolve()
        if target == root or not target.is_relative_to(root):
            raise PermanentOperationError(f"path {name!r} is outside the run folder")
        return target


def output_too_large(size: int, limit: int) -> PermanentOperationError:
    """The failure of an output over ``TASKFLOW_MAX_OUTPUT_BYTES``."""
    return PermanentOperationError(f"output is {size} bytes or more; the limit is {limit} (TASKFLOW_MAX_OUTPUT_BYTES)")


def dumps_within(value: Any, indent: int | None, limit: int) -> str:
    """``json.dumps`` (``ensure_ascii=False``), refused as soon as the text passes ``limit`` characters.

    Indenting deeply nested data multiplies its size: this never builds more than ``limit``.
    """
    chunks: list[str] = []
    total = 0
    for chunk in json.JSONEncoder(indent=indent, ensure_ascii=False).iterencode(value):
        total += len(chunk)
        if total > limit:
            raise output_too_large(total, limit)
        chunks.append(chunk)
    return "".join(chunks)


OperationFn = Callable[[OperationContext, Any], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Operation:
    """A registered operation."""

    name: str
    fn: OperationFn
    params_model: type[OperationParams]
    description: str = ""
    # Whether the operation can run away from the service process (see ``OperationContext.local``).
    remote_ok: bool = True
    # From the function's return hint: ``-> None`` gives no output (so no output file, no filename);
    # ``-> str`` always text (``<task_id>.txt`` by default).
    writes_output: bool = True
    text_output: bool = False
    # False for operations that only wait (sleep): their attempts do not take one of the workers.
    holds_worker: bool = True


ParamsMapping = Mapping[str, Any]
