"""The import from end to end: XML → network → checks, schedule and tasks → a validated DAG config."""

from __future__ import annotations

import heapq
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from orchestrator.errors import ConfigError, Problem
from orchestrator.fourdiac.blocks import Kind
from orchestrator.fourdiac.flow import Flow
from orchestrator.fourdiac.hints import Hints
from orchestrator.fourdiac.library import TypeLibrary
from orchestrator.fourdiac.mapping import type_table
from orchestrator.fourdiac.model import Info, Network, Node, RequiredValue
from orchestrator.fourdiac.network import default_filename, read_network
from orchestrator.fourdiac.schedule import suggested_schedule
from orchestrator.fourdiac.tasks import task_dict
from orchestrator.fourdiac.xmltree import parse_xml, xml_bytes
from orchestrator.limits import MAX_ID_LENGTH
from orchestrator.models import DagConfig
from orchestrator.validation import parse_config

_NOT_DAG_ID = re.compile(r"[^A-Za-z0-9_.\-]+")
# tasks[3].independent_params.QI[0] → 3, "independent_params", "QI[0]"
_TASK_LOCATION = re.compile(r"tasks\[(\d+)\](?:\.([A-Za-z_]+))?(?:\.(.*))?\Z", re.S)


@dataclass(frozen=True)
class ImportResult:
    """What an import produced: a validated config, a suggested schedule, and notes for the user."""

    config: DagConfig
    schedule: str | None
    notes: list[str]
    # Values to fill in before a run (placeholders, unwired sub-app inputs): required run params to be.
    required: list[RequiredValue] = field(default_factory=list)


def import_4diac(
    data: bytes | str,
    *,
    filename: str | None = None,
    app: str | None = None,
    mapping: Mapping[str, Any] | None = None,
    dag_name: str | None = None,
    library: TypeLibrary | None = None,
    hints: Hints | None = None,
) -> ImportResult:
    """Turn a 4diac system (``.sys``), composite FB type (``.fbt``) or sub-app type (``.sub``) into a DAG.

    ``app`` picks the application of a system that has several; ``mapping`` (as ``load_mapping``
    returns it) extends the built-in type table; ``dag_name`` defaults to the application's or type's
    name; ``library`` holds the types typed sub-apps are expanded from; ``hints`` word the refusals for the
    interface the file came from. Without a ``filename`` the file
    is named for what it holds (``upload.sys``, ``upload.sub``…). Raises ``ConfigError`` listing every
    problem found.
    """
    raw = xml_bytes(data, filename or "upload")
    table = type_table(mapping)
    root = parse_xml(raw, filename or "upload")
    filename = filename or default_filename(root)
    net, info = read_network(root, app, table, filename, library, hints)
    if library is not None:
        net.notes[:0] = library.notes
    tasks, schedule = _build(net, info)
    config = _config_dict(info, tasks, schedule, filename, dag_name)
    if net.required:
        config["metadata"]["required_values"] = [asdict(value) for value in net.required]
    return ImportResult(_validated(config, net, filename), schedule, net.notes, net.required)


def _build(net: Network, info: Info) -> tuple[list[dict[str, Any]], str | None]:
    """The tasks and the suggested schedule; problems are collected in ``net.problems``."""
    flow = Flow(net)
    flow.check_fan_in()
    flow.check_loops()
    schedule = suggested_schedule(flow)
    tasks = _in_dependency_order([task_dict(flow, node) for node in net.nodes.values() if node.kind is Kind.TASK])
    started = [t["id"] for t in tasks if not t["dependencies"] and flow.started_by_start(t["id"])]
    if started:
        net.note(f"START.COLD/WARM mark the entry tasks: {', '.join(started)}")
    if not tasks and not net.problems:
        net.problem(info.label, "no block of the network becomes a task")
    return tasks, schedule


def _in_dependency_order(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tasks with each after its dependencies, in file order where that leaves a choice.

    4diac writes blocks in the order they were drawn (often the last block first); reports read better
    from the start. Tasks on a loop (already reported) keep their file order at the end.
    """
    place = {task["id"]: i for i, task in enumerate(tasks)}
    waiting = {task["id"]: sum(dep in place for dep in set(task["dependencies"])) for task in tasks}
    children: dict[str, list[str]] = {task["id"]: [] for task in tasks}
    for task in tasks:
        for dep in set(task["dependencies"]):
            if dep in children:
                children[dep].append(task["id"])
    ready = [place[task_id] for task_id, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        index = heapq.heappop(ready)
        order.append(index)
        for child in children[tasks[index]["id"]]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, place[child])
    left = sorted(set(range(len(tasks))) - set(order))
    return [tasks[i] for i in order + left]


def _dag_name(name: str) -> str:
    cleaned = _NOT_DAG_ID.sub("_", name).lstrip(".")[:MAX_ID_LENGTH]
    return cleaned or "imported_4diac"


def _config_dict(
    info: Info, tasks: list[dict[str, Any]], schedule: str | None, filename: str, dag_name: str | None
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


def _validated(config: dict[str, Any], net: Network, filename: str) -> DagConfig:
    """The config once the validator passed it; otherwise every problem, each naming its block."""
    try:
        parsed = parse_config(config, source=filename)
    except ConfigError as exc:
        found = exc.problems
    else:
        if not net.problems:
            return parsed
        found = []
    if net.problems:
        # "tasks" holds the empty-list and cycle findings, already reported by block name.
        found = [p for p in found if p.location != "tasks"]
    blocks = [net.nodes[("fb", task["id"])] for task in config["tasks"]]
    missing = {(value.task, value.param): value for value in net.required}
    raise ConfigError(net.problems + [_by_block(p, blocks, missing) for p in found], source=filename)


def _by_block(problem: Problem, blocks: list[Node], missing: Mapping[tuple[str, str], RequiredValue]) -> Problem:
    """A validator finding about ``tasks[i]…`` said of the block that task came from, as 4diac names it."""
    match = _TASK_LOCATION.match(problem.location)
    if match is None:
        return problem  # about the DAG as a whole (its name, say)
    block = blocks[int(match[1])]
    field, name = match[2] or "", match[3] or ""
    if field == "id" and "pattern" in problem.message:
        message = (
            f"its name cannot be a task id: a task id is 1-{MAX_ID_LENGTH} letters, digits, '_', '-' or '.' "
            f"(not first); rename the {'block or its sub-app' if '.' in block.label else 'block'}"
        )
        return Problem(block.where, message)
    if field in ("independent_params", "dependent_params") and name:
        message = f"param {name!r}{_pins_of(block, name)}: {problem.message}"
        return Problem(block.where, message + _why_missing(missing.get((block.label, name))))
    where = ".".join(part for part in (field, name) if part)
    return Problem(block.where, f"{where}: {problem.message}" if where else problem.message)


def _why_missing(value: RequiredValue | None) -> str:
    """What the import could not fill in a param the validator refused (a placeholder, an unwired input)."""
    if value is None:
        return ""
    if value.origin == "placeholder":
        return f" (it holds %{value.name}%, a value 4diac fills in when it deploys: write the value instead)"
    sub, _, pin = value.name.rpartition(".")
    return f" (it comes from pin {pin!r} of sub-app '{sub}', which nothing wires: give '{sub}' a Parameter {pin})"


def _pins_of(block: Node, param: str) -> str:
    """Which of the block's parameters set ``param``, when the mapping renamed them (" (from DT)")."""
    renames = block.mapping.params if block.mapping is not None else {}
    top = re.split(r"[.\[]", param, maxsplit=1)[0]  # "headers.Accept" is set by the pin of "headers"
    pins = [pin for pin in block.params if renames.get(pin, pin) == top and pin != top]
    return f" (from {', '.join(pins)})" if pins else ""
