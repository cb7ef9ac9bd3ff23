"""``http_request``: one HTTP call; JSON responses come back parsed, others as text."""

from __future__ import annotations

import json
from typing import Any, Literal

import aiohttp
from pydantic import AnyHttpUrl, Field, model_validator

from operations.base import OperationContext, OperationParams, output_too_large
from operations.errors import OperationError, PermanentOperationError
from operations.registry import operation

Scalar = str | int | float | bool


class HttpRequestParams(OperationParams):
    """An HTTP request; ``json`` is the body sent as JSON."""

    url: AnyHttpUrl
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, Scalar] = Field(default_factory=dict)
    json_body: Any = Field(default=None, alias="json")
    data: str | None = None
    timeout: float = Field(default=30.0, gt=0, le=3600)
    expect_status: list[int] | None = None
    max_bytes: int = Field(default=20 * 1024 * 1024, gt=0)

    @model_validator(mode="after")
    def _one_body(self) -> HttpRequestParams:
        if self.json_body is not None and self.data is not None:
            raise ValueError("give 'json' or 'data', not both")
        return self


def _query(params: HttpRequestParams) -> dict[str, str]:
    # aiohttp refuses bools in query strings; send them the way most APIs expect.
    return {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in params.query.items()}


@operation("http_request")
async def http_request(ctx: OperationContext, params: HttpRequestParams) -> Any:
    """Send an HTTP request and return the response body (parsed JSON, or text)."""
    session: aiohttp.ClientSession = ctx.resources.http
    timeout = aiohttp.ClientTimeout(total=params.timeout)
    ctx.logger.info("%s %s", params.method, params.url)
    try:
        async with session.request(
            params.method,
            str(params.url),
            headers=params.headers,
            params=_query(params),
            json=params.json_body,
            data=params.data,
            timeout=timeout,
        ) as resp:
            body = await _read_body(resp, params.max_bytes, ctx.resources.max_output_bytes)
            status, content_type, charset = resp.status, resp.content_type, resp.charset
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise OperationError(f"{params.method} {params.url}: {type(exc).__name__}: {exc}") from None
    _check_status(params, status, body)
    text = body.decode(charset or "utf-8", errors="replace")
    if content_type.endswith("json") or content_type.endswith("+json"):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise OperationError(f"response is not valid JSON: {exc}") from None
    return text


async def _read_body(resp: aiohttp.ClientResponse, limit: int, output_limit: int) -> bytes:
    """The whole body, or as soon as it passes either limit a refusal (no unbounded buffering)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise PermanentOperationError(f"response is larger than max_bytes={limit}")
        if size > output_limit:
            raise output_too_large(size, output_limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _check_status(params: HttpRequestParams, status: int, body: bytes) -> None:
    ok = status in params.expect_status if params.expect_status else 200 <= status < 300
    if ok:
        return
    snippet = body[:200].decode("utf-8", errors="replace")
    message = f"{params.method} {params.url} answered HTTP {status}: {snippet}"
    # A client error will not change on retry, except throttling and timeouts.
    if 400 <= status < 500 and status not in (408, 425, 429):
        raise PermanentOperationError(message)
    raise OperationError(message)
