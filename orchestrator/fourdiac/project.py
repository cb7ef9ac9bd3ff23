"""A 4diac project sent as a ZIP: its system file, its type files and an optional ``taskflow-map.json``.

The ZIP is untrusted: it may hold at most ``MAX_4DIAC_ZIP_MEMBERS`` members, unpack to at most
``MAX_4DIAC_UNZIPPED_BYTES`` (counted as the members are read, not as their headers claim), and every
member name must be a relative path that stays inside the archive. Nothing is written to disk.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from orchestrator.errors import ConfigError, Problem
from orchestrator.fourdiac.build import ImportResult, import_4diac
from orchestrator.fourdiac.library import TypeLibrary, is_type_file
from orchestrator.fourdiac.mapping import load_mapping
from orchestrator.limits import MAX_4DIAC_UNZIPPED_BYTES, MAX_4DIAC_ZIP_BYTES, MAX_4DIAC_ZIP_MEMBERS, MAX_XML_BYTES

MAP_MEMBER = "taskflow-map.json"
_SYSTEM_SUFFIX = ".sys"
_READ_CHUNK = 64 * 1024


def is_zip(data: bytes) -> bool:
    """Whether ``data`` starts like a ZIP archive."""
    return data[:4] == b"PK\x03\x04"


@dataclass
class Project:
    """What an import needs from a project ZIP."""

    name: str  # the member to import, as the ZIP names it
    data: bytes
    library: TypeLibrary
    mapping: bytes | None  # taskflow-map.json, if the ZIP has one


def import_upload(
    data: bytes,
    *,
    filename: str | None = None,
    app: str | None = None,
    mapping: dict[str, Any] | None = None,
    library: TypeLibrary | None = None,
    **options: Any,
) -> ImportResult:
    """A 4diac file, or a project ZIP (its system, type files and ``taskflow-map.json``), as a DAG.

    ``mapping`` (as ``load_mapping`` returns it) wins over a ZIP's ``taskflow-map.json``; the ZIP's
    types win over ``library``'s; ``options`` go to ``import_4diac`` (``dag_name``, ``hints``…).
    """
    if not is_zip(data) and (filename or "").lower().endswith(".zip"):
        raise _refused(filename or "", "", "not a ZIP archive (a .zip file must start with PK)")
    if not is_zip(data):
        return import_4diac(data, filename=filename, app=app, mapping=mapping, library=library, **options)
    source = filename or "upload.zip"
    if len(data) > MAX_4DIAC_ZIP_BYTES:
        raise _refused(source, "", f"the ZIP is {len(data)} bytes; the limit is {MAX_4DIAC_ZIP_BYTES}")
    project = read_project(data, source)
    if library is not None:
        for key, entry in library.types.items():
            project.library.types.setdefault(key, entry)
    notes = []
    if project.mapping is not None and mapping is not None:
        notes.append(f"{MAP_MEMBER} in the ZIP ignored: the map given with it wins")
    elif project.mapping is not None:
        mapping = load_mapping(project.mapping, name=MAP_MEMBER)
    result = import_4diac(
        project.data,
        filename=PurePosixPath(project.name).name,
        app=app,
        mapping=mapping,
        library=project.library,
        **options,
    )
    result.notes[:0] = notes
    return result


def read_project(data: bytes, source: str) -> Project:
    """The system file (or the one type file, if there is no system), its type library and map, from a ZIP.

    Raises ``ConfigError`` naming the member (or the limit) that made the ZIP unusable.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as exc:
        raise _refused(source, "", f"not a readable ZIP archive: {exc}") from None
    with archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
        _check_members(members, source)
        budget = _Budget(source)
        wanted = [m for m in members if _wanted(m.filename)]
        files = {m.filename: budget.read(archive, m) for m in wanted}
    system = _choose(files, source)
    types = [(name, body) for name, body in files.items() if name != system and is_type_file(name)]
    mapping = next((body for name, body in files.items() if PurePosixPath(name).name == MAP_MEMBER), None)
    return Project(system, files[system], TypeLibrary.from_files(types), mapping)


def _wanted(name: str) -> bool:
    lowered = name.lower()
    return lowered.endswith(_SYSTEM_SUFFIX) or is_type_file(lowered) or PurePosixPath(name).name == MAP_MEMBER


def _refused(source: str, location: str, message: str) -> ConfigError:
    return ConfigError([Problem(location, message)], source=source)


def _check_members(members: list[zipfile.ZipInfo], source: str) -> None:
    if len(members) > MAX_4DIAC_ZIP_MEMBERS:
        message = f"the ZIP has {len(members)} members; the limit is {MAX_4DIAC_ZIP_MEMBERS}"
        raise _refused(source, "", message)
    for member in members:
        reason = _unsafe(member)
        if reason:
            raise _refused(source, f"member {member.filename!r}", reason)
    claimed = sum(m.file_size for m in members if _wanted(m.filename))
    if claimed > MAX_4DIAC_UNZIPPED_BYTES:
        message = f"its 4diac files unpack to {claimed} bytes; the limit is {MAX_4DIAC_UNZIPPED_BYTES}"
        raise _refused(source, "", message)


def _unsafe(member: zipfile.ZipInfo) -> str | None:
    """Why a member's name or kind is refused: absolute, leaving the archive, or encrypted."""
    name = member.filename
    if "\\" in name or "\x00" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "the name is not a relative path inside the archive"
    if ".." in PurePosixPath(name).parts:
        return "the name leaves the archive ('..')"
    if member.flag_bits & 0x1:
        return "the member is encrypted"
    return None


class _Budget:
    """Counts what the members really unpack to: a header's sizes are the sender's word."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.left = MAX_4DIAC_UNZIPPED_BYTES

    def read(self, archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> bytes:
        limit = min(MAX_XML_BYTES, self.left)
        chunks: list[bytes] = []
        size = 0
        try:
            with archive.open(member) as stream:
                while chunk := stream.read(_READ_CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise self._too_big(member, limit)
                    chunks.append(chunk)
        except (zipfile.BadZipFile, NotImplementedError, OSError, EOFError) as exc:
            raise _refused(self.source, f"member {member.filename!r}", f"cannot be read: {exc}") from None
        self.left -= size
        return b"".join(chunks)

    def _too_big(self, member: zipfile.ZipInfo, limit: int) -> ConfigError:
        if limit == MAX_XML_BYTES:
            return _refused(self.source, f"member {member.filename!r}", f"unpacks to more than {limit} bytes")
        message = f"the ZIP's 4diac files unpack to more than {MAX_4DIAC_UNZIPPED_BYTES} bytes"
        return _refused(self.source, "", message)


def _choose(files: dict[str, bytes], source: str) -> str:
    """The member to import: the one system file, or the one type file of a ZIP without a system."""
    systems = [name for name in files if name.lower().endswith(_SYSTEM_SUFFIX)]
    if len(systems) == 1:
        return systems[0]
    if len(systems) > 1:
        names = ", ".join(repr(n) for n in systems)
        raise _refused(source, "", f"the ZIP holds {len(systems)} system files ({names}); send one project per ZIP")
    types = [name for name in files if is_type_file(name)]
    if len(types) == 1:
        return types[0]
    raise _refused(source, "", "the ZIP holds no 4diac system file (.sys); put the project's .sys file in it")
