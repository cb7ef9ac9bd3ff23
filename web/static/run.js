// The run page keeps itself current without reloading: server-sent events from /runs/<id>/live
// recolour tasks at once, and a debounced fetch of /runs/<id>/parts refreshes the summary, the
// task table, the timeline and the log. Plain JS, no build step, no third-party code.
(function () {
  "use strict";

  const root = document.getElementById("run");
  if (!root) return;
  const runId = root.dataset.runId;
  const liveStatus = document.getElementById("live-status");
  const REFRESH_DELAY_MS = 120; // gathers a burst of events into one fetch
  const SAFETY_POLL_MS = 5000;
  const ENDED_POLL_MS = 30000;

  let settled = root.dataset.finished === "1";
  let source = null;
  let timer = null;
  let inFlight = false;
  let again = false;

  function setLive(state, text) {
    if (!liveStatus) return;
    liveStatus.dataset.live = state;
    liveStatus.textContent = text || state;
  }

  function paint(taskId, state) {
    const selector = '[data-task="' + CSS.escape(taskId) + '"]';
    for (const el of root.querySelectorAll(selector)) {
      el.dataset.state = state;
      const label = el.querySelector(".state-label");
      if (label) label.textContent = state.replace(/_/g, " ");
    }
  }

  function logAtBottom() {
    const log = document.getElementById("log-text");
    return !log || log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
  }

  // The details panel of one task: opened from a graph box or a table row, kept current while open.
  const details = document.getElementById("task-details");
  const TERMINAL = ["success", "failed", "upstream_failed", "cancelled"];
  let openTaskId = null;
  let openState = null;

  async function loadDetails(taskId, reveal) {
    const res = await fetch("/runs/" + runId + "/task?id=" + encodeURIComponent(taskId), { cache: "no-store" });
    if (!res.ok || taskId !== openTaskId) return;
    const data = await res.json();
    openState = data.state;
    details.innerHTML = data.html;
    details.dataset.task = taskId;
    details.hidden = false;
    if (reveal) details.scrollIntoView({ block: "nearest", behavior: "smooth" });
  }

  function openTask(taskId) {
    openTaskId = taskId;
    for (const el of root.querySelectorAll("g.node.selected")) el.classList.remove("selected");
    const node = root.querySelector('g.node[data-task="' + CSS.escape(taskId) + '"]');
    if (node) node.classList.add("selected");
    history.replaceState(null, "", "#task-" + taskId);
    loadDetails(taskId, true).catch(function () {});
  }

  function closeTask() {
    openTaskId = null;
    details.hidden = true;
    details.replaceChildren();
    for (const el of root.querySelectorAll("g.node.selected")) el.classList.remove("selected");
    history.replaceState(null, "", location.pathname + location.search);
  }

  function refreshDetails(states) {
    if (openTaskId === null) return;
    const state = states[openTaskId];
    // A task that ended and was shown ended stays as it is; anything else is read again.
    if (state === openState && TERMINAL.includes(state)) return;
    loadDetails(openTaskId, false).catch(function () {});
  }

  document.addEventListener("taskflow:open-task", function (e) { openTask(e.detail.taskId); });
  root.addEventListener("click", function (e) {
    const opener = e.target.closest("[data-open]");
    if (opener) {
      e.preventDefault();
      openTask(opener.dataset.open);
    } else if (e.target.closest("[data-close]")) {
      closeTask();
    }
  });

  function apply(data) {
    const follow = logAtBottom();
    for (const [name, html] of Object.entries(data.parts)) {
      const el = document.getElementById("part-" + name);
      if (el) el.innerHTML = html;
    }
    for (const [taskId, state] of Object.entries(data.states)) paint(taskId, state);
    refreshDetails(data.states);
    if (openTaskId !== null) {
      const node = root.querySelector('g.node[data-task="' + CSS.escape(openTaskId) + '"]');
      if (node) node.classList.add("selected");
    }
    const log = document.getElementById("log-text");
    if (log && follow) log.scrollTop = log.scrollHeight;
    if (data.finished) settle();
    else if (settled) revive(); // the run was started again (a re-run) while the page was open
  }

  async function refresh() {
    if (inFlight) {
      again = true;
      return;
    }
    inFlight = true;
    try {
      const res = await fetch("/runs/" + runId + "/parts" + location.search, { cache: "no-store" });
      if (res.ok) apply(await res.json());
    } catch (err) {
      // A network hiccup: the next event or the safety poll tries again.
    } finally {
      inFlight = false;
      if (again) {
        again = false;
        schedule();
      }
    }
  }

  function schedule() {
    if (timer === null) {
      timer = setTimeout(function () {
        timer = null;
        refresh();
      }, REFRESH_DELAY_MS);
    }
  }

  function settle() {
    settled = true;
    root.dataset.finished = "1";
    if (source) {
      source.close();
      source = null;
    }
    setLive("ended", "ended");
  }

  function revive() {
    settled = false;
    root.dataset.finished = "0";
    connect();
  }

  function onRunEvent(e) {
    const data = JSON.parse(e.data);
    if (data.final && source) {
      source.close(); // the server ends the stream after this; do not reconnect
      source = null;
    }
    schedule();
  }

  function connect() {
    source = new EventSource("/runs/" + runId + "/live");
    source.addEventListener("open", function () { setLive("live", "live"); });
    source.addEventListener("hello", onRunEvent); // catch up on what changed since the page was made
    source.addEventListener("resync", schedule);
    source.addEventListener("task", function (e) {
      const data = JSON.parse(e.data);
      paint(data.task_id, data.state);
      schedule();
    });
    source.addEventListener("run", onRunEvent);
    source.addEventListener("error", function () {
      if (!settled && source) setLive("reconnecting", "reconnecting…");
    });
  }

  // The graph is drawn after the page loads: bring its colours up to date once it is there.
  document.addEventListener("taskflow:graph-drawn", schedule);

  if (!settled) connect();
  if (location.hash.startsWith("#task-")) openTask(decodeURIComponent(location.hash.slice(6)));
  // While the run goes on, in case a stream silently stalls; once it ended, seldom, to notice a re-run.
  (function poll() {
    setTimeout(function () {
      schedule();
      poll();
    }, settled ? ENDED_POLL_MS : SAFETY_POLL_MS);
  })();
})();
