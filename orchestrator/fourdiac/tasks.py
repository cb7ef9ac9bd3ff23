"""One block → one task dict: its operation, params (literal and from data connections) and dependencies."""

from __future__ import annotations

import re
from typing import Any

from orchestrator.fourdiac.blocks import Kind
from orchestrator.fourdiac.flow import Flow
from orchestrator.fourdiac.literals import iec_literal
from orchestrator.fourdiac.model import Node, RequiredValue, Source, shown

# A value 4diac fills in when it deploys (SystemTests uses %dintValueToTest%, defined nowhere in the file).
_PLACEHOLDER = re.compile(r"%([A-Za-z_][A-Za-z0-9_]*)%")


def task_dict(flow: Flow, node: Node) -> dict[str, Any]:
    """The task a TASK node becomes; problems and notes go to ``flow.net``."""
    return _TaskBuilder(flow, node).build()


class _TaskBuilder:
    def __init__(self, flow: Flow, node: Node) -> None:
        assert node.mapping is not None  # every TASK node has one
        self.flow = flow
        self.net = flow.net
        self.node = node
        self.mapping = node.mapping
        self.claimed: dict[str, str] = {}  # param name -> the pin that sets it

    def build(self) -> dict[str, Any]:
        node = self.node
        tasks, _ = self.flow.walk_events(node.key)
        deps = sorted(tasks, key=self.flow.rank.__getitem__)
        independent = self._static_params()
        dependent = self._data_params(independent, deps)
        for name, value in self.mapping.fixed.items():
            if name in self.claimed:
                message = (
                    f"param {name!r} is fixed to {value!r} by the mapping of {node.type_name}; "
                    f"drop pin {self.claimed[name]!r}"
                )
                self.net.problem(node.where, message)
            independent[name] = value
        task: dict[str, Any] = {
            "id": node.label,
            "operation": self.mapping.operation,
            "description": node.comment or f"4diac {node.type_name}",
            "independent_params": independent,
            "dependent_params": dependent,
            "dependencies": deps,
        }
        if node.position is not None:
            task["position"] = node.position
        return task

    def _param_name(self, pin: str) -> str | None:
        """The operation's param for a pin (None: dropped); reports two pins claiming one param."""
        name = self.mapping.params.get(pin, pin)  # a pin the entry does not list keeps its name
        if name is None:
            return None
        other = self.claimed.setdefault(name, pin)
        if other != pin:
            self.net.problem(self.node.where, f"pins {other!r} and {pin!r} both set param {name!r}")
        return name

    def _static_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for pin, raw in self.node.params.items():
            name = self._param_name(pin) if raw.strip() else None  # Value="" is no value
            if name is not None:
                params[name] = self._literal(raw, pin, name)
        return params

    def _data_params(self, independent: dict[str, Any], deps: list[str]) -> dict[str, str]:
        dependent: dict[str, str] = {}
        for pin in self.flow.data_pins.get(self.node.key, ()):
            source = self.flow.data_source(self.node.key, pin)
            name = self._param_name(pin)
            if source is None or name is None:
                continue
            if source.task is not None:
                independent.pop(name, None)  # 4diac ignores the parameter of a connected input
                self._add_reference(pin, name, source, dependent, deps)
            elif source.literal is not None:
                independent[name] = self._literal(source.literal, pin, name)
            elif source.origin is not None and source.origin.kind is not Kind.BLOCKED:
                self._unmappable_source(pin, name, source.origin)
        return dependent

    def _add_reference(self, pin: str, name: str, source: Source, dependent: dict[str, str], deps: list[str]) -> None:
        assert source.task is not None
        src = source.task
        outputs = src.mapping.outputs if src.mapping is not None else None
        if outputs is not None and source.pin not in outputs:
            known = ", ".join(outputs) or "none"
            message = (
                f"data input {pin!r} reads {src.label}.{source.pin}, "
                f"an output pin the mapping of {src.type_name} lacks (known: {known})"
            )
            self.net.problem(self.node.where, message)
            return
        path = outputs[source.pin] if outputs is not None else ""
        dependent[name] = f"{src.label}.{path}" if path else src.label
        if src.label not in deps:
            deps.append(src.label)

    def _unmappable_source(self, pin: str, param: str, origin: Node) -> None:
        if origin.kind is Kind.SUB_PIN:
            sub, _, sub_pin = origin.label.rpartition(".")
            self.net.required.append(RequiredValue(origin.label, self.node.label, param, "sub-app input"))
            self.net.note(
                f"{self.node.where}: data input {pin!r} comes from pin {sub_pin!r} of sub-app '{sub}', which nothing "
                f"wires and no Parameter sets; TaskFlow has no run parameters yet: fill in the value of param "
                f"{param!r} before running (or give '{sub}' a Parameter {sub_pin})"
            )
            return
        if origin.kind is Kind.ROOT_PIN:
            self.net.note(
                f"FB '{self.node.label}': data input {pin!r} comes from interface pin {origin.label!r}, "
                "which has no value in a DAG (give it an InitialValue); left unset"
            )
            return
        message = f"data input {pin!r} comes from {origin.where}, which has no output in a DAG"
        self.net.problem(self.node.where, message)

    def _literal(self, raw: str, pin: str, param: str) -> Any:
        placeholders = _PLACEHOLDER.findall(raw)
        if placeholders:
            for name in dict.fromkeys(placeholders):
                self.net.required.append(RequiredValue(name, self.node.label, param, "placeholder"))
            names = ", ".join(f"%{name}%" for name in dict.fromkeys(placeholders))
            self.net.note(
                f"{self.node.where}: parameter {pin!r} = {shown(raw)} holds {names}, which 4diac fills in when it "
                f"deploys; TaskFlow has no run parameters yet: fill in the value of param {param!r} before running"
            )
            return raw
        try:
            return iec_literal(raw)
        except ValueError as exc:
            self.net.note(f"{self.node.where}: parameter {pin!r} = {shown(raw)} kept as text: {exc}")
            return raw
