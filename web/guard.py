"""Connections that cannot hold the server: deadlines for reading requests, a cap on connections.

aiohttp waits for a request's header and body as long as the client likes (its keep-alive timeout is
an hour), so a thousand clients sending half a header hold a thousand file descriptors until the
process runs out. ``GuardedRunner`` serves the app with a protocol that closes a connection whose
header takes longer than ``header_timeout`` (counted from when it opened, or from the first byte of a
later request; between requests it may idle for ``IDLE_KEEPALIVE_S``), or
whose body arrives slower than ``min_body_rate``, and answers 503 past ``max_connections``. When the
process still runs out, ``AcceptErrorThrottle`` logs the failing ``accept`` once per interval, not
once per attempt with a traceback each. Requests aiohttp cannot parse are logged without a traceback.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler, RequestPayloadError

log = logging.getLogger("taskflow.web")

# How long a connection may stay idle between requests (what aiohttp's run_app uses; its runner's
# default is an hour). A new connection must send its first header within the header timeout.
IDLE_KEEPALIVE_S = 75.0
# A body gets this long (or the header timeout, if longer) before its rate is judged.
BODY_GRACE_S = 2.0
BUSY_ANSWER = (
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 32\r\n\r\ntoo many connections; try again\n"
)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """What one connection may take: seconds for a header, bytes a second of body, connections at once."""

    header_timeout: float
    min_body_rate: float
    max_connections: int

    @property
    def check_interval(self) -> float:
        """How often each connection is looked at: often enough for the header deadline to hold."""
        return min(1.0, self.header_timeout / 4)


class GuardedHandler(RequestHandler):
    """aiohttp's protocol, with a periodic look at how long the request is taking to arrive."""

    def __init__(self, manager: GuardedServer, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = manager
        self._limits = limits
        self._counted = False
        self._check_handle: asyncio.TimerHandle | None = None
        self._waiting_since: float | None = None  # waiting for a header since (loop time)
        self._body_since = 0.0  # the last header arrived at
        self._received_since_header = 0
        self._quiet = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._guard.active >= self._limits.max_connections:
            log.debug("refused a connection: %d open", self._guard.active)
            assert isinstance(transport, asyncio.Transport)
            transport.write(BUSY_ANSWER)
            transport.close()
            return
        self._guard.active += 1
        self._counted = True
        super().connection_made(transport)
        self._waiting_since = self._loop.time()
        self._check_handle = self._loop.call_later(self._limits.check_interval, self._check)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._counted:
            self._counted = False
            self._guard.active -= 1
        if self._check_handle is not None:
            self._check_handle.cancel()
            self._check_handle = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._counted:
            return  # refused in connection_made
        before = self._request_count
        super().data_received(data)
        if self._request_count != before:  # a whole header arrived
            self._waiting_since = None
            self._body_since = self._loop.time()
            self._received_since_header = 0
            return
        self._received_since_header += len(data)
        if self._waiting_since is None and not self._request_in_progress and not self._messages:
            self._waiting_since = self._loop.time()  # a kept-alive connection began its next request

    async def finish_response(self, request: Any, resp: Any, start_time: float | None) -> Any:
        answer = await super().finish_response(request, resp, start_time)
        # Idle until the next request's first byte: aiohttp's keep-alive timeout governs that wait.
        self._waiting_since = None
        return answer

    def handle_error(
        self, request: Any, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        # A request aiohttp could not parse (a bad request line, an unknown Content-Encoding) is the
        # client's mistake: a line at debug level, not a traceback at error level for each one sent.
        self._quiet = status < 500
        try:
            return super().handle_error(request, status, exc, message)
        finally:
            self._quiet = False

    def log_exception(self, *args: Any, **kw: Any) -> None:
        # After an answer, aiohttp reads what is left of an unread body; a corrupt one fails there,
        # and the connection is closed: the client's mistake again, not an unhandled error.
        if self._quiet or isinstance(kw.get("exc_info"), RequestPayloadError | ConnectionError):
            kw.pop("exc_info", None)
            self.logger.debug(*args, **kw)
        else:
            super().log_exception(*args, **kw)

    def _check(self) -> None:
        self._check_handle = None
        if self.transport is None or self._force_close:
            return
        now = self._loop.time()
        if self._late_header(now) or self._slow_body(now):
            self.force_close()
            return
        self._check_handle = self._loop.call_later(self._limits.check_interval, self._check)

    def _late_header(self, now: float) -> bool:
        waiting = self._waiting_since
        idle = not self._messages and not self._request_in_progress
        if waiting is None or not idle or now - waiting < self._limits.header_timeout:
            return False
        log.debug("closed a connection: no whole request header within %gs", self._limits.header_timeout)
        return True

    def _slow_body(self, now: float) -> bool:
        request = self._current_request
        if request is None or request.content.is_eof() or self._reading_paused:
            return False  # no body being read, or the server is the one not reading
        elapsed = now - self._body_since
        if elapsed < max(BODY_GRACE_S, self._limits.header_timeout):
            return False
        if self._received_since_header >= self._limits.min_body_rate * elapsed:
            return False
        log.debug("closed a connection: its body came slower than %g bytes/s", self._limits.min_body_rate)
        return True


class GuardedServer(web.Server):
    """aiohttp's connection factory, making ``GuardedHandler``s and counting them."""

    def __init__(self, server: web.Server, limits: ConnectionLimits) -> None:
        super().__init__(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            **server._kwargs,
        )
        self.limits = limits
        self.active = 0

    def __call__(self) -> RequestHandler:
        return GuardedHandler(self, self.limits, loop=self._loop, **self._kwargs)


class GuardedRunner(web.AppRunner):
    """``web.AppRunner`` whose connections are guarded by ``limits``."""

    def __init__(self, app: web.Application, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(app, keepalive_timeout=IDLE_KEEPALIVE_S, **kwargs)
        self._limits = limits

    async def _make_server(self) -> web.Server:
        return GuardedServer(await super()._make_server(), self._limits)


class AcceptErrorThrottle:
    """A loop exception handler: "socket.accept() out of system resource" at most once per ``interval``.

    asyncio retries a failing ``accept`` every second per listening socket, and reports each failure
    with its traceback; out of file descriptors, that fills the disk. Everything else goes on to the
    handler that was there before.
    """

    MESSAGE = "socket.accept() out of system resource"

    def __init__(self, interval: float = 60.0) -> None:
        self.interval = interval
        self._last: float | None = None
        self._suppressed = 0
        self._previous: Any = None

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Put the throttle in front of ``loop``'s current exception handler."""
        self._previous = loop.get_exception_handler()
        loop.set_exception_handler(self)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") != self.MESSAGE:
            if self._previous is not None:
                self._previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        now = loop.time()
        if self._last is not None and now - self._last < self.interval:
            self._suppressed += 1
            return
        exc = context.get("exception")
        more = f" ({self._suppressed} more since the last report)" if self._suppressed else ""
        log.error("cannot accept connections: %s%s; open connections are the likely cause", exc, more)
        self._last, self._suppressed = now, 0
