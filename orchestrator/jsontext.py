"""Untrusted JSON text: parsed with located errors, and checked to be storable everywhere.

``json.loads`` accepts more than the rest of TaskFlow can keep: ``"\\ud800"`` (an unpaired surrogate)
cannot be encoded as UTF-8, so SQLite, the run folder and Telegram would all refuse it later, and
values nested thousands deep overflow encoders. Both are refused here, at the edge, with a message.
"""

from __future__ import annotations

import json
from typing import Any

from orchestrator.errors import InvalidJsonError, Problem
from orchestrator.limits import MAX_JSON_DEPTH


def load_json(raw: str | bytes) -> Any:
    """Parse JSON text; ``InvalidJsonError`` naming the line and column (or the reason) if it is not."""
    try:
        return json.loads(raw)
    except UnicodeDecodeError as exc:
        raise InvalidJsonError(Problem("", f"not UTF-8 text: {exc.reason} at byte {exc.start}")) from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise InvalidJsonError(Problem(where, f"invalid JSON: {exc.msg}")) from None
    except RecursionError:
        raise InvalidJsonError(Problem("", f"JSON nested too deeply (at most {MAX_JSON_DEPTH} levels)")) from None
    except ValueError as exc:  # e.g. an integer beyond Python's digit limit
        raise InvalidJsonError(Problem("", f"invalid JSON: {exc}")) from None


def value_problems(value: Any, location: str = "") -> list[Problem]:
    """Strings that are not valid Unicode and nesting deeper than ``MAX_JSON_DEPTH``, each located."""
    problems: list[Problem] = []
    stack: list[tuple[Any, str, int]] = [(value, location, 0)]
    while stack:  # children are pushed in reverse, so problems come out in document order
        item, where, depth = stack.pop()
        if isinstance(item, str):
            if not _encodable(item):
                problems.append(Problem(where, "text holds an unpaired surrogate (\\ud800-\\udfff): not valid Unicode"))
            continue
        if not isinstance(item, dict | list):
            continue
        if depth >= MAX_JSON_DEPTH:
            problems.append(Problem(where, f"nested deeper than {MAX_JSON_DEPTH} levels"))
            continue
        if isinstance(item, dict):
            if not all(_encodable(key) for key in item):
                problems.append(Problem(where, "a key holds an unpaired surrogate: not valid Unicode"))
            children = [(child, f"{where}.{key}" if where else str(key)) for key, child in item.items()]
        else:
            children = [(child, f"{where}[{i}]") for i, child in enumerate(item)]
        stack.extend((child, child_where, depth + 1) for child, child_where in reversed(children))
    return problems


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
