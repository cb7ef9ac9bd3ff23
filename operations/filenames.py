"""What a task's output file may be called: the plug-in interface's own rule, used by the config too."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator

MAX_FILENAME_LENGTH = 128
# Names the run folder uses for itself; a task's output may not take them.
RESERVED_FILENAMES = frozenset({"config.json", "run.log", "run.json", "manifest.json"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Control (Cc), format (Cf: U+202E would show "txt.exe" as "exe.txt"), line and paragraph separators,
# and surrogates (Cs: unpaired, no file system or chat can take them).
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def _unsafe_character(name: str) -> str | None:
    if name.isascii():  # the common case: only the C0 controls and DEL are unsafe there
        found = _CONTROL.search(name)
        return found.group() if found else None
    return next((ch for ch in name if unicodedata.category(ch) in _UNSAFE_CATEGORIES), None)


def check_filename(name: str) -> str:
    """Return ``name`` if it is a plain file name for a run folder, else raise ``ValueError``."""
    if not name:
        raise ValueError("filename must not be empty")
    if len(name) > MAX_FILENAME_LENGTH:
        raise ValueError(f"filename is longer than {MAX_FILENAME_LENGTH} characters")
    if "/" in name or "\\" in name:
        raise ValueError(f"filename {name!r} must be a plain name, without '/' or '\\'")
    if ".." in name:
        raise ValueError(f"filename {name!r} must not contain '..'")
    if name.startswith("."):
        raise ValueError(f"filename {name!r} must not start with '.'")
    unsafe = _unsafe_character(name)
    if unsafe is not None:
        raise ValueError(
            f"filename must not contain control, format or line-separator characters (U+{ord(unsafe):04X})"
        )
    if name.strip() != name:
        raise ValueError(f"filename {name!r} must not start or end with spaces")
    if name in RESERVED_FILENAMES:
        raise ValueError(f"filename {name!r} is reserved for the run folder")
    return name


Filename = Annotated[str, AfterValidator(check_filename)]
