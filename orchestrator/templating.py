"""``{{ params.NAME }}``, ``{{ run.ds }}``, ``{{ dag.id }}`` and ``{{ secrets.NAME }}`` in task params.

Jinja2 parses the strings; only ``{{ }}`` is syntax (block and comment delimiters are set to text
that never occurs, so ``${#var}`` or ``{% %}`` in a shell command stay text). The parsed tree must
hold plain names of ours (``root.name``), string constants (the escape ``{{ "{{" }}``) and text, so
rendering is a lookup and can never be made expensive. Strings whose ``{{ }}`` name nothing of
ours (``json_to_string``'s escapes, say) are left as they are.

A run renders its config once when it is created; secrets stay references (``{{ secrets.NAME }}``)
in what is stored and are resolved in memory when an attempt starts.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOTS = ("params", "run", "dag", "secrets")
RUN_FIELDS = ("id", "logical_date", "ds")
DAG_FIELDS = ("id",)
NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"
_NAME = re.compile(NAME_PATTERN)
# A syntax error is ours to report only when the text plainly meant one of our names.
_OURS_HINT = re.compile(r"\{\{-?\s*(?:params|run|dag|secrets)\b")
_NEVER = "\x00\x01taskflow-no-{}\x01\x00"  # delimiters no config text holds: blocks and comments are off
ESCAPE_HINT = 'write a literal "{{" as {{ "{{" }}'

_ENV = ImmutableSandboxedEnvironment(
    undefined=StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
    block_start_string=_NEVER.format("block-start"),
    block_end_string=_NEVER.format("block-end"),
    comment_start_string=_NEVER.format("comment-start"),
    comment_end_string=_NEVER.format("comment-end"),
)


class TemplateError(ValueError):
    """A string that is a template of ours but not a valid one; the message says why."""


@dataclass(frozen=True, slots=True)
class Ref:
    """A name of ours: ``root.name``."""

    root: str
    name: str

    def __str__(self) -> str:
        return f"{{{{ {self.root}.{self.name} }}}}"


Part = str | Ref  # text (constants included) or a name to look up


@dataclass(frozen=True, slots=True)
class Template:
    """A string of ours, as its parts in order."""

    parts: tuple[Part, ...]

    @property
    def refs(self) -> list[Ref]:
        """Every name it uses."""
        return [p for p in self.parts if isinstance(p, Ref)]

    @property
    def single(self) -> Ref | None:
        """The name, when the string is exactly one expression (its value keeps its JSON type)."""
        return self.parts[0] if len(self.parts) == 1 and isinstance(self.parts[0], Ref) else None

    @property
    def secrets(self) -> list[str]:
        """The secrets it names."""
        return [r.name for r in self.refs if r.root == "secrets"]


def parse(text: str) -> Template | None:
    """The template ``text`` holds, None if it names nothing of ours; ``TemplateError`` if it is bad."""
    if "{{" not in text:
        return None
    return _parse(text)


_CR = "\x00\x02taskflow-cr\x02\x00"  # Jinja turns "\r\n" and "\r" into "\n": carriage returns are kept aside


@functools.lru_cache(maxsize=4096)  # the same template often fills the params of many tasks
def _parse(text: str) -> Template | None:
    try:
        tree = _ENV.parse(text.replace("\r", _CR))
    except TemplateSyntaxError as exc:
        if _OURS_HINT.search(text):
            raise TemplateError(f"template syntax error: {exc.message}") from None
        return None
    parts: list[Part] = []
    others = 0
    for output in tree.body:
        assert isinstance(output, nodes.Output)  # blocks are off: the body is only output
        for node in output.nodes:
            if isinstance(node, nodes.TemplateData):
                parts.append(node.data)
            elif isinstance(node, nodes.Const) and isinstance(node.value, str):
                parts.append(node.value)
            elif any(n.name in ROOTS for n in node.find_all(nodes.Name)) or _is_root(node):
                parts.append(_ref(node))
            else:
                others += 1
    refs = [p for p in parts if isinstance(p, Ref)]
    if not refs:
        return None
    if others:
        raise TemplateError(f"mixes names of TaskFlow's with other {{{{ }}}} text; {ESCAPE_HINT}")
    return Template(tuple(p.replace(_CR, "\r") if isinstance(p, str) else p for p in parts))


def _is_root(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Name) and node.name in ROOTS


def _ref(node: nodes.Node) -> Ref:
    if isinstance(node, nodes.Getattr) and isinstance(node.node, nodes.Name) and node.node.name in ROOTS:
        return Ref(node.node.name, node.attr)
    raise TemplateError(
        "only plain names such as {{ params.city }} or {{ run.ds }} may be used (no operators, calls, "
        "filters or indexing)"
    )


def name_problems(template: Template, declared: Mapping[str, Any]) -> list[str]:
    """What is wrong with the names a template uses, for a config declaring ``declared`` params."""
    problems = []
    for ref in template.refs:
        if ref.root == "params" and ref.name not in declared:
            known = ", ".join(declared) or "none are declared"
            problems.append(f'unknown param {ref.name!r} (declared in "params": {known})')
        elif ref.root == "run" and ref.name not in RUN_FIELDS:
            problems.append(f"unknown name run.{ref.name} (known: {', '.join('run.' + f for f in RUN_FIELDS)})")
        elif ref.root == "dag" and ref.name not in DAG_FIELDS:
            problems.append(f"unknown name dag.{ref.name} (known: dag.id)")
        elif ref.root == "secrets" and not _NAME.match(ref.name):
            problems.append(f"secret name {ref.name!r} must be letters, digits and _ (a letter first)")
    return problems


def strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """Every string inside ``value`` that holds ``{{``, with its location."""
    if isinstance(value, str):
        if "{{" in value:
            yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from strings(item, f"{where}[{i}]")


def templates_in(value: Any, where: str) -> Iterator[tuple[str, Template | None, str | None]]:
    """(location, template or None, problem or None) for each string of ours in ``value``."""
    for location, text in strings(value, where):
        try:
            template = parse(text)
        except TemplateError as exc:
            yield location, None, str(exc)
            continue
        if template is not None:
            yield location, template, None


def map_strings(value: Any, fn: Callable[[str], Any]) -> Any:
    """``value`` with each string holding ``{{`` replaced by ``fn(string)``; untouched parts are shared."""
    if isinstance(value, str):
        return fn(value) if "{{" in value else value
    if isinstance(value, dict):
        return {key: map_strings(item, fn) for key, item in value.items()}
    if isinstance(value, list):
        return [map_strings(item, fn) for item in value]
    return value


# -- rendering ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunValues:
    """What a run's templates may name, apart from secrets."""

    params: Mapping[str, Any]
    run_id: int
    logical_date: float
    dag_id: str
    tz: ZoneInfo

    def lookup(self, ref: Ref) -> Any:
        """The value of a (validated) name."""
        if ref.root == "params":
            return self.params[ref.name]
        if ref.root == "dag":
            return self.dag_id
        if ref.name == "id":
            return self.run_id
        when = datetime.fromtimestamp(self.logical_date, self.tz)
        return when.isoformat() if ref.name == "logical_date" else when.date().isoformat()


def render(text: str, values: RunValues) -> Any:
    """``text`` with the names of a run filled in; secrets stay references, escaped for a second pass."""
    template = parse(text)
    if template is None:
        return text
    single = template.single
    if single is not None and single.root != "secrets":
        return values.lookup(single)  # keeps its JSON type
    if template.secrets:
        # Rendered again when an attempt starts: everything but the references is escaped, so no
        # value can turn into a reference to a secret.
        return "".join(
            str(p) if isinstance(p, Ref) and p.root == "secrets" else _escape(_text(p, values)) for p in template.parts
        )
    rendered = "".join(_text(p, values) for p in template.parts)
    if secret_template(rendered) is not None:
        raise TemplateError("a param's value would make a reference to a secret here; values may not name secrets")
    return rendered


def _text(part: Part, values: RunValues) -> str:
    if isinstance(part, str):
        return part
    value = values.lookup(part)
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _escape(text: str) -> str:
    # Every "{" as a constant: no delimiter (ours or the disabled ones) can form from the text.
    return text.replace("{", '{{ "{" }}')


def secret_template(text: str) -> Template | None:
    """The template of a stored string that names secrets and nothing else of ours, else None."""
    if "{{" not in text or "secrets" not in text:
        return None
    try:
        template = parse(text)
    except TemplateError:
        return None
    if template is None or not template.secrets or any(r.root != "secrets" for r in template.refs):
        return None
    return template


def fill_secrets(template: Template, secrets: Mapping[str, str]) -> str:
    """A secret template with its values (in memory only: never store the result)."""
    return "".join(secrets[p.name] if isinstance(p, Ref) else p for p in template.parts)
