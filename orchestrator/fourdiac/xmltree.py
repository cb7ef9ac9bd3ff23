"""The 4diac file as XML: the size cap, safe parsing of untrusted input, and helpers to read elements."""

from __future__ import annotations

import math
import re
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeElementTree
from defusedxml import DefusedXmlException, EntitiesForbidden, ExternalReferenceForbidden

from orchestrator.errors import ConfigError, Problem
from orchestrator.limits import MAX_XML_BYTES

_POSITION_SUFFIX = re.compile(r": line \d+, column \d+$")


def xml_bytes(data: bytes | str, source: str) -> bytes:
    """The file's bytes, refused (``ConfigError``) above ``MAX_XML_BYTES``."""
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if len(raw) > MAX_XML_BYTES:
        message = f"file is {len(raw)} bytes; the limit is {MAX_XML_BYTES}"
        raise ConfigError([Problem("", message)], source=source)
    if not raw.strip():
        raise ConfigError([Problem("", "the file is empty; send a 4diac .sys, .fbt or .sub file")], source=source)
    return raw


def parse_xml(raw: bytes, source: str) -> Element:
    """The root element; malformed XML (with its line and column), entities and external references are refused."""
    try:
        return SafeElementTree.fromstring(raw, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except ParseError as exc:
        line, column = exc.position
        message = _POSITION_SUFFIX.sub("", str(exc))
        raise ConfigError(
            [Problem(f"line {line}, column {column + 1}", f"malformed XML: {message}")], source=source
        ) from None
    except EntitiesForbidden as exc:
        message = f"entity declaration {exc.name!r} refused: entities can expand without bound or read local files"
        raise ConfigError([Problem("DOCTYPE", message)], source=source) from None
    except ExternalReferenceForbidden as exc:
        message = f"external reference {exc.sysid!r} refused: the importer reads nothing outside the file"
        raise ConfigError([Problem("DOCTYPE", message)], source=source) from None
    except DefusedXmlException as exc:
        raise ConfigError([Problem("DOCTYPE", f"refused: {exc}")], source=source) from None


def tag(element: Element) -> str:
    """The element's tag without its namespace."""
    return element.tag.rsplit("}", 1)[-1] if isinstance(element.tag, str) else ""


def child(element: Element, *tags: str) -> Element | None:
    """The first child with one of ``tags``."""
    # ElementTree elements are falsy when empty, so compare with None, never `or`.
    for item in element:
        if tag(item) in tags:
            return item
    return None


def position(element: Element, origin: tuple[float, float]) -> dict[str, float] | None:
    """The element's ``x``/``y`` offset by ``origin``, or None if it has no finite ones."""
    try:
        x, y = float(element.get("x", "")), float(element.get("y", ""))
    except ValueError:
        return None
    if not (math.isfinite(x) and math.isfinite(y)):
        return None
    return {"x": origin[0] + x, "y": origin[1] + y}


def interface(element: Element | None) -> dict[str, str | None]:
    """Pin names of an interface list, with their initial values."""
    if element is None:
        return {}
    pins: dict[str, str | None] = {}
    for item in element.iter():
        if tag(item) in {"Event", "SubAppEvent", "VarDeclaration", "AdapterDeclaration"} and item.get("Name"):
            pins[item.get("Name", "")] = item.get("InitialValue") or None
    return pins
