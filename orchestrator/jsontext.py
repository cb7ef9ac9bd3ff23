"""Untrusted JSON text: parsed with located errors, and checked to be storable everywhere.

``json.loads`` accepts more than the rest of TaskFlow can keep: ``"\\ud800"`` (an unpaired surrogate)
cannot be encoded as UTF-8, so SQLite, the run folder and Telegram would all refuse it later, and
values nested thousands deep overflow encoders. Both are refused here, at the edge, with a message.
What TaskFlow writes of its own (the journal, run files) is encoded by ``dump_json``; operations'
outputs by ``output_json``, with the standard library's rules.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

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


def output_json(value: Any, *, indent: bool = False) -> str:
    """An operation's output as JSON text: ``UnicodeEncodeError``, ``TypeError``, ``ValueError`` or
    ``RecursionError`` if it has none.

    The standard encoder, not orjson: it keeps NaN and infinities (which ``json.loads`` reads back)
    where orjson writes null, and refuses datetimes and the like, which orjson would turn into
    strings. Either would make the stored output differ from the one downstream tasks were given.
    """
    text = json.dumps(value, ensure_ascii=False, indent=2 if indent else None)
    text.encode()  # an unpaired surrogate: no file, database or chat could take it
    return text


def dump_json(value: Any, *, indent: bool = False) -> bytes:
    """``value`` as UTF-8 JSON; ``UnicodeEncodeError``, ``TypeError``, ``ValueError`` or ``RecursionError`` if none.

    orjson does it (5-10x the standard encoder, and indenting costs it nothing); what orjson refuses
    but the standard library takes (integers past 64 bits, keys that are not strings, nesting past
    254 levels) goes through ``json``, whose errors are the ones raised.
    """
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 if indent else 0)
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False, indent=2 if indent else None).encode()


def load_own_json(raw: str | bytes) -> Any:
    """Read back a record TaskFlow wrote of its own with ``dump_json`` (the journal): orjson, ~1.5x ``json``.

    Not for outputs or text from users: orjson reads integers past 64 bits as floats. Records hold
    only text, times and counts.
    """
    return orjson.loads(raw)


# Where a value sits, as a linked list from the value up to the root: (key, parent) or None at the root.
# Built per node and turned into text only for a problem, as most inputs have none.
_Path = tuple[str | int, "_Path"] | None


def value_problems(value: Any, location: str = "") -> list[Problem]:
    """Strings that are not valid Unicode and nesting deeper than ``MAX_JSON_DEPTH``, each located."""
    if _storable(value):
        return []  # the common case, checked fast; only a bad value is walked to say where
    problems: list[Problem] = []
    stack: list[tuple[Any, _Path, int]] = [(value, None, 0)]
    while stack:  # children are pushed in reverse, so problems come out in document order
        item, path, depth = stack.pop()
        if isinstance(item, str):
            if not _encodable(item):
                message = "text holds an unpaired surrogate (\\ud800-\\udfff): not valid Unicode"
                problems.append(Problem(_where(location, path), message))
            continue
        if not isinstance(item, dict | list):
            continue
        if depth >= MAX_JSON_DEPTH:
            problems.append(Problem(_where(location, path), f"nested deeper than {MAX_JSON_DEPTH} levels"))
            continue
        if isinstance(item, dict):
            if not all(_encodable(key) for key in item):
                problems.append(Problem(_where(location, path), "a key holds an unpaired surrogate: not valid Unicode"))
            stack.extend((child, (key, path), depth + 1) for key, child in reversed(item.items()))
        else:
            stack.extend((item[i], (i, path), depth + 1) for i in range(len(item) - 1, -1, -1))
    return problems


def _storable(value: Any) -> bool:
    """Whether ``value`` has neither problem: the text check in C, the depth over containers only."""
    try:
        output_json(value)
    except (UnicodeEncodeError, RecursionError, ValueError):
        return False
    # Level by level, so each container costs one type check: this runs on every config submitted.
    level = [value] if isinstance(value, dict | list) else []
    for _ in range(MAX_JSON_DEPTH):
        below = []
        for item in level:
            for child in item.values() if isinstance(item, dict) else item:
                if isinstance(child, dict | list):
                    below.append(child)
        if not below:
            return True
        level = below
    return False


def _where(location: str, path: _Path) -> str:
    keys: list[str | int] = []
    while path is not None:
        key, path = path
        keys.append(key)
    out = location
    for key in reversed(keys):
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
