"""The run page in a real headless Chromium: it follows a run live, without reloading, and its ZIP link works.

Needs Debian's ``chromium`` at /usr/bin/chromium and the ``playwright`` package (no downloaded
browsers). When either is missing the tests are skipped, unless ``TASKFLOW_REQUIRE_BROWSER=1``
(set by CI), where they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import time
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from orchestrator.engine import Orchestrator
from orchestrator.library import DagLibrary
from orchestrator.settings import Settings
from orchestrator.validation import parse_config
from web import create_app, start_site
from web.app import bound_port

if TYPE_CHECKING:
    from playwright.async_api import Browser

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
SUCCESS_FILL = "rgb(22, 163, 74)"  # --fill of data-state="success" in web/static/style.css
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"Debian's chromium is not at {CHROMIUM}: apt-get install chromium"
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is missing: pip install -r requirements-dev.txt"
    return None


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """A headless Chromium, closed after the test."""
    reason = missing_browser()
    if reason is not None:
        if os.environ.get("TASKFLOW_REQUIRE_BROWSER") == "1":
            pytest.fail(f"TASKFLOW_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    from playwright.async_api import async_playwright  # only where it is installed

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def site(settings: Settings, orch: Orchestrator, library: DagLibrary) -> AsyncIterator[str]:
    """The app served by a real server on 127.0.0.1, on a random port; yields its base URL."""
    runner = await start_site(create_app(settings, orch, library), settings)
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


async def test_pages_fit_a_phone(browser: Browser, site: str, orch: Orchestrator) -> None:
    tasks: list[dict[str, Any]] = [{"id": f"task_{i:02d}", "operation": "noop"} for i in range(12)]
    for i, task in enumerate(tasks[1:], start=1):
        task["dependencies"] = [tasks[i - 1]["id"]]
    run_id = await orch.submit(parse_config({"dag_name": "phone", "tasks": tasks}))
    await orch.wait(run_id)
    context = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        page = await context.new_page()
        for path in ("/", f"/runs/{run_id}"):
            await page.goto(site + path)
            # The page itself never scrolls sideways; only the graph's own box does.
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"{path} is {width}px wide on a 390px phone"
        graph = await page.evaluate(
            "(() => { const g = document.querySelector('.graph-wrap'); return [g.scrollWidth, g.clientWidth]; })()"
        )
        assert graph[0] > graph[1]  # a 12-task chain scrolls inside its box, at full size
    finally:
        await context.close()


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
