"""What a run is made of before it is stored: its params' values and its config, rendered.

Everything a trigger can get wrong is refused here, before any run exists: params of the wrong
type or missing, bad templates, secrets that are not set, a rendered value an operation refuses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from operations.base import OperationParams
from orchestrator.errors import ConfigError, Problem
from orchestrator.models import DagConfig
from orchestrator.runparams import run_params
from orchestrator.secrets import Secrets
from orchestrator.templating import RunValues, TemplateError, render, templates_in
from orchestrator.validation import checked_params, template_problems


@dataclass(frozen=True, slots=True)
class Prepared:
    """A run ready to be stored."""

    params: dict[str, Any] | None  # the values of the DAG's params (None: it declares none)
    config: DagConfig  # rendered (with run id 0, when it names its run's id)
    text: str | Callable[[int], str]  # the config to store: its JSON, or that JSON as a function of the run id
    checked: dict[str, OperationParams] | None  # tasks' params validated already (see ``checked_params``)


def prepare(
    config: DagConfig,
    given: Mapping[str, Any] | None,
    *,
    secrets: Secrets,
    logical_date: float,
    tz: ZoneInfo,
    source: str = "config",
    allow_shell: bool = True,
) -> Prepared:
    """Check the trigger's params, render the config and check it again; ``ConfigError`` with every refusal."""
    values = run_params(config.params, given)
    text = config.model_dump_json(exclude_defaults=True)
    if "{{" not in text and not config.params:  # the common case: nothing to render
        checked = checked_params(config, source=source, allow_shell=allow_shell, templates=False, plain=True)
        return Prepared(None, config, text, checked)
    strings = [
        (location, template)
        for i, task in enumerate(config.tasks)
        for location, template, _ in templates_in(task.independent_params, f"tasks[{i}].independent_params")
    ]
    found = [(location, template) for location, template in strings if template is not None]
    problems = template_problems(config)
    if problems:
        raise ConfigError(problems, source=source)
    problems = _missing_secrets(found, secrets)
    if problems:
        raise ConfigError(problems, source=source)

    def rendered(run_id: int) -> DagConfig:
        return render_config(config, RunValues(values, run_id, logical_date, config.dag_id, tz), source)

    first = rendered(0)
    checked = checked_params(first, source=source, allow_shell=allow_shell, templates=False)
    if not any(ref.root == "run" and ref.name == "id" for _, template in found for ref in template.refs):
        return Prepared(values or None, first, first.model_dump_json(exclude_defaults=True), checked)
    return Prepared(values or None, first, lambda run_id: rendered(run_id).model_dump_json(exclude_defaults=True), None)


def _missing_secrets(found: list[tuple[str, Any]], secrets: Secrets) -> list[Problem]:
    first: dict[str, str] = {}  # each secret once, at the first place naming it
    for location, template in found:
        for name in template.secrets:
            first.setdefault(name, location)
    return [
        Problem(first[name], f"secret {name!r} is not set (set {secrets.where(name)})")
        for name in secrets.missing(first)
    ]


def render_config(config: DagConfig, values: RunValues, source: str = "config") -> DagConfig:
    """``config`` with the templates of its tasks' params rendered (secrets stay references)."""
    problems: list[Problem] = []
    tasks = []
    for i, task in enumerate(config.tasks):
        params = task.independent_params
        if any(True for _ in templates_in(params, "")):
            params = _render(params, values, f"tasks[{i}].independent_params", problems)
            task = task.model_copy(update={"independent_params": params})
        tasks.append(task)
    if problems:
        raise ConfigError(problems, source=source)
    return config.model_copy(update={"tasks": tasks})


def _render(value: Any, values: RunValues, where: str, problems: list[Problem]) -> Any:
    if isinstance(value, str):
        try:
            return render(value, values)
        except TemplateError as exc:
            problems.append(Problem(where, str(exc)))
            return value
    if isinstance(value, dict):
        return {key: _render(item, values, f"{where}.{key}", problems) for key, item in value.items()}
    if isinstance(value, list):
        return [_render(item, values, f"{where}[{i}]", problems) for i, item in enumerate(value)]
    return value
