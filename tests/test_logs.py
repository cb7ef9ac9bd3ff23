"""The service's log as text (the default) or as JSON lines, from a real ``main.py`` process."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import aiohttp

from orchestrator.logsetup import json_formatter
from tests.test_bot_service import HELLO, _log_says, _serve, _stop, _url


async def test_json_logs_are_one_object_a_line_with_the_run_id(tmp_path: Path) -> None:
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "hello.json").write_text(json.dumps(HELLO), encoding="utf-8")
    service = await _serve(tmp_path, TASKFLOW_LOG_FORMAT="json")
    try:
        url = _url(await _log_says(tmp_path, "TaskFlow is up"))
        async with aiohttp.ClientSession() as http:
            body = {"dag_id": "hello"}
            async with http.post(f"{url}/api/web", json=body, headers={"Content-Type": "application/json"}) as resp:
                assert resp.status == 201
        await _log_says(tmp_path, "ended: success")
    finally:
        code = await _stop(service)
    assert code == 0
    lines = [json.loads(line) for line in (tmp_path / "service.log").read_text(encoding="utf-8").splitlines()]
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    ended = next(line for line in lines if "ended: success" in line["message"])
    assert ended == {
        "time": ended["time"],
        "level": "INFO",
        "logger": "taskflow.engine",
        "message": "run 1 of 'hello' ended: success",
        "run_id": 1,
    }
    assert ended["time"].endswith("+00:00")
    assert any(line["message"] == "TaskFlow is up (the web server's line above says where)" for line in lines)


async def test_text_logs_stay_the_default(tmp_path: Path) -> None:
    service = await _serve(tmp_path)
    try:
        log = await _log_says(tmp_path, "TaskFlow is up")
    finally:
        await _stop(service)
    first = log.splitlines()[0]
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO [\w.]+: ", first), first


def test_a_json_line_carries_the_exception_text_and_the_task() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    logger = logging.Logger("taskflow.test")
    logger.addHandler(handler)
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        logger.exception("task %r broke", "fetch", extra={"run_id": 7, "task_id": "fetch"})
    line = json.loads(stream.getvalue())
    assert line["level"] == "ERROR"
    assert line["message"] == "task 'fetch' broke"
    assert (line["run_id"], line["task_id"]) == (7, "fetch")
    assert "ZeroDivisionError: division by zero" in line["exception"]
    assert stream.getvalue().count("\n") == 1  # the traceback is inside the one line
