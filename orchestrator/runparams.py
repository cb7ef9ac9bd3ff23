"""The values a trigger gives a run's declared ``params``, checked against their defaults."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from typing import Any

from orchestrator.errors import ConfigError, Problem

SOURCE = "run params"
_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", dict: "an object",
               list: "an array"}  # fmt: skip


def run_params(declared: Mapping[str, Any], given: Mapping[str, Any] | None) -> dict[str, Any]:
    """The params a run uses: the defaults overlaid with ``given``; ``ConfigError`` naming each refusal."""
    given = given or {}
    problems = [Problem(f"params.{name}", "not a param of this DAG" + _known(declared)) for name in given
                if name not in declared]  # fmt: skip
    values: dict[str, Any] = {}
    for name, default in declared.items():
        if name not in given:
            if default is None:
                problems.append(Problem(f"params.{name}", "required: this DAG has no default for it"))
            values[name] = default
            continue
        value = given[name]
        if default is not None and not _same_type(value, default):
            wanted = _TYPE_NAMES.get(type(default), type(default).__name__)
            problems.append(Problem(f"params.{name}", f"must be {wanted} like its default {_show(default)}, "
                                                      f"not {_show(value)}"))  # fmt: skip
        values[name] = value
    if problems:
        raise ConfigError(problems, source=SOURCE)
    return values


def _same_type(value: Any, default: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):  # bool is an int to Python, not to JSON
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, int | float)
    return type(value) is type(default)


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "…"


def _known(declared: Mapping[str, Any]) -> str:
    return f" (its params: {', '.join(declared)})" if declared else " (it declares none)"


_FIRST_ASSIGNMENT = re.compile(r"(?:^|\s)[A-Za-z][A-Za-z0-9_]*=")


def split_assignments(text: str) -> tuple[str, dict[str, Any]]:
    """``"every 15m city=Paris"`` as ``("every 15m", {"city": "Paris"})``: params follow everything else."""
    found = _FIRST_ASSIGNMENT.search(text)
    if found is None:
        return text.strip(), {}
    return text[: found.start()].strip(), parse_assignments(text[found.start() :])


def parse_assignments(text: str) -> dict[str, Any]:
    """``city=Paris days=3 "note=two words"`` as params: a value is JSON when it parses, else a string.

    ``ValueError`` says what is wrong (unbalanced quotes, a word without ``=``).
    """
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise ValueError(f"cannot read the params ({exc})") from None
    return dict(parse_assignment(word) for word in words)


def parse_assignment(word: str) -> tuple[str, Any]:
    """One ``NAME=value``."""
    name, sep, raw = word.partition("=")
    if not sep or not name:
        raise ValueError(f"{word!r} is not NAME=value")
    try:
        value = json.loads(raw, parse_constant=_no_constant)
    except ValueError:
        value = raw
    return name, value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity stay text
