"""The FB type → operation table: the built-in ``fourdiac_types.json`` and the user's mapping files (``--map``)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError, model_validator

from operations.registry import get_operation
from orchestrator.errors import ConfigError, InvalidJsonError, Problem
from orchestrator.jsontext import load_json
from orchestrator.limits import MAX_CONFIG_BYTES, MAX_ID_LENGTH
from orchestrator.validation import pydantic_problems

_TYPES_FILE = "fourdiac_types.json"  # next to this module


class TypeMapping(BaseModel):
    """How one 4diac FB type becomes a task (one entry of the table or of a ``--map`` file)."""

    model_config = ConfigDict(extra="forbid")

    operation: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    description: str = ""
    params: dict[str, str | None] = Field(
        default_factory=dict,
        description="pin or parameter name -> the operation's param name (null drops it)",
    )
    fixed: dict[str, Any] = Field(default_factory=dict, description="params every such block gets")
    outputs: dict[str, str] | None = Field(
        default=None,
        description="output pin -> path into the task's output ('' = all); absent: every pin is all",
    )
    ignore_events: list[str] = Field(default_factory=list, description="event inputs that make no dependency")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        # "HTTP_GET": "http_request" is short for {"operation": "http_request"}.
        return {"operation": value} if isinstance(value, str) else value


_MappingFile = RootModel[dict[str, TypeMapping]]


def load_mapping(source: str | os.PathLike[str] | bytes, *, name: str = "mapping") -> dict[str, dict[str, Any]]:
    """Read a user's JSON type mapping (a path, or the file's bytes) and validate it.

    The file maps FB type names to entries like the built-in ones::

        {"HTTP_GET": {"operation": "http_request", "params": {"URL": "url", "QI": null},
                      "fixed": {"method": "GET"}},
         "MY_NOOP": "noop"}

    Keys starting with ``$`` are comments. Raises ``ConfigError`` naming each bad entry (and, for bytes,
    ``name`` as where they came from).
    """
    name, raw = _read_mapping_source(source, name)
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError([Problem("", f"file is {len(raw)} bytes; the limit is {MAX_CONFIG_BYTES}")], source=name)
    try:
        data = load_json(raw)
    except InvalidJsonError as exc:
        raise ConfigError([exc.problem], source=name) from None
    table = _validate_table(data, name)
    return {key: entry.model_dump(exclude_defaults=True) for key, entry in table.items()}


def _read_mapping_source(source: str | os.PathLike[str] | bytes, name: str) -> tuple[str, bytes]:
    if isinstance(source, bytes):
        return name, source
    path = Path(source)
    try:
        return path.name, path.read_bytes()
    except OSError as exc:
        raise ConfigError([Problem("", f"cannot read the mapping file: {exc.strerror}")], source=path.name) from None


def _validate_table(data: Any, source: str) -> dict[str, TypeMapping]:
    if not isinstance(data, Mapping):
        example = '{"FB_TYPE": {"operation": "noop"}}'
        raise ConfigError([Problem("", f"a type mapping is a JSON object like {example}")], source=source)
    entries = {key: value for key, value in data.items() if not str(key).startswith("$")}
    try:
        table = _MappingFile.model_validate(entries).root
    except ValidationError as exc:
        raise ConfigError(pydantic_problems(exc), source=source) from None
    problems = [
        Problem(f"{key}.operation", f"unknown operation {entry.operation!r}")
        for key, entry in table.items()
        if get_operation(entry.operation) is None
    ]
    if problems:
        raise ConfigError(problems, source=source)
    return table


@cache
def _builtin_table() -> dict[str, TypeMapping]:
    text = resources.files(__package__).joinpath(_TYPES_FILE).read_text(encoding="utf-8")
    return _validate_table(json.loads(text), _TYPES_FILE)


def type_table(mapping: Mapping[str, Any] | None) -> dict[str, TypeMapping]:
    """The built-in table, extended (or overridden) by a mapping as ``load_mapping`` returns it."""
    table = dict(_builtin_table())
    if mapping:
        table.update(_validate_table(mapping, "mapping"))  # the user's entries win
    return table
