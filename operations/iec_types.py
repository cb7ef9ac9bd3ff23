"""IEC 61131-3 elementary types over JSON values: which value fits which type, and the conversions between them.

JSON has no INT or REAL, only numbers: a value is checked against the type a function names (``INT_TO_REAL``
checks that its input is an INT and makes a REAL of it). Out of range is an error, never a silent wrap.
"""

from __future__ import annotations

import math
import struct
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from operations.errors import PermanentOperationError

INT_RANGES: dict[str, tuple[int, int]] = {
    "SINT": (-(2**7), 2**7 - 1),
    "INT": (-(2**15), 2**15 - 1),
    "DINT": (-(2**31), 2**31 - 1),
    "LINT": (-(2**63), 2**63 - 1),
    "USINT": (0, 2**8 - 1),
    "UINT": (0, 2**16 - 1),
    "UDINT": (0, 2**32 - 1),
    "ULINT": (0, 2**64 - 1),
    "BYTE": (0, 2**8 - 1),
    "WORD": (0, 2**16 - 1),
    "DWORD": (0, 2**32 - 1),
    "LWORD": (0, 2**64 - 1),
}
REAL_TYPES = frozenset({"REAL", "LREAL"})
TEXT_TYPES = frozenset({"STRING", "WSTRING", "CHAR", "WCHAR"})
TIME_TYPES = frozenset({"TIME", "LTIME"})  # seconds, as the importer reads T#… literals
BOOL = "BOOL"
ELEMENTARY = frozenset({BOOL, *INT_RANGES, *REAL_TYPES, *TEXT_TYPES, *TIME_TYPES})
_REAL_MAX = 3.4028234663852886e38  # the largest 32-bit float


def fail(message: str) -> PermanentOperationError:
    """The error a standard function raises: retrying cannot change a computation's result."""
    return PermanentOperationError(message)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def in_range(value: int, type_name: str, what: str) -> int:
    """``value`` if it fits the integer type, else an error naming the type's range."""
    low, high = INT_RANGES[type_name]
    if not low <= value <= high:
        raise fail(f"{what} {value} is out of the {type_name} range {low}..{high}")
    return value


def finite(value: float, what: str) -> float:
    if not math.isfinite(value):
        raise fail(f"{what} is not a finite number ({value})")
    return value


def as_real(value: float, type_name: str, what: str) -> float:
    """A REAL keeps 32-bit precision (16777217 becomes 16777216.0); an LREAL is a Python float."""
    value = finite(float(value), what)
    if type_name == "LREAL":
        return value
    if abs(value) > _REAL_MAX:
        raise fail(f"{what} {value:g} is out of the REAL range (±{_REAL_MAX:.7g})")
    return float(struct.unpack("f", struct.pack("f", value))[0])


def check_type(value: Any, type_name: str, what: str) -> Any:
    """``value`` if it is a value of ``type_name``, else an error saying what it is instead."""
    if value is None:
        raise fail(f"{what} has no value")
    if type_name == BOOL:
        ok = isinstance(value, bool)
    elif type_name in INT_RANGES:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok:
            return in_range(value, type_name, what)
    elif type_name in REAL_TYPES or type_name in TIME_TYPES:
        ok = is_number(value)
    else:
        ok = isinstance(value, str) and (type_name not in {"CHAR", "WCHAR"} or len(value) == 1)
    if not ok:
        raise fail(f"{what} {_shown(value)} is not of type {type_name}")
    return value


def convert(value: Any, source: str, target: str) -> Any:
    """``SOURCE_TO_TARGET`` of ``value``: checked as a ``source``, made a ``target``."""
    value = check_type(value, source, "IN")
    if source == target:
        return value
    if target == BOOL:
        return _to_bool(value, source)
    if target in INT_RANGES:
        return in_range(_to_int(value, source), target, "the result")
    if target in REAL_TYPES:
        return as_real(_to_real(value, source), target, "the result")
    if target in TEXT_TYPES:
        return _to_text(value, source, target)
    if source in TIME_TYPES:  # TIME_TO_LTIME: both are seconds
        return value
    raise fail(f"there is no standard conversion from {source} to {target}")


def _to_bool(value: Any, source: str) -> bool:
    if source in TEXT_TYPES:
        text = value.strip().upper()
        if text in {"TRUE", "1", "FALSE", "0"}:
            return text in {"TRUE", "1"}
        raise fail(f"IN {_shown(value)} is not TRUE, FALSE, 1 or 0")
    if source in TIME_TYPES:
        raise fail(f"there is no standard conversion from {source} to BOOL")
    return value != 0


def _to_int(value: Any, source: str) -> int:
    if source == BOOL:
        return int(value)
    if source in INT_RANGES:
        return value
    if source in REAL_TYPES:
        # IEC 61131-3 rounds to the nearest integer, halves away from zero (2.5 → 3, -2.5 → -3).
        return int(Decimal(finite(value, "IN")).to_integral_value(ROUND_HALF_UP))
    if source in TEXT_TYPES:
        try:
            return int(value.strip().replace("_", ""), 10)
        except ValueError:
            raise fail(f"IN {_shown(value)} is not an integer") from None
    raise fail(f"there is no standard conversion from {source} to an integer")


def _to_real(value: Any, source: str) -> float:
    if source == BOOL:
        return float(value)
    if source in TEXT_TYPES:
        try:
            return float(value.strip().replace("_", ""))
        except ValueError:
            raise fail(f"IN {_shown(value)} is not a number") from None
    if source in TIME_TYPES:
        raise fail(f"there is no standard conversion from {source} to REAL")
    return float(value)


def _to_text(value: Any, source: str, target: str) -> str:
    if source == BOOL:
        text = "TRUE" if value else "FALSE"
    elif source in TIME_TYPES:
        text = f"T#{value:g}s"
    else:
        text = str(value)
    if target in {"CHAR", "WCHAR"} and len(text) != 1:
        raise fail(f"IN {_shown(value)} is not one character")
    return text


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:60]}…"
