"""Turn raw input into a ``DagConfig`` or a ``ConfigError`` naming every problem and where it is.

Checks run in layers so one pass reports everything: JSON syntax, then shape (pydantic), then the
graph (ids, references, cycles via graphlib), then each operation's own params model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from operations.base import Operation, OperationParams
from operations.paths import split_reference
from operations.registry import all_operations, get_operation
from orchestrator.errors import ConfigError, InvalidJsonError, Problem
from orchestrator.graph import find_cycle, is_upstream
from orchestrator.jsontext import load_json, value_problems
from orchestrator.limits import DEFAULT_MAX_TASKS, max_config_bytes
from orchestrator.models import DagConfig, TaskConfig
from orchestrator.templating import NAME_PATTERN, name_problems, templates_in

SHELL = "shell"  # the operation TASKFLOW_ALLOW_SHELL gates
_TASK_LOCATION = re.compile(r"tasks\[(\d+)\]")
_PARAM_NAME = re.compile(NAME_PATTERN)


def parse_config(
    raw: str | bytes | dict[str, Any],
    *,
    source: str = "config",
    max_tasks: int = DEFAULT_MAX_TASKS,
    allow_shell: bool = True,
) -> DagConfig:
    """Validate ``raw`` (JSON text or an already-parsed dict) fully; raise ``ConfigError`` if bad.

    ``max_tasks``: the TASKFLOW_MAX_TASKS setting; it also bounds the config's size.
    ``allow_shell=False`` (``TASKFLOW_ALLOW_SHELL`` off) refuses ``shell`` tasks.
    """
    data = raw if isinstance(raw, dict) else _load_json(raw, source, max_config_bytes(max_tasks))
    unstorable = value_problems(data)
    if unstorable:
        raise ConfigError(_named(unstorable, _raw_task_ids(data)), source=source)
    tasks = data.get("tasks") if isinstance(data, dict) else None
    if isinstance(tasks, list) and len(tasks) > max_tasks:
        message = f"{len(tasks)} tasks; the limit is {max_tasks} (the TASKFLOW_MAX_TASKS setting)"
        raise ConfigError([Problem("tasks", message)], source=source)
    try:
        config = DagConfig.model_validate(data)
    except ValidationError as exc:
        problems = pydantic_problems(exc)
        problems += _graph_problems_best_effort(data, exclude_locations={p.location for p in problems})
        raise ConfigError(_named(problems, _raw_task_ids(data)), source=source) from None
    return check_config(config, source=source, allow_shell=allow_shell)


def _raw_task_ids(data: Any) -> list[str | None]:
    tasks = data.get("tasks") if isinstance(data, dict) else None
    if not isinstance(tasks, list):
        return []
    return [t["id"] if isinstance(t, dict) and isinstance(t.get("id"), str) else None for t in tasks]


def _named(problems: list[Problem], task_ids: list[str | None]) -> list[Problem]:
    """``problems`` with the id of the task each is in (people know their tasks by id, not index)."""
    named = []
    for problem in problems:
        match = _TASK_LOCATION.match(problem.location)
        index = int(match[1]) if match else -1
        task_id = task_ids[index] if 0 <= index < len(task_ids) else None
        named.append(dataclasses.replace(problem, task_id=task_id) if task_id else problem)
    return named


def _load_json(raw: str | bytes, source: str, limit: int) -> Any:
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > limit:
        raise ConfigError([Problem("", f"config is {size} bytes; the limit is {limit}")], source=source)
    try:
        return load_json(raw)
    except InvalidJsonError as exc:
        raise ConfigError([exc.problem], source=source) from None


def pydantic_problems(exc: ValidationError, prefix: str = "") -> list[Problem]:
    """One ``Problem`` per pydantic error, located like ``tasks[2].dependencies``."""
    problems = []
    for err in exc.errors(include_url=False):
        location = _location(err["loc"], prefix)
        message = _clean(err["msg"])
        if err["type"] == "extra_forbidden":
            message = "unknown field (not allowed here)"
        problems.append(Problem(location, message))
    return problems


def _location(loc: Iterable[int | str], prefix: str = "") -> str:
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def graph_problems(config: DagConfig) -> list[Problem]:
    """Problems of ids, dependencies, references, filenames and cycles of a well-shaped config."""
    return _graph_checks([(i, t.id, t.dependencies, t.dependent_params) for i, t in enumerate(config.tasks)])


def _graph_problems_best_effort(data: Any, exclude_locations: set[str]) -> list[Problem]:
    """Graph checks on a config that failed its shape check, over the tasks that are readable."""
    tasks = data.get("tasks") if isinstance(data, dict) else None
    if not isinstance(tasks, list):
        return []
    rows = []
    problems: list[Problem] = []
    for i, task in enumerate(tasks):
        if not isinstance(task, dict) or not isinstance(task.get("id"), str):
            continue
        with contextlib.suppress(ValidationError):  # its shape problems are reported already
            problems += _task_params_problems(i, TaskConfig.model_validate(task))
        deps = task.get("dependencies", [])
        refs = task.get("dependent_params", {})
        deps = [d for d in deps if isinstance(d, str)] if isinstance(deps, list) else []
        refs = {k: v for k, v in refs.items() if isinstance(v, str)} if isinstance(refs, dict) else {}
        rows.append((i, task["id"], deps, refs))
    problems += _graph_checks(rows)
    return [p for p in problems if p.location not in exclude_locations]


Row = tuple[int, str, list[str], dict[str, str]]


def _graph_checks(rows: list[Row]) -> list[Problem]:
    problems: list[Problem] = []
    first_index: dict[str, int] = {}
    for i, task_id, _, _ in rows:
        if task_id in first_index:
            problems.append(
                Problem(
                    f"tasks[{i}].id",
                    f"duplicate task id {task_id!r} (also tasks[{first_index[task_id]}])",
                )
            )
        else:
            first_index[task_id] = i
    deps: dict[str, list[str]] = {}
    for i, task_id, task_deps, _ in rows:
        known = []
        for dep in task_deps:
            if dep == task_id:
                problems.append(
                    Problem(
                        f"tasks[{i}].dependencies",
                        f"task {task_id!r} depends on itself",
                    )
                )
            elif dep not in first_index:
                problems.append(Problem(f"tasks[{i}].dependencies", f"unknown task {dep!r}"))
            else:
                known.append(dep)
        deps.setdefault(task_id, []).extend(known)
    cycle = find_cycle(deps)
    if cycle:
        path = " → ".join(cycle)
        problems.append(Problem("tasks", f"dependency cycle: {path} (each task depends on the next)"))
        return problems
    for i, task_id, _, refs in rows:
        if refs:  # most tasks take nothing from upstream
            problems += _reference_problems(i, task_id, refs, first_index, deps)
    return problems


def _reference_problems(
    index: int,
    task_id: str,
    refs: dict[str, str],
    known: dict[str, int],
    deps: dict[str, list[str]],
) -> list[Problem]:
    problems = []
    for name, ref in refs.items():
        where = f"tasks[{index}].dependent_params.{name}"
        split = split_reference(ref, known)
        if split is None:
            problems.append(Problem(where, f"{ref!r} does not name a task"))
        elif not is_upstream(split[0], task_id, deps):
            problems.append(
                Problem(
                    where,
                    f"task {split[0]!r} is not upstream of {task_id!r}; add it to dependencies",
                )
            )
    return problems


def params_problems(config: DagConfig) -> list[Problem]:
    """Each task's params checked against its operation's own params model; filenames unique."""
    return _check_params(config)[1]


def _check_params(config: DagConfig, plain: bool = False) -> tuple[dict[str, OperationParams], list[Problem]]:
    """``params_problems``, and the validated params of each task that takes none from upstream.

    The tasks of one operation are validated in one call, as a list of its params model: one call
    into pydantic per operation, not per task. Only if that fails is each checked alone, to say where.
    """
    found: list[tuple[int, list[Problem]]] = []  # (task index, its problems), put in task order at the end
    chosen: list[tuple[int, str]] = []  # (index, filename) of the tasks that name their output
    static: dict[str, tuple[Operation, list[tuple[int, TaskConfig]]]] = {}  # by operation name
    ops = {name: get_operation(name) for name in {task.operation for task in config.tasks}}
    for i, task in enumerate(config.tasks):
        op = ops[task.operation]
        if op is None or task.dependent_params or (not plain and templated_keys(task)):
            found.append((i, _task_params_problems(i, task)))
        else:
            static.setdefault(op.name, (op, []))[1].append((i, task))
        name = task.filename
        if name and "{{" not in name:  # a templated one is checked once rendered
            chosen.append((i, name))
    valid: dict[str, OperationParams] = {}
    for op, members in static.values():
        try:
            models = _list_of(op.params_model).validate_python([task.independent_params for _, task in members])
        except ValidationError:
            found += [(i, _task_params_problems(i, task)) for i, task in members]
            continue
        valid.update((task.id, model) for (_, task), model in zip(members, models, strict=True))
    if chosen:
        found += [(i, [problem]) for i, problem in _filename_problems(config, chosen)]
    found.sort(key=lambda item: item[0])  # stable: a task's params problems stay before its filename's
    return valid, [problem for _, some in found for problem in some]


@functools.cache
def _list_of(model: type[OperationParams]) -> TypeAdapter[list[OperationParams]]:
    return TypeAdapter(list[model])  # type: ignore[valid-type]


def _filename_problems(config: DagConfig, chosen: list[tuple[int, str]]) -> list[tuple[int, Problem]]:
    # A task without ``filename`` writes <id>.json or <id>.txt: nobody else may take those names.
    seen = {f"{t.id}.{ext}": i for i, t in enumerate(config.tasks) if not t.filename for ext in ("json", "txt")}
    problems = []
    for i, name in chosen:
        if name in seen:
            where = f"tasks[{i}].independent_params.filename"
            problems.append((i, Problem(where, f"{name!r} is also the output of tasks[{seen[name]}]")))
        seen.setdefault(name, i)
    return problems


def _task_params_problems(index: int, task: TaskConfig) -> list[Problem]:
    op = get_operation(task.operation)
    if op is None:
        known = ", ".join(all_operations())
        return [
            Problem(
                f"tasks[{index}].operation",
                f"unknown operation {task.operation!r} (known: {known})",
            )
        ]
    problems = []
    later = set(task.dependent_params) | templated_keys(task)
    if task.dependent_params:
        aliases = _param_names(op.params_model)
        problems += [
            Problem(f"tasks[{index}].dependent_params.{name}", f"operation {op.name!r} has no param {name!r}")
            for name in task.dependent_params
            if name not in aliases
        ]
    try:
        op.params_model.model_validate(task.independent_params)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            if err["loc"] and err["loc"][0] in later:
                continue  # a dependent or templated value: checked once it is known
            problems.append(_param_problem(index, op.name, err))
    return problems


@functools.cache
def _param_names(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(f.alias or name for name, f in model.model_fields.items())


def _param_problem(index: int, op_name: str, err: Any) -> Problem:
    loc = err["loc"]
    location = _location(loc, f"tasks[{index}].independent_params") if loc else f"tasks[{index}].independent_params"
    if err["type"] == "missing":
        return Problem(location, f"operation {op_name!r} needs this param")
    if err["type"] == "extra_forbidden":
        return Problem(location, f"operation {op_name!r} has no param {loc[-1]!r}")
    return Problem(location, _clean(err["msg"]))


def _clean(message: str) -> str:
    # pydantic prefixes messages from our own validators; users need only the reason.
    return message.removeprefix("Value error, ")


def config_schema() -> dict[str, Any]:
    """The published JSON Schema of a DAG config."""
    schema = DagConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "TaskFlow DAG config"
    return schema


def check_config(config: DagConfig, *, source: str = "config", allow_shell: bool = True) -> DagConfig:
    """Run the graph, template and params checks on a config built in code (``parse_config`` does them too)."""
    checked_params(config, source=source, allow_shell=allow_shell)
    return config


def checked_params(
    config: DagConfig,
    *,
    source: str = "config",
    allow_shell: bool = True,
    templates: bool = True,
    plain: bool = False,
) -> dict[str, OperationParams]:
    """Check ``config`` as ``check_config`` does; return the validated params of each task that takes
    none from upstream, so that the engine need not validate them again when they run.

    ``templates=False``: a config a run has rendered already (what its params filled in is data).
    ``plain``: the caller knows its JSON holds no ``{{`` at all, so no task's params wait for a template.
    """
    params, problems = _check_params(config, plain)
    problems = graph_problems(config) + (template_problems(config) if templates else []) + problems
    if not allow_shell:
        problems += _shell_problems(config)
    if problems:
        raise ConfigError(_named(problems, [t.id for t in config.tasks]), source=source)
    return params


def _shell_problems(config: DagConfig) -> list[Problem]:
    message = f"the {SHELL} operation is disabled; set TASKFLOW_ALLOW_SHELL=1 to allow it"
    return [Problem(f"tasks[{i}].operation", message) for i, t in enumerate(config.tasks) if t.operation == SHELL]


def template_problems(config: DagConfig) -> list[Problem]:
    """Bad param names, and templates that are invalid, name unknown things or put a secret in a filename."""
    problems = [
        Problem(f"params.{name}", f"a param name must match {NAME_PATTERN}")
        for name in config.params
        if not _PARAM_NAME.match(name)
    ]
    for i, task in enumerate(config.tasks):
        where = f"tasks[{i}].independent_params"
        for location, template, problem in templates_in(task.independent_params, where):
            if template is None:
                problems.append(Problem(location, f"{problem}"))
                continue
            problems += [Problem(location, message) for message in name_problems(template, config.params)]
            if template.secrets and location == f"{where}.filename":
                problems.append(Problem(location, "a filename may not hold a secret"))
    return problems


def templated_keys(task: TaskConfig) -> set[str]:
    """Params whose value holds a template of ours (or a bad one): they are checked once rendered."""
    return {
        key
        for key, value in task.independent_params.items()
        if not isinstance(value, int | float | None) and any(True for _ in templates_in(value, key))
    }
