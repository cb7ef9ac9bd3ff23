"""Paths into JSON values: ``"data.items.0.name"`` walks dict keys and list indices."""

from __future__ import annotations

from collections.abc import Container, Sequence
from typing import Any


class PathError(LookupError):
    """A path does not exist in a value; the message says which step failed."""


def split_path(path: str) -> list[str]:
    """``"a.b.0"`` → ``["a", "b", "0"]``; the empty path is the value itself."""
    return [part for part in path.split(".")] if path else []


def walk(value: Any, keys: Sequence[str]) -> Any:
    """Follow ``keys`` into ``value``; a number indexes a list (negative counts from the end)."""
    current = value
    for depth, key in enumerate(keys):
        where = ".".join(keys[: depth + 1])
        if isinstance(current, dict):
            if key not in current:
                raise PathError(f"key {key!r} not found (at {where!r})")
            current = current[key]
        elif isinstance(current, list):
            try:
                index = int(key)
            except ValueError:
                raise PathError(f"{key!r} is not a list index (at {where!r})") from None
            if not -len(current) <= index < len(current):
                raise PathError(f"index {index} out of range for {len(current)} items (at {where!r})")
            current = current[index]
        else:
            raise PathError(f"cannot take {key!r} of a {type(current).__name__} (at {where!r})")
    return current


def split_reference(ref: str, task_ids: Container[str]) -> tuple[str, list[str]] | None:
    """Split ``"<task_id>.<key>…"`` at the longest prefix that is a task id; None if none is."""
    parts = ref.split(".")
    for cut in range(len(parts), 0, -1):
        head = ".".join(parts[:cut])
        if head in task_ids:
            return head, parts[cut:]
    return None
