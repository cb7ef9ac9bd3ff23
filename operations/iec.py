"""``iec_function``: the IEC 61131-3 standard functions that IEC 61499 tools ship as blocks (F_ADD, INT2INT…).

Each is a pure function of its inputs, named by ``function``: conversions (``INT_TO_REAL``, and the
same-type ``DINT_TO_DINT`` that 4diac calls ``DINT2DINT``), arithmetic, comparison, logic, selection and
strings. The inputs keep the standard's pin names (``IN``, ``IN1``…, ``G``, ``K``, ``MN``, ``MX``, ``L``,
``P``); the output is the block's ``OUT``. Integers follow IEC rules: division truncates toward zero,
results must fit their type (``type``, LINT when not given), and a selector out of range is an error.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from functools import reduce
from itertools import pairwise
from typing import Any

from pydantic import Field, field_validator

from operations.base import OperationContext, OperationParams
from operations.iec_types import (
    BOOL,
    ELEMENTARY,
    INT_RANGES,
    check_type,
    convert,
    fail,
    finite,
    in_range,
    is_number,
)
from operations.registry import operation

MAX_INPUTS = 8  # IN1..IN8: the widest extensible block (AND_8, F_MUX_8…) the operation takes
_CONVERSION = re.compile(r"([A-Z]+)_TO_([A-Z]+)\Z")
_ARITY = re.compile(r"([A-Z_]+?)_(\d+)\Z")  # MUX_2, AND_3: the name and how many inputs
_SHORT_CONVERSION = re.compile(r"([A-Z]+)2([A-Z]+)\Z")  # 4diac's BOOL2BOOL, DINT2DINT
_EXTENSIBLE = frozenset({"ADD", "MUL", "AND", "OR", "XOR", "MAX", "MIN", "CONCAT", "MUX"})


class IecParams(OperationParams):
    """The function's name, the result's IEC type (optional) and the block's inputs by pin name."""

    function: str = Field(min_length=1, description="ADD, INT_TO_REAL, MUX_2, … (see standard_function)")
    type: str | None = Field(default=None, description="the IEC type of an integer result (LINT if not given)")
    IN: Any = None
    IN0: Any = None
    IN1: Any = None
    IN2: Any = None
    IN3: Any = None
    IN4: Any = None
    IN5: Any = None
    IN6: Any = None
    IN7: Any = None
    IN8: Any = None
    G: Any = None
    K: Any = None
    MN: Any = None
    MX: Any = None
    L: Any = None
    P: Any = None

    @field_validator("function")
    @classmethod
    def _known(cls, value: str) -> str:
        if _resolve(value) is None:
            raise ValueError(f"unknown IEC 61131-3 function {value!r}")
        return value

    @field_validator("type")
    @classmethod
    def _elementary(cls, value: str | None) -> str | None:
        if value is not None and value not in INT_RANGES:
            raise ValueError(f"type must be an IEC integer type ({', '.join(INT_RANGES)})")
        return value

    def numbered(self, count: int | None = None) -> list[tuple[str, Any]]:
        """IN1..INn by pin name: the block's ``count`` of them, else up to the last one given."""
        pins = [(f"IN{i}", getattr(self, f"IN{i}")) for i in range(1, MAX_INPUTS + 1)]
        if count is None:
            count = max((i for i, (_, value) in enumerate(pins, 1) if value is not None), default=0)
        return pins[:count]


@operation("iec_function")
async def iec_function(ctx: OperationContext, params: IecParams) -> Any:
    """Compute an IEC 61131-3 standard function (F_ADD, INT_TO_REAL, F_MUX_2…) on the block's inputs."""
    resolved = _resolve(params.function)
    assert resolved is not None  # the model validated the name
    function, count = resolved
    return function(params, count)


def standard_function(block_type: str) -> str | None:
    """The function a standard block type computes (``F_ADD`` → ``ADD``, ``BOOL2BOOL`` → ``BOOL_TO_BOOL``), or None."""
    name = block_type.upper()
    short = _SHORT_CONVERSION.match(name)
    if short and short[1] in ELEMENTARY and short[2] in ELEMENTARY:
        return f"{short[1]}_TO_{short[2]}"
    name = name.removeprefix("F_")
    if name.startswith("APPEND_STRING_"):  # 4diac's string utility: CONCAT of its inputs
        name = "CONCAT_" + name.removeprefix("APPEND_STRING_")
    return name if _resolve(name) is not None else None


def _resolve(name: str) -> tuple[Callable[[IecParams, int | None], Any], int | None] | None:
    """The function and the number of inputs a name stands for (None: any number given)."""
    conversion = _CONVERSION.match(name)
    if conversion and conversion[1] in ELEMENTARY and conversion[2] in ELEMENTARY:
        return _conversion(conversion[1], conversion[2]), None
    arity = _ARITY.match(name)
    if arity and arity[1] in _EXTENSIBLE and 2 <= int(arity[2]) <= MAX_INPUTS:
        return _FUNCTIONS[arity[1]], int(arity[2])
    if name in _FUNCTIONS:
        return _FUNCTIONS[name], None
    return None


# -- conversions and the one-input functions ----------------------------------------------------


def _conversion(source: str, target: str) -> Callable[[IecParams, int | None], Any]:
    return lambda params, _: convert(params.IN, source, target)


def _number(value: Any, what: str) -> int | float:
    if value is None:
        raise fail(f"{what} has no value")
    if not is_number(value):
        raise fail(f"{what} {value!r} is not a number")
    return value


def _real_function(fn: Callable[[float], float], name: str) -> Callable[[IecParams, int | None], Any]:
    def compute(params: IecParams, _: int | None) -> float:
        value = float(_number(params.IN, "IN"))
        try:
            return finite(fn(value), f"{name}({value:g})")
        except (ValueError, OverflowError):
            raise fail(f"{name}({value:g}) is not defined") from None

    return compute


def _abs(params: IecParams, _: int | None) -> int | float:
    value = _number(params.IN, "IN")
    return _integer_result(abs(value), params) if isinstance(value, int) else abs(value)


def _trunc(params: IecParams, _: int | None) -> int:
    return _integer_result(math.trunc(finite(float(_number(params.IN, "IN")), "IN")), params)


def _move(params: IecParams, _: int | None) -> Any:
    if params.IN is None:
        raise fail("IN has no value")
    return params.IN


# -- arithmetic ------------------------------------------------------------------------------


def _integer_result(value: int, params: IecParams) -> int:
    return in_range(value, params.type or "LINT", "the result")


def _operands(params: IecParams, count: int | None, least: int = 2) -> list[int | float]:
    pins = params.numbered(count)
    if len(pins) < least:
        raise fail(f"needs at least {least} inputs (IN1, IN2…); {len(pins)} given")
    return [_number(value, name) for name, value in pins]


def _arithmetic(combine: Callable[[Any, Any], Any]) -> Callable[[IecParams, int | None], Any]:
    def compute(params: IecParams, count: int | None) -> int | float:
        values = _operands(params, count)
        result = reduce(combine, values)
        if all(isinstance(v, int) for v in values):
            return _integer_result(result, params)
        return finite(float(result), "the result")

    return compute


def _divide(params: IecParams, count: int | None) -> int | float:
    left, right = _operands(params, 2)
    if right == 0:
        raise fail("division by zero (IN2 is 0)")
    if isinstance(left, int) and isinstance(right, int):
        quotient = abs(left) // abs(right)  # IEC integer division truncates toward zero
        return _integer_result(quotient if (left < 0) == (right < 0) else -quotient, params)
    return finite(left / right, "the result")


def _modulo(params: IecParams, count: int | None) -> int:
    left, right = _operands(params, 2)
    if not (isinstance(left, int) and isinstance(right, int)):
        raise fail("MOD takes integers")
    if right == 0:
        raise fail("division by zero (IN2 is 0)")
    return _integer_result(int(math.fmod(left, right)), params)  # the sign of IN1, as IEC defines it


def _power(params: IecParams, count: int | None) -> float:
    base, exponent = _operands(params, 2)
    try:
        return finite(float(base) ** exponent, "the result")
    except (OverflowError, ZeroDivisionError):
        raise fail(f"{base} ** {exponent} is not defined") from None
    except TypeError:  # a negative base to a fractional power is complex
        raise fail(f"{base} ** {exponent} is not a real number") from None


# -- comparison ------------------------------------------------------------------------------


def _comparable(values: list[tuple[str, Any]]) -> list[Any]:
    kinds = {"number" if is_number(v) else type(v).__name__ for _, v in values}
    missing = [name for name, v in values if v is None]
    if missing:
        raise fail(f"{', '.join(missing)} has no value")
    if len(kinds) > 1:
        shown = ", ".join(f"{name}={v!r}" for name, v in values)
        raise fail(f"cannot compare values of different types ({shown})")
    return [v for _, v in values]


def _comparison(check: Callable[[Any, Any], bool]) -> Callable[[IecParams, int | None], Any]:
    def compute(params: IecParams, count: int | None) -> bool:
        pins = params.numbered(count)
        if len(pins) < 2:
            raise fail(f"needs at least 2 inputs (IN1, IN2); {len(pins)} given")
        values = _comparable(pins)
        return all(check(a, b) for a, b in pairwise(values))

    return compute


def _not_equal(params: IecParams, count: int | None) -> bool:
    left, right = _comparable([("IN1", params.IN1), ("IN2", params.IN2)])
    return bool(left != right)


# -- logic -----------------------------------------------------------------------------------


def _logic(combine: Callable[[Any, Any], Any]) -> Callable[[IecParams, int | None], Any]:
    def compute(params: IecParams, count: int | None) -> bool | int:
        pins = params.numbered(count)
        if len(pins) < 2:
            raise fail(f"needs at least 2 inputs (IN1, IN2); {len(pins)} given")
        if all(isinstance(v, bool) for _, v in pins):
            return bool(reduce(combine, [v for _, v in pins]))
        words = [_bit_string(v, name) for name, v in pins]
        return _integer_result(reduce(combine, words), params)

    return compute


def _bit_string(value: Any, name: str) -> int:
    if value is None:
        raise fail(f"{name} has no value")
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(f"{name} {value!r} is neither a BOOL nor a bit string; the inputs must all be one or the other")
    return value


def _not(params: IecParams, _: int | None) -> bool | int:
    if isinstance(params.IN, bool):
        return not params.IN
    value = _bit_string(params.IN, "IN")
    if params.type is None:
        raise fail("NOT of an integer flips its bits: give its type (BYTE, WORD, …) as the param 'type'")
    low, high = INT_RANGES[params.type]
    in_range(value, params.type, "IN")
    return ~value if low < 0 else high ^ value


# -- selection -------------------------------------------------------------------------------


def _select(params: IecParams, _: int | None) -> Any:
    gate = check_type(params.G, BOOL, "G")
    name = "IN1" if gate else "IN0"
    value = getattr(params, name)
    if value is None:
        raise fail(f"G is {gate}, which selects {name}, and {name} has no value")
    return value


def _multiplex(params: IecParams, count: int | None) -> Any:
    pins = params.numbered(count)
    selector = params.K
    if selector is None or isinstance(selector, bool) or not isinstance(selector, int):
        raise fail(f"K {selector!r} is not an integer")
    if not 0 <= selector < len(pins):
        raise fail(
            f"K={selector} is out of range: with {len(pins)} inputs (IN1..IN{len(pins)}) K must be 0..{len(pins) - 1}"
        )
    name, value = pins[selector]
    if value is None:
        raise fail(f"K={selector} selects {name}, which has no value")
    return value


def _extreme(pick: Callable[..., Any]) -> Callable[[IecParams, int | None], Any]:
    def compute(params: IecParams, count: int | None) -> Any:
        values = _comparable(params.numbered(count))
        if len(values) < 2:
            raise fail(f"needs at least 2 inputs (IN1, IN2); {len(values)} given")
        return pick(values)

    return compute


def _limit(params: IecParams, _: int | None) -> Any:
    low, value, high = _comparable([("MN", params.MN), ("IN", params.IN), ("MX", params.MX)])
    if low > high:
        raise fail(f"MN {low!r} is above MX {high!r}")
    return min(max(value, low), high)


# -- strings ---------------------------------------------------------------------------------


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise fail(f"{name} {value!r} is not a STRING" if value is not None else f"{name} has no value")
    return value


def _count(value: Any, name: str, least: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise fail(f"{name} {value!r} is not an integer of at least {least}")
    return value


def _concat(params: IecParams, count: int | None) -> str:
    pins = params.numbered(count)
    return "".join(_text(value, name) for name, value in pins)


def _length(params: IecParams, _: int | None) -> int:
    return len(_text(params.IN, "IN"))


def _left(params: IecParams, _: int | None) -> str:
    return _text(params.IN, "IN")[: _count(params.L, "L")]


def _right(params: IecParams, _: int | None) -> str:
    text, length = _text(params.IN, "IN"), _count(params.L, "L")
    return text[len(text) - length :] if length else ""


def _mid(params: IecParams, _: int | None) -> str:
    text, length, start = _text(params.IN, "IN"), _count(params.L, "L"), _count(params.P, "P", 1)
    return text[start - 1 : start - 1 + length]


def _insert(params: IecParams, _: int | None) -> str:
    text, inserted, after = _text(params.IN1, "IN1"), _text(params.IN2, "IN2"), _count(params.P, "P")
    return text[:after] + inserted + text[after:]


def _delete(params: IecParams, _: int | None) -> str:
    text, length, start = _text(params.IN, "IN"), _count(params.L, "L"), _count(params.P, "P", 1)
    return text[: start - 1] + text[start - 1 + length :]


def _replace(params: IecParams, _: int | None) -> str:
    text, new = _text(params.IN1, "IN1"), _text(params.IN2, "IN2")
    length, start = _count(params.L, "L"), _count(params.P, "P", 1)
    return text[: start - 1] + new + text[start - 1 + length :]


def _find(params: IecParams, _: int | None) -> int:
    return _text(params.IN1, "IN1").find(_text(params.IN2, "IN2")) + 1  # 1-based; 0 when absent


_FUNCTIONS: dict[str, Callable[[IecParams, int | None], Any]] = {
    "MOVE": _move,
    "ABS": _abs,
    "TRUNC": _trunc,
    "SQRT": _real_function(math.sqrt, "SQRT"),
    "LN": _real_function(math.log, "LN"),
    "LOG": _real_function(math.log10, "LOG"),
    "EXP": _real_function(math.exp, "EXP"),
    "SIN": _real_function(math.sin, "SIN"),
    "COS": _real_function(math.cos, "COS"),
    "TAN": _real_function(math.tan, "TAN"),
    "ASIN": _real_function(math.asin, "ASIN"),
    "ACOS": _real_function(math.acos, "ACOS"),
    "ATAN": _real_function(math.atan, "ATAN"),
    "ADD": _arithmetic(operator.add),
    "SUB": _arithmetic(operator.sub),
    "MUL": _arithmetic(operator.mul),
    "DIV": _divide,
    "MOD": _modulo,
    "EXPT": _power,
    "EQ": _comparison(operator.eq),
    "NE": _not_equal,
    "GT": _comparison(operator.gt),
    "GE": _comparison(operator.ge),
    "LT": _comparison(operator.lt),
    "LE": _comparison(operator.le),
    "AND": _logic(operator.and_),
    "OR": _logic(operator.or_),
    "XOR": _logic(operator.xor),
    "NOT": _not,
    "SEL": _select,
    "MUX": _multiplex,
    "MAX": _extreme(max),
    "MIN": _extreme(min),
    "LIMIT": _limit,
    "CONCAT": _concat,
    "LEN": _length,
    "LEFT": _left,
    "RIGHT": _right,
    "MID": _mid,
    "INSERT": _insert,
    "DELETE": _delete,
    "REPLACE": _replace,
    "FIND": _find,
}
