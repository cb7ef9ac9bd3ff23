"""The device side of a system: which blocks of the resources are the application's, and what drives them.

A system's ``<Mapping From="App.FB" To="Device.Resource.FB">`` elements say which block of a resource
network is which block of an application (hand-written files also write ``App.FB`` in the resource's
connections). START's events into the application's blocks mark its entry tasks. A block that only the
resource has, connected to the application's blocks, is reported: a communication block
(PUBLISH/SUBSCRIBE, CLIENT/SERVER) as a refusal, anything else as a note. Connections among blocks that
are not the application's are none of the import's business and are not mentioned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element

from orchestrator.fourdiac.blocks import COMMUNICATION_WHY, Kind, is_communication, short_type
from orchestrator.fourdiac.model import START_KEY, Edge, Network, Node, NodeKey
from orchestrator.fourdiac.xmltree import child, tag

Endpoint = Callable[[str], tuple[NodeKey, str] | None]


@dataclass
class _Resource:
    """One resource's network, and which of its blocks belong to the chosen application or to others."""

    label: str  # "Device.Resource"
    network: Element
    ours: dict[str, str] = field(default_factory=dict)  # resource block name -> the application's label
    theirs: set[str] = field(default_factory=set)  # blocks mapped from other applications
    types: dict[str, str] = field(default_factory=dict)  # every block of the resource by name -> its type
    starts: set[str] = field(default_factory=lambda: {"START"})


def add_resource_edges(system: Element, app: str, other_apps: set[str], net: Network, endpoint: Endpoint) -> None:
    """Add START's edges into ``app`` to ``net``, and the problems and notes of the resources' own blocks."""
    reader = _ResourceReader(app, other_apps, net, endpoint)
    for resource in reader.resources(system):
        reader.read(resource)


class _ResourceReader:
    def __init__(self, app: str, other_apps: set[str], net: Network, endpoint: Endpoint) -> None:
        self.app = app
        self.other_apps = other_apps
        self.net = net
        self.endpoint = endpoint

    def resources(self, system: Element) -> list[_Resource]:
        found: dict[str, _Resource] = {}
        for device in (d for d in system if tag(d) == "Device"):
            for resource in (r for r in device if tag(r) == "Resource"):
                network = child(resource, "FBNetwork")
                if network is not None:
                    label = f"{device.get('Name', '')}.{resource.get('Name', '')}"
                    found[label] = _resource(label, network)
        for mapping in (m for m in system if tag(m) == "Mapping"):
            self._place(mapping.get("From") or "", mapping.get("To") or "", found)
        return list(found.values())

    def _place(self, source: str, target: str, found: dict[str, _Resource]) -> None:
        head, _, block = source.partition(".")
        device, _, rest = target.partition(".")
        resource_name, _, name = rest.partition(".")
        resource = found.get(f"{device}.{resource_name}")
        if resource is None or not name:
            return
        if head == self.app:
            resource.ours[name] = block
        else:
            resource.theirs.add(name)

    def read(self, resource: _Resource) -> None:
        for kind, lists in (("event", "EventConnections"), ("data", "DataConnections")):
            for conn in (c for lst in resource.network if tag(lst) == lists for c in lst if tag(c) == "Connection"):
                self._connection(resource, kind, conn.get("Source") or "", conn.get("Destination") or "")

    def _connection(self, resource: _Resource, kind: str, src: str, dst: str) -> None:
        dst_end = self._ours(resource, dst)
        if dst_end is None:
            return  # into a block that is not this application's
        block = src.partition(".")[0]
        where = f"{kind} connection {src!r} → {dst!r} in resource '{resource.label}'"
        if block in resource.starts and kind == "event":
            if START_KEY not in self.net.nodes:
                self.net.nodes[START_KEY] = Node(START_KEY, Kind.START, "START", "E_RESTART")
            self.net.events.append(Edge(START_KEY, src.partition(".")[2], dst_end[0], dst_end[1], where))
            return
        if self._ours(resource, src) is not None or block in resource.theirs or block in self.other_apps:
            return  # drawn in the application's network already, or another application's business
        self._foreign_source(resource, kind, block, dst_end)

    def _foreign_source(self, resource: _Resource, kind: str, block: str, dst: tuple[NodeKey, str]) -> None:
        """A block only the resource has drives one of the application's blocks."""
        node = self.net.nodes[dst[0]]
        type_name = resource.types.get(block, "")
        what = "event input" if kind == "event" else "data input"
        said = f"{what} {dst[1]!r} is driven by {block} ({type_name or 'no type'}) of resource '{resource.label}'"
        if is_communication(type_name):
            extra = ""
            if node.kind is Kind.CYCLE:
                period = node.params.get("DT") or "its DT"
                extra = f"; an E_CYCLE (every {period}) started at run time cannot be a schedule"
            self.net.problem(node.where, f"{said}, a communication block: {COMMUNICATION_WHY}{extra}")
            return
        self.net.note(f"{node.where}: {said}, which is not in the application; ignored")

    def _ours(self, resource: _Resource, text: str) -> tuple[NodeKey, str] | None:
        """The application's node and pin ``text`` (a resource's ``FB.PIN`` or ``App.FB.PIN``) names, if any."""
        head, _, rest = text.partition(".")
        if head == self.app and rest:
            return self.endpoint(rest)
        if head in resource.ours:
            return self.endpoint(f"{resource.ours[head]}.{rest}")
        if resource.ours or resource.theirs:
            return None  # the Mapping elements say which blocks are ours, and this is not one
        return self.endpoint(text)  # no Mapping elements: a block named like one of the application's is it


def _resource(label: str, network: Element) -> _Resource:
    resource = _Resource(label, network)
    for block in network:
        if tag(block) in ("FB", "SubApp") and block.get("Name"):
            name, type_name = block.get("Name", ""), block.get("Type", "")
            resource.types[name] = type_name
            if short_type(type_name) == "E_RESTART":
                resource.starts.add(name)
    return resource
