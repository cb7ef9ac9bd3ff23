"""A long refusal summarised by kind: one line per kind of problem, with its count and first few places.

Real applications can give a thousand problems, most of them the same few kinds (every E_SWITCH is
branching, every block of one unmapped type). Each interface offers the full list on request.
"""

from __future__ import annotations

import re
from collections import defaultdict

from orchestrator.errors import ConfigError, Problem

MAX_LISTED_PROBLEMS = 30  # more than this, and the refusal is summarised by kind
_PLACES_SHOWN = 3
_LOOP = re.compile(r"(event loop|loop through data connections): ")
_QUOTED = re.compile(r"(?<!type )'[^']*'")  # a type's name stays: each unmapped type is a kind of its own
_BRACKETED = re.compile(r"\([^()]*\)")


def summarised(error: ConfigError, how_to_see_all: str, limit: int = MAX_LISTED_PROBLEMS) -> ConfigError:
    """``error`` itself if it lists at most ``limit`` problems; else one problem per kind, with counts."""
    if len(error.problems) <= limit:
        return error
    kinds: dict[str, list[Problem]] = defaultdict(list)
    for problem in error.problems:
        kinds[_kind(problem.message)].append(problem)
    ordered = sorted(kinds.items(), key=lambda item: -len(item[1]))  # stable: ties keep the first-found order
    head = Problem("", f"{len(error.problems)} problems of {len(kinds)} kinds, summarised; {how_to_see_all}")
    return SummarisedError(head, [_line(kind, problems) for kind, problems in ordered], source=error.source)


class SummarisedError(ConfigError):
    """A refusal summarised by kind: ``problems`` starts with the summary's own line (what the API lists)."""

    def __init__(self, head: Problem, lines: list[Problem], *, source: str) -> None:
        self.head = head
        super().__init__([head, *lines], source=source)

    def report(self) -> str:
        lines = [f"{self.source} is invalid: {self.head.message}"]
        lines += [f"  - {p}" for p in self.problems[1:]]
        return "\n".join(lines)


def _kind(message: str) -> str:
    """What problems of one kind share: the message without the names and values of one block."""
    loop = _LOOP.match(message)
    if loop:
        return f"{loop[1]}: …; a DAG cannot loop"
    return _BRACKETED.sub("(…)", _QUOTED.sub("'…'", message))


def _line(kind: str, problems: list[Problem]) -> Problem:
    if len(problems) == 1:
        return problems[0]
    example = problems[0].message
    text = example if all(p.message == example for p in problems) else kind
    locations = list(dict.fromkeys(p.location for p in problems))
    if len(locations) == 1:  # loops are all found in "EventConnections"
        return Problem(f"{len(problems)} × {locations[0]}", text)
    places = ", ".join(locations[:_PLACES_SHOWN])
    more = f" and {len(locations) - _PLACES_SHOWN} more" if len(locations) > _PLACES_SHOWN else ""
    return Problem(f"{len(problems)} × ({places}{more})", text)
