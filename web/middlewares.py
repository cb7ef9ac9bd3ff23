"""Errors and access: every failure becomes a small JSON body (or an HTML page), never a traceback.

Domain errors (``orchestrator.errors``) become HTTP errors here and only here. Paths under ``/api``
answer JSON; the pages answer HTML. With ``TASKFLOW_API_TOKEN`` set, ``/api`` needs the bearer token;
the pages stay open and read-only. Whatever the token, a request that changes anything must not come
from another site's page (see ``origin_middleware``).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from aiohttp.web_protocol import RequestPayloadError

from orchestrator.errors import ConfigError, ConflictError, NotFoundError, TaskFlowError
from orchestrator.limits import MAX_HTTP_BODY_BYTES
from web.keys import SETTINGS, STATE
from web.render.base import html_headers, render
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
    except RequestPayloadError as exc:
        # A body aiohttp could not decode (a corrupt gzip or deflate stream, a broken chunked encoding).
        # Its rest is unreadable: mark it read, or aiohttp tries again after the answer and logs the
        # error as unhandled; and close the connection, whose next bytes cannot be trusted either.
        request.content.feed_eof()
        error = ApiError(400, "bad_body", f"the request body could not be read: {_reason(exc)}")
        response = render_error(request, error)
        response.force_close()
        return response
    except ConnectionError:
        # The client went away (or was cut off as too slow) mid-request: nobody to answer, no bug.
        log.info("client of %s %s disconnected before its request was read", request.method, request.path)
        error = ApiError(400, "client_disconnected", "the connection closed before the request was read")
    except Exception:
        # A bug: the details go to the service log, never to the client.
        log.exception("internal error answering %s %s", request.method, request.path)
        error = ApiError(500, "internal_error", "internal server error; the details are in the service log")
    return render_error(request, error)


def _reason(exc: RequestPayloadError) -> str:
    cause = exc.__cause__
    return " ".join(str(getattr(cause, "message", None) or cause or exc).split())


def render_error(request: web.Request, error: ApiError) -> web.Response:
    """The error as JSON under ``/api``, as an HTML page elsewhere."""
    if is_api(request.path):
        return json_response(error.body(), status=error.status, headers=error.headers)
    title = "Not found" if error.status == 404 else f"Error {error.status}"
    page = render(request, "error.html", {"status": error.status, "title": title, "message": error.message})
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


# Methods that change nothing: what a page of another site may send here without harm.
_SAFE_METHODS = frozenset({hdrs.METH_GET, hdrs.METH_HEAD, hdrs.METH_OPTIONS})
# What browsers say of a request made by this server's own pages, or typed by the user.
_OWN_FETCH_SITES = frozenset({"same-origin", "none"})


@web.middleware
async def origin_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a state-changing request a page of another site made (403), token or not.

    A browser sends its own pages' requests with ``Sec-Fetch-Site: same-origin`` (older ones only with
    an ``Origin`` naming this server); scripts such as curl send neither header and pass.
    """
    # The bot's webhook is Telegram's, not a browser's: its secret header guards it (aiogram checks it).
    webhook = request.app[SETTINGS].webhook_path
    if request.method not in _SAFE_METHODS and request.path != webhook and not _same_origin(request):
        raise ApiError(403, "cross_site", "requests from the pages of other sites may not change anything here")
    return await handler(request)


def _same_origin(request: web.Request) -> bool:
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site.strip().lower() in _OWN_FETCH_SITES
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None:
        return True  # no browser made it (or one too old to send either header)
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False  # "null" (sandboxed frames, file:// pages, some redirects) matches nothing
    given = _netloc(parts.netloc, parts.scheme)
    # The Host the browser connected to (behind a TLS proxy the scheme is not ours to know), or the
    # public URL's origin, scheme included.
    public = urlsplit(request.app[STATE].public_url)
    host = request.headers.get(hdrs.HOST)
    by_host = host is not None and given == _netloc(host)
    return by_host or (parts.scheme == public.scheme and given == _netloc(public.netloc, public.scheme))


def _netloc(netloc: str, scheme: str = "") -> str:
    """``host[:port]`` lower-cased, without the scheme's default port."""
    netloc = netloc.strip().lower()
    default = {"http": ":80", "https": ":443"}.get(scheme)
    return netloc.removesuffix(default) if default else netloc
