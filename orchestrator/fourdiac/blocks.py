"""What each 4diac FB type becomes: a task (through the type table), a block handled here, or a refusal."""

from __future__ import annotations

from enum import Enum
from functools import lru_cache

from operations.iec import standard_function
from orchestrator.fourdiac.hints import Hints
from orchestrator.fourdiac.mapping import TypeMapping


class Kind(Enum):
    """What a node of the imported network becomes."""

    TASK = "task"
    START = "start"  # E_RESTART: its events mark entry tasks
    CYCLE = "cycle"  # E_CYCLE: a schedule when START drives it
    COLLAPSE = "collapse"  # E_SPLIT / E_REND: edges only
    BLOCKED = "blocked"  # cannot be mapped; reported, and passed through so nothing else cascades
    SUB_PIN = "sub_pin"  # a pin of an untyped sub-app's interface: passed through
    ROOT_PIN = "root_pin"  # a pin of the imported type's own interface: an entry (or a sink)


ENTRY_KINDS = frozenset({Kind.START, Kind.ROOT_PIN, Kind.CYCLE})

_STRUCTURAL = {"E_RESTART": Kind.START, "E_SPLIT": Kind.COLLAPSE, "E_REND": Kind.COLLAPSE, "E_CYCLE": Kind.CYCLE}
_PERMIT = "is branching (it passes an event only while PERMIT is TRUE); TaskFlow DAGs cannot branch"
_STATE = "keeps state between events; a TaskFlow task runs once per run"
_UNSUPPORTED = {
    "E_SWITCH": "E_SWITCH is branching; TaskFlow DAGs cannot branch",
    "E_PERMIT": f"E_PERMIT {_PERMIT}",
    "E_DEFAULT_PERMIT": f"E_DEFAULT_PERMIT {_PERMIT}",
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


_COMMUNICATION = ("PUBLISH", "SUBSCRIBE", "CLIENT", "SERVER")
COMMUNICATION_WHY = (
    "PUBLISH/SUBSCRIBE and CLIENT/SERVER exchange messages between devices while they run, "
    "and a TaskFlow run cannot wait for a message"
)


def is_communication(type_name: str) -> bool:
    """Whether a block type sends or receives messages between devices (``PUBLISH_1``, ``SUBSCRIBE_0``…)."""
    return short_type(type_name).upper().startswith(_COMMUNICATION)


def short_type(type_name: str) -> str:
    """The type name without its package prefix: ``iec61499::events::E_DELAY`` → ``E_DELAY``."""
    return type_name.rsplit("::", 1)[-1]


@lru_cache(maxsize=1024)  # bounded: type names come from untrusted files
def standard_mapping(short: str) -> TypeMapping | None:
    """The entry of an IEC 61131-3 standard function block (F_ADD, INT2INT…): ``iec_function`` on its pins."""
    function = standard_function(short)
    if function is None:
        return None
    return TypeMapping(
        operation="iec_function",
        description=f"IEC 61131-3 {function}",
        params={"QI": None},
        fixed={"function": function},
        outputs={"OUT": ""},
    )


class Classifier:
    """Decides what blocks of each type become, by a type table."""

    def __init__(self, table: dict[str, TypeMapping], hints: Hints) -> None:
        self.table = table
        self.hints = hints
        self.folded = {short_type(key).casefold(): entry for key, entry in table.items()}

    def mapped(self, full_type: str, short: str) -> bool:
        """Whether the type table (built-in or the user's) has an entry for the type."""
        return (self.table.get(full_type) or self.table.get(short) or self.folded.get(short.casefold())) is not None

    def classify(
        self, full_type: str, short: str, *, subapp: bool = False
    ) -> tuple[Kind, TypeMapping | None, str | None]:
        """The block's kind, its table entry (for a task) and the problem (for a refused one).

        ``subapp``: the block is a typed sub-app, whose type file (not a mapping) is what is missing.
        """
        if short in _STRUCTURAL:
            return _STRUCTURAL[short], None, None
        mapping = self.table.get(full_type) or self.table.get(short) or self.folded.get(short.casefold())
        if mapping is None:
            mapping = standard_mapping(short)
        if mapping is not None:
            return Kind.TASK, mapping, None
        if short in _UNSUPPORTED:
            return Kind.BLOCKED, None, _UNSUPPORTED[short]
        if is_communication(short):
            return Kind.BLOCKED, None, f"{short} is a communication block: {COMMUNICATION_WHY}"
        if not short:
            return Kind.BLOCKED, None, "has no Type"
        if subapp:
            message = f"a typed sub-app of type {short!r}, whose type file was not given; {self.hints.types}"
            return Kind.BLOCKED, None, message
        return Kind.BLOCKED, None, f"type {short!r} has no operation mapping; {self.hints.mapping}"
