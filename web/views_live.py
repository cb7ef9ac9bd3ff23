"""``GET /runs/<id>/live``: a run's state changes as server-sent events, fed by ``orch.events``.

Events: ``hello`` (the run's state when the stream opens), ``task`` (a task entered a state),
``run`` (the run did; ``final`` says it ended, and the stream ends after it) and ``resync`` (events
were dropped because the watcher was slow: re-read the page's parts). A comment line goes out
every ``HEARTBEAT_S`` so proxies keep the stream open and a vanished browser is noticed. On
shutdown every stream ends at once, so the server's cleanup never waits on them.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import hdrs, web

from orchestrator.events import RunEvent, Subscription
from orchestrator.states import RUN_TERMINAL
from web.inputs import path_id
from web.keys import ORCH, STATE, STORE

HEARTBEAT_S = 15.0
COALESCE_S = 0.3  # the status page's stream sends one "change" for every burst of events
RETRY_MS = 2000  # how soon a browser reconnects after the stream breaks
_SSE_HEADERS = {
    hdrs.CONTENT_TYPE: "text/event-stream",
    hdrs.CACHE_CONTROL: "no-cache",
    "X-Accel-Buffering": "no",  # a proxy must pass events on at once
}


class _Closing(Exception):
    """The server is shutting down."""


async def run_stream(request: web.Request) -> web.StreamResponse:
    """Stream one run's events until it ends, the browser leaves, or the server stops."""
    run_id = path_id(request)
    orch = request.app[ORCH]
    closing = request.app[STATE].closing
    # Subscribe before reading the state, so no change falls between the two.
    async with orch.events.subscribe(run_id) as sub:
        run = await request.app[STORE].get_run(run_id)  # NotFoundError → 404 before the stream starts
        response = web.StreamResponse(headers=_SSE_HEADERS)
        await response.prepare(request)
        try:
            await response.write(f"retry: {RETRY_MS}\n\n".encode())
            await send(response, "hello", {"run_id": run_id, "state": run.state.value, "final": run.finished})
            if not run.finished:
                await _pump(response, sub, closing)
        except (ConnectionResetError, _Closing):
            pass  # the browser went away, or the server is stopping: either way the stream is over
    return response


async def send(response: web.StreamResponse, event: str, data: dict[str, Any]) -> None:
    """Write one event (JSON data on one line)."""
    await response.write(f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode())


async def _pump(response: web.StreamResponse, sub: Subscription, closing: asyncio.Event) -> None:
    stop = asyncio.ensure_future(closing.wait())
    try:
        while True:
            event = await _next_event(sub, stop)
            if sub.lagged:
                sub.lagged = False
                await send(response, "resync", {})
            if event is None:
                await response.write(b": keep-alive\n\n")
                continue
            if event.task_id is None:
                final = event.state in RUN_TERMINAL
                await send(response, "run", {"state": event.state, "error": event.error, "final": final})
                if final:
                    return
            else:
                await send(response, "task", {"task_id": event.task_id, "state": event.state, "error": event.error})
    finally:
        stop.cancel()


async def _next_event(sub: Subscription, stop: asyncio.Future[Any]) -> RunEvent | None:
    """The next event, None after ``HEARTBEAT_S`` of quiet; ``_Closing`` on shutdown."""
    getter = asyncio.ensure_future(sub.get())
    done, _ = await asyncio.wait({getter, stop}, timeout=HEARTBEAT_S, return_when=asyncio.FIRST_COMPLETED)
    if getter in done:
        return getter.result()
    getter.cancel()  # an unfinished queue.get() takes nothing, so no event is lost
    if stop in done:
        raise _Closing
    return None


async def status_stream(request: web.Request) -> web.StreamResponse:
    """``GET /live``: a ``change`` event whenever any run or task changes, a burst at a time."""
    orch = request.app[ORCH]
    closing = request.app[STATE].closing
    async with orch.events.subscribe() as sub:
        response = web.StreamResponse(headers=_SSE_HEADERS)
        await response.prepare(request)
        stop = asyncio.ensure_future(closing.wait())
        try:
            await response.write(f"retry: {RETRY_MS}\n\n".encode())
            while True:
                if await _next_event(sub, stop) is None:
                    await response.write(b": keep-alive\n\n")
                    continue
                await asyncio.sleep(COALESCE_S)
                while not sub.queue.empty():
                    sub.queue.get_nowait()
                sub.lagged = False
                await send(response, "change", {})
        except (ConnectionResetError, _Closing):
            pass
        finally:
            stop.cancel()
    return response
