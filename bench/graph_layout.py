"""How long ELK takes to lay out a DAG in Chromium with the pages' options (``web/static/graph.js``).

Sets ``MAX_DRAWN_TASKS`` in ``web/render/graph.py``: past it the page shows the table instead.
Needs Debian's chromium and the playwright package (requirements-dev.txt):

    .venv/bin/python bench/graph_layout.py                # 100, 300, 1,000 and 2,000 tasks
    .venv/bin/python bench/graph_layout.py --sizes 500 5000
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from pathlib import Path

from playwright.async_api import async_playwright

STATIC = Path(__file__).resolve().parents[1] / "web" / "static"
CHROMIUM = "/usr/bin/chromium"
REPEAT = 3

# Random layered DAGs (each task on up to 3 of the 20 before it; seeded) and DAGs without edges,
# with the node sizes graph.js gives two-line names.
LAYOUT_JS = """async ([n, withEdges, seed]) => {
  let s = seed;
  const rnd = () => (s = (s * 16807) % 2147483647) / 2147483647;
  const children = [], edges = [];
  for (let i = 0; i < n; i++) {
    children.push({id: "n" + i, width: 190, height: 58});
    if (!withEdges) continue;
    const parents = new Set();
    for (let k = Math.floor(rnd() * 4); k > 0 && i > 0; k--) parents.add(i - 1 - Math.floor(rnd() * Math.min(i, 20)));
    for (const p of parents) edges.push({id: "e" + edges.length, sources: ["n" + p], targets: ["n" + i]});
  }
  const graph = {id: "root", layoutOptions: window.TaskFlowGraph.layoutOptions, children, edges};
  const started = performance.now();
  await new ELK().layout(graph);
  return performance.now() - started;
}"""


async def main(sizes: list[int]) -> None:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = await browser.new_page()
        await page.add_script_tag(path=STATIC / "vendor" / "elk.bundled.js")
        await page.add_script_tag(path=STATIC / "graph.js")
        await page.evaluate(LAYOUT_JS, [50, True, 1])  # warm up the JIT
        print(f"{'tasks':>7} {'edges':>6} {'median ms':>10} {'max ms':>8}")
        for n in sizes:
            for with_edges in (True, False):
                times = [await page.evaluate(LAYOUT_JS, [n, with_edges, seed]) for seed in range(1, REPEAT + 1)]
                label = "yes" if with_edges else "no"
                print(f"{n:>7} {label:>6} {statistics.median(times):>10.0f} {max(times):>8.0f}", flush=True)
        await browser.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000, 2000])
    asyncio.run(main(parser.parse_args().sizes))
