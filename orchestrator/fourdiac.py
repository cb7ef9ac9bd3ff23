"""Import Eclipse 4diac (IEC 61499) XML into a TaskFlow DAG config (SPEC §6).

What becomes what:

- Each FB becomes a task: ``id`` is its name (FBs inside an untyped sub-app are flattened to
  ``Sub.FB``), its ``x``/``y`` the task's ``position`` (offset by the sub-app's, for flattened ones)
  and its comment the task's description.
- Its type, without the package prefix (``iec61499::events::E_DELAY`` → ``E_DELAY``), picks the
  operation through the table in ``fourdiac_types.json``, which a user mapping (``--map``, read by
  ``load_mapping``) extends or overrides. An entry also renames pins to param names.
- Event connections become dependencies. ``E_SPLIT``, ``E_REND`` and sub-app interface pins are
  collapsed: the tasks before them become the dependencies of the tasks after them.
- A data connection becomes a dependent param referencing the **whole output** of the source task
  (``"Fetch"``): TaskFlow operations have one output, 4diac blocks several pins. A mapping entry's
  ``outputs`` can send a pin to a path into that output instead (``{"STATUS": "status"}`` →
  ``"Fetch.status"``). A data connection also makes the source task a dependency.
- ``<Parameter>`` values are IEC 61131-3 literals, converted to JSON: ``T#1m30s`` → ``90.0``
  (seconds), ``'text'`` → ``"text"``, ``TRUE`` → ``true``, ``16#FF`` → ``255``, ``INT#5`` → ``5``,
  arrays ``[1, 2]`` and structs ``(a := 1)``. A value that is not a literal is kept as text, with a note.
- The resource's ``START`` (E_RESTART) ``COLD``/``WARM`` events mark entry tasks; START is no task.
  An ``E_CYCLE`` started by START becomes the suggested cron schedule, and the tasks it fires entry
  tasks. ``E_DELAY`` becomes a ``sleep`` task.

Everything that cannot be mapped (unmapped types, branching or any-of blocks, adapter connections,
loops, data inputs with two sources, dangling connections, empty networks, basic FB types) is
collected and raised at once as one ``ConfigError``. The XML is untrusted: its size is capped and it
is parsed with defusedxml, which refuses entity declarations and external references.
"""

from __future__ import annotations

import json
import math
import os
import re
import string
from collections import defaultdict
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeElementTree
from defusedxml import DefusedXmlException, EntitiesForbidden, ExternalReferenceForbidden
from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError, model_validator

from operations.registry import get_operation
from orchestrator.errors import ConfigError, Problem
from orchestrator.graph import find_cycle
from orchestrator.limits import MAX_CONFIG_BYTES, MAX_ID_LENGTH, MAX_XML_BYTES
from orchestrator.models import DagConfig
from orchestrator.validation import parse_config, pydantic_problems

__all__ = ["ImportResult", "TypeMapping", "import_4diac", "load_mapping"]

_TYPES_FILE = Path(__file__).with_name("fourdiac_types.json")
_MAX_SUBAPP_DEPTH = 32  # nesting deeper than this is hostile, not a drawing
_MAX_LOOPS_REPORTED = 5
_MAX_LITERAL_ITEMS = 10_000
_MAX_LITERAL_DEPTH = 16


# -- public API ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportResult:
    """What an import produced: a validated config, a suggested schedule, and notes for the user."""

    config: DagConfig
    schedule: str | None
    notes: list[str]


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


def import_4diac(
    data: bytes | str,
    *,
    filename: str = "import.sys",
    app: str | None = None,
    mapping: Mapping[str, Any] | None = None,
    dag_name: str | None = None,
) -> ImportResult:
    """Turn a 4diac system (``.sys``), composite FB type (``.fbt``) or sub-app type (``.sub``) into a DAG.

    ``app`` picks the application of a system that has several; ``mapping`` (as ``load_mapping``
    returns it) extends the built-in type table; ``dag_name`` defaults to the application's or type's
    name. Raises ``ConfigError`` listing every problem found.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if len(raw) > MAX_XML_BYTES:
        message = f"file is {len(raw)} bytes; the limit is {MAX_XML_BYTES}"
        raise ConfigError([Problem("", message)], source=filename)
    table = _type_table(mapping)
    root = _parse_xml(raw, filename)
    importer = _Importer(table, filename)
    info = importer.load(root, app)
    tasks, schedule = importer.build(info)
    config = _config_dict(info, tasks, schedule, filename, dag_name)
    if importer.problems:
        raise ConfigError(importer.problems + _validator_problems(config, filename), source=filename)
    return ImportResult(parse_config(config, source=filename), schedule, importer.notes)


def load_mapping(source: str | os.PathLike[str] | bytes) -> dict[str, dict[str, Any]]:
    """Read a user's JSON type mapping (a path, or the file's bytes) and validate it.

    The file maps FB type names to entries like the built-in ones::

        {"HTTP_GET": {"operation": "http_request", "params": {"URL": "url", "QI": null},
                      "fixed": {"method": "GET"}},
         "MY_NOOP": "noop"}

    Keys starting with ``$`` are comments. Raises ``ConfigError`` naming each bad entry.
    """
    name, raw = _read_mapping_source(source)
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError([Problem("", f"file is {len(raw)} bytes; the limit is {MAX_CONFIG_BYTES}")], source=name)
    try:
        data = json.loads(raw)
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem("", f"not UTF-8 text: {exc.reason} at byte {exc.start}")], source=name) from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise ConfigError([Problem(where, f"invalid JSON: {exc.msg}")], source=name) from None
    table = _validate_table(data, name)
    return {key: entry.model_dump(exclude_defaults=True) for key, entry in table.items()}


# -- the type table --------------------------------------------------------------------------


def _read_mapping_source(source: str | os.PathLike[str] | bytes) -> tuple[str, bytes]:
    if isinstance(source, bytes):
        return "mapping", source
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
    return _validate_table(json.loads(_TYPES_FILE.read_text(encoding="utf-8")), _TYPES_FILE.name)


def _type_table(mapping: Mapping[str, Any] | None) -> dict[str, TypeMapping]:
    table = dict(_builtin_table())
    if mapping:
        table.update(_validate_table(mapping, "mapping"))  # the user's entries win
    return table


# -- XML -------------------------------------------------------------------------------------

_POSITION_SUFFIX = re.compile(r": line \d+, column \d+$")


def _parse_xml(raw: bytes, source: str) -> Element:
    try:
        return SafeElementTree.fromstring(raw, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except ParseError as exc:
        line, column = exc.position
        message = _POSITION_SUFFIX.sub("", str(exc))
        raise ConfigError(
            [Problem(f"line {line}, column {column + 1}", f"malformed XML: {message}")], source=source
        ) from None
    except EntitiesForbidden as exc:
        message = f"entity declaration {exc.name!r} refused: entities can expand without bound or read local files"
        raise ConfigError([Problem("DOCTYPE", message)], source=source) from None
    except ExternalReferenceForbidden as exc:
        message = f"external reference {exc.sysid!r} refused: the importer reads nothing outside the file"
        raise ConfigError([Problem("DOCTYPE", message)], source=source) from None
    except DefusedXmlException as exc:
        raise ConfigError([Problem("DOCTYPE", f"refused: {exc}")], source=source) from None


def _tag(element: Element) -> str:
    return element.tag.rsplit("}", 1)[-1] if isinstance(element.tag, str) else ""


def _child(element: Element, *tags: str) -> Element | None:
    # ElementTree elements are falsy when empty, so compare with None, never `or`.
    for child in element:
        if _tag(child) in tags:
            return child
    return None


def _position(element: Element, origin: tuple[float, float]) -> dict[str, float] | None:
    try:
        x, y = float(element.get("x", "")), float(element.get("y", ""))
    except ValueError:
        return None
    if not (math.isfinite(x) and math.isfinite(y)):
        return None
    return {"x": origin[0] + x, "y": origin[1] + y}


def _interface(element: Element | None) -> dict[str, str | None]:
    """Pin names of an interface list, with their initial values."""
    if element is None:
        return {}
    pins: dict[str, str | None] = {}
    for item in element.iter():
        if _tag(item) in {"Event", "SubAppEvent", "VarDeclaration", "AdapterDeclaration"} and item.get("Name"):
            pins[item.get("Name", "")] = item.get("InitialValue") or None
    return pins


# -- IEC 61131-3 literals --------------------------------------------------------------------

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
        value = int(based[3].replace("_", ""), int(based[2]))
        return -value if based[1] == "-" else value
    if _DECIMAL.match(s):
        return int(s.replace("_", ""))
    if _REAL.match(s):
        value = float(s.replace("_", ""))
        if math.isfinite(value):
            return value
    raise ValueError(f"{s!r} is not an IEC 61131-3 literal")


def _iec_int(s: str) -> int:
    value = _iec_number(s)
    if not isinstance(value, int):
        raise ValueError(f"{s!r} is not an integer")
    return value


def _iec_bool(s: str) -> bool:
    value = {"TRUE": True, "1": True, "FALSE": False, "0": False}.get(s.upper())
    if value is None:
        raise ValueError(f"{s!r} is not a BOOL")
    return value


def _iec_text(s: str) -> str:
    # STRING#'x' is quoted; 4diac also accepts STRING#x, the text as it stands.
    return _iec_string(s) if s.startswith(("'", '"')) else s


def _iec_string(s: str) -> str:
    quote = s[0]
    if len(s) < 2 or s[-1] != quote:
        raise ValueError(f"unterminated string {s!r}")
    body, out, i = s[1:-1], [], 0
    while i < len(body):
        if body[i] == quote:
            raise ValueError(f"unescaped {quote} inside {s!r} (write ${quote})")
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
        return chr(int(digits, 16)), i + 1 + width
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
        raise ValueError(f"{s!r} is not a duration like 1h2m3s or 250ms")
    return round(sign * total, 9)  # 100 * 1e-3 should read 0.1, not 0.10000000000000002


def _iec_date_time(s: str) -> str:
    match = _DATE_TIME.match(s)
    if not match:
        raise ValueError(f"{s!r} is not a date and time like 2024-01-31-12:30:00")
    return datetime.fromisoformat(f"{match[1]}T{match[2]}").isoformat()


def _typed_parsers() -> dict[str, Callable[[str], Any]]:
    groups: list[tuple[tuple[str, ...], Callable[[str], Any]]] = [
        (("SINT", "INT", "DINT", "LINT", "USINT", "UINT", "UDINT", "ULINT"), _iec_int),
        (("BYTE", "WORD", "DWORD", "LWORD"), _iec_int),
        (("REAL", "LREAL"), lambda s: float(_iec_number(s))),
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
    if not s.endswith("]") or depth >= _MAX_LITERAL_DEPTH:
        raise ValueError(f"bad array {s[:40]!r}")
    items: list[Any] = []
    for part in _split_top(s[1:-1]):
        repeat = _REPEAT.match(part)
        values = [iec_literal(part, depth + 1)] if repeat is None else _iec_repeat(repeat, depth)
        if len(items) + len(values) > _MAX_LITERAL_ITEMS:
            raise ValueError(f"array of more than {_MAX_LITERAL_ITEMS} items")
        items += values
    return items


def _iec_repeat(match: re.Match[str], depth: int) -> list[Any]:
    # IEC 3(0) is [0, 0, 0]; check the size before building it.
    count = int(match[1])
    inner = [iec_literal(p, depth + 1) for p in _split_top(match[2])] or [None]
    if count * len(inner) > _MAX_LITERAL_ITEMS:
        raise ValueError(f"array of more than {_MAX_LITERAL_ITEMS} items")
    return inner * count


def _iec_struct(s: str, depth: int) -> dict[str, Any]:
    if not s.endswith(")") or depth >= _MAX_LITERAL_DEPTH:
        raise ValueError(f"bad struct {s[:40]!r}")
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


# -- cron ------------------------------------------------------------------------------------

# (unit in seconds, how many units make the next unit, the cron template)
_CRON_STEPS = ((1, 60, "* * * * * {}"), (60, 60, "{} * * * *"), (3600, 24, "0 {} * * *"))


def _cron_for_period(seconds: float) -> str | None:
    """A cron expression firing every ``seconds`` (seconds go in the optional 6th field), or None."""
    if not math.isfinite(seconds) or seconds <= 0 or seconds != int(seconds):
        return None
    period = int(seconds)
    if period == 86400:
        return "0 0 * * *"
    if period == 7 * 86400:
        return "0 0 * * 0"
    for unit, span, template in _CRON_STEPS:
        count, rest = divmod(period, unit)
        if rest == 0 and 0 < count < span and span % count == 0:
            return template.format("*" if count == 1 else f"*/{count}")
    return None


# -- the network -----------------------------------------------------------------------------


class _Kind(Enum):
    """What a node of the imported network becomes."""

    TASK = "task"
    START = "start"  # E_RESTART: its events mark entry tasks
    CYCLE = "cycle"  # E_CYCLE: a schedule when START drives it
    COLLAPSE = "collapse"  # E_SPLIT / E_REND: edges only
    BLOCKED = "blocked"  # cannot be mapped; reported, and passed through so nothing else cascades
    SUB_PIN = "sub_pin"  # a pin of an untyped sub-app's interface: passed through
    ROOT_PIN = "root_pin"  # a pin of the imported type's own interface: an entry (or a sink)


_STRUCTURAL = {"E_RESTART": _Kind.START, "E_SPLIT": _Kind.COLLAPSE, "E_REND": _Kind.COLLAPSE, "E_CYCLE": _Kind.CYCLE}
_ENTRY_KINDS = frozenset({_Kind.START, _Kind.ROOT_PIN, _Kind.CYCLE})
_STATE = "keeps state between events; a TaskFlow task runs once per run"
_UNSUPPORTED = {
    "E_SWITCH": "E_SWITCH is branching; TaskFlow DAGs cannot branch",
    "E_PERMIT": "E_PERMIT is branching (it passes an event only while PERMIT is TRUE); TaskFlow DAGs cannot branch",
    "E_DEMUX": "E_DEMUX is branching; TaskFlow DAGs cannot branch",
    "E_SELECT": "E_SELECT passes one of two events (any-of); a TaskFlow task waits for all its dependencies",
    "E_MERGE": "E_MERGE fires on any of its inputs (any-of); a TaskFlow task waits for all its dependencies "
    "(E_REND waits for all)",
    "E_SR": f"E_SR is a bistable that {_STATE}",
    "E_RS": f"E_RS is a bistable that {_STATE}",
    "E_D_FF": f"E_D_FF is a latch that {_STATE}",
    "E_R_TRIG": "E_R_TRIG fires only on a rising edge of its input (a condition); TaskFlow DAGs cannot branch",
    "E_F_TRIG": "E_F_TRIG fires only on a falling edge of its input (a condition); TaskFlow DAGs cannot branch",
    "E_CTU": f"E_CTU is a counter that {_STATE}",
    "E_CTD": f"E_CTD is a counter that {_STATE}",
    "E_CTUD": f"E_CTUD is a counter that {_STATE}",
    "E_TRAIN": "E_TRAIN fires repeatedly; a TaskFlow task runs once per run",
    "E_TABLE": "E_TABLE fires repeatedly; a TaskFlow task runs once per run",
    "E_N_TABLE": "E_N_TABLE fires repeatedly; a TaskFlow task runs once per run",
}
_BASIC_TYPES = {
    "BasicFB": "basic",
    "SimpleFB": "simple",
    "ServiceFB": "service interface",
    "Service": "service interface",
}
_TYPE_ROOTS = {"FBType": "FB type", "SubAppType": "sub-app type", "ResourceType": "resource type"}
_CONNECTION_LISTS = {"EventConnections": "event", "DataConnections": "data", "AdapterConnections": "adapter"}

_NodeKey = tuple[str, str]
_START_KEY: _NodeKey = ("start", "START")


@dataclass
class _Node:
    key: _NodeKey
    kind: _Kind
    label: str
    type_name: str = ""
    mapping: TypeMapping | None = None
    params: dict[str, str] = field(default_factory=dict)
    position: dict[str, float] | None = None
    comment: str = ""
    literal: str | None = None  # an interface pin's value (sub-app Parameter or InitialValue)

    @property
    def where(self) -> str:
        """How problems name this node."""
        if self.kind in (_Kind.SUB_PIN, _Kind.ROOT_PIN):
            return f"interface pin '{self.label}'"
        return "START" if self.key == _START_KEY else f"FB '{self.label}'"


@dataclass(frozen=True)
class _Edge:
    src: _NodeKey
    src_pin: str
    dst: _NodeKey
    dst_pin: str
    where: str


@dataclass(frozen=True)
class _Source:
    """Where a data input's value comes from: a task's output, a literal, or something unmappable."""

    task: _Node | None = None
    pin: str = ""
    literal: str | None = None
    origin: _Node | None = None


@dataclass(frozen=True)
class _Info:
    name: str
    label: str  # "Application 'X'", "FB type 'Y'"


def _join(scope: str, name: str) -> str:
    return f"{scope}.{name}" if scope else name


def _short_type(type_name: str) -> str:
    return type_name.rsplit("::", 1)[-1]


class _Importer:
    """Reads one network into nodes and edges, then resolves them into tasks."""

    def __init__(self, table: dict[str, TypeMapping], source: str) -> None:
        self.table = table
        self.folded = {_short_type(key).casefold(): entry for key, entry in table.items()}
        self.source = source
        self.nodes: dict[_NodeKey, _Node] = {}
        self.subapps: set[str] = set()
        self.events: list[_Edge] = []
        self.data: list[_Edge] = []
        self.problems: list[Problem] = []
        self.notes: list[str] = []
        self.ev_in: dict[_NodeKey, list[_Edge]] = defaultdict(list)
        self.data_in: dict[tuple[_NodeKey, str], list[_Edge]] = defaultdict(list)
        self.data_pins: dict[_NodeKey, list[str]] = defaultdict(list)
        self.rank: dict[str, int] = {}

    def fail(self, location: str, message: str) -> ConfigError:
        """A ConfigError for a problem that stops the import."""
        return ConfigError([*self.problems, Problem(location, message)], source=self.source)

    # -- loading -------------------------------------------------------------------------

    def load(self, root: Element, app: str | None) -> _Info:
        """Read the file's network (and, for a system, its resources' START connections)."""
        tag = _tag(root)
        if tag == "System":
            info = self._load_system(root, app)
        elif tag in _TYPE_ROOTS:
            info = self._load_type(root, _TYPE_ROOTS[tag])
            if app is not None:
                self.notes.append(f"app={app!r} ignored: a {_TYPE_ROOTS[tag]} has no applications")
        else:
            raise self.fail(f"<{tag}>", "not a 4diac system (.sys), FB type (.fbt) or sub-app type (.sub)")
        if not any(key[0] == "fb" for key in self.nodes):
            self.problems.append(Problem(info.label, "the network has no function blocks"))
        return info

    def _load_system(self, root: Element, app: str | None) -> _Info:
        apps = {a.get("Name", ""): a for a in root if _tag(a) == "Application"}
        system = f"System '{root.get('Name', '')}'"
        names = ", ".join(repr(n) for n in apps) or "none"
        if app is None and len(apps) != 1:
            reason = "has no application" if not apps else f"has {len(apps)} applications ({names}); choose one (--app)"
            raise self.fail(system, reason)
        name = app if app is not None else next(iter(apps))
        if name not in apps:
            raise self.fail(system, f"has no application {name!r} (applications: {names})")
        info = _Info(name, f"Application '{name}'")
        network = _child(apps[name], "SubAppNetwork", "FBNetwork")
        if network is not None:
            self._add_network(network, "", (0.0, 0.0), 0)
        self._add_resource_starts(root, name, set(apps) - {name})
        return info

    def _load_type(self, root: Element, what: str) -> _Info:
        name = root.get("Name", "")
        info = _Info(name, f"{what} '{name}'")
        network = _child(root, "SubAppNetwork", "FBNetwork")
        if network is None:
            basic = next((_BASIC_TYPES[_tag(c)] for c in root if _tag(c) in _BASIC_TYPES), None)
            reason = (
                f"is a {basic} function block: its behaviour is code, not a network of blocks"
                if basic
                else "has no FBNetwork"
            )
            raise self.fail(info.label, f"{reason}; only composite FB types, sub-app types and systems can be imported")
        pins = _interface(_child(root, "InterfaceList", "SubAppInterfaceList"))
        pins.update({v.get("Name", ""): v.get("InitialValue") or None for v in root if _tag(v) == "VarDeclaration"})
        for pin, literal in pins.items():
            self.nodes[("root", pin)] = _Node(("root", pin), _Kind.ROOT_PIN, pin, literal=literal)
        self._add_network(network, "", (0.0, 0.0), 0)
        return info

    def _add_network(self, network: Element, scope: str, origin: tuple[float, float], depth: int) -> None:
        # Blocks first: connections may be written before the blocks they name.
        for child in network:
            self._add_element(child, scope, origin, depth)
        for child in network:
            kind = _CONNECTION_LISTS.get(_tag(child))
            for conn in child if kind else ():
                if _tag(conn) == "Connection":
                    self._add_connection(kind or "", conn, scope)

    def _add_element(self, element: Element, scope: str, origin: tuple[float, float], depth: int) -> None:
        tag = _tag(element)
        if tag == "FB":
            self._add_block(element, scope, origin)
        elif tag == "SubApp":
            self._add_subapp(element, scope, origin, depth)
        elif tag == "Group":  # visual only; older files may nest their blocks in it
            for child in element:
                self._add_element(child, scope, origin, depth)

    def _claim_name(self, element: Element, scope: str, what: str) -> str | None:
        name = (element.get("Name") or "").strip()
        label = _join(scope, name)
        if not name:
            where = f"sub-app '{scope}'" if scope else "the network"
            self.problems.append(Problem(f"{what} in {where}", "has no Name"))
            return None
        if ("fb", label) in self.nodes or label in self.subapps:
            self.problems.append(Problem(f"{what} '{label}'", "another block of the network has this name"))
            return None
        return label

    def _add_block(self, element: Element, scope: str, origin: tuple[float, float]) -> None:
        label = self._claim_name(element, scope, "FB")
        if label is None:
            return
        full_type = (element.get("Type") or "").strip()
        short = _short_type(full_type)
        kind, mapping, problem = self._classify(full_type, short)
        if problem:
            self.problems.append(Problem(f"FB '{label}'", problem))
        params = {p.get("Name", ""): p.get("Value", "") for p in element if _tag(p) == "Parameter"}
        node = _Node(("fb", label), kind, label, short, mapping, params, _position(element, origin))
        node.comment = (element.get("Comment") or "").strip()
        self.nodes[node.key] = node
        if kind is _Kind.COLLAPSE:
            self.notes.append(f"{short} '{label}' collapsed into edges")

    def _classify(self, full_type: str, short: str) -> tuple[_Kind, TypeMapping | None, str | None]:
        if short in _STRUCTURAL:
            return _STRUCTURAL[short], None, None
        mapping = self.table.get(full_type) or self.table.get(short) or self.folded.get(short.casefold())
        if mapping is not None:
            return _Kind.TASK, mapping, None
        if short in _UNSUPPORTED:
            return _Kind.BLOCKED, None, _UNSUPPORTED[short]
        if not short:
            return _Kind.BLOCKED, None, "has no Type"
        return _Kind.BLOCKED, None, f"type {short!r} has no operation mapping; add it to a mapping file (--map)"

    def _add_subapp(self, element: Element, scope: str, origin: tuple[float, float], depth: int) -> None:
        network = _child(element, "SubAppNetwork", "FBNetwork")
        if network is None:  # a typed sub-app: a block of its type, like an FB
            self._add_block(element, scope, origin)
            return
        label = self._claim_name(element, scope, "SubApp")
        if label is None:
            return
        if depth >= _MAX_SUBAPP_DEPTH:
            self.problems.append(Problem(f"SubApp '{label}'", f"sub-apps nest deeper than {_MAX_SUBAPP_DEPTH}"))
            return
        self.subapps.add(label)
        pins = _interface(_child(element, "SubAppInterfaceList", "InterfaceList"))
        pins.update({p.get("Name", ""): p.get("Value") for p in element if _tag(p) == "Parameter"})
        for pin, literal in pins.items():
            key = ("pin", f"{label}.{pin}")
            self.nodes[key] = _Node(key, _Kind.SUB_PIN, f"{label}.{pin}", literal=literal)
        position = _position(element, origin)
        inner_origin = (position["x"], position["y"]) if position else origin
        self._add_network(network, label, inner_origin, depth + 1)

    def _add_connection(self, kind: str, conn: Element, scope: str) -> None:
        src, dst = conn.get("Source") or "", conn.get("Destination") or ""
        where = f"{kind} connection {src!r} → {dst!r}" + (f" in sub-app '{scope}'" if scope else "")
        if not src or not dst:
            self.problems.append(Problem(where, "needs both Source and Destination"))
            return
        if kind == "adapter":
            message = "adapter connections cannot be mapped: TaskFlow tasks exchange data only through outputs"
            self.problems.append(Problem(where, message))
            return
        ends = [self._endpoint(text, scope) for text in (src, dst)]
        for text, end in zip((src, dst), ends, strict=True):
            if end is None:
                self.problems.append(Problem(where, self._dangling(text, scope)))
        if ends[0] is not None and ends[1] is not None:
            edge = _Edge(ends[0][0], ends[0][1], ends[1][0], ends[1][1], where)
            (self.events if kind == "event" else self.data).append(edge)

    def _dangling(self, text: str, scope: str) -> str:
        if "." not in text:
            owner = f"sub-app '{scope}'" if scope else "the network's owner"
            return f"{text!r} is not a pin of the interface of {owner}"
        return f"{text!r} names no block (or no interface pin of a sub-app) in this network"

    def _endpoint(self, text: str, scope: str) -> tuple[_NodeKey, str] | None:
        """The node and pin ``"FB.PIN"`` (or ``"PIN"`` of the enclosing interface) refers to."""
        if "." not in text:
            key = ("pin", f"{scope}.{text}") if scope else ("root", text)
            return (key, text) if key in self.nodes else None
        parts = text.split(".")
        # Like 4diac: the shortest prefix that names an element (mapped names may hold dots).
        for cut in range(1, len(parts)):
            block, pin = _join(scope, ".".join(parts[:cut])), ".".join(parts[cut:])
            if ("fb", block) in self.nodes:
                return ("fb", block), pin
            pin_key = ("pin", f"{block}.{pin}")
            if block in self.subapps and pin_key in self.nodes:
                return pin_key, pin
        return None

    def _add_resource_starts(self, system: Element, app: str, other_apps: set[str]) -> None:
        """The resources' START events into this application; the rest of a resource is the device's."""
        for resource in system.iter("Resource"):
            network = _child(resource, "FBNetwork")
            if network is None:
                continue
            starts = {"START"} | {
                fb.get("Name", "")
                for fb in network
                if _tag(fb) == "FB" and _short_type(fb.get("Type", "")) == "E_RESTART"
            }
            for conn in (c for lst in network if _tag(lst) == "EventConnections" for c in lst):
                self._add_resource_connection(conn, starts, app, other_apps, resource.get("Name", ""))

    def _add_resource_connection(
        self, conn: Element, starts: set[str], app: str, other_apps: set[str], resource: str
    ) -> None:
        src, dst = conn.get("Source") or "", conn.get("Destination") or ""
        head, _, rest = dst.partition(".")
        if head in other_apps:
            return
        end = self._endpoint(rest if head == app else dst, "")
        if end is None:
            return  # a block of the resource itself, not of this application
        block, _, pin = src.partition(".")
        where = f"event connection {src!r} → {dst!r} in resource '{resource}'"
        if block not in starts:
            self.notes.append(f"{where} ignored: only the START connections of resources are imported")
            return
        if _START_KEY not in self.nodes:
            self.nodes[_START_KEY] = _Node(_START_KEY, _Kind.START, "START", "E_RESTART")
        self.events.append(_Edge(_START_KEY, pin, end[0], end[1], where))

    # -- resolving -------------------------------------------------------------------------

    def build(self, info: _Info) -> tuple[list[dict[str, Any]], str | None]:
        """The tasks and the suggested schedule; problems are collected in ``self.problems``."""
        self._index()
        self._check_fan_in()
        self._check_loops()
        schedule = self._schedule()
        tasks = [self._task(node) for node in self.nodes.values() if node.kind is _Kind.TASK]
        started = [t["id"] for t in tasks if not t["dependencies"] and self._started_by_start(t["id"])]
        if started:
            self.notes.append(f"START.COLD/WARM mark the entry tasks: {', '.join(started)}")
        if not tasks and not self.problems:
            self.problems.append(Problem(info.label, "no block of the network becomes a task"))
        return tasks, schedule

    def _index(self) -> None:
        tasks = [node.label for node in self.nodes.values() if node.kind is _Kind.TASK]
        self.rank = {label: i for i, label in enumerate(tasks)}
        for edge in self.events:
            reason = self._ignored(edge)
            if reason:
                self.notes.append(f"{edge.where} ignored: {reason}")
            else:
                self.ev_in[edge.dst].append(edge)
        for edge in self.data:
            if (edge.dst, edge.dst_pin) not in self.data_in:
                self.data_pins[edge.dst].append(edge.dst_pin)
            self.data_in[(edge.dst, edge.dst_pin)].append(edge)

    def _ignored(self, edge: _Edge) -> str | None:
        src, dst = self.nodes[edge.src], self.nodes[edge.dst]
        if src.kind is _Kind.START and edge.src_pin == "STOP":
            return "START.STOP fires when the device stops"
        if dst.kind is _Kind.CYCLE and edge.dst_pin == "STOP":
            return "stopping an E_CYCLE has no DAG equivalent"
        if dst.type_name == "E_REND" and edge.dst_pin == "R":
            return "resetting an E_REND has no DAG equivalent"
        if dst.mapping is not None and edge.dst_pin in dst.mapping.ignore_events:
            return f"the mapping of {dst.type_name} ignores event input {edge.dst_pin}"
        return None

    def _check_fan_in(self) -> None:
        for (dst, pin), edges in self.data_in.items():
            if len(edges) > 1:
                sources = ", ".join(f"{self.nodes[e.src].label}.{e.src_pin}" for e in edges)
                message = f"data input {pin!r} has {len(edges)} sources ({sources}); a param takes one value"
                self.problems.append(Problem(self.nodes[dst].where, message))
        for dst, edges in self.ev_in.items():
            by_pin: dict[str, list[str]] = defaultdict(list)
            for e in edges:
                if self.nodes[e.src].kind not in _ENTRY_KINDS:
                    by_pin[e.dst_pin].append(f"{self.nodes[e.src].label}.{e.src_pin}")
            for pin, sources in by_pin.items():
                if len(sources) > 1:
                    self.notes.append(
                        f"event input '{self.nodes[dst].label}.{pin}' has {len(sources)} sources "
                        f"({', '.join(sources)}): 4diac fires it for each, TaskFlow runs the task once after all"
                    )

    def _check_loops(self) -> None:
        graph: dict[_NodeKey, set[_NodeKey]] = {key: set() for key in self.nodes}
        for edges in self.ev_in.values():
            for e in edges:
                graph[e.dst].add(e.src)
        self._report_loops(graph, "EventConnections", "event loop")
        # The event loops are broken now, so every loop left goes through a data connection.
        for e in self.data:
            graph[e.dst].add(e.src)
        self._report_loops(graph, "DataConnections", "loop through data connections")

    def _report_loops(self, graph: dict[_NodeKey, set[_NodeKey]], location: str, what: str) -> None:
        for _ in range(_MAX_LOOPS_REPORTED):
            cycle = find_cycle(graph)
            if cycle is None:
                return
            along = cycle[::-1]  # find_cycle follows dependencies; show the flow of events
            blocks = [self.nodes[k].label for k in along[:-1] if self.nodes[k].kind is not _Kind.SUB_PIN]
            names = blocks or [self.nodes[k].label for k in along[:-1]]
            path = " → ".join([*names, names[0]])
            self.problems.append(Problem(location, f"{what}: {path}; a DAG cannot loop"))
            graph[along[1]].discard(along[0])  # break this loop to look for the next one

    def _walk_events(self, key: _NodeKey, pins: Container[str] | None = None) -> tuple[set[str], set[_NodeKey]]:
        """The tasks and entry nodes found walking back over events from ``key``, through pass-throughs."""
        tasks: set[str] = set()
        entries: set[_NodeKey] = set()
        seen = {key}
        stack: list[tuple[_NodeKey, Container[str] | None]] = [(key, pins)]
        while stack:
            current, only = stack.pop()
            for edge in self.ev_in.get(current, ()):
                src = self.nodes[edge.src]
                if only is not None and edge.dst_pin not in only:
                    continue
                if src.kind is _Kind.TASK:
                    tasks.add(src.label)
                elif src.kind in _ENTRY_KINDS:
                    entries.add(src.key)
                elif src.key not in seen:
                    seen.add(src.key)
                    stack.append((src.key, None))
        return tasks, entries

    def _started_by_start(self, label: str) -> bool:
        _, entries = self._walk_events(("fb", label))
        return any(self.nodes[k].kind is _Kind.START for k in entries)

    def _data_source(self, key: _NodeKey, pin: str) -> _Source | None:
        """Follow a data input back through sub-app pins to the task or value that feeds it."""
        seen: set[_NodeKey] = set()
        while True:
            edges = self.data_in.get((key, pin))
            if not edges:
                literal = self.nodes[key].literal if self.nodes[key].kind is _Kind.SUB_PIN else None
                return _Source(literal=literal) if literal is not None else None
            src = self.nodes[edges[0].src]  # several sources are reported by _check_fan_in
            if src.kind is _Kind.TASK:
                return _Source(task=src, pin=edges[0].src_pin)
            if src.kind is _Kind.SUB_PIN and src.key not in seen:
                seen.add(src.key)
                key, pin = src.key, edges[0].src_pin
                continue
            if src.kind is _Kind.ROOT_PIN and src.literal is not None:
                return _Source(literal=src.literal)
            return _Source(origin=src)

    # -- the schedule ----------------------------------------------------------------------

    def _schedule(self) -> str | None:
        crons: dict[str, str] = {}
        for node in self.nodes.values():
            if node.kind is _Kind.CYCLE:
                cron = self._cycle_schedule(node)
                if cron is not None:
                    crons[node.label] = cron
        if len(set(crons.values())) > 1:
            periods = ", ".join(f"{label} ({cron!r})" for label, cron in crons.items())
            self.problems.append(
                Problem("E_CYCLE", f"E_CYCLE blocks with different periods: {periods}; a DAG has one schedule")
            )
            return None
        return next(iter(crons.values()), None)

    def _cycle_schedule(self, node: _Node) -> str | None:
        tasks, entries = self._walk_events(node.key, {"START"})
        if not tasks and not entries:
            self.notes.append(f"nothing starts E_CYCLE '{node.label}'; no schedule suggested")
            return None
        if tasks:
            message = (
                f"E_CYCLE is started by {', '.join(sorted(tasks))}; a periodic block inside a run cannot be mapped "
                "(only an E_CYCLE started by START becomes the DAG's schedule)"
            )
            self.problems.append(Problem(node.where, message))
            return None
        seconds = self._cycle_period(node)
        if seconds is None:
            return None
        cron = _cron_for_period(seconds)
        if cron is None:
            self.notes.append(f"E_CYCLE '{node.label}': a period of {seconds:g} s has no cron equivalent; no schedule")
            return None
        self.notes.append(
            f"E_CYCLE '{node.label}' (every {seconds:g} s) became the suggested schedule {cron!r} "
            "(a 6th field is seconds); the tasks it fires are entry tasks"
        )
        return cron

    def _cycle_period(self, node: _Node) -> float | None:
        source = self._data_source(node.key, "DT")
        raw = node.params.get("DT") if source is None else source.literal
        if raw is None:
            feeder = source.task or source.origin if source is not None else None
            origin = f" (it comes from {feeder.label})" if feeder is not None else ""
            self.notes.append(f"E_CYCLE '{node.label}' has no literal DT{origin}; no schedule suggested")
            return None
        try:
            value = iec_literal(raw)
        except ValueError:
            value = None
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            self.problems.append(Problem(node.where, f"DT {raw!r} is not a positive duration like T#10s"))
            return None
        return float(value)

    # -- tasks -----------------------------------------------------------------------------

    def _task(self, node: _Node) -> dict[str, Any]:
        assert node.mapping is not None  # every TASK node has one
        tasks, _ = self._walk_events(node.key)
        deps = sorted(tasks, key=self.rank.__getitem__)
        claimed: dict[str, str] = {}
        independent = self._static_params(node, claimed)
        dependent = self._data_params(node, claimed, independent, deps)
        for name, value in node.mapping.fixed.items():
            if name in claimed:
                message = (
                    f"param {name!r} is fixed to {value!r} by the mapping of {node.type_name}; "
                    f"drop pin {claimed[name]!r}"
                )
                self.problems.append(Problem(node.where, message))
            independent[name] = value
        task: dict[str, Any] = {
            "id": node.label,
            "operation": node.mapping.operation,
            "description": node.comment or f"4diac {node.type_name}",
            "independent_params": independent,
            "dependent_params": dependent,
            "dependencies": deps,
        }
        if node.position is not None:
            task["position"] = node.position
        return task

    def _param_name(self, node: _Node, pin: str, claimed: dict[str, str]) -> str | None:
        """The operation's param for a pin (None: dropped); reports two pins claiming one param."""
        assert node.mapping is not None
        name = node.mapping.params.get(pin, pin)  # a pin the entry does not list keeps its name
        if name is None:
            return None
        other = claimed.setdefault(name, pin)
        if other != pin:
            self.problems.append(Problem(node.where, f"pins {other!r} and {pin!r} both set param {name!r}"))
        return name

    def _static_params(self, node: _Node, claimed: dict[str, str]) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for pin, raw in node.params.items():
            name = self._param_name(node, pin, claimed) if raw.strip() else None  # Value="" is no value
            if name is not None:
                params[name] = self._literal(raw, f"{node.label}.{pin}")
        return params

    def _data_params(
        self, node: _Node, claimed: dict[str, str], independent: dict[str, Any], deps: list[str]
    ) -> dict[str, str]:
        dependent: dict[str, str] = {}
        for pin in self.data_pins.get(node.key, ()):
            source = self._data_source(node.key, pin)
            name = self._param_name(node, pin, claimed)
            if source is None or name is None:
                continue
            if source.task is not None:
                independent.pop(name, None)  # 4diac ignores the parameter of a connected input
                self._add_reference(node, pin, name, source, dependent, deps)
            elif source.literal is not None:
                independent[name] = self._literal(source.literal, f"{node.label}.{pin}")
            elif source.origin is not None and source.origin.kind is not _Kind.BLOCKED:
                self._unmappable_source(node, pin, source.origin)
        return dependent

    def _add_reference(
        self, node: _Node, pin: str, name: str, source: _Source, dependent: dict[str, str], deps: list[str]
    ) -> None:
        assert source.task is not None
        src = source.task
        outputs = src.mapping.outputs if src.mapping is not None else None
        if outputs is not None and source.pin not in outputs:
            known = ", ".join(outputs) or "none"
            message = (
                f"data input {pin!r} reads {src.label}.{source.pin}, "
                f"an output pin the mapping of {src.type_name} lacks (known: {known})"
            )
            self.problems.append(Problem(node.where, message))
            return
        path = outputs[source.pin] if outputs is not None else ""
        dependent[name] = f"{src.label}.{path}" if path else src.label
        if src.label not in deps:
            deps.append(src.label)

    def _unmappable_source(self, node: _Node, pin: str, origin: _Node) -> None:
        if origin.kind is _Kind.ROOT_PIN:
            self.notes.append(
                f"FB '{node.label}': data input {pin!r} comes from interface pin {origin.label!r}, "
                "which has no value in a DAG (give it an InitialValue); left unset"
            )
            return
        message = f"data input {pin!r} comes from {origin.where}, which has no output in a DAG"
        self.problems.append(Problem(node.where, message))

    def _literal(self, raw: str, where: str) -> Any:
        try:
            return iec_literal(raw)
        except ValueError:
            self.notes.append(f"parameter {where} = {raw!r} is not an IEC 61131-3 literal; kept as text")
            return raw


# -- the config ------------------------------------------------------------------------------

_NOT_DAG_ID = re.compile(r"[^A-Za-z0-9_.\-]+")


def _dag_name(name: str) -> str:
    cleaned = _NOT_DAG_ID.sub("_", name).lstrip(".")[:MAX_ID_LENGTH]
    return cleaned or "imported_4diac"


def _config_dict(
    info: _Info, tasks: list[dict[str, Any]], schedule: str | None, filename: str, dag_name: str | None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"imported_from": {"format": "4diac", "file": filename, "element": info.label}}
    if schedule is not None:
        metadata["suggested_schedule"] = schedule
    return {
        "dag_name": dag_name if dag_name is not None else _dag_name(info.name),
        "description": f"Imported from 4diac {info.label} ({filename})",
        "tasks": tasks,
        "metadata": metadata,
    }


def _validator_problems(config: dict[str, Any], filename: str) -> list[Problem]:
    """The validator's findings on a partial import, minus what the import reported its own way."""
    try:
        parse_config(config, source=filename)
    except ConfigError as exc:
        # "tasks" holds the empty-list and cycle findings, already reported by block name.
        return [p for p in exc.problems if p.location != "tasks"]
    return []
