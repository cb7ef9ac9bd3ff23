"""IEC 61131-3 literals (4diac ``<Parameter>`` values and initial values) as JSON values.

``T#1m30s`` → ``90.0`` (seconds), ``'text'`` → ``"text"``, ``TRUE`` → ``true``, ``16#FF`` → ``255``,
``INT#5`` → ``5``, dates → ISO strings, arrays ``[1, 2]`` (with repeats ``3(0)``) → lists and structs
``(a := 1)`` → objects. Nesting and item counts are bounded: the values come from untrusted files.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable
from datetime import date, datetime, time
from typing import Any

_MAX_LITERAL_ITEMS = 10_000
_MAX_LITERAL_DEPTH = 16
# LINT/ULINT/LWORD, the widest IEC 61131-3 integers. Python's digit limit guards decimals only:
# 16#FFF… with 20,000 digits parses, then fails when the config is written as JSON.
_MAX_INT_BITS = 64

_TYPED = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)#(.*)\Z", re.S)
_BASED = re.compile(r"([+-]?)(2|8|16)#([0-9A-Fa-f][0-9A-Fa-f_]*)\Z")
_DECIMAL = re.compile(r"[+-]?\d[\d_]*\Z")
_REAL = re.compile(r"[+-]?\d[\d_]*(\.\d[\d_]*)?([eE][+-]?\d+)?\Z")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|ns|d|h|m|s)", re.I)
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
_DATE_TIME = re.compile(r"(\d{4}-\d{2}-\d{2})-(\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)\Z")
_REPEAT = re.compile(r"\s*(\d+)\s*\((.*)\)\s*\Z", re.S)
_FIELD = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*:=(.*)\Z", re.S)
_ESCAPES = {"$": "$", "'": "'", '"': '"', "L": "\n", "N": "\n", "P": "\f", "R": "\r", "T": "\t"}


def iec_literal(text: str, depth: int = 0) -> Any:
    """The JSON value of an IEC 61131-3 literal (``ValueError`` if ``text`` is not one).

    Durations become seconds (a float), dates ISO strings, arrays lists, structs objects.
    """
    s = text.strip()
    if not s:
        raise ValueError("empty value")
    if s[0] in "'\"":
        return _iec_string(s)
    if s[0] == "[":
        return _iec_array(s, depth)
    if s[0] == "(":
        return _iec_struct(s, depth)
    if s.upper() in {"TRUE", "FALSE"}:
        return s.upper() == "TRUE"
    typed = _TYPED.match(s)
    if typed:
        parser = _TYPED_PARSERS.get(typed[1].upper())
        if parser is None:
            raise ValueError(f"unknown literal type {typed[1]}#")
        return parser(typed[2].strip())
    return _iec_number(s)


def _iec_number(s: str) -> int | float:
    based = _BASED.match(s)
    if based:
        value = _bounded_int(based[3], int(based[2]))
        return -value if based[1] == "-" else value
    if _DECIMAL.match(s):
        value = _bounded_int(s.lstrip("+-"), 10)
        return -value if s.startswith("-") else value
    if _REAL.match(s):
        value = float(s.replace("_", ""))
        if math.isfinite(value):
            return value
    raise ValueError("not an IEC 61131-3 literal (a number, string, time, date, array or struct)")


def _bounded_int(digits: str, base: int) -> int:
    """The value of unsigned ``digits``, refused beyond ``_MAX_INT_BITS`` bits (checked before converting)."""
    text = digits.replace("_", "").lstrip("0") or "0"
    # No base-2 number of more than _MAX_INT_BITS digits fits, nor any in a larger base: skip the conversion.
    value = int(text, base) if len(text) <= _MAX_INT_BITS else 1 << _MAX_INT_BITS
    if value >= 1 << _MAX_INT_BITS:
        raise ValueError(f"integer wider than {_MAX_INT_BITS} bits, the widest IEC 61131-3 integer (LINT, ULINT)")
    return value


def _iec_int(s: str) -> int:
    value = _iec_number(s)
    if not isinstance(value, int):
        raise ValueError(f"not an integer: {s[:40]!r}")
    return value


def _iec_real(s: str) -> float:
    # Plain digits are read as a float, not as a bounded integer: REAL#1e30 may be written out in full.
    return float(_iec_number(f"{s}.0" if _DECIMAL.match(s) else s))


def _iec_bool(s: str) -> bool:
    value = {"TRUE": True, "1": True, "FALSE": False, "0": False}.get(s.upper())
    if value is None:
        raise ValueError(f"not a BOOL (TRUE, FALSE, 1 or 0): {s[:40]!r}")
    return value


def _iec_text(s: str) -> str:
    # STRING#'x' is quoted; 4diac also accepts STRING#x, the text as it stands.
    return _iec_string(s) if s.startswith(("'", '"')) else s


def _iec_string(s: str) -> str:
    quote = s[0]
    if len(s) < 2 or s[-1] != quote:
        raise ValueError(f"unterminated string {s[:40]!r}")
    body, out, i = s[1:-1], [], 0
    while i < len(body):
        if body[i] == quote:
            raise ValueError(f"unescaped {quote} inside a string (write ${quote})")
        if body[i] != "$":
            out.append(body[i])
            i += 1
            continue
        text, i = _iec_escape(body, i, wide=quote == '"')
        out.append(text)
    return "".join(out)


def _iec_escape(body: str, i: int, *, wide: bool) -> tuple[str, int]:
    code = body[i + 1 : i + 2].upper()
    if code in _ESCAPES:
        return _ESCAPES[code], i + 2
    width = 4 if wide else 2
    digits = body[i + 1 : i + 1 + width]
    if len(digits) == width and all(c in string.hexdigits for c in digits):
        code = int(digits, 16)
        if 0xD800 <= code <= 0xDFFF:  # half of a UTF-16 pair: no character alone, and no valid Unicode text
            raise ValueError(f"escape '${digits}' is a UTF-16 surrogate, not a character")
        return chr(code), i + 1 + width
    raise ValueError(f"bad escape '${body[i + 1 : i + 2]}'")


def _iec_duration(s: str) -> float:
    text = s.replace("_", "").strip()
    sign = -1.0 if text.startswith("-") else 1.0
    text = text.lstrip("+-")
    total, pos = 0.0, 0
    for part in _DURATION_PART.finditer(text):
        if part.start() != pos:
            break
        total += float(part[1]) * _UNIT_SECONDS[part[2].lower()]
        pos = part.end()
    if pos == 0 or pos != len(text) or not math.isfinite(total):
        raise ValueError(f"not a duration like 1h2m3s or 250ms: {s[:40]!r}")
    return round(sign * total, 9)  # 100 * 1e-3 should read 0.1, not 0.10000000000000002


def _iec_date_time(s: str) -> str:
    match = _DATE_TIME.match(s)
    if not match:
        raise ValueError(f"not a date and time like 2024-01-31-12:30:00: {s[:40]!r}")
    return datetime.fromisoformat(f"{match[1]}T{match[2]}").isoformat()


def _typed_parsers() -> dict[str, Callable[[str], Any]]:
    groups: list[tuple[tuple[str, ...], Callable[[str], Any]]] = [
        (("SINT", "INT", "DINT", "LINT", "USINT", "UINT", "UDINT", "ULINT"), _iec_int),
        (("BYTE", "WORD", "DWORD", "LWORD"), _iec_int),
        (("REAL", "LREAL"), _iec_real),
        (("BOOL",), _iec_bool),
        (("STRING", "WSTRING", "CHAR", "WCHAR"), _iec_text),
        (("TIME", "T", "LTIME", "LT"), _iec_duration),
        (("DATE", "D", "LDATE", "LD"), lambda s: date.fromisoformat(s).isoformat()),
        (("TIME_OF_DAY", "TOD", "LTIME_OF_DAY", "LTOD"), lambda s: time.fromisoformat(s).isoformat()),
        (("DATE_AND_TIME", "DT", "LDATE_AND_TIME", "LDT"), _iec_date_time),
    ]
    return {name: parser for names, parser in groups for name in names}


_TYPED_PARSERS = _typed_parsers()


def _iec_array(s: str, depth: int) -> list[Any]:
    if not s.endswith("]"):
        raise ValueError(f"bad array {s[:40]!r}")
    _check_depth(depth)
    items: list[Any] = []
    for part in _split_top(s[1:-1]):
        repeat = _REPEAT.match(part)
        values = [iec_literal(part, depth + 1)] if repeat is None else _iec_repeat(repeat, depth)
        if len(items) + len(values) > _MAX_LITERAL_ITEMS:
            raise ValueError(f"array of more than {_MAX_LITERAL_ITEMS} items")
        items += values
    return items


def _check_depth(depth: int) -> None:
    # Each level is a recursive call: a hostile value could nest past Python's stack.
    if depth >= _MAX_LITERAL_DEPTH:
        raise ValueError(f"arrays and structs nested deeper than {_MAX_LITERAL_DEPTH}")


def _iec_repeat(match: re.Match[str], depth: int) -> list[Any]:
    # IEC 3(0) is [0, 0, 0]; check the size before building it.
    count = int(match[1])
    inner = [iec_literal(p, depth + 1) for p in _split_top(match[2])] or [None]
    if count * len(inner) > _MAX_LITERAL_ITEMS:
        raise ValueError(f"array of more than {_MAX_LITERAL_ITEMS} items")
    return inner * count


def _iec_struct(s: str, depth: int) -> dict[str, Any]:
    if not s.endswith(")"):
        raise ValueError(f"bad struct {s[:40]!r}")
    _check_depth(depth)
    out: dict[str, Any] = {}
    for part in _split_top(s[1:-1]):
        match = _FIELD.match(part)
        if match is None:
            raise ValueError(f"struct field {part.strip()!r} is not 'name := value'")
        out[match[1]] = iec_literal(match[2], depth + 1)
    return out


def _split_top(text: str) -> list[str]:
    """Split at the commas that are outside brackets and quotes."""
    if not text.strip():
        return []
    parts, level, start, quote = [], 0, 0, ""
    escaped = False
    for i, ch in enumerate(text):
        if quote:
            quote, escaped = _in_quote(ch, quote, escaped)
        elif ch in "'\"":
            quote = ch
        elif ch in "[(":
            level += 1
        elif ch in ")]":
            level -= 1
        elif ch == "," and level == 0:
            parts.append(text[start:i])
            start = i + 1
    if quote or level:
        raise ValueError("unbalanced brackets or quotes")
    return [*parts, text[start:]]


def _in_quote(ch: str, quote: str, escaped: bool) -> tuple[str, bool]:
    """One character inside a quoted string: the quote still open (or ""), and whether ``$`` escapes the next."""
    if escaped:
        return quote, False
    if ch == "$":
        return quote, True
    return ("" if ch == quote else quote), False
