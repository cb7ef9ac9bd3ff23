"""The run page in a real headless Chromium: it follows a run live, without reloading, and its ZIP link works.

Needs Debian's ``chromium`` at /usr/bin/chromium and the ``playwright`` package (no downloaded
browsers). When either is missing the tests are skipped, unless ``TASKFLOW_REQUIRE_BROWSER=1``
(set by CI), where they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import itertools
import os
import random
import re
import subprocess
import tempfile
import threading
import time
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pytest

from orchestrator.engine import Orchestrator
from orchestrator.fourdiac import import_4diac
from orchestrator.library import DagLibrary
from orchestrator.settings import Settings
from orchestrator.validation import parse_config
from web import create_app, start_site
from web.app import bound_port

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).parent / "screenshots"  # git-ignored: look at them after a run
FOURDIAC_DATA = Path(__file__).parent / "data" / "4diac"
SUCCESS_FILL = "rgb(22, 163, 74)"  # --fill of data-state="success" in web/static/style.css
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"Debian's chromium is not at {CHROMIUM}: apt-get install chromium"
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is missing: pip install -r requirements-dev.txt"
    return None


@pytest.fixture(scope="module")
def chromium() -> Iterator[str]:
    """One headless Chromium for the whole module; yields its DevTools address (each test connects anew)."""
    reason = missing_browser()
    if reason is not None:
        if os.environ.get("TASKFLOW_REQUIRE_BROWSER") == "1":
            pytest.fail(f"TASKFLOW_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    args = [str(CHROMIUM), "--headless", *LAUNCH_ARGS, "--remote-debugging-port=0"]
    with (
        tempfile.TemporaryDirectory() as profile,
        subprocess.Popen(
            [*args, f"--user-data-dir={profile}", "about:blank"], stderr=subprocess.PIPE, text=True
        ) as process,
    ):
        assert process.stderr is not None
        address = _devtools_address(process.stderr)
        # Keep reading its noise, so Chromium never blocks on a full pipe.
        drain = threading.Thread(target=process.stderr.read, daemon=True)
        drain.start()
        try:
            yield address
        finally:
            process.terminate()
            process.wait(10)
            drain.join(10)


def _devtools_address(stderr: IO[str]) -> str:
    for line in stderr:
        found = re.search(r"DevTools listening on (ws://\S+)", line)
        if found:
            return found.group(1)
    raise RuntimeError("chromium ended without a DevTools address")


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    """The module's Chromium, connected to from this test's event loop."""
    from playwright.async_api import async_playwright  # only where it is installed

    async with async_playwright() as pw:
        connected = await pw.chromium.connect_over_cdp(chromium)
        try:
            yield connected
        finally:
            for context in connected.contexts[1:]:  # the first is the browser's own default context
                await context.close()
            await connected.close()


@pytest.fixture
async def site(settings: Settings, orch: Orchestrator, library: DagLibrary) -> AsyncIterator[str]:
    """The app served by a real server on 127.0.0.1, on a random port; yields its base URL."""
    runner = await start_site(create_app(settings, orch, library, orch.store), settings)
    try:
        yield f"http://127.0.0.1:{bound_port(runner)}"
    finally:
        await runner.cleanup()


class Watcher:
    """When (monotonic time) each task entered each state, as the orchestrator announced it."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str | None, str], float] = {}

    async def follow(self, orch: Orchestrator, run_id: int) -> None:
        """Record events until cancelled."""
        async with orch.events.subscribe(run_id) as sub:
            while True:
                event = await sub.get()
                self.seen.setdefault((event.task_id, event.state), time.monotonic())


def state_of(task_id: str) -> str:
    """JS: the state the graph shows for a task."""
    return f"document.querySelector('g.node[data-task=\"{task_id}\"]').dataset.state"


def fill_of(task_id: str) -> str:
    """JS: the colour a task's box is painted."""
    return f"getComputedStyle(document.querySelector('g.node[data-task=\"{task_id}\"] rect')).fill"


async def test_run_page_updates_live_and_its_zip_link_works(browser: Browser, site: str, orch: Orchestrator) -> None:
    config = {
        "dag_name": "live",
        "tasks": [
            {"id": "first", "operation": "sleep", "independent_params": {"seconds": 1.2}},
            {"id": "second", "operation": "sleep", "independent_params": {"seconds": 0.6}, "dependencies": ["first"]},
        ],
    }
    context = await browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    watcher = Watcher()
    run_id = await orch.submit(parse_config(config), trigger="web")
    follower = asyncio.create_task(watcher.follow(orch, run_id))
    try:
        page = await context.new_page()
        problems: list[str] = []  # script errors and console errors (a CSP violation is one)
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
        await page.goto(f"{site}/runs/{run_id}")
        await page.evaluate("window.__notReloaded = 42")
        assert await page.evaluate(state_of("second")) == "pending"
        before = await page.evaluate(fill_of("first"))
        await page.wait_for_selector('#live-status[data-live="live"]', timeout=5000)

        # A function, not an expression: the page's CSP forbids eval, which expressions need.
        await page.wait_for_function(f"() => {state_of('first')} === 'success'", polling=25, timeout=10_000)
        seen_at = time.monotonic()
        assert seen_at - watcher.seen[("first", "success")] < 1.0, "the page must follow within a second"
        # The box turns green (after the stylesheet's short colour transition).
        await page.wait_for_function(f"() => {fill_of('first')} === '{SUCCESS_FILL}'", polling=25, timeout=2000)
        assert before != SUCCESS_FILL
        assert await page.evaluate("document.querySelector('#task-first .badge').dataset.state") == "success"

        await page.wait_for_function(f"() => {state_of('second')} === 'success'", polling=25, timeout=10_000)
        await page.wait_for_selector("#zip-link", timeout=10_000)
        await page.wait_for_selector('#live-status[data-live="ended"]', timeout=5000)
        assert await page.evaluate("window.__notReloaded") == 42  # no reload happened
        assert problems == []

        async with page.expect_download() as info:
            await page.click("#zip-link")
        download = await info.value
        assert download.suggested_filename == f"dag_{run_id}.zip"
        path = await download.path()
        assert zipfile.is_zipfile(path)
        with zipfile.ZipFile(path) as archive:
            assert {"run.json", "run.log", "config.json"} <= set(archive.namelist())
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        await context.close()


# -- the graph -------------------------------------------------------------------------------------

# The graph's geometry as drawn: each box (from its transform and rect), its name's lines and
# their widths, and each edge's path.
GEOMETRY_JS = """() => {
  const svg = document.querySelector("svg.dag");
  const nodes = [...svg.querySelectorAll("g.node")].map((g) => {
    const m = /translate\\(([-\\d.e]+),([-\\d.e]+)\\)/.exec(g.getAttribute("transform"));
    const rect = g.querySelector("rect");
    const spans = [...g.querySelectorAll("text.name tspan")];
    return {
      id: g.dataset.task, x: +m[1], y: +m[2],
      w: +rect.getAttribute("width"), h: +rect.getAttribute("height"),
      text: spans.map((t) => t.textContent).join(""),
      title: g.querySelector("title").textContent,
      textRight: +g.querySelector("text.name").getAttribute("x")
        + Math.max(...spans.map((t) => t.getComputedTextLength())),
      subRight: +g.querySelector("text.sub").getAttribute("x")
        + g.querySelector("text.sub").getComputedTextLength(),
    };
  });
  const edges = [...svg.querySelectorAll("path.edge")]
    .map((p) => ({from: p.dataset.from, to: p.dataset.to, d: p.getAttribute("d")}));
  return {nodes, edges, width: +svg.dataset.width, height: +svg.dataset.height};
}"""

Point = tuple[float, float]


def path_points(d: str) -> list[Point]:
    """The corners of an ``M x,y L x,y ...`` path."""
    return [(float(x), float(y)) for x, y in re.findall(r"[ML]\s*(-?[\d.]+),(-?[\d.]+)", d)]


def crosses(a: Point, b: Point, box: dict[str, float], inset: float = 1.0) -> bool:
    """Whether the segment a-b passes through the inside of a box (Liang-Barsky clipping)."""
    left, top = box["x"] + inset, box["y"] + inset
    right, bottom = box["x"] + box["w"] - inset, box["y"] + box["h"] - inset
    dx, dy = b[0] - a[0], b[1] - a[1]
    low, high = 0.0, 1.0
    for p, q in ((-dx, a[0] - left), (dx, right - a[0]), (-dy, a[1] - top), (dy, bottom - a[1])):
        if p == 0:
            if q < 0:
                return False
            continue
        t = q / p
        if p < 0:
            low = max(low, t)
        else:
            high = min(high, t)
        if low > high:
            return False
    return True


def on_border(point: Point, box: dict[str, float], slack: float = 1.5) -> bool:
    """Whether a point lies on a box's outline."""
    x, y = point
    inside_x = box["x"] - slack <= x <= box["x"] + box["w"] + slack
    inside_y = box["y"] - slack <= y <= box["y"] + box["h"] + slack
    near_x = min(abs(x - box["x"]), abs(x - box["x"] - box["w"])) <= slack
    near_y = min(abs(y - box["y"]), abs(y - box["y"] - box["h"])) <= slack
    return inside_x and inside_y and (near_x or near_y)


def check_geometry(geometry: dict[str, Any], config: dict[str, Any]) -> None:
    """Every task drawn once, every dependency an edge from box to box around the others, names readable."""
    nodes = {n["id"]: n for n in geometry["nodes"]}
    assert set(nodes) == {t["id"] for t in config["tasks"]}
    wanted = sorted((d, t["id"]) for t in config["tasks"] for d in t.get("dependencies", []))
    assert sorted((e["from"], e["to"]) for e in geometry["edges"]) == wanted
    for node in nodes.values():
        assert min(node["x"], node["y"]) >= 0, node
        assert node["x"] + node["w"] <= geometry["width"], node
        assert node["y"] + node["h"] <= geometry["height"], node
        # The name fits its box; when it had to be cut, the cut shows and the tooltip has it whole.
        assert node["textRight"] <= node["w"] - 4, node
        assert node["subRight"] <= node["w"] - 4, node
        assert node["text"] == node["id"] or (node["text"].endswith("…") and node["title"].startswith(node["id"]))
    for edge in geometry["edges"]:
        points = path_points(edge["d"])
        assert len(points) >= 2
        assert all(0 <= x <= geometry["width"] and 0 <= y <= geometry["height"] for x, y in points), edge
        assert on_border(points[0], nodes[edge["from"]]), edge
        assert on_border(points[-1], nodes[edge["to"]]), edge
        others = [n for name, n in nodes.items() if name not in (edge["from"], edge["to"])]
        for a, b in itertools.pairwise(points):
            hit = [n["id"] for n in others if crosses(a, b, n)]
            assert not hit, f"edge {edge['from']} -> {edge['to']} passes through {hit}"


def watch_problems(page: Page) -> list[str]:
    """Script errors and console errors (a CSP violation is one) the page reports from now on."""
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    return problems


async def drawn_page(browser: Browser, url: str, *, width: int = 1280, height: int = 900) -> tuple[Page, list[str]]:
    """A page at ``url`` once its graph is drawn."""
    context = await browser.new_context(viewport={"width": width, "height": height})
    page = await context.new_page()
    problems = watch_problems(page)
    await page.goto(url)
    await page.wait_for_selector("[data-graph][data-drawn='1']", timeout=20_000)
    return page, problems


async def screenshot(page: Page, name: str, selector: str | None = None) -> None:
    """Save the page (or one element of it) under ``tests/screenshots``."""
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    if selector:
        await page.locator(selector).screenshot(path=path)
    else:
        await page.screenshot(path=path, full_page=True)


async def view_box(page: Page) -> list[float]:
    return [float(v) for v in (await page.get_attribute("svg.dag", "viewBox") or "").split()]


async def pan_and_zoom(page: Page) -> None:
    """Dragging pans (and a drag that ends on a box opens nothing), the wheel zooms, Fit shows it all."""
    box = await page.locator("svg.dag").bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    before = await view_box(page)
    scale = float(await page.get_attribute("svg.dag", "data-scale") or 0)
    await page.mouse.move(x, y)
    await page.mouse.down()
    await page.mouse.move(x - 120, y - 60, steps=6)
    await page.mouse.up()
    after = await view_box(page)
    assert after[0] == pytest.approx(before[0] + 120 / scale, abs=1)
    assert after[1] == pytest.approx(before[1] + 60 / scale, abs=1)
    assert await page.locator("#task-details").is_hidden()
    await page.mouse.wheel(0, 400)
    await page.wait_for_function(f"() => +document.querySelector('svg.dag').dataset.scale < {scale}")
    await page.click("[data-zoom='fit']")
    fitted = await view_box(page)
    size = await page.evaluate(
        "[+document.querySelector('svg.dag').dataset.width, +document.querySelector('svg.dag').dataset.height]"
    )
    assert fitted[0] + fitted[2] >= size[0] - 1
    assert fitted[1] + fitted[3] >= size[1] - 1
    await screenshot(page, "graph-150-tasks-fit", ".graph")


def wide_dag(n: int, seed: int) -> dict[str, Any]:
    """``n`` tasks with long names, each depending on up to 3 earlier ones, some on none (seeded)."""
    rng = random.Random(seed)
    tasks: list[dict[str, Any]] = []
    for i in range(n):
        parents = rng.sample(range(max(0, i - 20), i), min(i, rng.choice([0, 1, 1, 2, 3])))
        task: dict[str, Any] = {"id": f"task_with_a_rather_long_name_{i:03d}", "operation": "noop"}
        if parents:
            task["dependencies"] = [tasks[p]["id"] for p in parents]
        tasks.append(task)
    return {"dag_name": "wide", "tasks": tasks}


def fourdiac_dag() -> dict[str, Any]:
    """A 4diac import (positions kept) whose operations are swapped for noop, so it runs here."""
    result = import_4diac((FOURDIAC_DATA / "subapp.sys").read_bytes(), filename="subapp.sys")
    config = result.config.model_dump(mode="json", exclude_defaults=True)
    for task in config["tasks"]:
        task["operation"] = "noop"
        task.pop("independent_params", None)
        task.pop("dependent_params", None)
    # The case too: with these positions a straight edge side_branch -> save crosses render.
    extra = [
        ("clean_customers_and_orders_from_the_crm", (0, 100), ["Fetch"]),
        ("side_branch", (0, 700), ["Fetch"]),
        ("render", (900, 700), ["clean_customers_and_orders_from_the_crm"]),
        ("save", (1800, 700), ["side_branch", "render"]),
    ]
    for name, (x, y), deps in extra:
        config["tasks"].append({"id": name, "operation": "noop", "dependencies": deps, "position": {"x": x, "y": y}})
    return config


async def test_graph_of_150_tasks_and_of_a_4diac_import_route_edges_around_boxes(
    browser: Browser, site: str, orch: Orchestrator
) -> None:
    unconnected = {"dag_name": "flat", "tasks": [{"id": f"job_{i:03d}", "operation": "noop"} for i in range(60)]}
    cases = (
        ("graph-150-tasks", wide_dag(150, seed=7)),
        ("graph-4diac", fourdiac_dag()),
        ("graph-no-edges", unconnected),
    )
    for name, config in cases:
        run_id = await orch.submit(parse_config(config))
        await orch.wait(run_id)
        page, problems = await drawn_page(browser, f"{site}/runs/{run_id}")
        geometry = await page.evaluate(GEOMETRY_JS)
        check_geometry(geometry, config)
        await screenshot(page, name, ".graph")
        if name == "graph-150-tasks":
            await pan_and_zoom(page)
        assert problems == []
        await page.context.close()
    # Tasks without edges wrap into rows rather than one column 60 boxes tall.
    rows = {n["y"] for n in geometry["nodes"]}
    columns = {n["x"] for n in geometry["nodes"]}
    assert 3 <= len(rows) <= 20
    assert len(columns) >= 3


async def test_pages_fit_a_phone(browser: Browser, site: str, orch: Orchestrator, library: DagLibrary) -> None:
    tasks: list[dict[str, Any]] = [{"id": f"task_number_{i:02d}", "operation": "noop"} for i in range(12)]
    for i, task in enumerate(tasks[1:], start=1):
        task["dependencies"] = [tasks[i - 1]["id"]]
    await library.save(parse_config({"dag_name": "phone", "tasks": tasks}), source="test")
    run_id = await orch.submit(await library.get("phone"))
    await orch.wait(run_id)
    context = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = await context.new_page()
    problems = watch_problems(page)
    for path, name in (("/", "phone-status"), ("/dags/phone", "phone-dag")):
        await page.goto(site + path)
        await screenshot(page, name)
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390, path
    await page.goto(f"{site}/runs/{run_id}")
    await page.wait_for_selector("[data-graph][data-drawn='1']")
    # The page never scrolls sideways; the graph starts at a readable scale, panned to its start...
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    box = await page.locator(".graph-wrap").bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= 390
    assert float(await page.get_attribute("svg.dag", "data-scale") or 0) >= 0.6
    assert await page.locator("g.node[data-task='task_number_00']").is_visible()
    await screenshot(page, "phone-run")
    # ...and Fit shows all of it.
    await page.click("[data-zoom='fit']")
    view = [float(v) for v in (await page.get_attribute("svg.dag", "viewBox") or "").split()]
    size = await page.evaluate(
        "[+document.querySelector('svg.dag').dataset.width, +document.querySelector('svg.dag').dataset.height]"
    )
    assert max(view[0], view[1]) <= 0
    assert view[0] + view[2] >= size[0] - 1
    assert view[1] + view[3] >= size[1] - 1
    await screenshot(page, "phone-run-fit", ".graph")
    assert problems == []
    await context.close()


# -- task details ----------------------------------------------------------------------------------


async def test_a_click_on_a_box_opens_the_task_details_live(browser: Browser, site: str, orch: Orchestrator) -> None:
    value = "<b>not bold</b> " + "x" * 3000
    config = {
        "dag_name": "details",
        "tasks": [
            {"id": "make", "operation": "noop", "independent_params": {"value": value}},
            {"id": "wait", "operation": "sleep", "independent_params": {"seconds": 4}, "dependencies": ["make"]},
        ],
    }
    run_id = await orch.submit(parse_config(config))
    page, problems = await drawn_page(browser, f"{site}/runs/{run_id}")
    details = page.locator("#task-details")
    assert await details.is_hidden()

    await page.click("g.node[data-task='make']")
    await page.wait_for_selector("#task-details .output-preview")
    preview = await page.text_content("#task-details .output-preview") or ""
    assert preview == value[:1024] + "…"  # the first KB, as text: the markup in it is not markup
    assert await page.locator("#task-details b").count() == 0
    assert await page.text_content("#task-details h3") == "make"
    assert "/runs/" in page.url
    assert page.url.endswith("#task-make")
    async with page.expect_download() as info:
        await page.click("#output-link")
    download = await info.value
    assert await asyncio.to_thread(Path(await download.path()).read_text) == value
    await screenshot(page, "details-output", "#task-details")

    # A row of the table opens its task too; while it runs its details follow it.
    await page.click("#task-wait a.tid")
    await page.wait_for_function(
        "() => document.querySelector('#task-details h3').textContent === 'wait'", polling=50, timeout=5000
    )
    await page.wait_for_selector("#task-details .badge[data-state='running']", timeout=5000)
    # Durations of what runs count on between updates.
    ticking = "#part-summary .elapsed[data-since]"
    first = await page.text_content(ticking)
    await page.wait_for_function(
        f"(first) => document.querySelector('{ticking}').textContent !== first", arg=first, timeout=5000
    )
    await page.wait_for_selector("#task-details .attempts .badge[data-state='success']", timeout=10_000)
    assert await page.locator("#task-details .attempts tbody tr").count() == 1
    await screenshot(page, "details-after-run")
    await page.click("#task-details [data-close]")
    assert await details.is_hidden()
    assert problems == []
    await orch.wait(run_id)
    await page.context.close()


# -- the DAG page ----------------------------------------------------------------------------------


async def test_dag_page_grid_links_each_cell_to_its_task_in_its_run(
    browser: Browser, site: str, orch: Orchestrator, library: DagLibrary
) -> None:
    config = {
        "dag_name": "grid",
        "description": "Three tasks, one that fails",
        "tasks": [
            {"id": "fetch", "operation": "noop"},
            {"id": "broken", "operation": "read_file", "independent_params": {"path": "nope.txt"}},
            {"id": "after", "operation": "noop", "dependencies": ["fetch", "broken"]},
        ],
    }
    await library.save(parse_config(config), source="test")
    runs = []
    for _ in range(3):
        runs.append(await orch.submit(await library.get("grid")))
        await orch.wait(runs[-1])
    page, problems = await drawn_page(browser, f"{site}/dags/grid")
    states = await page.evaluate(
        "() => [...document.querySelectorAll('.run-grid tbody tr')]"
        ".map((tr) => [...tr.querySelectorAll('a.cell')].map((a) => a.dataset.state))"
    )
    assert states == [["success"] * 3, ["failed"] * 3, ["upstream_failed"] * 3]
    await screenshot(page, "dag-page")
    cell = page.locator(f"a.cell[href='/runs/{runs[1]}#task-broken']")
    await cell.click()
    await page.wait_for_selector("#task-details h3")
    assert await page.text_content("#task-details h3") == "broken"
    assert page.url.endswith(f"/runs/{runs[1]}#task-broken")
    assert problems == []
    await page.context.close()


# -- actions ---------------------------------------------------------------------------------------

SLOW_DAG = {
    "dag_name": "slow",
    "tasks": [
        {"id": "nap", "operation": "sleep", "independent_params": {"seconds": 1.5}},
        {"id": "then", "operation": "noop", "dependencies": ["nap"]},
    ],
}


async def test_trigger_cancel_and_rerun_buttons_without_a_token(
    browser: Browser, site: str, orch: Orchestrator, library: DagLibrary
) -> None:
    await library.save(parse_config(SLOW_DAG), source="test")
    # The status page shows a run started elsewhere, without a reload.
    page = await (await browser.new_context()).new_page()
    problems = watch_problems(page)
    await page.goto(site + "/")
    await page.wait_for_selector('#live-status[data-live="live"]')
    other = await orch.submit(await library.get("slow"))
    await page.wait_for_selector(f'#part-runs a[href="/runs/{other}"]', timeout=5000)
    await page.wait_for_function("() => document.getElementById('going').textContent.trim() === '1 run going'")
    await orch.wait(other)
    await page.goto(f"{site}/dags/slow")
    await page.wait_for_selector("[data-graph][data-drawn='1']")
    assert await page.locator("[data-token-ask]").count() == 0  # no token: nothing to ask
    await page.click("button[data-action='trigger']")
    await page.wait_for_url(re.compile(r"/runs/\d+$"))
    run_id = int(page.url.rsplit("/", 1)[1])
    assert run_id != other
    assert (await orch.store.get_run(run_id)).trigger == "web"

    await page.click("button[data-action='cancel']")
    assert (await orch.wait(run_id)).state == "cancelled"
    await page.wait_for_selector("#part-summary .badge[data-state='cancelled']", timeout=10_000)
    await page.click("button[data-action='rerun']")
    await page.wait_for_selector("#part-summary .badge[data-state='success']", timeout=15_000)
    assert (await orch.store.get_run(run_id)).state == "success"
    await screenshot(page, "actions-after-rerun")
    assert problems == []
    await page.context.close()


async def test_with_a_token_the_page_asks_for_it_once_and_hides_the_buttons_till_then(
    browser: Browser, site: str, orch: Orchestrator, library: DagLibrary, settings: Settings
) -> None:
    settings.api_token = "s3cret-token"
    await library.save(parse_config(SLOW_DAG), source="test")
    page, problems = await drawn_page(browser, f"{site}/dags/slow")
    trigger = page.locator("button[data-action='trigger']")
    assert await trigger.is_hidden()
    await page.click("[data-token-ask]")
    await page.fill("[data-token-form] input[name='token']", "wrong")
    await page.click("[data-token-form] button[type='submit']")
    await page.wait_for_selector("#action-notice[data-bad='1']")
    assert await trigger.is_hidden()
    await screenshot(page, "token-asked")
    await page.fill("[data-token-form] input[name='token']", "s3cret-token")
    await page.click("[data-token-form] button[type='submit']")
    await trigger.wait_for(state="visible")

    await trigger.click()
    await page.wait_for_url(re.compile(r"/runs/\d+$"))
    run_id = int(page.url.rsplit("/", 1)[1])
    # Kept in the browser: the run page can act at once.
    await page.click("button[data-action='cancel']")
    assert (await orch.wait(run_id)).state == "cancelled"
    assert await page.locator("[data-token-ask]").is_hidden()
    # 401 answers (one of them 'wrong') are console errors of the page's own check; nothing else.
    assert [p for p in problems if "401" not in p] == []
    await page.context.close()


ATTACK_PAGE = """<!doctype html>
<html><body>
<h1>another site</h1>
<iframe name="sink"></iframe>
<form id="plain" method="post" action="{site}/api/web" enctype="text/plain" target="sink">
  <input name='{{"dag_name": "x", "tasks": [{{"id": "a", "operation": "noop"}}], "pad": "' value='"}}'>
</form>
<form id="cancel" method="post" action="{site}/api/runs/{run_id}/cancel" target="sink"></form>
<script>
window.attack = async () => {{
  const body = JSON.stringify({{dag_name: "x", tasks: [{{id: "a", operation: "noop"}}]}});
  await fetch("{site}/api/web", {{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}}, body}});
  await fetch("{site}/api/runs/{run_id}/cancel", {{method: "POST", mode: "no-cors"}});
}};
</script>
</body></html>
"""


async def test_a_page_of_another_origin_starts_and_cancels_nothing(
    browser: Browser, site: str, orch: Orchestrator, tmp_path: Path
) -> None:
    from aiohttp import web

    run_id = await orch.submit(
        parse_config(
            {"dag_name": "victim", "tasks": [{"id": "a", "operation": "sleep", "independent_params": {"seconds": 30}}]}
        )
    )
    page_text = ATTACK_PAGE.format(site=site, run_id=run_id)

    async def attack_page(request: web.Request) -> web.Response:
        return web.Response(text=page_text, content_type="text/html")

    other = web.Application()
    other.router.add_get("/", attack_page)
    runner = web.AppRunner(other)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(f"http://127.0.0.1:{bound_port(runner)}/")  # same host, another port: another origin
        await page.evaluate("window.attack()")
        for form in ("plain", "cancel"):
            frame = page.frame(name="sink")
            assert frame is not None
            async with page.expect_event("framenavigated", predicate=lambda f: f.name == "sink"):
                await page.evaluate(f"document.getElementById('{form}').submit()")
            await frame.wait_for_load_state()
            answer = await frame.evaluate("document.body.innerText")
            assert '"error"' in answer, answer
        await page.screenshot(path=str(tmp_path / "attack.png"))
    finally:
        await context.close()
        await runner.cleanup()
    assert [r.run_id for r in await orch.store.list_runs()] == [run_id]
    assert orch.is_active(run_id)
    await orch.cancel(run_id)
