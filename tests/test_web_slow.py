"""Slow and idle clients against a real server on real sockets: they are cut off, others are served."""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from orchestrator.engine import Orchestrator
from orchestrator.library import DagLibrary
from orchestrator.settings import Settings
from web import create_app, start_site
from web.app import bound_port
from web.guard import AcceptErrorThrottle

# How long a cut-off may take to show, at most: far more than the 1 s deadline, far less than forever.
PATIENCE_S = 8.0
DAG = b'{"dag_name": "d", "tasks": [{"id": "a", "operation": "noop"}]}'


@pytest.fixture
async def port(settings: Settings, orch: Orchestrator, library: DagLibrary) -> AsyncIterator[int]:
    settings.header_timeout = 1.0
    settings.min_body_rate = 1000.0
    settings.max_connections = 60
    runner = await start_site(create_app(settings, orch, library, orch.store), settings)
    try:
        yield bound_port(runner)
    finally:
        await runner.cleanup()


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """What the server sent before closing the connection (waits at most ``PATIENCE_S``)."""
    return await asyncio.wait_for(reader.read(), PATIENCE_S)


async def post_ok(port: int) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"http://127.0.0.1:{port}/api/web", data=DAG, headers={"Content-Type": "application/json"}) as resp,
    ):
        assert resp.status == 201


async def test_half_headers_are_cut_off_and_others_still_served(port: int, orch: Orchestrator) -> None:
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(50)]
    for _, writer in conns:
        writer.write(b"POST /api/web HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
    await asyncio.gather(*(w.drain() for _, w in conns))
    await post_ok(port)  # served while the 50 hang
    answers = await asyncio.gather(*(closed_by_server(r) for r, _ in conns))
    assert answers == [b""] * 50  # closed without an answer: no request ever arrived
    for _, writer in conns:
        writer.close()
    await post_ok(port)
    assert len(await orch.store.list_runs()) == 2


async def test_an_idle_connection_is_cut_off(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await closed_by_server(reader) == b""
    writer.close()


GET_DAGS = b"GET /api/dags HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


async def read_answer(reader: asyncio.StreamReader) -> bytes:
    """One whole answer (with a Content-Length) off a kept-alive connection."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), PATIENCE_S)
    length = int(
        next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")).split(b":")[1]
    )
    return head + await asyncio.wait_for(reader.readexactly(length), PATIENCE_S)


async def test_a_kept_alive_connection_may_idle_between_requests(port: int, settings: Settings) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(GET_DAGS)
    assert (await read_answer(reader)).startswith(b"HTTP/1.1 200")
    await asyncio.sleep(settings.header_timeout * 2.5)  # idle, not slow: the keep-alive timeout applies
    writer.write(GET_DAGS)
    assert (await read_answer(reader)).startswith(b"HTTP/1.1 200")
    writer.write(b"GET /api/dags HTTP/1.1\r\nHo")  # a next request begun, never finished
    assert await closed_by_server(reader) == b""
    writer.close()


async def test_a_trickling_body_is_cut_off(port: int, orch: Orchestrator, caplog: pytest.LogCaptureFixture) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /api/web HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000\r\n\r\n" + DAG[:10]
    )
    await writer.drain()
    assert b"201" not in await closed_by_server(reader)
    writer.close()
    await asyncio.sleep(0.1)  # the handler sees the connection go
    assert await orch.store.list_runs() == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # not an internal error
    await post_ok(port)


async def test_connections_past_the_cap_get_503(port: int, settings: Settings) -> None:
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(settings.max_connections)]
    await asyncio.sleep(0.1)  # every one accepted
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert (await closed_by_server(reader)).startswith(b"HTTP/1.1 503")
    writer.close()
    for _, w in conns:
        w.close()
    await asyncio.sleep(0.1)
    await post_ok(port)


def test_accept_failures_are_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[dict[str, Any]] = []
    loop = asyncio.new_event_loop()
    try:
        loop.set_exception_handler(lambda _loop, context: seen.append(context))
        AcceptErrorThrottle(interval=60.0).install(loop)
        failure = OSError(errno.EMFILE, "Too many open files")
        with caplog.at_level(logging.ERROR, logger="taskflow.web"):
            for _ in range(100):
                loop.call_exception_handler({"message": AcceptErrorThrottle.MESSAGE, "exception": failure})
        loop.call_exception_handler({"message": "something else"})
    finally:
        loop.close()
    reports = [r for r in caplog.records if "cannot accept connections" in r.getMessage()]
    assert len(reports) == 1
    assert reports[0].exc_info is None  # one line, no traceback
    assert [c["message"] for c in seen] == ["something else"]  # the rest goes to the previous handler
