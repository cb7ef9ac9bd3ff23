"""The operation registry: the ``@operation`` decorator and the ``taskflow.operations`` entry points."""

from __future__ import annotations

import importlib
import inspect
import logging
import typing
from collections.abc import Callable
from importlib.metadata import entry_points

from operations.base import Operation, OperationFn, OperationParams

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "taskflow.operations"
_BUILTIN_MODULES = (
    "operations.control",
    "operations.http",
    "operations.text",
    "operations.files",
    "operations.shell",
    "operations.telegram",
    "operations.iec",
)

_registry: dict[str, Operation] = {}
_loaded = False


def operation(
    name: str, *, description: str | None = None, remote_ok: bool = True, holds_worker: bool = True
) -> Callable[[OperationFn], OperationFn]:
    """Register an async ``fn(ctx, params)``; its params model is read from the ``params`` hint."""

    def decorate(fn: OperationFn) -> OperationFn:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"operation {name!r} must be an async function")
        hints = typing.get_type_hints(fn)
        model = hints.get("params")
        if not (isinstance(model, type) and issubclass(model, OperationParams)):
            raise TypeError(f"operation {name!r}: annotate 'params' with an OperationParams model")
        doc = description if description is not None else (inspect.getdoc(fn) or "")
        summary = doc.splitlines()[0] if doc else ""
        returns = hints.get("return")
        _registry[name] = Operation(
            name,
            fn,
            model,
            summary,
            remote_ok,
            writes_output=returns is not type(None),
            text_output=returns is str,
            holds_worker=holds_worker,
        )
        return fn

    return decorate


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = ep.load()  # a module whose decorators register, or an Operation object
        except Exception:  # a broken plug-in must not stop the service
            log.exception("could not load operation plug-in %s", ep.name)
            continue
        if isinstance(loaded, Operation):
            _registry[loaded.name] = loaded


def get_operation(name: str) -> Operation | None:
    """The registered operation called ``name``, or None."""
    _load()
    return _registry.get(name)


def all_operations() -> dict[str, Operation]:
    """Every registered operation, by name."""
    _load()
    return dict(sorted(_registry.items()))
