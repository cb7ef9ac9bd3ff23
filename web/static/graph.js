// Draws a DAG's graph: ELK (web/static/vendor/elk.bundled.js) lays it out in layers, left to right,
// with edges routed between the boxes; this file turns the layout into SVG, built with DOM calls
// only (task names are text, never markup), and lets people pan, zoom and fit it.
// A click on a box dispatches "taskflow:open-task" on the document, for the page to show details.
(function () {
  "use strict";

  const SVG = "http://www.w3.org/2000/svg";
  const NODE_W = 190;
  const PAD_X = 10;
  const LINE_H = 15;
  const NAME_LINES = 2; // a longer name ends in "…"; the full name is in the box's tooltip and the details
  const NAME_FONT = "600 12.5px ui-monospace, SFMono-Regular, Menlo, Consolas, 'Liberation Mono', monospace";
  const SUB_FONT = "11px system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif";
  const MIN_SCALE = 0.05;
  const MAX_SCALE = 3;
  const READABLE_SCALE = 0.6; // below this, the first view shows the graph's start at this scale instead of all of it
  const LAYOUT_OPTIONS = {
    "elk.algorithm": "layered",
    "elk.direction": "RIGHT",
    "elk.edgeRouting": "POLYLINE",
    "elk.layered.nodePlacement.strategy": "BRANDES_KOEPF",
    "elk.layered.thoroughness": "1",
    "elk.layered.considerModelOrder.strategy": "NODES_AND_EDGES",
    "elk.spacing.nodeNode": "18",
    "elk.spacing.edgeNode": "12",
    "elk.spacing.edgeEdge": "8",
    "elk.layered.spacing.nodeNodeBetweenLayers": "48",
    "elk.layered.spacing.edgeNodeBetweenLayers": "16",
    "elk.separateConnectedComponents": "true",
    "elk.aspectRatio": "1.6", // unconnected tasks and small components wrap into rows instead of one column
    "elk.padding": "[top=16,left=16,bottom=16,right=16]",
  };

  const canvas = document.createElement("canvas").getContext("2d");

  function textWidth(text, font) {
    canvas.font = font;
    return canvas.measureText(text).width;
  }

  // Up to NAME_LINES lines that fit the box, broken after "_", "-", "." or " " where possible.
  function wrapName(name, width) {
    const lines = [];
    let rest = name;
    while (rest && lines.length < NAME_LINES) {
      let cut = rest.length;
      while (cut > 1 && textWidth(rest.slice(0, cut), NAME_FONT) > width) cut--;
      if (cut < rest.length) {
        const soft = Math.max(rest.lastIndexOf("_", cut - 1), rest.lastIndexOf("-", cut - 1),
          rest.lastIndexOf(".", cut - 1), rest.lastIndexOf(" ", cut - 1));
        if (soft >= cut / 2) cut = soft + 1;
      }
      lines.push(rest.slice(0, cut));
      rest = rest.slice(cut);
    }
    if (rest) {
      let last = lines[lines.length - 1];
      while (last.length > 1 && textWidth(last + "…", NAME_FONT) > width) last = last.slice(0, -1);
      lines[lines.length - 1] = last + "…";
    }
    return { lines: lines, cut: rest.length > 0 };
  }

  function fitText(text, width, font) {
    if (textWidth(text, font) <= width) return text;
    let cut = text.length;
    while (cut > 1 && textWidth(text.slice(0, cut) + "…", font) > width) cut--;
    return text.slice(0, cut) + "…";
  }

  function el(name, attrs, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    if (parent) parent.appendChild(node);
    return node;
  }

  // ELK gets the tasks in the order people expect to see them top to bottom: by the 4diac
  // positions when the config has them (so the drawing keeps the author's arrangement), else as written.
  function modelOrder(tasks) {
    const order = tasks.map(function (t, i) { return i; });
    if (tasks.some(function (t) { return t.pos; })) {
      order.sort(function (a, b) {
        const pa = tasks[a].pos, pb = tasks[b].pos;
        if (!pa || !pb) return (pa ? 0 : 1) - (pb ? 0 : 1) || a - b;
        return pa[1] - pb[1] || pa[0] - pb[0] || a - b;
      });
    }
    return order;
  }

  function elkGraph(tasks, labels) {
    const index = new Map(tasks.map(function (t, i) { return [t.id, i]; }));
    const children = modelOrder(tasks).map(function (i) {
      return { id: "n" + i, width: NODE_W, height: labels[i].height };
    });
    const edges = [];
    tasks.forEach(function (t, i) {
      for (const dep of t.deps) edges.push({ id: "e" + edges.length, sources: ["n" + index.get(dep)], targets: ["n" + i] });
    });
    return { id: "root", layoutOptions: LAYOUT_OPTIONS, children: children, edges: edges };
  }

  function drawNode(layer, task, label, box, state) {
    const link = el("a", { href: "#task-" + task.id, class: "node-link" }, layer);
    const g = el("g", { class: "node", "data-task": task.id, "data-state": state, transform: "translate(" + box.x + "," + box.y + ")" }, link);
    el("title", {}, g).textContent = task.id + " · " + task.op;
    el("rect", { width: box.width, height: box.height, rx: 7 }, g);
    const name = el("text", { class: "name", x: PAD_X, y: 18 }, g);
    label.lines.forEach(function (line, i) {
      const span = el("tspan", i ? { x: PAD_X, dy: LINE_H } : {}, name);
      span.textContent = line;
    });
    if (label.cut) name.setAttribute("data-cut", "1");
    const sub = el("text", { class: "sub", x: PAD_X, y: box.height - 10 }, g);
    const stateLabel = el("tspan", { class: "state-label" }, sub);
    stateLabel.textContent = state.replace(/_/g, " ");
    el("tspan", {}, sub).textContent = " · " + fitText(task.op, NODE_W - 2 * PAD_X - 100, SUB_FONT);
    link.addEventListener("click", function (e) {
      e.preventDefault();
      if (link.dataset.dragged === "1") {
        link.dataset.dragged = "0";
        return; // the end of a pan, not a click
      }
      document.dispatchEvent(new CustomEvent("taskflow:open-task", { detail: { taskId: task.id } }));
    });
  }

  function drawEdge(layer, edge, from, to) {
    for (const section of edge.sections || []) {
      const points = [section.startPoint].concat(section.bendPoints || [], [section.endPoint]);
      const d = points.map(function (p, i) { return (i ? "L" : "M") + p.x.toFixed(1) + "," + p.y.toFixed(1); }).join(" ");
      el("path", { class: "edge", d: d, "data-from": from, "data-to": to, "marker-end": "url(#arrow)" }, layer);
    }
  }

  function draw(wrap, tasks, labels, states, layout) {
    const svg = el("svg", { class: "dag", role: "img", "aria-label": "graph of the DAG", "data-width": layout.width, "data-height": layout.height });
    const defs = el("defs", {}, svg);
    const marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, defs);
    el("path", { d: "M0,0 L10,5 L0,10 z" }, marker);
    const view = el("g", { class: "view" }, svg);
    const edgeLayer = el("g", { class: "edges" }, view);
    const nodeLayer = el("g", { class: "nodes" }, view);
    const byId = new Map(layout.children.map(function (c) { return [c.id, c]; }));
    for (const edge of layout.edges) {
      const from = tasks[+edge.sources[0].slice(1)].id;
      const to = tasks[+edge.targets[0].slice(1)].id;
      drawEdge(edgeLayer, edge, from, to);
    }
    tasks.forEach(function (task, i) {
      drawNode(nodeLayer, task, labels[i], byId.get("n" + i), states[task.id] || "pending");
    });
    wrap.replaceChildren(svg);
    return svg;
  }

  // Pan (drag), zoom (wheel, pinch, buttons) and fit, by changing the SVG's viewBox.
  function viewer(box, svg, width, height) {
    const view = { x: 0, y: 0, k: 1 };
    const pointers = new Map();
    let pinch = null;
    let moved = 0;

    function size() {
      return { w: svg.clientWidth || 1, h: svg.clientHeight || 1 };
    }
    function apply() {
      const s = size();
      svg.setAttribute("viewBox", [view.x, view.y, s.w / view.k, s.h / view.k].map(function (v) { return v.toFixed(2); }).join(" "));
      svg.dataset.scale = view.k.toFixed(3);
    }
    function zoomAt(factor, px, py) {
      const k = Math.min(MAX_SCALE, Math.max(MIN_SCALE, view.k * factor));
      view.x += px / view.k - px / k;
      view.y += py / view.k - py / k;
      view.k = k;
      apply();
    }
    function fit() {
      const s = size();
      view.k = Math.min(1, Math.max(MIN_SCALE, Math.min(s.w / width, s.h / height))); // fit shrinks, never blows up
      view.x = (width - s.w / view.k) / 2;
      view.y = (height - s.h / view.k) / 2;
      apply();
    }
    function start() {
      const s = size();
      if (Math.min(s.w / width, s.h / height) >= READABLE_SCALE) return fit();
      view.k = Math.min(1, Math.max(READABLE_SCALE, s.w / width));
      view.x = 0;
      view.y = 0;
      apply();
    }
    function local(e) {
      const r = svg.getBoundingClientRect();
      return { x: e.clientX - r.left, y: e.clientY - r.top };
    }

    svg.addEventListener("wheel", function (e) {
      e.preventDefault();
      const p = local(e);
      zoomAt(Math.exp(-e.deltaY * 0.0015), p.x, p.y);
    }, { passive: false });
    svg.addEventListener("pointerdown", function (e) {
      pointers.set(e.pointerId, local(e));
      moved = 0;
      if (pointers.size === 2) {
        const [a, b] = Array.from(pointers.values());
        pinch = Math.hypot(a.x - b.x, a.y - b.y);
      }
    });
    svg.addEventListener("pointermove", function (e) {
      const last = pointers.get(e.pointerId);
      if (!last) return;
      const p = local(e);
      if (pointers.size === 1) {
        moved += Math.abs(p.x - last.x) + Math.abs(p.y - last.y);
        if (moved > 4 && !svg.hasPointerCapture(e.pointerId)) svg.setPointerCapture(e.pointerId);
        view.x -= (p.x - last.x) / view.k;
        view.y -= (p.y - last.y) / view.k;
        apply();
      }
      pointers.set(e.pointerId, p);
      if (pointers.size === 2 && pinch) {
        moved += 10;
        const [a, b] = Array.from(pointers.values());
        const distance = Math.hypot(a.x - b.x, a.y - b.y);
        zoomAt(distance / pinch, (a.x + b.x) / 2, (a.y + b.y) / 2);
        pinch = distance;
      }
    });
    function release(e) {
      pointers.delete(e.pointerId);
      if (pointers.size < 2) pinch = null;
      // A drag that ends on a box must not open it.
      for (const link of svg.querySelectorAll("a.node-link")) link.dataset.dragged = moved > 4 ? "1" : "0";
    }
    svg.addEventListener("pointerup", release);
    svg.addEventListener("pointercancel", release);
    for (const button of box.querySelectorAll("[data-zoom]")) {
      button.addEventListener("click", function () {
        const s = size();
        if (button.dataset.zoom === "fit") fit();
        else zoomAt(button.dataset.zoom === "in" ? 1.25 : 0.8, s.w / 2, s.h / 2);
      });
    }
    window.addEventListener("resize", apply);
    start();
  }

  function frameHeight(wrap, height) {
    // As tall as the graph needs at full size, within the frame's CSS limits.
    wrap.style.height = Math.ceil(height) + 2 + "px";
  }

  async function build(box) {
    const data = JSON.parse(box.querySelector(".graph-data").textContent);
    const wrap = box.querySelector(".graph-wrap");
    const tasks = data.tasks;
    if (!tasks.length) {
      wrap.querySelector(".graph-wait").textContent = "This DAG has no tasks.";
      return;
    }
    const labels = tasks.map(function (t) {
      const label = wrapName(t.id, NODE_W - 2 * PAD_X);
      label.height = 22 + label.lines.length * LINE_H + 6;
      return label;
    });
    const started = performance.now();
    const layout = await new ELK().layout(elkGraph(tasks, labels));
    box.dataset.layoutMs = Math.round(performance.now() - started);
    frameHeight(wrap, layout.height);
    const svg = draw(wrap, tasks, labels, data.states || {}, layout);
    viewer(box, svg, layout.width, layout.height);
    box.dataset.drawn = "1";
    document.dispatchEvent(new CustomEvent("taskflow:graph-drawn"));
  }

  // For bench/graph_layout.py, which times ELK with exactly these options.
  window.TaskFlowGraph = { layoutOptions: LAYOUT_OPTIONS };

  for (const box of document.querySelectorAll("[data-graph]")) {
    build(box).catch(function (err) {
      const wrap = box.querySelector(".graph-wrap");
      wrap.textContent = "The graph could not be laid out: " + err + ". The table lists every task.";
    });
  }
})();
