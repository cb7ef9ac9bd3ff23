"""The body of ``POST /api/import/4diac``: a 4diac XML file, a project ZIP, or either with a type map beside it.

Only XML (``application/xml``, ``text/xml``), ZIP (``application/zip``) and ``multipart/mixed`` are taken:
never ``text/plain`` or a form type, which a browser may send to another site without asking it first.
A multipart body has the file as one part and, optionally, the type map as a JSON part.
"""

from __future__ import annotations

from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from aiohttp import web

from orchestrator.limits import MAX_4DIAC_ZIP_BYTES, MAX_CONFIG_BYTES, MAX_XML_BYTES
from web.inputs import read_body
from web.middlewares import ApiError

XML_TYPES = frozenset({"application/xml", "text/xml"})
ZIP_TYPES = frozenset({"application/zip", "application/x-zip-compressed"})
MULTIPART_TYPES = frozenset({"multipart/mixed", "multipart/related"})
MAP_TYPE = "application/json"
_WHAT_TO_SEND = (
    "send a 4diac file as application/xml, a project ZIP as application/zip, "
    "or multipart/mixed with the file and a JSON map part"
)


@dataclass(frozen=True)
class Upload:
    data: bytes
    filename: str | None  # the part's file name, if a multipart body gave one
    mapping: bytes | None  # the JSON map part


async def read_upload(request: web.Request) -> Upload:
    """The file (and map) of the request; 415 for any other content type, 400 for an empty body."""
    content_type = request.content_type
    if content_type in XML_TYPES:
        return Upload(_not_empty(await read_body(request, MAX_XML_BYTES)), None, None)
    if content_type in ZIP_TYPES:
        return Upload(_not_empty(await read_body(request, MAX_4DIAC_ZIP_BYTES)), None, None)
    if content_type in MULTIPART_TYPES:
        body = _not_empty(await read_body(request, MAX_4DIAC_ZIP_BYTES + MAX_CONFIG_BYTES))
        return _parts(request.headers.get("Content-Type", ""), body)
    shown = content_type if request.headers.get("Content-Type") else "no Content-Type"
    raise ApiError(415, "unsupported_media_type", f"{_WHAT_TO_SEND}; this request is {shown}")


def _not_empty(body: bytes) -> bytes:
    if not body.strip():
        raise ApiError(400, "empty_body", f"the request body is empty; {_WHAT_TO_SEND}")
    return body


def _parts(content_type: str, body: bytes) -> Upload:
    # The body is already read and bounded: the standard library parses it whole.
    message = BytesParser(policy=policy.HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    assert isinstance(message, EmailMessage)  # policy.HTTP makes EmailMessage objects
    files: list[EmailMessage] = []
    maps: list[EmailMessage] = []
    for part in message.iter_parts():
        assert isinstance(part, EmailMessage)
        (maps if part.get_content_type() == MAP_TYPE else files).append(part)
    if len(files) != 1 or len(maps) > 1:
        message_text = (
            f"a multipart body has one part with the 4diac file (or ZIP) and at most one {MAP_TYPE} part "
            f"with the type map; this one has {len(files)} file part(s) and {len(maps)} map part(s)"
        )
        raise ApiError(400, "bad_multipart", message_text)
    data = files[0].get_payload(decode=True)
    mapping = maps[0].get_payload(decode=True) if maps else None
    if not isinstance(data, bytes) or not data.strip():
        raise ApiError(400, "empty_body", f"the file part is empty; {_WHAT_TO_SEND}")
    return Upload(data, files[0].get_filename(), mapping if isinstance(mapping, bytes) else None)
