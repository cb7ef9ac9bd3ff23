"""The flow through a read network: its edges by destination, the walks back over them, and the DAG checks.

Pass-through nodes (E_SPLIT/E_REND, sub-app pins, refused blocks) are walked through, so the tasks
before them become the dependencies of the tasks after them. The checks report data inputs with
several sources, event inputs fired from several places (a note), and loops.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Container, Iterator

from orchestrator.fourdiac.blocks import ENTRY_KINDS, Kind
from orchestrator.fourdiac.model import Edge, Network, NodeKey, Source
from orchestrator.graph import find_cycle

_MAX_LOOPS_REPORTED = 5
_WALK_ENDS = ENTRY_KINDS | {Kind.TASK}  # a walk back stops at these; it passes through the rest

_Reach = tuple[frozenset[str], frozenset[NodeKey]]  # the tasks and the entry nodes a walk back reaches
_NO_TASKS: frozenset[str] = frozenset()
_NO_ENTRIES: frozenset[NodeKey] = frozenset()


class Flow:
    """The network's edges indexed by destination (ignored event edges noted and left out)."""

    def __init__(self, net: Network) -> None:
        self.net = net
        self.nodes = net.nodes
        self.ev_in: dict[NodeKey, list[Edge]] = defaultdict(list)
        self.data_in: dict[tuple[NodeKey, str], list[Edge]] = defaultdict(list)
        self.data_pins: dict[NodeKey, list[str]] = defaultdict(list)
        tasks = [node.label for node in self.nodes.values() if node.kind is Kind.TASK]
        self.rank = {label: i for i, label in enumerate(tasks)}
        self._reach: dict[NodeKey, _Reach] = {}  # per pass-through node, filled by the walks
        for edge in net.events:
            reason = self._ignored(edge)
            if reason:
                net.note(f"{edge.where} ignored: {reason}")
            else:
                self.ev_in[edge.dst].append(edge)
        for edge in net.data:
            if (edge.dst, edge.dst_pin) not in self.data_in:
                self.data_pins[edge.dst].append(edge.dst_pin)
            self.data_in[(edge.dst, edge.dst_pin)].append(edge)

    def _ignored(self, edge: Edge) -> str | None:
        src, dst = self.nodes[edge.src], self.nodes[edge.dst]
        if src.kind is Kind.START and edge.src_pin == "STOP":
            return "START.STOP fires when the device stops"
        if dst.kind is Kind.CYCLE and edge.dst_pin == "STOP":
            return "stopping an E_CYCLE has no DAG equivalent"
        if dst.type_name == "E_REND" and edge.dst_pin == "R":
            return "resetting an E_REND has no DAG equivalent"
        if dst.mapping is not None and edge.dst_pin in dst.mapping.ignore_events:
            return f"the mapping of {dst.type_name} ignores event input {edge.dst_pin}"
        return None

    # -- walks -----------------------------------------------------------------------------

    def walk_events(self, key: NodeKey, pins: Container[str] | None = None) -> tuple[set[str], set[NodeKey]]:
        """The tasks and entry nodes found walking back over events from ``key``, through pass-throughs.

        ``key`` is a task or an E_CYCLE; ``pins`` limits the walk to some of its event inputs.
        """
        tasks: set[str] = set()
        entries: set[NodeKey] = set()
        for edge in self.ev_in.get(key, ()):
            if pins is None or edge.dst_pin in pins:
                found_tasks, found_entries = self._reached_from(edge.src)
                tasks |= found_tasks
                entries |= found_entries
        return tasks, entries

    def started_by_start(self, label: str) -> bool:
        _, entries = self.walk_events(("fb", label))
        return any(self.nodes[k].kind is Kind.START for k in entries)

    def _reached_from(self, key: NodeKey) -> _Reach:
        """What an event from ``key`` stands for: the task itself, the entry itself, or what a pass-through reaches."""
        node = self.nodes[key]
        if node.kind is Kind.TASK:
            return frozenset({node.label}), _NO_ENTRIES
        if node.kind in ENTRY_KINDS:
            return _NO_TASKS, frozenset({key})
        if key not in self._reach:
            self._settle_from(key)
        return self._reach[key]

    def _passed_through(self, key: NodeKey) -> list[NodeKey]:
        """The pass-through nodes whose events reach ``key`` directly."""
        nodes = self.nodes
        return [e.src for e in self.ev_in.get(key, ()) if nodes[e.src].kind not in _WALK_ENDS]

    def _settle_from(self, root: NodeKey) -> None:
        """Fill ``_reach`` for ``root`` and every pass-through behind it, each once (Tarjan's SCCs).

        Every walk back from a task used to re-walk the chain of E_SPLITs before it: quadratic on long
        chains. The pass-throughs on one loop reach the same blocks, so each strongly connected group
        is settled at once, after the groups behind it (Tarjan finds them in that order).
        """
        index: dict[NodeKey, int] = {}
        low: dict[NodeKey, int] = {}
        stack: list[NodeKey] = []
        at: dict[NodeKey, int] = {}  # a node's place on the stack: list.index would rescan it
        work: list[tuple[NodeKey, Iterator[NodeKey]]] = []

        def visit(key: NodeKey) -> None:
            index[key] = low[key] = len(index)
            at[key] = len(stack)
            stack.append(key)
            work.append((key, iter(self._passed_through(key))))

        visit(root)
        while work:
            key, behind = work[-1]
            src = next(behind, None)
            if src is not None:
                if src not in index and src not in self._reach:
                    visit(src)
                elif src not in self._reach:  # on the stack: part of the group being explored
                    low[key] = min(low[key], index[src])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[key])
            if low[key] == index[key]:
                cut = at[key]
                self._settle_group(stack[cut:])
                del stack[cut:]

    def _settle_group(self, group: list[NodeKey]) -> None:
        """Record what a strongly connected group of pass-throughs reaches (the groups behind it are settled)."""
        inside = set(group)
        parts = {
            id(reach): reach
            for key in group
            for edge in self.ev_in.get(key, ())
            if edge.src not in inside
            for reach in (self._reached_from(edge.src),)
        }
        if len(parts) == 1:
            reach = next(iter(parts.values()))  # shared, not copied: a chain of E_SPLITs stays linear
        else:
            reach = (
                frozenset().union(*(tasks for tasks, _ in parts.values())),
                frozenset().union(*(entries for _, entries in parts.values())),
            )
        for key in group:
            self._reach[key] = reach

    def data_source(self, key: NodeKey, pin: str) -> Source | None:
        """Follow a data input back through sub-app pins to the task or value that feeds it."""
        seen: set[NodeKey] = set()
        while True:
            edges = self.data_in.get((key, pin))
            if not edges:
                node = self.nodes[key]
                if node.kind is not Kind.SUB_PIN:
                    return None  # a block's own input nothing connects
                # A sub-app input nothing wires: its Parameter or InitialValue, or no value at all.
                return Source(literal=node.literal) if node.literal is not None else Source(origin=node)
            src = self.nodes[edges[0].src]  # several sources are reported by check_fan_in
            if src.kind is Kind.TASK:
                return Source(task=src, pin=edges[0].src_pin)
            if src.kind is Kind.SUB_PIN and src.key not in seen:
                seen.add(src.key)
                key, pin = src.key, edges[0].src_pin
                continue
            if src.kind is Kind.ROOT_PIN and src.literal is not None:
                return Source(literal=src.literal)
            return Source(origin=src)

    # -- checks ----------------------------------------------------------------------------

    def check_fan_in(self) -> None:
        for (dst, pin), edges in self.data_in.items():
            if len(edges) > 1:
                sources = ", ".join(f"{self.nodes[e.src].label}.{e.src_pin}" for e in edges)
                message = f"data input {pin!r} has {len(edges)} sources ({sources}); a param takes one value"
                self.net.problem(self.nodes[dst].where, message)
        for dst, edges in self.ev_in.items():
            by_pin: dict[str, list[str]] = defaultdict(list)
            for e in edges:
                if self.nodes[e.src].kind not in ENTRY_KINDS:
                    by_pin[e.dst_pin].append(f"{self.nodes[e.src].label}.{e.src_pin}")
            for pin, sources in by_pin.items():
                if len(sources) > 1:
                    self.net.note(
                        f"event input '{self.nodes[dst].label}.{pin}' has {len(sources)} sources "
                        f"({', '.join(sources)}): 4diac fires it for each, TaskFlow runs the task once after all"
                    )

    def check_loops(self) -> None:
        graph: dict[NodeKey, set[NodeKey]] = {key: set() for key in self.nodes}
        for edges in self.ev_in.values():
            for e in edges:
                graph[e.dst].add(e.src)
        self._report_loops(graph, "EventConnections", "event loop")
        # The event loops are broken now, so every loop left goes through a data connection.
        for e in self.net.data:
            graph[e.dst].add(e.src)
        self._report_loops(graph, "DataConnections", "loop through data connections")

    def _report_loops(self, graph: dict[NodeKey, set[NodeKey]], location: str, what: str) -> None:
        for _ in range(_MAX_LOOPS_REPORTED):
            cycle = find_cycle(graph)
            if cycle is None:
                return
            along = cycle[::-1]  # find_cycle follows dependencies; show the flow of events
            blocks = [self.nodes[k].label for k in along[:-1] if self.nodes[k].kind is not Kind.SUB_PIN]
            names = blocks or [self.nodes[k].label for k in along[:-1]]
            path = " → ".join([*names, names[0]])
            self.net.problem(location, f"{what}: {path}; a DAG cannot loop")
            graph[along[1]].discard(along[0])  # break this loop to look for the next one
