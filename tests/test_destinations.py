"""``http_request`` destinations: the allow-list and the switch against internal addresses, on real sockets.

Two servers on this machine stand for "inside" and "elsewhere": 127.0.0.1 and 127.0.0.2 (both loopback).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from orchestrator.settings import Settings
from orchestrator.states import RunState
from orchestrator.validation import parse_config
from tests.engine_harness import running


@dataclass
class Server:
    base: str
    hits: list[str] = field(default_factory=list)


async def serve(host: str, redirect_to: list[str]) -> tuple[web.AppRunner, Server]:
    server = Server("")

    async def answer(request: web.Request) -> web.StreamResponse:
        server.hits.append(request.path)
        if request.path == "/redirect":
            raise web.HTTPFound(redirect_to[0])
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    server.base = f"http://{host}:{runner.addresses[0][1]}"
    return runner, server


@pytest.fixture
async def servers() -> AsyncIterator[tuple[Server, Server]]:
    target: list[str] = [""]
    inside_runner, inside = await serve("127.0.0.1", target)
    other_runner, other = await serve("127.0.0.2", target)
    target[0] = f"{other.base}/landed"
    try:
        yield inside, other
    finally:
        await inside_runner.cleanup()
        await other_runner.cleanup()


async def fetch(settings: Settings, url: str) -> tuple[str, str | None]:
    """Run one http_request task under ``settings``: its state and error."""
    config = {
        "dag_name": "fetch",
        "tasks": [{"id": "get", "operation": "http_request", "independent_params": {"url": url}}],
    }
    async with running(settings) as orch:
        report = await orch.run(parse_config(config))
    task = report.tasks["get"]
    return task.state, task.error


async def test_by_default_every_destination_is_reached(settings: Settings, servers: tuple[Server, Server]) -> None:
    inside, other = servers
    state, _ = await fetch(settings, f"{inside.base}/redirect")
    assert state == "success"
    assert other.hits == ["/landed"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"])
async def test_block_private_refuses_internal_addresses(
    settings: Settings, servers: tuple[Server, Server], host: str
) -> None:
    inside, _ = servers
    settings.http_block_private = True
    port = inside.base.rsplit(":", 1)[1]
    state, error = await fetch(settings, f"http://{host}:{port}/secret")
    assert state == "failed"
    assert "TASKFLOW_HTTP_BLOCK_PRIVATE" in (error or "")
    assert inside.hits == []


async def test_an_allow_listed_network_is_reached_but_a_redirect_elsewhere_is_not(
    settings: Settings, servers: tuple[Server, Server]
) -> None:
    inside, other = servers
    settings.http_allowed_hosts = "127.0.0.1/32"
    settings.http_block_private = True  # an allow-listed network is reachable all the same
    assert (await fetch(settings, f"{inside.base}/plain"))[0] == "success"
    state, error = await fetch(settings, f"{inside.base}/redirect")
    assert state == "failed"
    assert "127.0.0.2" in (error or "")
    assert "TASKFLOW_HTTP_ALLOWED_HOSTS" in (error or "")
    assert inside.hits == ["/plain", "/redirect"]
    assert other.hits == []  # the redirect was never followed


async def test_an_allow_listed_name_is_checked_on_the_name(settings: Settings, servers: tuple[Server, Server]) -> None:
    inside, _ = servers
    settings.http_allowed_hosts = "localhost, *.example.org"
    port = inside.base.rsplit(":", 1)[1]
    assert (await fetch(settings, f"http://localhost:{port}/by-name"))[0] == "success"
    state, error = await fetch(settings, f"http://127.0.0.1:{port}/by-address")
    assert state == "failed"
    assert "not on TASKFLOW_HTTP_ALLOWED_HOSTS" in (error or "")
    assert inside.hits == ["/by-name"]


@pytest.mark.parametrize("entry", ["not a host!", "10.0.0.0/33", "http://x.org"])
def test_bad_allow_list_entries_are_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, entry: str
) -> None:
    monkeypatch.setenv("TASKFLOW_HTTP_ALLOWED_HOSTS", entry)
    with pytest.raises(ValueError, match="neither a host name"):
        Settings()


def test_allow_list_usernames_are_warned_about(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    from bot.access import warn_about_usernames

    settings.telegram_allowed_users = "12345, @alice,Bob"
    with caplog.at_level(logging.WARNING, logger="taskflow.bot"):
        warn_about_usernames(settings)
    warnings: list[Any] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "@alice" in warnings[0]
    assert "@bob" in warnings[0]
    assert "12345" not in warnings[0]
    caplog.clear()
    settings.telegram_allowed_users = "12345"
    warn_about_usernames(settings)
    assert caplog.records == []


async def test_a_run_states_the_refusal(settings: Settings, servers: tuple[Server, Server]) -> None:
    settings.http_block_private = True
    inside, _ = servers
    async with running(settings) as orch:
        report = await orch.run(
            parse_config(
                {
                    "dag_name": "r",
                    "max_retries": 3,
                    "tasks": [{"id": "get", "operation": "http_request", "independent_params": {"url": inside.base}}],
                }
            )
        )
    assert report.state == RunState.FAILED
    assert report.tasks["get"].attempts == 1  # a refusal is not retried
