"""Imports point one way: web/, bot/, taskflow/ -> orchestrator/ -> operations/."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What each package may not import.
FORBIDDEN = {
    "operations": {"orchestrator", "web", "bot", "taskflow"},
    "orchestrator": {"web", "bot", "taskflow"},
    "web": {"bot", "taskflow"},
    "bot": {"web", "taskflow"},
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_one_way(package: str) -> None:
    wrong = {
        str(path.relative_to(ROOT)): sorted(_imports(path) & FORBIDDEN[package])
        for path in (ROOT / package).rglob("*.py")
    }
    assert {path: names for path, names in wrong.items() if names} == {}


def test_the_executors_do_not_import_each_other() -> None:
    assert "orchestrator.dask_executor" not in ast.dump(ast.parse((ROOT / "orchestrator/executor.py").read_text()))
