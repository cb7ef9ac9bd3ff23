"""Bodies that cannot be read: corrupt encodings and clients that leave are the client's problem, not a bug."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest

from orchestrator.engine import Orchestrator
from orchestrator.library import DagLibrary
from orchestrator.settings import Settings
from web import create_app, start_site
from web.app import bound_port

DAG = b'{"dag_name": "d", "tasks": [{"id": "a", "operation": "noop"}]}'


@pytest.fixture
async def base(settings: Settings, orch: Orchestrator, library: DagLibrary) -> AsyncIterator[str]:
    runner = await start_site(create_app(settings, orch, library, orch.store), settings)
    try:
        yield f"http://127.0.0.1:{bound_port(runner)}"
    finally:
        await runner.cleanup()


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.mark.parametrize("encoding", ["deflate", "gzip", "br", "zstd", "x-unknown"])
async def test_a_corrupt_content_encoding_is_a_400(
    base: str, orch: Orchestrator, caplog: pytest.LogCaptureFixture, encoding: str
) -> None:
    headers = {"Content-Type": "application/json", "Content-Encoding": encoding}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/api/web", data=b"\x00not compressed at all", headers=headers) as resp:
            assert resp.status == 400
            text = await resp.text()
        assert "Traceback" not in text
        # The server goes on serving, on a new connection.
        ok = await http.post(f"{base}/api/web", data=DAG, headers={"Content-Type": "application/json"})
        assert ok.status == 201
    assert errors_logged(caplog) == []


async def test_a_client_leaving_mid_body_is_no_internal_error(
    base: str, orch: Orchestrator, caplog: pytest.LogCaptureFixture
) -> None:
    port = int(base.rsplit(":", 1)[1])
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /api/web HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n" + DAG[:20]
    )
    await writer.drain()
    await asyncio.sleep(0.2)  # the handler is reading the body
    writer.close()
    await writer.wait_closed()
    await asyncio.sleep(0.2)  # the server notices
    assert errors_logged(caplog) == []
    assert await orch.store.list_runs() == []
