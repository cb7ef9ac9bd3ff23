"""Reading the network of a 4diac file: FBs, untyped sub-apps (flattened to ``Sub.FB``), connections, START.

A system (``.sys``) gives one application's network plus its resources' START connections; an FB type
(``.fbt``) or sub-app type (``.sub``) gives its own network, whose interface pins become entry nodes.
"""

from __future__ import annotations

from collections.abc import Iterator
from xml.etree.ElementTree import Element

from orchestrator.errors import ConfigError, Problem
from orchestrator.fourdiac.blocks import Classifier, Kind, short_type
from orchestrator.fourdiac.hints import Hints
from orchestrator.fourdiac.library import LibraryType, TypeLibrary
from orchestrator.fourdiac.mapping import TypeMapping
from orchestrator.fourdiac.model import Edge, Info, Network, Node, NodeKey, shown
from orchestrator.fourdiac.resources import add_resource_edges
from orchestrator.fourdiac.xmltree import child, interface, position, tag
from orchestrator.limits import MAX_4DIAC_NODES

_MAX_SUBAPP_DEPTH = 32  # nesting deeper than this is hostile, not a drawing
_MAX_GROUP_DEPTH = 32  # the same for groups, which hold nothing but blocks and other groups
_BASIC_TYPES = {
    "BasicFB": "basic",
    "SimpleFB": "simple",
    "ServiceFB": "service interface",
    "Service": "service interface",
}
_TYPE_ROOTS = {"FBType": "FB type", "SubAppType": "sub-app type", "ResourceType": "resource type"}
_SUFFIXES = {"System": ".sys", "FBType": ".fbt", "SubAppType": ".sub", "ResourceType": ".res"}
_CONNECTION_LISTS = {"EventConnections": "event", "DataConnections": "data", "AdapterConnections": "adapter"}


class AppChoiceError(ConfigError):
    """A system with several applications and none chosen, or one it lacks; ``apps`` are its applications."""

    def __init__(self, problems: list[Problem], *, source: str, apps: list[str]) -> None:
        self.apps = apps
        super().__init__(problems, source=source)

    def with_hint(self, how: str) -> ConfigError:
        """The same refusal, saying how to choose where the file came from (``"pass --app NAME"``)."""
        *before, last = self.problems
        return ConfigError([*before, Problem(last.location, f"{last.message} ({how})")], source=self.source)


def read_network(
    root: Element,
    app: str | None,
    table: dict[str, TypeMapping],
    source: str,
    library: TypeLibrary | None = None,
    hints: Hints | None = None,
) -> tuple[Network, Info]:
    """The file's network (and, for a system, its resources' START connections).

    ``library`` holds the types that typed sub-apps and composite blocks are expanded from. Raises
    ``ConfigError`` when there is no network to read; other problems are collected in it.
    """
    reader = _Reader(table, source, library, hints or Hints())
    info = reader.load(root, app)
    return reader.net, info


def default_filename(root: Element) -> str:
    """What to call a file sent without a name: ``upload`` with the suffix 4diac gives what it holds."""
    return "upload" + _SUFFIXES.get(tag(root), ".xml")


def _join(scope: str, name: str) -> str:
    return f"{scope}.{name}" if scope else name


def _scope_where(scope: str) -> str:
    """How problems name the network a nameless element is in."""
    return f"sub-app '{scope}'" if scope else "the network"


class _Reader:
    """Reads one network into nodes and edges."""

    def __init__(self, table: dict[str, TypeMapping], source: str, library: TypeLibrary | None, hints: Hints) -> None:
        self.classifier = Classifier(table, hints)
        self.library = library
        self.expanding: dict[str, str] = {}  # the library types being expanded, outermost first
        self.source = source
        self.net = Network()
        self.nodes = self.net.nodes
        self.subapps: set[str] = set()

    def fail(self, location: str, message: str) -> ConfigError:
        """A ConfigError for a problem that stops the import."""
        return ConfigError([*self.net.problems, Problem(location, message)], source=self.source)

    def _choose(self, system: str, reason: str, apps: list[str]) -> AppChoiceError:
        # Worded for any interface: each edge adds how to choose there (AppChoiceError.with_hint).
        names = ", ".join(repr(n) for n in apps)
        problems = [*self.net.problems, Problem(system, f"{reason}; choose one of: {names}")]
        return AppChoiceError(problems, source=self.source, apps=apps)

    def load(self, root: Element, app: str | None) -> Info:
        root_tag = tag(root)
        if root_tag == "System":
            info = self._load_system(root, app)
        elif root_tag in _TYPE_ROOTS:
            info = self._load_type(root, _TYPE_ROOTS[root_tag])
            if app is not None:
                self.net.note(f"app={app!r} ignored: a {_TYPE_ROOTS[root_tag]} has no applications")
        else:
            raise self.fail(f"<{root_tag}>", "not a 4diac system (.sys), FB type (.fbt) or sub-app type (.sub)")
        if not any(key[0] == "fb" for key in self.nodes):
            self.net.problem(info.label, "the network has no function blocks")
        return info

    def _load_system(self, root: Element, app: str | None) -> Info:
        apps = {a.get("Name", ""): a for a in root if tag(a) == "Application"}
        system = f"System '{root.get('Name', '')}'"
        if not apps:
            raise self.fail(system, "has no application")
        if app is None and len(apps) > 1:
            raise self._choose(system, f"has {len(apps)} applications", list(apps))
        name = app if app is not None else next(iter(apps))
        if name not in apps:
            raise self._choose(system, f"has no application {name!r}", list(apps))
        info = Info(name, f"Application '{name}'")
        network = child(apps[name], "SubAppNetwork", "FBNetwork")
        if network is not None:
            self._add_network(network, "", (0.0, 0.0), 0)
        add_resource_edges(root, name, set(apps) - {name}, self.net, lambda text: self._endpoint(text, ""))
        return info

    def _load_type(self, root: Element, what: str) -> Info:
        name = root.get("Name", "")
        info = Info(name, f"{what} '{name}'")
        network = child(root, "SubAppNetwork", "FBNetwork")
        if network is None:
            basic = next((_BASIC_TYPES[tag(c)] for c in root if tag(c) in _BASIC_TYPES), None)
            reason = (
                f"is a {basic} function block: its behaviour is code, not a network of blocks"
                if basic
                else "has no FBNetwork"
            )
            raise self.fail(info.label, f"{reason}; only composite FB types, sub-app types and systems can be imported")
        pins = interface(child(root, "InterfaceList", "SubAppInterfaceList"))
        pins.update({v.get("Name", ""): v.get("InitialValue") or None for v in root if tag(v) == "VarDeclaration"})
        for pin, literal in pins.items():
            self.nodes[("root", pin)] = Node(("root", pin), Kind.ROOT_PIN, pin, literal=literal)
        self._add_network(network, "", (0.0, 0.0), 0)
        return info

    # -- blocks and sub-apps -----------------------------------------------------------------

    def _add_network(self, network: Element, scope: str, origin: tuple[float, float], depth: int) -> None:
        # Blocks first: connections may be written before the blocks they name.
        for item in self._members(network, scope):
            self._add_element(item, scope, origin, depth)
        for item in network:
            kind = _CONNECTION_LISTS.get(tag(item))
            for conn in item if kind else ():
                if tag(conn) == "Connection":
                    self._add_connection(kind or "", conn, scope)

    def _members(self, network: Element, scope: str) -> Iterator[Element]:
        """The network's elements, with the contents of its groups (visual only) in their place.

        A loop, not recursion: a hostile file can nest groups deeper than Python's stack.
        """
        stack = [iter(network)]
        while stack:
            item = next(stack[-1], None)
            if item is None:
                stack.pop()
            elif tag(item) != "Group":
                yield item
            elif len(stack) <= _MAX_GROUP_DEPTH:
                stack.append(iter(item))
            else:
                name = (item.get("Name") or "").strip()
                where = f"Group '{_join(scope, name)}'" if name else f"a Group in {_scope_where(scope)}"
                self.net.problem(where, f"groups nest deeper than {_MAX_GROUP_DEPTH}; the blocks in it were not read")

    def _add_element(self, element: Element, scope: str, origin: tuple[float, float], depth: int) -> None:
        element_tag = tag(element)
        if element_tag not in ("FB", "SubApp"):
            return
        network = child(element, "SubAppNetwork", "FBNetwork") if element_tag == "SubApp" else None
        typed = self._library_type(element) if network is None else None
        if network is not None:
            self._add_subapp(element, element, network, scope, origin, depth)
        elif typed is not None:
            self._add_typed(element, typed, scope, origin, depth)
        else:  # a block, or a typed sub-app of a type the library lacks: a block of its type
            self._add_block(element, scope, origin)

    def _library_type(self, element: Element) -> LibraryType | None:
        """The library's type of a block, unless the type table maps that type (the table wins)."""
        full = (element.get("Type") or "").strip()
        short = short_type(full)
        if self.library is None or not short or self.classifier.mapped(full, short):
            return None
        return self.library.get(short)

    def _add_typed(
        self, element: Element, typed: LibraryType, scope: str, origin: tuple[float, float], depth: int
    ) -> None:
        """A typed sub-app or composite block: its type's network, wired through its type's interface."""
        label = _join(scope, (element.get("Name") or "").strip())
        what = "SubApp" if tag(element) == "SubApp" else "FB"
        key = typed.name.casefold()
        if key in self.expanding:
            chain = " → ".join([*self.expanding.values(), typed.name])
            self.net.problem(f"{what} '{label}'", f"type {typed.name} contains itself ({chain})")
            return
        if len(self.nodes) + len(self.subapps) > MAX_4DIAC_NODES:
            message = f"expanding typed sub-apps makes more than {MAX_4DIAC_NODES} blocks, pins and sub-apps; it stops"
            raise self.fail(f"{what} '{label}'", message)
        network = typed.network
        assert network is not None  # the library keeps only types with a network
        self.expanding[key] = typed.name
        try:
            if self._add_subapp(element, typed.root, network, scope, origin, depth):
                self.net.note(f"{what} '{label}' expanded from type {typed.name} ({typed.file})")
        finally:
            del self.expanding[key]

    def _add_subapp(
        self,
        element: Element,
        declares: Element,
        network: Element,
        scope: str,
        origin: tuple[float, float],
        depth: int,
    ) -> bool:
        """A sub-app's network flattened into this one, its interface (as ``declares`` has it) as pins."""
        what = "SubApp" if tag(element) == "SubApp" else "FB"
        label = self._claim_name(element, scope, what)
        if label is None:
            return False
        if depth >= _MAX_SUBAPP_DEPTH:
            self.net.problem(f"{what} '{label}'", f"sub-apps nest deeper than {_MAX_SUBAPP_DEPTH}")
            return False
        self.subapps.add(label)
        pins = interface(child(declares, "SubAppInterfaceList", "InterfaceList"))
        # Value="" is how 4diac writes "no value": the pin keeps its InitialValue.
        pins.update({pin: value for pin, value in self._parameters(element, f"{what} '{label}'").items() if value})
        for pin, literal in pins.items():
            key = ("pin", f"{label}.{pin}")
            self.nodes[key] = Node(key, Kind.SUB_PIN, f"{label}.{pin}", literal=literal)
        at = position(element, origin)
        inner_origin = (at["x"], at["y"]) if at else origin
        self._add_network(network, label, inner_origin, depth + 1)
        return True

    def _claim_name(self, element: Element, scope: str, what: str) -> str | None:
        name = (element.get("Name") or "").strip()
        label = _join(scope, name)
        if not name:
            self.net.problem(f"{what} in {_scope_where(scope)}", "has no Name")
            return None
        if ("fb", label) in self.nodes or label in self.subapps:
            self.net.problem(f"{what} '{label}'", "another block of the network has this name")
            return None
        return label

    def _add_block(self, element: Element, scope: str, origin: tuple[float, float]) -> None:
        label = self._claim_name(element, scope, "FB")
        if label is None:
            return
        full_type = (element.get("Type") or "").strip()
        short = short_type(full_type)
        kind, mapping, problem = self.classifier.classify(full_type, short, subapp=tag(element) == "SubApp")
        if problem:
            self.net.problem(f"FB '{label}'", problem)
        params = {name: value or "" for name, value in self._parameters(element, f"FB '{label}'").items()}
        node = Node(("fb", label), kind, label, short, mapping, params, position(element, origin))
        node.comment = (element.get("Comment") or "").strip()
        self.nodes[node.key] = node
        if kind is Kind.COLLAPSE:
            self.net.note(f"{short} '{label}' collapsed into edges")

    def _parameters(self, element: Element, where: str) -> dict[str, str | None]:
        """The element's ``<Parameter>`` values by name; a nameless or repeated one is a problem."""
        params: dict[str, str | None] = {}
        for item in element:
            if tag(item) != "Parameter":
                continue
            name, value = (item.get("Name") or "").strip(), item.get("Value")
            if not name:
                self.net.problem(where, f"a Parameter (Value {shown(value)}) has no Name")
            elif name in params:
                message = (
                    f"parameter {name!r} is given twice (Values {shown(params[name])} and {shown(value)}); keep one"
                )
                self.net.problem(where, message)
            else:
                params[name] = value
        return params

    # -- connections -----------------------------------------------------------------------

    def _add_connection(self, kind: str, conn: Element, scope: str) -> None:
        src, dst = conn.get("Source") or "", conn.get("Destination") or ""
        where = f"{kind} connection {src!r} → {dst!r}" + (f" in sub-app '{scope}'" if scope else "")
        if not src or not dst:
            self.net.problem(where, "needs both Source and Destination")
            return
        if kind == "adapter":
            message = "adapter connections cannot be mapped: TaskFlow tasks exchange data only through outputs"
            self.net.problem(where, message)
            return
        ends = [self._endpoint(text, scope) for text in (src, dst)]
        for text, end in zip((src, dst), ends, strict=True):
            if end is None:
                self.net.problem(where, self._dangling(text, scope))
        if ends[0] is not None and ends[1] is not None:
            edge = Edge(ends[0][0], ends[0][1], ends[1][0], ends[1][1], where)
            (self.net.events if kind == "event" else self.net.data).append(edge)

    def _dangling(self, text: str, scope: str) -> str:
        if "." not in text:
            owner = f"sub-app '{scope}'" if scope else "the network's owner"
            return f"{text!r} is not a pin of the interface of {owner}"
        return f"{text!r} names no block (or no interface pin of a sub-app) in this network"

    def _endpoint(self, text: str, scope: str) -> tuple[NodeKey, str] | None:
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
