"""Reading requests safely: bodies within a size limit, JSON with a located error, typed query params."""

from __future__ import annotations

from typing import Any

from aiohttp import hdrs, web

from orchestrator.errors import InvalidJsonError
from orchestrator.jsontext import load_json
from orchestrator.limits import MAX_ROW_ID
from web.middlewares import ApiError

# The types of a JSON body. None of them is one a page of another site may send without asking first
# (text/plain and the form types are): a browser must preflight, and this server answers no preflight.
JSON_TYPES = frozenset({"application/json"})


def require_type(request: web.Request, allowed: frozenset[str], what: str) -> None:
    """415 unless the body's ``Content-Type`` is one of ``allowed`` (or ``application/*+json`` for JSON)."""
    declared = request.headers.get(hdrs.CONTENT_TYPE)
    kind = request.content_type.lower() if declared else None
    if kind in allowed or (kind is not None and "application/json" in allowed and _is_json_suffix(kind)):
        return
    got = f"Content-Type {declared!r}" if declared else "no Content-Type"
    message = f"the body must be {what}, sent with Content-Type {' or '.join(sorted(allowed))} (got {got})"
    raise ApiError(415, "unsupported_media_type", message, accepted=sorted(allowed))


def _is_json_suffix(kind: str) -> bool:
    return kind.startswith("application/") and kind.endswith("+json")


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body, or a 413 when it is larger than ``limit`` bytes."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise _too_large(declared, limit)  # refuse before reading a byte
    body = await request.read()
    if len(body) > limit:
        raise _too_large(len(body), limit)
    return body


def _too_large(size: int, limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"request body is {size} bytes; the limit is {limit}", limit=limit)


async def read_json(request: web.Request, limit: int) -> Any:
    """The body parsed as JSON; 415 unless it is sent as JSON, 400 naming the line and column if it is not JSON."""
    require_type(request, JSON_TYPES, "JSON")
    body = await read_body(request, limit)
    if not body.strip():
        raise ApiError(400, "invalid_json", "the request body is empty; send a JSON document")
    try:
        return load_json(body)
    except InvalidJsonError as exc:
        where, reason = exc.problem.location, exc.problem.message
        message = (
            f"the body is not valid JSON ({where}: {reason})" if where else f"the body is not valid JSON: {reason}"
        )
        problem = {"location": where, "message": reason}
        raise ApiError(400, "invalid_json", message, problems=[problem]) from None


def path_id(request: web.Request, name: str = "run_id") -> int:
    """An integer id from the URL path (the route's pattern already made it digits)."""
    value = int(request.match_info[name])
    if value > MAX_ROW_ID:
        raise ApiError(404, "not_found", f"{name.replace('_', ' ')} {value} does not exist")
    return value


def int_query(request: web.Request, name: str, default: int, *, low: int, high: int) -> int:
    """An integer query parameter within ``[low, high]``; 400 otherwise."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "bad_query", f"?{name}= must be an integer, not {raw!r}") from None
    if not low <= value <= high:
        raise ApiError(400, "bad_query", f"?{name}= must be between {low} and {high}")
    return value


def float_query(request: web.Request, name: str, *, low: float, high: float) -> float | None:
    """An optional number query parameter in ``(low, high]``; 400 otherwise."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(400, "bad_query", f"?{name}= must be a number of seconds, not {raw!r}") from None
    if not low < value <= high:  # also refuses nan
        raise ApiError(400, "bad_query", f"?{name}= must be more than {low:g} and at most {high:g}")
    return value


def list_query(request: web.Request, name: str) -> list[str]:
    """A query parameter given as ``a,b`` or repeated (``?x=a&x=b``), as a flat list."""
    return [part.strip() for raw in request.query.getall(name, []) for part in raw.split(",") if part.strip()]
