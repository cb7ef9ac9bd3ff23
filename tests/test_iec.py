"""The IEC 61131-3 standard functions (``iec_function``): values, IEC typing and overflow, and the block names."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from operations.base import OperationContext, Resources
from operations.iec import IecParams, iec_function, standard_function
from orchestrator.errors import PermanentOperationError


async def _call(tmp_path: Path, **params: Any) -> Any:
    ctx = OperationContext(
        run_id=1,
        dag_id="d",
        task_id="t",
        attempt=1,
        folder=tmp_path,
        logger=logging.getLogger("taskflow.test"),
        resources=Resources(),
    )
    return await iec_function(ctx, IecParams(**params))


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # conversions, with IEC rounding (halves away from zero) and REAL's 32-bit precision
        ({"function": "BOOL_TO_BOOL", "IN": True}, True),
        ({"function": "DINT_TO_DINT", "IN": -5}, -5),
        ({"function": "INT_TO_REAL", "IN": 7}, 7.0),
        ({"function": "DINT_TO_REAL", "IN": 16_777_217}, 16_777_216.0),
        ({"function": "DINT_TO_LREAL", "IN": 16_777_217}, 16_777_217.0),
        ({"function": "REAL_TO_INT", "IN": 2.5}, 3),
        ({"function": "REAL_TO_INT", "IN": -2.5}, -3),
        ({"function": "TRUNC", "IN": -2.7}, -2),
        ({"function": "BOOL_TO_INT", "IN": True}, 1),
        ({"function": "INT_TO_BOOL", "IN": 0}, False),
        ({"function": "INT_TO_STRING", "IN": 42}, "42"),
        ({"function": "BOOL_TO_STRING", "IN": False}, "FALSE"),
        ({"function": "STRING_TO_DINT", "IN": " 1_000 "}, 1000),
        ({"function": "STRING_TO_WSTRING", "IN": "é"}, "é"),
        # arithmetic: integer division truncates toward zero, MOD has the sign of IN1
        ({"function": "ADD", "IN1": 2, "IN2": 3}, 5),
        ({"function": "ADD", "IN1": 2, "IN2": 0.5}, 2.5),
        ({"function": "SUB", "IN1": 2, "IN2": 3}, -1),
        ({"function": "MUL", "IN1": 4, "IN2": 3, "IN3": 2}, 24),
        ({"function": "DIV", "IN1": -7, "IN2": 2}, -3),
        ({"function": "DIV", "IN1": 7.0, "IN2": 2}, 3.5),
        ({"function": "MOD", "IN1": -7, "IN2": 2}, -1),
        ({"function": "EXPT", "IN1": 2, "IN2": 10}, 1024.0),
        ({"function": "ABS", "IN": -4}, 4),
        ({"function": "SQRT", "IN": 9}, 3.0),
        # comparison, extensible like IEC's GT (IN1 > IN2 > IN3)
        ({"function": "EQ", "IN1": 3, "IN2": 3.0}, True),
        ({"function": "NE", "IN1": "a", "IN2": "b"}, True),
        ({"function": "GT", "IN1": 3, "IN2": 2, "IN3": 1}, True),
        ({"function": "GT", "IN1": 3, "IN2": 2, "IN3": 2}, False),
        ({"function": "LE", "IN1": "abc", "IN2": "abd"}, True),
        # logic: BOOLs logically, bit strings bitwise
        ({"function": "AND_2", "IN1": True, "IN2": False}, False),
        ({"function": "OR_3", "IN1": False, "IN2": False, "IN3": True}, True),
        ({"function": "XOR", "IN1": 0b1100, "IN2": 0b1010}, 0b0110),
        ({"function": "NOT", "IN": True}, False),
        ({"function": "NOT", "IN": 0b1111_0000, "type": "BYTE"}, 0b0000_1111),
        # selection: F_SEL takes IN0/IN1, F_MUX_n IN1..INn with K counting from 0
        ({"function": "SEL", "G": True, "IN0": "a", "IN1": "b"}, "b"),
        ({"function": "MUX_2", "K": 0, "IN1": "a", "IN2": "b"}, "a"),
        ({"function": "MUX_3", "K": 2, "IN1": 1, "IN2": 2, "IN3": 3}, 3),
        ({"function": "MAX", "IN1": 1, "IN2": 5, "IN3": 3}, 5),
        ({"function": "MIN", "IN1": 1.5, "IN2": -5}, -5),
        ({"function": "LIMIT", "MN": 0, "IN": 12, "MX": 10}, 10),
        # strings: positions count from 1, FIND gives 0 when absent
        ({"function": "CONCAT_3", "IN1": "a", "IN2": "b", "IN3": "c"}, "abc"),
        ({"function": "LEN", "IN": "hello"}, 5),
        ({"function": "LEFT", "IN": "hello", "L": 2}, "he"),
        ({"function": "RIGHT", "IN": "hello", "L": 3}, "llo"),
        ({"function": "MID", "IN": "hello", "L": 2, "P": 2}, "el"),
        ({"function": "INSERT", "IN1": "held", "IN2": "l", "P": 3}, "helld"),
        ({"function": "DELETE", "IN": "hello", "L": 2, "P": 3}, "heo"),
        ({"function": "REPLACE", "IN1": "hello", "IN2": "LL", "L": 2, "P": 3}, "heLLo"),
        ({"function": "FIND", "IN1": "hello", "IN2": "lo"}, 4),
        ({"function": "FIND", "IN1": "hello", "IN2": "x"}, 0),
    ],
)
async def test_standard_functions_compute_the_standard_result(
    tmp_path: Path, params: dict[str, Any], expected: Any
) -> None:
    result = await _call(tmp_path, **params)
    assert result == expected
    assert type(result) is type(expected)  # 3 is not 3.0, 1 is not True


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"function": "MUX_2", "K": 2}, "K=2 is out of range: with 2 inputs (IN1..IN2) K must be 0..1"),
        ({"function": "MUX_2", "K": 1, "IN1": 1}, "K=1 selects IN2, which has no value"),
        ({"function": "INT_TO_DINT", "IN": 40_000}, "IN 40000 is out of the INT range -32768..32767"),
        ({"function": "INT_TO_INT", "IN": 1.5}, "IN 1.5 is not of type INT"),
        ({"function": "DINT_TO_INT", "IN": 40_000}, "the result 40000 is out of the INT range"),
        ({"function": "REAL_TO_USINT", "IN": -0.6}, "the result -1 is out of the USINT range 0..255"),
        ({"function": "ADD", "IN1": 30_000, "IN2": 30_000, "type": "INT"}, "the result 60000 is out of the INT range"),
        ({"function": "MUL", "IN1": 2**62, "IN2": 4}, "out of the LINT range"),
        ({"function": "DIV", "IN1": 1, "IN2": 0}, "division by zero (IN2 is 0)"),
        ({"function": "MOD", "IN1": 1, "IN2": 0}, "division by zero"),
        ({"function": "ADD", "IN1": 1}, "needs at least 2 inputs (IN1, IN2…); 1 given"),
        ({"function": "ADD", "IN1": 1, "IN2": True}, "IN2 True is not a number"),
        ({"function": "EQ", "IN1": 1, "IN2": "1"}, "cannot compare values of different types"),
        ({"function": "NOT", "IN": 5}, "give its type"),
        ({"function": "SQRT", "IN": -1}, "SQRT(-1) is not defined"),
        ({"function": "STRING_TO_INT", "IN": "ten"}, "IN 'ten' is not an integer"),
        ({"function": "SEL", "G": 1, "IN0": "a", "IN1": "b"}, "G 1 is not of type BOOL"),
    ],
)
async def test_standard_functions_refuse_what_iec_refuses(tmp_path: Path, params: dict[str, Any], message: str) -> None:
    with pytest.raises(PermanentOperationError, match=re.escape(message)):
        await _call(tmp_path, **params)


def test_unknown_functions_and_types_are_refused_before_a_run() -> None:
    with pytest.raises(ValidationError, match="unknown IEC 61131-3 function 'SHUFFLE'"):
        IecParams(function="SHUFFLE")
    with pytest.raises(ValidationError, match="IEC integer type"):
        IecParams(function="ADD", type="REAL")


@pytest.mark.parametrize(
    ("block", "function"),
    [
        ("F_ADD", "ADD"),
        ("F_GE", "GE"),
        ("F_INT_TO_REAL", "INT_TO_REAL"),
        ("BOOL2BOOL", "BOOL_TO_BOOL"),
        ("DINT2DINT", "DINT_TO_DINT"),
        ("INT2INT", "INT_TO_INT"),
        ("F_STRING_TO_WSTRING", "STRING_TO_WSTRING"),
        ("AND_2", "AND_2"),
        ("OR_2", "OR_2"),
        ("F_MUX_2", "MUX_2"),
        ("APPEND_STRING_3", "CONCAT_3"),
        ("f_max", "MAX"),
        ("E_DELAY", None),
        ("F_MUX_9", None),  # wider than the operation takes
        ("COLOR2SHAPE", None),
        ("F_SHUFFLE", None),
    ],
)
def test_block_types_name_their_standard_function(block: str, function: str | None) -> None:
    assert standard_function(block) == function
