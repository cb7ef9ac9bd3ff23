"""The errors an operation raises: the root of TaskFlow's one hierarchy of expected errors.

They live here, with the plug-in interface, so that operations (and other packages' operations)
depend on nothing of the orchestrator's; ``orchestrator.errors`` builds the rest on them.
"""

from __future__ import annotations


class TaskFlowError(Exception):
    """Base of all expected errors; ``str(err)`` is safe to show to a user."""


class OperationError(TaskFlowError):
    """An operation failed in a way worth retrying (network, remote error, ...)."""


class PermanentOperationError(OperationError):
    """An operation failed in a way a retry cannot fix (bad path, missing reference, refused)."""
