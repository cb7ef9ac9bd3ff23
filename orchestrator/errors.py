"""One hierarchy for every error TaskFlow raises on purpose.

The edges translate these: the web views into 4xx JSON bodies, the bot into chat replies, the CLI
into a message and an exit code. Anything that is not a ``TaskFlowError`` is a bug.
"""

from __future__ import annotations

from dataclasses import dataclass

# The root of the hierarchy, and the errors operations raise, belong to the plug-in interface.
from operations.errors import OperationError as OperationError
from operations.errors import PermanentOperationError as PermanentOperationError
from operations.errors import TaskFlowError as TaskFlowError


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input, where it is (``tasks[2].dependencies``) and, in a task, its id."""

    location: str
    message: str
    task_id: str | None = None

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message

    def named(self) -> str:
        """As ``str()``, with the task's id after the location: ``tasks[0].operation (alpha): ...``."""
        return f"{self.location} ({self.task_id}): {self.message}" if self.task_id else str(self)


class ConfigError(TaskFlowError):
    """A DAG config (or a file turned into one) failed validation; carries every problem found."""

    def __init__(self, problems: list[Problem], *, source: str = "config") -> None:
        self.problems = problems
        self.source = source
        super().__init__(self.report())

    def report(self) -> str:
        """A human-readable report: one line per problem."""
        lines = [f"{self.source} is invalid ({len(self.problems)} problem(s)):"]
        lines += [f"  - {p.named()}" for p in self.problems]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, object]:
        """The report as JSON for the API."""
        return {
            "error": "invalid_config",
            "message": f"{self.source} is invalid",
            "problems": [{"location": p.location, "task_id": p.task_id, "message": p.message} for p in self.problems],
        }


class NotFoundError(TaskFlowError):
    """A DAG, run, schedule or file that does not exist."""


class ConflictError(TaskFlowError):
    """An action that does not fit the current state (cancel a finished run, ...)."""


class ExecutorUnavailableError(TaskFlowError):
    """The executor lost the attempt (e.g. a Dask scheduler went away); not the task's fault.

    The engine puts the task back in the queue after a pause (longer each time in a row) without
    counting a failure, so a run survives its cluster restarting. ``started`` is False when the
    attempt never reached the executor at all: then it does not count as an attempt either.
    """

    def __init__(self, message: str, *, started: bool = True) -> None:
        super().__init__(message)
        self.started = started


class InvalidJsonError(TaskFlowError):
    """Input that is not JSON TaskFlow can take; ``problem`` says what and where (line, column)."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(str(problem))


def describe(exc: BaseException) -> str:
    """An error as users see it: our own messages as they are, anything else with its type's name.

    Made valid Unicode: an error may quote text that is not, and the store, run.json and chats need it.
    """
    text = str(exc).encode("utf-8", "replace").decode()
    if isinstance(exc, TaskFlowError | TimeoutError):  # our own messages say it all
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
