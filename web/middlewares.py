"""Errors and access: every failure becomes a small JSON body (or an HTML page), never a traceback.

Domain errors (``orchestrator.errors``) become HTTP errors here and only here. Paths under ``/api``
answer JSON; the pages answer HTML. With ``TASKFLOW_API_TOKEN`` set, ``/api`` needs the bearer token;
the pages stay open and read-only.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from orchestrator.errors import ConfigError, ConflictError, NotFoundError, TaskFlowError
from orchestrator.limits import MAX_HTTP_BODY_BYTES
from web.keys import SETTINGS
from web.render.base import error_page, html_headers
from web.serialize import json_response

log = logging.getLogger("taskflow.web")

# Short machine-readable names for the HTTP errors aiohttp raises itself.
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    503: "unavailable",
}
_DOMAIN_ERRORS: list[tuple[type[TaskFlowError], int, str]] = [
    (NotFoundError, 404, "not_found"),
    (ConflictError, 409, "conflict"),
    (TaskFlowError, 400, "bad_request"),
]


class ApiError(Exception):
    """An HTTP error a view raises on purpose: status, a short code and a message for the user."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The JSON body: ``{"error", "message", ...extra}``."""
        return {"error": self.code, "message": self.message, **self.extra}


def is_api(path: str) -> bool:
    """Whether a path belongs to the JSON API (errors there are JSON)."""
    return path == "/api" or path.startswith("/api/")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every exception into a 4xx/5xx answer in the shape the client expects."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects and the like are answers, not errors
        error = _from_http(request, exc)
    except ApiError as exc:
        error = exc
    except ConfigError as exc:
        report = exc.as_dict()  # the full validation report: every problem and where it is
        error = ApiError(422, str(report.pop("error")), str(report.pop("message")), **report)
    except TaskFlowError as exc:
        error = _from_domain(exc)
    except Exception:
        # A bug: the details go to the service log, never to the client.
        log.exception("internal error answering %s %s", request.method, request.path)
        error = ApiError(500, "internal_error", "internal server error; the details are in the service log")
    return render_error(request, error)


def render_error(request: web.Request, error: ApiError) -> web.Response:
    """The error as JSON under ``/api``, as an HTML page elsewhere."""
    if is_api(request.path):
        return json_response(error.body(), status=error.status, headers=error.headers)
    page = error_page(error.status, error.message)
    headers = {**html_headers(), **error.headers}
    return web.Response(text=page, status=error.status, content_type="text/html", headers=headers)


def _from_http(request: web.Request, exc: web.HTTPException) -> ApiError:
    code = _HTTP_CODES.get(exc.status, exc.reason.lower().replace(" ", "_"))
    headers = {k: v for k, v in exc.headers.items() if k not in (hdrs.CONTENT_TYPE, hdrs.CONTENT_LENGTH)}
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = sorted(exc.allowed_methods)
        message = f"{exc.method} is not allowed on {request.path}; use {', '.join(allowed)}"
        return ApiError(405, code, message, headers=headers, allowed=allowed)
    if isinstance(exc, web.HTTPNotFound):
        return ApiError(404, code, f"nothing at {request.path}", headers=headers)
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        message = f"request body is too large; the limit is {MAX_HTTP_BODY_BYTES} bytes"
        return ApiError(413, code, message, headers=headers, limit=MAX_HTTP_BODY_BYTES)
    message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
    return ApiError(exc.status, code, message, headers=headers)


def _from_domain(exc: TaskFlowError) -> ApiError:
    for kind, status, code in _DOMAIN_ERRORS:
        if isinstance(exc, kind):
            return ApiError(status, code, str(exc))
    raise AssertionError("TaskFlowError is the last entry")  # pragma: no cover


def needs_token(path: str) -> bool:
    """Whether a path is guarded by the API token: the API, and the metrics (a scraper sends the bearer token)."""
    return is_api(path) or path == "/metrics"


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """With an API token set, ``/api`` and ``/metrics`` answer 401 unless ``Authorization: Bearer <token>`` matches."""
    token = request.app[SETTINGS].api_token
    if token and needs_token(request.path) and not _has_token(request, token):
        raise ApiError(
            401,
            "unauthorized",
            "this API needs the header 'Authorization: Bearer <TASKFLOW_API_TOKEN>'",
            headers={hdrs.WWW_AUTHENTICATE: 'Bearer realm="taskflow"'},
        )
    return await handler(request)


def _has_token(request: web.Request, token: str) -> bool:
    scheme, _, given = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    # Constant-time comparison, so the token cannot be guessed from response times.
    # surrogateescape: a header of non-UTF-8 bytes is just a wrong token, not an error.
    return hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), token.encode())
