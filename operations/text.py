"""Operations over data: ``json_to_string`` and ``select``."""

from __future__ import annotations

import json
import string
from typing import Any

from pydantic import field_validator

from operations.base import OperationContext, OperationParams
from operations.errors import PermanentOperationError
from operations.paths import PathError, split_path, walk
from operations.registry import operation


class _Formatter(string.Formatter):
    """``{a.b.0}`` walks into the data like a dependent-param path, and never calls methods."""

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> tuple[Any, str]:
        try:
            return walk(kwargs["__data__"], split_path(field_name)), field_name
        except PathError as exc:
            raise PermanentOperationError(f"template field {{{field_name}}}: {exc}") from None


class JsonToStringParams(OperationParams):
    """``data`` to render; ``template`` with ``{field}`` (or ``{a.b.0}``) places, else pretty JSON."""

    data: Any = None
    template: str | None = None
    indent: int = 2

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
    if params.template is None:
        return json.dumps(params.data, indent=params.indent, ensure_ascii=False)
    try:
        return _Formatter().vformat(params.template, (), {"__data__": params.data})
    except (IndexError, ValueError) as exc:
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
