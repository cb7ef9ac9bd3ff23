"""Task positions are checked where configs come in, so every run page can be drawn."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.engine import Orchestrator
from orchestrator.errors import ConfigError
from orchestrator.library import DagLibrary
from orchestrator.limits import MAX_POSITION
from orchestrator.records import RunRecord
from orchestrator.settings import Settings
from orchestrator.states import RunState
from orchestrator.validation import parse_config
from web import create_app
from web.render.graph import graph_data

DATA = Path(__file__).parent / "data"
JSON = {"Content-Type": "application/json"}


def placed(*points: tuple[float, float]) -> dict[str, Any]:
    tasks = [{"id": f"t{i}", "operation": "noop", "position": {"x": x, "y": y}} for i, (x, y) in enumerate(points)]
    return {"dag_name": "placed", "tasks": tasks}


@pytest.fixture
async def client(settings: Settings, orch: Orchestrator, library: DagLibrary) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(create_app(settings, orch, library, orch.store))) as test_client:
        yield test_client


@pytest.mark.parametrize("bad", [1e308, -1e308, MAX_POSITION + 1, "NaN", "Infinity"])
async def test_positions_out_of_range_are_refused(client: TestClient[Any, Any], orch: Orchestrator, bad: Any) -> None:
    text = json.dumps(placed((0, 0), (1, 1))).replace('"x": 1', f'"x": {bad}', 1)
    resp = await client.post("/api/web", data=text, headers=JSON)
    assert resp.status == 422
    problems = (await resp.json())["problems"]
    assert [p["location"] for p in problems] == ["tasks[1].position.x"]
    assert await orch.store.list_runs() == []


async def test_a_run_page_at_the_limits_is_drawn(client: TestClient[Any, Any], orch: Orchestrator) -> None:
    config = placed((-MAX_POSITION, MAX_POSITION), (MAX_POSITION, -MAX_POSITION), (0, 1e-300))
    resp = await client.post("/api/web", data=json.dumps(config), headers=JSON)
    assert resp.status == 201
    run_id = (await resp.json())["run_id"]
    await orch.wait(run_id)
    page = await client.get(f"/runs/{run_id}")
    assert page.status == 200
    assert 'data-task="t2"' in await page.text()


def test_a_4diac_import_with_a_huge_position_is_refused() -> None:
    fourdiac = pytest.importorskip("orchestrator.fourdiac")
    data = (DATA / "4diac" / "pipeline.sys").read_bytes().replace(b'x="900.5"', b'x="1e307"', 1)
    with pytest.raises(ConfigError) as caught:
        fourdiac.import_4diac(data, filename="pipeline.sys")
    assert [(p.location, p.message.split(":")[0]) for p in caught.value.problems] == [("FB 'ToText'", "position.x")]


COORDINATE = st.floats(min_value=-MAX_POSITION, max_value=MAX_POSITION, allow_nan=False)
RECORD = RunRecord(1, "placed", RunState.SUCCESS, "web", None, None, created_at=0.0, started_at=0.0, ended_at=1.0)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(COORDINATE, COORDINATE), min_size=1, max_size=6))
def test_the_graph_data_takes_any_valid_positions(points: list[tuple[float, float]]) -> None:
    # The page hands these to the layout in the browser as hints: they must stay finite JSON numbers.
    config = parse_config(placed(*points)).model_dump(mode="json")
    data = json.loads(json.dumps(graph_data(config), allow_nan=False))
    assert [tuple(t["pos"]) for t in data["tasks"]] == [(float(x), float(y)) for x, y in points]
