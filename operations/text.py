"""Operations over data: ``json_to_string`` and ``select``."""

from __future__ import annotations

import re
import string
from typing import Any

from pydantic import Field, field_validator

from operations.base import OperationContext, OperationParams, dumps_within, output_too_large
from operations.errors import PermanentOperationError
from operations.paths import PathError, split_path, walk
from operations.registry import operation

_NUMBER = re.compile(r"\d+")
MAX_INDENT = 16


class _Formatter(string.Formatter):
    """``{a.b.0}`` walks into the data like a dependent-param path, and never calls methods.

    The text it builds stays within ``limit`` characters: a width or precision past it is refused
    before anything is padded (``{v:>2000000000}`` would allocate gigabytes), and the fields'
    results are counted as they come.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> tuple[Any, str]:
        try:
            return walk(kwargs["__data__"], split_path(field_name)), field_name
        except PathError as exc:
            raise PermanentOperationError(f"template field {{{field_name}}}: {exc}") from None

    def format_field(self, value: Any, format_spec: str) -> Any:
        # Width and precision are the only numbers a format spec holds (a digit fill is one digit).
        if any(int(n) > self.limit for n in _NUMBER.findall(format_spec)):
            raise output_too_large(max(int(n) for n in _NUMBER.findall(format_spec)), self.limit)
        text = super().format_field(value, format_spec)
        self.total += len(text)
        if self.total > self.limit:
            raise output_too_large(self.total, self.limit)
        return text


class JsonToStringParams(OperationParams):
    """``data`` to render; ``template`` with ``{field}`` (or ``{a.b.0}``) places, else pretty JSON."""

    data: Any = None
    template: str | None = None
    indent: int = Field(default=2, ge=0, le=MAX_INDENT)

    @field_validator("template")
    @classmethod
    def _parsable(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                list(string.Formatter().parse(value))
            except ValueError as exc:
                raise ValueError(f"bad template: {exc}") from None
        return value


@operation("json_to_string")
async def json_to_string(ctx: OperationContext, params: JsonToStringParams) -> str:
    """Turn JSON data into text: pretty-printed, or through a ``{field}`` template."""
    limit = ctx.resources.max_output_bytes
    if params.template is None:
        return dumps_within(params.data, params.indent, limit)
    try:
        return _Formatter(limit).vformat(params.template, (), {"__data__": params.data})
    except (IndexError, ValueError, TypeError) as exc:
        raise PermanentOperationError(f"template: {exc}") from None


class SelectParams(OperationParams):
    """The value at ``path`` (``"a.b.0"``) of ``data``; ``default`` when the path is missing."""

    data: Any = None
    path: str = ""
    default: Any = None
    required: bool = True


@operation("select")
async def select(ctx: OperationContext, params: SelectParams) -> Any:
    """Pick one value out of JSON data."""
    try:
        return walk(params.data, split_path(params.path))
    except PathError as exc:
        if params.required:
            raise PermanentOperationError(f"path {params.path!r}: {exc}") from None
        return params.default
