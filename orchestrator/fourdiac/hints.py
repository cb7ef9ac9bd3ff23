"""How a refusal tells the user to give the import what it lacks: each interface words it its own way."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Hints:
    """What to do about a type with no mapping (``mapping``), or a typed sub-app with no type file (``types``)."""

    mapping: str = "add it to a type mapping"
    types: str = "import it together with the project's type files"


CLI_HINTS = Hints(
    mapping="add it to a type mapping (--map FILE.json)",
    types="pass the folder that holds its .sub file with --lib DIR (or import the project's ZIP)",
)
API_HINTS = Hints(
    mapping=(
        "add it to a type mapping: a JSON part (application/json) beside the XML in a multipart/mixed body, "
        "or taskflow-map.json inside a project ZIP"
    ),
    types="send the project as a ZIP (application/zip) that holds its .sub file",
)
BOT_HINTS = Hints(
    mapping="add it to a type mapping: send a .zip of the file with a taskflow-map.json beside it",
    types="send the project as a .zip that holds its .sub file",
)
