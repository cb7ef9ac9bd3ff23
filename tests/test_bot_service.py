"""``python main.py`` as it is deployed: a real service process, with the bot on (against the fake Bot API) and off."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.fake_telegram import ALICE, FakeTelegram

ROOT = Path(__file__).resolve().parents[1]
START_S = 30.0  # a cold interpreter importing aiogram, pydantic and aiohttp on a busy machine
HELLO = {"dag_name": "hello", "tasks": [{"id": "a", "operation": "noop"}]}


async def _serve(data_dir: Path, **env: str) -> asyncio.subprocess.Process:
    """``main.py`` (serve) on ``data_dir``, any free port, its log in ``data_dir/service.log``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TASKFLOW_", "TELEGRAM_"))}
    clean.update({"TASKFLOW_DATA_DIR": str(data_dir), "TASKFLOW_PORT": "0", **env})
    log = (data_dir / "service.log").open("wb")  # a file, not a pipe: a full pipe would block the service
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "main.py"), cwd=data_dir, env=clean, stdout=log, stderr=log
        )
    finally:
        log.close()


async def _log_says(data_dir: Path, text: str) -> str:
    """The service's log, once it contains ``text``."""
    async with asyncio.timeout(START_S):
        while text not in (log := (data_dir / "service.log").read_text(encoding="utf-8")):
            await asyncio.sleep(0.05)
    return log


async def _stop(process: asyncio.subprocess.Process) -> int:
    """SIGTERM, as a service manager would; the exit code."""
    process.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(15):
            return await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise


async def test_the_service_runs_the_bot_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "hello.json").write_text(json.dumps(HELLO), encoding="utf-8")
    tg = FakeTelegram()
    await tg.start()
    try:
        service = await _serve(
            tmp_path, TELEGRAM_BOT_TOKEN=tg.token, TELEGRAM_API_BASE=tg.url, TELEGRAM_ALLOWED_USERS=str(ALICE["id"])
        )
        try:
            tg.send_text("/start")  # waits in the fake's queue until the bot polls
            assert "Hi Alice" in (await tg.expect(ALICE["id"], wait=START_S)).text
            tg.send_text("/dags")
            assert "<code>hello</code> — 1 task(s)" in (await tg.expect(ALICE["id"])).text
            log = await _log_says(tmp_path, "TaskFlow is up")
            assert {c["command"] for c in tg.commands} >= {"dags", "run", "status"}
            await _check_health_and_metrics(_url(log))
        finally:
            code = await _stop(service)
    finally:
        await tg.stop()
    log = (tmp_path / "service.log").read_text(encoding="utf-8")
    assert code == 0, log
    assert "Telegram bot @taskflow_test_bot is on" in log
    assert "Telegram bot stopped" in log
    assert "Traceback" not in log


def _url(log: str) -> str:
    """The service's address, from its log line ``web server listening on HOST:PORT``."""
    match = re.search(r"web server listening on ([\d.]+):(\d+)", log)
    assert match, log
    return f"http://{match[1]}:{match[2]}"


async def _check_health_and_metrics(url: str) -> None:
    """The bot's polling is among the health checks, and its updates are counted."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/healthz") as resp:
            assert resp.status == 200
            assert (await resp.json())["checks"]["telegram"] == {"ok": True}
        async with http.get(f"{url}/metrics") as resp:
            text = await resp.text()
    handled = [
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "taskflow_bot_updates_total" and s.labels == {"outcome": "handled"}
    ]
    assert handled == [2.0]  # /start and /dags


async def test_without_a_token_the_service_runs_and_says_the_bot_is_off(tmp_path: Path) -> None:
    service = await _serve(tmp_path)
    try:
        log = await _log_says(tmp_path, "TaskFlow is up")
    finally:
        code = await _stop(service)
    assert "the Telegram bot is off (TELEGRAM_BOT_TOKEN is not set)" in log
    assert code == 0
