"""A client of a running service's HTTP API, for commands that hand their work to the service that
owns the database (``main.py run`` and ``rerun`` while the service runs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp

from orchestrator.errors import ConfigError, NotFoundError, Problem, TaskFlowError
from orchestrator.records import RunRecord, RunReport, TaskRecord
from orchestrator.states import RunState, TaskState

_TIMEOUT = aiohttp.ClientTimeout(total=30)


class ServiceClient:
    """Talks to the service at ``url``; ``async with ServiceClient(url, token, runs_dir) as client``."""

    def __init__(self, url: str, token: str | None, runs_dir: Path) -> None:
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._runs_dir = runs_dir
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ServiceClient:
        self._http = aiohttp.ClientSession(timeout=_TIMEOUT, headers=self._headers)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.close()

    async def submit(self, config_text: bytes, params: dict[str, Any] | None = None) -> int:
        """Start a run of a config (as ``POST /api/web``) with values for its params; its run id."""
        if params:  # the config as given, wrapped: {"config": ..., "params": ...}
            config_text = (
                b'{"config": '
                + config_text.removeprefix(b"\xef\xbb\xbf")
                + b', "params": '
                + json.dumps(params).encode()
                + b"}"
            )
        data = await self._call("POST", "/api/web", data=config_text)
        return int(data["run_id"])

    async def rerun(self, run_id: int) -> int:
        """Re-run a failed run from its failure; its run id."""
        data = await self._call("POST", f"/api/runs/{run_id}/rerun")
        return int(data["run_id"])

    async def report(self, run_id: int) -> RunReport:
        """A run and its tasks, as the service has them now."""
        data = await self._call("GET", f"/api/runs/{run_id}")
        tasks = {t["task_id"]: _task(t) for t in data["tasks"]}
        # The ZIP is the service's, in the data dir both share.
        archive = str(self._runs_dir / f"dag_{run_id}.zip") if data.get("archive_url") else None
        run = RunRecord(
            data["run_id"], data["dag_id"], RunState(data["state"]), data["trigger"], data["owner"],
            data["notify_chat"], data["created_at"], data["started_at"], data["ended_at"], data["error"],
            archive, data.get("counts", {}), data.get("params"), data.get("logical_date"),
        )  # fmt: skip
        return RunReport(run, tasks)

    async def _call(self, method: str, path: str, *, data: bytes | None = None) -> Any:
        assert self._http is not None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        try:
            async with self._http.request(method, self.url + path, data=data, headers=headers) as response:
                body = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise TaskFlowError(f"the service at {self.url} did not answer ({exc or type(exc).__name__})") from None
        if status < 400:
            return body
        _raise(status, body if isinstance(body, dict) else {})
        return None


def _raise(status: int, body: dict[str, Any]) -> None:
    """The service's refusal as the error the CLI shows for its own."""
    if body.get("error") == "invalid_config":
        problems = [Problem(p.get("location", ""), p.get("message", "")) for p in body.get("problems", [])]
        raise ConfigError(problems, source=body.get("message", "config").removesuffix(" is invalid"))
    message = body.get("message") or body.get("error") or f"HTTP {status}"
    raise (NotFoundError if status == 404 else TaskFlowError)(f"the service refused: {message}")


def _task(data: dict[str, Any]) -> TaskRecord:
    return TaskRecord(
        data["task_id"], TaskState(data["state"]), data["attempts"], data["failures"], data["started_at"],
        data["ended_at"], data["error"], data["output_file"],
    )  # fmt: skip
