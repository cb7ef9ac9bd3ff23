"""The imported network: nodes (blocks and interface pins), event and data edges, and what was found on them."""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.errors import Problem
from orchestrator.fourdiac.blocks import Kind
from orchestrator.fourdiac.mapping import TypeMapping

NodeKey = tuple[str, str]  # ("fb", label), ("pin", "Sub.PIN"), ("root", PIN) or START_KEY
START_KEY: NodeKey = ("start", "START")


@dataclass
class Node:
    key: NodeKey
    kind: Kind
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
        if self.kind in (Kind.SUB_PIN, Kind.ROOT_PIN):
            return f"interface pin '{self.label}'"
        return "START" if self.key == START_KEY else f"FB '{self.label}'"


@dataclass(frozen=True)
class Edge:
    src: NodeKey
    src_pin: str
    dst: NodeKey
    dst_pin: str
    where: str


@dataclass(frozen=True)
class Source:
    """Where a data input's value comes from: a task's output, a literal, or something unmappable."""

    task: Node | None = None
    pin: str = ""
    literal: str | None = None
    origin: Node | None = None


@dataclass(frozen=True)
class Info:
    name: str
    label: str  # "Application 'X'", "FB type 'Y'"


@dataclass(frozen=True)
class RequiredValue:
    """A param the import cannot give a value: a ``%NAME%`` placeholder, or a sub-app input nothing wires.

    The hook for run parameters: once configs declare them, each becomes a required run param ``name``
    that fills ``param`` of task ``task``. Until then the import notes say to fill the value in.
    """

    name: str
    task: str
    param: str
    origin: str  # "placeholder" or "sub-app input"


@dataclass
class Network:
    """One flattened network, with the problems (reported at once at the end) and notes found on it."""

    nodes: dict[NodeKey, Node] = field(default_factory=dict)
    events: list[Edge] = field(default_factory=list)
    data: list[Edge] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    required: list[RequiredValue] = field(default_factory=list)

    def problem(self, location: str, message: str) -> None:
        self.problems.append(Problem(location, message))

    def note(self, text: str) -> None:
        self.notes.append(text)


def shown(text: str | None, limit: int = 60) -> str:
    """``text`` quoted for a problem or note, and cut short: a value can be as long as the file."""
    if text is None or len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}… ({len(text)} characters)"
