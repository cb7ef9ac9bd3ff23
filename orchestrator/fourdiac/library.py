"""A 4diac type library: the sub-app types (``.sub``) and composite FB types (``.fbt``) an import can expand.

A typed sub-app (``<SubApp Type="Counter">``) or a block of a composite type names a type file that
sits beside the system file in a 4diac project. Given the project's folder (``--lib DIR``) or ZIP, the
importer expands such blocks into their network. Types are found by the ``Name`` of their root element,
not by file name; a file that cannot be read is skipped with a note, as is a type of no network (basic
FBs are code, not blocks).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree.ElementTree import Element

from orchestrator.errors import ConfigError, Problem
from orchestrator.fourdiac.xmltree import child, parse_xml, tag, xml_bytes
from orchestrator.limits import MAX_4DIAC_TYPE_FILES, MAX_4DIAC_UNZIPPED_BYTES, MAX_XML_BYTES

TYPE_SUFFIXES = (".sub", ".fbt")
_EXPANDABLE_ROOTS = ("SubAppType", "FBType")


def is_type_file(name: str) -> bool:
    return name.lower().endswith(TYPE_SUFFIXES)


@dataclass
class LibraryType:
    """One expandable type: its root element and the file it came from."""

    name: str
    root: Element
    file: str

    @property
    def network(self) -> Element | None:
        return child(self.root, "SubAppNetwork", "FBNetwork")


@dataclass
class TypeLibrary:
    """Expandable types by name (case-insensitive, as the type table is)."""

    types: dict[str, LibraryType] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def get(self, type_name: str) -> LibraryType | None:
        return self.types.get(type_name.casefold())

    @classmethod
    def from_files(cls, files: Iterable[tuple[str, bytes]]) -> TypeLibrary:
        """A library of ``(file name, bytes)`` pairs; names not ending in .sub or .fbt are passed over."""
        library = cls()
        for name, data in files:
            if is_type_file(name):
                library.add(name, data)
        return library

    @classmethod
    def from_dir(cls, folder: str | os.PathLike[str]) -> TypeLibrary:
        """The type files under ``folder`` (and its sub-folders), within the count and size limits."""
        root = Path(folder)
        if not root.is_dir():
            raise ConfigError([Problem("", f"{root} is not a folder")], source="--lib")
        paths = sorted(p for p in root.rglob("*") if is_type_file(p.name) and p.is_file())
        if len(paths) > MAX_4DIAC_TYPE_FILES:
            message = f"holds {len(paths)} type files; the limit is {MAX_4DIAC_TYPE_FILES}"
            raise ConfigError([Problem(str(root), message)], source="--lib")
        total = sum(p.stat().st_size for p in paths)
        if total > MAX_4DIAC_UNZIPPED_BYTES:
            message = f"its type files are {total} bytes in all; the limit is {MAX_4DIAC_UNZIPPED_BYTES}"
            raise ConfigError([Problem(str(root), message)], source="--lib")
        library = cls()
        for path in paths:
            name = str(path.relative_to(root))
            size = path.stat().st_size
            if size > MAX_XML_BYTES:
                library.notes.append(f"type file {name} skipped: it is {size} bytes; the limit is {MAX_XML_BYTES}")
            else:
                library.add(name, path.read_bytes())
        return library

    def add(self, name: str, data: bytes) -> None:
        try:
            root = parse_xml(xml_bytes(data, name), name)
        except ConfigError as exc:
            self.notes.append(f"type file {name} skipped: {exc.problems[0]}")
            return
        type_name = (root.get("Name") or "").strip()
        if tag(root) not in _EXPANDABLE_ROOTS or not type_name:
            return  # a basic FB, a data type, a system: nothing to expand
        entry = LibraryType(type_name, root, name)
        if entry.network is None:
            return
        other = self.types.setdefault(type_name.casefold(), entry)
        if other is not entry:
            self.notes.append(f"type {type_name} is in both {other.file} and {name}; {other.file} is used")
