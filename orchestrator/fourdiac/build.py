"""The import from end to end: XML → network → checks, schedule and tasks → a validated DAG config."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import ConfigError, Problem
from orchestrator.fourdiac.blocks import Kind
from orchestrator.fourdiac.flow import Flow
from orchestrator.fourdiac.mapping import type_table
from orchestrator.fourdiac.model import Info, Network
from orchestrator.fourdiac.network import read_network
from orchestrator.fourdiac.schedule import suggested_schedule
from orchestrator.fourdiac.tasks import task_dict
from orchestrator.fourdiac.xmltree import parse_xml, xml_bytes
from orchestrator.limits import MAX_ID_LENGTH
from orchestrator.models import DagConfig
from orchestrator.validation import parse_config

_NOT_DAG_ID = re.compile(r"[^A-Za-z0-9_.\-]+")


@dataclass(frozen=True)
class ImportResult:
    """What an import produced: a validated config, a suggested schedule, and notes for the user."""

    config: DagConfig
    schedule: str | None
    notes: list[str]


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
    raw = xml_bytes(data, filename)
    table = type_table(mapping)
    root = parse_xml(raw, filename)
    net, info = read_network(root, app, table, filename)
    tasks, schedule = _build(net, info)
    config = _config_dict(info, tasks, schedule, filename, dag_name)
    if net.problems:
        raise ConfigError(net.problems + _validator_problems(config, filename), source=filename)
    return ImportResult(parse_config(config, source=filename), schedule, net.notes)


def _build(net: Network, info: Info) -> tuple[list[dict[str, Any]], str | None]:
    """The tasks and the suggested schedule; problems are collected in ``net.problems``."""
    flow = Flow(net)
    flow.check_fan_in()
    flow.check_loops()
    schedule = suggested_schedule(flow)
    tasks = [task_dict(flow, node) for node in net.nodes.values() if node.kind is Kind.TASK]
    started = [t["id"] for t in tasks if not t["dependencies"] and flow.started_by_start(t["id"])]
    if started:
        net.note(f"START.COLD/WARM mark the entry tasks: {', '.join(started)}")
    if not tasks and not net.problems:
        net.problem(info.label, "no block of the network becomes a task")
    return tasks, schedule


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


def _validator_problems(config: dict[str, Any], filename: str) -> list[Problem]:
    """The validator's findings on a partial import, minus what the import reported its own way."""
    try:
        parse_config(config, source=filename)
    except ConfigError as exc:
        # "tasks" holds the empty-list and cycle findings, already reported by block name.
        return [p for p in exc.problems if p.location != "tasks"]
    return []
